"""How much the edge ladder's two guards carry its measured score (issue 16).

The ladder (xasengine.models.edge_ladder) has two rules that were set in session 29 after looking at the shipped
scans: the metal gate (a calibrated scan whose E0 lies within METAL_GATE_EV of its foil's edge reads as OS 0) and
MIN_OWN_STANDARDS (an element with fewer oxidised standard compounds keeps the SPT's shape). A rule that only works
at the value it was set to is a fit to eight compounds, so this rescores one trained joint SPT with each guard
moved (edge_ladder.Guards, passed down read_leave_one_compound_out), leave-one-compound-out as the experimental
report does. Nothing is retrained: the guards act after the SPT.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/edge_ladder_guards.py --results <main job>/results \
        --config <main job>/config.yaml --out benchmarks/results/edge_ladder_guards.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xasengine.config import load_config
from xasengine.models import edge_ladder
from xasengine.readers import read_json
from xasengine.reports.experimental import (GROUP, experimental, known_compounds, predict_scans,
                                            read_leave_one_compound_out, scan_rows)
from xasengine.standards import read_standards


def score(results, known, doc, meta, guards: edge_ladder.Guards) -> dict:
    rows = scan_rows(read_leave_one_compound_out(results, known, doc, meta, "ladder", guards), known, meta)
    out = experimental(rows, [], {}, "")
    return {"os_exact": out["os_exact"], "compounds_within": out["compounds_within"],
            "mean_expected_os": {c["compound"]: round(c["OS"]["mean_expected"], 2) for c in out["compounds"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--gates", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    ap.add_argument("--min-own", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg = load_config(args.config)
    measured = cfg["reports"]["measured"]
    # the folder itself: predict_scans expands it as `xasengine predict` does (every spectrum suffix it reads)
    _, results, _, models = predict_scans([measured["dir"]], str(Path(args.results) / "models/spt-joint-nonO.pt"), cfg["spectra"])
    meta = models[GROUP][1]
    known = known_compounds(results, read_standards(measured["standards"]))
    doc = read_json(Path(args.results) / "models/edge_map.json")
    shipped = edge_ladder.SHIPPED_GUARDS
    runs = []
    for min_own in args.min_own:
        for gate in args.gates:
            guards = edge_ladder.Guards(metal_gate_ev=gate, min_own_standards=min_own)
            runs.append({"metal_gate_eV": gate, "min_own_standards": min_own, **score(results, known, doc, meta, guards)})
            print(f"gate {gate:4.1f} eV  min_own {min_own}: exact {runs[-1]['os_exact']}  "
                  f"within {runs[-1]['compounds_within']}  {runs[-1]['mean_expected_os']}", flush=True)
    e0 = {Path(r["source"]).name: round(r["processing"]["e0_minus_tabulated_edge_eV"], 2)
          for r in results if r.get("processing") and r["processing"]["calibration"] != "none"}
    Path(args.out).write_text(json.dumps({"shipped": {"metal_gate_eV": shipped.metal_gate_ev, "min_own_standards": shipped.min_own_standards},
                                          "e0_above_foil_eV": e0, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()

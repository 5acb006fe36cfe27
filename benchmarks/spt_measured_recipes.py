"""Does training-time sim-to-measurement augmentation make the joint SPT read measured spectra better? (issue 16)

The domain-alignment screening (benchmarks/domain_alignment.py) found its best exact-OS share with training-time
augmentation on today's grid (A+aug). This checks the same idea on the model the engine ships: the joint nonO
SPT trained per recipe and seed on a main job's shards, scored on the simulated test split (OS weighted F1) and
by the experimental report on the shipped measured scans (exact OS of integer-OS scans, compounds within ±0.5).
No recipe is fitted on measured data, so every measured score is out-of-sample for every compound. Each run is
scored in the experimental report's three readings (the edge ladder, shape x edge, the SPT's shape alone), each
with the standards taken leave-one-compound-out from rule edge_map's file (--edge-map).

    PYTHONPATH=src python benchmarks/spt_measured_recipes.py --results results --seeds 0 1 2 \
        --recipe default='{}' --recipe aug='{"broaden_ev": 2.0, "stretch": 0.1}'
"""

from __future__ import annotations

import argparse
import glob
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from xasengine.config import load_config
from xasengine.evaluate import evaluate_model
from xasengine.reports.experimental import write_experimental
from xasengine.shards import read_shards
from xasengine.train import fit_spt, save_checkpoint


def edge_only_on_simulated(table, model, meta, spectra_cfg: dict) -> dict:
    """The ladder's edge reading on FEFF's own scale (no map) against the SPT, on the oxidised nonO test sites: how
    much the edge alone would lose on spectra where the shape is trustworthy."""
    from xasengine.edge_map import simulated_edge_stats_of
    from xasengine.evaluate import predict_table
    from xasengine.models.edge_ladder import ladder_posterior

    stats, _ = simulated_edge_stats_of(table, spectra_cfg, "train")
    _, test = simulated_edge_stats_of(table, spectra_cfg, "test")
    classes = np.asarray(next(d for d in meta["targets"] if d["name"] == "OS")["classes"], float)
    rows = [r for r in test if r["OS"] > 0 and r["element"] in meta["elements"]]
    idx = np.array([r["row"] for r in rows])
    spt = predict_table(model, meta, np.asarray(table["spectrum"])[idx], np.asarray(table["energy"])[idx],
                        np.asarray(table["element"]).astype(str)[idx])["OS"]["pred"]
    edge = [classes[int(np.argmax(p))] if (p := ladder_posterior(classes, r["element"], r["edge"], stats)) is not None
            else np.nan for r in rows]
    truth = np.array([r["OS"] for r in rows])
    return {"sites": len(rows), "spt_accuracy": round(float(np.mean(np.asarray(spt) == truth)), 4),
            "edge_only_accuracy": round(float(np.mean(np.asarray(edge) == truth)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", action="append", required=True, help="name=JSON overlay of train.spt")
    parser.add_argument("--edge-map", default=None, help="default: <results>/models/edge_map.json")
    parser.add_argument("--out", default="benchmarks/results/spt_measured_recipes.json")
    args = parser.parse_args()
    cfg = load_config("config.yaml")
    shards = sorted(glob.glob(str(Path(args.results) / "shards" / "*.h5")))
    table = read_shards(shards, only_ok=True)
    scans = sorted(glob.glob("resources/measured/*.xdi"))
    edge_map = args.edge_map or str(Path(args.results) / "models" / "edge_map.json")
    rows = {}
    for spec in args.recipe:
        name, overlay = spec.split("=", 1)
        for seed in args.seeds:
            started = time.perf_counter()
            model, meta, _ = fit_spt(table, "nonO", {**cfg["train"]["spt"], **json.loads(overlay), "seed": seed})
            sim = evaluate_model(model, meta, table, "test")["descriptors"]["OS"]["f1_weighted"]
            sim_edge = edge_only_on_simulated(table, model, meta, cfg["spectra"])
            print("simulated oxidised test sites:", sim_edge, flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                checkpoint = Path(tmp) / "spt-joint-nonO.pt"
                save_checkpoint(checkpoint, model, meta)
                outputs = {k: str(Path(tmp) / f"e.{k}.{'png' if k in ('oxidation', 'probabilities', 'spectra', 'reliability') else k}")
                           for k in ("json", "csv", "html", "oxidation", "probabilities", "spectra", "reliability")}
                result = write_experimental(scans, "resources/measured/standards.tsv", str(checkpoint), edge_map,
                                            shards, cfg["spectra"], outputs)
            readings = {result["headline"]: result, **result["others"]}
            for reading, res in readings.items():
                variant = f"{name} {reading}"
                rows.setdefault(variant, []).append({
                    "seed": seed, "sim_test_os_f1": round(float(sim), 4), "sim_oxidised_test": sim_edge,
                    "os_exact": res["os_exact"],
                    "compounds_within": res["compounds_within"],
                    "mean_expected_os": {c["compound"]: round(c["OS"]["mean_expected"], 2) for c in res["compounds"]},
                    "seconds": round(time.perf_counter() - started, 1)})
                print(variant, rows[variant][-1], flush=True)
    summary = {name: {"sim_test_os_f1": f"{np.mean([r['sim_test_os_f1'] for r in rs]):.3f} ± "
                                         f"{np.std([r['sim_test_os_f1'] for r in rs], ddof=1) if len(rs) > 1 else 0:.3f}",
                      "os_exact": f"{sum(r['os_exact']['right'] for r in rs)}/{sum(r['os_exact']['of'] for r in rs)}",
                      "compounds_within": f"{sum(r['compounds_within']['right'] for r in rs)}/"
                                          f"{sum(r['compounds_within']['of'] for r in rs)}"} for name, rs in rows.items()}
    print(json.dumps(summary, indent=1))
    Path(args.out).write_text(json.dumps({"summary": summary, "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()

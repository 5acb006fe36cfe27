"""Choose the `default` FEFF preset by measurement: cheaper presets against `paper` on the same sites.

For every site and preset: FEFF10 seconds, then on the common E0-aligned grid the cosine similarity of the
normalised spectra and of their first derivatives, and the E0 shift. Finished (structure, preset) pairs are kept in
--out and a rerun skips them (FEFF results are also cached in results/feff_cache).

    python benchmarks/feff_presets.py [--out benchmarks/results/feff_presets.json]
    python benchmarks/feff_presets.py --summary-only   # the table from what --out holds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from xasengine.atomic import write_json
from xasengine.config import validate_config
from xasengine.feff.runner import run_structure
from xasengine.sites import site_manifest
from xasengine.spectra import edge_grid, process
from xasengine.structures.io import StructureRecord
from xasengine.structures.library import load_prototypes

# prototype -> absorbing elements: 10 sites over the Co, Mn, Ni, Li and O K edges (paper runs cost
# minutes each, so the comparison stays at the minimum)
SITES = {
    "lib-coo-rocksalt": ["Co", "O"],
    "lib-nio-rocksalt": ["Ni"],
    "lib-licoo2": ["Co", "Li", "O"],
    "lib-mno2-pyrolusite": ["Mn", "O"],
    "lib-co3o4-spinel": ["Co"],
}
# benchmark sites that have measured counterparts in ../shared/data/experimental-xanes (glob of their scans)
MEASURED = {("lib-mno2-pyrolusite", "Mn"): "MnO2_rt_*.xdi"}
CANDIDATES = {
    "noscf-fms4-r6 (ci)": ("ci", {}),
    "scf3-fms4-r6 (default)": ("default", {}),
    "paper": ("paper", {}),
}


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/feff_presets.json")
    parser.add_argument("--cache-dir", default="results/feff_cache")
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--measured", default="../shared/data/experimental-xanes",
                        help="folder of measured XDI spectra to compare the presets with (skipped if absent)")
    args = parser.parse_args()
    config = validate_config({})
    if args.summary_only:
        summarize(json.loads(Path(args.out).read_text())["rows"], config["spectra"], args.out)
        versus_measured(json.loads(Path(args.out).read_text())["rows"], config["spectra"], Path(args.measured))
        return
    protos = {p.id: p for p in load_prototypes()}
    missing = sorted(set(SITES) - set(protos))
    if missing:
        raise SystemExit(f"prototypes missing from the library: {missing}")
    # resume: (structure, candidate) pairs already in --out (committed with the repo) are not recomputed
    rows = json.loads(Path(args.out).read_text())["rows"] if Path(args.out).exists() else []
    done = {(r["structure"], r["candidate"]) for r in rows}
    for pid, elements in SITES.items():
        record = StructureRecord(pid, protos[pid].structure, "library", "prototype")
        manifest = site_manifest(record, elements, "K", 0.01)
        for name, (preset, overrides) in CANDIDATES.items():
            if (pid, name) in done:
                continue
            feff_cfg = dict(config["feff"], preset=preset, overrides=overrides, cache_dir=args.cache_dir,
                            shipped_cache=None)
            t0 = time.perf_counter()
            result = run_structure(record, manifest, feff_cfg, "results/feff_work_bench")
            print(f"{pid} {name}: {time.perf_counter() - t0:.1f} s", flush=True)
            for site in result["sites"]:
                rows.append({"structure": pid, "site": site["site_index"], "element": site["element"],
                             "candidate": name, "status": site["status"], "seconds": site["feff_seconds"],
                             "energy": site["energy"], "mu": site["mu"]})
            write_json(args.out, {"rows": rows})
    summarize(rows, config["spectra"], args.out)
    versus_measured(rows, config["spectra"], Path(args.measured))


def versus_measured(rows, spectra_cfg, folder: Path) -> None:
    """Each preset against measured scans of the same compound (same E0 alignment, normalisation and grid as
    `xasengine predict`): does the costlier physics get closer to the beamline?"""
    from xasengine.predict import SMOOTH_MEASURED_EV
    from xasengine.spectra import read_measured

    if not folder.is_dir():
        return
    print("\n| site | preset | cos vs measured (mean over scans) | dcos vs measured |\n|---|---|---:|---:|")
    for (structure, element), pattern in MEASURED.items():
        grid = edge_grid(spectra_cfg, element, "K")
        scans = [process(*read_measured(path)[:2], grid, spectra_cfg, smooth_ev=SMOOTH_MEASURED_EV)["spectrum"]
                 for path in sorted(folder.glob(pattern))]
        for r in rows:
            if r["structure"] == structure and r["element"] == element and r["status"] == "ok":
                sim = process(r["energy"], r["mu"], grid, spectra_cfg)["spectrum"]
                cos = np.mean([cosine(sim, m) for m in scans])
                dcos = np.mean([cosine(np.gradient(sim), np.gradient(m)) for m in scans])
                print(f"| {structure} {element} K | {r['candidate']} | {cos:.3f} | {dcos:.3f} |")


def summarize(rows, spectra_cfg, out):
    by_site = {}
    for r in rows:
        if r["status"] == "ok":
            grid = edge_grid(spectra_cfg, r["element"], "K")
            p = process(r["energy"], r["mu"], grid, spectra_cfg)
            by_site.setdefault((r["structure"], r["site"], r["element"]), {})[r["candidate"]] = p | {"s": r["seconds"]}
    table = {}
    for name in CANDIDATES:
        sims, dsims, shifts, secs = [], [], [], []
        for site, runs in by_site.items():
            if name in runs and "paper" in runs:
                a, b = runs[name], runs["paper"]
                sims.append(cosine(a["spectrum"], b["spectrum"]))
                dsims.append(cosine(np.gradient(a["spectrum"]), np.gradient(b["spectrum"])))
                shifts.append(a["e0"] - b["e0"])
                secs.append(a["s"])
        table[name] = {"n_sites": len(sims), "median_cos": float(np.median(sims)), "min_cos": float(np.min(sims)),
                       "median_dcos": float(np.median(dsims)), "min_dcos": float(np.min(dsims)),
                       "median_abs_e0_shift": float(np.median(np.abs(shifts))),
                       "median_seconds": float(np.median(secs))}
    print("| preset | sites | cos median (min) | dcos median (min) | abs E0 shift median, eV | s/site median |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, t in table.items():
        print(f"| {name} | {t['n_sites']} | {t['median_cos']:.4f} ({t['min_cos']:.3f}) | {t['median_dcos']:.3f} "
              f"({t['min_dcos']:.3f}) | {t['median_abs_e0_shift']:.2f} | {t['median_seconds']:.1f} |")
    doc = json.loads(Path(out).read_text())
    doc["summary"] = table
    write_json(out, doc)


if __name__ == "__main__":
    main()

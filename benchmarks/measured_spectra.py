"""How well do SPT recipes trained on FEFF spectra read measured spectra? (issue 4, sim-to-measurement gap)

Trains the joint nonO SPT once per recipe and seed on the given shards, then scores (a) the simulated test split
(weighted F1 / R2 per descriptor, as the metrics table) and (b) the measured K-edge spectra in
../shared/data/experimental-xanes against the compounds' known oxidation state and coordination number.

    PYTHONPATH=src python benchmarks/measured_spectra.py --shards 'results/shards/*.h5' \
        --recipe default='{}' --recipe sim2exp='{"broaden_ev": 2.0, "stretch": 0.1}' --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from xasengine.config import load_config
from xasengine.evaluate import evaluate_model, predict_table
from xasengine.predict import items_from_file
from xasengine.shards import read_shards
from xasengine.train import fit_spt

# Known (oxidation state, first-shell coordination number) of the measured compounds. Left out: Mn3O4 (Mn2+ in
# tetrahedra and Mn3+ in octahedra, one spectrum of both) and "Ni2O3" (not a well-defined crystalline phase).
KNOWN = {"MnO": (2, 6), "Mn2O3": (3, 6), "MnO2": (4, 6), "NiOH2": (2, 6), "Ni_metal": (0, 12), "co_metal": (0, 12)}


def measured_items(folder: Path, spectra_cfg: dict) -> list[dict]:
    items = []
    for path in sorted(folder.glob("*.xdi")):
        compound = path.stem.rsplit("_rt", 1)[0]
        if compound in KNOWN:
            item = items_from_file(path, None, None, spectra_cfg, spectra_cfg["grid"]["points"])[0]
            items.append({**item, "compound": compound})
    return items


def score_measured(model, meta, items: list[dict]) -> dict:
    pred = predict_table(model, meta, np.stack([i["spectrum"] for i in items]), np.stack([i["energy"] for i in items]),
                         np.array([i["element"] for i in items]))
    rows = []
    for n, item in enumerate(items):
        os_true, cn_true = KNOWN[item["compound"]]
        rows.append({"file": Path(item["source"]).name, "compound": item["compound"], "OS": float(pred["OS"]["pred"][n]),
                     "CN": float(pred["CN"]["pred"][n]), "OS_true": os_true, "CN_true": cn_true})
    return {"os_correct": sum(r["OS"] == r["OS_true"] for r in rows),
            "cn_correct": sum(r["CN"] == r["CN_true"] for r in rows), "n": len(rows), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", default="results/shards/*.h5")
    parser.add_argument("--measured", default="../shared/data/experimental-xanes")
    parser.add_argument("--recipe", action="append", default=[], help="name=JSON of train.spt overrides")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="benchmarks/results/measured_spectra.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipes = dict(r.split("=", 1) for r in args.recipe) or {"default": "{}"}
    table = read_shards(sorted(glob.glob(args.shards)), only_ok=True)
    items = measured_items(Path(args.measured), load_config("config.yaml")["spectra"])
    results = []
    for name, recipe in recipes.items():
        for seed in args.seeds:
            started = time.perf_counter()
            model, meta, _ = fit_spt(table, "nonO", {**json.loads(recipe), "seed": seed})
            simulated = {k: v.get("f1_weighted", v.get("r2")) for k, v in evaluate_model(model, meta, table)["descriptors"].items()}
            measured = score_measured(model, meta, items)
            results.append({"recipe": name, "cfg": json.loads(recipe), "seed": seed, "simulated": simulated,
                            "measured": measured, "seconds": round(time.perf_counter() - started, 1)})
            print(name, seed, {k: round(v, 3) for k, v in simulated.items()},
                  f"measured OS {measured['os_correct']}/{measured['n']} CN {measured['cn_correct']}/{measured['n']}",
                  flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    descriptors = list(results[0]["simulated"])
    print("\n| recipe | " + " | ".join(descriptors) + " | measured OS | measured CN |")
    print("|---|" + "---:|" * (len(descriptors) + 2))
    for name in recipes:
        runs = [r for r in results if r["recipe"] == name]
        cells = [f"{np.mean([r['simulated'][d] for r in runs]):.3f} ± {np.std([r['simulated'][d] for r in runs]):.3f}"
                 for d in descriptors]
        n = sum(r["measured"]["n"] for r in runs)
        os_ok = sum(r["measured"]["os_correct"] for r in runs)
        cn_ok = sum(r["measured"]["cn_correct"] for r in runs)
        print(f"| {name} | " + " | ".join(cells) + f" | {os_ok}/{n} | {cn_ok}/{n} |")
    print("\nMost frequent prediction per compound (OS / CN, over seeds and repeated scans):")
    for name in recipes:
        runs = [r for r in results if r["recipe"] == name]
        per = {}
        for compound in KNOWN:
            rows = [row for r in runs for row in r["measured"]["rows"] if row["compound"] == compound]
            if rows:
                (os_, cn), _ = Counter((row["OS"], row["CN"]) for row in rows).most_common(1)[0]
                per[compound] = f"{os_:g}/{cn:g} (true {KNOWN[compound][0]}/{KNOWN[compound][1]})"
        print(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in per.items()))


if __name__ == "__main__":
    main()

"""Hyper-parameters of the baseline families, chosen on the validation split only (issue 14).

For one family and site group, every point of a small grid (GRIDS below, overlaid on the family's DEFAULTS
and the --base overlay) is fitted on the training split with seed 0 and scored on the validation split: the
mean over the group's descriptors of weighted F1 (classes) or R² (regressions, undefined ones skipped). The
test split is never read. Prints the grid sorted by that score, with fit seconds, and writes it to
benchmarks/results/baseline_search-<family>-<group>.json; the winner goes into config.yaml (benchmark.<family>)
by hand, weighed against its training time (the main job must stay within its time budget).

    PYTHONPATH=src nice -n 19 python benchmarks/baseline_search.py --family rf --group nonO --shards 'results/shards/*.h5'
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from xasengine.models.family import BASELINES, fit_family, score_model
from xasengine.models.metrics import MAIN_SCORE
from xasengine.shards import read_shards

# Small on purpose: each axis is one knob the family is known to be sensitive to on a few thousand samples.
GRIDS = {
    "dt": {"max_depth": [None, 8, 16], "min_samples_leaf": [1, 3, 5]},
    "rf": {"n_estimators": [100, 300], "max_features": ["sqrt", 0.3], "min_samples_leaf": [1, 2]},
    "et": {"n_estimators": [100, 300], "max_features": ["sqrt", 0.3], "min_samples_leaf": [1, 2]},
    "xgb": {"n_estimators": [100, 300], "max_depth": [3, 6], "learning_rate": [0.05, 0.1]},
    "mlp": {"hidden": [128, 256], "layers": [1, 2, 3], "lr": [1e-3, 3e-3]},
    "ftt": {"epochs": [30, 60, 100], "d_block": [32, 64]},
    "amformer": {"epochs": [30, 60, 100], "n_prompts": [8, 16]},
}
RESULTS = Path(__file__).resolve().parent / "results"


def validation_score(scores: dict) -> float:
    values = [s[MAIN_SCORE[s["kind"]]] for s in scores.values() if s[MAIN_SCORE[s["kind"]]] is not None]
    return float(np.mean(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True, choices=BASELINES)
    parser.add_argument("--group", default="nonO", choices=["nonO", "O"])
    parser.add_argument("--shards", default="results/shards/*.h5")
    parser.add_argument("--base", default="{}", help="JSON overlay applied to every grid point")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    table = read_shards(sorted(glob.glob(args.shards)), only_ok=True)
    grid = GRIDS[args.family]
    rows = []
    for values in itertools.product(*grid.values()):
        cfg = {**json.loads(args.base), **dict(zip(grid, values))}
        started = time.perf_counter()
        model = fit_family(args.family, table, args.group, cfg, seed=0, n_jobs=args.threads)
        seconds = time.perf_counter() - started
        scores = score_model(model, table, split="val")
        rows.append({"cfg": cfg, "val_score": validation_score(scores), "fit_seconds": round(seconds, 2),
                     "val": {name: s[MAIN_SCORE[s["kind"]]] for name, s in scores.items()}})
        print(f"{json.dumps(cfg):60s} val {rows[-1]['val_score']:.4f}  {seconds:7.1f} s", flush=True)
    rows.sort(key=lambda r: -r["val_score"])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"baseline_search-{args.family}-{args.group}.json"
    out.write_text(json.dumps({"family": args.family, "group": args.group, "grid": grid, "base": json.loads(args.base),
                               "n_sites": {s: int(np.sum(table["split"] == s)) for s in ("train", "val")},
                               "results": rows}, indent=1) + "\n")
    print(f"\nbest on validation: {json.dumps(rows[0]['cfg'])} ({rows[0]['val_score']:.4f}); written to {out}")


if __name__ == "__main__":
    main()

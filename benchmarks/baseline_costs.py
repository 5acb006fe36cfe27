"""Training / inference cost and main test scores of every model family, from a DAG run's metrics JSONs, and
what the neural families would cost as one model per descriptor (issue 14).

The DAG trains each neural baseline as one multi-output network per site group; `--per-descriptor D` also fits
each neural family on descriptor D alone (same settings, seed 0) and reports its seconds and that times the
group's number of descriptors, the cost of training one network per descriptor as the tree baselines do.

    PYTHONPATH=src python benchmarks/baseline_costs.py --results results --per-descriptor OS
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import torch

from xasengine.config import load_config
from xasengine.models.family import FAMILIES, fit_family
from xasengine.models.targets import GROUP_TARGETS
from xasengine.models.metrics import MAIN_SCORE
from xasengine.shards import read_shards, select_rows


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--per-descriptor", metavar="DESCRIPTOR", help="time neural families on this one alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = Path(args.results)

    for group in ("nonO", "O"):
        names = GROUP_TARGETS[group]
        print(f"\n{group} sites: test scores (weighted F1 / R²), train s, inference s per 1,000 spectra\n")
        print("| model | train s | infer s/1000 | " + " | ".join(names) + " |")
        print("|---|---:|---:|" + "---:|" * len(names))
        for path in sorted(glob.glob(str(results / "metrics" / f"*-{group}.json"))):
            doc = json.loads(Path(path).read_text())
            if "train_seconds" not in doc:
                continue  # SPT metrics: its train seconds are in the model summary
            scores = [_fmt(doc["descriptors"][n][MAIN_SCORE[doc["descriptors"][n]["kind"]]]) for n in names]
            print(f"| {doc['model']} | {doc['train_seconds']:.1f} | {_fmt(doc['infer_seconds_per_1000'], 2)} | "
                  + " | ".join(scores) + " |")
        spt = results / "models" / f"spt-joint-{group}.json"
        if spt.is_file():
            print(f"| SPT joint | {json.loads(spt.read_text())['train_seconds']:.1f} | see spt-joint metrics | |")

    if args.per_descriptor:
        config = load_config(args.config)
        table = read_shards(sorted(glob.glob(str(results / "shards" / "*.h5"))))
        table = select_rows(table, table["status"] == "ok")
        print(f"\nneural families, one network per descriptor: seconds to train on {args.per_descriptor} alone\n")
        print("| model | group | one descriptor s | × descriptors | multi-output s |")
        print("|---|---|---:|---:|---:|")
        for key, family in FAMILIES.items():
            if family.driver != "neural":
                continue
            for group in ("nonO", "O"):
                started = time.perf_counter()
                fit_family(key, table, group, config["benchmark"][key], seed=0, targets=[args.per_descriptor])
                one = time.perf_counter() - started
                doc = json.loads((results / "metrics" / f"{key}-{group}.json").read_text())
                n = len(GROUP_TARGETS[group])
                print(f"| {family.label} | {group} | {one:.1f} | {one * n:.1f} ({n}) | {doc['train_seconds']:.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()

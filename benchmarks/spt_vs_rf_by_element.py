"""Where does the SPT win or lose against the random forest? Test-split scores per absorbing element (issue 4).

Reads the DAG's trained models (results/models/spt-joint-<group>.pt, rf-<group>.joblib) and shards, predicts the
test split with both, and prints weighted F1 / R² per descriptor and absorbing element, then the test sites with
the largest errors of one regression descriptor (default MOOD) for either model, so that a descriptor where the
forest wins can be traced to the sites that cost the SPT its score.

    PYTHONPATH=src python benchmarks/spt_vs_rf_by_element.py --group nonO --worst MOOD
"""

from __future__ import annotations

import argparse
import glob

import numpy as np

from xasengine.evaluate import metrics, predict_table, scored_rows
from xasengine.models.family import load_model
from xasengine.models.targets import target_kind
from xasengine.models.metrics import MAIN_SCORE
from xasengine.shards import read_shards, select_rows
from xasengine.train import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", default="results/shards/*.h5")
    parser.add_argument("--models", default="results/models")
    parser.add_argument("--group", default="nonO", choices=["nonO", "O"])
    parser.add_argument("--worst", default="MOOD", help="regression descriptor whose worst test sites are listed")
    parser.add_argument("--n-worst", type=int, default=12)
    args = parser.parse_args()

    table = read_shards(sorted(glob.glob(args.shards)), only_ok=True)
    model, meta = load_checkpoint(f"{args.models}/spt-joint-{args.group}.pt")
    forests = load_model(f"{args.models}/rf-{args.group}.joblib")
    rows, _ = scored_rows(table, meta, "test")
    test = select_rows(table, rows)
    elements = np.asarray(test["element"]).astype(str)
    spt = predict_table(model, meta, test["spectrum"], test["energy"], elements)
    rf = forests.predict(test["spectrum"], elements)

    names = [t["name"] for t in meta["targets"]]
    print(f"group {args.group}: {rows.sum()} test sites; cells are SPT / RF (weighted F1 or R², n)\n")
    print("| element | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for element in ["all", *sorted(set(elements))]:
        chosen = np.ones(len(elements), bool) if element == "all" else elements == element
        cells = []
        for name in names:
            kind = target_kind(name)
            truth = np.asarray(test["descriptors"][name], dtype=float)[chosen]
            key = MAIN_SCORE[kind]
            a = metrics(truth, spt[name]["pred"][chosen], kind)
            b = metrics(truth, rf[name][chosen], kind)
            fmt = lambda v: "–" if v is None else f"{v:.3f}"
            cells.append(f"{fmt(a[key])} / {fmt(b[key])} ({a['n']})")
        print(f"| {element} | " + " | ".join(cells) + " |")

    if args.worst in names and target_kind(args.worst) == "regression":
        truth = np.asarray(test["descriptors"][args.worst], dtype=float)
        labelled = np.isfinite(truth)
        spt_error = np.abs(spt[args.worst]["pred"] - truth)
        rf_error = np.abs(rf[args.worst] - truth)
        order = np.argsort(-np.where(labelled, np.maximum(spt_error, rf_error), -1))[: args.n_worst]
        print(f"\nLargest {args.worst} errors (either model):\n")
        print("| structure | site | element | true | SPT | RF |")
        print("|---|---:|---|---:|---:|---:|")
        for i in order:
            print(f"| {test['structure_id'][i]} | {test['site_index'][i]} | {elements[i]} | {truth[i]:.3f} | "
                  f"{spt[args.worst]['pred'][i]:.3f} | {rf[args.worst][i]:.3f} |")
        for label, error in (("SPT", spt_error), ("RF", rf_error)):
            share = np.sort(error[labelled] ** 2)[::-1]
            print(f"\n{label}: the 5 worst sites hold {share[:5].sum() / share.sum():.0%} of the squared error "
                  f"({labelled.sum()} labelled sites)")


if __name__ == "__main__":
    main()

"""Seed spread of every stochastic model family: mean ± sd of the test scores over `benchmark.seeds`, so a
difference between two models can be read against how much one model moves when only its seed changes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..atomic import write_json, write_text
from ..models.metrics import MAIN_SCORE, SECOND_SCORE


def _spread(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "n_seeds": 0}
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "n_seeds": len(values)}


def seed_summary(metrics_paths: list[str], benchmark_paths: list[str]) -> dict:
    """{models: {label: {group: {descriptor: {kind, main, second (mean/sd/n_seeds)}, train_seconds}}},
    seconds: wall time of all seed runs (Snakemake benchmark files), runs}."""
    runs: dict = {}
    for path in metrics_paths:
        doc = json.loads(Path(path).read_text())
        runs.setdefault(doc["model"], {}).setdefault(doc["group"], []).append(doc)
    models: dict = {}
    for label, groups in runs.items():
        for group, docs in groups.items():
            entry = models.setdefault(label, {}).setdefault(group, {"descriptors": {}})
            entry["seeds"] = sorted(d["seed"] for d in docs)
            entry["train_seconds"] = _spread([d["train_seconds"] for d in docs])
            entry["infer_seconds_per_1000"] = _spread([d["infer_seconds_per_1000"] for d in docs])
            for name, first in docs[0]["descriptors"].items():
                kind = first["kind"]
                entry["descriptors"][name] = {
                    "kind": kind,
                    MAIN_SCORE[kind]: _spread([d["descriptors"][name][MAIN_SCORE[kind]] for d in docs]),
                    SECOND_SCORE[kind]: _spread([d["descriptors"][name][SECOND_SCORE[kind]] for d in docs]),
                    "n": first["n"]}
    seconds = 0.0
    for path in benchmark_paths:
        with open(path, newline="") as fh:
            seconds += sum(float(row["s"]) for row in csv.DictReader(fh, delimiter="\t"))
    return {"models": models, "seconds": round(seconds, 1), "runs": len(metrics_paths)}


def _cell(spread: dict) -> str:
    return "–" if spread["mean"] is None else f"{spread['mean']:.3f} ± {spread['sd']:.3f}"


def markdown(summary: dict) -> str:
    models = summary["models"]
    groups = sorted({g for per_group in models.values() for g in per_group}, reverse=True)
    lines = ["# Seed spread of the test scores", "",
             f"{summary['runs']} runs (model × group × seed) took {summary['seconds']:.0f} s of wall time in total. "
             "Cells: mean ± sd over seeds of weighted F1 (classes) or R² (regressions).", ""]
    for group in groups:
        labels = [label for label in models if group in models[label]]
        names = list(models[labels[0]][group]["descriptors"])
        lines += [f"## {group} sites", "", "| descriptor | " + " | ".join(labels) + " |",
                  "|---|" + "---:|" * len(labels)]
        for name in names:
            cells = []
            for label in labels:
                entry = models[label][group]["descriptors"].get(name)
                cells.append("" if entry is None else _cell(entry[MAIN_SCORE[entry["kind"]]]))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("| train s | " + " | ".join(_cell(models[label][group]["train_seconds"]) for label in labels)
                     + " |")
        lines.append("")
    return "\n".join(lines)


def write_seed_summary(metrics_paths: list[str], benchmark_paths: list[str], out_json: str, out_md: str) -> None:
    summary = seed_summary(metrics_paths, benchmark_paths)
    write_json(out_json, summary)
    write_text(out_md, markdown(summary))

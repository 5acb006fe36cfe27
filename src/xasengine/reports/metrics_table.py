"""One table of test-split scores: SPT joint, SPT experts and the random forest, per descriptor and site group."""

from __future__ import annotations

from pathlib import Path

from ..atomic import write_json, write_text
from ..readers import read_json
from .figures import pyplot, save_png

MAIN_SCORE = {"classification": "f1_weighted", "regression": "r2"}


def _model_label(doc: dict, path: str) -> str:
    name = Path(path).stem
    if doc.get("model") == "RandomForest":
        return "RF"
    return "SPT expert" if name.startswith("spt-expert") else "SPT joint"


def collect(paths: list[str]) -> dict:
    """{group: {descriptor: {model: {metric: value}, 'kind': ...}}}"""
    table: dict = {}
    for path in paths:
        doc = read_json(path)
        label = _model_label(doc, path)
        for name, scores in doc["descriptors"].items():
            entry = table.setdefault(doc["group"], {}).setdefault(name, {"kind": scores["kind"]})
            entry[label] = {k: v for k, v in scores.items() if k != "kind"}
    return table


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(table: dict) -> str:
    lines = ["# Test-split scores", "",
             "Main score: weighted F1 for classification, R² for regression (accuracy / MAE in brackets). "
             "'SPT > RF' compares the joint SPT with the random forest on the main score.", ""]
    for group, descriptors in table.items():
        lines += [f"## {group} sites", "", "| descriptor | n test | SPT joint | SPT expert | RF | SPT > RF |",
                  "|---|---:|---:|---:|---:|---|"]
        for name, entry in descriptors.items():
            key = MAIN_SCORE[entry["kind"]]
            second = "accuracy" if entry["kind"] == "classification" else "mae"
            cells = []
            for model in ("SPT joint", "SPT expert", "RF"):
                s = entry.get(model)
                cells.append("" if s is None else f"{_fmt(s.get(key))} ({_fmt(s.get(second))})")
            spt, rf = entry.get("SPT joint", {}).get(key), entry.get("RF", {}).get(key)
            verdict = "–" if spt is None or rf is None else "yes" if spt > rf else "tie" if spt == rf else "**no**"
            n = entry.get("SPT joint", entry.get("RF", {})).get("n", 0)
            lines.append(f"| {name} | {n} | " + " | ".join(cells) + f" | {verdict} |")
        lines.append("")
    return "\n".join(lines)


def _plot(table: dict, path: Path) -> None:
    plt = pyplot()
    import numpy as np

    groups = list(table)
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5.5 * max(1, len(groups)), 3.2), squeeze=False)
    for ax, group in zip(axes[0], groups):
        names = list(table[group])
        x = np.arange(len(names))
        for i, model in enumerate(("SPT joint", "SPT expert", "RF")):
            vals = [table[group][n].get(model, {}).get(MAIN_SCORE[table[group][n]["kind"]]) for n in names]
            ax.bar(x + (i - 1) * 0.27, [np.nan if v is None else v for v in vals], 0.27, label=model)
        ax.set_xticks(x, names)
        ax.set_ylim(min(0, ax.get_ylim()[0]), 1)
        ax.set_title(f"{group} sites: F1 (classes) / R² (regression)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def write_metrics_table(paths: list[str], outputs: dict) -> dict:
    table = collect(paths)
    write_json(outputs["json"], table)
    _plot(table, Path(outputs["figure"]))
    write_text(outputs["table"], markdown(table))
    return table

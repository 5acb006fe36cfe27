"""The SPT against every baseline family on one split: scores per descriptor, radar charts, time table, and plain
sentences wherever a baseline leads the SPT (the paper claims the SPT leads on every descriptor)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import write_json, write_text
from ..errors import ReportError
from .figures import pyplot, save_png
from ..models.metrics import MAIN_SCORE, SECOND_SCORE
from .tables import fmt, heading, html_page, html_table, paragraph, write_csv

SCORE_NAME = {"f1_weighted": "weighted F1", "r2": "R²", "accuracy": "accuracy", "mae": "MAE"}
SPT = "SPT"


def same_dataset(docs: dict[str, dict]) -> str:
    """The one dataset hash and split every metrics file was computed on; a mix would make the comparison void."""
    hashes = {path: (doc.get("dataset_hash"), doc.get("split")) for path, doc in docs.items()}
    if len(set(hashes.values())) > 1:
        listing = "; ".join(f"{Path(p).name}: {h[0]}/{h[1]}" for p, h in hashes.items())
        raise ReportError(f"metrics come from different datasets or splits ({listing}); rerun the models")
    dataset_hash, _ = next(iter(hashes.values()))
    return dataset_hash


def read_metrics(paths: list[str]) -> dict[str, dict]:
    docs = {}
    for path in paths:
        try:
            docs[path] = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ReportError(f"cannot read metrics file {path}: {error}") from error
    return docs


def collect(paths: list[str]) -> dict:
    """{dataset_hash, models: [labels, SPT first], groups: {group: {descriptor: {kind, n, scores: {label: {...}}}}},
    timing: {label: {group: {train_seconds, infer_seconds_per_1000}}}}"""
    docs = read_metrics(paths)
    dataset_hash = same_dataset(docs)
    models: list[str] = []
    groups: dict = {}
    timing: dict = {}
    for doc in docs.values():
        label = doc["model"]
        if label not in models:
            models.append(label)
        timing.setdefault(label, {})[doc["group"]] = {k: doc.get(k) for k in ("train_seconds",
                                                                                "infer_seconds_per_1000")}
        for name, scores in doc["descriptors"].items():
            entry = groups.setdefault(doc["group"], {}).setdefault(name, {"kind": scores["kind"], "scores": {}})
            entry["n"] = scores["n"]
            entry["scores"][label] = {k: v for k, v in scores.items() if k != "kind"}
    models.sort(key=lambda label: label != SPT)
    return {"dataset_hash": dataset_hash, "models": models, "groups": groups, "timing": timing}


def _seed_sd(seeds: dict | None, label: str, group: str, name: str, key: str) -> float | None:
    try:
        return seeds["models"][label][group]["descriptors"][name][key]["sd"]
    except (KeyError, TypeError):
        return None


def shortfalls(result: dict, seeds: dict | None = None) -> list[dict]:
    """Every (group, descriptor, baseline) whose main score is at least the SPT's, with the margin."""
    found = []
    for group, descriptors in result["groups"].items():
        for name, entry in descriptors.items():
            key = MAIN_SCORE[entry["kind"]]
            spt = entry["scores"].get(SPT, {}).get(key)
            if spt is None:
                continue
            for label, scores in entry["scores"].items():
                value = scores.get(key)
                if label != SPT and value is not None and value >= spt:
                    found.append({"group": group, "descriptor": name, "model": label, "metric": key, "spt": spt,
                                  "baseline": value, "margin": value - spt,
                                  "spt_sd": _seed_sd(seeds, SPT, group, name, key),
                                  "baseline_sd": _seed_sd(seeds, label, group, name, key)})
    return found


def sentence(item: dict) -> str:
    text = (f"{item['group']} sites, {item['descriptor']}: {item['model']} "
            f"{'ties' if item['margin'] == 0 else 'leads'} the SPT by {item['margin']:.3f} "
            f"{SCORE_NAME[item['metric']]} ({item['baseline']:.3f} vs {item['spt']:.3f})")
    if item["spt_sd"] is not None and item["baseline_sd"] is not None:
        within = item["margin"] <= item["spt_sd"] + item["baseline_sd"]
        text += (f"; seed sd {item['spt_sd']:.3f} (SPT) and {item['baseline_sd']:.3f} ({item['model']}), so the gap "
                 f"is {'within' if within else 'beyond'} the seed spread")
    else:
        text += "; no seed spread yet (run `snakemake benchmark_seeds`)"
    return text + "."


def score_rows(result: dict) -> tuple[list[str], list[list]]:
    """One row per group × descriptor × model, for the CSV."""
    header = ["group", "descriptor", "kind", "n_test", "model", "main_metric", "main", "second_metric", "second"]
    rows = []
    for group, descriptors in result["groups"].items():
        for name, entry in descriptors.items():
            key, second = MAIN_SCORE[entry["kind"]], SECOND_SCORE[entry["kind"]]
            for label in result["models"]:
                scores = entry["scores"].get(label)
                if scores is not None:
                    rows.append([group, name, entry["kind"], entry["n"], label, key, scores.get(key), second,
                                 scores.get(second)])
    return header, rows


def timing_rows(result: dict) -> tuple[list[str], list[list]]:
    groups = list(result["groups"])
    header = ["model"] + [f"train s ({g})" for g in groups] + [f"inference s / 1000 spectra ({g})" for g in groups]
    rows = []
    for label in result["models"]:
        per_group = result["timing"].get(label, {})
        rows.append([label] + [per_group.get(g, {}).get("train_seconds") for g in groups]
                    + [per_group.get(g, {}).get("infer_seconds_per_1000") for g in groups])
    return header, rows


def _html(result: dict, lagging: list[dict]) -> str:
    parts = [paragraph(f"Test split of dataset {result['dataset_hash']}; every model was trained on the same "
                       "material-wise training split. Cells: weighted F1 (classes) or R² (regression), with accuracy "
                       "or MAE in brackets; bold = best main score of the row, red = a baseline at or above the SPT.")]
    for group, descriptors in result["groups"].items():
        rows, marks = [], []
        for name, entry in descriptors.items():
            key, second = MAIN_SCORE[entry["kind"]], SECOND_SCORE[entry["kind"]]
            values = [entry["scores"].get(m, {}).get(key) for m in result["models"]]
            best = max((v for v in values if v is not None), default=None)
            spt = entry["scores"].get(SPT, {}).get(key)
            cells, row_marks = [f"{name} ({SCORE_NAME[key]})", entry["n"]], ["", ""]
            for label, value in zip(result["models"], values):
                s = entry["scores"].get(label, {})
                cells.append(f"{fmt(value)} ({fmt(s.get(second))})")
                row_marks.append("best" if value is not None and value == best else
                                 "bad" if label != SPT and None not in (value, spt) and value >= spt else "")
            rows.append(cells)
            marks.append(row_marks)
        parts += [heading(f"{group} sites"), html_table(["descriptor", "n test", *result["models"]], rows, marks)]
    parts.append(heading("Where the SPT does not lead"))
    parts += [paragraph(sentence(item)) for item in lagging] or [paragraph("The SPT leads every baseline on every "
                                                                           "descriptor.")]
    header, rows = timing_rows(result)
    parts += [heading("Training and inference time (this run, seed 0)"),
              html_table(header, [[r[0]] + [fmt(v, 2) for v in r[1:]] for r in rows]),
              paragraph("Training: wall seconds of the fit (tree families: one estimator per descriptor, summed; "
                        "neural families and the SPT: one multi-output network per site group). Inference: seconds "
                        "to predict 1,000 spectra after one warm-up call, one CPU thread.")]
    return html_page("Benchmark: SPT vs baselines", parts)


def _radar(ax, names: list[str], series: dict[str, list[float]], title: str) -> None:
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    closed = np.append(angles, angles[0])
    for label, values in series.items():
        values = np.clip(np.nan_to_num(np.asarray(values, dtype=float), nan=0.0), 0, 1)
        style = dict(linewidth=2.6, color="black", zorder=5) if label == SPT else dict(linewidth=1.2, alpha=0.85)
        ax.plot(closed, np.append(values, values[0]), label=label, **style)
    ax.set_xticks(angles, names, fontsize=10)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["0.25", "0.5", "0.75", "1"], fontsize=7, color="grey")
    ax.set_title(title, fontsize=11, pad=14)


def _bars(ax, names: list[str], series: dict[str, list[float]], title: str, metric: str) -> None:
    """Fewer than three descriptors make no radar: grouped bars instead."""
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        ax.bar(np.arange(len(names)) + (i - (len(series) - 1) / 2) * width, np.nan_to_num(values, nan=0.0), width,
               label=label, color="black" if label == SPT else None)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel(metric)
    ax.set_ylim(min(0.0, float(np.nanmin([v for s in series.values() for v in s] + [0]))), 1)
    ax.set_title(title, fontsize=11)


def plot_radars(result: dict, path: str) -> None:
    """One panel per site group × task (the paper's Figure 7a/b/d/e): classification F1, regression R²."""
    plt = pyplot()
    panels = [(g, kind) for g in result["groups"] for kind in ("classification", "regression")
              if any(e["kind"] == kind for e in result["groups"][g].values())]
    cols = 2
    rows = max(1, (len(panels) + 1) // cols)
    fig = plt.figure(figsize=(6.2 * cols, 5.4 * rows))
    for i, (group, kind) in enumerate(panels):
        entries = {n: e for n, e in result["groups"][group].items() if e["kind"] == kind}
        key = MAIN_SCORE[kind]
        series = {m: [e["scores"].get(m, {}).get(key) if e["scores"].get(m, {}).get(key) is not None else np.nan
                      for e in entries.values()] for m in result["models"]}
        title = f"{group} sites: {SCORE_NAME[key]} ({'classes' if kind == 'classification' else 'regression'})"
        if len(entries) >= 3:
            _radar(fig.add_subplot(rows, cols, i + 1, projection="polar"), list(entries), series, title)
        else:
            _bars(fig.add_subplot(rows, cols, i + 1), list(entries), series, title, SCORE_NAME[key])
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=10, frameon=False)
    fig.suptitle("Test-split scores per descriptor (radius: score, 1 = perfect; R² < 0 drawn at 0)", fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    save_png(fig, path)


def write_benchmark(paths: list[str], seeds_path: str | None, outputs: dict) -> dict:
    """outputs: html, json, csv, times_csv, radar. seeds_path: benchmark_seeds.json if it exists (optional)."""
    result = collect(paths)
    seeds = json.loads(Path(seeds_path).read_text()) if seeds_path and Path(seeds_path).is_file() else None
    lagging = shortfalls(result, seeds)
    plot_radars(result, outputs["radar"])
    write_csv(outputs["csv"], *score_rows(result))
    write_csv(outputs["times_csv"], *timing_rows(result))
    write_json(outputs["json"], result | {"spt_does_not_lead": lagging,
                                          "sentences": [sentence(item) for item in lagging]})
    write_text(outputs["html"], _html(result, lagging))
    return result

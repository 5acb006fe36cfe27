"""Amorphous oxides (issue 12, the paper's Figure 3): how the crystal-trained joint SPT and the best baseline read
sites of melt-quenched glasses zero-shot, and how the SPT reads them after fine-tuning on a few cells, scored on
the held-out cells (split amorphous-test), per descriptor; plus the descriptor distributions crystalline vs
amorphous, so a reader sees how far outside the training distribution the glasses lie.

PSGO is not scored: it is the order of the crystal's point group, and a glass cell has none (every site reads 1),
so any score on it would measure nothing about the spectrum.
"""

from __future__ import annotations

import numpy as np

from ..atomic import write_json, write_text
from ..errors import ReportError
from ..models.family import load_model, score_model
from ..models.metrics import MAIN_SCORE
from ..models.targets import group_mask
from ..structures.io import AMORPHOUS_SPLITS
from .delithiation import baseline_path, best_baseline
from .figures import pyplot, save_png
from .tables import fmt, heading, html_page, html_table, paragraph

ILL_POSED = {"PSGO": "the order of the crystal's point group: a glass cell has none (P1), so every site reads 1"}
UNITS = {"NNRS": "Å", "MOOD": "Å", "NNOSM": "e"}  # the rest are counts or formal charges
BASELINE_DESCRIPTOR = {"nonO": "OS", "O": "CN"}  # which test score picks a group's best baseline
FINETUNE_SPLIT, HELD_OUT = AMORPHOUS_SPLITS


def split_counts(table: dict) -> dict:
    """Sites and cells per amorphous split and site group."""
    split = np.asarray(table["split"]).astype(str)
    ids = np.asarray(table["structure_id"]).astype(str)
    out = {}
    for name in AMORPHOUS_SPLITS:
        for group in ("nonO", "O"):
            rows = (split == name) & group_mask(table["element"], group)
            out[f"{name}/{group}"] = {"sites": int(rows.sum()), "cells": len(set(ids[rows]))}
    return out


def scores_of(model, table: dict) -> dict:
    """score_model on the held-out cells, the ill-posed descriptors left out."""
    return {name: s for name, s in score_model(model, table, HELD_OUT).items() if name not in ILL_POSED}


def distributions(table: dict, group: str) -> dict:
    """Descriptor values of the group's crystal sites (train/val/test) and amorphous sites (both splits)."""
    split = np.asarray(table["split"]).astype(str)
    rows = group_mask(table["element"], group)
    amorphous = np.isin(split, AMORPHOUS_SPLITS)
    out = {}
    for name, values in table["descriptors"].items():
        values = np.asarray(values, dtype=float)
        crystal, glass = values[rows & ~amorphous], values[rows & amorphous]
        crystal, glass = crystal[np.isfinite(crystal)], glass[np.isfinite(glass)]
        if len(crystal) and len(glass):
            out[name] = {"crystal": crystal.tolist(), "amorphous": glass.tolist()}
    return out


def amorphous_result(table: dict, crystal: dict, finetuned: dict, baselines: dict) -> dict:
    """crystal / finetuned: {group: SPT FittedModel}; baselines: {group: FittedModel or None}."""
    counts = split_counts(table)
    groups = {}
    for group, model in crystal.items():
        if counts[f"{HELD_OUT}/{group}"]["sites"] == 0:
            continue
        entry = {"zero-shot SPT": scores_of(model, table)}
        if group in finetuned:  # amorphous.finetune_cells 0: zero-shot only
            entry["fine-tuned SPT"] = scores_of(finetuned[group], table)
        if baselines.get(group) is not None:
            entry[f"zero-shot {baselines[group].label}"] = scores_of(baselines[group], table)
        tune = finetuned[group].extra.get("meta", {}).get("finetune", {}) if group in finetuned else {}
        groups[group] = {"scores": entry, "finetune": tune, "distributions": distributions(table, group)}
    if not groups:
        raise ReportError(f"no sites in split {HELD_OUT!r}: enable amorphous cells (config amorphous.enabled) and "
                          "keep at least one cell per composition out of fine-tuning")
    return {"counts": counts, "groups": groups, "ill_posed": ILL_POSED}


def _main(score: dict) -> float | None:
    return score.get(MAIN_SCORE[score["kind"]])


def plot_scores(result: dict, path: str) -> None:
    """Per group, the main score of each descriptor: zero-shot SPT, zero-shot baseline, fine-tuned SPT."""
    plt = pyplot()
    groups = list(result["groups"])
    fig, axes = plt.subplots(1, len(groups), figsize=(6.2 * len(groups), 4.2), squeeze=False)
    for ax, group in zip(axes.flat, groups):
        scores = result["groups"][group]["scores"]
        names = list(next(iter(scores.values())))
        width = 0.8 / len(scores)
        for k, (label, by_name) in enumerate(scores.items()):
            values = [_main(by_name[n]) for n in names]
            ax.bar(np.arange(len(names)) + (k - (len(scores) - 1) / 2) * width,
                   [np.nan if v is None else max(v, -1.0) for v in values], width, label=label)
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_xticks(range(len(names)), [f"{n}\n({'F1' if by_name[n]['kind'] == 'classification' else 'R²'})"
                                          for n in names], fontsize=8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("weighted F1 / R² on held-out cells (R² floored at −1)")
        ax.set_title(f"{group} sites, {result['counts'][f'{HELD_OUT}/{group}']['sites']} held-out", fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    save_png(fig, path)


def plot_distributions(result: dict, path: str) -> None:
    """Histograms of each descriptor, crystal vs amorphous sites, normalised to one."""
    plt = pyplot()
    panels = [(g, n, d) for g, entry in result["groups"].items() for n, d in entry["distributions"].items()]
    cols = 4
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, (group, name, data) in zip(axes.flat, panels):
        both = np.concatenate([data["crystal"], data["amorphous"]])
        bins = np.histogram_bin_edges(both, bins=min(30, max(5, len(np.unique(both)))))
        ax.hist(data["crystal"], bins=bins, density=True, alpha=0.6, label=f"crystal ({len(data['crystal'])})")
        ax.hist(data["amorphous"], bins=bins, density=True, alpha=0.6, label=f"amorphous ({len(data['amorphous'])})")
        ax.set_title(f"{group} {name}" + (" (ill-posed in a glass)" if name in ILL_POSED else ""), fontsize=9)
        ax.set_xlabel(f"{name} ({UNITS[name]})" if name in UNITS else name, fontsize=8)
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)


PAPER_FIGURE_3 = {"nonO": {"OS": (0.60, 0.89), "CN": (0.34, 0.53)}}  # weighted F1, zero-shot and fine-tuned


def report_html(result: dict) -> str:
    parts = [paragraph("Counts: " + "; ".join(f"{k}: {v['sites']} sites in {v['cells']} cells"
                                              for k, v in result["counts"].items()) + ".")]
    for group, entry in result["groups"].items():
        labels = list(entry["scores"])
        names = list(entry["scores"][labels[0]])
        rows = [[name, "F1" if entry["scores"][labels[0]][name]["kind"] == "classification" else "R²"]
                + [fmt(_main(entry["scores"][label][name])) for label in labels]
                + [entry["scores"][labels[0]][name].get("n_unseen_class", "")] for name in names]
        tune = entry["finetune"]
        parts += [heading(f"{group} sites"),
                  html_table(["descriptor", "score"] + labels + ["sites of a class absent from training"], rows),
                  paragraph(f"Fine-tuning: {tune['n_sites']} sites of split {FINETUNE_SPLIT}, {tune['epochs']} "
                            f"epochs at lr {tune['lr']}, {tune['seconds']} s." if tune else
                            "No fine-tuning (amorphous.finetune_cells: 0): zero-shot only.")]
        if group in PAPER_FIGURE_3:
            parts.append(paragraph("For scale, the paper's Figure 3 (its own amorphous set, non-O sites): " + "; ".join(
                f"{name} F1 {zero:.2f} zero-shot, {tuned:.2f} fine-tuned" for name, (zero, tuned)
                in PAPER_FIGURE_3[group].items()) + ". A site whose true class never occurred in crystal training "
                "counts as an error for every model."))
    parts.append(paragraph("Not scored: " + "; ".join(f"{k}, {v}" for k, v in result["ill_posed"].items()) + "."))
    return html_page("Amorphous oxides: zero-shot and fine-tuned predictions on held-out glass cells", parts)


def write_amorphous(shards: list[str], crystal: list[str], finetuned: list[str], baseline_paths: list[str],
                    benchmark_json: str, outputs: dict) -> dict:
    """outputs: json, html, scores, distributions (PNGs). crystal / finetuned: SPT checkpoints, one per group."""
    from ..readers import read_json
    from ..shards import read_shards

    table = read_shards(shards, only_ok=True)
    crystal_models = {m.group: m for m in map(load_model, crystal)}
    finetuned_models = {m.group: m for m in map(load_model, finetuned)}
    benchmark = read_json(benchmark_json)
    baselines = {}
    for group in crystal_models:
        choice = best_baseline(benchmark, group, BASELINE_DESCRIPTOR[group])
        baselines[group] = load_model(baseline_path(choice[0], baseline_paths, group)) if choice else None
    result = amorphous_result(table, crystal_models, finetuned_models, baselines)
    plot_scores(result, outputs["scores"])
    plot_distributions(result, outputs["distributions"])
    write_text(outputs["html"], report_html(result))
    write_json(outputs["json"], result)
    return result

"""The held-out LixCoO2 delithiation series: does a model trained on other cells see Co oxidise as Li leaves?

Every cell of the family (split.test_families keeps it whole in test) is a Li ordering of LiCoO2 with Li
fraction x = Li / Co (from its composition); charge balance makes the nominal Co oxidation state 4 - x (Co3+ at
x = 1, Co4+ at x = 0). For the joint SPT and for the baseline family with the best nonO OS weighted F1 in
benchmark.json, each Co site's OS class probabilities p_k give an expected OS = sum_k p_k OS_k; a cell's value is
the multiplicity-weighted mean over its Co sites, and a value per x the mean over the cells (orderings) with that
x. The geometry beside it: the mean Co-O bond length of each cell (O within CO_O_CUTOFF of every Co atom) and the
MOOD descriptor (minimum O-O distance among first-shell O) of its Co sites, so a reader sees whether the cells
themselves change with x (unrelaxed cells keep the parent's positions; CHGNet-relaxed ones do not).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import write_json, write_text
from ..errors import ReportError
from ..models.family import FAMILIES, load_model, scored_rows
from .benchmark import SPT
from .figures import pyplot, save_png
from .tables import fmt, heading, html_page, html_table, paragraph

ABSORBER = "Co"
GROUP = "nonO"
DESCRIPTOR = "OS"
CO_O_CUTOFF = 2.3  # Å: the first O shell of octahedral Co in LixCoO2 (1.9-2.0 Å), well short of the next (> 3 Å)
MIN_HALF_SPAN = 0.05  # Å: the geometry panels show at least ±0.05 Å around the data
X_LABEL = "Li fraction x in Li$_x$CoO$_2$ (Li removed →)"
MODEL_STYLES = ({"color": "black", "marker": "o"}, {"color": "tab:orange", "marker": "s"})


def best_baseline(benchmark: dict, group: str = GROUP, descriptor: str = DESCRIPTOR) -> tuple[str, float] | None:
    """(label, weighted F1) of the baseline with the highest test score on one descriptor; None if only the SPT
    was benchmarked."""
    try:
        scores = benchmark["groups"][group][descriptor]["scores"]
    except KeyError as error:
        raise ReportError(f"benchmark.json has no {group} {descriptor} scores ({error}); rerun the benchmark") from None
    ranked = sorted(((s.get("f1_weighted"), label) for label, s in scores.items()
                     if label != SPT and s.get("f1_weighted") is not None), reverse=True)
    return (ranked[0][1], float(ranked[0][0])) if ranked else None


def baseline_path(label: str, model_paths: list[str], group: str = GROUP) -> str:
    """The model file of a baseline family, by its label in benchmark.json ('MLP' -> mlp-nonO.joblib)."""
    keys = [key for key, family in FAMILIES.items() if family.label == label]
    wanted = {f"{key}-{group}.joblib" for key in keys}
    found = [p for p in model_paths if Path(p).name in wanted]
    if not found:
        raise ReportError(f"the best {group} baseline is {label}, but no {' / '.join(sorted(wanted))} among the "
                          f"model files given")
    return found[0]


def series_sites(table: dict, families: dict[str, str], family: str) -> dict:
    """The usable Co sites of the family's cells, from a site table and {structure_id: family} of its shards."""
    from ..shards import select_rows

    members = sorted(sid for sid, fam in families.items() if fam == family)
    if not members:
        raise ReportError(f"no structure of family {family!r} in the shards: the delithiation report needs the "
                          f"series (structures.library_subset including it)")
    rows = np.isin(table["structure_id"], members) & (np.asarray(table["element"]).astype(str) == ABSORBER)
    if not rows.any():
        raise ReportError(f"family {family!r} is in the shards but none of its {ABSORBER} sites has a usable spectrum")
    return select_rows(table, rows)


def li_fraction(structure) -> float:
    """x in LixCoO2: Li atoms per Co atom of the cell."""
    composition = structure.composition
    if composition[ABSORBER] == 0:
        raise ReportError(f"{structure.composition.reduced_formula}: no {ABSORBER} in a cell of the series")
    return round(float(composition["Li"] / composition[ABSORBER]), 4)


def co_o_distances(structure, cutoff: float = CO_O_CUTOFF) -> np.ndarray:
    """Every Co-O distance (Å) within cutoff of every Co atom of the cell (so symmetry copies count as often as
    they occur: the multiplicity weighting)."""
    distances = [neighbour.nn_distance for site in structure if site.specie.symbol == ABSORBER
                 for neighbour in structure.get_neighbors(site, cutoff) if neighbour.specie.symbol == "O"]
    return np.asarray(distances, dtype=np.float64)


def expected_value(probabilities: np.ndarray, classes) -> np.ndarray:
    """sum_k p_k * class_k for each row of (n, k) probabilities."""
    return np.asarray(probabilities, dtype=np.float64) @ np.asarray(classes, dtype=np.float64)


def weighted_means(values: np.ndarray, weights: np.ndarray, keys: np.ndarray) -> dict[str, float]:
    """{key: sum(w * v) / sum(w)} over the rows of each key (multiplicity-weighted per-cell means)."""
    values, weights, keys = np.asarray(values, dtype=np.float64), np.asarray(weights, np.float64), np.asarray(keys)
    return {str(k): float(np.sum(values[keys == k] * weights[keys == k]) / np.sum(weights[keys == k]))
            for k in sorted(set(keys.tolist()))}


def confusion(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Counts of symmetry-distinct sites, rows = true class, columns = predicted class."""
    labels = sorted(set(np.asarray(truth, dtype=float).tolist()) | set(np.asarray(predicted, dtype=float).tolist()))
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(truth, predicted):
        matrix[index[float(t)], index[float(p)]] += 1
    return {"labels": labels, "matrix": matrix.tolist(), "rows": "true", "columns": "predicted",
            "accuracy": float(np.trace(matrix) / matrix.sum())}


def probability_source(model) -> str:
    """What a family's class probabilities are, for the reader of the report."""
    driver = FAMILIES[model.family].driver
    if driver == "spt_family":
        calibrated = model.extra.get("meta", {}).get("temperatures")
        return "softmax, temperature-scaled on validation" if calibrated else "softmax, as trained"
    return "fraction of the trees' votes" if driver == "trees" else "softmax of the network's outputs"


def model_predictions(model, sites: dict) -> dict:
    """Class probabilities, expected and most probable OS of every site, and the confusion of the latter."""
    if model.group != GROUP or DESCRIPTOR not in model.targets:
        raise ReportError(f"{model.label} model predicts {model.targets} for group {model.group!r}, not {GROUP} "
                          f"{DESCRIPTOR}")
    spec = next(spec for spec in model.specs if spec.name == DESCRIPTOR)
    usable = scored_rows({**sites, "split": np.full(len(sites["element"]), "test")}, model, "test")
    if not usable.all():
        raise ReportError(f"the {model.label} model was not trained on {ABSORBER} spectra")
    probabilities = model.predict_proba(sites["spectrum"], sites["element"], sites["energy"])[DESCRIPTOR]
    expected = expected_value(probabilities, spec.classes)
    predicted = spec.decode(probabilities.argmax(axis=1))
    return {"label": model.label, "family": model.family, "classes": list(spec.classes),
            "probabilities": probabilities, "expected": expected, "predicted": predicted,
            "probability_source": probability_source(model),
            "confusion": confusion(sites["descriptors"][DESCRIPTOR], predicted)}


def _per_x(cells: list[dict], key) -> dict[float, dict]:
    """{x: {mean, min, max, n_cells}} of one per-cell quantity over the cells (orderings) with that x."""
    out = {}
    for x in sorted({c["x"] for c in cells}, reverse=True):
        values = np.array([key(c) for c in cells if c["x"] == x], dtype=np.float64)
        out[x] = {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
                  "n_cells": int(values.size)}
    return out


def trend_sentence(label: str, per_x: dict[float, dict]) -> str:
    """Whether the mean expected OS rises as x falls (x = 1 -> 0), in one plain sentence."""
    xs = sorted(per_x, reverse=True)
    means = [per_x[x]["mean"] for x in xs]
    steps = np.diff(means)
    span = f"from {means[0]:.3f} at x = {xs[0]:g} to {means[-1]:.3f} at x = {xs[-1]:g}"
    if len(means) < 2:
        return f"{label}: only one Li fraction (x = {xs[0]:g}), no trend to judge."
    if (steps > 0).all():
        return f"{label}: the mean expected Co OS rises monotonically as Li is removed, {span}."
    falls = [f"x = {xs[i]:g} → {xs[i + 1]:g} ({means[i]:.3f} → {means[i + 1]:.3f})" for i in np.where(steps < 0)[0]]
    if not falls:
        return f"{label}: the mean expected Co OS never falls as Li is removed but is flat in places, {span}."
    return f"{label}: the mean expected Co OS is not monotonic in x: it falls at {'; '.join(falls)} ({span})."


def delithiation(sites: dict, models: list, records: dict, family: str, baseline: dict | None = None,
                 cutoff: float = CO_O_CUTOFF) -> dict:
    """All numbers of the report. sites: the series' Co sites (series_sites); models: fitted models (SPT first);
    records: {structure_id: StructureRecord} of the series' cells."""
    sids = np.asarray(sites["structure_id"]).astype(str)
    missing = sorted(set(sids) - set(records))
    if missing:
        raise ReportError(f"no structure record for {len(missing)} cells of {family} (first: {missing[0]})")
    multiplicity = np.asarray(sites["multiplicity"], dtype=np.float64)
    truth = np.asarray(sites["descriptors"][DESCRIPTOR], dtype=np.float64)
    mood = np.asarray(sites["descriptors"]["MOOD"], dtype=np.float64)
    predictions = [model_predictions(model, sites) for model in models]
    true_mean = weighted_means(truth, multiplicity, sids)
    mood_mean = weighted_means(mood, multiplicity, sids)
    expected_mean = [weighted_means(p["expected"], multiplicity, sids) for p in predictions]
    cells = []
    for sid in sorted(set(sids), key=lambda s: (-li_fraction(records[s].structure), s)):
        structure = records[sid].structure
        bonds = co_o_distances(structure, cutoff)
        x = li_fraction(structure)
        cells.append({"structure_id": sid, "formula": structure.composition.reduced_formula, "x": x,
                      "nominal_os": round(4.0 - x, 4), "true_mean_os": true_mean[sid],
                      "relaxed": bool(records[sid].relaxation),
                      "n_co_sites": int((sids == sid).sum()),
                      "expected_os": {p["label"]: means[sid] for p, means in zip(predictions, expected_mean)},
                      "co_o_mean": float(bonds.mean()) if bonds.size else None,
                      "co_o_min": float(bonds.min()) if bonds.size else None,
                      "co_o_max": float(bonds.max()) if bonds.size else None, "n_co_o_bonds": int(bonds.size),
                      "mood_mean": mood_mean[sid]})
    site_rows = []
    for i in range(len(sids)):
        row = {"structure_id": sids[i], "site_index": int(sites["site_index"][i]), "multiplicity": int(multiplicity[i]),
               "x": li_fraction(records[sids[i]].structure), "true_os": float(truth[i]),
               "mood": None if np.isnan(mood[i]) else float(mood[i]), "models": {}}
        for p in predictions:
            row["models"][p["label"]] = {
                "probabilities": {f"{c:g}": float(v) for c, v in zip(p["classes"], p["probabilities"][i])},
                "expected_os": float(p["expected"][i]), "predicted_os": float(p["predicted"][i])}
        site_rows.append(row)
    per_x = {p["label"]: _per_x(cells, lambda c, label=p["label"]: c["expected_os"][label]) for p in predictions}
    # mean class probabilities per x (multiplicity-weighted over every Co site of the cells with that x)
    xs_of_site = np.array([r["x"] for r in site_rows])
    probabilities_per_x = {p["label"]: {f"{x:g}": {f"{c:g}": float(np.average(p["probabilities"][xs_of_site == x, k],
                                                                             weights=multiplicity[xs_of_site == x]))
                                                   for k, c in enumerate(p["classes"])}
                                        for x in sorted(set(xs_of_site.tolist()), reverse=True)}
                           for p in predictions}
    co_o = [c["co_o_mean"] for c in cells if c["co_o_mean"] is not None]
    return {
        "family": family, "absorber": ABSORBER, "descriptor": DESCRIPTOR, "co_o_cutoff": cutoff,
        "models": [{"label": p["label"], "family": p["family"], "classes": p["classes"],
                    "probability_source": p["probability_source"]} for p in predictions],
        "baseline_choice": baseline,
        "n_cells": len(cells), "n_sites": len(site_rows),
        "per_x": {label: {f"{x:g}": v | {"nominal_os": round(4.0 - x, 4)} for x, v in values.items()}
                  for label, values in per_x.items()},
        "class_probabilities_per_x": probabilities_per_x,
        "true_mean_os_per_x": {f"{x:g}": v for x, v in _per_x(cells, lambda c: c["true_mean_os"]).items()},
        "co_o_per_x": {f"{x:g}": v for x, v in _per_x([c for c in cells if c["co_o_mean"] is not None],
                                                       lambda c: c["co_o_mean"]).items()},
        "mood_per_x": {f"{x:g}": v for x, v in _per_x(cells, lambda c: c["mood_mean"]).items()},
        "co_o_spread": float(max(co_o) - min(co_o)) if co_o else None,
        "mood_spread": float(np.nanmax([c["mood_mean"] for c in cells]) - np.nanmin([c["mood_mean"] for c in cells])),
        "trend": {label: trend_sentence(label, values) for label, values in per_x.items()},
        "confusion": {p["label"]: p["confusion"] for p in predictions},
        "cells": cells, "sites": site_rows,
    }


def _xs(per_x: dict) -> np.ndarray:
    return np.array([float(x) for x in per_x])


def plot_oxidation(result: dict, path: str) -> None:
    """Left: expected Co OS per cell (points) and per x (line) of each model, with the nominal 4 - x line.
    Right (one panel per model): mean class probabilities per x."""
    plt = pyplot()
    labels = [m["label"] for m in result["models"]]
    fig, axes = plt.subplots(1, 1 + len(labels), figsize=(5.2 + 4.2 * len(labels), 5.0), squeeze=False)
    ax = axes[0, 0]
    grid = np.linspace(0, 1, 11)
    ax.plot(grid, 4 - grid, color="grey", linestyle="--", linewidth=1.5, label="nominal Co OS = 4 − x")
    for k, (label, style) in enumerate(zip(labels, MODEL_STYLES)):
        per_x = result["per_x"][label]
        xs = _xs(per_x)
        ax.plot(xs, [v["mean"] for v in per_x.values()], color=style["color"], marker=style["marker"],
                linewidth=1.8, label=f"{label}: mean over cells")
        offset = (k - (len(labels) - 1) / 2) * 0.012  # side by side, so coincident cells stay visible
        ax.scatter([c["x"] + offset for c in result["cells"]], [c["expected_os"][label] for c in result["cells"]],
                   color=style["color"], marker=style["marker"], s=14, alpha=0.35, label=f"{label}: one cell")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("expected Co oxidation state Σ p_k·OS_k")
    ax.set_xlim(1.06, -0.06)  # Li removed from left to right
    ax.set_title("Co oxidation state vs x (multiplicity-weighted)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    for ax, label in zip(axes[0, 1:], labels):
        per_x = result["class_probabilities_per_x"][label]
        xs = _xs(per_x)
        for c in next(iter(per_x.values())):
            ax.plot(xs, [v[c] for v in per_x.values()], marker="o", markersize=4, label=f"Co{float(c):g}+" if float(c) > 0 else f"Co{float(c):g}")
        ax.set_xlabel(X_LABEL)
        ax.set_ylabel("mean class probability")
        ax.set_xlim(1.06, -0.06)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{label}: OS class probabilities", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="OS class", title_fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def plot_confusion(result: dict, path: str) -> None:
    plt = pyplot()
    labels = [m["label"] for m in result["models"]]
    fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 3.9), squeeze=False)
    for ax, label in zip(axes[0], labels):
        conf = result["confusion"][label]
        matrix = np.asarray(conf["matrix"])
        ax.imshow(matrix, cmap="Blues", vmin=0)
        names = [f"{c:g}" for c in conf["labels"]]
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        for (i, j), n in np.ndenumerate(matrix):
            ax.text(j, i, str(n), ha="center", va="center", color="white" if n > matrix.max() / 2 else "black")
        ax.set_xlabel("predicted Co OS (most probable class)")
        ax.set_ylabel("true Co OS (bond valence)")
        ax.set_title(f"{label}: accuracy {conf['accuracy']:.2f} ({matrix.sum()} sites)", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def plot_geometry(result: dict, path: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    cells = [c for c in result["cells"] if c["co_o_mean"] is not None]
    for ax, key, per_x_key, ylabel, title in (
            (axes[0], "co_o_mean", "co_o_per_x", "mean Co–O bond length (Å)",
             f"Co–O within {result['co_o_cutoff']:g} Å (spread {fmt(result['co_o_spread'], 4)} Å)"),
            (axes[1], "mood_mean", "mood_per_x", "MOOD of Co sites (Å)",
             f"MOOD: min O–O in the Co shell (spread {fmt(result['mood_spread'], 4)} Å)")):
        per_x = result[per_x_key]
        ax.scatter([c["x"] for c in cells], [c[key] for c in cells], color="tab:blue", alpha=0.4, s=16,
                   label="one cell")
        ax.plot(_xs(per_x), [v["mean"] for v in per_x.values()], color="black", marker="o", label="mean over cells")
        ax.set_xlabel(X_LABEL)
        ax.set_ylabel(ylabel)
        ax.set_xlim(1.06, -0.06)
        values = [c[key] for c in cells] + [v["mean"] for v in per_x.values()]
        middle, half = (max(values) + min(values)) / 2, max((max(values) - min(values)) * 0.6, MIN_HALF_SPAN)
        ax.set_ylim(middle - half, middle + half)  # round-off (1e-10 Å) of unrelaxed cells is drawn flat
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def geometry_sentence(result: dict) -> str:
    spread = result["co_o_spread"]
    relaxed = sum(c["relaxed"] for c in result["cells"])
    text = (f"Mean Co–O bond length per cell (O within {result['co_o_cutoff']:g} Å of each Co): spread across the "
            f"{result['n_cells']} cells {fmt(spread, 4)} Å; MOOD spread {fmt(result['mood_spread'], 4)} Å. "
            f"{relaxed} of {result['n_cells']} cells are CHGNet-relaxed.")
    if spread is not None and spread < 1e-3:
        text += (" The cells keep the parent's ideal positions, so the spectra differ only through which Li sites "
                 "are empty, not through Co–O bond lengths.")
    return text


def report_html(result: dict) -> str:
    labels = [m["label"] for m in result["models"]]
    header = ["x", "cells", "nominal Co OS (4 − x)", "mean true OS (labels)"] + [
        f"{label}: mean expected OS (min–max)" for label in labels]
    rows = []
    for x, nominal in ((x, v["nominal_os"]) for x, v in result["per_x"][labels[0]].items()):
        row = [x, result["per_x"][labels[0]][x]["n_cells"], f"{nominal:.2f}",
               fmt(result["true_mean_os_per_x"][x]["mean"])]
        for label in labels:
            v = result["per_x"][label][x]
            row.append(f"{v['mean']:.3f} ({v['min']:.3f}–{v['max']:.3f})")
        rows.append(row)
    geometry_rows = [[x, fmt(result["co_o_per_x"].get(x, {}).get("mean"), 4), fmt(result["mood_per_x"][x]["mean"], 4)]
                     for x in result["mood_per_x"]]
    choice = result["baseline_choice"]
    models_text = ("Models: " + "; ".join(f"{m['label']} ({m['probability_source']})" for m in result["models"])
                   + "." + (f" {choice['label']} is the baseline with the highest nonO OS weighted F1 in "
                            f"benchmark.json ({choice['f1_weighted']:.3f})." if choice else
                            " No baseline was benchmarked."))
    conf = [f"{label}: {result['confusion'][label]['accuracy']:.2f} of {result['n_sites']} Co sites in the most "
            "probable OS class" for label in labels]
    return html_page(f"Delithiation series {result['family']}: predicted Co oxidation state vs x", [
        paragraph(f"{result['n_cells']} held-out cells, {result['n_sites']} symmetry-distinct Co sites. Expected OS "
                  "= Σ p_k·OS_k per site, multiplicity-weighted per cell, averaged over the cells (Li orderings) "
                  "of each x."),
        paragraph(models_text),
        html_table(header, rows),
        *(paragraph(result["trend"][label]) for label in labels),
        paragraph("Confusion (most probable class vs bond-valence label): " + "; ".join(conf) + "."),
        heading("Geometry"),
        html_table(["x", "mean Co–O (Å)", "mean MOOD (Å)"], geometry_rows),
        paragraph(geometry_sentence(result)),
    ])


def write_delithiation(shards: list[str], spt_checkpoint: str, baseline_paths: list[str], benchmark_json: str,
                       structure_paths: list[str], outputs: dict, family: str) -> dict:
    """outputs: json, html, oxidation, confusion, geometry (PNGs)."""
    from ..readers import read_json
    from ..shards import read_shards, structure_families
    from ..structures.io import load_record

    sites = series_sites(read_shards(shards, only_ok=True), structure_families(shards), family)
    records = {r.id: r for r in map(load_record, structure_paths) if r.family == family}
    choice = best_baseline(read_json(benchmark_json))
    models = [load_model(spt_checkpoint)]
    baseline = None
    if choice:
        models.append(load_model(baseline_path(choice[0], baseline_paths)))
        baseline = {"label": choice[0], "f1_weighted": choice[1]}
    result = delithiation(sites, models, records, family, baseline)
    plot_oxidation(result, outputs["oxidation"])
    plot_confusion(result, outputs["confusion"])
    plot_geometry(result, outputs["geometry"])
    write_text(outputs["html"], report_html(result))
    write_json(outputs["json"], result)
    return result

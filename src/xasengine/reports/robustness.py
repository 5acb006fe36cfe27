"""How the test scores fall when the test spectra look more like measured ones: Gaussian noise scaled to each
spectrum's edge step, a misaligned energy axis (E0 off by ± a few eV), and extra Gaussian broadening.

Every model is trained on clean FEFF spectra; only its test inputs are perturbed, so level 0 of every sweep is
the clean test set and reproduces the scores of the model's metrics file exactly.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from ..atomic import write_json
from ..errors import ReportError
from ..models.family import load_model, score_predictions, scored_rows
from .benchmark import SCORE_NAME
from .figures import pyplot, save_png
from ..models.metrics import MAIN_SCORE
from .tables import write_csv

SWEEP_UNITS = {"noise": "σ / edge step", "shift": "energy shift (eV)", "broadening": "extra Gaussian FWHM (eV)"}


def edge_steps(spectra: np.ndarray) -> np.ndarray:
    """Each gridded spectrum's jump: mean of its last fifth minus mean of its first tenth (≈1 once normalised,
    but measured per spectrum so the noise scales with what each spectrum actually shows)."""
    n = spectra.shape[1]
    step = spectra[:, -max(1, n // 5):].mean(axis=1) - spectra[:, : max(1, n // 10)].mean(axis=1)
    return np.abs(step)


def add_noise(spectra: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(spectra.shape) * (level * edge_steps(spectra))[:, None]
    return (spectra + noise).astype(np.float32)


def shift_energy(spectra: np.ndarray, grid: np.ndarray, shift_ev: float) -> np.ndarray:
    """The spectrum as it would look with its E0 misplaced by shift_ev: features move by +shift_ev on the grid;
    the ends are held at their edge values."""
    if shift_ev == 0:
        return spectra.copy()
    return np.stack([np.interp(grid - shift_ev, grid, row) for row in spectra]).astype(np.float32)


def broaden(spectra: np.ndarray, grid: np.ndarray, fwhm_ev: float) -> np.ndarray:
    """Convolve with a unit-area Gaussian of this FWHM (edge-padded so the ends keep their level)."""
    if fwhm_ev == 0:
        return spectra.copy()
    step = float(np.mean(np.diff(grid)))
    sigma = fwhm_ev / (2 * np.sqrt(2 * np.log(2))) / step  # in grid points
    half = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(spectra, ((0, 0), (half, half)), mode="edge")
    return np.stack([np.convolve(row, kernel, mode="valid") for row in padded]).astype(np.float32)


def sweep_levels(cfg: dict) -> dict[str, list[float]]:
    """The levels of each sweep, 0 first; shifts both ways. Negative levels are refused (also by the schema)."""
    for key in ("noise_levels", "shift_ev", "broadening_ev"):
        bad = [v for v in cfg[key] if v < 0]
        if bad:
            raise ReportError(f"reports.{key} must be >= 0, got {bad}")
    shifts = sorted({0.0, *cfg["shift_ev"], *(-v for v in cfg["shift_ev"])})
    return {"noise": sorted({0.0, *map(float, cfg["noise_levels"])}), "shift": shifts,
            "broadening": sorted({0.0, *map(float, cfg["broadening_ev"])})}


def perturb(kind: str, spectra: np.ndarray, grid: np.ndarray, level: float, seed: int) -> np.ndarray:
    if kind == "noise":
        return add_noise(spectra, level, np.random.default_rng([seed, int(round(level * 1e6))]))
    if kind == "shift":
        return shift_energy(spectra, grid, level)
    if kind == "broadening":
        return broaden(spectra, grid, level)
    raise ReportError(f"unknown perturbation {kind!r}")


def model_sweeps(model, table: dict, levels: dict[str, list[float]], seed: int) -> dict:
    """{sweep: [{level, descriptors: {name: scores}}]} for one model on its group's test rows."""
    rows = scored_rows(table, model, "test")
    spectra = np.asarray(table["spectrum"], dtype=np.float32)[rows]
    energy = np.asarray(table["energy"], dtype=np.float32)[rows]
    elements = np.asarray(table["element"]).astype(str)[rows]
    if len(spectra) == 0:
        return {kind: [] for kind in levels}
    grid = energy[0].astype(np.float64)  # the relative grid is the same for every site of a group
    if not np.allclose(energy, energy[0]):
        raise ReportError("test spectra of one group are on different energy grids; cannot shift them alike")
    result = {}
    for kind, values in levels.items():
        result[kind] = []
        for level in values:
            perturbed = perturb(kind, spectra, grid, level, seed)
            predictions = model.predict(perturbed, elements, energy)
            result[kind].append({"level": level, "descriptors": score_predictions(model, table, rows, predictions)})
    return result


def robustness(model_paths: list[str], table: dict, cfg: dict) -> dict:
    levels = sweep_levels(cfg)
    started = time.perf_counter()
    models = {}
    for path in tqdm(model_paths, desc="robustness", unit="model"):
        model = load_model(path)
        models.setdefault(model.group, {})[model.label] = model_sweeps(model, table, levels, cfg["seed"])
    return {"levels": levels, "seed": cfg["seed"], "groups": models,
            "seconds": round(time.perf_counter() - started, 1)}


def _rows(result: dict) -> tuple[list[str], list[list]]:
    header = ["group", "model", "sweep", "level", "descriptor", "metric", "score"]
    rows = []
    for group, models in result["groups"].items():
        for label, sweeps in models.items():
            for kind, points in sweeps.items():
                for point in points:
                    for name, scores in point["descriptors"].items():
                        key = MAIN_SCORE[scores["kind"]]
                        rows.append([group, label, kind, point["level"], name, key, scores.get(key)])
    return header, rows


R2_FLOOR = -1.0  # below it a model predicts worse than the mean by far; a deeper axis hides every other line


def _clip_r2_axis(ax) -> str:
    """Keep an R² panel readable when one model collapses (R² of -10⁵ flattens the rest): floor the axis and
    name what fell through it."""
    finite = [line for line in ax.lines if np.isfinite(line.get_ydata()).any()]
    fallen = [(line.get_label(), np.nanmin(line.get_ydata())) for line in finite
              if np.nanmin(line.get_ydata()) < R2_FLOOR]
    if not fallen:
        return ""
    top = max(1.03, max(np.nanmax(line.get_ydata()) for line in finite))
    ax.set_ylim(R2_FLOOR - 0.05, min(top, 1.03))
    return "below the axis: " + ", ".join(f"{label} (min {low:.3g})" for label, low in fallen)


def plot_sweep(result: dict, kind: str, path: str) -> None:
    """A grid of panels, one per group × descriptor, one line per model (the SPT black and thick)."""
    plt = pyplot()
    panels = [(g, name, scores["kind"]) for g, models in result["groups"].items()
              for name, scores in next(iter(models.values()))[kind][0]["descriptors"].items()]
    cols = 4
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.1 * rows), squeeze=False)
    for ax, (group, name, target_kind) in zip(axes.flat, panels):
        key = MAIN_SCORE[target_kind]
        for label, sweeps in result["groups"][group].items():
            points = sweeps[kind]
            values = [p["descriptors"][name].get(key) for p in points]
            style = dict(color="black", linewidth=2.4, zorder=5) if label == "SPT" else dict(linewidth=1.2)
            ax.plot([p["level"] for p in points], [np.nan if v is None else v for v in values], marker="o",
                    markersize=3, label=label, **style)
        note = ""
        if key == "f1_weighted":
            ax.set_ylim(-0.03, 1.03)
        else:
            note = _clip_r2_axis(ax)
        if not ax.lines or all(np.isnan(line.get_ydata()).all() for line in ax.lines):
            ax.text(0.5, 0.5, "no score: too few or constant\ntest labels", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
        ax.set_title(f"{group} sites: {name}" + (f"\n{note}" if note else ""), fontsize=10 if not note else 8)
        ax.set_xlabel(SWEEP_UNITS[kind], fontsize=9)
        ax.set_ylabel(SCORE_NAME[key], fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=10, frameon=False)
    fig.suptitle(f"Test score vs {SWEEP_UNITS[kind]} (models trained on clean spectra)", fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    save_png(fig, path)


def write_robustness(shards: list[str], model_paths: list[str], cfg: dict, outputs: dict) -> dict:
    """outputs: json, csv, noise, shift, broadening (PNGs)."""
    from ..shards import read_shards

    result = robustness(model_paths, read_shards(shards, only_ok=True), cfg)
    for kind in ("noise", "shift", "broadening"):
        plot_sweep(result, kind, outputs[kind])
    write_csv(outputs["csv"], *_rows(result))
    write_json(outputs["json"], result)
    return result

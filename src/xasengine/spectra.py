"""Spectrum processing shared by simulated (xmu.dat) and measured (XDI, two-column) data:
E0 from the maximum of dmu/dE, edge-step normalisation, interpolation onto a grid relative to E0."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SpectrumError
from .readers import read_text


def edge_grid(spectra_cfg: dict, element: str, edge: str) -> np.ndarray:
    """The relative-energy grid of one absorption edge (per-edge override or the common grid)."""
    grid = dict(spectra_cfg["grid"])
    grid.update(spectra_cfg.get("grid_overrides", {}).get(f"{element}-{edge}", {}))
    return np.linspace(grid["start"], grid["stop"], grid["points"])


def damp_white_line(mu, fraction):
    """Pull the part of a normalised spectrum above the edge step towards it: mu - fraction (mu - 1)+. FEFF's white
    line is ~1.5x the measured one (benchmarks/README.md, "SPT on measured spectra"); numpy arrays and torch
    tensors alike, so the forest screening and the SPT's training degrade spectra by one formula."""
    return mu - fraction * (mu - 1.0).clip(min=0.0)


def check_spectrum(energy: np.ndarray, mu: np.ndarray) -> None:
    if energy.ndim != 1 or energy.shape != mu.shape:
        raise SpectrumError(f"energy and mu must be 1-D of equal length (got {energy.shape} and {mu.shape})")
    if energy.size < 10:
        raise SpectrumError(f"spectrum has only {energy.size} points; need at least 10")
    if not (np.all(np.isfinite(energy)) and np.all(np.isfinite(mu))):
        raise SpectrumError("spectrum contains NaN or infinite values")
    if np.any(np.diff(energy) <= 0):
        raise SpectrumError("energy is not strictly increasing (unsorted or repeated points)")


def find_e0(energy: np.ndarray, mu: np.ndarray, smooth_ev: float = 0.0) -> float:
    """Energy of the largest dmu/dE, refined by a parabola through the maximum and its neighbours."""
    fine = np.arange(energy[0], energy[-1], 0.05)
    mu_fine = np.interp(fine, energy, mu)
    if smooth_ev > 0:
        width = max(1, int(round(smooth_ev / 0.05)))
        kernel = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
        mu_fine = np.convolve(np.pad(mu_fine, 3 * width, mode="edge"), kernel / kernel.sum(), mode="valid")
    deriv = np.gradient(mu_fine, fine)
    i = int(np.clip(np.argmax(deriv), 1, len(fine) - 2))
    y0, y1, y2 = deriv[i - 1 : i + 2]
    denom = y0 - 2 * y1 + y2
    shift = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
    return float(fine[i] + np.clip(shift, -1, 1) * 0.05)


def _fit(energy, mu, lo, hi, degree):
    mask = (energy >= lo) & (energy <= hi)
    if mask.sum() < 3:
        return None
    return np.polyfit(energy[mask], mu[mask], degree)


def normalize(energy: np.ndarray, mu: np.ndarray, e0: float, pre_edge, post_edge) -> tuple[np.ndarray, float]:
    """(mu - pre-edge line) / edge step, the step taken at E0 between the pre-edge line and the post-edge mean.

    The post-edge is a constant, not a line: simulated XANES ends ~50 eV above E0, and a line fitted
    through so few oscillations extrapolates badly back to E0."""
    pre = _fit(energy, mu, e0 + pre_edge[0], e0 + pre_edge[1], 1)
    if pre is None:  # too little pre-edge (short simulated range): use the first points as a flat baseline
        pre = np.array([0.0, float(np.mean(mu[: max(3, len(mu) // 20)]))])
    post = _fit(energy, mu, e0 + post_edge[0], e0 + post_edge[1], 0)
    if post is None:
        raise SpectrumError(
            f"no post-edge data in E0{post_edge[0]:+g}..{post_edge[1]:+g} eV to set the edge step (spectrum ends "
            f"{energy[-1] - e0:+.1f} eV above E0)"
        )
    step = float(np.polyval(post, e0) - np.polyval(pre, e0))
    if not step > 0:
        raise SpectrumError(f"edge step is not positive ({step:.3g}); is this an absorption edge?")
    return (mu - np.polyval(pre, energy)) / step, step


def to_grid(energy: np.ndarray, norm_mu: np.ndarray, e0: float, grid: np.ndarray) -> np.ndarray:
    rel = energy - e0
    if rel[0] > grid[0] + 1e-6 or rel[-1] < grid[-1] - 1e-6:
        raise SpectrumError(
            f"spectrum covers E0{rel[0]:+.1f}..{rel[-1]:+.1f} eV but the grid needs "
            f"E0{grid[0]:+.1f}..{grid[-1]:+.1f} eV"
        )
    return np.interp(grid, rel, norm_mu)


def process(energy, mu, grid: np.ndarray, spectra_cfg: dict, smooth_ev: float = 0.0) -> dict:
    """Raw spectrum -> E0, edge step and the gridded normalised spectrum; SpectrumError when unusable."""
    energy = np.asarray(energy, dtype=float)
    mu = np.asarray(mu, dtype=float)
    check_spectrum(energy, mu)
    e0 = find_e0(energy, mu, smooth_ev)
    norm, step = normalize(energy, mu, e0, spectra_cfg["pre_edge"], spectra_cfg["post_edge"])
    return {"e0": e0, "edge_step": step, "grid": grid, "spectrum": to_grid(energy, norm, e0, grid)}


def _read_columns(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, int], dict[str, str]]:
    """Energy, numeric block, XDI column map (lower-case name -> index) and header of a spectrum file."""
    path = Path(path)
    if not path.exists():
        raise SpectrumError(f"spectrum file not found: {path}")
    header: dict[str, str] = {}
    columns: dict[str, int] = {}
    lines = read_text(path).splitlines()
    for line in lines:
        if not line.startswith("#"):
            continue
        body = line.lstrip("#").strip()
        if ":" in body and not body.startswith("/"):
            key, value = (s.strip() for s in body.split(":", 1))
            header[key] = value
            if key.lower().startswith("column."):
                columns[value.split()[0].lower()] = int(key.split(".")[1]) - 1
    try:
        data = np.loadtxt(path, comments="#", ndmin=2)
    except ValueError as exc:
        raise SpectrumError(f"{path}: cannot read numeric columns ({exc})") from exc
    if data.shape[0] == 0 or data.shape[1] < 2:
        raise SpectrumError(f"{path}: need at least two numeric columns (energy, mu)")
    return data[:, columns.get("energy", 0)], data, columns, header


def _absorbance(data: np.ndarray, columns: dict[str, int], incident: str, transmitted: str) -> np.ndarray:
    """mu = ln(incident / transmitted) of two XDI intensity channels."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(data[:, columns[incident]] / data[:, columns[transmitted]])


def read_measured(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """XDI (transmission mu = ln(i0/itrans), or a mu column) or two-column text; returns energy, mu, header."""
    energy, data, columns, header = _read_columns(path)
    if "mu" in columns:
        mu = data[:, columns["mu"]]
    elif "i0" in columns and "itrans" in columns:
        mu = _absorbance(data, columns, "i0", "itrans")
    elif "mutrans" in columns:
        mu = data[:, columns["mutrans"]]
    else:
        mu = data[:, 1]
    return energy, mu, header


def read_reference(path: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Energy and mu of the reference foil recorded behind the sample (XDI irefer), or None without one.

    The foil's edge is the beamline's own energy calibration: chemical shifts of a measured edge are only
    meaningful against it, since monochromator offsets of several eV between beamtimes are common.
    """
    energy, data, columns, header = _read_columns(path)
    has_foil = header.get("Sample.reference", "none").strip().lower() not in ("", "none")
    if not (has_foil and "itrans" in columns and "irefer" in columns):
        return None
    return energy, _absorbance(data, columns, "itrans", "irefer")

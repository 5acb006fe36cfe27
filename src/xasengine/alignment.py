"""Spectrum representations that carry across from FEFF to beamline data (domain alignment, issue 16).

The engine's default grid is relative to each spectrum's own E0, which throws away the chemical shift (the edge
moves to higher energy with oxidation state) and leaves only the shape, where FEFF and experiment differ most (the
FEFF white line is ~1.5x too high). The alternatives studied in benchmarks/domain_alignment.py:

- `foil` axis: energy relative to the element's metal edge, FEFF's metal for simulated spectra and the tabulated
  edge for measured ones (calibrate() puts the foil's first inflection there), so the chemical shift is kept;
- cumulative integral of the normalised mu (FeatureXAS), which turns a narrow peak into a step a shift moves less;
- training-time augmentation: Gaussian broadening, white-line damping, small shift and stretch of the axis.
"""

from __future__ import annotations

import numpy as np

from .spectra import damp_white_line

# First inflection (eV) of FEFF10's K edge of each metal with the `default` preset (fcc cells; Co and Ni are the
# library's co-fcc / ni-fcc sites, Mn is fcc gamma-Mn a = 3.862 A run for this table). Measured foils sit at the
# tabulated edge (Mn 6539.0, Co 7709.0, Ni 8333.0): FEFF is 7-11 eV higher.
FEFF_METAL_EDGE_EV = {"Mn": 6546.48, "Co": 7719.60, "Ni": 8342.33}
FOIL_GRID = (-12.0, 50.0, 128)  # eV relative to the metal edge
HALF_STEP = 0.5  # the edge position: first energy where the normalised mu reaches half the step


def foil_grid() -> np.ndarray:
    return np.linspace(*FOIL_GRID)


def edge_position(energy: np.ndarray, norm: np.ndarray, after: float | None = None) -> float:
    """First energy (linear interpolation) where normalised mu crosses HALF_STEP; robust where max dmu/dE jumps
    between white-line shoulders (the shared Mn2O3 scans: 9.9-13.3 eV above the foil)."""
    e, y = np.asarray(energy, float), np.asarray(norm, float)
    start = 0 if after is None else int(np.searchsorted(e, after))
    above = np.flatnonzero(y[start:] >= HALF_STEP)
    if not above.size:
        return float("nan")
    i = start + int(above[0])
    if i == 0:
        return float(e[0])
    return float(e[i - 1] + (HALF_STEP - y[i - 1]) * (e[i] - e[i - 1]) / (y[i] - y[i - 1]))


def on_foil_axis(energy: np.ndarray, norm: np.ndarray, metal_edge: float, grid: np.ndarray) -> np.ndarray:
    """Normalised mu on the grid relative to the metal edge (flat extension past the data's ends)."""
    return np.interp(grid, np.asarray(energy, float) - metal_edge, norm)


def cumulative(spectra: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Running integral of normalised mu over the grid (eV), per spectrum."""
    spectra = np.atleast_2d(spectra)
    step = np.gradient(grid)
    return np.cumsum(spectra * step, axis=1)


def augment(energy: np.ndarray, norm: np.ndarray, e0: float, rng: np.random.Generator, broaden=(0.5, 2.5),
            damping=(0.5, 1.0), shift=1.0, stretch=0.05) -> tuple[np.ndarray, np.ndarray]:
    """One randomly degraded copy of a normalised spectrum, as a beamline would record it: Gaussian broadening
    (sigma eV), white line damped towards the step (factor), axis shifted (eV) and stretched about E0."""
    e = np.asarray(energy, float)
    fine = np.arange(e[0], e[-1], 0.1)
    y = np.interp(fine, e, norm)
    sigma = rng.uniform(*broaden)
    half = int(4 * sigma / 0.1)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * 0.1 / sigma) ** 2)
    y = np.convolve(np.pad(y, half, mode="edge"), kernel / kernel.sum(), mode="valid")
    y = damp_white_line(y, 1.0 - rng.uniform(*damping))
    fine = e0 + (fine - e0) * (1.0 + rng.uniform(-stretch, stretch)) + rng.uniform(-shift, shift)
    return fine, y

"""Shape x edge fusion for measured spectra (issue 16): the SPT's oxidation-state posterior, read from the shape
on a grid relative to E0, times the likelihood of where the edge sits.

The SPT cannot see the chemical shift (its grid starts at each spectrum's own E0), and FEFF's shifts between
oxidation states are about half the measured ones (Mn: FEFF 3.2 / 6.0 / 7.2 eV above its metal for Mn2+/3+/4+,
measured 4.4 / 10.1 / 12.4 eV above the foil). So a measured half-step edge is first mapped onto FEFF's scale,
edge_FEFF = offset[element] + slope * edge_measured, fitted on measured standards of known oxidation state (one
slope shared by all elements, an offset per element; an element without standards takes the mean offset), and
then scored against a Gaussian per element and oxidation state over the simulated training edges. The product
is renormalised among the oxidised classes; p(OS 0) stays the SPT's, because a metal's slow ramp puts its
half-step where no oxide's lies in either domain. Chosen in benchmarks/domain_alignment.py (A x edge).
"""

from __future__ import annotations

import numpy as np

from ..alignment import FEFF_METAL_EDGE_EV, edge_position

EDGE_AFTER_EV = -10.0  # look for the half step from this far below the metal edge (skips pre-edge noise)
MIN_SD_EV = 0.5  # floor of each (element, OS) Gaussian: a few training sites must not make it a spike


def simulated_edge(energy: np.ndarray, norm: np.ndarray, element: str) -> float:
    """Half-step edge of a normalised FEFF spectrum, eV above FEFF's own metal edge (nan if unknown element)."""
    if element not in FEFF_METAL_EDGE_EV:
        return float("nan")
    return edge_position(np.asarray(energy, float) - FEFF_METAL_EDGE_EV[element], norm, after=EDGE_AFTER_EV)


def measured_edge(energy: np.ndarray, norm: np.ndarray, foil_edge: float) -> float:
    """Half-step edge of a calibrated, normalised measured scan, eV above the element's tabulated foil edge."""
    return edge_position(np.asarray(energy, float) - foil_edge, norm, after=EDGE_AFTER_EV)


def edge_stats(edges: np.ndarray, elements: np.ndarray, os_values: np.ndarray) -> dict:
    """{element: {OS: {mean, sd, n}}} over the finite edges of oxidised sites (training split expected)."""
    edges, os_values = np.asarray(edges, float), np.asarray(os_values, float)
    elements = np.asarray(elements).astype(str)
    out: dict = {}
    for el in sorted(set(elements)):
        for value in sorted(set(os_values[(elements == el) & np.isfinite(os_values)])):
            m = (elements == el) & (os_values == value) & np.isfinite(edges)
            if value <= 0 or not m.any():
                continue
            out.setdefault(el, {})[f"{value:g}"] = {"mean": float(edges[m].mean()),
                                                    "sd": max(float(edges[m].std()), MIN_SD_EV), "n": int(m.sum())}
    return out


def _target(stats: dict, element: str, os_value: float) -> float:
    """FEFF's mean edge at a (possibly mixed-valence) nominal OS, interpolated between the element's OS levels."""
    levels = sorted((float(k), v["mean"]) for k, v in stats[element].items())
    return float(np.interp(os_value, [lv for lv, _ in levels], [m for _, m in levels]))


def fit_edge_map(standards: list[dict], stats: dict) -> dict:
    """Least-squares edge_FEFF = offset[element] + slope * edge_measured over oxidised standards
    ({compound, element, OS, edge}; several scans of one compound each count). None when the standards do not
    determine it (the slope needs two compounds of one element)."""
    usable = [s for s in standards if s["OS"] > 0 and np.isfinite(s["edge"]) and s["element"] in stats]
    elements = sorted({s["element"] for s in usable})
    if not any(len({s["compound"] for s in usable if s["element"] == el}) >= 2 for el in elements):
        return None
    a = np.zeros((len(usable), len(elements) + 1))
    y = np.zeros(len(usable))
    for n, s in enumerate(usable):
        a[n, elements.index(s["element"])] = 1.0
        a[n, -1] = s["edge"]
        y[n] = _target(stats, s["element"], s["OS"])
    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    return {"slope": float(coef[-1]), "offsets": {el: float(c) for el, c in zip(elements, coef[:-1])},
            "compounds": sorted({s["compound"] for s in usable})}


def map_edge(edge_map: dict, element: str, edge: float) -> float:
    offsets = edge_map["offsets"]
    offset = offsets.get(element, float(np.mean(list(offsets.values()))))
    return offset + edge_map["slope"] * edge


def edge_loglike(classes, element: str, feff_edge: float, stats: dict) -> np.ndarray | None:
    """Gaussian log-likelihood of an edge on FEFF's scale per class (nan for OS 0 and for a state the element never
    shows in training); None when the edge cannot inform (no stats for the element, no finite edge)."""
    classes = np.asarray(classes, float)
    if element not in stats or not np.isfinite(feff_edge):
        return None
    loglike = np.full(len(classes), np.nan)
    for k, c in enumerate(classes):
        entry = stats[element].get(f"{c:g}")
        if entry is not None and c > 0:
            loglike[k] = -0.5 * ((feff_edge - entry["mean"]) / entry["sd"]) ** 2 - np.log(entry["sd"])
    return loglike if np.isfinite(loglike).any() else None


def fuse(proba: np.ndarray, classes, element: str, feff_edge: float, stats: dict) -> np.ndarray | None:
    """Fused class probabilities for one spectrum, or None when the edge cannot inform them (no stats for the
    element, no finite edge)."""
    classes = np.asarray(classes, float)
    loglike = edge_loglike(classes, element, feff_edge, stats)
    if loglike is None:
        return None
    ox = classes > 0
    loglike[ox & ~np.isfinite(loglike)] = np.nanmin(loglike[ox])  # a class the element never shows in training
    p = np.asarray(proba, float).copy()
    with np.errstate(divide="ignore"):
        logq = np.log(p[ox]) + loglike[ox]
    if not np.isfinite(logq).any():
        return p
    q = np.exp(logq - logq.max())  # in logs: a far-off edge must not underflow every class to 0
    p[ox] = q / q.sum() * (1.0 - p[~ox].sum())
    return p

"""The edge-ladder reading of a measured scan's oxidation state (issue 16): FEFF gives the ladder, the measured
standards give the ruler.

The SPT reads shape on a grid that starts at each spectrum's own E0, so it cannot see the chemical shift, and the
shape gap between FEFF and a beamline (white lines ~1.5x too high, broadening) makes it read measured Mn oxides
as metals or as the wrong oxide. The edge position is what experimentalists read oxidation states from, and it
survives that gap once put on FEFF's scale: the half-step edge above the foil is mapped by the line fitted on the
measured standards (models.edge_fusion.fit_edge_map), then scored against FEFF's training edges of each
oxidation state, which spaces even a state no standard shows (MnO2 read from MnO, Mn3O4 and Mn2O3 alone).

Two guards:
- metal: a calibrated scan whose E0 lies within METAL_GATE_EV of its foil's tabulated edge is read as OS 0 (a
  metal's edge is the foil's by definition; the lowest-valent 3d oxides sit >= 4 eV above it, measured MnO
  4.4 eV), and every other scan is not a metal, so the SPT's metal leak on measured oxides (0.2-0.7 of their
  probability, benchmarks/README.md) cannot read one as a metal;
- trust: an element whose own oxidised standards cover fewer than MIN_OWN_STANDARDS compounds keeps the SPT's
  shape posterior (without its metal share when the guard says oxide), since one compound fixes its map's offset
  and leaves nothing to check it against (the shared "Ni2O3" edge lies 0.6 eV *below* Ni(OH)2's).
Measured in benchmarks/edge_ladder.py (benchmarks/README.md, "The edge ladder", session 29).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .edge_fusion import edge_loglike, fit_edge_map, map_edge

MIN_OWN_STANDARDS = 2  # oxidised standard compounds of the scan's own element before its edge is read on the ladder
METAL_GATE_EV = 2.0  # |E0 - tabulated foil edge| below this: a metal (foil calibration is good to a few 0.1 eV)


@dataclass(frozen=True)
class Guards:
    """The ladder's two rules as one value, so a study can move them without touching module state."""

    metal_gate_ev: float = METAL_GATE_EV
    min_own_standards: int = MIN_OWN_STANDARDS


SHIPPED_GUARDS = Guards()


def own_compounds(standards: list[dict], element: str) -> int:
    return len({s["compound"] for s in standards if s["element"] == element and s["OS"] > 0})


def ladder_posterior(classes, element: str, feff_edge: float, stats: dict) -> np.ndarray | None:
    """p(OS) from the edge alone among the oxidised classes FEFF shows for the element (flat prior); None when
    the edge cannot tell (no simulated edges, no finite edge)."""
    loglike = edge_loglike(classes, element, feff_edge, stats)
    if loglike is None:
        return None
    p = np.zeros(len(classes))
    known = np.isfinite(loglike)
    p[known] = np.exp(loglike[known] - loglike[known].max())
    return p / p.sum()


def read_ladder(shape: np.ndarray, classes, element: str, edge_above_foil: float, e0_shift: float,
                standards: list[dict], stats: dict, guards: Guards = SHIPPED_GUARDS) -> tuple[np.ndarray, str]:
    """OS probabilities of one calibrated measured scan, and how they were read (a phrase for the record).
    `standards`: {compound, element, OS, edge} of the standards allowed to inform this scan."""
    classes = np.asarray(classes, float)
    shape = np.asarray(shape, float)
    if abs(e0_shift) < guards.metal_gate_ev:
        return (classes == 0).astype(float), (f"metal: E0 {e0_shift:+.1f} eV from the foil's edge "
                                              f"(gate {guards.metal_gate_ev:g} eV)")
    oxide = shape * (classes > 0)
    oxide = oxide / oxide.sum() if oxide.sum() > 0 else (classes > 0) / (classes > 0).sum()
    if own_compounds(standards, element) < guards.min_own_standards:
        return oxide, (f"shape without the metal share (fewer than {guards.min_own_standards} oxidised {element} "
                       "standards)")
    edge_map = fit_edge_map(standards, stats)
    feff_edge = map_edge(edge_map, element, edge_above_foil) if edge_map else None
    p = ladder_posterior(classes, element, feff_edge, stats) if feff_edge is not None else None
    if p is None:
        return oxide, f"shape without the metal share (no simulated {element} edges or no edge)"
    return p, f"edge ladder: {edge_above_foil:.2f} eV above the foil, {feff_edge:.2f} eV on FEFF's scale"

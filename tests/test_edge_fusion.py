"""Shape x edge fusion (models.edge_fusion): the map from measured to FEFF edges and the product of experts."""

from __future__ import annotations

import numpy as np
import pytest

from xasengine.models.edge_fusion import edge_stats, fit_edge_map, fuse, map_edge, measured_edge

CLASSES = [0.0, 2.0, 3.0, 4.0]
STATS = edge_stats(np.array([3.0, 3.2, 6.0, 6.2, 7.0, 7.4, 2.5]), np.array(["Mn"] * 6 + ["Ni"]),
                   np.array([2, 2, 3, 3, 4, 4, 2]))


def test_edge_stats_per_element_and_state_with_a_floored_spread():
    assert STATS["Mn"]["2"]["mean"] == pytest.approx(3.1) and STATS["Mn"]["2"]["n"] == 2
    assert STATS["Mn"]["2"]["sd"] == 0.5  # std 0.1 floored
    assert set(STATS["Ni"]) == {"2"} and "0" not in STATS["Mn"]


def test_map_recovers_a_known_line_and_needs_two_compounds_of_one_element():
    # measured edges made from FEFF's means by edge_meas = (edge_FEFF - 1.0) / 0.5 for Mn
    standards = [{"compound": c, "element": "Mn", "OS": os, "edge": (STATS["Mn"][f"{os:g}"]["mean"] - 1.0) / 0.5}
                 for c, os in (("MnO", 2.0), ("Mn2O3", 3.0), ("MnO2", 4.0))]
    fitted = fit_edge_map(standards, STATS)
    assert fitted["slope"] == pytest.approx(0.5) and fitted["offsets"]["Mn"] == pytest.approx(1.0)
    assert map_edge(fitted, "Co", 10.0) == pytest.approx(6.0)  # no Co standard: the mean offset
    assert fit_edge_map(standards[:1], STATS) is None
    assert fit_edge_map([{**standards[0], "OS": 0.0}, standards[1]], STATS) is None  # a foil does not count


def test_fusion_follows_the_edge_among_oxidised_states_and_keeps_the_metal_share():
    shape = np.array([0.1, 0.3, 0.4, 0.2])
    low, high = fuse(shape, CLASSES, "Mn", 3.1, STATS), fuse(shape, CLASSES, "Mn", 7.2, STATS)
    assert low.sum() == pytest.approx(1.0) and low[0] == pytest.approx(0.1) and high[0] == pytest.approx(0.1)
    assert np.argmax(low) == 1 and np.argmax(high) == 3
    far = fuse(shape, CLASSES, "Mn", 400.0, STATS)  # far beyond every Gaussian: no underflow to nan
    assert np.all(np.isfinite(far)) and np.argmax(far) == 3
    assert fuse(shape, CLASSES, "Co", 3.0, STATS) is None and fuse(shape, CLASSES, "Mn", np.nan, STATS) is None
    # Ni has only OS 2 in training: the other oxidised classes get its likelihood (not zero), so an edge that
    # cannot tell the states apart leaves the shape's reading as it was
    assert fuse(shape, CLASSES, "Ni", 2.5, STATS) == pytest.approx(shape)


def test_measured_edge_is_the_half_step_above_the_foil():
    energy = np.linspace(6520, 6600, 801)
    norm = 1.0 / (1.0 + np.exp(-(energy - 6549.0) / 1.0))
    assert measured_edge(energy, norm, 6539.0) == pytest.approx(10.0, abs=0.05)

"""The edge-ladder reading (models.edge_ladder): FEFF's ladder of edges per OS placed by the measured standards."""

from __future__ import annotations

import numpy as np
import pytest

from xasengine.models.edge_fusion import edge_stats
from xasengine.models.edge_ladder import METAL_GATE_EV, Guards, ladder_posterior, read_ladder

CLASSES = [0.0, 2.0, 3.0, 4.0]
# FEFF's training edges (eV above FEFF's metal): Mn2+ ~3, Mn3+ ~6, Mn4+ ~7; Ni only 2+
STATS = edge_stats(np.array([3.0, 3.2, 5.9, 6.1, 7.0, 7.2, 2.5, 2.7]), np.array(["Mn"] * 6 + ["Ni"] * 2),
                   np.array([2, 2, 3, 3, 4, 4, 2, 2]))
# measured edges twice FEFF's spacing: edge_meas = 2 * (edge_FEFF - 1)
MN = [{"compound": c, "element": "Mn", "OS": os, "edge": 2 * (STATS["Mn"][f"{os:g}"]["mean"] - 1.0)}
      for c, os in (("MnO", 2.0), ("Mn2O3", 3.0), ("MnO2", 4.0))]
SHAPE = np.array([0.5, 0.1, 0.3, 0.1])  # an SPT that calls a measured oxide half metal


def test_a_state_no_standard_shows_is_read_from_the_others_on_feffs_spacing():
    mno2_edge = MN[2]["edge"]
    p, how = read_ladder(SHAPE, CLASSES, "Mn", mno2_edge, 12.0, MN[:2], STATS)  # MnO2 held out
    assert np.argmax(p) == 3 and p[0] == 0 and p.sum() == pytest.approx(1) and how.startswith("edge ladder")
    p, _ = read_ladder(SHAPE, CLASSES, "Mn", MN[0]["edge"], 4.4, MN[1:], STATS)  # MnO held out
    assert np.argmax(p) == 1


def test_metal_gate_and_the_shape_fallback_for_an_element_with_too_few_standards():
    p, how = read_ladder(SHAPE, CLASSES, "Mn", 6.0, METAL_GATE_EV - 0.5, MN, STATS)
    assert list(p) == [1, 0, 0, 0] and how.startswith("metal")
    ni = [{"compound": "NiO", "element": "Ni", "OS": 2.0, "edge": 8.4}]
    p, how = read_ladder(SHAPE, CLASSES, "Ni", 8.0, 11.0, MN + ni, STATS)  # one Ni compound: the shape, no metal
    assert p == pytest.approx([0, 0.2, 0.6, 0.2]) and "fewer than 2" in how
    # an element FEFF shows in one state only still reads on the ladder, among the states it has
    assert ladder_posterior(CLASSES, "Ni", 2.6, STATS) == pytest.approx([0, 1, 0, 0])
    assert ladder_posterior(CLASSES, "Co", 2.6, STATS) is None and ladder_posterior(CLASSES, "Mn", np.nan, STATS) is None


def test_moved_guards_change_the_reading_without_touching_the_shipped_ones():
    # a scan 3 eV from its foil: an oxide under the shipped 2 eV gate, a metal under a 4 eV one
    shipped, _ = read_ladder(SHAPE, CLASSES, "Mn", MN[0]["edge"], 3.0, MN[1:], STATS)
    wide, how = read_ladder(SHAPE, CLASSES, "Mn", MN[0]["edge"], 3.0, MN[1:], STATS, Guards(metal_gate_ev=4.0))
    assert shipped[0] == 0 and list(wide) == [1, 0, 0, 0] and "gate 4 eV" in how
    # two Mn standards are enough by default; demanding three falls back to the shape without its metal share
    strict, how = read_ladder(SHAPE, CLASSES, "Mn", MN[0]["edge"], 4.4, MN[1:], STATS, Guards(min_own_standards=3))
    assert strict == pytest.approx([0, 0.2, 0.6, 0.2]) and "fewer than 3" in how
    again, _ = read_ladder(SHAPE, CLASSES, "Mn", MN[0]["edge"], 3.0, MN[1:], STATS)
    assert again == pytest.approx(shipped)

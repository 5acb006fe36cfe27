"""Hand checks of the site descriptors on textbook Co oxides and Co metal."""

import math

import pytest
from pymatgen.core import Lattice, Structure

from xasengine.descriptors import (
    ALL_DESCRIPTORS,
    DESCRIPTORS_NON_O,
    DESCRIPTORS_O,
    decorate_oxidation_states,
    descriptor_applies,
    site_descriptors,
)
from xasengine.errors import DescriptorError

A_COO = 4.26


def rocksalt_coo() -> Structure:
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(A_COO), ["Co", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return s.get_primitive_structure()


def licoo2() -> Structure:
    s = Structure.from_spacegroup(
        "R-3m", Lattice.hexagonal(2.816, 14.05), ["Li", "Co", "O"], [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.2396]]
    )
    return s.get_primitive_structure()


def co3o4_spinel() -> Structure:
    s = Structure.from_spacegroup(
        "Fd-3m:2",  # origin choice 2: 8a at (1/8,1/8,1/8), 16d at (1/2,1/2,1/2)
        Lattice.cubic(8.084),
        ["Co", "Co", "O"],
        [[1 / 8, 1 / 8, 1 / 8], [0.5, 0.5, 0.5], [0.2631, 0.2631, 0.2631]],
    )
    return s.get_primitive_structure()


def hcp_co() -> Structure:
    return Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(2.507, 4.070), ["Co"], [[1 / 3, 2 / 3, 1 / 4]])


def first_index(structure: Structure, element: str) -> int:
    return next(i for i, site in enumerate(structure) if site.specie.symbol == element)


def test_rocksalt_coo_hand_values():
    s = rocksalt_coo()
    co, o = first_index(s, "Co"), first_index(s, "O")
    d = site_descriptors(s)
    assert set(d) == {co, o}
    assert d[co]["element"] == "Co" and d[co]["os_method"] == "bv"
    assert (d[co]["OS"], d[co]["CN"], d[co]["CN2"], d[co]["OCN"], d[co]["PSGO"]) == (2, 6, 18, 6, 48)
    assert abs(d[co]["NNRS"]) < 1e-6
    assert d[co]["MOOD"] == pytest.approx(A_COO / math.sqrt(2), abs=1e-6)
    assert math.isnan(d[co]["NNOSM"])
    assert (d[o]["OS"], d[o]["CN"], d[o]["NNOSM"], d[o]["PSGO"]) == (-2, 6, 2, 48)
    assert math.isnan(d[o]["OCN"]) and math.isnan(d[o]["MOOD"])


def test_every_descriptor_is_a_float():
    row = site_descriptors(rocksalt_coo(), [0])[0]
    assert all(isinstance(row[name], float) for name in ALL_DESCRIPTORS)
    assert "error" not in row


def test_licoo2_oxidation_states_and_octahedra():
    s = licoo2()
    d = site_descriptors(s, [first_index(s, "Co"), first_index(s, "Li")])
    co, li = (d[first_index(s, el)] for el in ("Co", "Li"))
    assert (co["OS"], co["CN"], co["OCN"]) == (3, 6, 6)
    assert li["OS"] == 1


def test_co3o4_mixed_valence_per_site():
    s = co3o4_spinel()
    d = site_descriptors(s, [i for i, site in enumerate(s) if site.specie.symbol == "Co"])
    by_cn = {row["CN"]: row["OS"] for row in d.values()}
    assert by_cn == {4: 2, 6: 3}
    assert sum(row["CN"] == 4 for row in d.values()) == 2  # 2 tetrahedral + 4 octahedral Co per primitive cell


def test_hcp_co_metal_is_zero_valent_by_guess():
    d = site_descriptors(hcp_co(), [0])[0]
    assert (d["OS"], d["os_method"], d["CN"], d["OCN"]) == (0, "guess", 12, 0)
    assert math.isnan(d["MOOD"])  # no O in the first shell


def test_decorate_returns_a_decorated_copy():
    s = rocksalt_coo()
    decorated, method = decorate_oxidation_states(s)
    assert method == "bv"
    assert [site.specie.oxi_state for site in decorated] == [2, -2]
    assert not hasattr(s[0].specie, "oxi_state") or s[0].specie.oxi_state is None


def test_disordered_structure_raises():
    s = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.2), [{"Co": 0.5, "Ni": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    with pytest.raises(DescriptorError, match="disordered"):
        site_descriptors(s)


def test_unassignable_valences_raise():
    s = Structure(Lattice.cubic(4.0), ["Li", "F", "F"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]])  # LiF2
    with pytest.raises(DescriptorError, match="no oxidation-state assignment"):
        decorate_oxidation_states(s)


def test_symmetry_failure_raises():
    s = Structure(Lattice.cubic(4.26), ["Co", "Co", "O"], [[0, 0, 0], [0, 0, 0], [0.5, 0.5, 0.5]], validate_proximity=False)
    with pytest.raises(DescriptorError, match="symmetry analysis failed"):
        site_descriptors(s)


def test_out_of_range_index_raises():
    with pytest.raises(DescriptorError, match="out of range"):
        site_descriptors(rocksalt_coo(), [5])


def test_descriptor_applies():
    assert all(descriptor_applies(name, "O") for name in DESCRIPTORS_O)
    assert all(descriptor_applies(name, "Co") for name in DESCRIPTORS_NON_O)
    assert not descriptor_applies("NNOSM", "Co")
    assert not descriptor_applies("OCN", "O") and not descriptor_applies("MOOD", "O")
    with pytest.raises(DescriptorError, match="unknown descriptor"):
        descriptor_applies("XYZ", "Co")


def test_a_fractional_guess_leaves_the_site_oxidation_state_unlabelled():
    """A library Co/Mn hausmannite cell where bond valence fails: the composition guess averages the valences
    over each element (not integers), which cannot be a site's class label; the O sites keep their NNOSM."""
    from xasengine.structures.library import build_library

    entry = build_library(only_ids=["lib-mn3o4-hausmannite-co50mn50-63ee93ff"])[0]
    rows = site_descriptors(entry.structure)
    metals = [r for r in rows.values() if r["element"] != "O"]
    assert {r["os_method"] for r in rows.values()} == {"guess"}
    assert metals and all(math.isnan(r["OS"]) for r in metals)
    assert all(r["OS"] == -2.0 and 2.0 < r["NNOSM"] < 3.0 for r in rows.values() if r["element"] == "O")
    assert all(r["CN"] > 0 for r in metals)  # the neighbour descriptors are still labelled

"""The embedded structure library: literature prototypes, enumerated orderings, stable ids, coverage."""

import os
import subprocess
import sys
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from conftest import DATA
from xasengine.errors import StructureError
from xasengine.structures.reference import read_reference_ids, select_reference
from xasengine.structures.library import (
    DEFAULT_PROTOTYPES,
    TINY_IDS,
    build_library,
    count_nonequivalent_sites,
    load_prototypes,
)

# id -> (space group number, reduced formula)
REQUIRED_PROTOTYPES = {
    "lib-coo-rocksalt": (225, "CoO"),
    "lib-nio-rocksalt": (225, "NiO"),
    "lib-mno-rocksalt": (225, "MnO"),
    "lib-li2o-antifluorite": (225, "Li2O"),
    "lib-li2o2": (194, "Li2O2"),
    "lib-co3o4-spinel": (227, "Co3O4"),
    "lib-mn3o4-hausmannite": (141, "Mn3O4"),
    "lib-mn2o3-bixbyite": (206, "Mn2O3"),
    "lib-mno2-pyrolusite": (136, "MnO2"),
    "lib-coo2-o1": (164, "CoO2"),
    "lib-licoo2": (166, "LiCoO2"),
    "lib-linio2": (166, "LiNiO2"),
    "lib-limno2-monoclinic": (12, "LiMnO2"),
    "lib-limn2o4-spinel": (227, "LiMn2O4"),
    "lib-li2mno3": (12, "Li2MnO3"),
    "lib-lini05mn15o4-p4332": (212, "Li2Mn3NiO8"),
    "lib-co-hcp": (194, "Co"),
    "lib-ni-fcc": (225, "Ni"),
}

# Ids are content hashes of canonical orderings; a change here means every stored dataset record
# keyed by them would be orphaned, so it must be deliberate.
GOLDEN_IDS = (
    "lib-licoo2-x050-f658658e",
    "lib-coo-rocksalt-co50ni50-fecdf8ed",
    "lib-licoo2-co33mn33ni33-a39b1458",
    "lib-limn2o4-spinel-mn75ni25-780ef1e5",
)


@pytest.fixture(scope="module")
def library():
    return build_library()


@pytest.fixture(scope="module")
def by_id(library):
    return {entry.id: entry for entry in library}


@pytest.fixture(scope="module")
def counts_per_entry(library):
    return {entry.id: count_nonequivalent_sites([entry]) for entry in library}


@pytest.fixture(scope="module")
def site_counts(counts_per_entry):
    return sum(counts_per_entry.values(), Counter())


@pytest.mark.parametrize("entry_id", sorted(REQUIRED_PROTOTYPES))
def test_required_prototype_has_space_group_and_composition(by_id, entry_id):
    number, formula = REQUIRED_PROTOTYPES[entry_id]
    structure = by_id[entry_id].structure
    assert SpacegroupAnalyzer(structure, symprec=0.01).get_space_group_number() == number
    assert structure.composition.reduced_formula == formula
    assert by_id[entry_id].family == "prototype"
    assert by_id[entry_id].source


def test_coo_rocksalt_conventional_lattice(by_id):
    conventional = SpacegroupAnalyzer(by_id["lib-coo-rocksalt"].structure).get_conventional_standard_structure()
    assert conventional.lattice.abc == pytest.approx((4.26, 4.26, 4.26), abs=0.01)


def test_co3o4_has_tetrahedral_8a_and_octahedral_16d_cobalt(by_id):
    conventional = SpacegroupAnalyzer(by_id["lib-co3o4-spinel"].structure).get_conventional_standard_structure()
    coordination = [
        sum(1 for n in conventional.get_neighbors(site, 2.5) if n.specie.symbol == "O")
        for site in conventional
        if site.specie.symbol == "Co"
    ]
    assert sorted(coordination) == [4] * 8 + [6] * 16


def test_prototypes_are_primitive_cells():
    for entry in load_prototypes():
        assert len(entry.structure) == len(SpacegroupAnalyzer(entry.structure).find_primitive())


def test_load_prototypes_takes_an_explicit_path():
    assert [e.id for e in load_prototypes(DEFAULT_PROTOTYPES)] == [e.id for e in load_prototypes()]


def test_prototype_with_wrong_space_group_is_rejected(tmp_path):
    text = DEFAULT_PROTOTYPES.read_text().replace("{symbol: P4_2/mnm, number: 136}", "{symbol: P4_2/mnm, number: 135}")
    bad = tmp_path / "prototypes.yaml"
    bad.write_text(text)
    with pytest.raises(StructureError, match="mno2-pyrolusite"):
        load_prototypes(bad)


def test_every_structure_is_ordered_and_small(library):
    for entry in library:
        assert entry.structure.is_ordered, entry.id
        assert len(entry.structure) <= 80, entry.id
        distances = entry.structure.distance_matrix + 10 * np.eye(len(entry.structure))
        assert distances.min() > 1.5, entry.id


def _balanceable(structure) -> bool:
    """A formal-charge assignment exists with Li+, O2- (O- in peroxide) and Co/Mn/Ni in 2+..4+; elements and
    intermetallics (no O) are neutral at 0."""
    composition = structure.composition
    if len(composition) == 1 or "O" not in composition:
        return True
    oxygen = [i for i, site in enumerate(structure) if site.specie.symbol == "O"]
    o_o = structure.distance_matrix[np.ix_(oxygen, oxygen)] + 10 * np.eye(len(oxygen))
    peroxide = o_o.min() < 1.7
    override = {"Li": [1], "O": [-1] if peroxide else [-2], "Co": [2, 3, 4], "Mn": [2, 3, 4], "Ni": [2, 3, 4]}
    return bool(Composition(composition).oxi_state_guesses(oxi_states_override=override))


def test_every_structure_is_charge_balanceable(library):
    assert [e.id for e in library if not _balanceable(e.structure)] == []


def test_ids_unique_and_formatted(library):
    ids = [entry.id for entry in library]
    assert len(ids) == len(set(ids))
    for entry in library:
        assert entry.id.startswith("lib-")
        if entry.family != "prototype":
            digest = entry.id.rsplit("-", 1)[1]
            assert len(digest) == 8 and int(digest, 16) >= 0


def test_ids_stable_across_processes_and_hash_seeds(library):
    """A fresh interpreter with another hash seed must rebuild the same ids and structures."""
    script = (
        "from xasengine.structures.library import build_library\n"
        "for e in build_library():\n"
        "    print(e.id, len(e.structure), round(e.structure.volume, 4), e.structure.composition.reduced_formula)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    here = [
        f"{e.id} {len(e.structure)} {round(e.structure.volume, 4)} {e.structure.composition.reduced_formula}"
        for e in library
    ]
    assert out.splitlines() == here


def test_golden_ids_present(by_id):
    assert [i for i in GOLDEN_IDS if i not in by_id] == []


def test_library_returns_independent_copies(library):
    first = build_library(only_ids=["lib-licoo2"])[0].structure
    first.scale_lattice(1000.0)
    assert build_library(only_ids=["lib-licoo2"])[0].structure.volume != pytest.approx(1000.0)


def test_coverage_counts(library, site_counts):
    assert len(library) >= 150
    assert sum(site_counts.values()) >= 3000
    for element in ("Co", "Mn", "Ni"):
        assert site_counts[element] >= 500, element
    assert site_counts["Li"] > 0 and site_counts["O"] > 0


def test_lixcoo2_series_covers_all_lithium_contents(library):
    orderings = defaultdict(list)
    for entry in library:
        if entry.family == "delithiation-LixCoO2":
            composition = entry.structure.composition
            orderings[Fraction(int(composition["Li"]), int(composition["Co"]))].append(entry.id)
    assert set(orderings) == {Fraction(1), Fraction(3, 4), Fraction(1, 2), Fraction(1, 4), Fraction(0)}
    for x in (Fraction(3, 4), Fraction(1, 2), Fraction(1, 4)):
        assert len(orderings[x]) >= 3, x


def test_substitution_families_mix_transition_metals(library):
    mixed = defaultdict(set)
    for entry in library:
        if entry.family.startswith("substitution-"):
            metals = frozenset(el.symbol for el in entry.structure.composition if el.symbol in ("Co", "Mn", "Ni"))
            if len(metals) > 1:
                mixed[entry.family].add(metals)
    assert {frozenset({"Co", "Ni"}), frozenset({"Ni", "Mn"})} <= mixed["substitution-rocksalt"]
    assert frozenset({"Co", "Ni", "Mn"}) in mixed["substitution-layered"]
    assert frozenset({"Co", "Ni"}) in mixed["substitution-spinel"]


def test_tiny_ids_are_small_prototypes():
    entries = build_library(only_ids=TINY_IDS)
    assert sorted(e.id for e in entries) == sorted(TINY_IDS)
    assert all(len(e.structure) <= 14 for e in entries)


def test_a_prototype_subset_builds_only_its_prototypes(tmp_path):
    from xasengine.structures import library

    text = library.DEFAULT_PROTOTYPES.read_text() + "\n# a fresh copy: not in the in-process cache\n"
    path = tmp_path / "prototypes.yaml"
    path.write_text(text)
    entries = build_library(path, only_ids=TINY_IDS)
    assert sorted(e.id for e in entries) == sorted(TINY_IDS)
    assert {f"lib-{pid}" for pid in library._prototypes_from_text(text)._built} == set(TINY_IDS)


def test_unknown_id_is_an_error():
    with pytest.raises(StructureError, match="lib-unobtainium"):
        build_library(only_ids=["lib-unobtainium"])


def test_max_sites_limits_cell_size():
    small = build_library(max_sites=30)
    assert small and all(len(e.structure) <= 30 for e in small)


def test_reference_subset_is_current_and_meets_the_dataset_targets(library, counts_per_entry):
    """The shipped id list is what the selection gives on today's library, so it cannot silently go stale."""
    ids = read_reference_ids()
    assert ids == select_reference(counts_per_entry, {e.id: e.family for e in library})
    total = sum((counts_per_entry[i] for i in ids), Counter())
    assert sum(total.values()) >= 3000
    assert min(total["Co"], total["Mn"], total["Ni"]) >= 500
    families = {e.id: e.family for e in library}
    lixcoo2 = [e.id for e in library if e.family == "delithiation-LixCoO2"]
    assert lixcoo2 and set(lixcoo2) <= set(ids)
    assert {families[i] for i in ids} >= {"prototype", "substitution-rocksalt", "substitution-spinel",
                                          "substitution-layered"}


def test_reference_list_missing_names_the_rebuild_command(tmp_path):
    with pytest.raises(StructureError, match="python -m xasengine.structures.reference"):
        read_reference_ids(tmp_path / "nope.txt")


def test_default_config_collects_the_reference_subset():
    from xasengine.config import validate_config
    from xasengine.structures.collect import collect_structures

    options = validate_config({})["structures"]
    assert options["library_subset"] == "reference"
    records, failures = collect_structures(options)
    assert [r.id for r in records] == read_reference_ids() and failures == []


def test_structures_outside_the_chemical_space_are_recorded_failures():
    from xasengine.config import validate_config
    from xasengine.structures.collect import collect_structures

    extra = [str(DATA / "FeO_rocksalt.cif"), str(DATA / "CuO_tenorite.cif")]
    options = validate_config({"structures": {"library_subset": "tiny", "extra_files": extra}})["structures"]
    records, failures = collect_structures(options)
    assert not {r.id for r in records} & {"lib-extra-FeO_rocksalt", "lib-extra-CuO_tenorite"}
    reasons = {f["structure_id"]: f["message"] for f in failures}
    assert set(reasons) == {"lib-extra-FeO_rocksalt", "lib-extra-CuO_tenorite"}
    assert "contains Fe, outside structures.allowed_elements [Co, Li, Mn, Ni, O]" in reasons["lib-extra-FeO_rocksalt"]
    assert "contains Cu, outside" in reasons["lib-extra-CuO_tenorite"]
    assert all(f["stage"] == "structures" for f in failures)
    widened = validate_config({"structures": {"library_subset": "tiny", "extra_files": extra[:1],
                                              "allowed_elements": ["Co", "Li", "Mn", "Ni", "O", "Fe"]}})
    records, failures = collect_structures(widened["structures"])
    assert "lib-extra-FeO_rocksalt" in {r.id for r in records} and failures == []


def test_widened_chemical_space_is_named_in_the_card():
    from xasengine.reports.dataset_card import _chemical_space_line

    assert "widened" not in _chemical_space_line(["O", "Co", "Li", "Mn", "Ni"])
    assert "widened by the config" in _chemical_space_line(["Co", "Li", "Mn", "Ni", "O", "Fe"])


@pytest.mark.parametrize("noise", [1e-13, -1e-13])
def test_structure_hash_ignores_float_noise_on_exact_fractions(noise):
    """Fractions like 1/32 and half-lengths like 2.5071/2 sat on the old hash's rounding boundaries: last-bit noise
    from another machine flipped the hash, and with it the relaxation and manifest keys, of 6 shipped cells."""
    from pymatgen.core import Lattice, Structure

    from xasengine.structures.io import structure_hash

    lattice = Lattice.hexagonal(2.5071, 4.0695)  # matrix holds a/2 = 1.25355 (a 5-decimal boundary)
    coords = [[1 / 32, 0.0, 0.25], [0.5 + 1 / 64, 1 / 3, 1 - 1 / 32]]
    exact = Structure(lattice, ["Co", "O"], coords)
    noisy = Structure(Lattice(lattice.matrix + noise), ["Co", "O"], np.array(coords) + noise)
    assert structure_hash(noisy) == structure_hash(exact)
    moved = Structure(lattice, ["Co", "O"], np.array(coords) + [[1e-3, 0, 0], [0, 0, 0]])
    assert structure_hash(moved) != structure_hash(exact)

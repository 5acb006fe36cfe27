"""Embedded offline structure library for the Co-Li-Mn-Ni-O XAS reference set.

Prototypes are entered from published crystallography (resources/structures/
prototypes.yaml). Derivatives are explicit, fully ordered decorations of supercells
of those prototypes: Li/vacancy orderings of delithiated layered and spinel oxides
and Co/Ni/Mn orderings on the cation sublattices of rock-salt, layered and spinel
oxides. Orderings are reduced to a canonical form under the supercell's space group,
so every derivative id is a content hash that does not depend on enumeration order,
and ranked by point-charge Ewald energy (ties: closest to a random alloy in
first-shell pair statistics) so that the kept orderings are electrostatically
sensible. Supercells of low symmetry are what provide many nonequivalent absorbers.

Run ``python -m xasengine.structures.library`` to print the library statistics.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from pymatgen.transformations.site_transformations import (
    RemoveSitesTransformation,
    ReplaceSiteSpeciesTransformation,
)
from pymatgen.transformations.standard_transformations import SupercellTransformation

from xasengine.errors import StructureError

DEFAULT_PROTOTYPES = Path(__file__).resolve().parents[3] / "resources" / "structures" / "prototypes.yaml"

# Small primitive cells on which CI runs FEFF for every nonequivalent site.
TINY_IDS = (
    "lib-coo-rocksalt",
    "lib-nio-rocksalt",
    "lib-licoo2",
    "lib-co3o4-spinel",
    "lib-mno2-pyrolusite",
)

ABSORBERS = ("Co", "Mn", "Ni", "Li", "O")

_BUILD_SYMPREC = 1e-3  # structures are exact by construction; a tight tolerance avoids spurious symmetry
_COORDINATION_CUTOFF = 2.5  # A; separates tetrahedral from octahedral cations by their O neighbours
_EXHAUSTIVE_LIMIT = 40_000  # arrangements enumerated exhaustively below this count, sampled above
_N_SAMPLES = 600  # hashed pseudo-random arrangements drawn in large supercells
_ENERGY_TOL = 1e-6  # eV per decorated site: orderings closer than this are energetically tied
_FINGERPRINT_TOL = 1e-4  # eV per decorated site: closer pairs are checked with StructureMatcher
_VACANCY = ""


@dataclass(frozen=True)
class LibraryEntry:
    """One ordered structure of the library, with the provenance a dataset record needs."""

    id: str
    structure: Structure
    source: str
    family: str


# --------------------------------------------------------------------------- prototypes


def _frac(value: float | int | str) -> float:
    """YAML coordinates may be exact fractions ("1/3") so special positions stay exact."""
    return float(Fraction(value)) if isinstance(value, str) else float(value)


def _spacegroup_symbol(sg: dict) -> str:
    """pymatgen names alternative settings by the universal symbol, e.g. 'I41/amd:2'."""
    setting = sg.get("setting")
    return f"{sg['symbol'].replace('_', '')}:{setting}" if setting else sg["symbol"]


def _build_prototype(record: dict) -> Structure:
    lattice = Lattice.from_parameters(**{k: float(record["lattice"][k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")})
    species = [site["species"] for site in record["sites"]]
    coords = [[_frac(x) for x in site["coords"]] for site in record["sites"]]
    structure = Structure.from_spacegroup(_spacegroup_symbol(record["spacegroup"]), lattice, species, coords, tol=1e-3)
    number = SpacegroupAnalyzer(structure, symprec=_BUILD_SYMPREC).get_space_group_number()
    if number != record["spacegroup"]["number"]:
        raise StructureError(f"prototype {record['id']}: built space group {number}, expected {record['spacegroup']['number']}")
    if structure.composition.reduced_formula != Composition(record["formula"]).reduced_formula:
        raise StructureError(f"prototype {record['id']}: built {structure.composition.reduced_formula}, expected {record['formula']}")
    return structure


def _primitive(structure: Structure) -> Structure:
    """Primitive standard cell where it has fewer atoms: FEFF cost scales with the sites to run."""
    primitive = SpacegroupAnalyzer(structure, symprec=_BUILD_SYMPREC).get_primitive_standard_structure()
    return primitive if len(primitive) < len(structure) else structure


@dataclass(frozen=True)
class _Prototype:
    record: dict = field(hash=False)
    conventional: Structure = field(hash=False)
    primitive: Structure = field(hash=False)


@lru_cache(maxsize=4)
def _prototypes_from_text(text: str) -> dict[str, _Prototype]:
    records = yaml.safe_load(text)["prototypes"]
    prototypes: dict[str, _Prototype] = {}
    for record in records:
        if record["id"] in prototypes:
            raise StructureError(f"duplicate prototype id {record['id']}")
        conventional = _build_prototype(record)
        prototypes[record["id"]] = _Prototype(record, conventional, _primitive(conventional))
    return prototypes


def _read(path: str | Path | None) -> str:
    path = Path(path) if path is not None else DEFAULT_PROTOTYPES
    if not path.is_file():
        raise StructureError(f"prototype file not found: {path}")
    return path.read_text()


def load_prototypes(path: str | Path | None = None) -> list[LibraryEntry]:
    """The literature prototypes, as primitive cells, in file order."""
    return [
        LibraryEntry(f"lib-{pid}", p.primitive.copy(), p.record["source"], "prototype")
        for pid, p in _prototypes_from_text(_read(path)).items()
    ]


# --------------------------------------------------------------------------- ordering specs

_Matrix = tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]


def _diag(a: int, b: int, c: int) -> _Matrix:
    return ((a, 0, 0), (0, b, 0), (0, 0, c))


@dataclass(frozen=True)
class _Supercell:
    base: str  # "conventional" (cell as entered) or "primitive"
    matrix: _Matrix


@dataclass(frozen=True)
class _OrderingSpec:
    """Orderings of one composition on one sublattice of one prototype.

    ``sublattice`` selects the decorated sites by element and, optionally, by O
    coordination (4 = tetrahedral, 6 = octahedral). ``prefill`` replaces whole
    sublattices before ordering (e.g. Co on the tetrahedral spinel site). ``charges``
    are formal charges keyed by element or "element:CN"; they must neutralise every
    ordering. ``vegard`` maps each label to an end-member prototype whose volume per
    sublattice cation sets the cell volume.
    """

    family: str
    parent: str
    tag: str
    sublattice: tuple[str, int | None]
    occupancy: tuple[tuple[str, Fraction], ...]
    charges: tuple[tuple[str, float], ...]
    supercells: tuple[_Supercell, ...]
    n_pick: int
    prefill: tuple[tuple[tuple[str, int], str], ...] = ()
    vegard: tuple[tuple[str, str], ...] = ()


F = Fraction
_LAYERED_HEX221 = _Supercell("conventional", _diag(2, 2, 1))  # 12 sites per layer sublattice, 48 atoms
_LAYERED_RH222 = _Supercell("primitive", _diag(2, 2, 2))  # 8 sites, 32 atoms
_LAYERED_SQRT3 = _Supercell("conventional", ((2, 1, 0), (-1, 1, 0), (0, 0, 1)))  # 9 sites, 36 atoms
_LAYERED_HEX321 = _Supercell("conventional", _diag(3, 2, 1))  # 18 sites, 72 atoms
_ROCKSALT_P222 = _Supercell("primitive", _diag(2, 2, 2))  # 8 cations
_ROCKSALT_C112 = _Supercell("conventional", _diag(1, 1, 2))  # 8 cations
_ROCKSALT_C311 = _Supercell("conventional", _diag(3, 1, 1))  # 12 cations
_ROCKSALT_C222 = _Supercell("conventional", _diag(2, 2, 2))  # 32 cations, 64 atoms
_SPINEL_C111 = _Supercell("conventional", _diag(1, 1, 1))  # 8 tetrahedral + 16 octahedral cations
_SPINEL_P211 = _Supercell("primitive", _diag(2, 1, 1))  # 4 + 8 cations
_HAUSMANNITE_C111 = _Supercell("conventional", _diag(1, 1, 1))  # 4 + 8 cations
_HAUSMANNITE_C211 = _Supercell("conventional", _diag(2, 1, 1))  # 8 + 16 cations

_ROCKSALT_VEGARD = (("Co", "coo-rocksalt"), ("Ni", "nio-rocksalt"), ("Mn", "mno-rocksalt"))
_LAYERED_VEGARD = (("Co", "licoo2"), ("Ni", "linio2"), ("Mn", "limno2-monoclinic"))


def _tag(occupancy: dict[str, Fraction]) -> str:
    """Readable composition tag, e.g. {'Co': 1/2, 'Ni': 1/2} -> 'co50ni50'."""
    return "".join(f"{el.lower()}{round(100 * x):02d}" for el, x in sorted(occupancy.items()) if el)


def _specs() -> tuple[_OrderingSpec, ...]:
    """The derivative table: which orderings of which compositions enter the library."""
    specs: list[_OrderingSpec] = []
    x_values = (F(1), F(3, 4), F(1, 2), F(1, 4), F(0))

    # LixCoO2 and LixNiO2: Co/Ni take charge 4 - x; x = 0 keeps the O3 stacking.
    for parent, metal, family, xs, n_pick in (
        ("licoo2", "Co", "delithiation-LixCoO2", x_values, 5),
        ("linio2", "Ni", "delithiation-LixNiO2", x_values[1:4], 4),
    ):
        for x in xs:
            specs.append(
                _OrderingSpec(
                    family, parent, f"x{round(100 * x):03d}", ("Li", None),
                    (("Li", x), (_VACANCY, 1 - x)),
                    (("Li", 1.0), (metal, float(4 - x)), ("O", -2.0)),
                    (_LAYERED_HEX221, _LAYERED_RH222), n_pick,
                )
            )
    # LixMn2O4 spinel: Mn takes (8 - x) / 2.
    for x in x_values[1:4]:
        specs.append(
            _OrderingSpec(
                "delithiation-LixMn2O4", "limn2o4-spinel", f"x{round(100 * x):03d}", ("Li", None),
                (("Li", x), (_VACANCY, 1 - x)),
                (("Li", 1.0), ("Mn", float((8 - x) / 2)), ("O", -2.0)),
                (_SPINEL_C111, _SPINEL_P211), 5,
            )
        )

    # Rock-salt (M,M')O: all cations 2+, so ranking falls to the random-alloy criterion.
    rocksalt_cells = (_ROCKSALT_P222, _ROCKSALT_C112, _ROCKSALT_C222)
    for parent, host, guest in (("coo-rocksalt", "Co", "Ni"), ("nio-rocksalt", "Ni", "Mn"), ("coo-rocksalt", "Co", "Mn")):
        for y in (F(1, 4), F(1, 2), F(3, 4)):
            occupancy = {host: 1 - y, guest: y}
            specs.append(
                _OrderingSpec(
                    "substitution-rocksalt", parent, _tag(occupancy), (host, None), tuple(occupancy.items()),
                    ((host, 2.0), (guest, 2.0), ("O", -2.0)), rocksalt_cells, 5, vegard=_ROCKSALT_VEGARD,
                )
            )
    ternary = {"Co": F(1, 3), "Ni": F(1, 3), "Mn": F(1, 3)}
    specs.append(
        _OrderingSpec(
            "substitution-rocksalt", "coo-rocksalt", _tag(ternary), ("Co", None), tuple(ternary.items()),
            (("Co", 2.0), ("Ni", 2.0), ("Mn", 2.0), ("O", -2.0)), (_ROCKSALT_C311,), 5, vegard=_ROCKSALT_VEGARD,
        )
    )

    # Layered LiMO2: Ni2+/Mn4+ pairs as in NMC, Co3+, Ni3+ otherwise.
    layered_cells = (_LAYERED_HEX221, _LAYERED_RH222, _LAYERED_SQRT3)
    for parent, host, occupancy, charges in (
        ("licoo2", "Co", {"Co": F(3, 4), "Ni": F(1, 4)}, {"Co": 3.0, "Ni": 3.0}),
        ("licoo2", "Co", {"Co": F(1, 2), "Ni": F(1, 2)}, {"Co": 3.0, "Ni": 3.0}),
        ("licoo2", "Co", {"Co": F(1, 4), "Ni": F(3, 4)}, {"Co": 3.0, "Ni": 3.0}),
        ("licoo2", "Co", {"Co": F(1, 3), "Ni": F(1, 3), "Mn": F(1, 3)}, {"Co": 3.0, "Ni": 2.0, "Mn": 4.0}),
        ("linio2", "Ni", {"Ni": F(1, 2), "Mn": F(1, 2)}, {"Ni": 2.0, "Mn": 4.0}),
        ("linio2", "Ni", {"Ni": F(2, 3), "Mn": F(1, 6), "Co": F(1, 6)}, {"Ni": 2.75, "Mn": 4.0, "Co": 3.0}),
        ("licoo2", "Co", {"Co": F(1, 2), "Mn": F(1, 2)}, {"Co": 3.0, "Mn": 3.0}),
    ):
        specs.append(
            _OrderingSpec(
                "substitution-layered", parent, _tag(occupancy), (host, None), tuple(occupancy.items()),
                (("Li", 1.0), ("O", -2.0), *charges.items()), layered_cells + (_LAYERED_HEX321,), 5,
                vegard=_LAYERED_VEGARD,
            )
        )

    # Spinels: orderings on the octahedral (16d) sublattice.
    for parent, host, occupancy, charges, prefill in (
        ("co3o4-spinel", "Co", {"Co": F(1, 2), "Ni": F(1, 2)}, {"Co:4": 2.0, "Co": 3.0, "Ni": 3.0}, ()),  # NiCo2O4
        ("co3o4-spinel", "Co", {"Co": F(1, 2), "Mn": F(1, 2)}, {"Co:4": 2.0, "Co": 3.0, "Mn": 3.0}, ()),  # MnCo2O4
        ("co3o4-spinel", "Co", {"Co": F(3, 4), "Ni": F(1, 4)}, {"Co:4": 2.0, "Co": 3.0, "Ni": 3.0}, ()),
        ("limn2o4-spinel", "Mn", {"Mn": F(3, 4), "Ni": F(1, 4)}, {"Li": 1.0, "Mn": 4.0, "Ni": 2.0}, ()),  # LiNi0.5Mn1.5O4
        ("limn2o4-spinel", "Mn", {"Mn": F(1, 2), "Co": F(1, 2)}, {"Li": 1.0, "Mn": 4.0, "Co": 3.0}, ()),  # LiCoMnO4
        ("limn2o4-spinel", "Mn", {"Mn": F(3, 4), "Co": F(1, 4)}, {"Li": 1.0, "Mn": 11 / 3, "Co": 3.0}, ()),
        # inverse NiMn2O4: Mn2+ on the tetrahedral site, Ni2+/Mn4+ octahedral
        ("limn2o4-spinel", "Mn", {"Mn": F(1, 2), "Ni": F(1, 2)}, {"Mn:4": 2.0, "Mn": 4.0, "Ni": 2.0}, ((("Li", 4), "Mn"),)),
        # CoMn2O4 / Co(Co,Mn)2O4: Co2+ on the tetrahedral site of hausmannite
        ("mn3o4-hausmannite", "Mn", {"Mn": F(1)}, {"Co": 2.0, "Mn": 3.0}, ((("Mn", 4), "Co"),)),
        ("mn3o4-hausmannite", "Mn", {"Mn": F(3, 4), "Co": F(1, 4)}, {"Co:4": 2.0, "Mn": 3.0, "Co": 3.0}, ((("Mn", 4), "Co"),)),
        ("mn3o4-hausmannite", "Mn", {"Mn": F(1, 2), "Co": F(1, 2)}, {"Mn:4": 2.0, "Mn": 3.0, "Co": 3.0}, ()),
    ):
        cells = (_HAUSMANNITE_C111, _HAUSMANNITE_C211) if parent == "mn3o4-hausmannite" else (_SPINEL_C111, _SPINEL_P211)
        prefix = "".join(f"{new.lower()}tet-" for (_, new) in prefill)
        specs.append(
            _OrderingSpec(
                "substitution-spinel", parent, prefix + _tag(occupancy), (host, 6), tuple(occupancy.items()),
                (("O", -2.0), *charges.items()), cells, 5, prefill=prefill,
            )
        )
    return tuple(specs)

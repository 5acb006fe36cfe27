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

import argparse
import hashlib
import itertools
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

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
    parameters = ("a", "b", "c", "alpha", "beta", "gamma")
    lattice = Lattice.from_parameters(**{k: float(record["lattice"][k]) for k in parameters})
    species = [site["species"] for site in record["sites"]]
    coords = [[_frac(x) for x in site["coords"]] for site in record["sites"]]
    structure = Structure.from_spacegroup(_spacegroup_symbol(record["spacegroup"]), lattice, species, coords, tol=1e-3)
    number = SpacegroupAnalyzer(structure, symprec=_BUILD_SYMPREC).get_space_group_number()
    expected = record["spacegroup"]["number"]
    if number != expected:
        raise StructureError(f"prototype {record['id']}: built space group {number}, expected {expected}")
    formula = Composition(record["formula"])
    if not structure.composition.fractional_composition.almost_equals(formula.fractional_composition):
        built = structure.composition.reduced_formula
        raise StructureError(f"prototype {record['id']}: built {built}, expected {formula.reduced_formula}")
    return structure


def _primitive(structure: Structure) -> Structure:
    """Primitive standard cell where it has fewer atoms: FEFF cost scales with the sites to run."""
    primitive = SpacegroupAnalyzer(structure, symprec=_BUILD_SYMPREC).get_primitive_standard_structure()
    return primitive if len(primitive) < len(structure) else structure


@dataclass(frozen=True, eq=False)
class _Prototype:
    record: dict
    conventional: Structure  # cell as entered, used for supercells
    primitive: Structure  # cell the library ships


class _Prototypes(Mapping):
    """Prototype records by id, each built (space-group generation + primitive cell) on first access: a subset
    such as the CI cells pays for its own prototypes only."""

    def __init__(self, text: str):
        self._records: dict[str, dict] = {}
        for record in yaml.safe_load(text)["prototypes"]:
            if record["id"] in self._records:
                raise StructureError(f"duplicate prototype id {record['id']}")
            self._records[record["id"]] = record
        self._built: dict[str, _Prototype] = {}

    def __getitem__(self, pid: str) -> _Prototype:
        if pid not in self._built:
            record = self._records[pid]
            conventional = _build_prototype(record)
            self._built[pid] = _Prototype(record, conventional, _primitive(conventional))
        return self._built[pid]

    def __iter__(self):
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


@lru_cache(maxsize=4)
def _prototypes_from_text(text: str) -> _Prototypes:
    return _Prototypes(text)


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


_LAYERED_HEX221 = _Supercell("conventional", _diag(2, 2, 1))  # 12 Li + 12 M, 48 atoms
_LAYERED_RH222 = _Supercell("primitive", _diag(2, 2, 2))  # 8 Li + 8 M, 32 atoms
_LAYERED_SQRT3 = _Supercell("conventional", ((2, 1, 0), (-1, 1, 0), (0, 0, 1)))  # 9 Li + 9 M, 36 atoms
_LAYERED_HEX321 = _Supercell("conventional", _diag(3, 2, 1))  # 18 Li + 18 M, 72 atoms
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
    F = Fraction
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
    binaries = (("coo-rocksalt", "Co", "Ni"), ("nio-rocksalt", "Ni", "Mn"), ("coo-rocksalt", "Co", "Mn"))
    for parent, host, guest in binaries:
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
    layered_cells = (_LAYERED_HEX221, _LAYERED_RH222, _LAYERED_SQRT3, _LAYERED_HEX321)
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
                (("Li", 1.0), ("O", -2.0), *charges.items()), layered_cells, 5,
                vegard=_LAYERED_VEGARD,
            )
        )

    # Spinels: orderings on the octahedral (16d) sublattice.
    tet_mn, tet_co = ((("Li", 4), "Mn"),), ((("Mn", 4), "Co"),)
    for parent, host, occupancy, charges, prefill in (
        ("co3o4-spinel", "Co", {"Co": F(1, 2), "Ni": F(1, 2)}, {"Co:4": 2.0, "Co": 3.0, "Ni": 3.0}, ()),  # NiCo2O4
        ("co3o4-spinel", "Co", {"Co": F(1, 2), "Mn": F(1, 2)}, {"Co:4": 2.0, "Co": 3.0, "Mn": 3.0}, ()),  # MnCo2O4
        ("co3o4-spinel", "Co", {"Co": F(3, 4), "Ni": F(1, 4)}, {"Co:4": 2.0, "Co": 3.0, "Ni": 3.0}, ()),
        # LiNi0.5Mn1.5O4
        ("limn2o4-spinel", "Mn", {"Mn": F(3, 4), "Ni": F(1, 4)}, {"Li": 1.0, "Mn": 4.0, "Ni": 2.0}, ()),
        ("limn2o4-spinel", "Mn", {"Mn": F(1, 2), "Co": F(1, 2)}, {"Li": 1.0, "Mn": 4.0, "Co": 3.0}, ()),  # LiCoMnO4
        ("limn2o4-spinel", "Mn", {"Mn": F(3, 4), "Co": F(1, 4)}, {"Li": 1.0, "Mn": 11 / 3, "Co": 3.0}, ()),
        # inverse NiMn2O4: Mn2+ on the tetrahedral site, Ni2+/Mn4+ octahedral
        ("limn2o4-spinel", "Mn", {"Mn": F(1, 2), "Ni": F(1, 2)}, {"Mn:4": 2.0, "Mn": 4.0, "Ni": 2.0}, tet_mn),
        # CoMn2O4 / Co(Co,Mn)2O4: Co2+ on the tetrahedral site of hausmannite
        ("mn3o4-hausmannite", "Mn", {"Mn": F(1)}, {"Co": 2.0, "Mn": 3.0}, tet_co),
        ("mn3o4-hausmannite", "Mn", {"Mn": F(3, 4), "Co": F(1, 4)}, {"Co:4": 2.0, "Mn": 3.0, "Co": 3.0}, tet_co),
        ("mn3o4-hausmannite", "Mn", {"Mn": F(1, 2), "Co": F(1, 2)}, {"Mn:4": 2.0, "Mn": 3.0, "Co": 3.0}, ()),
    ):
        hausmannite = parent == "mn3o4-hausmannite"
        cells = (_HAUSMANNITE_C111, _HAUSMANNITE_C211) if hausmannite else (_SPINEL_C111, _SPINEL_P211)
        prefix = "".join(f"{new.lower()}tet-" for (_, new) in prefill)
        specs.append(
            _OrderingSpec(
                "substitution-spinel", parent, prefix + _tag(occupancy), (host, 6), tuple(occupancy.items()),
                (("O", -2.0), *charges.items()), cells, 5, prefill=prefill,
            )
        )
    return tuple(specs)


# --------------------------------------------------------------------------- enumeration


def _site_key(site) -> tuple:
    """Sort key that fixes site order by geometry, independent of how pymatgen built the cell."""
    frac = np.round(np.mod(site.frac_coords, 1.0), 6) % 1.0
    return (site.specie.symbol, *frac.tolist())


def _o_coordination(structure: Structure) -> np.ndarray:
    """Number of O neighbours of every site within the coordination cutoff."""
    centers, points, _, _ = structure.get_neighbor_list(_COORDINATION_CUTOFF)
    is_oxygen = np.array([site.specie.symbol == "O" for site in structure])
    coordination = np.zeros(len(structure), dtype=int)
    np.add.at(coordination, centers[is_oxygen[points]], 1)
    return coordination


def _select(structure: Structure, coordination: np.ndarray, element: str, cn: int | None) -> np.ndarray:
    chosen = [
        i for i, site in enumerate(structure) if site.specie.symbol == element and (cn is None or coordination[i] == cn)
    ]
    return np.array(chosen, dtype=int)


@dataclass(frozen=True, eq=False)
class _Template:
    """A supercell ready for decoration, with everything that does not depend on the ordering."""

    structure: Structure
    sites: np.ndarray  # indices of the decorated sublattice
    perms: np.ndarray  # (n_ops, n_sites): sublattice images under the supercell space group
    ewald: np.ndarray  # Ewald energy matrix for unit charges on all sites
    bonds: np.ndarray  # (n_bonds, 2): directed first-shell pairs within the sublattice
    charge_keys: tuple[str, ...]  # "element:CN" of every site


def _sublattice_permutations(structure: Structure, sites: np.ndarray) -> np.ndarray:
    ops = SpacegroupAnalyzer(structure, symprec=_BUILD_SYMPREC).get_symmetry_operations()
    frac = structure.frac_coords[sites]
    perms = []
    for op in ops:
        delta = op.operate_multi(frac)[:, None, :] - frac[None, :, :]
        delta -= np.round(delta)
        dist = np.linalg.norm(delta @ structure.lattice.matrix, axis=-1)
        perm = dist.argmin(axis=1)
        if dist[np.arange(len(sites)), perm].max() > 1e-2 or len(set(perm.tolist())) != len(sites):
            raise StructureError("symmetry operation does not map the sublattice onto itself")
        perms.append(perm)
    return np.unique(np.array(perms), axis=0)


def _first_shell_bonds(structure: Structure, sites: np.ndarray) -> np.ndarray:
    sublattice = Structure.from_sites([structure[int(i)] for i in sites])
    centers, points, _, distances = sublattice.get_neighbor_list(8.0)
    shell = distances < distances.min() * 1.05
    return np.stack([centers[shell], points[shell]], axis=1)


@lru_cache(maxsize=None)
def _template(
    text: str, parent: str, supercell: _Supercell, sublattice: tuple[str, int | None], prefill: tuple
) -> _Template:
    prototype = _prototypes_from_text(text)[parent]
    base = prototype.conventional if supercell.base == "conventional" else prototype.primitive
    structure = SupercellTransformation(supercell.matrix).apply_transformation(base)
    for (element, cn), new in prefill:
        targets = _select(structure, _o_coordination(structure), element, cn)
        structure = ReplaceSiteSpeciesTransformation({int(i): new for i in targets}).apply_transformation(structure)
    structure = Structure.from_sites(sorted(structure, key=_site_key))
    coordination = _o_coordination(structure)
    sites = _select(structure, coordination, *sublattice)
    unit = structure.copy()
    unit.add_oxidation_state_by_site([1.0] * len(unit))
    return _Template(
        structure=structure,
        sites=sites,
        perms=_sublattice_permutations(structure, sites),
        ewald=EwaldSummation(unit).total_energy_matrix,
        bonds=_first_shell_bonds(structure, sites),
        charge_keys=tuple(f"{site.specie.symbol}:{cn}" for site, cn in zip(structure, coordination)),
    )


def _multinomial(counts: Sequence[int]) -> int:
    return math.factorial(sum(counts)) // math.prod(math.factorial(c) for c in counts)


def _exhaustive(counts: Sequence[int]) -> np.ndarray:
    """Every arrangement of the labels 0..k-1 with the given counts on n sites."""
    n = sum(counts)
    rows: list[np.ndarray] = []

    def fill(row: np.ndarray, free: list[int], label: int) -> None:
        if label == len(counts) - 1:
            row[free] = label
            rows.append(row)
            return
        for chosen in itertools.combinations(free, counts[label]):
            child = row.copy()
            child[list(chosen)] = label
            fill(child, [i for i in free if i not in chosen], label + 1)

    fill(np.zeros(n, dtype=np.int64), list(range(n)), 0)
    return np.array(rows)


def _sampled(counts: Sequence[int], seed: str) -> np.ndarray:
    """Pseudo-random arrangements from a hash-based shuffle, identical on every machine and NumPy version."""
    base = np.repeat(np.arange(len(counts)), counts)
    rows = []
    for sample in range(_N_SAMPLES):
        keys = [hashlib.blake2b(f"{seed}/{sample}/{j}".encode(), digest_size=8).digest() for j in range(len(base))]
        rows.append(base[np.array(sorted(range(len(base)), key=keys.__getitem__))])
    return np.array(rows)


def _canonical(rows: np.ndarray, perms: np.ndarray, k: int) -> np.ndarray:
    """Symmetry-distinct arrangements: each row mapped to the smallest base-k code in its orbit."""
    n = rows.shape[1]
    if k**n >= 2**63:
        raise StructureError(f"sublattice of {n} sites with {k} labels is too large to encode")
    weights = np.array([k**p for p in range(n - 1, -1, -1)], dtype=np.int64)
    best = np.full(len(rows), np.iinfo(np.int64).max)
    for perm in perms:
        np.minimum(best, rows[:, perm] @ weights, out=best)
    codes = np.unique(best)
    return (codes[:, None] // weights[None, :]) % k


def _pair_deviation(digits: np.ndarray, bonds: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Distance of first-shell pair statistics from a random alloy's (0 = random-like).

    Computed from integer counts, so equal deviations tie exactly on every machine.
    """
    k, n, m = len(counts), digits.shape[1], len(bonds)
    pairs = digits[:, bonds[:, 0]] * k + digits[:, bonds[:, 1]]
    observed = np.stack([(pairs == v).sum(axis=1) for v in range(k * k)], axis=1)
    expected = np.array([m * counts[a] * counts[b] for a in range(k) for b in range(k)])
    return np.abs(n * n * observed - expected).sum(axis=1) / (n * n * m)


def _charge(charges: dict[str, float], key: str) -> float:
    element = key.split(":")[0]
    return charges[key] if key in charges else charges[element]


def _ewald_energies(template: _Template, digits: np.ndarray, label_charges: np.ndarray, rest: np.ndarray) -> np.ndarray:
    q = np.tile(rest, (len(digits), 1))
    q[:, template.sites] = label_charges[digits]
    return ((q @ template.ewald) * q).sum(axis=1) / len(template.sites)


@dataclass(frozen=True, eq=False)
class _Candidate:
    energy: float  # Ewald energy per decorated site, formal charges
    fingerprint: float  # Ewald energy per decorated site with one distinct charge per label
    deviation: float
    order: tuple[int, int]  # (supercell position in the spec, canonical-code rank): a stable tie-break
    template: _Template
    supercell: _Supercell
    digits: tuple[int, ...]  # label index of every sublattice site


def _candidates(text: str, spec: _OrderingSpec, labels: tuple[str, ...], max_sites: int) -> list[_Candidate]:
    charges = dict(spec.charges)
    label_charges = np.array([0.0 if label == _VACANCY else charges[label] for label in labels])
    occupancy = dict(spec.occupancy)
    # one distinct extra charge per label, zero on average so the cell stays neutral
    offsets = np.arange(1.0, len(labels) + 1.0)
    fingerprint_charges = label_charges + offsets - sum(float(occupancy[l]) * o for l, o in zip(labels, offsets))
    found: list[_Candidate] = []
    for t_index, supercell in enumerate(spec.supercells):
        template = _template(text, spec.parent, supercell, spec.sublattice, spec.prefill)
        n = len(template.sites)
        exact = [occupancy[label] * n for label in labels]
        if any(c.denominator != 1 for c in exact):
            continue
        counts = [int(c) for c in exact]
        if len(template.structure) - (counts[0] if labels[0] == _VACANCY else 0) > max_sites:
            continue
        rest = np.array([_charge(charges, key) for key in template.charge_keys])
        seed = f"{spec.parent}|{supercell}|{spec.sublattice}|{spec.prefill}|{counts}"
        rows = _exhaustive(counts) if _multinomial(counts) <= _EXHAUSTIVE_LIMIT else _sampled(counts, seed)
        digits = _canonical(rows, template.perms, len(labels))
        energies = _ewald_energies(template, digits, label_charges, rest)
        neutral = rest.copy()
        neutral[template.sites] = label_charges[digits[0]]
        if abs(neutral.sum()) > 1e-6:
            raise StructureError(f"{spec.parent}-{spec.tag}: formal charges do not balance ({neutral.sum():+.3f})")
        fingerprints = _ewald_energies(template, digits, fingerprint_charges, rest)
        deviations = _pair_deviation(digits, template.bonds, counts)
        for i, row in enumerate(digits):
            found.append(
                _Candidate(float(energies[i]), float(fingerprints[i]), float(deviations[i]),
                           (t_index, i), template, supercell, tuple(int(d) for d in row))
            )
    return found


def _ranked(candidates: list[_Candidate]) -> list[_Candidate]:
    """Lowest Ewald energy first; energetic ties broken by closeness to a random alloy."""
    by_energy = sorted(candidates, key=lambda c: (c.energy, c.order))
    tier, tiers, previous = 0, {}, None
    for c in by_energy:
        if previous is not None and c.energy - previous > _ENERGY_TOL:
            tier += 1
        tiers[c.order] = tier
        previous = c.energy
    return sorted(candidates, key=lambda c: (tiers[c.order], c.deviation, c.order))


def _decorate(text: str, spec: _OrderingSpec, labels: tuple[str, ...], c: _Candidate) -> Structure:
    template = c.template
    decorated = [labels[d] for d in c.digits]
    replace_map = {
        int(i): label
        for i, label in zip(template.sites, decorated)
        if label != _VACANCY and label != template.structure[int(i)].specie.symbol
    }
    structure = template.structure.copy()
    if replace_map:
        structure = ReplaceSiteSpeciesTransformation(replace_map).apply_transformation(structure)
    vacancies = [int(i) for i, label in zip(template.sites, decorated) if label == _VACANCY]
    if vacancies:
        structure = RemoveSitesTransformation(vacancies).apply_transformation(structure)
    if spec.vegard:
        prototypes = _prototypes_from_text(text)
        end_members = dict(spec.vegard)
        volume_per_cation = {
            label: prototypes[end_members[label]].conventional.volume
            / prototypes[end_members[label]].conventional.composition[label]
            for label in set(decorated)
        }
        structure.scale_lattice(sum(volume_per_cation[label] for label in decorated))
    return structure


def _variant_id(spec: _OrderingSpec, labels: tuple[str, ...], c: _Candidate) -> str:
    """Content hash of the canonical ordering: stable across runs, machines and enumeration order."""
    decoration = ",".join(labels[d] or "Va" for d in c.digits)
    key = f"{spec.parent}|{c.supercell.base}|{c.supercell.matrix}|{spec.prefill}|{spec.sublattice}|{decoration}"
    return f"lib-{spec.parent}-{spec.tag}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _derivatives(text: str, spec: _OrderingSpec, max_sites: int) -> list[LibraryEntry]:
    labels = tuple(sorted(label for label, _ in spec.occupancy))
    matcher = StructureMatcher()
    source = _prototypes_from_text(text)[spec.parent].record["source"]
    element, cn = spec.sublattice
    site_kind = f"{element} (CN {cn})" if cn else element
    picked: list[tuple[_Candidate, Structure]] = []
    for c in _ranked(_candidates(text, spec, labels, max_sites)):
        structure = _decorate(text, spec, labels, c)
        if any(
            abs(c.energy - p.energy) < _FINGERPRINT_TOL
            and abs(c.fingerprint - p.fingerprint) < _FINGERPRINT_TOL
            and matcher.fit(structure, s)
            for p, s in picked
        ):
            continue  # same ordering reached through another supercell or a lattice-changing operation
        picked.append((c, structure))
        if len(picked) == spec.n_pick:
            break
    entries = []
    for rank, (c, structure) in enumerate(picked):
        size = round(abs(np.linalg.det(np.array(c.supercell.matrix))))
        vegard = ", Vegard volume" if spec.vegard else ""
        note = (
            f"{structure.composition.reduced_formula} ordering on the {site_kind} sublattice of lib-{spec.parent} "
            f"({size}x {c.supercell.base} cell, Ewald rank {rank + 1} of the kept orderings{vegard}); parent: {source}"
        )
        entries.append(LibraryEntry(_variant_id(spec, labels, c), structure, note, spec.family))
    return entries


# --------------------------------------------------------------------------- library


@lru_cache(maxsize=4)
def _library(text: str, include_derivatives: bool, max_sites: int) -> tuple[LibraryEntry, ...]:
    entries = [
        LibraryEntry(f"lib-{pid}", p.primitive, p.record["source"], "prototype")
        for pid, p in _prototypes_from_text(text).items()
        if len(p.primitive) <= max_sites
    ]
    if include_derivatives:
        for spec in _specs():
            entries.extend(_derivatives(text, spec, max_sites))
    duplicates = [i for i, n in Counter(e.id for e in entries).items() if n > 1]
    if duplicates:
        raise StructureError(f"library id collision: {duplicates}")
    return tuple(entries)


def build_library(
    prototypes_path: str | Path | None = None,
    include_derivatives: bool = True,
    max_sites: int = 80,
    only_ids: Sequence[str] | None = None,
) -> list[LibraryEntry]:
    """Prototypes followed by enumerated derivatives, in a fixed order.

    ``max_sites`` drops larger cells and the supercells that would give them, so the
    orderings kept for a composition come from the allowed supercells only.
    ``only_ids`` keeps the listed ids (library order); when they are all prototypes,
    no derivative is enumerated, so CI subsets stay fast.
    """
    text = _read(prototypes_path)
    prototypes = _prototypes_from_text(text)
    wanted = None if only_ids is None else set(only_ids)
    if wanted is not None and wanted <= {f"lib-{pid}" for pid in prototypes}:  # build those prototypes only
        entries = tuple(LibraryEntry(f"lib-{pid}", prototypes[pid].primitive, prototypes[pid].record["source"],
                                     "prototype")
                        for pid in prototypes
                        if f"lib-{pid}" in wanted and len(prototypes[pid].primitive) <= max_sites)
    else:
        entries = _library(text, include_derivatives, max_sites)
    if wanted is not None:
        missing = sorted(wanted - {e.id for e in entries})
        if missing:
            raise StructureError(f"not in the library (max_sites={max_sites}): {', '.join(missing)}")
        entries = tuple(e for e in entries if e.id in wanted)
    return [replace(e, structure=e.structure.copy()) for e in entries]


def count_nonequivalent_sites(entries: Sequence[LibraryEntry], symprec: float = 0.01) -> Counter:
    """Nonequivalent absorbing sites per element over the given entries."""
    from ..sites import nonequivalent_sites

    counts: Counter = Counter()
    for entry in entries:
        counts.update(site["element"] for site in nonequivalent_sites(entry.structure, ABSORBERS, symprec))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Print per-family structure counts and per-element nonequivalent-site counts."""
    parser = argparse.ArgumentParser(description="Print structure and nonequivalent-site counts of the library.")
    parser.add_argument("--prototypes", default=None, help="prototype YAML (default: the embedded one)")
    parser.add_argument("--max-sites", type=int, default=80)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    entries = build_library(args.prototypes, max_sites=args.max_sites)
    elapsed = time.perf_counter() - start
    print(f"structures: {len(entries)} (build_library: {elapsed:.1f} s)")
    for family, n in Counter(e.family for e in entries).items():
        print(f"  {family:<26}{n:>6}")
    sites = count_nonequivalent_sites(entries)
    print(f"nonequivalent sites (symprec=0.01): {sum(sites.values())}")
    for element in ABSORBERS:
        print(f"  {element:<26}{sites.get(element, 0):>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

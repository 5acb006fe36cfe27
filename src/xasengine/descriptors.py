"""Per-site local-structure descriptors used as labels for XAS spectra.

The descriptor set follows Zhong et al. (2026, "Spectral Pattern Translator") and
Carbone et al. (2019): oxidation state, first/second-shell coordination, bond-length
spread, point-group order and, depending on whether the absorber is O, oxygen-specific
quantities. First-shell neighbours come from pymatgen's CrystalNN with default
parameters run on the oxidation-state-decorated structure, so that ionic radii enter
its distance weighting.

Descriptor definitions (site ``i``; "first shell" = CrystalNN neighbours of ``i``):

- OS: oxidation state of ``i`` (bond valence, else composition guess); NaN (unlabelled) when only a fractional
  per-element guess exists, e.g. 2.125 for Co in a mixed-valence cell where bond valence failed: that says
  which valences the element mixes, not which one this site has. In a glass (amorphous cells, where
  BVAnalyzer's symmetry-based assignment has nothing to work with) such an element's sites are instead ranked
  by their bond-valence sum and take the two neighbouring integers, the higher on the largest sums, in the
  proportion that keeps the cell neutral (``os_method`` "bv_ranked").
- CN: number of first-shell neighbours.
- CN2: number of unique sites, identified by (index, periodic image), that are CrystalNN
  neighbours of first-shell neighbours, excluding ``i`` itself and the first shell.
- NNRS: population standard deviation of first-shell bond lengths (Å).
- PSGO: order of the point group of the crystal's space group (same for all sites).
- OCN: number of O in the first shell (non-O sites only).
- MOOD: minimum O-O distance among first-shell O (non-O sites with >= 2 such O).
- NNOSM: mean oxidation state of the first shell (O sites only).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from pymatgen.analysis.bond_valence import BVAnalyzer
from pymatgen.analysis.local_env import CrystalNN
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer, SymmetryUndeterminedError

from xasengine.errors import DescriptorError

DESCRIPTORS_NON_O = ("OS", "CN", "CN2", "NNRS", "PSGO", "OCN", "MOOD")
DESCRIPTORS_O = ("OS", "CN", "CN2", "NNRS", "NNOSM", "PSGO")
ALL_DESCRIPTORS = ("OS", "CN", "CN2", "NNRS", "PSGO", "OCN", "MOOD", "NNOSM")

# Descriptors that need CrystalNN; a per-site neighbour failure leaves only these NaN.
_NEIGHBOUR_DESCRIPTORS = ("CN", "CN2", "NNRS", "OCN", "MOOD", "NNOSM")

_Image = tuple[int, int, int]
_ORIGIN: _Image = (0, 0, 0)


def descriptor_applies(name: str, element: str) -> bool:
    """Whether descriptor ``name`` is defined for an absorber of ``element`` (e.g. "Co", "O")."""
    if name not in ALL_DESCRIPTORS:
        raise DescriptorError(f"unknown descriptor {name!r}; expected one of {', '.join(ALL_DESCRIPTORS)}")
    return name in (DESCRIPTORS_O if element == "O" else DESCRIPTORS_NON_O)


def decorate_oxidation_states(structure: Structure) -> tuple[Structure, str]:
    """Return a copy of ``structure`` with per-site oxidation states and the method used.

    Bond valence is tried first because it resolves mixed valence per site (Co3O4:
    tetrahedral Co2+, octahedral Co3+); ``"bv_nosym"`` retries it without symmetry
    averaging, which helps when symmetry-equivalent sites must take different valences.
    ``"guess"`` falls back to charge-balanced composition guesses (one value per
    element, possibly fractional); metals and intermetallics with no such guess get 0.
    Any oxidation states already on ``structure`` are ignored, so the method is always
    one of these three.
    """
    formula = structure.composition.reduced_formula
    if not structure.is_ordered:
        raise DescriptorError(f"{formula}: disordered structure (partial occupancies); order it first")
    plain = structure.copy()
    plain.remove_oxidation_states()

    for method, analyzer in (("bv", BVAnalyzer()), ("bv_nosym", BVAnalyzer(symm_tol=0))):
        try:
            valences = analyzer.get_valences(plain)
        except ValueError:  # BVAnalyzer's "Valences cannot be assigned!"
            continue
        decorated = plain.copy()
        decorated.add_oxidation_state_by_site(valences)
        return decorated, method

    guesses = plain.composition.oxi_state_guesses()
    if guesses:
        oxidation_states = guesses[0]
    elif all(element.is_metal for element in plain.composition.elements):
        oxidation_states = {element.symbol: 0 for element in plain.composition.elements}
    else:
        raise DescriptorError(
            f"{formula}: no oxidation-state assignment (bond valence failed and no "
            "charge-balanced guess exists); check for missing atoms (e.g. H) or a "
            "non-stoichiometric cell"
        )
    decorated = plain.copy()
    decorated.add_oxidation_state_by_element(oxidation_states)
    return decorated, "guess"


BV_NEIGHBOUR_RADIUS = 3.0  # Å, bonds counted in a site's bond-valence sum (first shell of a TM oxide)


def bv_ranked_valences(structure: Structure, guess: dict[str, float]) -> list[float]:
    """Integer valences per site from a charge-balanced per-element guess, for a glass (see OS above)."""
    from pymatgen.analysis.bond_valence import calculate_bv_sum

    valences = [float(guess[site.specie.symbol]) for site in structure]
    for element, value in guess.items():
        if float(value).is_integer():
            continue
        indices = [i for i, site in enumerate(structure) if site.specie.symbol == element]
        low = math.floor(value)
        n_high = round((value - low) * len(indices))
        sums = [calculate_bv_sum(structure[i], structure.get_neighbors(structure[i], BV_NEIGHBOUR_RADIUS))
                for i in indices]
        for rank, j in enumerate(np.argsort(sums, kind="stable")[::-1]):
            valences[indices[j]] = float(low + 1 if rank < n_high else low)
    return valences


def _glass_oxidation_states(structure: Structure) -> tuple[Structure, str]:
    decorated, method = decorate_oxidation_states(structure)
    if method != "guess" or all(float(site.specie.oxi_state).is_integer() for site in decorated):
        return decorated, method
    plain = structure.copy()
    plain.remove_oxidation_states()
    guess = {site.specie.symbol: float(site.specie.oxi_state) for site in decorated}
    out = plain.copy()
    out.add_oxidation_state_by_site(bv_ranked_valences(plain, guess))
    return out, "bv_ranked"


def site_descriptors(
    structure: Structure, site_indices: list[int] | None = None, symprec: float = 0.01, glass: bool = False
) -> dict[int, dict]:
    """Descriptors for each requested site (default: all sites), keyed by site index.

    Each value holds every name in ALL_DESCRIPTORS as a float (NaN where it does not
    apply to the site's element, see ``descriptor_applies``), plus ``"element"`` and
    ``"os_method"``. If CrystalNN fails for a site (or for a first-shell neighbour
    needed for CN2) that site's neighbour-based descriptors are NaN and ``"error"``
    holds the message; OS and PSGO do not depend on neighbours and are kept.
    Structure-level problems raise DescriptorError.
    """
    formula = structure.composition.reduced_formula
    if site_indices is None:
        site_indices = list(range(len(structure)))
    out_of_range = [i for i in site_indices if not 0 <= i < len(structure)]
    if out_of_range:
        raise DescriptorError(f"{formula}: site indices {out_of_range} out of range for {len(structure)} sites")

    decorated, os_method = (_glass_oxidation_states if glass else decorate_oxidation_states)(structure)
    psgo = _point_group_order(structure, symprec)
    neighbours = _neighbour_cache(decorated)

    results = {}
    for i in site_indices:
        site = decorated[i]
        element = site.specie.symbol
        row = {name: math.nan for name in ALL_DESCRIPTORS}
        oxidation_state = float(site.specie.oxi_state)
        row.update(OS=oxidation_state if oxidation_state.is_integer() else math.nan, PSGO=psgo, element=element,
                   os_method=os_method)
        try:
            row.update(_neighbour_descriptors(decorated, i, neighbours))
        except Exception as exc:  # one bad site must not lose the structure
            row["error"] = f"{type(exc).__name__}: {exc}"
        for name in _NEIGHBOUR_DESCRIPTORS:
            if not descriptor_applies(name, element):
                row[name] = math.nan
        results[i] = row
    return results


def _point_group_order(structure: Structure, symprec: float) -> float:
    """Order of the crystal's point group, from the undecorated structure so that
    oxidation-state labels cannot lower the symmetry."""
    plain = structure.copy()
    plain.remove_oxidation_states()
    try:
        return float(len(SpacegroupAnalyzer(plain, symprec=symprec).get_point_group_operations()))
    except SymmetryUndeterminedError as exc:
        raise DescriptorError(
            f"{structure.composition.reduced_formula}: symmetry analysis failed at symprec={symprec} ({exc})"
        ) from exc


def _neighbour_cache(structure: Structure) -> Callable[[int], list[dict]]:
    """CrystalNN neighbours per site index, computed at most once (failures included)."""
    crystal_nn = CrystalNN()
    cache: dict[int, list[dict] | Exception] = {}

    def neighbours(index: int) -> list[dict]:
        if index not in cache:
            try:
                cache[index] = crystal_nn.get_nn_info(structure, index)
            except Exception as exc:  # re-raised to every site that needs it
                cache[index] = exc
        result = cache[index]
        if isinstance(result, Exception):
            raise result
        return result

    return neighbours


def _neighbour_descriptors(
    structure: Structure, i: int, neighbours: Callable[[int], list[dict]]
) -> dict[str, float]:
    first = neighbours(i)
    centre = structure[i].coords
    bond_lengths = np.array([np.linalg.norm(n["site"].coords - centre) for n in first])
    o_coords = np.array([n["site"].coords for n in first if n["site"].specie.symbol == "O"])
    oxidation_states = [n["site"].specie.oxi_state for n in first]
    return {
        "CN": float(len(first)),
        "CN2": float(_second_shell_size(i, first, neighbours)),
        "NNRS": float(np.std(bond_lengths)) if len(first) else math.nan,
        "OCN": float(len(o_coords)),
        "MOOD": _min_pair_distance(o_coords),
        "NNOSM": float(np.mean(oxidation_states)) if first else math.nan,
    }


def _second_shell_size(i: int, first: list[dict], neighbours: Callable[[int], list[dict]]) -> int:
    """Unique (index, image) sites bonded to the first shell, excluding the absorber and
    the first shell itself. Images of second neighbours are shifted by the image of the
    first neighbour they were reached through."""
    first_keys = {(n["site_index"], _image(n["image"])) for n in first}
    second: set[tuple[int, _Image]] = set()
    for n in first:
        shift = np.asarray(n["image"])
        for m in neighbours(n["site_index"]):
            second.add((m["site_index"], _image(shift + np.asarray(m["image"]))))
    second -= first_keys
    second.discard((i, _ORIGIN))
    return len(second)


def _image(vector) -> _Image:
    return tuple(int(round(x)) for x in vector)


def _min_pair_distance(coords: np.ndarray) -> float:
    if len(coords) < 2:
        return math.nan
    diffs = coords[:, None, :] - coords[None, :, :]
    distances = np.linalg.norm(diffs, axis=-1)
    return float(distances[np.triu_indices(len(coords), k=1)].min())


def descriptor_record(record, manifest: dict, symprec: float) -> dict:
    """Stage output for one structure: descriptors of its absorbing sites, or the reason they are missing."""
    indices = [s["site_index"] for s in manifest["sites"]]
    try:
        sites = site_descriptors(record.structure, indices, symprec=symprec,
                                 glass=getattr(record, "site_sample", None) is not None)
    except DescriptorError as exc:
        return {"structure_id": record.id, "status": "failed", "message": str(exc), "os_method": "", "sites": {}}
    methods = {s["os_method"] for s in sites.values()}
    return {
        "structure_id": record.id,
        "status": "ok",
        "message": "",
        "os_method": methods.pop() if len(methods) == 1 else ",".join(sorted(methods)),
        "sites": {str(i): d for i, d in sites.items()},
    }

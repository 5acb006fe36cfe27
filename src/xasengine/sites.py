"""Symmetry-nonequivalent absorbing sites: one spectrum per orbit, weighted by its multiplicity.

A glass has no symmetry to reduce by (every site is its own orbit), so for an amorphous cell a seeded sample of
each absorber's sites stands for the cell, each with multiplicity 1."""

from __future__ import annotations

import hashlib

import numpy as np

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from .errors import SiteError


def nonequivalent_sites(structure: Structure, absorbers: list[str], symprec: float = 0.01) -> list[dict]:
    """First site of each symmetry orbit whose element is an absorber (Lightshow-style site manifest)."""
    try:
        sga = SpacegroupAnalyzer(structure, symprec=symprec)
        symmetrized = sga.get_symmetrized_structure()
    except Exception as exc:  # spglib failures surface as several exception types
        raise SiteError(f"symmetry analysis failed ({type(exc).__name__}: {exc})") from exc
    sites = []
    for indices, wyckoff in zip(symmetrized.equivalent_indices, symmetrized.wyckoff_symbols):
        first = min(indices)
        element = structure[first].specie.symbol
        if element in absorbers:
            sites.append(
                {
                    "site_index": int(first),
                    "element": element,
                    "multiplicity": len(indices),
                    "wyckoff": wyckoff,
                    "equivalent_indices": sorted(int(i) for i in indices),
                }
            )
    return sorted(sites, key=lambda s: s["site_index"])


def sampled_sites(structure: Structure, absorbers: list[str], per_element: int, seed_text: str) -> list[dict]:
    """Up to per_element sites of each absorber, drawn with a seed derived from seed_text (the structure id), so
    the same cell always gives the same sample and adding a cell moves no other cell's sites."""
    rng = np.random.default_rng(int(hashlib.sha256(seed_text.encode()).hexdigest()[:16], 16))
    sites = []
    for element in absorbers:
        indices = [i for i, site in enumerate(structure) if site.specie.symbol == element]
        if not indices:
            continue
        chosen = rng.choice(indices, size=min(per_element, len(indices)), replace=False)
        sites += [{"site_index": int(i), "element": element, "multiplicity": 1, "wyckoff": "sampled",
                   "equivalent_indices": [int(i)]} for i in chosen]
    return sorted(sites, key=lambda s: s["site_index"])


def site_manifest(record, absorbers: list[str], edge: str, symprec: float) -> dict:
    if record.site_sample is not None:
        sites = sampled_sites(record.structure, absorbers, record.site_sample, record.id)
        space_group = "P1 (amorphous: sampled sites, no symmetry reduction)"
    else:
        sites = nonequivalent_sites(record.structure, absorbers, symprec)
        space_group = SpacegroupAnalyzer(record.structure, symprec=symprec).get_space_group_symbol()
    return {
        "structure_id": record.id,
        "structure_hash": record.hash,
        "formula": record.structure.composition.reduced_formula,
        "edge": edge,
        "space_group": space_group,
        "sites": sites,
    }

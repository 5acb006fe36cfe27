"""Symmetry-nonequivalent absorbing sites: one spectrum per orbit, weighted by its multiplicity."""

from __future__ import annotations

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


def site_manifest(record, absorbers: list[str], edge: str, symprec: float) -> dict:
    return {
        "structure_id": record.id,
        "structure_hash": record.hash,
        "formula": record.structure.composition.reduced_formula,
        "edge": edge,
        "space_group": SpacegroupAnalyzer(record.structure, symprec=symprec).get_space_group_symbol(),
        "sites": nonequivalent_sites(record.structure, absorbers, symprec),
    }

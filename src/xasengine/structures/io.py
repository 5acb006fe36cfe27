"""Structure records on disk: one JSON per structure with a stable id and a content hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from ..atomic import write_text_if_changed
from ..errors import StructureError
from ..readers import UnreadableFile, reading

# Amorphous cells are split by cell, not by the material-wise hash: their family is the split they belong to
# (the few fine-tuning cells and the held-out rest), kept apart from the crystal train/val/test splits.
AMORPHOUS_SPLITS = ("amorphous-train", "amorphous-test")


@dataclass
class StructureRecord:
    id: str
    structure: Structure
    source: str
    family: str
    reference: str = ""
    relaxation: dict | None = None  # CHGNet provenance when the structure was relaxed (structures/relax.py)
    site_sample: int | None = None  # absorbing sites drawn per element instead of symmetry reduction (glasses)

    @property
    def hash(self) -> str:
        return structure_hash(self.structure)

    def to_json(self) -> str:
        doc = {
            "id": self.id,
            "source": self.source,
            "family": self.family,
            "reference": self.reference,
            "formula": self.structure.composition.reduced_formula,
            "n_atoms": len(self.structure),
            "hash": self.hash,
            "structure": self.structure.as_dict(),
        }
        if self.relaxation:  # absent for unrelaxed structures, so their JSON (and its mtime) does not change
            doc["relaxation"] = self.relaxation
        if self.site_sample is not None:
            doc["site_sample"] = self.site_sample
        return json.dumps(doc, sort_keys=True, indent=1) + "\n"


# Integer grids the hash rounds to. Decimal rounding (the old "%.4f") put exact fractions such as 1/32 on a
# rounding boundary, where last-bit noise from another machine's BLAS flipped the hash of 6 delithiated cells.
# Every fraction p/q with q dividing FRAC_GRID, and every 4-decimal length times p/2^k (k <= 10), is an exact grid
# point instead, far from any boundary.
FRAC_GRID = 2**7 * 3**2 * 5**2 * 7  # 201600 per lattice vector
LENGTH_GRID = 2**10 * 10**4  # per Å


def structure_hash(structure: Structure) -> str:
    """Content hash that survives JSON round trips and float noise, so only a changed structure is noticed."""
    lattice = np.rint(structure.lattice.matrix * LENGTH_GRID).astype(np.int64).ravel()
    frac = np.rint(structure.frac_coords * FRAC_GRID).astype(np.int64) % FRAC_GRID
    sites = sorted(f"{site.species_string}:{','.join(map(str, row))}" for site, row in zip(structure, frac))
    text = "|".join(map(str, lattice)) + "#" + "|".join(sites)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_processable(structure: Structure, label: str) -> None:
    """Reject what the FEFF and descriptor stages cannot handle, with a reason a scientist can act on."""
    if not structure.is_ordered:
        raise StructureError(f"{label}: disordered structure (partial occupancies); order it first")
    if len(structure) == 0:
        raise StructureError(f"{label}: structure has no atoms")
    if structure.lattice.volume < 1.0:
        raise StructureError(f"{label}: degenerate lattice (volume {structure.lattice.volume:.3g} Å³)")
    if len(structure) > 1:
        dists = structure.distance_matrix
        dmin = dists[~np.eye(len(structure), dtype=bool)].min()
    else:
        dmin = min(structure.lattice.abc)
    if dmin < 0.5:
        raise StructureError(f"{label}: atoms overlap (closest pair {dmin:.2f} Å)")


# The engine's chemical space (absorbers and neighbours); the schema default of structures.allowed_elements.
DEFAULT_ELEMENTS = ("Co", "Li", "Mn", "Ni", "O")


def check_elements(structure: Structure, label: str, allowed) -> None:
    """Keep the dataset inside the chemical space the models are meant for (structures.allowed_elements)."""
    outside = sorted({el.symbol for el in structure.composition.elements} - set(allowed))
    if outside:
        raise StructureError(
            f"{label}: contains {', '.join(outside)}, outside structures.allowed_elements "
            f"[{', '.join(allowed)}]; add them there to widen the chemical space"
        )


def read_structure_file(path: str | Path) -> Structure:
    """A user's structure file; unreadable is a StructureError so the structures stage records it as a failure."""
    path = Path(path)
    if not path.exists():
        raise StructureError(f"structure file not found: {path}")
    try:
        with reading(path):
            if path.suffix == ".json":
                doc = json.loads(path.read_text())
                return Structure.from_dict(doc.get("structure", doc))
            return Structure.from_file(path)
    except UnreadableFile as exc:
        raise StructureError(str(exc)) from exc


def write_record(record: StructureRecord, folder: str | Path) -> Path:
    path = Path(folder) / f"{record.id}.json"
    write_text_if_changed(path, record.to_json())
    return path


def load_record(path: str | Path) -> StructureRecord:
    with reading(path):
        doc = json.loads(Path(path).read_text())
        return StructureRecord(
            id=doc["id"],
            structure=Structure.from_dict(doc["structure"]),
            source=doc["source"],
            family=doc["family"],
            reference=doc.get("reference", ""),
            relaxation=doc.get("relaxation"),
            site_sample=doc.get("site_sample"),
        )

"""Relax structures with CHGNet's pretrained universal potential (through ASE) before sites and FEFF.

Library derivatives keep their parent's ideal positions (only the lattice follows Vegard's law), so without a
relaxation the geometry of, e.g., LixCoO2 does not change with x. A relaxed structure is a new structure: its
content hash changes, so the FEFF cache and incremental reruns treat it as such. Results are cached by input
(structure hash + settings + potential version): first the shipped cells in resources/relaxed, then
results/relax_cache, and only then CHGNet runs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from ..atomic import write_text
from ..config import CHGNET_MAX_Z, REPO_ROOT, stable_hash
from ..errors import StructureError

METHODS = ("none", "chgnet")
OPTIMIZERS = ("FIRE", "BFGS")
SHIPPED_RELAXED = REPO_ROOT / "resources" / "relaxed"

log = logging.getLogger(__name__)


class RelaxError(StructureError):
    """A relaxation that cannot start or does not converge: a failure of that structure (stage `relax`)."""

    stage = "relax"


class NotConverged(RelaxError):
    """The optimizer hit its step limit: a recorded failure of that structure, not a crash of the run."""


@dataclass(frozen=True)
class RelaxSettings:
    optimizer: str = "BFGS"
    fmax: float = 0.05  # eV/Å on every atom (and the cell, scaled by ASE's filter, when relax_cell)
    max_steps: int = 300
    relax_cell: bool = True
    keep_symmetry: bool = True  # ASE FixSymmetry: the ordering's space group survives, so do its site classes

    @classmethod
    def from_config(cls, options: dict) -> "RelaxSettings":
        settings = cls(**options)
        if settings.optimizer not in OPTIMIZERS:
            raise RelaxError(f"relax optimizer {settings.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        return settings

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("optimizer", "fmax", "max_steps", "relax_cell", "keep_symmetry")}


@dataclass
class RelaxResult:
    structure: Structure
    provenance: dict  # potential, version, energies, max force, steps, settings, input hash

    def to_json(self) -> str:
        return json.dumps({"provenance": self.provenance, "structure": self.structure.as_dict()},
                          sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "RelaxResult":
        doc = json.loads(text)
        return cls(Structure.from_dict(doc["structure"]), doc["provenance"])


def potential_version() -> str:
    """Installed CHGNet package and model version; a clear error when CHGNet is missing."""
    try:
        import chgnet
    except ImportError as exc:
        raise RelaxError("structures.relax = chgnet but CHGNet is not installed (pip install chgnet==0.4.2)") from exc
    return f"chgnet {chgnet.__version__} / model 0.3.0"


def check_elements(structure: Structure, label: str) -> None:
    unsupported = sorted({el.symbol for el in structure.composition.elements if el.Z > CHGNET_MAX_Z})
    if unsupported:
        raise RelaxError(f"{label}: CHGNet does not cover {', '.join(unsupported)}")


def cache_key(input_hash: str, settings: RelaxSettings, version: str) -> str:
    return stable_hash({"structure": input_hash, "settings": settings.as_dict(), "potential": version})


_MODEL = None


def chgnet_calculator():
    """One CHGNet model per process: loading the weights costs seconds, a relaxation of a small cell not much more."""
    global _MODEL
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    if _MODEL is None:
        _MODEL = CHGNet.load(use_device="cpu", verbose=False)
    return CHGNetCalculator(_MODEL, use_device="cpu", on_isolated_atoms="ignore")


def _max_force(atoms) -> float:
    return float(np.linalg.norm(atoms.get_forces(), axis=1).max())


def relax_structure(structure: Structure, settings: RelaxSettings, label: str = "structure") -> RelaxResult:
    """Positions (and the cell when asked) to fmax within max_steps; otherwise RelaxError with the reached force."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    from .io import structure_hash

    check_elements(structure, label)
    version = potential_version()
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = chgnet_calculator()
    if settings.keep_symmetry:
        atoms.set_constraint(FixSymmetry(atoms, symprec=1e-3))
    energy_initial = float(atoms.get_potential_energy())
    force_initial = _max_force(atoms)
    target = FrechetCellFilter(atoms) if settings.relax_cell else atoms
    optimizer = {"FIRE": FIRE, "BFGS": BFGS}[settings.optimizer](target, logfile=None)
    start = time.perf_counter()
    converged = bool(optimizer.run(fmax=settings.fmax, steps=settings.max_steps))
    seconds = time.perf_counter() - start
    force_final = _max_force(target)  # what the optimizer compared with fmax (cell filter: atoms + cell rows)
    if not converged:
        raise NotConverged(
            f"{label}: CHGNet relaxation did not converge in {settings.max_steps} steps "
            f"(max force {force_final:.3f} eV/Å > fmax {settings.fmax})"
        )
    # rebuilt without ASE's per-site arrays (numpy, not JSON-able) so the record holds what it needs only
    relaxed = Structure(atoms.cell[:], atoms.get_chemical_symbols(), atoms.get_scaled_positions(wrap=True))
    n = len(atoms)
    provenance = {
        "potential": "CHGNet (pretrained universal)",
        "potential_version": version,
        "settings": settings.as_dict(),
        "input_hash": structure_hash(structure),
        "steps": int(optimizer.nsteps),
        "seconds": round(seconds, 2),
        "energy_initial_eV_per_atom": round(energy_initial / n, 6),
        "energy_final_eV_per_atom": round(float(atoms.get_potential_energy()) / n, 6),
        "max_force_initial_eV_per_A": round(force_initial, 5),
        "max_force_final_eV_per_A": round(force_final, 5),
        "volume_change": round(relaxed.volume / structure.volume - 1.0, 6),
    }
    return RelaxResult(relaxed, provenance)


def cached_relax(structure: Structure, settings: RelaxSettings, label: str, cache_dir: str | Path,
                 shipped_dir: str | Path = SHIPPED_RELAXED) -> RelaxResult:
    """The shipped or cached result for this input if there is one, else a fresh CHGNet relaxation (cached)."""
    from .io import structure_hash

    key = cache_key(structure_hash(structure), settings, potential_version())
    for folder in (Path(shipped_dir), Path(cache_dir)):
        path = folder / f"{key}.json"
        if path.exists():
            try:
                return RelaxResult.from_json(path.read_text())
            except (ValueError, KeyError) as exc:
                raise RelaxError(f"damaged relaxation cache file {path}: {exc}") from exc
    result = relax_structure(structure, settings, label)
    write_text(Path(cache_dir) / f"{key}.json", result.to_json())
    return result


def method_for(family: str, options: dict) -> str:
    """Per-family override first, then the global `structures.relax`."""
    return options.get("relax_families", {}).get(family, options.get("relax", "none"))


def main(argv=None) -> int:
    """Relax the reference cells of some families into a cache folder (default: the shipped one)."""
    import argparse

    from tqdm import tqdm

    from ..config import load_config
    from .library import build_library
    from .reference import read_reference_ids

    parser = argparse.ArgumentParser(description="Relax library families with CHGNet and cache the results.")
    parser.add_argument("families", nargs="+", help="e.g. delithiation-LixCoO2")
    parser.add_argument("--config", default=str(REPO_ROOT / "config.yaml"), help="relax_settings are read here")
    parser.add_argument("--out", default=str(SHIPPED_RELAXED))
    args = parser.parse_args(argv)
    settings = RelaxSettings.from_config(load_config(args.config)["structures"]["relax_settings"])
    entries = [e for e in build_library(only_ids=read_reference_ids()) if e.family in args.families]
    failed = 0
    for entry in tqdm(entries, desc="CHGNet relax", unit="cell"):
        try:
            p = cached_relax(entry.structure, settings, entry.id, args.out, shipped_dir=args.out).provenance
            tqdm.write(f"{entry.id}: {p['steps']} steps, E {p['energy_initial_eV_per_atom']:.4f} -> "
                       f"{p['energy_final_eV_per_atom']:.4f} eV/atom, max force {p['max_force_final_eV_per_A']:.3f}")
        except RelaxError as exc:
            failed += 1
            tqdm.write(f"FAILED {exc}")
    print(f"{len(entries) - failed} relaxed, {failed} failed -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Amorphous oxide cells by melt-quench molecular dynamics with CHGNet through ASE.

A random, non-overlapping packing of the composition at a target density is melted (Langevin NVT at
`melt_K`), quenched linearly to `final_K`, and relaxed (positions and cell) with the same CHGNet settings as
the crystal relaxation. Each cell is defined by its composition, protocol and seed; the finished cell and its
protocol are written as one small JSON so a fresh clone does not repeat hours of MD.

    python -m xasengine.structures.amorphous Li7Co5O12 --atoms 96 --seed 1 --out resources/structures/amorphous
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Lattice, Structure

from ..atomic import write_text
from ..config import REPO_ROOT, stable_hash
from ..readers import read_json
from .io import AMORPHOUS_SPLITS, StructureRecord
from .relax import NotConverged, RelaxError, RelaxSettings, check_elements, chgnet_calculator, potential_version, relax_structure

TEMPERATURE_RANGE_K = (100.0, 6000.0)
MAX_STEPS = 10_000_000
SHIPPED_AMORPHOUS = REPO_ROOT / "resources" / "structures" / "amorphous"


@dataclass(frozen=True)
class MeltQuench:
    density_g_cm3: float = 4.0
    melt_K: float = 3000.0  # well above the liquidus of the transition-metal oxides (~2000-2300 K)
    final_K: float = 300.0
    timestep_fs: float = 1.0  # Li and O are light: 1 fs keeps the melt stable
    melt_steps: int = 2000
    quench_steps: int = 4000
    friction_per_fs: float = 0.01
    min_distance_A: float = 1.6  # initial packing

    def check(self) -> None:
        lo, hi = TEMPERATURE_RANGE_K
        for name in ("melt_K", "final_K"):
            if not lo <= getattr(self, name) <= hi:
                raise RelaxError(f"amorphous {name}={getattr(self, name)} K outside {lo:.0f}-{hi:.0f} K")
        if self.melt_K <= self.final_K:
            raise RelaxError(f"amorphous melt_K ({self.melt_K}) must exceed final_K ({self.final_K})")
        for name in ("melt_steps", "quench_steps"):
            if not 1 <= getattr(self, name) <= MAX_STEPS:
                raise RelaxError(f"amorphous {name}={getattr(self, name)} outside 1-{MAX_STEPS}")
        if not 0.1 <= self.timestep_fs <= 5.0:
            raise RelaxError(f"amorphous timestep_fs={self.timestep_fs} outside 0.1-5 fs")

    @property
    def quench_rate_K_per_ps(self) -> float:
        return (self.melt_K - self.final_K) / (self.quench_steps * self.timestep_fs / 1000.0)


def scaled_composition(formula: str, n_atoms: int) -> Composition:
    """The formula repeated to the multiple closest to n_atoms (whole formula units keep the cell neutral)."""
    unit = Composition(formula)
    repeats = max(1, round(n_atoms / unit.num_atoms))
    return unit * repeats


def random_packing(composition: Composition, density_g_cm3: float, min_distance: float, seed: int) -> Structure:
    """Atoms placed at random in a cube of the target density, none closer than min_distance (periodic)."""
    volume = composition.weight / 0.602214076 / density_g_cm3  # amu -> g/mol, Å^3 per cell
    a = volume ** (1.0 / 3.0)
    species = [el.symbol for el, n in sorted(composition.items()) for _ in range(int(n))]
    rng = np.random.default_rng(seed)
    rng.shuffle(species)
    placed: list[np.ndarray] = []
    for _ in species:
        for _attempt in range(10_000):
            trial = rng.random(3)
            if not placed:
                break
            delta = np.array(placed) - trial
            delta -= np.round(delta)
            if np.linalg.norm(delta * a, axis=1).min() >= min_distance:
                break
        else:
            raise RelaxError(f"cannot pack {composition.reduced_formula} at {density_g_cm3} g/cm3 "
                             f"with {min_distance} Å separation; lower the density")
        placed.append(trial)
    return Structure(Lattice.cubic(a), species, np.array(placed))


def melt_quench(formula: str, n_atoms: int, protocol: MeltQuench, seed: int, relax: RelaxSettings,
                progress: bool = True) -> tuple[Structure, dict]:
    """One amorphous cell and its provenance (protocol, seed, potential, timings, final relaxation)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from pymatgen.io.ase import AseAtomsAdaptor
    from tqdm import tqdm

    protocol.check()
    composition = scaled_composition(formula, n_atoms)
    start_structure = random_packing(composition, protocol.density_g_cm3, protocol.min_distance_A, seed)
    check_elements(start_structure, formula)
    atoms = AseAtomsAdaptor.get_atoms(start_structure)
    atoms.calc = chgnet_calculator()
    MaxwellBoltzmannDistribution(atoms, temperature_K=protocol.melt_K, rng=np.random.default_rng(seed))
    dynamics = Langevin(atoms, protocol.timestep_fs * units.fs, temperature_K=protocol.melt_K,
                        friction=protocol.friction_per_fs / units.fs, rng=np.random.default_rng(seed + 1))
    total = protocol.melt_steps + protocol.quench_steps
    bar = tqdm(total=total, desc=f"melt-quench {composition.reduced_formula} seed {seed}", unit="step",
               disable=not progress, mininterval=30)
    start = time.perf_counter()
    block = max(1, protocol.quench_steps // 100)  # run in blocks so the bar moves during the ~25 min melt too
    for first in range(0, protocol.melt_steps, block):
        n = min(block, protocol.melt_steps - first)
        dynamics.run(n)
        bar.update(n)
    melt_seconds = time.perf_counter() - start
    done = 0
    while done < protocol.quench_steps:
        n = min(block, protocol.quench_steps - done)
        fraction = (done + n / 2) / protocol.quench_steps
        dynamics.set_temperature(temperature_K=protocol.melt_K + fraction * (protocol.final_K - protocol.melt_K))
        dynamics.run(n)
        done += n
        bar.update(n)
    bar.close()
    md_seconds = time.perf_counter() - start
    quenched = Structure(atoms.cell[:], atoms.get_chemical_symbols(), atoms.get_scaled_positions(wrap=True))
    relaxed = relax_structure(quenched, relax, f"{composition.reduced_formula} seed {seed}")
    provenance = {
        "method": "melt-quench MD (ASE Langevin NVT) + CHGNet relaxation",
        "formula": composition.formula.replace(" ", ""),
        "n_atoms": len(relaxed.structure),
        "seed": seed,
        "protocol": asdict(protocol) | {"quench_rate_K_per_ps": round(protocol.quench_rate_K_per_ps, 3)},
        "potential_version": potential_version(),
        "md_seconds": round(md_seconds, 1),
        "seconds_per_md_step": round(md_seconds / total, 4),
        "melt_seconds": round(melt_seconds, 1),
        "relaxation": relaxed.provenance,
    }
    return relaxed.structure, provenance


def cell_id(formula: str, seed: int) -> str:
    return f"amorphous-{Composition(formula).reduced_formula}-s{seed}"


def write_cell(folder: str | Path, formula: str, structure: Structure, provenance: dict) -> Path:
    path = Path(folder) / f"{cell_id(formula, provenance['seed'])}.json"
    doc = {"id": path.stem, "family": "amorphous", "provenance": provenance, "structure": structure.as_dict()}
    write_text(path, json.dumps(doc, sort_keys=True, indent=1) + "\n")
    return path


def cell_inputs(formula: str, n_atoms: int, seed: int, protocol: MeltQuench, relax: RelaxSettings,
                version: str) -> dict:
    """Everything a cell depends on; its hash is the cache key, and the same dict is recorded in the cell."""
    return {"formula": scaled_composition(formula, n_atoms).formula.replace(" ", ""), "seed": int(seed),
            "protocol": asdict(protocol), "relax": relax.as_dict(), "potential_version": version}


def inputs_of(doc: dict) -> dict:
    """The recorded inputs of a cell document (the same keys as cell_inputs)."""
    prov = doc["provenance"]
    protocol = {k: v for k, v in prov["protocol"].items() if k in MeltQuench.__dataclass_fields__}
    return {"formula": prov["formula"], "seed": int(prov["seed"]), "protocol": protocol,
            "relax": prov["relaxation"]["settings"], "potential_version": prov["potential_version"]}


def cell_key(inputs: dict) -> str:
    return stable_hash(inputs)


def read_cells(folder: str | Path) -> dict[str, tuple[Path, dict]]:
    """Cell documents of a folder by input key; a damaged file is a clear error naming it."""
    cells = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            doc = read_json(path)
            key = cell_key(inputs_of(doc))
            Structure.from_dict(doc["structure"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RelaxError(f"damaged amorphous cell {path}: {exc!r}") from exc
        cells[key] = (path, doc)
    return cells


def settings_from_config(amo: dict) -> tuple[MeltQuench, RelaxSettings]:
    protocol = MeltQuench(**amo.get("protocol", {}))
    protocol.check()
    return protocol, RelaxSettings.from_config(amo.get("relax_settings", {}) | {"keep_symmetry": False})


def amorphous_cell(formula: str, seed: int, amo: dict, out: str | Path, progress: bool = False) -> str:
    """The cell of these inputs written to `out`: shipped first, then the cache, else melt-quench MD (cached).

    With `shipped_only` a cell found in neither folder is a RelaxError naming the command that makes it.
    Returns where it came from: shipped, cache or md."""
    protocol, relax = settings_from_config(amo)
    n_atoms = int(amo.get("atoms", 96))
    inputs = cell_inputs(formula, n_atoms, seed, protocol, relax, potential_version())
    key = cell_key(inputs)
    shipped = Path(amo.get("shipped_dir", SHIPPED_AMORPHOUS))
    shipped = shipped if shipped.is_absolute() else REPO_ROOT / shipped
    cache = Path(amo.get("cache_dir", "results/amorphous_cache"))
    for origin, folder in (("shipped", shipped), ("cache", cache)):
        if folder.is_dir():
            hit = read_cells(folder).get(key)
            if hit:
                write_text(out, hit[0].read_text())
                return origin
    if amo.get("shipped_only", True):
        raise RelaxError(
            f"amorphous {formula} seed {seed}: no cell with these inputs (key {key}) in {shipped} or {cache}, "
            f"and amorphous.shipped_only is true; make it with: python -m xasengine.structures.amorphous "
            f"{formula} --atoms {n_atoms} --seed {seed} --out {shipped} (or set shipped_only: false)")
    try:
        structure, provenance = melt_quench(formula, n_atoms, protocol, seed, relax, progress=progress)
    except NotConverged as exc:  # recorded: the structures checkpoint lists it among the failures
        write_text(out, json.dumps({"id": cell_id(formula, seed), "family": "amorphous", "status": "failed",
                                    "message": str(exc), "input_key": key}, indent=1) + "\n")
        return "failed"
    path = write_cell(cache, formula, structure, provenance | {"input_key": key})
    cached = cache / f"{key}.json"
    path.replace(cached)
    write_text(out, cached.read_text())
    return "md"


def amorphous_split(seed: int, seeds: list[int], finetune_cells: int) -> str:
    """The cells of a composition with the lowest `finetune_cells` seeds fine-tune; the rest are held out whole."""
    return AMORPHOUS_SPLITS[0] if sorted(seeds).index(seed) < finetune_cells else AMORPHOUS_SPLITS[1]


def amorphous_records(paths: list[str], amo: dict) -> tuple[list[StructureRecord], list[dict]]:
    """The cells made by rule amorphous_cell as structure records: family = their split, the MD and relaxation
    provenance kept as the record's relaxation, and a per-element site sample instead of symmetry reduction;
    and a failure row for each cell whose MD relaxation did not converge."""
    records, failures = [], []
    for path in paths:
        doc = read_json(path)
        if doc.get("status") == "failed":
            failures.append({"structure_id": doc.get("id", Path(path).stem), "site_index": "", "stage": "amorphous",
                             "message": doc.get("message", "")})
            continue
        try:
            structure, seed = Structure.from_dict(doc["structure"]), int(doc["provenance"]["seed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RelaxError(f"damaged amorphous cell {path}: {exc!r}") from exc
        family = amorphous_split(seed, amo["seeds"], amo["finetune_cells"])
        records.append(StructureRecord(doc["id"], structure, "amorphous", family,
                                       f"CHGNet melt-quench, seed {seed}", relaxation=doc["provenance"],
                                       site_sample=int(amo["sites_per_cell"])))
    return records, failures


def write_amorphous_cell(formula: str, seed: int, amo: dict, out: str | Path) -> None:
    """Rule amorphous_cell: the cell of these inputs at `out`; where it came from goes to the log."""
    import logging

    origin = amorphous_cell(formula, seed, amo, out)
    logging.getLogger(__name__).info("amorphous %s seed %d: %s", formula, seed, origin)


def describe_cells(folder: str | Path) -> list[str]:
    """One line per cell of a folder (id, formula, atoms, seed, protocol, energy, input key); validates each."""
    lines = []
    for key, (path, doc) in read_cells(folder).items():
        prov = doc["provenance"]
        p = prov["protocol"]
        lines.append(f"{path.name}\t{doc.get('id')}\t{prov['formula']}\t{prov['n_atoms']} atoms\tseed {prov['seed']}"
                     f"\t{p['melt_K']:g}->{p['final_K']:g} K, {p['melt_steps']}+{p['quench_steps']} steps"
                     f"\tE {prov['relaxation']['energy_final_eV_per_atom']} eV/atom\t{prov['potential_version']}"
                     f"\tkey {key}")
    return lines


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Make one amorphous cell by CHGNet melt-quench MD.")
    parser.add_argument("formula")
    parser.add_argument("--atoms", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--melt-steps", type=int, default=MeltQuench.melt_steps)
    parser.add_argument("--quench-steps", type=int, default=MeltQuench.quench_steps)
    parser.add_argument("--melt-K", type=float, default=MeltQuench.melt_K)
    parser.add_argument("--density", type=float, default=MeltQuench.density_g_cm3)
    parser.add_argument("--out", default="resources/structures/amorphous")
    args = parser.parse_args(argv)
    protocol = MeltQuench(density_g_cm3=args.density, melt_K=args.melt_K, melt_steps=args.melt_steps,
                          quench_steps=args.quench_steps)
    relax = RelaxSettings(max_steps=1000, keep_symmetry=False)
    structure, provenance = melt_quench(args.formula, args.atoms, protocol, args.seed, relax)
    path = write_cell(args.out, args.formula, structure, provenance)
    print(f"{path}: {provenance['n_atoms']} atoms, {provenance['seconds_per_md_step']} s/MD step, "
          f"E {provenance['relaxation']['energy_final_eV_per_atom']} eV/atom")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

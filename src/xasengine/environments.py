"""Local environments of the absorbing sites: the absorber at the origin and its K nearest neighbours.

The diffusion model generates these shells from spectra, so they are cut from the very structure record FEFF's input
came from (same site index). One HDF5 file per shard bucket, beside the shard, so a new structure rewrites one file.

Layout (ENV_VERSION 1), N = sites, K = config diffusion.k_neighbors:
  attrs: env_version, k_neighbors, radius, xasengine_version
  structure_id, site_index, feff_hash, split, element (N,)
  species (N, K) atomic numbers, 0 where fewer than K neighbours lie within the radius
  offsets (N, K, 3) Cartesian Å from the absorber, sorted by distance, NaN where species is 0
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from pymatgen.core import Element, Structure

from . import __version__
from .atomic import atomic_path
from .errors import ShardError
from .readers import open_hdf5, read_hdf5_datasets

ENV_VERSION = 1
_STR = h5py.string_dtype()


def neighbour_shell(structure: Structure, site_index: int, k: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest periodic images around one site; ties in distance are broken by species and direction so the
    order is reproducible (the model itself ignores order)."""
    centre = structure[site_index].coords
    found = structure.get_neighbors(structure[site_index], radius)
    rows = sorted(((round(n.nn_distance, 4), n.specie.Z, *np.round(n.coords - centre, 4)) for n in found))
    rows = rows[:k]
    species = np.zeros(k, dtype=np.int16)
    offsets = np.full((k, 3), np.nan)
    for i, (_, z, x, y, zc) in enumerate(rows):
        species[i] = z
        offsets[i] = (x, y, zc)
    return species, offsets


def environment_rows(records: dict, table: dict, elements: list[str], k: int, radius: float) -> dict:
    """Shells for the ok sites of `table` whose element is in `elements`; records maps structure id -> record."""
    keep = np.flatnonzero(np.isin(table["element"], elements) & (table["status"] == "ok"))
    out = {name: [] for name in ("structure_id", "site_index", "feff_hash", "split", "element", "species", "offsets")}
    for i in keep:
        sid, idx = str(table["structure_id"][i]), int(table["site_index"][i])
        species, offsets = neighbour_shell(records[sid].structure, idx, k, radius)
        for name, value in (("structure_id", sid), ("site_index", idx), ("feff_hash", str(table["feff_hash"][i])),
                            ("split", str(table["split"][i])), ("element", str(table["element"][i])),
                            ("species", species), ("offsets", offsets)):
            out[name].append(value)
    return out


def write_environments(path: str | Path, rows: dict, k: int, radius: float) -> None:
    n = len(rows["structure_id"])
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        fh.attrs.update(env_version=ENV_VERSION, k_neighbors=k, radius=radius, xasengine_version=__version__)
        for name in ("structure_id", "feff_hash", "split", "element"):
            fh.create_dataset(name, data=np.asarray(rows[name], dtype=object), dtype=_STR)
        fh.create_dataset("site_index", data=np.asarray(rows["site_index"], dtype=np.int32))
        fh.create_dataset("species", data=np.asarray(rows["species"], dtype=np.int16).reshape(n, k))
        fh.create_dataset("offsets", data=np.asarray(rows["offsets"], dtype=np.float64).reshape(n, k, 3))


def read_environments(paths) -> dict:
    parts = []
    for path in paths:
        with open_hdf5(path) as fh:
            if int(fh.attrs.get("env_version", -1)) != ENV_VERSION:
                raise ShardError(f"{path}: env_version {fh.attrs.get('env_version')}, this xasengine reads {ENV_VERSION}")
            parts.append(read_hdf5_datasets(fh))
    if not parts:
        raise ShardError("no environment files given")
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def join_environments(table: dict, env: dict, elements: list[str]) -> dict:
    """Environments joined to their spectra (a usable-site table) by (structure id, site index); the environment
    rows lead, so training and evaluation see the same sites in the same order."""
    lookup = {(s, int(i)): r for r, (s, i) in enumerate(zip(table["structure_id"], table["site_index"]))}
    keep, rows = [], []
    for r, (sid, idx, el) in enumerate(zip(env["structure_id"], env["site_index"], env["element"])):
        if el in elements and (sid, int(idx)) in lookup:
            keep.append(r)
            rows.append(lookup[(sid, int(idx))])
    keep, rows = np.array(keep, dtype=int), np.array(rows, dtype=int)
    out = {k: v[keep] for k, v in env.items()}
    out["spectrum"] = np.asarray(table["spectrum"], np.float32)[rows]
    out["energy"] = np.asarray(table["energy"])[rows]
    out["descriptor_CN"] = table["descriptors"]["CN"][rows] if "CN" in table["descriptors"] else np.full(len(rows), np.nan)
    return out


def absorber_numbers(elements) -> np.ndarray:
    return np.array([Element(str(e)).Z for e in elements])


def split_arrays(sites: dict, split: str):
    """(species, offsets, absorber Z, spectrum) of one split, the diffusion model's inputs."""
    rows = sites["split"] == split
    return (sites["species"][rows], sites["offsets"][rows], absorber_numbers(sites["element"][rows]),
            sites["spectrum"][rows])


def species_symbols(numbers) -> list[str]:
    return [Element.from_Z(int(z)).symbol for z in numbers if z > 0]

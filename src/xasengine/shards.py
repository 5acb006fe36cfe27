"""Versioned HDF5 shards: one file per hash bucket of structure ids, fixed-length arrays per site.

Schema (SCHEMA_VERSION 1), all arrays of length N = sites in the shard:
  attrs: schema_version, xasengine_version, config_hash, config_json, package_versions (JSON), feff_engines
  sites/structure_id, sites/site_index, sites/multiplicity, sites/element, sites/edge, sites/wyckoff,
  sites/feff_hash, sites/status ("ok" | "failed" | "not_computed": absent from the FEFF cache under feff.cached_only), sites/message, sites/split, sites/os_method
  sites/e0 (eV), sites/edge_step, sites/energy (N,G) relative grid, sites/spectrum (N,G) normalised mu
  sites/raw_energy, sites/raw_mu (N,R) padded with NaN, sites/raw_length
  sites/feff_seconds
  descriptors/<NAME> (N,) float64, NaN where the descriptor does not apply or could not be computed
  structures/structure_id, hash, formula, family, source, status, message (sites/descriptors stage failures)
Failed sites stay in the shard (status + message) with NaN spectra, so nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np

from . import __version__
from .atomic import atomic_path
from .config import stable_hash
from .descriptors import ALL_DESCRIPTORS
from .errors import ShardError, SpectrumError
from .readers import decode_strings, open_hdf5
from .spectra import edge_grid, process
from .structures.io import AMORPHOUS_SPLITS

SCHEMA_VERSION = 1
_STR = h5py.string_dtype()
PACKAGES = ("pymatgen", "numpy", "h5py", "feff10-rs", "snakemake", "torch")


def bucket_of(structure_id: str, n_buckets: int) -> int:
    """Stable across processes and machines (unlike hash())."""
    return int(hashlib.sha256(structure_id.encode()).hexdigest(), 16) % n_buckets


def split_of(structure_id: str, family: str, split_cfg: dict) -> str:
    """Material-wise split by a seeded hash of the id: adding a structure never moves another one. Amorphous
    cells keep the split their family names (structures.amorphous), outside the crystal splits."""
    if family in AMORPHOUS_SPLITS:
        return family
    if family in split_cfg["test_families"]:
        return "test"
    u = int(hashlib.sha256(f"{split_cfg['seed']}:{structure_id}".encode()).hexdigest(), 16) / 2**256
    if u < split_cfg["test_fraction"]:
        return "test"
    if u < split_cfg["test_fraction"] + split_cfg["val_fraction"]:
        return "val"
    return "train"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def site_rows(index_row: dict, manifest: dict, descriptors: dict, feff: dict, config: dict) -> list[dict]:
    """Join the per-structure stage outputs into one row per nonequivalent site."""
    desc_sites = descriptors.get("sites", {})
    split = split_of(index_row["structure_id"], index_row["family"], config["split"])
    rows = []
    for site in feff["sites"]:
        idx = site["site_index"]
        desc = desc_sites.get(str(idx), {})
        row = {
            "structure_id": index_row["structure_id"],
            "site_index": idx,
            "multiplicity": site["multiplicity"],
            "element": site["element"],
            "edge": site["edge"],
            "wyckoff": site["wyckoff"],
            "feff_hash": site.get("feff_hash", ""),
            "status": site["status"],
            "message": site["message"],
            "split": split,
            "os_method": descriptors.get("os_method", ""),
            "feff_seconds": site.get("feff_seconds", float("nan")),
            "raw_energy": site["energy"],
            "raw_mu": site["mu"],
            "descriptors": {name: desc.get(name, float("nan")) for name in ALL_DESCRIPTORS},
        }
        grid = edge_grid(config["spectra"], site["element"], site["edge"])
        row["energy"] = grid
        row.update(e0=float("nan"), edge_step=float("nan"), spectrum=np.full(grid.size, np.nan))
        if site["status"] == "ok":
            try:
                processed = process(site["energy"], site["mu"], grid, config["spectra"])
                row.update(e0=processed["e0"], edge_step=processed["edge_step"], spectrum=processed["spectrum"])
            except SpectrumError as exc:
                row.update(status="failed", message=f"spectra: {exc}")
        if descriptors.get("status") == "failed":  # a site without labels is not training data
            row["status"] = "failed"
            row["message"] = (row["message"] + "; " if row["message"] else "") + f"descriptors: {descriptors['message']}"
        elif "error" in desc:
            row["message"] = (row["message"] + "; " if row["message"] else "") + f"descriptors: {desc['error']}"
        rows.append(row)
    return rows


def write_shard(path: str | Path, rows: list[dict], structures: list[dict], config: dict, engines: list[str]) -> None:
    n = len(rows)
    grid_points = max((len(r["energy"]) for r in rows), default=config["spectra"]["grid"]["points"])
    raw_points = config["shards"]["raw_points"]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        fh.attrs["schema_version"] = SCHEMA_VERSION
        fh.attrs["xasengine_version"] = __version__
        fh.attrs["config_json"] = json.dumps(config, sort_keys=True)
        fh.attrs["config_hash"] = stable_hash(config)
        fh.attrs["package_versions"] = json.dumps(package_versions())
        fh.attrs["feff_engines"] = json.dumps(sorted(set(engines)))
        g = fh.create_group("sites")
        for key in ("structure_id", "element", "edge", "wyckoff", "feff_hash", "status", "message", "split", "os_method"):
            g.create_dataset(key, data=np.array([str(r[key]) for r in rows], dtype=object), dtype=_STR)
        for key, dtype in (("site_index", "i4"), ("multiplicity", "i4"), ("e0", "f8"), ("edge_step", "f8"),
                           ("feff_seconds", "f8")):
            g.create_dataset(key, data=np.array([r[key] for r in rows], dtype=dtype))
        spectra = np.full((n, grid_points), np.nan, dtype="f4")
        energy = np.full((n, grid_points), np.nan, dtype="f4")
        raw_e = np.full((n, raw_points), np.nan, dtype="f8")
        raw_mu = np.full((n, raw_points), np.nan, dtype="f8")
        raw_len = np.zeros(n, dtype="i4")
        for i, r in enumerate(rows):
            spectra[i, : len(r["spectrum"])] = r["spectrum"]
            energy[i, : len(r["energy"])] = r["energy"]
            m = len(r["raw_energy"])
            if m > raw_points:
                raise ShardError(f"{r['structure_id']} site {r['site_index']}: raw spectrum has {m} points, "
                                 f"more than shards.raw_points={raw_points}")
            raw_e[i, :m], raw_mu[i, :m], raw_len[i] = r["raw_energy"], r["raw_mu"], m
        opts = {"compression": "gzip", "compression_opts": 4}
        g.create_dataset("spectrum", data=spectra, **opts)
        g.create_dataset("energy", data=energy, **opts)
        g.create_dataset("raw_energy", data=raw_e, **opts)
        g.create_dataset("raw_mu", data=raw_mu, **opts)
        g.create_dataset("raw_length", data=raw_len)
        d = fh.create_group("descriptors")
        for name in ALL_DESCRIPTORS:
            d.create_dataset(name, data=np.array([r["descriptors"][name] for r in rows], dtype="f8"))
        s = fh.create_group("structures")
        for key in ("structure_id", "hash", "formula", "family", "source", "status", "message"):
            s.create_dataset(key, data=np.array([str(x[key]) for x in structures], dtype=object), dtype=_STR)


def read_shards(paths, only_ok: bool = False) -> dict:
    """Concatenate shards into the site table used by training: plain numpy arrays plus a descriptors dict."""
    parts = []
    for path in paths:
        with open_hdf5(path) as fh:
            version = int(fh.attrs.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                raise ShardError(f"{path}: schema_version {version}, this xasengine reads {SCHEMA_VERSION}")
            g = fh["sites"]
            part = {k: decode_strings(g[k][()]) if g[k].dtype.kind == "O" else g[k][()] for k in g}
            part["descriptors"] = {k: fh["descriptors"][k][()] for k in fh["descriptors"]}
            parts.append(part)
    if not parts:
        raise ShardError("no shard files given")
    table = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "descriptors"}
    table["descriptors"] = {k: np.concatenate([p["descriptors"][k] for p in parts]) for k in parts[0]["descriptors"]}
    for key in ("element", "structure_id", "split", "status", "edge"):
        table[key] = table[key].astype(str)
    return select_rows(table, table["status"] == "ok") if only_ok else table


def structure_families(paths) -> dict[str, str]:
    """{structure_id: family} from the shards' structures group (every structure, usable sites or not)."""
    families = {}
    for path in paths:
        with open_hdf5(path) as fh:
            group = fh["structures"]
            families.update(zip(decode_strings(group["structure_id"][()]), decode_strings(group["family"][()])))
    return {str(sid): str(family) for sid, family in families.items()}


def select_rows(table: dict, keep: np.ndarray) -> dict:
    return {k: v[keep] for k, v in table.items() if k != "descriptors"} | {
        "descriptors": {k: v[keep] for k, v in table["descriptors"].items()}
    }


def table_hash(table: dict) -> str:
    """Hash of a whole site table's identity (site keys, FEFF hashes, split), for checkpoint provenance;
    independent of row order."""
    keys = sorted(zip(table["structure_id"], table["site_index"].tolist(), table["feff_hash"], table["split"]))
    return stable_hash(keys)

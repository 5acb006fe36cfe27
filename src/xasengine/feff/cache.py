"""Content-addressed FEFF results: key = sha256(feff.inp text + engine version)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_path, write_json
from ..readers import UnreadableFile, open_hdf5, read_json

log = logging.getLogger(__name__)

NOT_COMPUTED = "not_computed"  # site status under feff.cached_only: absent from every cache, FEFF not run


def cache_key(inp_text: str, engine_version: str) -> str:
    return hashlib.sha256((engine_version + "\n" + inp_text).encode()).hexdigest()


class FeffCache:
    """A writable folder of JSON entries plus read-only shipped HDF5 files (the project's reference dataset)."""

    def __init__(self, folder: str | Path, shipped: str | Path | None = None):
        self.folder = Path(folder)
        self.shipped_files = sorted(Path(shipped).glob("*.h5")) if shipped and Path(shipped).is_dir() else []
        self._shipped_index: dict[str, Path] | None = None

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def shipped_index(self) -> dict[str, Path]:
        if self._shipped_index is None:
            self._shipped_index = {}
            for path in self.shipped_files:
                with open_hdf5(path, _restore_hint(path)) as fh:
                    for key in fh["entries"]:
                        self._shipped_index[key] = path
        return self._shipped_index

    def get_path(self, key: str) -> Path | None:
        """Where an entry lives (a JSON file or a shipped HDF5 part), without reading it."""
        path = self._path(key)
        return path if path.exists() else self.shipped_index().get(key)

    def get(self, key: str) -> dict | None:
        path = self.get_path(key)
        if path is None:
            return None
        if path.suffix == ".json":
            try:
                return read_json(path)
            except UnreadableFile as exc:  # e.g. a job killed mid-write before writes were atomic; FEFF reruns
                log.warning("%s; dropped it, the site is computed again", exc)
                path.unlink(missing_ok=True)
                return None
        with open_hdf5(path, _restore_hint(path)) as fh:
            grp = fh["entries"][key]
            entry = json.loads(grp.attrs["meta"])
            entry["energy"] = grp["energy"][()].tolist()
            entry["mu"] = grp["mu"][()].tolist()
        entry["cache_source"] = f"shipped:{path.name}"
        return entry

    def put(self, key: str, entry: dict) -> None:
        write_json(self._path(key), entry)

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*/*.json"))


def _restore_hint(path: Path) -> str:
    """A shipped part is read-only project data: a damaged copy is restored from git, never recomputed."""
    return f"a shipped FEFF cache part, restore it with: git checkout -- {path}"


def export_shipped(folder: str | Path, out_path: str | Path, keys: list[str] | None = None) -> int:
    """Pack JSON cache entries into one compressed HDF5 file that the project can ship in resources/."""
    cache = FeffCache(folder)
    keys = keys if keys is not None else cache.keys()
    packed = 0
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as fh:
        entries = fh.create_group("entries")
        for key in keys:
            entry = cache.get(key)
            if entry is None:  # a damaged entry, dropped with a warning by get()
                continue
            packed += 1
            grp = entries.create_group(key)
            grp.create_dataset("energy", data=np.asarray(entry.pop("energy"), dtype="f8"), compression="gzip")
            grp.create_dataset("mu", data=np.asarray(entry.pop("mu"), dtype="f8"), compression="gzip")
            grp.attrs["meta"] = json.dumps(entry, sort_keys=True)
    return packed


def newly_cached(feff_dir: str | Path, cache: FeffCache) -> list[str]:
    """Structures with sites recorded as not computed whose FEFF results a cache now holds.

    Under feff.cached_only a structure's job records missing spectra as not_computed; the caches are not inputs
    of that job (one new part would rerun every structure), so new shipped parts are picked up by forgetting
    exactly these structures' results."""
    stale = []
    for path in sorted(Path(feff_dir).glob("*.json")):
        doc = read_json(path)
        keys = [site["feff_hash"] for site in doc["sites"] if site["status"] == NOT_COMPUTED and site.get("feff_hash")]
        if any(cache.get_path(key) is not None for key in keys):
            stale.append(path.stem)
    return stale

"""Materials Project source: every O-containing sub-system of the chemical space, cached per material."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

from pymatgen.core import Structure

from ..atomic import write_json
from ..config import stable_hash
from ..errors import StructureError
from ..readers import read_json
from .io import StructureRecord

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9]{16}$|^[A-Za-z0-9]{32}$")
FIELDS = ["material_id", "formula_pretty", "energy_above_hull", "structure"]


def chemical_systems(elements: list[str], required_any: list[str]) -> list[str]:
    """All sub-systems with O and at least one absorbing metal: chemsys='Co-Li-Mn-Ni-O' alone returns only 5-element materials."""
    others = sorted(e for e in elements if e != "O")
    systems = []
    for n in range(1, len(others) + 1):
        for combo in itertools.combinations(others, n):
            if any(e in combo for e in required_any):
                systems.append("-".join(sorted(combo + ("O",))))
    return systems


def api_key_from_env() -> str:
    key = os.environ.get("MP_API_KEY", "").strip()
    if not key:
        raise StructureError(
            "MP_API_KEY is not set: export your Materials Project API key, "
            "or use the offline source with structures.source: library"
        )
    if not _KEY_PATTERN.match(key):
        raise StructureError(
            "MP_API_KEY is malformed (expected 32 letters/digits from materialsproject.org/api); "
            "fix it, or use the offline source with structures.source: library"
        )
    return key


class RecordedRester:
    """Replays recorded mp-api summary documents, so tests never touch the network."""

    def __init__(self, path: str | Path):
        self.docs = json.loads(Path(path).read_text())
        self.calls: list[str] = []

    def search(self, chemsys: list[str], energy_above_hull, num_sites, fields):
        self.calls.extend(chemsys)
        wanted = set(chemsys)
        lo, hi = energy_above_hull
        return [
            d
            for d in self.docs
            if "-".join(sorted(Structure.from_dict(d["structure"]).composition.chemical_system.split("-"))) in wanted
            and lo <= d["energy_above_hull"] <= hi
            and num_sites[0] <= len(d["structure"]["sites"]) <= num_sites[1]
        ]


# Without a network mp-api retries each request and chains every failure into one long traceback.
MP_TIMEOUT_S = 30
MP_RETRIES = 2
DEFAULT_ENDPOINT = "https://api.materialsproject.org/"
OFFLINE_HINT = "structures.source: library works offline"


def mp_endpoint() -> str:
    """mp-api's own setting (MPRESTER_ENDPOINT), so a mirror or a test address reaches both the probe and mp-api."""
    return os.environ.get("MPRESTER_ENDPOINT") or DEFAULT_ENDPOINT


def check_reachable(endpoint: str, timeout_s: float = MP_TIMEOUT_S, retries: int = MP_RETRIES) -> None:
    """One bounded heartbeat request before mp-api starts (its own heartbeat call has no timeout)."""
    import requests

    reason = ""
    for _ in range(retries + 1):
        try:
            requests.get(endpoint.rstrip("/") + "/heartbeat", timeout=timeout_s)
            return
        except requests.RequestException as exc:
            reason = type(exc).__name__
    raise StructureError(f"the Materials Project could not be reached at {endpoint} ({reason} after {retries + 1} "
                         f"tries, {timeout_s:g} s timeout); check the network, or note that {OFFLINE_HINT}")


class _LiveRester:
    def __init__(self, key: str):
        endpoint = mp_endpoint()
        check_reachable(endpoint)
        os.environ.setdefault("MPRESTER_MAX_RETRIES", str(MP_RETRIES))  # read when mp_api is first imported
        from mp_api.client import MPRester

        try:
            self._mpr = MPRester(key, endpoint=endpoint, timeout=MP_TIMEOUT_S, mute_progress_bars=True)
        except Exception as exc:  # mp-api raises MPRestError, requests errors or ValueError for a refused key
            raise StructureError(_failure(exc)) from None

    def search(self, chemsys, energy_above_hull, num_sites, fields):
        try:
            docs = self._mpr.materials.summary.search(
                chemsys=chemsys, energy_above_hull=energy_above_hull, num_sites=num_sites, fields=fields
            )
        except Exception as exc:
            raise StructureError(_failure(exc)) from None
        return [
            {
                "material_id": str(d.material_id),
                "formula_pretty": d.formula_pretty,
                "energy_above_hull": d.energy_above_hull,
                "structure": d.structure.as_dict(),
            }
            for d in docs
        ]


def _failure(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if re.search(r"\b(401|403)\b|api[_ ]key", text, re.I):
        return f"the Materials Project refused MP_API_KEY ({text[:200]}); check the key, or note that {OFFLINE_HINT}"
    return (f"the Materials Project query failed ({type(exc).__name__}: {text[:200]}); "
            f"retry later, or note that {OFFLINE_HINT}")


REFETCH = "a Materials Project cache file: delete it to fetch it again"


def fetch_mp(options: dict, rester=None) -> list[StructureRecord]:
    """Query once, cache each material as its own JSON plus the id list per query; reruns read only the cache."""
    cache = Path(options["cache_dir"])
    systems = chemical_systems(options["elements"], options["required_any"])
    query = {k: options[k] for k in ("energy_above_hull_max", "max_sites", "ordered_only")} | {"systems": systems}
    listing = cache / f"query-{stable_hash(query)}.json"
    if listing.exists():
        ids = read_json(listing, REFETCH)["material_ids"]
    else:
        if rester is None:
            rester = (
                RecordedRester(options["recorded_responses"])
                if options.get("recorded_responses")
                else _LiveRester(api_key_from_env())
            )
        docs = rester.search(
            chemsys=systems,
            energy_above_hull=(0.0, options["energy_above_hull_max"]),
            num_sites=(1, options["max_sites"]),
            fields=FIELDS,
        )
        for doc in docs:
            path = cache / "materials" / f"{doc['material_id']}.json"
            if not path.exists():
                write_json(path, doc)
        ids = sorted(doc["material_id"] for doc in docs)
        write_json(listing, {"query": query, "material_ids": ids})
    records = []
    for mid in ids:
        doc = read_json(cache / "materials" / f"{mid}.json", REFETCH)
        structure = Structure.from_dict(doc["structure"])
        if options["ordered_only"] and not structure.is_ordered:
            continue
        records.append(
            StructureRecord(
                id=mid,
                structure=structure,
                source="mp",
                family=f"mp-{structure.composition.chemical_system}",
                reference=f"Materials Project {mid} (E_hull {doc['energy_above_hull']:.3f} eV/atom)",
            )
        )
    return records

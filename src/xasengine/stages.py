"""The function behind each Snakemake rule: read the rule's input files, call the stage, write its outputs."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_json
from .structures.io import load_record


def sites_stage(structure_json: str, out_json: str, sites_cfg: dict) -> None:
    from .errors import SiteError
    from .sites import site_manifest

    record = load_record(structure_json)
    try:
        manifest = site_manifest(record, sites_cfg["absorbers"], sites_cfg["edge"], sites_cfg["symprec"])
        manifest["status"], manifest["message"] = "ok", ""
    except SiteError as exc:
        manifest = {"structure_id": record.id, "structure_hash": record.hash, "edge": sites_cfg["edge"],
                    "sites": [], "status": "failed", "message": str(exc)}
    write_json(out_json, manifest)


def descriptors_stage(structure_json: str, manifest_json: str, out_json: str, symprec: float) -> None:
    from .descriptors import descriptor_record

    record = load_record(structure_json)
    manifest = json.loads(Path(manifest_json).read_text())
    write_json(out_json, descriptor_record(record, manifest, symprec))


def feff_stage(structure_json: str, manifest_json: str, out_json: str, feff_cfg: dict, workroot: str) -> None:
    from .feff.runner import run_structure

    record = load_record(structure_json)
    manifest = json.loads(Path(manifest_json).read_text())
    write_json(out_json, run_structure(record, manifest, feff_cfg, workroot))


def _index_row(structure_json: Path) -> dict:
    """What the shard needs from a structure record, read from its JSON (not the checkpoint's index, whose
    mtime changes whenever the structure set is re-gathered)."""
    doc = json.loads(structure_json.read_text())
    return {k: doc[k] for k in ("hash", "formula", "family", "source")} | {"structure_id": doc["id"]}


def shard_stage(structure_ids: list[str], folders: dict, out_path: str, config: dict) -> None:
    from .shards import site_rows, write_shard

    index = {sid: _index_row(Path(folders["structures"]) / f"{sid}.json") for sid in structure_ids}
    rows, structures, engines = [], [], []
    for sid in sorted(structure_ids):
        manifest = json.loads((Path(folders["sites"]) / f"{sid}.json").read_text())
        desc = json.loads((Path(folders["descriptors"]) / f"{sid}.json").read_text())
        feff = json.loads((Path(folders["feff"]) / f"{sid}.json").read_text())
        rows.extend(site_rows(index[sid], manifest, desc, feff, config))
        problems = [f"{stage}: {doc['message']}" for stage, doc in (("sites", manifest), ("descriptors", desc))
                    if doc.get("status") == "failed"]
        structures.append(index[sid] | {"status": "failed" if problems else "ok", "message": "; ".join(problems)})
        engines.append(feff["engine_version"])
    write_shard(out_path, rows, structures, config, engines)

"""Gather structures from the configured source into per-structure records and a failures table."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

from ..atomic import write_text
from ..errors import StructureError
from .io import StructureRecord, check_elements, check_processable, read_structure_file, write_record

INDEX_COLUMNS = ["structure_id", "hash", "formula", "n_atoms", "source", "family"]
FAILURE_COLUMNS = ["structure_id", "site_index", "stage", "message"]


def _library_records(options: dict) -> list[StructureRecord]:
    from . import library

    ids = options["library_ids"]
    if options["library_subset"] == "tiny" and ids is None:
        ids = list(library.TINY_IDS)
    if options["library_subset"] == "reference" and ids is None:
        from .reference import read_reference_ids

        ids = read_reference_ids()
    entries = library.build_library(
        include_derivatives=options["library_subset"] in ("all", "reference"),
        max_sites=10**6,  # filtered below, so oversize cells are reported rather than silently absent
        only_ids=ids,
    )
    return [StructureRecord(e.id, e.structure, "library", e.family, e.source) for e in entries]


def collect_structures(options: dict, amorphous_cells: list[str] = (), amorphous: dict | None = None,
                       ) -> tuple[list[StructureRecord], list[dict]]:
    """Records that later stages can process, and one failure row for each structure that cannot be.

    amorphous_cells (rule amorphous_cell's outputs) join as they are: already relaxed, and exempt from
    max_sites, since only a sample of their sites is simulated."""
    if options["source"] == "mp":
        from .mp import fetch_mp

        candidates = fetch_mp(options["mp"])
    else:
        candidates = _library_records(options)
    failures: list[dict] = []
    for path in options["extra_files"]:
        sid = f"lib-extra-{Path(path).stem}"
        try:
            candidates.append(StructureRecord(sid, read_structure_file(path), "file", "extra", str(path)))
        except StructureError as exc:
            failures.append({"structure_id": sid, "site_index": "", "stage": "structures", "message": str(exc)})
    seen: set[str] = set()
    records = _screened(candidates, options, failures, seen, limit_sites=True)
    records = _relaxed(records, options, failures)
    if amorphous_cells:
        from .amorphous import amorphous_records

        cells, failed = amorphous_records(list(amorphous_cells), amorphous or {})
        failures += failed
        records += _screened(cells, options, failures, seen, limit_sites=False)
    return records, failures


def _screened(candidates: list[StructureRecord], options: dict, failures: list[dict], seen: set[str],
              limit_sites: bool) -> list[StructureRecord]:
    """The candidates later stages can process; each other one becomes a failure row (ids must be unique)."""
    kept = []
    for rec in candidates:
        if rec.id in seen:
            raise StructureError(f"duplicate structure id {rec.id}: ids must be unique")
        seen.add(rec.id)
        try:
            check_processable(rec.structure, rec.id)
            check_elements(rec.structure, rec.id, options["allowed_elements"])
            if limit_sites and len(rec.structure) > options["max_sites"]:
                raise StructureError(
                    f"{rec.id}: {len(rec.structure)} atoms exceeds structures.max_sites={options['max_sites']}"
                )
        except StructureError as exc:
            failures.append({"structure_id": rec.id, "site_index": "", "stage": "structures", "message": str(exc)})
            continue
        kept.append(rec)
    return kept


def _relaxed(records: list[StructureRecord], options: dict, failures: list[dict]) -> list[StructureRecord]:
    """Records whose family asks for it replaced by their relaxed structure; non-converged ones become failures."""
    from .relax import RelaxError, RelaxSettings, cached_relax, method_for, potential_version

    wanted = {rec.id for rec in records if method_for(rec.family, options) == "chgnet"}
    if not wanted:
        return records
    potential_version()  # a missing CHGNet is one error before any structure is relaxed
    settings = RelaxSettings.from_config(options.get("relax_settings", {}))
    kept = []
    for rec in records:
        if rec.id not in wanted:
            kept.append(rec)
            continue
        try:
            result = cached_relax(rec.structure, settings, rec.id, options.get("relax_cache_dir", "results/relax_cache"))
        except RelaxError as exc:
            failures.append({"structure_id": rec.id, "site_index": "", "stage": "relax", "message": str(exc)})
            continue
        kept.append(replace(rec, structure=result.structure, relaxation=result.provenance))
    return kept


def tsv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, delimiter="\t", lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def read_tsv(path: str | Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def write_structures(options: dict, json_dir: str | Path, index_path: str | Path, failures_path: str | Path,
                     amorphous_cells: list[str] = (), amorphous: dict | None = None) -> int:
    """Per-structure JSONs are rewritten only when their content changed, so unchanged structures stay up to date."""
    records, failures = collect_structures(options, amorphous_cells, amorphous)
    rows = []
    for rec in sorted(records, key=lambda r: r.id):
        write_record(rec, json_dir)
        rows.append(
            {
                "structure_id": rec.id,
                "hash": rec.hash,
                "formula": rec.structure.composition.reduced_formula,
                "n_atoms": len(rec.structure),
                "source": rec.source,
                "family": rec.family,
            }
        )
    write_text(failures_path, tsv_text(failures, FAILURE_COLUMNS))
    write_text(index_path, tsv_text(rows, INDEX_COLUMNS))
    return len(rows)

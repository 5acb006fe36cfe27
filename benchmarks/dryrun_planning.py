"""Dry-run planning time of the DAG for a synthetic 3,000-structure config (target <= 60 s).

Writes 3,000 structure records (library structures cycled under new ids, ~27 nonequivalent sites each)
and the checkpoint's index into a scratch copy of the workflow, then times `snakemake -n`.

    python benchmarks/dryrun_planning.py [--structures 3000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xasengine.structures.collect import INDEX_COLUMNS, FAILURE_COLUMNS, tsv_text
from xasengine.structures.io import StructureRecord, write_record
from xasengine.structures.library import build_library, count_nonequivalent_sites

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--structures", type=int, default=3000)
    args = parser.parse_args()
    library = build_library()
    root = Path(tempfile.mkdtemp(prefix="xas-dryrun-"))
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "workflow", root / "workflow")
    shutil.copytree(REPO / "envs", root / "envs")
    rows, n_sites = [], 0
    for i in range(args.structures):
        entry = library[i % len(library)]
        rec = StructureRecord(f"syn-{i:05d}", entry.structure, "synthetic", entry.family)
        write_record(rec, root / "results" / "structures" / "json")
        n_sites += sum(count_nonequivalent_sites([entry]).values())
        rows.append({"structure_id": rec.id, "hash": rec.hash, "formula": "", "n_atoms": len(rec.structure),
                     "source": "synthetic", "family": rec.family})
    (root / "results" / "structures" / "index.tsv").write_text(tsv_text(rows, INDEX_COLUMNS))
    (root / "results" / "structures" / "failures.tsv").write_text(tsv_text([], FAILURE_COLUMNS))
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--quiet", "rules"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    print(proc.stdout[-800:])
    print(f"| dry run, {args.structures} structures, {n_sites} nonequivalent sites | {seconds:.1f} s |")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()

"""Damaged files and bad inputs: one line naming the file, a non-zero exit, and healing where the engine can heal.

Every damage is injected into a real file (a real FEFF10 cache entry, a packed cache part, the tiny workflow's
shards, stage outputs and checkpoints)."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from csv import reader as csv_reader
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from xasengine.config import validate_config
from xasengine.feff.cache import FeffCache, export_shipped
from xasengine.feff.runner import run_structure
from xasengine.readers import UnreadableFile, read_json
from xasengine.shards import read_shards
from xasengine.sites import site_manifest
from xasengine.structures.io import StructureRecord

XDI = Path(__file__).resolve().parents[2] / "shared" / "data" / "experimental-xanes"


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "xasengine.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def _one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("xasengine: error"), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def co_site():
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.26), ["Co", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    record = StructureRecord("lib-coo-test", s.get_primitive_structure(), "library", "prototype")
    return record, site_manifest(record, ["Co"], "K", 0.01)


def _feff_cfg(cache_dir, shipped=None):
    return validate_config({"feff": {"preset": "ci", "shipped_cache": shipped and str(shipped), "cache_dir": str(cache_dir)}})["feff"]


def test_empty_truncated_and_binary_files_are_named(tmp_path):
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "cut.json").write_text('{"sites": [1, 2')
    (tmp_path / "bin.json").write_bytes(b"\x89HDF\xff\xfe\x00")
    for name, reason in (("empty.json", "empty file"), ("cut.json", "invalid JSON at line 1"),
                         ("bin.json", "binary data"), ("missing.json", "no such file")):
        with pytest.raises(UnreadableFile, match=rf"^{tmp_path / name}: unreadable \({reason}"):
            read_json(tmp_path / name)


def test_truncated_cache_entry_is_dropped_with_a_warning_and_recomputed(co_site, tmp_path, caplog):
    record, manifest = co_site
    cfg = _feff_cfg(tmp_path / "cache")
    first = run_structure(record, manifest, cfg, tmp_path / "work")
    (entry,) = (tmp_path / "cache").glob("*/*.json")
    _truncate(entry)  # as left by a job killed mid-write
    with caplog.at_level(logging.WARNING):
        again = run_structure(record, manifest, cfg, tmp_path / "work")
    assert f"{entry}: unreadable (invalid JSON" in caplog.text and "computed again" in caplog.text
    (site,) = again["sites"]
    assert site["status"] == "ok" and not site["cached"] and site["mu"] == first["sites"][0]["mu"]
    assert read_json(entry)["mu"] == site["mu"]  # healed: the next run is a cache hit
    assert run_structure(record, manifest, cfg, tmp_path / "work")["sites"][0]["cached"]


def test_damaged_shipped_part_stops_with_its_name_and_how_to_restore_it(co_site, tmp_path):
    record, manifest = co_site
    run_structure(record, manifest, _feff_cfg(tmp_path / "cache"), tmp_path / "work")
    part = tmp_path / "shipped" / "part-001.h5"
    assert export_shipped(tmp_path / "cache", part) == 1
    _truncate(part)
    restore = f"git checkout -- {part}"
    with pytest.raises(UnreadableFile, match=rf"^{part}: unreadable \(.*\); .*{restore}"):
        run_structure(record, manifest, _feff_cfg(tmp_path / "empty", tmp_path / "shipped"), tmp_path / "work")
    line = _one_error_line(_cli("export-cache", "--cache-dir", tmp_path / "cache", "--out", part.parent / "p2.h5"))
    assert f"{part}: unreadable (" in line and restore in line


def test_export_cache_from_a_missing_folder_says_so(tmp_path):
    line = _one_error_line(_cli("export-cache", "--cache-dir", tmp_path / "nope", "--out", tmp_path / "x.h5"))
    assert f"no such folder: {tmp_path / 'nope'}" in line


# --- on the tiny workflow's real outputs -------------------------------------------------------------------


def _runtime_only(config: dict) -> dict:
    return config | {"feff": config["feff"] | {"timeout_s": 1234, "keep_workdirs": True},
                     "resources": {"feff_mem_mb": 999, "feff_runtime": "7h", "train_runtime": "9h", "train_threads": 2}}


@pytest.mark.workflow
def test_knobs_that_change_no_data_rerun_nothing(tiny_workflow):
    wf = tiny_workflow
    config = dict(wf.config)
    wf.set_config(_runtime_only(config))
    try:
        assert wf.planned() == {}
    finally:
        wf.set_config(config)


@pytest.mark.workflow
def test_truncated_stage_output_and_shard_are_named_then_rebuilt(tiny_workflow):
    wf = tiny_workflow
    results = wf.root / "results"
    for damaged, rebuilt_by in ((sorted((results / "feff").glob("*.json"))[0], "absorbing_sites"),
                                (sorted((results / "shards").glob("*.h5"))[0], "shard")):
        _truncate(damaged)
        rel = damaged.relative_to(wf.root)
        failed = wf.snakemake(check=False)
        assert failed.returncode != 0
        assert f"error [read]: {rel}: unreadable (" in failed.stderr
        assert f"rebuild it with: snakemake --forcerun {rel}" in failed.stderr
        logs = [p.read_text() for p in (results / "logs").rglob("*.log")]
        assert not any("Traceback" in text for text in logs)
        healed = wf.snakemake("--forcerun", str(rel))
        assert wf.executed(healed)[rebuilt_by] == 1
        assert read_json(damaged)["sites"] if damaged.suffix == ".json" else read_shards([damaged])["status"].size
    assert wf.planned() == {}


@pytest.mark.workflow
def test_damaged_checkpoint_is_one_line(tiny_workflow, tmp_path):
    checkpoint = tmp_path / "spt-joint-nonO.pt"
    shutil.copy(tiny_workflow.root / "results" / "models" / checkpoint.name, checkpoint)
    _truncate(checkpoint)
    line = _one_error_line(_cli("predict", "--model", checkpoint, tmp_path))
    assert f"{checkpoint}: unreadable (" in line


@pytest.mark.workflow
@pytest.mark.skipif(not XDI.exists(), reason="shared experimental data not present")
def test_predict_on_a_folder_fails_each_bad_file_on_its_own(tiny_workflow, tmp_path):
    good = ["MnO_rt_01.xdi", "NiOH2_rt_01.xdi"]
    for name in good + ["LICENSE-XASDataLibrary.txt"]:
        shutil.copy(XDI / name, tmp_path / name)
    (tmp_path / "binary.xdi").write_bytes(b"\x00\xff\xfe\x89binary")
    (tmp_path / "empty.dat").write_text("")
    model = tiny_workflow.root / "results" / "models"
    proc = _cli("predict", "--model", model, tmp_path)
    assert proc.returncode == 1
    rows = {Path(r["source"]).name: r for r in json.loads(proc.stdout)}
    assert {n for n, r in rows.items() if r["status"] == "ok"} == set(good)
    assert rows["binary.xdi"]["status"] == rows["empty.dat"]["status"] == "failed"
    assert "unreadable (binary data" in rows["binary.xdi"]["reason"]
    assert "unreadable (empty file)" in rows["empty.dat"]["reason"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xasengine: error")]
    assert sorted(errors) == sorted(f"xasengine: error [predict]: {rows[n]['reason']}" for n in ("binary.xdi", "empty.dat"))
    assert "skipped" in proc.stderr and "LICENSE-XASDataLibrary.txt" in proc.stderr  # said, not silent
    csv = _cli("predict", "--model", model, tmp_path, "--format", "csv")
    header, *table = list(csv_reader(io.StringIO(csv.stdout)))
    assert csv.returncode == 1 and header[-2:] == ["status", "reason"] and len(table) == 4
    assert sorted(row[-2] for row in table) == ["failed", "failed", "ok", "ok"]
    only_good = _cli("predict", "--model", model, *(tmp_path / n for n in good))
    assert only_good.returncode == 0 and only_good.stderr == ""


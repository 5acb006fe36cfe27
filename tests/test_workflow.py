"""The whole DAG on the tiny config with real FEFF10: outputs, increments, failures, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

from conftest import DATA, REPO, WorkflowCopy, tiny_config
from xasengine.shards import SCHEMA_VERSION, read_shards
from xasengine.structures.collect import read_tsv
from xasengine.structures.library import TINY_IDS

pytestmark = pytest.mark.workflow
# downstream of every shard, so they rerun whenever the dataset changes
CARD = "results/reports/dataset_card.md"
# model and report work, which reruns whenever the data change; seed runs too once `benchmark_seeds` has been
# built (the benchmark report then quotes their spread, so it must be for the current data)
MODEL_RULES = {"train_spt", "train_spt_expert", "evaluate_spt", "train_baseline", "benchmark", "robustness",
               "expert_vs_joint", "umap_embed", "seed_run", "benchmark_seeds", "train_diffusion", "evaluate_diffusion",
               "diffusion_consistency", "diffusion_report", "delithiation", "experimental", "edge_map", "finetune_spt",
               "amorphous_report"}


def _feff_docs(wf):
    return {p.stem: json.loads(p.read_text()) for p in (wf.root / "results" / "feff").glob("*.json")}


def test_full_run_produces_shards_card_and_real_spectra(tiny_workflow):
    wf = tiny_workflow
    jobs = wf.executed(wf.first_run)
    assert jobs["absorbing_sites"] == len(TINY_IDS)
    assert jobs["structures"] == 1 and jobs["dataset_card"] == 1
    assert jobs["train_spt"] == 2 and jobs["train_baseline"] == 14 and jobs["benchmark"] == 1
    shards = sorted((wf.root / "results" / "shards").glob("shard-*.h5"))
    assert shards and jobs["shard"] == len(shards)
    for path in shards:
        with h5py.File(path) as fh:
            assert fh.attrs["schema_version"] == SCHEMA_VERSION
            assert "feff10-rs" in fh.attrs["feff_engines"]
    table = read_shards(shards)
    assert set(table["structure_id"]) == set(TINY_IDS)
    assert (table["status"] == "ok").all(), table["message"][table["status"] != "ok"]
    assert np.isfinite(table["spectrum"]).all()
    # normalised: ~0 well below the edge, ~1 well above it
    assert np.all(np.abs(table["spectrum"][:, 0]) < 0.3)
    assert np.all(np.abs(table["spectrum"][:, -30:].mean(axis=1) - 1) < 0.5)
    # every site got the descriptors that apply to it
    non_o = table["element"] != "O"
    assert np.isfinite(table["descriptors"]["OCN"][non_o]).all()
    assert np.isnan(table["descriptors"]["NNOSM"][non_o]).all()
    assert np.isfinite(table["descriptors"]["NNOSM"][~non_o]).all()
    card = (wf.root / "results" / "reports" / "dataset_card.md").read_text()
    assert f"{len(TINY_IDS)} structures" in card and "Co-K" in card
    benchmark = (wf.root / "results" / "reports" / "benchmark.html").read_text()
    assert "nonO sites" in benchmark and "O sites" in benchmark and "SPT" in benchmark
    feff = _feff_docs(wf)
    for doc in feff.values():
        for site in doc["sites"]:
            assert site["feff_input"].startswith("CONTROL") and len(site["feff_hash"]) == 64
            assert site["feff_seconds"] > 0 and site["stage_seconds"]


def test_rerun_with_nothing_changed_plans_nothing(tiny_workflow):
    assert tiny_workflow.planned() == {}


def test_adding_one_structure_recomputes_only_its_work(tiny_workflow):
    wf = tiny_workflow
    shards_before = {p.name: p.stat().st_mtime_ns for p in (wf.root / "results" / "shards").glob("*.h5")}
    feff_before = {p.name: p.stat().st_mtime_ns for p in (wf.root / "results" / "feff").glob("*.json")}
    wf.set_config(tiny_config(structures={"extra_files": [str(DATA / "NiO_strained.cif")]}))
    proc = wf.snakemake()
    jobs = wf.executed(proc)
    data_jobs = {rule: n for rule, n in jobs.items() if rule not in MODEL_RULES}
    # one shard and its environments file: the other shards' shells are not re-cut
    assert data_jobs == {"structures": 1, "absorbing_sites": 1, "shard": 1, "environments": 1, "dataset_card": 1}
    new = json.loads((wf.root / "results" / "feff" / "lib-extra-NiO_strained.json").read_text())
    assert [s["cached"] for s in new["sites"]] == [False, False]
    feff_after = {p.name: p.stat().st_mtime_ns for p in (wf.root / "results" / "feff").glob("*.json")}
    assert {k: v for k, v in feff_after.items() if k in feff_before} == feff_before
    shards_after = {p.name: p.stat().st_mtime_ns for p in (wf.root / "results" / "shards").glob("*.h5")}
    changed = {k for k in shards_after if shards_before.get(k) != shards_after[k]}
    assert len(changed) == 1
    assert wf.planned() == {}


def test_changing_a_feff_parameter_reruns_feff(tiny_workflow):
    wf = tiny_workflow
    config = dict(wf.config)
    wf.set_config(config | {"feff": config["feff"] | {"overrides": {"fms": 3.5}}})
    try:
        planned = wf.planned()
        n_structures = len(read_tsv(wf.root / "results" / "structures" / "index.tsv"))
        assert planned["absorbing_sites"] == n_structures  # FEFF reruns for every structure...
        assert "structures" not in planned  # ...but the structures are not gathered again
    finally:
        wf.set_config(config)
    assert wf.planned() == {}


def _failure_rows(wf):
    return read_tsv(wf.root / "results" / "reports" / "failures.tsv")


@pytest.mark.parametrize(
    "executable, timeout, expected",
    [
        ("false", 60, "exited with code 1"),
        ("true", 60, "without writing xmu.dat"),
        ("sleep 30", 2, "timeout"),
    ],
)
def test_feff_failures_are_recorded_and_the_run_goes_on(tmp_path, executable, timeout, expected):
    config = tiny_config(
        structures={"library_ids": ["lib-coo-rocksalt"]},
        feff={"engine": "external", "executable": executable, "timeout_s": timeout},
    )
    wf = WorkflowCopy(tmp_path, config)
    wf.snakemake(CARD)
    rows = _failure_rows(wf)
    assert rows and all(r["stage"] == "feff" and expected in r["message"] for r in rows)
    assert {r["structure_id"] for r in rows} == {"lib-coo-rocksalt"}
    card = (wf.root / "results" / "reports" / "dataset_card.md").read_text()
    assert expected in card


def test_unprocessable_structures_are_recorded(tmp_path):
    config = tiny_config(
        structures={"library_ids": ["lib-coo-rocksalt"],
                    "extra_files": [str(DATA / "disordered_CoNiO.cif"), str(DATA / "garbage.cif"),
                                    str(DATA / "FeO_rocksalt.cif"), str(DATA / "CoO4_overoxidised.cif")]},
        feff={"preset": "ci"},
    )
    wf = WorkflowCopy(tmp_path, config)
    wf.snakemake(CARD)
    rows = {r["structure_id"]: r for r in _failure_rows(wf)}
    assert "disordered" in rows["lib-extra-disordered_CoNiO"]["message"]
    assert "garbage.cif: unreadable" in rows["lib-extra-garbage"]["message"]  # the readers' one line
    assert "contains Fe, outside structures.allowed_elements" in rows["lib-extra-FeO_rocksalt"]["message"]
    card = (wf.root / CARD).read_text()
    assert "lib-extra-FeO_rocksalt" in card and "chemical space (structures.allowed_elements): Co, Li, Mn, Ni, O\n" in card
    assert "no oxidation-state assignment" in rows["lib-extra-CoO4_overoxidised"]["message"]
    assert rows.pop("lib-extra-CoO4_overoxidised")["stage"] == "descriptors"
    assert json.loads((wf.root / "results" / "feff" / "lib-extra-CoO4_overoxidised.json").read_text())["sites"] == []
    assert all(r["stage"] == "structures" for r in rows.values())
    table = read_shards(sorted((wf.root / "results" / "shards").glob("*.h5")))
    assert set(table["structure_id"]) == {"lib-coo-rocksalt"} and (table["status"] == "ok").all()


def test_cached_only_run_reports_what_was_not_computed(tmp_path):
    """feff.cached_only: shipped sites are used, the rest is counted as not computed and FEFF never starts."""
    config = tiny_config(
        structures={"library_ids": ["lib-coo-rocksalt"], "extra_files": [str(DATA / "NiO_strained.cif")]},
        feff={"preset": "default", "cached_only": True, "shipped_cache": str(REPO / "resources" / "feff_cache")},
    )
    wf = WorkflowCopy(tmp_path, config)
    wf.snakemake(CARD)
    summary = json.loads((wf.root / "results" / "reports" / "dataset_card.json").read_text())
    assert summary["n_sites_ok"] == 2 and summary["n_sites_not_computed"] == 2  # CoO: Co + O; strained NiO: Ni + O
    assert summary["sites_per_edge"]["Ni-K"] == {"ok": 0, "failed": 0, "not_computed": 1}
    assert "not computed" in (wf.root / "results" / "reports" / "dataset_card.md").read_text()
    assert _failure_rows(wf) == []
    assert not (wf.root / "results" / "feff_work").exists()


def test_killed_run_resumes_without_repeating_feff(tmp_path):
    config = tiny_config(structures={"library_ids": ["lib-co3o4-spinel", "lib-coo-rocksalt"]})
    wf = WorkflowCopy(tmp_path, config)
    cache = wf.root / "results" / "feff_cache"
    cmd = [sys.executable, "-m", "snakemake", CARD, "--cores", "2", "--configfile", str(wf.config_path)]
    proc = subprocess.Popen(cmd, cwd=wf.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and len(list(cache.glob("*/*.json"))) < 1 and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(3)
    orphans = subprocess.run(["pgrep", "-f", str(wf.root / "results")], capture_output=True, text=True).stdout
    assert not orphans.strip(), "FEFF processes outlived the killed run"
    done_before = {p.stem for p in cache.glob("*/*.json")}
    finished_jobs = {p.stem for p in (wf.root / "results" / "feff").glob("*.json")}
    assert done_before, "no FEFF result finished before the kill"
    wf.snakemake("--unlock")
    wf.snakemake(CARD)
    docs = _feff_docs(wf)
    rows = [s for doc in docs.values() for s in doc["sites"]]
    assert all(s["status"] == "ok" for s in rows)
    resumed = [s for sid, doc in docs.items() if sid not in finished_jobs for s in doc["sites"]]
    assert any(s["cached"] for s in resumed), "the kill did not interrupt a FEFF job midway"
    for s in resumed:
        if s["feff_hash"] in done_before:
            assert s["cached"], "a FEFF result finished before the kill was computed again"
    assert len({p.stem for p in cache.glob("*/*.json")}) == len({s["feff_hash"] for s in rows})
    for path in (wf.root / "results" / "shards").glob("*.h5"):
        with h5py.File(path) as fh:
            assert fh.attrs["schema_version"] == SCHEMA_VERSION
    assert not list((wf.root / "results").rglob("*.tmp"))


def test_readme_resume_sequence_clears_a_stale_lock(tmp_path):
    """kill -9 leaves Snakemake's lock behind: the README's `--unlock`, then `--rerun-incomplete`, resumes."""
    wf = WorkflowCopy(tmp_path, tiny_config())
    target = "results/structures/index.tsv"

    def snakemake(*args):
        return subprocess.run([sys.executable, "-m", "snakemake", *args, "--cores", "1", "--configfile",
                               str(wf.config_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)

    proc = subprocess.Popen([sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile",
                             str(wf.config_path)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    locks = tmp_path / ".snakemake" / "locks"
    deadline = time.time() + 120
    while time.time() < deadline and not list(locks.glob("*")) and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(locks.glob("*")), "the kill left no stale lock to test with"
    locked = snakemake(target, "--rerun-incomplete")
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    assert snakemake("--unlock").returncode == 0
    resumed = snakemake(target, "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / target).exists() and not list(locks.glob("*"))


def test_html_report(tiny_workflow):
    wf = tiny_workflow
    wf.snakemake("--report", "report.html")
    html = (wf.root / "report.html").read_text(errors="replace")
    assert "dataset_card" in html or "example_spectra" in html
    assert "experimental_os.png" in html and "Measured spectra" in html


def test_rules_are_snakefmt_formatted_and_lint_clean():
    """The catalog's standard: `snakefmt --check` and `snakemake --lint` pass on the workflow as shipped."""
    fmt = subprocess.run(["snakefmt", "--check", "Snakefile", "workflow"], cwd=REPO, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stderr + fmt.stdout
    lint = subprocess.run(["snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert lint.returncode == 0 and "good condition" in lint.stdout + lint.stderr, lint.stdout + lint.stderr


def test_amorphous_cells_run_through_the_engine_to_their_report(tmp_path):
    """Two 8-atom MD cells (tests/configs/tiny_amorphous.yaml): gathered by the structures checkpoint under their
    own splits, a per-element site sample simulated and sharded, the joint SPT fine-tuned on one cell, both scored
    on the other. Its own workflow copy, so the other tests keep the five crystal structures they count."""
    from xasengine.shards import read_shards
    from xasengine.train import load_checkpoint

    amorphous = yaml.safe_load((REPO / "tests" / "configs" / "tiny_amorphous.yaml").read_text())
    wf = WorkflowCopy(tmp_path, tiny_config(amorphous=amorphous["amorphous"]))
    wf.snakemake("results/reports/amorphous.html")
    results = wf.root / "results"
    index = (results / "structures" / "index.tsv").read_text()
    assert "amorphous-LiCoO2-s1\t" in index and "amorphous-train" in index and "amorphous-test" in index
    table = read_shards(sorted((results / "shards").glob("*.h5")), only_ok=True)
    split = np.asarray(table["split"]).astype(str)
    assert {"amorphous-train", "amorphous-test"} <= set(split)
    assert (split == "amorphous-test").sum() == 3  # Co, Li, O: one site per element (sites_per_cell 1)
    _, meta = load_checkpoint(results / "models" / "spt-amorphous-nonO.pt")
    assert meta["finetune"]["split"] == "amorphous-train" and meta["finetune"]["n_sites"] == 2
    report = json.loads((results / "reports" / "amorphous.json").read_text())
    scores = report["groups"]["nonO"]["scores"]
    assert set(scores) >= {"zero-shot SPT", "fine-tuned SPT"} and "PSGO" not in scores["zero-shot SPT"]
    assert report["counts"]["amorphous-test/nonO"] == {"sites": 2, "cells": 1}

"""The slurm profile: what it asks SLURM for (dry run), and the README's cluster commands on a real scheduler.

The real-cluster tests need a SLURM that answers `sinfo` and `sacct`: the throw-away one from `.ci/local-slurm`
(CI brings it up; locally: `bash .ci/local-slurm install && bash .ci/local-slurm up`). Without one they are
skipped, except under CI=true, where they must run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
import yaml

from conftest import REPO, WorkflowCopy, tiny_config
from xasengine.structures.library import TINY_IDS

LOCAL_SLURM = REPO / ".ci" / "local-slurm"
PROFILE = "workflow/profiles/slurm"
# wall-clock fields, the only ones a SLURM run may change
TIMING_DATASETS = {"sites/feff_seconds"}
# rules the profile leaves to the main Snakemake process (Snakefile `localrules`)
LOCAL_RULES = {"structures", "dataset_card", "benchmark", "expert_vs_joint"}
RUN_TIMEOUT = 1500  # s; a hung run (the failure this guards against) fails instead of blocking CI


def readme_cluster_commands() -> str:
    """The bash block between the README's slurm-commands markers: what a user types, and what the test runs."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- slurm-commands -->", 1)[1].split("<!-- /slurm-commands -->", 1)[0]
    return block.split("```bash", 1)[1].split("```", 1)[0].strip()


def train_job_block(text: str, rule: str) -> str:
    return text.split(f"rule {rule}:", 1)[1].split("\n\n", 1)[0]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_training_asks_for_a_gpu_and_its_partition_only_on_cuda(tmp_path, monkeypatch, device):
    import snakemake_executor_plugin_slurm  # noqa: F401  (the profile's executor must be installed)

    monkeypatch.setenv("SLURM_ACCOUNT", "acct")
    monkeypatch.setenv("SLURM_PARTITION", "cpus")
    monkeypatch.setenv("SLURM_GPU_PARTITION", "gpus")
    config = tiny_config(train={"device": device})
    proc = WorkflowCopy(tmp_path, config).snakemake("-n", "--profile", str(tmp_path / PROFILE))
    text = proc.stdout + proc.stderr
    for rule in ("train_spt", "train_spt_expert"):
        job = train_job_block(text, rule)
        assert "slurm_account=acct" in job and "runtime=120" in job
        assert "cpus_per_task" not in job and "slurm_extra" not in job  # CPUs follow the rule's threads
        if device == "cuda":
            assert "gres=gpu:1" in job and "slurm_partition=gpus" in job, job
        else:
            assert "gres" not in job and "slurm_partition=cpus" in job, job


def test_training_falls_back_to_the_main_partition_without_a_gpu_partition(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ACCOUNT", "acct")
    monkeypatch.setenv("SLURM_PARTITION", "cpus")
    monkeypatch.delenv("SLURM_GPU_PARTITION", raising=False)
    proc = WorkflowCopy(tmp_path, tiny_config(train={"device": "cuda"})).snakemake(
        "-n", "--profile", str(tmp_path / PROFILE))
    job = train_job_block(proc.stdout + proc.stderr, "train_spt")
    assert "gres=gpu:1" in job and "slurm_partition=cpus" in job, job


# ---------------------------------------------------------------- real scheduler


def slurm_answers() -> bool:
    if not shutil.which("sinfo"):
        return False
    try:
        info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return info.returncode == 0 and bool(info.stdout.strip()) and acct.returncode == 0


@pytest.fixture(scope="module")
def slurm():
    """A SLURM that answers; under CI=true the local one is brought up (`.ci/run` installed it)."""
    if not slurm_answers():
        if os.environ.get("CI") != "true":
            pytest.skip("no SLURM answering sinfo/sacct (bash .ci/local-slurm install && bash .ci/local-slurm up)")
        subprocess.run(["bash", str(LOCAL_SLURM), "up"], check=True, timeout=300)
    assert slurm_answers(), "the local SLURM does not answer sinfo/sacct"


def tiny_as_default(root) -> None:
    """Make the copy's config.yaml the tiny config (as `--configfile tests/configs/tiny.yaml` would merge it),
    so the README's commands run verbatim."""
    def merge(base, over):
        return {**base, **{k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                           for k, v in over.items()}}
    base = yaml.safe_load((root / "config.yaml").read_text())
    (root / "config.yaml").write_text(yaml.safe_dump(merge(base, tiny_config())))


def workflow_copy(root) -> WorkflowCopy:
    root.mkdir()
    wf = WorkflowCopy(root, tiny_config())
    tiny_as_default(root)
    return wf


def start_cluster_commands(root, commands: str) -> subprocess.Popen:
    """The commands in bash, with the local cluster's account and partitions (`local-slurm exec`)."""
    return subprocess.Popen(["bash", str(LOCAL_SLURM), "exec", "bash", "-euo", "pipefail", "-c", commands],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen, root, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        cancel_jobs_of(root)
        pytest.fail(f"the cluster run hung for {timeout:.0f}s; its last output:\n{out[-4000:]}")
    return out


def jobs_of(root) -> list[dict]:
    """SLURM's record (sacct) of every job submitted from this workflow directory."""
    fields = ["JobID", "State", "AllocCPUS", "Partition", "Account", "Comment%80", "WorkDir%300"]
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", "now-3hours", "-o", ",".join(fields)],
                         capture_output=True, text=True, check=True).stdout
    names = [f.split("%")[0] for f in fields]
    rows = [dict(zip(names, line.split("|"))) for line in out.splitlines() if line]
    return [r for r in rows if r["WorkDir"].rstrip("/") == str(root)]


def cancel_jobs_of(root) -> None:
    ids = [r["JobID"] for r in jobs_of(root) if r["State"] in ("PENDING", "RUNNING")]
    if ids:
        subprocess.run(["scancel", *ids], check=False)


def h5_contents(path) -> dict:
    items = {}
    with h5py.File(path) as fh:
        items.update({f"@{k}": v for k, v in fh.attrs.items()})
        fh.visititems(lambda name, obj: items.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return {k: v for k, v in items.items() if k not in TIMING_DATASETS}


def assert_same(a, b, where):
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=where)  # NaN == NaN here
        else:
            assert (a == b).all(), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def cluster_and_local_runs(slurm, tmp_path_factory):
    """The README's cluster commands on the tiny config, next to a local `snakemake --cores 2` of the same config."""
    base = tmp_path_factory.mktemp("slurm")
    cluster, local = workflow_copy(base / "cluster"), workflow_copy(base / "local")
    start = time.monotonic()
    proc = start_cluster_commands(cluster.root, readme_cluster_commands())
    local_proc = subprocess.Popen(["snakemake", "--cores", "2"], cwd=local.root, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
    local_out, _ = local_proc.communicate(timeout=RUN_TIMEOUT)
    assert local_proc.returncode == 0, local_out[-4000:]
    out = finish(proc, cluster.root, RUN_TIMEOUT - (time.monotonic() - start))
    print(f"cluster run: {time.monotonic() - start:.0f}s")
    assert proc.returncode == 0, out[-6000:]
    return cluster.root, local.root, out


@pytest.mark.workflow
def test_readme_cluster_commands_match_a_local_run(cluster_and_local_runs):
    cluster, local, out = cluster_and_local_runs
    jobs = jobs_of(cluster)
    assert jobs and all(j["State"] == "COMPLETED" for j in jobs), jobs
    assert {j["Account"] for j in jobs} == {"xas"}
    by_rule = {}
    for job in jobs:
        by_rule.setdefault(job["Comment"].split("_wildcards")[0], []).append(job)
    # the five structures' FEFF jobs went as one group submission; aggregation stayed local
    assert len(by_rule.pop("rule_feff_absorbing_sites")) == 1, by_rule
    assert not {f"rule_{r}" for r in LOCAL_RULES} & set(by_rule), by_rule
    assert {"rule_shard", "rule_train_spt", "rule_train_spt_expert", "rule_train_baseline"} <= set(by_rule)
    assert all(j["AllocCPUS"] == "1" and j["Partition"] == "main" for j in by_rule["rule_train_spt"])  # cpu, 1 thread
    for rule in LOCAL_RULES:
        assert f"localrule {rule}:" in out or f"localcheckpoint {rule}:" in out, rule

    shards = sorted(p.name for p in (local / "results" / "shards").glob("shard-*.h5"))
    assert shards and shards == sorted(p.name for p in (cluster / "results" / "shards").glob("shard-*.h5"))
    for name in shards:
        ours, theirs = (h5_contents(root / "results" / "shards" / name) for root in (cluster, local))
        assert ours.keys() == theirs.keys(), name
        for key in ours:
            assert_same(ours[key], theirs[key], f"{name}:{key}")
    card = "results/reports/dataset_card.md"
    assert (cluster / card).read_text() == (local / card).read_text()
    assert f"{len(TINY_IDS)} structures" in (cluster / card).read_text()


@pytest.mark.workflow
def test_a_cancelled_job_is_retried_or_reported_not_hung(slurm, tmp_path):
    """scancel the FEFF group job while it runs: the run resubmits it (profile `retries: 1`) and finishes,
    or stops naming the cancelled job; it never waits for ever."""
    wf = workflow_copy(tmp_path / "cancel")
    one = "lib-coo-rocksalt"  # one structure keeps the resubmission short
    proc = start_cluster_commands(
        wf.root, f"snakemake --profile {PROFILE} feff_all --config 'structures={{library_ids: [{one}]}}'")
    deadline = time.monotonic() + 300
    cancelled = None
    while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
        running = [j for j in jobs_of(wf.root) if j["State"] == "RUNNING"]
        if running:
            cancelled = running[0]["JobID"]
            subprocess.run(["scancel", cancelled], check=True)
        time.sleep(2)
    if cancelled is None:
        os.killpg(proc.pid, signal.SIGKILL)
        cancel_jobs_of(wf.root)
        pytest.fail("no SLURM job of the run was seen running within 300s")
    out = finish(proc, wf.root, 900)
    # the cancel is caught and named: the group's error points at the cancelled job's SLURM log
    assert "Error in group feff" in out and f"group_feff_absorbing_sites/{cancelled}.log" in out, out[-4000:]
    states = {j["JobID"]: j["State"] for j in jobs_of(wf.root)}
    assert states[cancelled].startswith("CANCELLED"), states
    if proc.returncode == 0:  # recovered: resubmitted once, and the structure's FEFF results are there
        assert "Trying to restart job" in out and "COMPLETED" in states.values(), states
        assert [p.stem for p in (wf.root / "results" / "feff").glob("*.json")] == [one]
    else:
        assert "At least one job did not complete successfully" in out, out[-4000:]

"""Shared fixtures: run the real Snakemake workflow on a temporary copy of the repository's workflow."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
JOB_LINE = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):\s*$", re.M)


class WorkflowCopy:
    """A scratch copy of Snakefile + workflow/ + config.yaml with its own results/."""

    def __init__(self, root: Path, config: dict):
        self.root = root
        for name in ("Snakefile", "config.yaml"):
            shutil.copy(REPO / name, root / name)
        shutil.copytree(REPO / "workflow", root / "workflow")
        shutil.copytree(REPO / "envs", root / "envs")
        self.config_path = root / "test-config.yaml"
        self.set_config(config)

    def set_config(self, config: dict) -> None:
        self.config = config
        self.config_path.write_text(yaml.safe_dump(config))

    def snakemake(self, *args: str, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess:
        # targets and flags first: --configfile takes every following word as a file
        cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--rerun-incomplete",
               "--configfile", str(self.config_path)]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
        return proc

    def executed(self, proc: subprocess.CompletedProcess) -> Counter:
        """Jobs Snakemake started, by rule (it prints 'rule NAME:' once per job); the `all` target excluded."""
        jobs = Counter(JOB_LINE.findall(proc.stdout + proc.stderr))
        jobs.pop("all", None)
        return jobs

    def planned(self, *args: str) -> Counter:
        """Jobs a dry run plans, from its 'Job stats' table."""
        proc = self.snakemake("-n", *args)
        text = proc.stdout + proc.stderr
        if "Nothing to be done" in text:
            return Counter()
        stats = text.split("Job stats:", 1)[1]
        counts = Counter()
        for line in stats.splitlines()[3:]:
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
                if parts and parts[0] == "total":
                    break
                continue
            counts[parts[0]] = int(parts[1])
        return counts


def tiny_config(**overrides) -> dict:
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config.setdefault("reports", {})["measured"] = {  # the copy has no resources/: three shipped test scans
        "dir": str(REPO / "tests" / "data" / "measured"),
        "standards": str(REPO / "resources" / "measured" / "standards.tsv")}
    for key, value in overrides.items():
        config.setdefault(key, {}).update(value)
    return config


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory):
    """The tiny CI workflow, run once per test session (real FEFF10, `ci` preset, real training)."""
    wf = WorkflowCopy(tmp_path_factory.mktemp("wf"), tiny_config())
    wf.first_run = wf.snakemake()
    return wf


def sites_not_in_shipped_cache(records, cfg: dict, tmp_path: Path) -> list[str]:
    """The engine's own FEFF stage, allowed only cache hits: each site it would have to run is listed (a shipped
    result found is never recomputed, so a missing one is a `not_computed` row, not a FEFF run)."""
    from xasengine.feff.runner import run_structure
    from xasengine.sites import site_manifest

    feff = cfg["feff"] | {"cached_only": True, "cache_dir": str(tmp_path / "feff_cache"),
                          "shipped_cache": str(REPO / cfg["feff"]["shipped_cache"])}
    missing = []
    for record in records:
        manifest = site_manifest(record, cfg["sites"]["absorbers"], cfg["sites"]["edge"], cfg["sites"]["symprec"])
        rows = run_structure(record, manifest, feff, tmp_path / "work")["sites"]
        missing += [f"{record.id} site {row['site_index']}" for row in rows if row["status"] != "ok"]
    return missing

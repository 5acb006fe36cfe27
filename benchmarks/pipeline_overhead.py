"""Pipeline overhead on the tiny config: (DAG wall time - FEFF time) / FEFF time, target <= 5 %.

Runs the whole workflow from scratch with one core (so wall time and summed FEFF time are comparable),
FEFF cache empty, and sums the seconds FEFF itself took (feff_seconds of every site).

    python benchmarks/pipeline_overhead.py [--configfile tests/configs/tiny.yaml] [--preset default]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configfile", default=str(REPO / "tests" / "configs" / "tiny.yaml"))
    parser.add_argument("--preset", default=None, help="override feff.preset (e.g. default)")
    parser.add_argument("--target", default="results/reports/dataset_card.md",
                        help="what to build: the data engine's end (the default) or `all` (adds training)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="xas-overhead-"))
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, root / name)
    for name in ("workflow", "envs"):
        shutil.copytree(REPO / name, root / name)
    config = yaml.safe_load(Path(args.configfile).read_text())
    config.setdefault("feff", {})["shipped_cache"] = None
    if args.preset:
        config["feff"]["preset"] = args.preset
    (root / "bench.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", args.target,
                           "--configfile", "bench.yaml"],
                          cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    feff = sum(s["feff_seconds"] for p in (root / "results" / "feff").glob("*.json")
               for s in json.loads(p.read_text())["sites"] if s["status"] == "ok" and not s["cached"])
    n_sites = sum(len(json.loads(p.read_text())["sites"]) for p in (root / "results" / "feff").glob("*.json"))
    print(f"| {Path(args.configfile).name} preset {config['feff'].get('preset')} | {n_sites} sites | wall {wall:.1f} s "
          f"| FEFF {feff:.1f} s | overhead {(wall - feff) / feff * 100:.1f} % |")
    for rule, (n, seconds) in sorted(job_seconds(proc.stderr).items(), key=lambda kv: -kv[1][1]):
        print(f"  {rule}: {n} jobs, {seconds:.1f} s")
    shutil.rmtree(root)


def job_seconds(log: str) -> dict[str, tuple[int, float]]:
    """Seconds per rule from Snakemake's log: with one core, a job runs from its start stamp to the next stamp."""
    stamps, rules = [], []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("[") and line.endswith("]") and i + 1 < len(lines):
            stamp = datetime.strptime(line[1:-1], "%a %b %d %H:%M:%S %Y")
            nxt = lines[i + 1].strip()
            if nxt.startswith(("rule ", "localrule ", "checkpoint ", "localcheckpoint ")):
                rules.append((nxt.split()[-1].rstrip(":"), stamp))
            elif nxt.startswith("Finished jobid"):
                stamps.append((nxt.split("Rule: ")[-1].rstrip(")"), stamp))
    out: dict[str, tuple[int, float]] = {}
    for rule, start in rules:
        end = next((t for r, t in stamps if r == rule and t >= start), start)
        stamps = [(r, t) for r, t in stamps if not (r == rule and t == end)] if end != start else stamps
        n, total = out.get(rule, (0, 0.0))
        out[rule] = (n + 1, total + (end - start).total_seconds())
    return out


if __name__ == "__main__":
    main()

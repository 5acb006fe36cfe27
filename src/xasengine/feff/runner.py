"""Run FEFF10 for every absorbing site of one structure, reusing cached results and recording failures."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import FeffCrashError, FeffRunError, XasEngineError
from ..readers import UnreadableFile
from .cache import NOT_COMPUTED, FeffCache, cache_key
from .inputs import RESCUE_NOTE, feff_input_text, rescue_input_text
from .presets import resolve_preset


def engine_version(engine: str, executable: str) -> str:
    if engine == "feff10-rs":
        import feff10

        return f"feff10-rs {feff10.__version__}"
    return f"external {executable}"


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the job process dies (e.g. snakemake killed), so FEFF never runs orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _run_process(cmd: list[str], workdir: Path, timeout: float) -> None:
    """Own process group, so a timeout kills FEFF's stage workers too."""
    with open(workdir / "feff.log", "w") as log:
        try:
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        except OSError as exc:  # missing, not executable, or a bad interpreter line: the site's failure row
            raise FeffRunError(f"FEFF command {cmd[0]!r} cannot start ({exc.strerror or exc}); "
                               "check feff.executable") from None
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise FeffRunError(f"FEFF exceeded the {timeout:g} s timeout (feff.timeout_s)") from None
    if code != 0:
        tail = (workdir / "feff.log").read_text(errors="replace").strip().splitlines()[-3:]
        reason = feff_error_lines(workdir)
        error = FeffCrashError if code > 0 else FeffRunError  # code < 0: killed by a signal, not FEFF's doing
        raise error(f"FEFF exited with code {code}: {' / '.join(reason + tail) or 'no output'}")


def feff_error_lines(workdir: Path, n: int = 3) -> list[str]:
    """FEFF's own explanation of a crash: the last lines of the newest module log (log1.dat for pot, ...), e.g.
    'Cannot determine Norman radius -- quitting.'; the console log only says which module was running."""
    logs = sorted(workdir.glob("log*.dat"), key=lambda path: path.stat().st_mtime)
    if not logs:
        return []
    lines = [line.strip() for line in logs[-1].read_text(errors="replace").splitlines() if line.strip()]
    return lines[-n:]


def read_xmu(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Absolute photon energy (eV) and mu from FEFF's xmu.dat (columns omega, e, k, mu, mu0, chi)."""
    if not path.exists():
        raise FeffRunError("FEFF finished without writing xmu.dat")
    try:
        data = np.loadtxt(path, comments="#", ndmin=2)
    except ValueError as exc:
        raise FeffRunError(f"xmu.dat is unreadable: {exc}") from exc
    if data.shape[0] < 10 or data.shape[1] < 4 or not np.all(np.isfinite(data[:, [0, 3]])):
        raise FeffRunError(f"xmu.dat holds no usable spectrum ({data.shape[0]} rows)")
    return data[:, 0], data[:, 3]


def run_feff_input(inp_text: str, workdir: Path, feff_cfg: dict) -> dict:
    """One FEFF calculation in `workdir`; returns energies, mu and stage timings or raises FeffRunError."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "feff.inp").write_text(inp_text)
    if feff_cfg["engine"] == "feff10-rs":
        cmd = [sys.executable, "-m", "xasengine.feff.worker", str(workdir.resolve())]
    else:
        cmd = shlex.split(feff_cfg["executable"])
    start = time.perf_counter()
    _run_process(cmd, workdir, feff_cfg["timeout_s"])
    seconds = time.perf_counter() - start
    energy, mu = read_xmu(workdir / "xmu.dat")
    timings_path = workdir / "stage_timings.json"
    stages = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    return {"energy": energy.tolist(), "mu": mu.tolist(), "feff_seconds": seconds, "stage_seconds": stages}


def run_feff_job(inp_text: str, workdir: Path, feff_cfg: dict) -> dict:
    """FEFF as written and, if FEFF itself crashed, once more with slower SCF mixing (feff.rescue).

    The result is cached under the original input's key with a `rescue` note: the job asked for is that input,
    and the note says how its spectrum was obtained; its feff_seconds count both attempts."""
    start = time.perf_counter()
    try:
        return run_feff_input(inp_text, workdir, feff_cfg)
    except FeffCrashError as first:
        rescue = rescue_input_text(inp_text) if feff_cfg["rescue"] else None
        if rescue is None:
            raise
        try:
            entry = run_feff_input(rescue, workdir, feff_cfg)
        except FeffRunError as second:
            raise FeffRunError(f"{first}; the rescue with slower SCF mixing failed too: {second}") from None
        entry.update(rescue=f"{RESCUE_NOTE}; first attempt: {first}", feff_seconds=time.perf_counter() - start)
        return entry


def run_structure(record, manifest: dict, feff_cfg: dict, workroot: str | Path) -> dict:
    """Every site gets a row: ok (fresh or cached) or failed with the reason; one bad site never stops the rest."""
    params = resolve_preset(feff_cfg["preset"], feff_cfg["overrides"])
    version = engine_version(feff_cfg["engine"], feff_cfg["executable"])
    cache = FeffCache(feff_cfg["cache_dir"], feff_cfg.get("shipped_cache"))
    rows = []
    for site in tqdm(manifest["sites"], desc=f"FEFF {record.id}", unit="site", mininterval=5):
        row = {k: site[k] for k in ("site_index", "element", "multiplicity", "wyckoff")}
        row.update(edge=manifest["edge"], engine_version=version, preset=params["preset"])
        t0 = time.perf_counter()
        try:
            inp = feff_input_text(record.structure, site["site_index"], manifest["edge"], params)
            key = cache_key(inp, version)
            row.update(feff_hash=key, feff_input=inp, prepare_seconds=time.perf_counter() - t0)
            entry = cache.get(key)
            if entry is None and feff_cfg["cached_only"]:
                row.update(status=NOT_COMPUTED, message="not in the FEFF cache and feff.cached_only is set",
                           energy=[], mu=[], feff_seconds=float("nan"), cached=False)
            elif entry is None:
                workdir = Path(workroot) / record.id / f"site{site['site_index']:04d}"
                entry = run_feff_job(inp, workdir, feff_cfg)
                entry["engine_version"] = version
                cache.put(key, entry)
                if not feff_cfg["keep_workdirs"]:
                    shutil.rmtree(workdir, ignore_errors=True)
                row["cached"] = False
            else:
                row["cached"] = True
            if entry is not None:
                row.update(status="ok", message=entry.get("rescue", ""), energy=entry["energy"], mu=entry["mu"],
                           feff_seconds=entry["feff_seconds"], stage_seconds=entry.get("stage_seconds", {}))
        except UnreadableFile:
            raise  # a damaged shipped cache part is the project's problem, not this site's: stop and name it
        except XasEngineError as exc:
            row.update(status="failed", message=str(exc), energy=[], mu=[], feff_seconds=float("nan"))
            row.setdefault("feff_hash", "")
        row["total_seconds"] = time.perf_counter() - t0
        rows.append(row)
    return {
        "structure_id": record.id,
        "structure_hash": record.hash,
        "params": params,
        "engine_version": version,
        "sites": rows,
    }

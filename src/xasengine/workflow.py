"""Glue for Snakemake `script:` files: log to the rule's log file and turn stage errors into one line."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def limit_threads(threads: int) -> None:
    """Hold numerical libraries to the rule's `threads`: torch's default of one thread per core, beside busy FEFF
    jobs, made a small training job 4.7x slower with 2 threads than with 1 (spinning OpenMP threads)."""
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


# Structure records are written by the `structures` checkpoint without being declared outputs of it.
_WRITTEN_BY_CHECKPOINT = {"results/structures/json": "structures"}


def _rebuild_hint(snakemake, exc):
    """How to rebuild a damaged input that another rule produced: --forcerun reruns the job that wrote it and all
    downstream. Neither a plain rerun nor removing it would: Snakemake does not rebuild a missing intermediate
    file while the outputs downstream of it exist."""
    inputs = {Path(p).resolve() for p in snakemake.input}
    if exc.path.resolve() not in inputs or exc.hint:
        return exc
    target = _WRITTEN_BY_CHECKPOINT.get(exc.path.parent.as_posix(), exc.path)
    return exc.with_hint(f"rebuild it with: snakemake --forcerun {target}")


def run_rule(snakemake, func, *args, **kwargs) -> None:
    limit_threads(snakemake.threads)
    log_path = snakemake.log[0] if snakemake.log else None
    stream = open(log_path, "w") if log_path else sys.stderr
    sys.stderr = stream  # tqdm bars and warnings go to the rule's log
    logging.basicConfig(stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    from .errors import XasEngineError
    from .readers import UnreadableFile

    try:
        func(*args, **kwargs)
    except XasEngineError as exc:
        if isinstance(exc, UnreadableFile):
            exc = _rebuild_hint(snakemake, exc)
        print(f"error [{exc.stage}]: {exc}", file=stream)
        stream.flush()
        sys.__stderr__.write(f"error [{exc.stage}]: {exc}\n")
        sys.exit(1)
    except Exception:
        traceback.print_exc(file=stream)
        stream.flush()
        raise
    finally:
        stream.flush()

"""Glue for Snakemake `script:` files: log to the rule's log file and turn stage errors into one line."""

from __future__ import annotations

import logging
import sys
import traceback


def run_rule(snakemake, func, *args, **kwargs) -> None:
    log_path = snakemake.log[0] if snakemake.log else None
    stream = open(log_path, "w") if log_path else sys.stderr
    sys.stderr = stream  # tqdm bars and warnings go to the rule's log
    logging.basicConfig(stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    from .errors import XasEngineError

    try:
        func(*args, **kwargs)
    except XasEngineError as exc:
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

"""The one place the engine opens files it did not just write: any corruption becomes `<path>: unreadable (...)`.

h5py, json, torch and pymatgen each fail on a truncated or foreign file with their own exception and a traceback
that does not name the file; every stage reads through here so the CLI and the DAG can print one line, and so
callers that can heal (a cache entry, a rule's output) know exactly which file to drop."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from .errors import XasEngineError

_MAX_REASON = 200


class UnreadableFile(XasEngineError):
    """A file exists (or should) but cannot be decoded; `path` names it, `hint` says how to get a good one."""

    stage = "read"

    def __init__(self, path: str | Path, reason: str, hint: str = ""):
        self.path, self.reason, self.hint = Path(path), reason, hint
        super().__init__(f"{path}: unreadable ({reason})" + (f"; {hint}" if hint else ""))

    def with_hint(self, hint: str) -> UnreadableFile:
        return UnreadableFile(self.path, self.reason, hint)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return "binary data where text was expected"
    if isinstance(exc, KeyError):
        return f"missing entry {exc}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


@contextmanager
def reading(path: str | Path, hint: str = "", allow_empty: bool = False):
    """Decode `path` inside the block; whatever goes wrong there is reported as this file being unreadable."""
    path = Path(path)
    if not path.exists():
        raise UnreadableFile(path, "no such file", hint)
    if not allow_empty and path.is_file() and path.stat().st_size == 0:
        raise UnreadableFile(path, "empty file", hint)
    try:
        yield path
    except XasEngineError:
        raise
    except Exception as exc:  # every decoder has its own exception types; all mean the same thing here
        raise UnreadableFile(path, _reason(exc), hint) from exc


def read_text(path: str | Path, hint: str = "", allow_empty: bool = False) -> str:
    with reading(path, hint, allow_empty):
        return Path(path).read_text(errors="strict")


def read_json(path: str | Path, hint: str = ""):
    with reading(path, hint):
        return json.loads(Path(path).read_text(errors="strict"))


def decode_strings(values):
    """HDF5 variable-length strings come back as bytes or str depending on h5py's version and the writer;
    callers want str either way."""
    import numpy as np

    return np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)


def read_hdf5_datasets(fh) -> dict:
    """Every top-level dataset of an open file, string datasets decoded."""
    return {k: decode_strings(fh[k][()]).astype(str) if fh[k].dtype.kind == "O" else fh[k][()] for k in fh}


@contextmanager
def open_hdf5(path: str | Path, hint: str = ""):
    """An HDF5 file open for reading; errors while reading its datasets inside the block also name the file."""
    import h5py

    with reading(path, hint), h5py.File(path, "r") as fh:
        yield fh


def load_torch(path: str | Path, **kwargs):
    import torch

    with reading(path):
        return torch.load(path, **kwargs)

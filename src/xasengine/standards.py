"""Measured standards: compounds of known oxidation state and coordination, matched to scan files by name
(resources/measured/standards.tsv). The experimental report scores against them and the edge map is fitted on them."""

from __future__ import annotations

import csv
from pathlib import Path

from .errors import StandardsError


def read_standards(path: str | Path) -> list[dict]:
    """Nominal values per compound (resources/measured/standards.tsv): file_prefix, element, OS, CN, note."""
    path = Path(path)
    if not path.is_file():
        raise StandardsError(f"no standards table at {path}")
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    try:
        rows = [{**r, "OS": float(r["OS"]), "CN": float(r["CN"])} for r in csv.DictReader(lines, delimiter="\t")]
    except (KeyError, TypeError, ValueError) as exc:
        raise StandardsError(f"{path}: unreadable standards table ({exc}); need columns compound, file_prefix, "
                              "element, OS, CN, note") from exc
    return rows


def compound_of(source: str, standards: list[dict]) -> dict | None:
    """The standard whose file_prefix starts the scan's file name (the longest such prefix)."""
    name = Path(source.split(":")[0]).name
    matches = [s for s in standards if name.startswith(s["file_prefix"] + "_") or name.startswith(s["file_prefix"] + ".")]
    return max(matches, key=lambda s: len(s["file_prefix"]), default=None)

"""Move shipped FEFF cache entries to the keys of today's canonical feff.inp text.

The cache key is the hash of the input text, so a change to how that text is written (feff.inputs.canonical_input)
would orphan every shipped spectrum. A run's per-structure FEFF JSON (results/feff/*.json) holds, for each site,
the key its spectrum was found under and the text it was computed from; this renames each shipped entry from the
old key to the key of the canonical text, in place, leaving the spectra untouched.

    python -m xasengine.feff.rekey resources/feff_cache results/feff/*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py

from .cache import cache_key
from .inputs import canonical_input


def key_moves(feff_jsons: list[str | Path]) -> dict[str, str]:
    """old key -> canonical key for every computed site of the given runs."""
    moves = {}
    for path in feff_jsons:
        for site in json.loads(Path(path).read_text())["sites"]:
            if site.get("feff_input") and site.get("feff_hash"):
                new = cache_key(canonical_input(site["feff_input"]), site["engine_version"])
                if new != site["feff_hash"]:
                    moves[site["feff_hash"]] = new
    return moves


def rekey_parts(parts: list[Path], moves: dict[str, str]) -> tuple[int, int]:
    """(entries moved, entries left as they were: duplicates or inputs no run of this list produced)."""
    moved = left = 0
    for part in parts:
        with h5py.File(part, "r+") as fh:
            entries = fh["entries"]
            for old in list(entries):
                new = moves.get(old)
                if new is None or new in entries:
                    left += 1
                    continue
                entries.move(old, new)
                moved += 1
    return moved, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache_folder")
    parser.add_argument("feff_jsons", nargs="+")
    args = parser.parse_args()
    moves = key_moves(args.feff_jsons)
    moved, left = rekey_parts(sorted(Path(args.cache_folder).glob("*.h5")), moves)
    print(f"{len(moves)} keys to move; {moved} shipped entries moved, {left} left as they were")


if __name__ == "__main__":
    main()

"""The reference subset: the library cells whose FEFF spectra the project ships (issue 3).

The whole library has ~5,100 nonequivalent sites; FEFF on all of them costs more than the dataset needs. The
reference subset keeps every prototype and every delithiation series (the LixCoO2 study must be complete), then
adds substituted cells greedily, most missing transition-metal sites per site computed first, until each of Co,
Mn and Ni has at least ``TM_MINIMUM`` sites. The selection is deterministic; its ids are stored in
resources/structures/reference_ids.txt so that the default run does not enumerate sites to know its structures.

    python -m xasengine.structures.reference [--out resources/structures/reference_ids.txt]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Sequence

from ..atomic import write_text
from ..errors import StructureError

REFERENCE_IDS = Path(__file__).resolve().parents[3] / "resources" / "structures" / "reference_ids.txt"
TM_MINIMUM = 500
ALWAYS_FAMILIES = ("prototype", "delithiation-")


def select_reference(site_counts: dict[str, Counter], families: dict[str, str],
                     minimum: int = TM_MINIMUM) -> list[str]:
    """Ids in library order: whole families first, then the cheapest cells that close the Co/Mn/Ni gaps."""
    chosen = [i for i in site_counts if families[i].startswith(ALWAYS_FAMILIES)]
    have = Counter()
    for i in chosen:
        have.update(site_counts[i])
    rest = [i for i in site_counts if i not in chosen]

    def gain(i: str) -> tuple[float, str]:
        useful = sum(min(site_counts[i][el], max(0, minimum - have[el])) for el in ("Co", "Mn", "Ni"))
        return useful / max(1, sum(site_counts[i].values())), i

    while any(have[el] < minimum for el in ("Co", "Mn", "Ni")) and rest:
        best = max(rest, key=gain)
        if gain(best)[0] == 0:
            break
        chosen.append(best)
        rest.remove(best)
        have.update(site_counts[best])
    order = {i: n for n, i in enumerate(site_counts)}
    return sorted(chosen, key=order.get)


def read_reference_ids(path: str | Path = REFERENCE_IDS) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise StructureError(f"reference id list missing: {path} (rebuild: python -m xasengine.structures.reference)")
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def main(argv: Sequence[str] | None = None) -> int:
    from .library import ABSORBERS, build_library, count_nonequivalent_sites

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REFERENCE_IDS))
    args = parser.parse_args(argv)
    entries = build_library()
    counts = {e.id: count_nonequivalent_sites([e]) for e in entries}
    ids = select_reference(counts, {e.id: e.family for e in entries})
    total = sum((counts[i] for i in ids), Counter())
    summary = ", ".join(f"{el} {total[el]}" for el in ABSORBERS)
    header = [f"# Reference subset of the structure library: {len(ids)} cells, {sum(total.values())} nonequivalent "
              f"K-edge sites ({summary}).", "# Written by `python -m xasengine.structures.reference`; do not edit."]
    write_text(args.out, "\n".join(header + ids) + "\n")
    print(f"{len(ids)} structures, {sum(total.values())} sites: {summary} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""feff.inp text for one absorbing site, from pymatgen's MPXANESSet with the preset's cards."""

from __future__ import annotations

import math

from pymatgen.core import Structure
from pymatgen.io.feff.sets import MPXANESSet

from ..errors import FeffRunError

SCF_CONTROL = "0 30 .2 1"  # ca = 0.2: FEFF's default charge mixing, 30 iterations at most
RESCUE_SCF_CONTROL = "0 60 .05 1"  # ca = 0.05, 60 iterations
RESCUE_NOTE = "rescued with slower SCF charge mixing (SCF ca 0.05, 60 iterations)"


def feff_input_text(structure: Structure, site_index: int, edge: str, params: dict) -> str:
    """Only TAGS, POTENTIALS and ATOMS: no header with dates, so equal physics gives equal text (the cache key)."""
    tags = {
        "S02": params["s02"],
        "COREHOLE": params["corehole"],
        "EXCHANGE": params["exchange"],
        "FMS": f"{params['fms']} 0",
        "XANES": f"{params['xanes_kmax']} .04 .1",
        "_del": ["LDOS"] + (["SCF"] if params["scf"] is None else []),
    }
    if params["scf"] is not None:
        tags["SCF"] = f"{params['scf']} {SCF_CONTROL}"
    try:
        feff_set = MPXANESSet(site_index, structure, edge=edge, radius=params["radius"], user_tag_settings=tags)
        tags_text, potentials, atoms = str(feff_set.tags), str(feff_set.potential), str(feff_set.atoms)
    except Exception as exc:  # pymatgen raises ValueError/IndexError/... for unusable clusters
        raise FeffRunError(f"cannot build FEFF input for site {site_index}: {type(exc).__name__}: {exc}") from exc
    # EGRID extends the grid below the Fermi level (the default XANES grid starts only ~5 eV below it);
    # it must stand before ATOMS, whose block pymatgen closes with END.
    egrid = f"EGRID\ne_grid {params['egrid_start']} 0 0.5\nk_grid 0.05 {params['xanes_kmax']} 0.05\n"
    return canonical_input(f"{tags_text}\n{egrid}\n{potentials}\n{atoms}\n")


def canonical_input(inp_text: str) -> str:
    """feff.inp with its ATOMS card on a 0.1 mÅ grid and its rows in a fixed order.

    The text is the FEFF cache key, and pymatgen's raw card carries floating-point noise that depends on the CPU's
    BLAS kernels (a coordinate printed as 1.571e-10 on one machine and -1.571e-10 on another, equal-distance
    neighbours in another order): without this, a cache made on one machine missed on the next. The grid's
    rounding boundaries are offset from round decimals, where crystal coordinates (a/2, a/4) tend to fall."""
    head, _, rest = inp_text.partition("ATOMS\n")
    card, _, tail = rest.partition("END\n")
    rows = []
    for line in card.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[0].startswith("*"):
            continue  # the column headers
        x, y, z, dist = (_on_grid(v) for v in (*fields[:3], fields[5]))
        rows.append((dist, int(fields[3]), x, y, z, fields[4]))
    rows.sort()
    body = "".join(f"{x / 1e4:11.4f} {y / 1e4:11.4f} {z / 1e4:11.4f} {ipot:3d}  {tag:<3} {dist / 1e4:9.4f}  {n}\n"
                   for n, (dist, ipot, x, y, z, tag) in enumerate(rows))
    header = "*          x           y           z ipot tag  distance  n\n"
    return f"{head}ATOMS\n{header}{body}END\n{tail}"


def _on_grid(value: str) -> int:
    return math.floor(float(value) * 1e4 + 0.6234567)


def rescue_input_text(inp_text: str) -> str | None:
    """The same job with slower SCF charge mixing, or None when there is nothing to slow down.

    With FEFF's default mixing (0.2) the SCF of some mixed-metal rock-salt cells overshoots and the pot module
    stops with 'Cannot determine Norman radius'; mixing 0.05 converges them to the same kind of result."""
    lines = inp_text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        fields = line.split()
        if fields and fields[0] == "SCF" and len(fields) >= 2:
            rescued = f"SCF {fields[1]} {RESCUE_SCF_CONTROL}\n"
            if line == rescued:
                return None
            return "".join(lines[:i] + [rescued] + lines[i + 1 :])
    return None

"""feff.inp text for one absorbing site, from pymatgen's MPXANESSet with the preset's cards."""

from __future__ import annotations

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
    return f"{tags_text}\n{egrid}\n{potentials}\n{atoms}\n"


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

"""Does FEFF's absolute edge position carry the oxidation state the way a beamline's does? (issue 4)

The models read E0-aligned spectra, so the chemical shift of the edge is not an input. This script tells
whether it could be: for each transition metal it prints FEFF's E0 (maximum of dmu/dE, the same rule as the
shards) per oxidation state of the shipped sites, relative to that element's metal computed with the same
preset, beside the shift measured on the public scans in ../shared/data/experimental-xanes (sample E0 minus the
E0 of the reference foil recorded in the same scan, or minus the tabulated K-edge energy where the scan has no
reference channel). If FEFF's shifts per oxidation state matched the measured ones, an edge-shift input could
transfer to beamline data; if not, it would teach the model a shift that measured spectra do not show.

    PYTHONPATH=src python benchmarks/edge_shift.py --shards 'results/shards/*.h5'
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

from xasengine.shards import read_shards
from xasengine.spectra import find_e0, read_measured, read_reference

EXPERIMENTAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "experimental-xanes"
METAL_IDS = {"Co": "lib-co-hcp", "Ni": "lib-ni-fcc"}  # the library has no Mn metal
TABULATED_K_EDGE = {"Mn": 6539.0, "Co": 7709.0, "Ni": 8333.0}  # eV, Bearden & Burr (foil calibration values)
KNOWN_OS = {"MnO": 2, "Mn2O3": 3, "Mn3O4": 2.67, "MnO2": 4, "NiOH2": 2, "Ni2O3": 3, "Ni_metal": 0, "co_metal": 0}
SMOOTH_EV = 1.0  # as `xasengine predict` does for measured scans


def simulated_shifts(shard_glob: str) -> None:
    table = read_shards(sorted(glob.glob(shard_glob)))
    ok = np.asarray(table["status"]).astype(str) == "ok"
    element = np.asarray(table["element"]).astype(str)
    sid = np.asarray(table["structure_id"]).astype(str)
    e0 = np.asarray(table["e0"], dtype=float)
    oxidation = np.asarray(table["descriptors"]["OS"], dtype=float)
    coordination = np.asarray(table["descriptors"]["CN"], dtype=float)
    print("| element | OS | CN | sites | FEFF E0 median, eV | p10–p90 | vs OS-2 median | vs metal |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for name in ("Mn", "Co", "Ni"):
        rows = ok & (element == name) & np.isfinite(oxidation)
        metal = ok & (element == name) & (sid == METAL_IDS.get(name, ""))
        metal_e0 = float(np.median(e0[metal])) if metal.any() else np.nan
        divalent = rows & (oxidation == 2)
        reference = float(np.median(e0[divalent])) if divalent.any() else np.nan
        for state in sorted(set(oxidation[rows])):
            for cn in sorted(set(coordination[rows & (oxidation == state)])):
                chosen = rows & (oxidation == state) & (coordination == cn)
                if chosen.sum() < 2 and state != 0:
                    continue
                values = e0[chosen]
                median = float(np.median(values))
                print(f"| {name} | {state:+.0f} | {cn:.0f} | {chosen.sum()} | {median:.2f} | "
                      f"{np.percentile(values, 10):.2f}–{np.percentile(values, 90):.2f} | {median - reference:+.2f} | "
                      f"{median - metal_e0:+.2f} |")


def measured_shifts() -> None:
    print("\n| scan | OS | sample E0, eV | reference E0, eV | shift vs reference |")
    print("|---|---:|---:|---:|---:|")
    for path in sorted(EXPERIMENTAL.glob("*.xdi")):
        compound = path.stem.rsplit("_rt", 1)[0]
        energy, mu, header = read_measured(path)
        element = header.get("Element.symbol", "?")
        sample_e0 = find_e0(energy, mu, SMOOTH_EV)
        reference = read_reference(path)
        if reference is not None:
            reference_e0, source = find_e0(*reference, SMOOTH_EV), "foil"
        else:
            reference_e0, source = TABULATED_K_EDGE[element], "tabulated"
        print(f"| {path.stem} | {KNOWN_OS.get(compound, '?')} | {sample_e0:.2f} | {reference_e0:.2f} ({source}) | "
              f"{sample_e0 - reference_e0:+.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", default="results/shards/*.h5")
    args = parser.parse_args()
    simulated_shifts(args.shards)
    measured_shifts()


if __name__ == "__main__":
    main()

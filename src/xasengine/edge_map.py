"""Rule edge_map: where FEFF puts each element's edge per oxidation state (training split), and the linear map
that carries a measured edge onto FEFF's scale, fitted on the measured standards (models.edge_fusion explains
why). Written beside the checkpoints, so `xasengine predict --model results/models` fuses with it; the
standards' own edges are kept so the experimental report can refit the map leave-one-compound-out."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .atomic import write_json
from .models.versions import EDGE_MAP_VERSION
from .models.edge_fusion import edge_stats, fit_edge_map, simulated_edge
from .spectra import normalize
from .standards import compound_of, read_standards


def simulated_edge_stats_of(table: dict, spectra_cfg: dict, split: str) -> tuple[dict, list[dict]]:
    """Per element and OS: the half-step edges of one split's FEFF spectra above FEFF's metal, and each site's
    {row, element, OS, edge}."""
    os_values = np.asarray(table["descriptors"]["OS"], float)
    rows = np.flatnonzero((np.asarray(table["split"]).astype(str) == split) & np.isfinite(os_values))
    edges = np.full(len(rows), np.nan)
    for j, i in enumerate(rows):
        n, element = int(table["raw_length"][i]), str(table["element"][i])
        energy, mu = table["raw_energy"][i, :n], table["raw_mu"][i, :n]
        norm, _ = normalize(energy, mu, table["e0"][i], spectra_cfg["pre_edge"], spectra_cfg["post_edge"])
        edges[j] = simulated_edge(energy, norm, element)
    elements = np.asarray(table["element"]).astype(str)[rows]
    sites = [{"row": int(i), "element": el, "OS": float(os_values[i]), "edge": float(e)}
             for i, el, e in zip(rows, elements, edges)]
    return edge_stats(edges, elements, os_values[rows]), sites


def simulated_edge_stats(shards: list[str], spectra_cfg: dict) -> dict:
    """Per element and OS: the half-step edges of the training split's FEFF spectra above FEFF's metal."""
    from .shards import read_shards

    return simulated_edge_stats_of(read_shards(shards, only_ok=True), spectra_cfg, "train")[0]


def standard_edges(scans: list[str], standards_path: str, spectra_cfg: dict) -> tuple[list[dict], list[dict]]:
    """The half-step edge and the E0 shift (both eV above the tabulated foil edge) of every scan of a known
    compound, read and calibrated as `xasengine predict` does, and the failed rows of scans that could not be
    read."""
    from .predict import gathered_items

    standards = read_standards(standards_path)
    args = SimpleNamespace(inputs=list(scans), element=None, edge=None, mode="auto", athena_group=None, e0_shift=None)
    items, failed = gathered_items(args, None, spectra_cfg)
    out = []
    for it in items:
        standard = compound_of(it["source"], standards)
        if standard is None or it["processing"]["calibration"] == "none":
            continue
        out.append({"source": it["source"], "compound": standard["compound"], "element": it["element"],
                    "OS": standard["OS"], "edge": it["processing"]["edge_above_foil_eV"],
                    "e0_shift": it["processing"]["e0_minus_tabulated_edge_eV"]})
    return out, failed


def standards_without(doc: dict, compound: str | None) -> list[dict]:
    """Every standard but `compound`'s scans (leave-one-compound-out scoring; None keeps them all)."""
    return [s for s in doc["standards"] if s["compound"] != compound]


def refit_without(doc: dict, compound: str) -> dict | None:
    """The map fitted on every standard but `compound`."""
    return fit_edge_map(standards_without(doc, compound), doc["stats"])


def write_edge_map(scans: list[str], standards_path: str | None, shards: list[str], spectra_cfg: dict,
                   out: str) -> dict:
    stats = simulated_edge_stats(shards, spectra_cfg)
    standards, failed = standard_edges(scans, standards_path, spectra_cfg) if scans and standards_path else ([], [])
    doc = {"stats": stats, "map": fit_edge_map(standards, stats), "standards": standards,
           "unreadable_scans": [f["reason"] for f in failed],
           "method": "edge_FEFF = offsets[element] + slope * edge_measured (half-step edges, eV above FEFF's metal / "
                     "the tabulated foil edge), least squares over the oxidised standards' scans",
           "version": EDGE_MAP_VERSION}
    write_json(out, doc)
    return doc

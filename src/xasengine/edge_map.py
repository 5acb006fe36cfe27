"""Rule edge_map: where FEFF puts each element's edge per oxidation state (training split), and the linear map
that carries a measured edge onto FEFF's scale, fitted on the measured standards (models.edge_fusion explains
why). Written beside the checkpoints, so `xasengine predict --model results/models` fuses with it; the
standards' own edges are kept so the experimental report can refit the map leave-one-compound-out."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .atomic import write_json
from .models.edge_fusion import edge_stats, fit_edge_map, simulated_edge
from .spectra import normalize
from .standards import compound_of, read_standards


def simulated_edge_stats(shards: list[str], spectra_cfg: dict) -> dict:
    """Per element and OS: the half-step edges of the training split's FEFF spectra above FEFF's metal."""
    from .shards import read_shards

    table = read_shards(shards, only_ok=True)
    os_values = np.asarray(table["descriptors"]["OS"], float)
    rows = np.flatnonzero((np.asarray(table["split"]).astype(str) == "train") & np.isfinite(os_values))
    edges = np.full(len(rows), np.nan)
    for j, i in enumerate(rows):
        n, element = int(table["raw_length"][i]), str(table["element"][i])
        energy, mu = table["raw_energy"][i, :n], table["raw_mu"][i, :n]
        norm, _ = normalize(energy, mu, table["e0"][i], spectra_cfg["pre_edge"], spectra_cfg["post_edge"])
        edges[j] = simulated_edge(energy, norm, element)
    return edge_stats(edges, np.asarray(table["element"])[rows], os_values[rows])


def standard_edges(scans: list[str], standards_path: str, spectra_cfg: dict) -> tuple[list[dict], list[dict]]:
    """The half-step edge of every scan of a known compound, read and calibrated as `xasengine predict` does,
    and the failed rows of scans that could not be read."""
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
                    "OS": standard["OS"], "edge": it["processing"]["edge_above_foil_eV"]})
    return out, failed


def refit_without(doc: dict, compound: str) -> dict | None:
    """The map fitted on every standard but `compound` (leave-one-compound-out scoring)."""
    return fit_edge_map([s for s in doc["standards"] if s["compound"] != compound], doc["stats"])


def write_edge_map(scans: list[str], standards_path: str | None, shards: list[str], spectra_cfg: dict,
                   out: str) -> dict:
    stats = simulated_edge_stats(shards, spectra_cfg)
    standards, failed = standard_edges(scans, standards_path, spectra_cfg) if scans and standards_path else ([], [])
    doc = {"stats": stats, "map": fit_edge_map(standards, stats), "standards": standards,
           "unreadable_scans": [f["reason"] for f in failed],
           "method": "edge_FEFF = offsets[element] + slope * edge_measured (half-step edges, eV above FEFF's metal / "
                     "the tabulated foil edge), least squares over the oxidised standards' scans"}
    write_json(out, doc)
    return doc

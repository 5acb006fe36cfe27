"""Spectrum consistency of generated shells: FEFF on the generated shell and on the true shell cut to the same K atoms,
each compared with the spectrum the shell was generated from (cosine on the common grid).

A generator whose shells do not give back their own spectrum has not solved the inverse problem; the true shell cut
to K atoms is the ceiling, since a K-atom cluster cannot reproduce the full crystal's spectrum either. Runs go
through the engine's FEFF runner and content-addressed cache, so a rerun with the same shells costs nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from pymatgen.core import Molecule
from tqdm import tqdm

from ..atomic import write_json
from ..environments import species_symbols
from ..errors import XasEngineError
from ..feff.cache import FeffCache, cache_key
from ..feff.inputs import feff_input_text
from ..feff.presets import resolve_preset
from ..feff.runner import engine_version, run_feff_job
from ..shards import read_shards
from ..spectra import edge_grid, process
from .diffusion import read_samples


def cluster(absorber: str, species, offsets) -> Molecule:
    ok = species > 0
    return Molecule([absorber] + species_symbols(species[ok]), np.vstack([np.zeros(3), offsets[ok]]))


def cosine(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _simulate(mol: Molecule, params, version, cache: FeffCache, feff_cfg, workdir: Path, grid, spectra_cfg):
    inp = feff_input_text(mol, 0, "K", params)
    key = cache_key(inp, version)
    entry = cache.get(key)
    if entry is None:
        entry = run_feff_job(inp, workdir, feff_cfg)
        entry["engine_version"] = version
        cache.put(key, entry)
        shutil.rmtree(workdir, ignore_errors=True)
    return process(entry["energy"], entry["mu"], grid, spectra_cfg)["spectrum"], key


def spectrum_consistency(samples_h5: str, shards: list[str], n_sites: int, feff_cfg: dict, spectra_cfg: dict,
                         workroot: str, out_json: str) -> dict:
    samples = read_samples(samples_h5)
    table = read_shards(shards, only_ok=True)
    lookup = {(s, int(i)): r for r, (s, i) in enumerate(zip(table["structure_id"], table["site_index"]))}
    picks = np.unique(np.linspace(0, len(samples["element"]) - 1, n_sites).round().astype(int)) if n_sites else []
    params = resolve_preset(feff_cfg["preset"], feff_cfg["overrides"])
    version = engine_version(feff_cfg["engine"], feff_cfg["executable"])
    cache = FeffCache(feff_cfg["cache_dir"], feff_cfg.get("shipped_cache"))
    rows = []
    for i in tqdm(picks, desc="consistency FEFF", unit="site"):
        sid, idx, element = str(samples["structure_id"][i]), int(samples["site_index"][i]), str(samples["element"][i])
        grid = edge_grid(spectra_cfg, element, "K")
        target = np.asarray(table["spectrum"][lookup[(sid, idx)]], float)
        row = {"structure_id": sid, "site_index": idx, "element": element}
        for name, species, offsets in (("true_cut", samples["true_species"][i], samples["true_offsets"][i]),
                                       ("generated", samples["species"][i, 0], samples["offsets"][i, 0])):
            try:
                spectrum, key = _simulate(cluster(element, species, offsets), params, version, cache, feff_cfg,
                                          Path(workroot) / f"{sid}-{idx}-{name}", grid, spectra_cfg)
                row[f"cosine_{name}"] = cosine(spectrum, target)
                # normalised mu is positive everywhere, so cosines crowd near 1: the Pearson r says more
                row[f"pearson_{name}"] = float(np.corrcoef(spectrum, target)[0, 1])
                row[f"feff_hash_{name}"] = key
            except XasEngineError as exc:  # a failed FEFF run is recorded, not fatal
                row[f"cosine_{name}"] = None
                row[f"error_{name}"] = str(exc)
        rows.append(row)
    gen = [r["cosine_generated"] for r in rows if r["cosine_generated"] is not None]
    cut = [r["cosine_true_cut"] for r in rows if r["cosine_true_cut"] is not None]
    failed = sum(r["cosine_generated"] is None or r["cosine_true_cut"] is None for r in rows)
    pearson_gen = [r["pearson_generated"] for r in rows if r.get("pearson_generated") is not None]
    pearson_cut = [r["pearson_true_cut"] for r in rows if r.get("pearson_true_cut") is not None]
    summary = (f"{len(rows)} test sites re-simulated with FEFF ({params['preset']} preset) from K-atom clusters: "
               f"cosine to the conditioning spectrum, generated shell {np.mean(gen):.3f} (min {np.min(gen):.3f}), "
               f"true shell cut to the same atoms {np.mean(cut):.3f} (min {np.min(cut):.3f}); Pearson r generated "
               f"{np.mean(pearson_gen):.3f}, true cut {np.mean(pearson_cut):.3f}; {failed} with a failed FEFF run." if gen and cut else f"{len(rows)} sites; no comparable FEFF results ({failed} failed).")
    record = {"sites": rows, "summary": summary, "preset": params["preset"],
              "mean_cosine_generated": float(np.mean(gen)) if gen else None,
              "mean_cosine_true_cut": float(np.mean(cut)) if cut else None,
              "mean_pearson_generated": float(np.mean(pearson_gen)) if pearson_gen else None,
              "mean_pearson_true_cut": float(np.mean(pearson_cut)) if pearson_cut else None}
    write_json(out_json, record)
    return record

"""The function behind each Snakemake rule: read the rule's input files, call the stage, write its outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import write_json
from .readers import read_json
from .structures.io import load_record


def absorbing_sites_stage(structure_json: str, outputs, sites_cfg: dict, feff_cfg: dict, workroot: str) -> None:
    """Sites, descriptors and FEFF of one structure in one process: Python and pymatgen start once per structure
    rather than three times. `outputs` has `sites`, `descriptors` and `feff` paths."""
    from .descriptors import descriptor_record
    from .errors import SiteError
    from .feff.runner import run_structure
    from .sites import site_manifest

    record = load_record(structure_json)
    try:
        manifest = site_manifest(record, sites_cfg["absorbers"], sites_cfg["edge"], sites_cfg["symprec"])
        manifest["status"], manifest["message"] = "ok", ""
    except SiteError as exc:
        manifest = {"structure_id": record.id, "structure_hash": record.hash, "edge": sites_cfg["edge"],
                    "sites": [], "status": "failed", "message": str(exc)}
    write_json(outputs.sites, manifest)
    descriptors = descriptor_record(record, manifest, sites_cfg["symprec"])
    write_json(outputs.descriptors, descriptors)
    if descriptors["status"] == "failed":  # e.g. no oxidation states: unlabelled sites are not worth FEFF hours
        manifest = {**manifest, "sites": []}
    write_json(outputs.feff, run_structure(record, manifest, feff_cfg, workroot))


def _index_row(structure_json: Path) -> dict:
    """What the shard needs from a structure record, read from its JSON (not the checkpoint's index, whose
    mtime changes whenever the structure set is re-gathered)."""
    doc = read_json(structure_json)
    return {k: doc[k] for k in ("hash", "formula", "family", "source")} | {"structure_id": doc["id"]}


def shard_stage(structure_ids: list[str], folders: dict, out_path: str, config: dict) -> None:
    from .shards import site_rows, write_shard

    index = {sid: _index_row(Path(folders["structures"]) / f"{sid}.json") for sid in structure_ids}
    rows, structures, engines = [], [], []
    for sid in sorted(structure_ids):
        manifest, desc, feff = (read_json(Path(folders[stage]) / f"{sid}.json") for stage in ("sites", "descriptors", "feff"))
        rows.extend(site_rows(index[sid], manifest, desc, feff, config))
        problems = [f"{stage}: {doc['message']}" for stage, doc in (("sites", manifest), ("descriptors", desc))
                    if doc.get("status") == "failed"]
        structures.append(index[sid] | {"status": "failed" if problems else "ok", "message": "; ".join(problems)})
        engines.append(feff["engine_version"])
    write_shard(out_path, rows, structures, config, engines)


def _training_table(shards: list[str]) -> tuple[dict, str]:
    """Usable sites and the hash of the whole dataset, from one read of the shards."""
    from .shards import read_shards, select_rows, table_hash

    table = read_shards(shards)
    return select_rows(table, table["status"] == "ok"), table_hash(table)


def train_stage(shards: list[str], group: str, out_checkpoint: str, out_summary: str, train_cfg: dict,
                targets: list[str] | None = None) -> None:
    from .train import train_spt

    table, data_hash = _training_table(shards)
    cfg = dict(train_cfg["spt"], dataset_hash=data_hash)
    summary = train_spt(table, group, out_checkpoint, cfg, targets=targets, device=train_cfg["device"])
    write_json(out_summary, summary)


def evaluate_stage(shards: list[str], checkpoint: str, out_json: str) -> None:
    from .evaluate import evaluate_model
    from .shards import read_shards
    from .train import load_checkpoint

    from .models.family import infer_seconds_per_1000, load_model, scored_rows

    table = read_shards(shards, only_ok=True)
    model, meta = load_checkpoint(checkpoint)
    record = evaluate_model(model, meta, table, split="test")
    fitted = load_model(checkpoint)  # the family view of the same checkpoint, timed like every baseline
    rows = scored_rows(table, fitted, "test")
    timing = {"train_seconds": fitted.train_seconds,
              "infer_seconds_per_1000": infer_seconds_per_1000(fitted, np.asarray(table["spectrum"])[rows],
                                                               np.asarray(table["element"])[rows])}
    write_json(out_json, record | timing | {"model": "SPT", "checkpoint": checkpoint})


def train_baseline_stage(shards: list[str], family: str, group: str, out_model: str, out_json: str, cfg: dict,
                         n_jobs: int = 1, seed: int = 0) -> None:
    """Fit one model family on a site group, save it, and write its test metrics with timing from this run."""
    from .models.family import fit_family, metrics_record

    table, data_hash = _training_table(shards)
    model = fit_family(family, table, group, cfg, seed=seed, n_jobs=n_jobs)
    if out_model:
        model.save(out_model)
    write_json(out_json, metrics_record(model, table, "test", data_hash))


def benchmark_seeds_stage(metrics_paths: list[str], benchmark_paths: list[str], out_json: str, out_md: str) -> None:
    from .reports.benchmark_seeds import write_seed_summary

    write_seed_summary(metrics_paths, benchmark_paths, out_json, out_md)


def benchmark_stage(metrics_paths: list[str], seeds_paths: list[str], outputs: dict) -> None:
    from .reports.benchmark import write_benchmark

    write_benchmark(metrics_paths, seeds_paths[0] if seeds_paths else None, outputs)


def robustness_stage(shards: list[str], model_paths: list[str], cfg: dict, outputs: dict) -> None:
    from .reports.robustness import write_robustness

    write_robustness(shards, model_paths, cfg, outputs)


def expert_vs_joint_stage(joint_paths: list[str], expert_paths: list[str], outputs: dict) -> None:
    from .reports.expert_vs_joint import write_expert_vs_joint

    write_expert_vs_joint(joint_paths, expert_paths, outputs)


def umap_stage(shards: list[str], checkpoint: str, cfg: dict, outputs: dict) -> None:
    from .reports.umap_embed import write_umap

    write_umap(shards, checkpoint, cfg, outputs)


def environments_stage(shard: str, structure_jsons: list[str], out_path: str, cfg: dict) -> None:
    """The K-neighbour shells of one shard's sites, cut from the structure records FEFF used."""
    from .environments import environment_rows, write_environments
    from .shards import read_shards

    table = read_shards([shard])
    records = {}
    for path in structure_jsons:
        record = load_record(path)
        records[record.id] = record
    rows = environment_rows(records, table, cfg["elements"], cfg["k_neighbors"], cfg["radius"])
    write_environments(out_path, rows, cfg["k_neighbors"], cfg["radius"])


def train_diffusion_stage(shards: list[str], env_paths: list[str], out_checkpoint: str, out_summary: str,
                          cfg: dict) -> None:
    from .environments import join_environments, read_environments, split_arrays
    from .models.diffusion import fit_diffusion, save_diffusion
    from .shards import read_shards, table_hash

    table = read_shards(shards, only_ok=True)
    sites = join_environments(table, read_environments(env_paths), cfg["elements"])
    # the shells were cut at `radius`, so no sampled neighbour should land beyond it (a sampling setting the
    # checkpoint carries for `xasengine generate`; the evaluation reads it from the config)
    model_cfg = {"clip_radius": cfg["radius"]} | cfg["model"]
    model, summary = fit_diffusion(*split_arrays(sites, "train"), cfg=model_cfg, val=split_arrays(sites, "val"))
    summary.update(dataset_hash=table_hash(table), elements=cfg["elements"],
                   k_neighbors=cfg["k_neighbors"], radius=cfg["radius"])
    save_diffusion(out_checkpoint, model, summary)
    write_json(out_summary, summary)


def evaluate_diffusion_stage(shards: list[str], env_paths: list[str], checkpoint: str, spt_checkpoint: str | None,
                             cfg: dict, out_json: str, out_samples: str) -> None:
    from .reports.diffusion import evaluate_diffusion

    evaluate_diffusion(shards, env_paths, checkpoint, spt_checkpoint, cfg, out_json, out_samples)


def diffusion_report_stage(metrics_json: str, samples_h5: str, consistency_json: str | None, outputs) -> None:
    from .reports.diffusion import write_report

    write_report(metrics_json, samples_h5, consistency_json, outputs)


def diffusion_consistency_stage(samples_h5: str, shards: list[str], n_sites: int, feff_cfg: dict, spectra_cfg: dict,
                                workroot: str, out_json: str) -> None:
    from .reports.diffusion_consistency import spectrum_consistency

    spectrum_consistency(samples_h5, shards, n_sites, feff_cfg, spectra_cfg, workroot, out_json)


def delithiation_stage(shards: list[str], spt_checkpoint: str, baseline_paths: list[str], benchmark_json: str,
                       structure_paths: list[str], family: str, outputs: dict) -> None:
    from .reports.delithiation import write_delithiation

    write_delithiation(shards, spt_checkpoint, baseline_paths, benchmark_json, structure_paths, outputs, family)


def edge_map_stage(scans: list[str], standards: str, shards: list[str], spectra_cfg: dict, out: str) -> None:
    from .edge_map import write_edge_map

    write_edge_map(scans, standards, shards, spectra_cfg, out)


def experimental_stage(scans: list[str], standards: str, spt_checkpoint: str, edge_map: str, shards: list[str],
                       spectra_cfg: dict, outputs: dict, reading: str = "ladder") -> None:
    from .reports.experimental import write_experimental

    write_experimental(scans, standards, spt_checkpoint, edge_map, shards, spectra_cfg, outputs, reading)


def finetune_stage(shards: list[str], checkpoint: str, out_checkpoint: str, out_summary: str, amo: dict) -> None:
    from .finetune import finetune_spt
    from .structures.io import AMORPHOUS_SPLITS

    table, _ = _training_table(shards)
    summary = finetune_spt(checkpoint, table, out_checkpoint, AMORPHOUS_SPLITS[0], amo["finetune_epochs"],
                           amo["finetune_lr"])
    write_json(out_summary, summary)


def amorphous_stage(shards: list[str], crystal: list[str], finetuned: list[str], baseline_paths: list[str],
                    benchmark_json: str, outputs: dict) -> None:
    from .reports.amorphous import write_amorphous

    write_amorphous(shards, crystal, finetuned, baseline_paths, benchmark_json, outputs)

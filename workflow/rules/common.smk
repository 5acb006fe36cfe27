# Helpers shared by the rules; nothing here runs at parse time beyond reading the checkpoint's index.
import csv
import hashlib
import os

from xasengine.models.versions import (
    DIFFUSION_MODEL_VERSION,
    DIFFUSION_SAMPLING_SETTINGS,
    DIFFUSION_SAMPLING_VERSION,
    EDGE_MAP_VERSION,
)

ENV = "../../envs/xasengine.yaml"
# What reports.robustness reads: its rule's params, so a change elsewhere in reports reruns no sweep.
ROBUSTNESS_KNOBS = ("noise_levels", "shift_ev", "broadening_ev", "seed")
STRUCTURE_JSON = "results/structures/json/{sid}.json"
# FEFF knobs that change how jobs run, not what they compute (the cache is content-addressed): left out of rule
# params, so changing them reruns nothing.
FEFF_RUNTIME_KEYS = ("timeout_s", "keep_workdirs", "cache_dir")


def feff_data_config():
    return {k: v for k, v in config["feff"].items() if k not in FEFF_RUNTIME_KEYS}


def amorphous_cells(wildcards):
    """The amorphous cells the structures checkpoint gathers (none unless amorphous.enabled)."""
    amo = config["amorphous"]
    if not amo["enabled"]:
        return []
    return expand(
        "results/amorphous/cells/{formula}-s{seed}.json",
        formula=amo["compositions"],
        seed=amo["seeds"],
    )


def finetuned_models(wildcards):
    """The fine-tuned SPTs the amorphous report scores (none with amorphous.finetune_cells 0)."""
    if config["amorphous"]["finetune_cells"] == 0:
        return []
    return [f"results/models/spt-amorphous-{g}.pt" for g in config["train"]["groups"]]


def amorphous_record_cfg():
    """Only what shapes the amorphous structure records (their split and site sample)."""
    amo = config["amorphous"]
    return {k: amo[k] for k in ("seeds", "finetune_cells", "sites_per_cell")}


def structure_ids():
    """Ids gathered by the `structures` checkpoint (re-evaluated after it runs)."""
    index = checkpoints.structures.get().output.index
    with open(index, newline="") as fh:
        return [row["structure_id"] for row in csv.DictReader(fh, delimiter="\t")]


def all_feff(wildcards):
    return [f"results/feff/{s}.json" for s in structure_ids()]


def bucket_of(sid):
    # same as xasengine.shards.bucket_of; repeated here so that planning imports nothing heavy
    return (
        int(hashlib.sha256(sid.encode()).hexdigest(), 16)
        % config["shards"]["n_buckets"]
    )


def buckets():
    members = {}
    for sid in structure_ids():
        members.setdefault(bucket_of(sid), []).append(sid)
    return members


def shard_paths(wildcards):
    return [f"results/shards/shard-{b:03d}.h5" for b in sorted(buckets())]


def shard_inputs(wildcards):
    sids = buckets()[int(wildcards.bucket)]
    return {
        "structures": [STRUCTURE_JSON.format(sid=s) for s in sids],
        "sites": [f"results/sites/{s}.json" for s in sids],
        "descriptors": [f"results/descriptors/{s}.json" for s in sids],
        "feff": [f"results/feff/{s}.json" for s in sids],
    }


GROUP_DESCRIPTORS = {
    "nonO": ["OS", "CN", "CN2", "NNRS", "PSGO", "OCN", "MOOD"],
    "O": ["OS", "CN", "CN2", "NNRS", "NNOSM", "PSGO"],
}


def expert_modes():
    wanted = config["train"]["experts"]
    return [
        f"expert-{g}-{d}"
        for g in config["train"]["groups"]
        for d in GROUP_DESCRIPTORS[g]
        if d in wanted
    ]


def spt_metrics(kind):
    """Test metrics of the joint SPTs ("joint") or of the expert SPTs ("expert")."""
    if kind == "joint":
        return [
            f"results/metrics/spt-joint-{g}.json" for g in config["train"]["groups"]
        ]
    return [f"results/metrics/spt-{m}.json" for m in expert_modes()]


# Baseline families (xasengine.models.family.FAMILIES); kept here so that planning imports nothing heavy.
STOCHASTIC_FAMILIES = [
    "rf",
    "et",
    "xgb",
    "ftt",
    "amformer",
    "mlp",
]  # dt is deterministic for a seed
NO_MATCH = "(?!x)x"
BASELINE_PATTERN = "|".join(config["benchmark"]["models"]) or NO_MATCH
SEED_FAMILIES = [
    m for m in config["benchmark"]["models"] if m in STOCHASTIC_FAMILIES
] + ["spt"]
SEED_PATTERN = "|".join(SEED_FAMILIES)


def family_cfg(wildcards):
    return (
        config["train"]["spt"]
        if wildcards.model == "spt"
        else config["benchmark"][wildcards.model]
    )


def baseline_metrics(wildcards):
    return [
        f"results/metrics/{m}-{g}.json"
        for m in config["benchmark"]["models"]
        for g in config["train"]["groups"]
    ]


def seed_runs(pattern):
    return [
        pattern.format(model=m, group=g, seed=s)
        for m in SEED_FAMILIES
        for g in config["train"]["groups"]
        for s in config["benchmark"]["seeds"]
    ]


def training_resources():
    """What a training job asks a cluster for. A GPU only when training runs on one (`train.device: cuda`), through
    the SLURM plugin's `gres` resource (it refuses --gres in slurm_extra), on SLURM_GPU_PARTITION, or on the main
    SLURM_PARTITION when the site has no separate GPU partition. CPU training stays on the main partition. Its CPU
    count is the rule's threads (the plugin's default), so nothing here sets cpus_per_task.
    """
    wanted = {"runtime": config["resources"]["train_runtime"]}
    if config["train"]["device"] == "cuda":
        wanted["gres"] = f"gpu:{config['resources']['train_gpus']}"
        partition = os.environ.get("SLURM_GPU_PARTITION") or os.environ.get(
            "SLURM_PARTITION"
        )
        if partition:
            wanted["slurm_partition"] = partition
    return wanted


wildcard_constraints:
    group="nonO|O",
    descriptor="[A-Z0-9]+",
    bucket="[0-9]+",


def benchmark_inputs(wildcards):
    return spt_metrics("joint") + baseline_metrics(wildcards)


def seed_summary_if_built(wildcards):
    """benchmark_seeds.json once `snakemake benchmark_seeds` has made it (the benchmark then quotes the seed
    spread); the main run does not build it, seed runs being several times the cost of the benchmark.
    """
    path = "results/reports/benchmark_seeds.json"
    return [path] if os.path.exists(path) else []


def report_models(wildcards):
    """Every trained model the robustness sweeps perturb: the joint SPTs and each baseline family."""
    groups = config["train"]["groups"]
    return [f"results/models/spt-joint-{g}.pt" for g in groups] + [
        f"results/models/{m}-{g}.joblib"
        for m in config["benchmark"]["models"]
        for g in groups
    ]


# The held-out delithiation study the `delithiation` report follows.
DELITHIATION_FAMILY = config["reports"]["delithiation_family"]


def delithiation_structures(wildcards):
    """Structure records of the series' cells, from the `structures` checkpoint's index."""
    index = checkpoints.structures.get().output.index
    with open(index, newline="") as fh:
        return [
            STRUCTURE_JSON.format(sid=row["structure_id"])
            for row in csv.DictReader(fh, delimiter="\t")
            if row["family"] == DELITHIATION_FAMILY
        ]


def delithiation_report(wildcards):
    """The delithiation report once the gathered structures hold the series (the tiny CI set does not)."""
    return (
        ["results/reports/delithiation.html"]
        if delithiation_structures(wildcards)
        else []
    )


def measured_scans(wildcards):
    """The measured scans the experimental report reads (its input, so a new or changed scan reruns it)."""
    folder = config["reports"]["measured"]["dir"]
    if not os.path.isdir(folder):
        raise ValueError(
            f'reports.measured.dir: no folder {folder!r} (give one, or "" to skip the report)'
        )
    return sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith((".xdi", ".prj"))
    )


def report_targets():
    """What the `all` target builds after the shards: the dataset card and every comparison report."""
    targets = [
        "results/reports/dataset_card.md",
        "results/reports/benchmark.html",
        "results/reports/robustness.json",
    ]
    targets += [f"results/reports/umap-{g}.png" for g in config["train"]["groups"]]
    if expert_modes():
        targets.append("results/reports/expert_vs_joint.html")
    if config["diffusion"]["enabled"]:
        targets.append("results/reports/diffusion.html")
    if config["amorphous"]["enabled"]:
        targets.append("results/reports/amorphous.html")
    if config["reports"]["measured"]["dir"] and "nonO" in config["train"]["groups"]:
        targets.append("results/reports/experimental.html")
    if (
        DELITHIATION_FAMILY in config["split"]["test_families"]
        and "nonO" in config["train"]["groups"]
    ):
        # a function: whether the gathered structures hold the series is known after `structures`
        targets.append(delithiation_report)
    return targets


def environment_cfg():
    """Only the knobs that change the shells: other diffusion settings retrain, they do not re-cut."""
    return {k: config["diffusion"][k] for k in ("elements", "k_neighbors", "radius")}


def diffusion_train_cfg():
    """The knobs that change the trained model: sampling and evaluation settings re-evaluate, they do not retrain."""
    evaluation = (
        "n_samples",
        "sample_seed",
        "max_test_sites",
        "consistency_sites",
        "bond_cutoff",
        "enabled",
    )
    cfg = {k: v for k, v in config["diffusion"].items() if k not in evaluation}
    cfg["model"] = {
        k: v for k, v in cfg["model"].items() if k not in DIFFUSION_SAMPLING_SETTINGS
    }
    cfg["model_version"] = (
        DIFFUSION_MODEL_VERSION  # new code that changes the weights' meaning retrains
    )
    return cfg


def environment_paths(wildcards):
    return [f"results/environments/env-{b:03d}.h5" for b in sorted(buckets())]


def spt_for_diffusion(wildcards):
    """The joint SPT whose CN is the diffusion report's SPT baseline (absent when nonO is not trained)."""
    return (
        ["results/models/spt-joint-nonO.pt"]
        if "nonO" in config["train"]["groups"]
        else []
    )


def consistency_if_enabled(wildcards):
    n = config["diffusion"]["consistency_sites"]
    return ["results/metrics/diffusion_consistency.json"] if n else []

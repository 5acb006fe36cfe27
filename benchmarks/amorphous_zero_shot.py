"""Zero-shot scores of a finished main job's crystal models on the shipped glass cells (issue 12), no fine-tuning.

Builds a shard of the cells' sampled sites from a folder of their sites/descriptors/feff JSON (made by the engine's
absorbing_sites_stage; FEFF from the shipped cache parts 026-027) and runs the amorphous report on it with every
cell held out (finetune_cells 0). Paths are this session's: edit ROOT and RUN.
"""
import glob, json
from pathlib import Path
from xasengine.config import load_config
from xasengine.stages import shard_stage
from xasengine.structures.amorphous import amorphous_records
from xasengine.structures.io import write_record
from xasengine.reports.amorphous import write_amorphous

root = Path("/tmp/amofeff")  # ROOT: structures/, sites/, descriptors/, feff/ of the cells
cfg = load_config("/work/main/config.yaml")
amo = dict(cfg["amorphous"], finetune_cells=0, seeds=[1])
cells = sorted(glob.glob("/work/main/resources/structures/amorphous/*.json"))
records, _ = amorphous_records(cells, amo)
for rec in records:
    write_record(rec, root / "structures")
folders = {k: str(root / k) for k in ("structures", "sites", "descriptors", "feff")}
shard_stage([r.id for r in records], folders, str(root / "amorphous-shard.h5"), cfg)
run = Path("/tmp/seeds/results")  # RUN: results/ of a finished main job
shards = sorted(glob.glob(str(run / "shards" / "*.h5"))) + [str(root / "amorphous-shard.h5")]
out = {k: str(root / f"amorphous{v}") for k, v in
       {"json": ".json", "html": ".html", "scores": "_scores.png", "distributions": "_distributions.png"}.items()}
baselines = sorted(glob.glob(str(run / "models" / "*.joblib")))
result = write_amorphous(shards, [str(run / "models" / f"spt-joint-{g}.pt") for g in ("nonO", "O")], [], baselines,
                         str(run / "reports" / "benchmark.json"), out)
print(json.dumps(result["counts"]))
for g, e in result["groups"].items():
    for label, sc in e["scores"].items():
        print(g, label, {n: round(v.get("f1_weighted") if v["kind"] == "classification" else v.get("r2") or float("nan"), 3)
                         for n, v in sc.items()})

"""Does the diffusion model generate better shells when it is conditioned on the joint SPT's latent? (issue 15)

The stock denoiser learns its spectrum embedding from the denoising loss alone, and on the reference data the
conditional samples are barely better than the unconditioned prior (benchmarks/README.md, "Diffusion model"). The
joint SPT's shared latent already carries CN, OS and bond lengths (nonO CN F1 0.996, MOOD R² 0.98), so this script
trains the same denoiser, same seed and recipe, on three conditions side by side and scores each on the validation
split (the test split is not read unless --split test is given):

  spectrum   the engine's grid spectrum (today's default)
  latent     the frozen joint-nonO SPT latent of that spectrum (its element embedding included)
  both       the two concatenated

    PYTHONPATH=src python benchmarks/diffusion_condition.py --results results --conditions spectrum latent \
        --epochs 300 --every 2 --samples 4
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np
import torch

from xasengine.config import load_config
from xasengine.environments import absorber_numbers
from xasengine.models.diffusion import fit_diffusion
from xasengine.models.family import load_model
from xasengine.reports.diffusion import _per_element, _scores, joined_sites, template_shells
from xasengine.reports.umap_embed import spt_latent


def conditions(sites: dict, spt_path: str) -> dict[str, np.ndarray]:
    spt = load_model(spt_path)
    latent = spt_latent(spt, sites["spectrum"], sites["energy"], sites["element"]).astype(np.float32)
    # standardise the latent with training statistics so it enters at the spectrum's unit scale
    train = sites["split"] == "train"
    latent = (latent - latent[train].mean(0)) / (latent[train].std(0) + 1e-6)
    return {"spectrum": sites["spectrum"], "latent": latent,
            "both": np.concatenate([sites["spectrum"], latent], axis=1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default="results")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--conditions", nargs="+", default=["spectrum", "latent"])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--split", default="val")
    parser.add_argument("--every", type=int, default=2, help="score every n-th site of the split")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/diffusion_condition.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)["diffusion"]
    res = Path(args.results)
    sites = joined_sites(sorted(glob.glob(str(res / "shards" / "*.h5"))),
                         sorted(glob.glob(str(res / "environments" / "*.h5"))), cfg["elements"])
    conds = conditions(sites, str(res / "models" / "spt-joint-nonO.pt"))
    split = sites["split"]
    rows = np.flatnonzero(split == args.split)[:: args.every]
    k = sites["species"].shape[1]
    out = {"split": args.split, "n_sites": int(len(rows)), "samples": args.samples, "epochs": args.epochs,
           "results": str(res), "runs": {}}
    tmpl = template_shells(sites, rows)
    out["runs"]["template matching"] = _per_element(_scores(tmpl[0][:, None], tmpl[1][:, None], sites, rows,
                                                            cfg["bond_cutoff"]))
    for name in args.conditions:
        x = conds[name]
        pick = {s: split == s for s in ("train", "val")}
        arrays = {s: (sites["species"][m], sites["offsets"][m], absorber_numbers(sites["element"][m]), x[m])
                  for s, m in pick.items()}
        t0 = time.perf_counter()
        model, summary = fit_diffusion(*arrays["train"], cfg=(cfg.get("model") or {}) | {"epochs": args.epochs},
                                       val=arrays["val"])
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        species, offsets = model.sample(x[rows], absorber_numbers(sites["element"][rows]), k, args.samples, seed=0)
        sample_s = time.perf_counter() - t0
        scores = _per_element(_scores(species, offsets, sites, rows, cfg["bond_cutoff"]))
        out["runs"][name] = scores | {"train_seconds": train_s, "sample_seconds": sample_s,
                                      "final_val_loss": summary["history"][-1].get("val_loss")}
        print(name, f"train {train_s:.0f} s, sample {sample_s:.0f} s", json.dumps(scores["all"]), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    keys = ["bond_error", "cn_rel_error", "cn_exact", "angle_w1", "rmsd", "species_match"]
    print("\n| condition | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
    for name, run in out["runs"].items():
        print(f"| {name} | " + " | ".join("–" if run["all"].get(key) is None else f"{run['all'][key]:.3f}"
                                        for key in keys) + " |")


if __name__ == "__main__":
    main()

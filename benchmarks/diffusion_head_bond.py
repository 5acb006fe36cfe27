"""Two sampling-only fixes of the generated shells' bond length and CN, scored side by side (issue 15).

`head_bond`: the auxiliary head regresses the true shell's mean first-shell bond from the spectrum embedding during
training; at sampling each shell's first-shell O are scaled about the absorber to that length. `cn_retries`: a shell
asked for a CN that comes out with another count is drawn again from fresh noise. This scores the same noise seed
with each on and off, asked for the oracle CN and for none, plus the head's own bond error on every split, so that
the choice is made on the validation split and the test split only confirms it.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diffusion_head_bond.py --results results --split val --every 2 \
        --cn-retries 0 2
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np

from xasengine.config import load_config
from xasengine.environments import absorber_numbers
from xasengine.models.diffusion import load_diffusion
from xasengine.models.shell_metrics import first_shell_mask, summarise
from xasengine.reports.diffusion import _scores, joined_sites


def head_bond_errors(model, sites, cutoff: float) -> dict:
    """Mean absolute error (Å) of the head's bond reading against the true mean first-shell bond, per split."""
    out = {}
    for split in ("train", "val", "test"):
        rows = np.flatnonzero(sites["split"] == split)
        bonded = first_shell_mask(sites["species"][rows], sites["offsets"][rows], cutoff)
        dist = np.linalg.norm(np.nan_to_num(sites["offsets"][rows]), axis=-1)
        true = np.where(bonded.any(-1), (dist * bonded).sum(-1) / np.maximum(bonded.sum(-1), 1), np.nan)
        err = np.abs(model.head_bond_length(sites["spectrum"][rows]) - true)
        out[split] = {"sites": int(np.isfinite(err).sum()), "mae": float(np.nanmean(err)),
                      "median": float(np.nanmedian(err)), "p90": float(np.nanquantile(err, 0.9))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--checkpoint", help="default: <results>/models/diffusion.pt")
    parser.add_argument("--split", default="val", help="val to choose; test only to confirm a choice made on val")
    parser.add_argument("--every", type=int, default=2, help="every n-th site of the split")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--cutoff", type=float, default=2.6)
    parser.add_argument("--cn-retries", type=int, nargs="+", default=[0], help="redraws of CN misses to try")
    parser.add_argument("--out", default="benchmarks/results/diffusion_head_bond.json")
    args = parser.parse_args()
    results = Path(args.results)
    cfg = load_config(args.config)["diffusion"]
    model, _ = load_diffusion(args.checkpoint or results / "models" / "diffusion.pt")
    sites = joined_sites(sorted(glob.glob(str(results / "shards" / "*.h5"))),
                         sorted(glob.glob(str(results / "environments" / "*.h5"))), cfg["elements"])
    rows = np.flatnonzero(sites["split"] == args.split)[:: args.every]
    asked = first_shell_mask(sites["species"][rows], sites["offsets"][rows], args.cutoff).sum(-1)
    k = sites["species"].shape[1]
    record = {"split": args.split, "sites": len(rows), "samples": args.samples,
              "head_bond_error": head_bond_errors(model, sites, args.cutoff)}
    runs = [("no_cn", None, 0, False), ("no_cn_head_bond", None, 0, True)] + [
        (f"oracle_cn{f'_retries{r}' if r else ''}{'_head_bond' if head_bond else ''}", asked, r, head_bond)
        for r in args.cn_retries for head_bond in (False, True)]
    for name, counts, retries, head_bond in runs:
        start = time.perf_counter()
        species, offsets = model.sample(sites["spectrum"][rows], absorber_numbers(sites["element"][rows]), k,
                                        args.samples, seed=0, first_shell_counts=counts, clip_radius=cfg["radius"],
                                        head_bond=head_bond, cn_retries=retries)
        record[name] = {
            "scores": summarise(_scores(species, offsets, sites, rows, args.cutoff)),
            "cn_hit": float(np.mean(model.first_shell_count(species.reshape(-1, k), offsets.reshape(-1, k, 3))
                                    == np.repeat(asked, args.samples))),
            "seconds": round(time.perf_counter() - start, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

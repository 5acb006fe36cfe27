"""Classifier-free guidance weight of the diffusion model, chosen on the validation split.

Samples every n-th validation site of the diffusion elements at several guidance weights with one trained
checkpoint (the same noise seed for every weight) and prints the shell scores per weight, so the config's
`diffusion.model.guidance` is a validation choice; the test split is not read.

    PYTHONPATH=src python benchmarks/diffusion_guidance.py --results results --weights 0 0.3 1 --every 3 --samples 4
"""

from __future__ import annotations

import argparse
import glob
import json
import time

import numpy as np

from xasengine.models.diffusion import load_diffusion
from xasengine.models.shell_metrics import SCORE_KEYS, summarise
from xasengine.reports.diffusion import _scores, absorber_numbers, joined_sites


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.3, 1.0])
    parser.add_argument("--every", type=int, default=3, help="every n-th validation site")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--cutoff", type=float, default=2.6)
    args = parser.parse_args()
    model, meta = load_diffusion(f"{args.results}/models/diffusion.pt")
    shards = sorted(glob.glob(f"{args.results}/shards/shard-*.h5"))
    envs = sorted(glob.glob(f"{args.results}/environments/env-*.h5"))
    sites = joined_sites(shards, envs, meta["elements"])
    rows = np.flatnonzero(sites["split"] == "val")[:: args.every]
    absorbers = absorber_numbers(sites["element"][rows])
    k = sites["species"].shape[1]
    print(f"{len(rows)} validation sites x {args.samples} samples, checkpoint trained {meta.get('train_seconds', 0):.0f} s")
    results = {}
    for w in args.weights:
        start = time.perf_counter()
        species, offsets = model.sample(sites["spectrum"][rows], absorbers, k, args.samples, seed=0, guidance=w)
        seconds = time.perf_counter() - start
        scores = summarise(_scores(species, offsets, sites, rows, args.cutoff))
        results[w] = scores | {"seconds": round(seconds, 1)}
        print(f"guidance {w:4.2f}: " + "  ".join(f"{key} {scores[key]:.3f}" for key in SCORE_KEYS)
              + f"  ({seconds:.0f} s)", flush=True)
    print(json.dumps({str(w): r for w, r in results.items()}))


if __name__ == "__main__":
    main()

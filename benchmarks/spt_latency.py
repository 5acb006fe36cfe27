"""SPT inference cost on CPU: single-spectrum latency (p50/p95) and batched throughput.

Targets: p50 <= 2 ms for one spectrum, >= 10,000 spectra/s in batches of 1024, on 2 threads. The 1-minute
load average is printed too: on a shared machine, other jobs stall the two OpenMP threads and the figures.
Without --checkpoint the default hyper-parameters are used on a non-O head set, after a few training-mode
passes so the spectral blocks hold running amplitudes, as a trained model does.

    PYTHONPATH=src python benchmarks/spt_latency.py [--checkpoint results/models/spt-nonO.pt]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from xasengine.models.spt import SPT
from xasengine.train import DEFAULT_CFG, load_checkpoint, model_hparams

NON_O_HEADS = {"OS": 5, "CN": 6, "CN2": 10, "NNRS": 0, "PSGO": 8, "OCN": 6, "MOOD": 0}


def default_model(grid_len: int, seed: int = 0) -> SPT:
    """Default hyper-parameters, energy scaling as training would set it, running amplitudes filled."""
    torch.manual_seed(seed)
    grid = energy_grid(grid_len)
    model = SPT(grid_len, NON_O_HEADS, n_elements=4, energy_center=float(grid.mean()),
                energy_scale=float(grid.std()), **model_hparams(DEFAULT_CFG))
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(*synthetic_inputs(64, grid_len))
    return model.eval()


def energy_grid(grid_len: int) -> torch.Tensor:
    return torch.linspace(-20.0, 80.0, grid_len)


def synthetic_inputs(batch: int, grid_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    energy = energy_grid(grid_len).expand(batch, grid_len).contiguous()
    spectrum = torch.sigmoid(energy / 2.0) + 0.05 * torch.randn(batch, grid_len)
    return spectrum, energy, torch.zeros(batch, dtype=torch.long)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="trained SPT checkpoint; default: an untrained default model")
    parser.add_argument("--grid-len", type=int, default=150, help="grid points when no checkpoint is given")
    parser.add_argument("--single-runs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--batch-runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint)
    else:
        model = default_model(args.grid_len)
    grid_len = model.grid_len
    n_params = sum(p.numel() for p in model.parameters())

    with torch.inference_mode():
        single = synthetic_inputs(1, grid_len)
        for _ in range(100):
            model(*single)
        latencies = []
        for _ in range(args.single_runs):
            start = time.perf_counter()
            model(*single)
            latencies.append(time.perf_counter() - start)
        p50, p95 = np.percentile(np.array(latencies) * 1e3, [50, 95])

        batch = synthetic_inputs(args.batch, grid_len)
        for _ in range(3):
            model(*batch)
        seconds = []
        for _ in range(args.batch_runs):
            start = time.perf_counter()
            model(*batch)
            seconds.append(time.perf_counter() - start)
        throughput_median, throughput_best = args.batch / np.median(seconds), args.batch / np.min(seconds)

    hp = model.hparams
    print(f"| model | grid | params | threads | p50 ms | p95 ms | spectra/s batch {args.batch} median (best) "
          "| load avg |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| SPT d_model={hp['d_model']} blocks={hp['n_blocks']} top_k={hp['top_k']} "
          f"kernels={list(hp['kernel_sizes'])} window={hp['window']} | {grid_len} | {n_params:,} | {args.threads} "
          f"| {p50:.2f} | {p95:.2f} | {throughput_median:,.0f} ({throughput_best:,.0f}) | {os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()

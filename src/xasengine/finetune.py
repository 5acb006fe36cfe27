"""Fine-tune a crystal-trained joint SPT on a few amorphous cells (issue 12, the paper's Figure 3).

A glass has far too few labelled sites for its own validation split, so the recipe is fixed in advance (a small
learning rate, a fixed number of epochs, the crystal model's own augmentation) rather than early-stopped: what
the amorphous report measures is how far a little glass data moves a crystal model, on cells it never saw.
The label encoding (classes, regression scaling) and the temperature scaling stay those of the crystal model.
"""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import torch

from .errors import ModelError
from .evaluate import scored_rows
from .models.targets import TargetSpec
from .train import load_checkpoint, save_checkpoint, seed_everything, train_step


def finetune_spt(checkpoint: str | os.PathLike, table: dict, out_path: str | os.PathLike, split: str,
                 epochs: int, lr: float, seed: int = 0, batch_size: int = 16) -> dict:
    """The crystal checkpoint trained `epochs` more passes over the split's sites at `lr`; saved to out_path.
    Returns a summary (sites, epochs, seconds, mean training loss per epoch)."""
    model, meta = load_checkpoint(checkpoint)
    rows = np.flatnonzero(scored_rows(table, meta, split)[0])  # the split's sites the model can embed
    if rows.size == 0:
        raise ModelError(f"no {meta['group']} sites in split {split!r} to fine-tune {checkpoint} on")
    specs = [TargetSpec.from_dict(d) for d in meta["targets"]]
    spectrum = torch.from_numpy(np.asarray(table["spectrum"], dtype=np.float32)[rows])
    energy = torch.from_numpy(np.asarray(table["energy"], dtype=np.float32)[rows])
    elements = np.asarray(table["element"]).astype(str)[rows]
    element = torch.from_numpy(np.searchsorted(meta["elements"], elements).astype(np.int64))
    targets = {spec.name: torch.from_numpy(spec.encode(np.asarray(table["descriptors"][spec.name],
                                                                  dtype=np.float64)[rows])) for spec in specs}
    cfg = meta["cfg"]
    seed_everything(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg["weight_decay"])
    shuffler = torch.Generator().manual_seed(seed)
    history, started = [], time.perf_counter()
    model.train()
    for _ in range(epochs):
        losses = []
        for chunk in torch.randperm(len(rows), generator=shuffler).split(batch_size):
            losses.append(train_step(model, optimizer, spectrum[chunk], energy[chunk], element[chunk],
                                     {name: values[chunk] for name, values in targets.items()}, specs, cfg))
        history.append(round(float(np.mean(losses)), 5))
    model.eval()
    summary = {"from": str(checkpoint), "split": split, "n_sites": int(rows.size), "epochs": int(epochs),
               "lr": float(lr), "seed": int(seed), "seconds": round(time.perf_counter() - started, 2),
               "train_loss": history}
    save_checkpoint(out_path, model, copy.copy(meta) | {"finetune": summary})
    return summary

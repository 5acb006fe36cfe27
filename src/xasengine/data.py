"""torch Dataset over HDF5 shards: one item per site with a usable spectrum."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .descriptors import ALL_DESCRIPTORS
from .shards import read_shards


class SiteDataset(Dataset):
    """Items: spectrum (G,), energy (G,), descriptors (len(ALL_DESCRIPTORS),) with NaN where n/a, element."""

    def __init__(self, shard_paths, split: str | None = None, elements: list[str] | None = None):
        table = read_shards(shard_paths, only_ok=True)
        keep = np.ones(len(table["status"]), dtype=bool)
        if split is not None:
            keep &= table["split"] == split
        if elements is not None:
            keep &= np.isin(table["element"], elements)
        self.spectrum = torch.as_tensor(table["spectrum"][keep], dtype=torch.float32)
        self.energy = torch.as_tensor(table["energy"][keep], dtype=torch.float32)
        self.targets = torch.as_tensor(
            np.stack([table["descriptors"][n][keep] for n in ALL_DESCRIPTORS], axis=1), dtype=torch.float32
        )
        self.element = table["element"][keep]
        self.structure_id = table["structure_id"][keep]

    def __len__(self) -> int:
        return len(self.spectrum)

    def __getitem__(self, i: int) -> dict:
        return {"spectrum": self.spectrum[i], "energy": self.energy[i], "targets": self.targets[i],
                "element": str(self.element[i])}

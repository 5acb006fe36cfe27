"""Fits a neural family: one multi-output network per site group, trained like the joint SPT (masked multi-task
loss, AdamW, cosine schedule, last epoch kept) on standardised features (mean / std of the training sites).

A family module provides DEFAULTS (including the TRAINING_DEFAULTS keys) and
`build_network(n_features, n_outputs, cfg) -> nn.Module` mapping (batch, n_features) to (batch, n_outputs);
the outputs are split into one head per descriptor here.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm import tqdm

from .loss import masked_loss
from .targets import TargetSpec

TRAINING_DEFAULTS = {
    "epochs": 100,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 1e-4,
}


def head_sizes(specs: list[TargetSpec]) -> list[int]:
    """Output columns per descriptor: one per class, one for a regression."""
    return [max(spec.n_outputs, 1) for spec in specs]


def split_heads(outputs: torch.Tensor, specs: list[TargetSpec]) -> dict[str, torch.Tensor]:
    heads = torch.split(outputs, head_sizes(specs), dim=1)
    return {spec.name: head if spec.kind == "classification" else head[:, 0] for spec, head in zip(specs, heads)}


def fit(module, features: np.ndarray, encoded: dict, specs: list[TargetSpec], cfg: dict, seed: int,
        n_jobs: int = 1) -> dict:
    torch.manual_seed(seed)
    np.random.seed(seed)
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std[std < 1e-6] = 1.0  # constant columns (an absent element) stay at zero
    inputs = torch.from_numpy(((features - mean) / std).astype(np.float32))
    targets = {name: torch.from_numpy(values) for name, values in encoded.items()}
    network = module.build_network(inputs.shape[1], sum(head_sizes(specs)), cfg)
    optimizer = torch.optim.AdamW(network.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg["epochs"])
    shuffler = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(cfg["epochs"]), desc=module.__name__.rsplit(".", 1)[-1], unit="epoch",
                  disable=not sys.stderr.isatty()):
        network.train()
        for batch in torch.randperm(len(inputs), generator=shuffler).split(cfg["batch_size"]):
            loss, _ = masked_loss(split_heads(network(inputs[batch]), specs),
                                  {name: values[batch] for name, values in targets.items()}, specs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
    return {"network": network.eval(), "mean": mean, "std": std}


def _heads(model, spectra: np.ndarray, elements: np.ndarray, batch_size: int = 1024) -> dict[str, torch.Tensor]:
    state = model.state
    inputs = torch.from_numpy(((model.features(spectra, elements) - state["mean"]) / state["std"]).astype(np.float32))
    network = state["network"].eval()
    with torch.inference_mode():
        outputs = torch.cat([network(chunk) for chunk in inputs.split(batch_size)])
    return split_heads(outputs, model.specs)


def predict_proba(model, spectra: np.ndarray, elements: np.ndarray, energy=None) -> dict[str, np.ndarray]:
    heads = _heads(model, spectra, elements)
    return {spec.name: torch.softmax(heads[spec.name], dim=1).numpy() for spec in model.specs
            if spec.kind == "classification"}


def predict(model, spectra: np.ndarray, elements: np.ndarray, energy=None, batch_size: int = 1024) -> dict:
    predictions = {}
    for spec, head in zip(model.specs, _heads(model, spectra, elements, batch_size).values()):
        value = head.argmax(dim=1) if spec.kind == "classification" else head
        predictions[spec.name] = spec.decode(value.numpy())
    return predictions

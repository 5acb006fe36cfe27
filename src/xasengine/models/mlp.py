"""Plain multilayer perceptron on the gridded spectrum: the XANESNET-style model most XANES groups use."""

from __future__ import annotations

from torch import nn

from .neural import TRAINING_DEFAULTS

DEFAULTS = {
    **TRAINING_DEFAULTS,
    "hidden": 256,   # width of every hidden layer
    "layers": 2,     # hidden layers
    "dropout": 0.1,
}


def build_network(n_features: int, n_outputs: int, cfg: dict) -> nn.Module:
    layers, width = [], n_features
    for _ in range(cfg["layers"]):
        layers += [nn.Linear(width, cfg["hidden"]), nn.SiLU(), nn.Dropout(cfg["dropout"])]
        width = cfg["hidden"]
    return nn.Sequential(*layers, nn.Linear(width, n_outputs))

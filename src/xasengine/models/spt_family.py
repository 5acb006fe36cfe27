"""The SPT behind the family interface, so benchmarks and reports score it exactly like the baselines.

It wraps xasengine.train / xasengine.evaluate (the SPT's own training and checkpoint code, which its rules keep
using) rather than repeating them; imports are deferred so that loading models/ does not load them.
"""

from __future__ import annotations

import numpy as np

from .family import FittedModel
from .targets import TargetSpec

DEFAULTS: dict = {}  # the SPT's defaults live in xasengine.train.DEFAULT_CFG


def _wrap(network, meta: dict, train_seconds: float) -> FittedModel:
    return FittedModel("spt", meta["group"], list(meta["elements"]), len(meta["energy_grid"]),
                       [TargetSpec.from_dict(t) for t in meta["targets"]], dict(meta["cfg"]), int(meta["cfg"]["seed"]),
                       network, float(train_seconds), extra={"meta": meta})


def fit(table: dict, group: str, cfg: dict | None, seed: int, targets: list[str]) -> FittedModel:
    from ..train import fit_spt

    network, meta, summary = fit_spt(table, group, {**(cfg or {}), "seed": int(seed)}, targets)
    return _wrap(network, meta, summary["train_seconds"])


def _predict_table(model: FittedModel, spectra: np.ndarray, elements: np.ndarray, energy=None) -> dict:
    from ..evaluate import predict_table

    meta = model.extra["meta"]
    if energy is None:
        energy = np.tile(np.asarray(meta["energy_grid"], dtype=np.float32), (len(spectra), 1))
    return predict_table(model.state, meta, spectra, energy, elements)


def predict(model: FittedModel, spectra: np.ndarray, elements: np.ndarray, energy=None) -> dict[str, np.ndarray]:
    return {name: out["pred"] for name, out in _predict_table(model, spectra, elements, energy).items()}


def predict_proba(model: FittedModel, spectra: np.ndarray, elements: np.ndarray, energy=None) -> dict[str, np.ndarray]:
    return {name: out["proba"] for name, out in _predict_table(model, spectra, elements, energy).items()
            if out["proba"] is not None}


def save(model: FittedModel, path) -> None:
    from ..train import save_checkpoint

    save_checkpoint(path, model.state, model.extra["meta"])


def load(path) -> FittedModel:
    from ..train import load_checkpoint

    network, meta = load_checkpoint(path)
    return _wrap(network, meta, meta.get("training", {}).get("train_seconds", float("nan")))

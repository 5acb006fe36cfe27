"""Predict descriptors with a trained SPT and score predictions the same way for every model family."""

from __future__ import annotations

import numpy as np
import torch

from .errors import ModelError
from .models.metrics import metrics  # noqa: F401  (re-exported: every model family scores with it)
from .models.spt import SPT
from .models.targets import TargetSpec, check_finite_spectra, check_site_table, group_mask


def _as_inputs(spectra, energy, elements, meta: dict, grid_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check measured or simulated inputs against what the model was trained on, with actionable messages."""
    spectra = np.asarray(spectra, dtype=np.float32)
    energy = np.asarray(energy, dtype=np.float32)
    if spectra.ndim == 1:
        spectra, energy = spectra[None], energy.reshape(1, -1)
    if spectra.ndim != 2 or spectra.shape[1] != grid_len:
        raise ModelError(f"spectra must be (n, {grid_len}) on the model's energy grid, got {spectra.shape}; "
                         "regrid them first")
    if energy.shape != spectra.shape:
        raise ModelError(f"energy {energy.shape} must match spectra {spectra.shape}")
    check_finite_spectra(spectra, energy)
    elements = np.asarray(elements).astype(str).reshape(-1)
    if elements.shape != (spectra.shape[0],):
        raise ModelError(f"need one absorbing element per spectrum, got {elements.shape[0]} for {spectra.shape[0]}")
    unknown = sorted(set(elements) - set(meta["elements"]))
    if unknown:
        raise ModelError(f"model for group {meta['group']!r} was trained on {meta['elements']}, not {unknown}")
    return spectra, energy, np.searchsorted(meta["elements"], elements).astype(np.int64)


def predict_table(model: SPT, meta: dict, spectra, energy, elements, batch_size: int = 1024,
                  calibrated: bool = True) -> dict[str, dict[str, np.ndarray | None]]:
    """Descriptor predictions in physical units; 'proba' holds class probabilities (columns = meta classes),
    temperature-scaled unless `calibrated` is False (the classes predicted are the same either way)."""
    spectra, energy, element_index = _as_inputs(spectra, energy, elements, meta, model.grid_len)
    specs = [TargetSpec.from_dict(d) for d in meta["targets"]]
    temperatures = meta.get("temperatures", {}) if calibrated else {}  # fitted on validation (train.py)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs: dict[str, list[np.ndarray]] = {spec.name: [] for spec in specs}
    with torch.inference_mode():
        for start in range(0, len(spectra), batch_size):
            window = slice(start, start + batch_size)
            batch = model(torch.from_numpy(spectra[window]).to(device), torch.from_numpy(energy[window]).to(device),
                          torch.from_numpy(element_index[window]).to(device))
            for spec in specs:
                output = batch[spec.name]
                outputs[spec.name].append((torch.softmax(output / temperatures.get(spec.name, 1.0), dim=1)
                                           if spec.kind == "classification"
                                           else output).cpu().numpy())
    model.train(was_training)

    predictions = {}
    for spec in specs:
        n_columns = (len(spec.classes),) if spec.kind == "classification" else ()
        stacked = np.concatenate(outputs[spec.name]) if outputs[spec.name] else np.empty((0, *n_columns))
        if spec.kind == "classification":
            predictions[spec.name] = {"pred": spec.decode(stacked.argmax(axis=1)), "proba": stacked}
        else:
            predictions[spec.name] = {"pred": spec.decode(stacked), "proba": None}
    return predictions


def latent_vectors(model: SPT, meta: dict, spectra, energy, elements, batch_size: int = 512) -> np.ndarray:
    """The SPT's shared latent vector (what every head reads) per spectrum: the UMAP report maps it and the
    out-of-distribution score measures distances in it."""
    spectra, energy, element_index = _as_inputs(spectra, energy, elements, meta, model.grid_len)
    return model.embed_batched(torch.from_numpy(spectra), torch.from_numpy(energy), torch.from_numpy(element_index),
                               batch_size).numpy()


def scored_rows(table: dict, meta: dict, split: str = "test") -> tuple[np.ndarray, int]:
    """Rows of one split that a model can be scored on (its site group, absorbers it was trained on), and how
    many of the group's rows were left out for an element absent from training."""
    rows = group_mask(table["element"], meta["group"]) & (np.asarray(table["split"]).astype(str) == split)
    trained = np.isin(np.asarray(table["element"]).astype(str), meta["elements"] if meta["group"] == "nonO" else ["O"])
    return rows & trained, int((rows & ~trained).sum())


def evaluate_model(model: SPT, meta: dict, table: dict, split: str = "test") -> dict:
    """Scores per descriptor on one split of the model's site group, as a JSON-serialisable dict.

    Sites whose true class never occurred in training are kept (they count as errors) and also counted
    under 'n_unseen_class', so a low score can be traced to missing training coverage.
    """
    check_site_table(table)
    rows, n_unseen_element = scored_rows(table, meta, split)
    predictions = predict_table(model, meta, np.asarray(table["spectrum"])[rows], np.asarray(table["energy"])[rows],
                                np.asarray(table["element"])[rows])
    scores = {}
    for target in meta["targets"]:
        spec = TargetSpec.from_dict(target)
        truth = np.asarray(table["descriptors"][spec.name], dtype=np.float64)[rows]
        scores[spec.name] = {"kind": spec.kind, **metrics(truth, predictions[spec.name]["pred"], spec.kind)}
        if spec.kind == "classification":
            scores[spec.name]["n_unseen_class"] = spec.unseen_count(truth)
    return {"group": meta["group"], "split": split, "n_sites": int(rows.sum()), "n_unseen_element": n_unseen_element,
            "dataset_hash": meta.get("dataset_hash"), "descriptors": scores}

"""Train an SPT model for one site group on a site table and save a checkpoint.

One model per group ('O' / 'nonO'), as in the paper. Joint mode (targets=None) learns all descriptors of the
group with a summed, per-task masked loss; expert mode passes one descriptor. Everything needed to use the
model later (hyper-parameters, target encodings, element map, energy grid, cfg, dataset hash) goes into the
checkpoint, so a checkpoint alone reproduces predictions.

By default training runs the whole cosine schedule and keeps the last epoch (patience None). Early stopping on
the validation split is available: `patience: N` stops after N epochs without improvement of `monitor` and keeps
the best epoch — "val_score" (weighted F1 for classes, R² against the training variance for regressions, averaged
over the descriptors; ties go to the later epoch) or "val_loss". It is off because the validation split is a
handful of materials: on the 626 usable FEFF sites of session 3 (62 reference cells; nonO 410/62/80
train/val/test on the shipped split, also 5-fold by structure; seeds 0-2) both monitors with patience 30 or 60
kept an epoch-4-8 peak of the validation score in most nonO fits, and lost to the last epoch on nearly every
descriptor of both site groups (cv5 nonO CN 0.940 vs 0.977, CN2 0.873 vs 0.912; O-site CN 0.378 vs 0.826), while
the test scores kept rising after that peak (CN 0.944 -> 0.988).
"""

from __future__ import annotations

import copy
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from tqdm import tqdm

from .atomic import atomic_path
from .errors import ModelError
from .readers import load_torch
from .spectra import damp_white_line
from .models.calibration import fit_temperature, reliability, softmax
from .models.domain import fit_domain, fit_latent_domain
from .models.loss import masked_loss  # noqa: F401  (re-exported: tests and scripts import it from here)
from .models.spt import SPT
from .models.targets import (IGNORE_INDEX, TargetSpec, build_target_specs,
                             check_finite_spectra, check_site_table, group_mask, group_targets)

CHECKPOINT_FORMAT = "xasengine-spt/2"  # /2: input scaling buffers, dmu/dE input, squeezed readout
# Sized for the latency target (p50 <= 2 ms per spectrum, >= 10,000 spectra/s on 2 threads); a 5x5 kernel
# lets one band filter see two rows (periods) and two points either side; 100 epochs of batch 32 because a
# few hundred sites give only a few optimiser steps per epoch (the old 40 x 64 stopped after ~20-60 steps).
DEFAULT_CFG = {
    "d_model": 16,
    "n_blocks": 1,
    "top_k": 3,
    "kernel_sizes": (1, 3, 5),
    "window": 5,
    "dropout": 0.1,
    "lr": 2e-3,
    "weight_decay": 1e-2,
    "batch_size": 32,
    "max_epochs": 100,
    "monitor": "val_score",  # what early stopping watches, when on: val_score (higher is better) | val_loss
    "patience": None,  # None: keep the last epoch (see the module docstring); N: stop after N epochs without gain
    "seed": 0,
    "noise_std": 0.01,  # augmentation: a little detector noise and E0 jitter, as in measured spectra; on the
    "shift_ev": 0.3,    # 253-site FEFF set it also raised MOOD R² by ~4 points and OS / NNRS by 0-2
    # Simulation-to-measurement augmentation, off by default (see benchmarks/README.md, "measured spectra"):
    "broaden_ev": 0.0,  # extra Gaussian broadening, sigma drawn uniformly from [0, broaden_ev] eV
    "stretch": 0.0,     # energy-scale error: features moved to (1 + s) x their distance from E0, |s| <= stretch
    "damping": 0.0,     # white line damped towards the edge step: mu - d (mu - 1)+, d drawn from [0, damping]
}
MODEL_KEYS = ("d_model", "n_blocks", "top_k", "kernel_sizes", "window", "dropout")
PROVENANCE_KEYS = ("dataset_hash",)


def resolve_cfg(cfg: dict | None) -> dict:
    """Defaults overlaid with cfg; an unknown key is refused, since a typo would otherwise train silently."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULT_CFG) - set(PROVENANCE_KEYS))
    if unknown:
        raise ModelError(f"unknown SPT cfg keys {unknown}; known: {sorted(DEFAULT_CFG)} + {list(PROVENANCE_KEYS)}")
    resolved = {**DEFAULT_CFG, **cfg}
    resolved["kernel_sizes"] = tuple(int(k) for k in resolved["kernel_sizes"])
    if resolved["monitor"] not in ("val_score", "val_loss"):
        raise ModelError(f"SPT cfg monitor must be 'val_score' or 'val_loss', got {resolved['monitor']!r}")
    return resolved


def model_hparams(cfg: dict) -> dict:
    """The architecture part of a cfg, as SPT keyword arguments."""
    return {key: cfg[key] for key in MODEL_KEYS}


def interpolate_rows(query: torch.Tensor, grid: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Row-wise linear interpolation of values(grid) at query points, held constant beyond the grid ends."""
    upper = torch.searchsorted(grid, query.contiguous()).clamp(1, grid.shape[1] - 1)
    lower = upper - 1
    grid_lo, grid_hi = grid.gather(1, lower), grid.gather(1, upper)
    fraction = ((query - grid_lo) / (grid_hi - grid_lo)).clamp(0.0, 1.0)
    return torch.lerp(values.gather(1, lower), values.gather(1, upper), fraction)


def broaden(spectrum: torch.Tensor, energy: torch.Tensor, sigma_ev: torch.Tensor) -> torch.Tensor:
    """Each row convolved with its own Gaussian (sigma in eV, shape (n, 1)); edges padded with the end values."""
    step = (energy[:, 1:2] - energy[:, 0:1]).clamp(min=1e-6)
    sigma = (sigma_ev / step).clamp(min=1e-3)  # in grid points
    half = max(1, int(torch.ceil(3 * sigma.max()).item()))
    offsets = torch.arange(-half, half + 1, device=spectrum.device, dtype=spectrum.dtype)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    weights = weights / weights.sum(dim=1, keepdim=True)
    padded = F.pad(spectrum[:, None, :], (half, half), mode="replicate")[:, 0, :]
    return (padded.unfold(1, 2 * half + 1, 1) * weights[:, None, :]).sum(dim=-1)


def augment(spectrum: torch.Tensor, energy: torch.Tensor, noise_std: float, shift_ev: float,
            broaden_ev: float = 0.0, stretch: float = 0.0, damping: float = 0.0) -> torch.Tensor:
    """Imitate what separates measured from simulated spectra: an E0 calibration offset and detector noise, and
    optionally the broader features (core-hole lifetime, monochromator), the energy-scale error of FEFF and its
    white line, ~1.5x too high against measured ones (benchmarks/README.md, "SPT on measured spectra")."""
    rows = spectrum.shape[0]
    if damping > 0:
        spectrum = damp_white_line(spectrum, torch.rand(rows, 1, device=spectrum.device) * damping)
    if stretch > 0:
        scale = 1 + (torch.rand(rows, 1, device=spectrum.device) * 2 - 1) * stretch
        spectrum = interpolate_rows(energy / scale, energy, spectrum)
    if broaden_ev > 0:
        spectrum = broaden(spectrum, energy, torch.rand(rows, 1, device=spectrum.device) * broaden_ev)
    if shift_ev > 0:
        shift = (torch.rand(rows, 1, device=spectrum.device) * 2 - 1) * shift_ev
        spectrum = interpolate_rows(energy - shift, energy, spectrum)
    if noise_std > 0:
        spectrum = spectrum + noise_std * torch.randn_like(spectrum)
    return spectrum


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _GroupData:
    """One group's sites as tensors: inputs, encoded targets, and split indices."""

    def __init__(self, table: dict, group: str, specs_from: tuple[str, ...]):
        rows = group_mask(table["element"], group)
        all_elements = np.asarray(table["element"]).astype(str)
        split_all = np.asarray(table["split"]).astype(str)
        trained = set(all_elements[rows & (split_all == "train")])
        # an element absent from training cannot be embedded: its val/test sites are left out and counted
        seen = np.isin(all_elements, sorted(trained))
        self.unseen_elements = {str(e): int(((all_elements == e) & rows).sum()) for e in set(all_elements[rows & ~seen])}
        rows &= seen
        split = split_all[rows]
        self.split_index = {name: np.flatnonzero(split == name) for name in ("train", "val", "test")}
        for name in ("train", "val"):
            if self.split_index[name].size == 0:
                raise ModelError(f"group {group!r} has no {name!r} sites; training needs both train and val")
        spectrum = np.asarray(table["spectrum"], dtype=np.float32)[rows]
        energy = np.asarray(table["energy"], dtype=np.float32)[rows]
        check_finite_spectra(spectrum, energy)
        descriptors = {name: np.asarray(values, dtype=np.float64)[rows]
                       for name, values in table["descriptors"].items()}
        elements = np.asarray(table["element"]).astype(str)[rows]
        ids = table.get("structure_id")
        self.structure_id = (np.asarray(ids).astype(str)[rows] if ids is not None
                             else np.array([""] * int(rows.sum())))
        self.element_names = elements
        train = self.split_index["train"]
        self.specs = build_target_specs(descriptors, train, specs_from)
        self.elements = sorted(str(e) for e in set(elements[train]))
        self.spectrum = torch.from_numpy(spectrum)
        self.energy = torch.from_numpy(energy)
        self.element = torch.from_numpy(np.searchsorted(self.elements, elements).astype(np.int64))
        self.targets = {spec.name: torch.from_numpy(spec.encode(descriptors[spec.name])) for spec in self.specs}
        self.unseen = {spec.name: {split_name: spec.unseen_count(descriptors[spec.name][index])
                                   for split_name, index in self.split_index.items()} for spec in self.specs}
        self.energy_grid = energy[train[0]]
        self.energy_center = float(energy[train].mean())
        self.energy_scale = float(energy[train].std()) or 1.0

    def batch(self, index: torch.Tensor, device: str):
        targets = {name: values[index].to(device) for name, values in self.targets.items()}
        return self.spectrum[index].to(device), self.energy[index].to(device), self.element[index].to(device), targets


def _task_score(spec: TargetSpec, output: torch.Tensor, target: torch.Tensor) -> float | None:
    """Weighted F1 (classes) or R² against the training variance (standardised regression); None: no labels."""
    if spec.kind == "classification":
        labelled = target != IGNORE_INDEX
        if not bool(labelled.any()):
            return None
        truth, guess = target[labelled].cpu().numpy(), output[labelled].argmax(1).cpu().numpy()
        return float(f1_score(truth, guess, average="weighted", zero_division=0))
    labelled = torch.isfinite(target)
    if not bool(labelled.any()):
        return None
    return 1.0 - float(((output[labelled] - target[labelled]) ** 2).mean())


def _evaluate_split(model: SPT, data: _GroupData, index: np.ndarray, batch_size: int,
                    device: str) -> tuple[float, float]:
    """Masked loss and mean task score over a whole split at once (each task averaged over its labelled sites)."""
    model.eval()
    index = torch.from_numpy(index)
    outputs: dict[str, list[torch.Tensor]] = {spec.name: [] for spec in data.specs}
    with torch.inference_mode():
        for chunk in index.split(batch_size):
            spectrum, energy, element, _ = data.batch(chunk, device)
            for name, output in model(spectrum, energy, element).items():
                outputs[name].append(output)
        outputs = {name: torch.cat(parts) for name, parts in outputs.items()}
        targets = {name: values[index].to(device) for name, values in data.targets.items()}
        loss, _ = masked_loss(outputs, targets, data.specs)
    scores = [score for spec in data.specs
              if (score := _task_score(spec, outputs[spec.name], targets[spec.name])) is not None]
    return float(loss), float(np.mean(scores)) if scores else float("nan")


def fit_spt(table: dict, group: str, cfg: dict | None = None, targets: list[str] | None = None,
            device: str = "cpu") -> tuple[SPT, dict, dict]:
    """Train one SPT for a site group (joint: all its descriptors; expert: targets=[name]).

    Returns the best-on-validation model (eval mode), its metadata (the checkpoint minus the weights) and a
    JSON-serialisable summary: split sizes, loss history, best epoch, labels unseen in training.
    """
    cfg = resolve_cfg(cfg)
    check_site_table(table)
    names = group_targets(group, targets)

    data = _GroupData(table, group, names)
    seed_everything(cfg["seed"])
    model = SPT(data.spectrum.shape[1], {spec.name: spec.n_outputs for spec in data.specs},
                n_elements=len(data.elements) if group == "nonO" else 0, energy_center=data.energy_center,
                energy_scale=data.energy_scale, **model_hparams(cfg)).to(device)
    train_index = torch.from_numpy(data.split_index["train"])
    model.set_input_scaling(data.spectrum[train_index].to(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg["max_epochs"])
    shuffler = torch.Generator().manual_seed(cfg["seed"])

    higher_is_better = cfg["monitor"] == "val_score"
    history, best, best_epoch, best_state = [], -np.inf if higher_is_better else np.inf, 0, None
    started = time.perf_counter()
    progress = tqdm(range(1, cfg["max_epochs"] + 1), desc=f"SPT {group}", unit="epoch",
                    disable=not sys.stderr.isatty())
    for epoch in progress:
        model.train()
        batch_losses = []
        for chunk in train_index[torch.randperm(len(train_index), generator=shuffler)].split(cfg["batch_size"]):
            batch_losses.append(train_step(model, optimizer, *data.batch(chunk, device), data.specs, cfg))
        val_loss, val_score = _evaluate_split(model, data, data.split_index["val"], 1024, device)
        history.append({"epoch": epoch, "train_loss": float(np.mean(batch_losses)), "val_loss": val_loss,
                        "val_score": val_score, "lr": optimizer.param_groups[0]["lr"]})
        scheduler.step()
        progress.set_postfix(train=f"{history[-1]['train_loss']:.3f}", val=f"{val_loss:.3f}", score=f"{val_score:.3f}")
        if not np.isfinite(val_loss):
            raise ModelError(f"validation loss is not finite at epoch {epoch} for group {group!r}: training "
                             "diverged; lower cfg['lr']")
        watched = history[-1][cfg["monitor"]]
        improved = watched >= best if higher_is_better else watched < best  # score ties go to the later epoch
        if cfg["patience"] is None:  # no early stopping: the last epoch is the one kept
            best_epoch = epoch
        elif improved:
            best, best_epoch, best_state = watched, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= cfg["patience"]:
            break
    progress.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    best_row = history[best_epoch - 1]
    model.eval()
    temperatures, calibration = _fit_temperatures(model, data, device)

    summary = {
        "group": group,
        "targets": [spec.name for spec in data.specs],
        "n_sites": {name: int(index.size) for name, index in data.split_index.items()},
        "elements": data.elements,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "monitor": cfg["monitor"],
        "best_val_loss": best_row["val_loss"],
        "best_val_score": best_row["val_score"],
        "train_seconds": round(time.perf_counter() - started, 2),
        "unseen_labels": data.unseen,
        "unseen_elements": data.unseen_elements,
        "history": history,
        "dataset_hash": cfg.get("dataset_hash"),
        "calibration": calibration,
    }
    meta = {
        "format": CHECKPOINT_FORMAT,
        "hparams": model.hparams,
        "targets": [spec.to_dict() for spec in data.specs],
        "elements": data.elements,
        "energy_grid": data.energy_grid.tolist(),
        "group": group,
        "domain": fit_domain(data.spectrum[train_index].numpy(),
                             data.spectrum[torch.from_numpy(data.split_index["val"])].numpy()),
        "references": training_references(data),
        "latent_domain": fit_latent_domain(_latents(model, data, "train"), _latents(model, data, "val")),
        "cfg": {**cfg, "kernel_sizes": list(cfg["kernel_sizes"])},
        "temperatures": temperatures,
        "dataset_hash": cfg.get("dataset_hash"),
        "training": {key: summary[key] for key in ("n_sites", "epochs_run", "best_epoch", "monitor", "best_val_loss",
                                                   "best_val_score", "train_seconds", "unseen_labels", "unseen_elements")},
    }
    return model, meta, summary


MAX_REFERENCES_PER_ELEMENT = 200


def train_step(model: SPT, optimizer: torch.optim.Optimizer, spectrum: torch.Tensor, energy: torch.Tensor,
               element: torch.Tensor, targets: dict, specs: list[TargetSpec], cfg: dict) -> float:
    """One optimiser step on one batch with the recipe's augmentation and gradient clipping; fine-tuning takes
    the same step, so a fine-tuned model differs from its crystal parent only by the data it saw."""
    spectrum = augment(spectrum, energy, cfg["noise_std"], cfg["shift_ev"], cfg["broaden_ev"], cfg["stretch"],
                       cfg["damping"])
    loss, _ = masked_loss(model(spectrum, energy, element), targets, specs)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    return loss.item()


def _latents(model: SPT, data: _GroupData, split: str) -> np.ndarray:
    """The trained model's latent vectors of one split, for the out-of-distribution score."""
    index = torch.from_numpy(data.split_index[split])
    return model.embed_batched(data.spectrum[index], data.energy[index], data.element[index]).numpy()


def training_references(data: _GroupData, limit: int = MAX_REFERENCES_PER_ELEMENT) -> dict:
    """A small per-element subsample of the training spectra kept in the checkpoint, so `predict --plot` can draw
    an input's nearest training spectra: per element at most `limit` training sites (an even, seeded choice),
    {element: {"structure_id": [...], "spectrum": float16 tensor (n, grid)}}; ~200 x grid x 2 bytes per element."""
    rng = np.random.default_rng(0)
    train = data.split_index["train"]
    out = {}
    for element in data.elements:
        index = train[data.element_names[train] == element]
        if index.size > limit:
            index = np.sort(rng.choice(index, limit, replace=False))
        out[element] = {"structure_id": [str(s) for s in data.structure_id[index]],
                        "spectrum": data.spectrum[torch.from_numpy(index)].to(torch.float16).clone()}
    return out


MIN_CALIBRATION_SITES = 20  # fewer labelled validation sites than this: probabilities are left as trained


def _fit_temperatures(model: SPT, data: _GroupData, device: str) -> tuple[dict, dict]:
    """One softmax temperature per class descriptor, fitted on the validation split, and the validation
    expected calibration error before and after it (the fit's own data, so 'after' is optimistic)."""
    index = torch.from_numpy(data.split_index["val"])
    spectrum, energy, element, targets = data.batch(index, device)
    with torch.inference_mode():
        outputs = model(spectrum, energy, element)
    temperatures, calibration = {}, {}
    for spec in data.specs:
        if spec.kind != "classification":
            continue
        labels = targets[spec.name].cpu().numpy()
        labelled = labels != IGNORE_INDEX
        if labelled.sum() < MIN_CALIBRATION_SITES:
            calibration[spec.name] = {"temperature": 1.0, "n": int(labelled.sum()), "note": "too few validation sites"}
            temperatures[spec.name] = 1.0
            continue
        logits = outputs[spec.name].cpu().numpy().astype(np.float64)[labelled]
        t = fit_temperature(logits, labels[labelled])
        temperatures[spec.name] = t
        calibration[spec.name] = {"temperature": round(t, 4), "n": int(labelled.sum()),
                                  "val_ece_before": round(reliability(softmax(logits), labels[labelled])["ece"], 4),
                                  "val_ece_after": round(reliability(softmax(logits, t), labels[labelled])["ece"], 4)}
    return temperatures, calibration


def save_checkpoint(path: str | os.PathLike, model: SPT, meta: dict) -> None:
    """Weights + metadata in one file, written atomically."""
    with atomic_path(path) as tmp:
        torch.save({**meta, "state_dict": model.state_dict()}, tmp)


def train_spt(table: dict, group: str, out_path: str | os.PathLike, cfg: dict | None = None,
              targets: list[str] | None = None, device: str = "cpu") -> dict:
    """fit_spt, then save the checkpoint to out_path; returns the training summary."""
    model, meta, summary = fit_spt(table, group, cfg, targets, device)
    save_checkpoint(out_path, model, meta)
    return {**summary, "out_path": str(out_path)}


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[SPT, dict]:
    """Rebuild a trained SPT (eval mode) and its metadata: everything in the checkpoint but the weights."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no SPT checkpoint at {path}")
    checkpoint = load_torch(path, map_location=device, weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not an SPT checkpoint of format {CHECKPOINT_FORMAT}")
    model = SPT(**checkpoint["hparams"]).to(device)
    model.load_state_dict(checkpoint["state_dict"])
    meta = {key: value for key, value in checkpoint.items() if key != "state_dict"}
    return model.eval(), meta

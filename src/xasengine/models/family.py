"""One fit / predict / save / score interface for every model family, so benchmarks and reports treat them alike.

A family is named in config (`benchmark.models`) by a short key. Tree families fit one estimator per descriptor,
as the SPT paper does for its tree baselines; neural families fit one multi-output network per site group, as
the joint SPT is. Every family sees the same features (models.features) and the same training rows, and is
scored with the same metrics (models.metrics) on the same test rows, so numbers are comparable across families.
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from ..atomic import atomic_path
from ..errors import ModelError
from .features import grid_features, training_elements
from .metrics import metrics
from .targets import (TargetSpec, build_target_specs, check_finite_spectra, check_site_table, group_mask,
                      group_targets)

MODEL_FORMAT = "xasengine-family/1"
INFERENCE_BATCH = 1000  # spectra per timed prediction (test spectra repeated up to this many)


@dataclass(frozen=True)
class Family:
    key: str
    label: str  # the name shown in tables and plots
    module: str  # under xasengine.models; provides DEFAULTS and the driver's hooks
    driver: str  # module that fits it: trees (one estimator per descriptor) | neural (one multi-output network)
    stochastic: bool  # True: the seed changes the fit, so benchmark_seeds retrains it per seed


FAMILIES = {f.key: f for f in (
    Family("dt", "DecisionTree", "decision_tree", "trees", False),
    Family("rf", "RandomForest", "random_forest", "trees", True),
    Family("et", "ExtraTrees", "extra_trees", "trees", True),
    Family("xgb", "XGBoost", "xgb", "trees", True),
    Family("ftt", "FT-Transformer", "ft_transformer", "neural", True),
    Family("amformer", "AMFormer", "amformer", "neural", True),
    Family("mlp", "MLP", "mlp", "neural", True),
    Family("spt", "SPT", "spt_family", "spt_family", True),
)}
BASELINES = tuple(key for key in FAMILIES if key != "spt")  # what `benchmark.models` may list


def family_of(name: str) -> Family:
    if name not in FAMILIES:
        raise ModelError(f"unknown model family {name!r}; expected one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def _module(name: str):
    return importlib.import_module(f"{__package__}.{family_of(name).module}")


def _driver(name: str):
    return importlib.import_module(f"{__package__}.{family_of(name).driver}")


def resolve_family_cfg(name: str, cfg: dict | None) -> dict:
    """The family's defaults overlaid with cfg; an unknown key is refused (a typo would train silently)."""
    defaults = _module(name).DEFAULTS
    unknown = sorted(set(cfg or {}) - set(defaults))
    if unknown:
        raise ModelError(f"unknown {name} cfg keys {unknown}; known: {sorted(defaults)}")
    return {**defaults, **(cfg or {})}


@dataclass
class FittedModel:
    """A trained model of any family with what it needs to rebuild its inputs; predictions in physical units."""

    family: str
    group: str
    elements: list[str]  # absorbers seen in training (feature one-hot columns; others cannot be predicted)
    grid_len: int
    specs: list[TargetSpec]
    cfg: dict
    seed: int
    state: Any  # the family's fitted estimators / network
    train_seconds: float
    extra: dict = field(default_factory=dict)  # e.g. the SPT checkpoint's metadata

    @property
    def label(self) -> str:
        return FAMILIES[self.family].label

    @property
    def targets(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def features(self, spectra, elements) -> np.ndarray:
        return grid_features(spectra, elements, self.elements)

    def predict(self, spectra, elements, energy=None) -> dict[str, np.ndarray]:
        """{descriptor: predicted values} for (n, grid) spectra of the model's group; energy only used by the SPT
        (default: the training grid, which is the same relative grid for every site)."""
        spectra, elements = self.check_inputs(spectra, elements)
        if len(spectra) == 0:
            return {spec.name: np.empty(0) for spec in self.specs}
        return _driver(self.family).predict(self, spectra, elements, energy)

    def predict_proba(self, spectra, elements, energy=None) -> dict[str, np.ndarray]:
        """{classification descriptor: (n, len(spec.classes)) class probabilities}, columns in the order of
        spec.classes: the SPT's temperature-scaled softmax, a neural family's softmax, a tree family's vote
        fractions (a class the estimator never saw gets 0)."""
        spectra, elements = self.check_inputs(spectra, elements)
        if len(spectra) == 0:
            return {spec.name: np.empty((0, len(spec.classes))) for spec in self.specs
                    if spec.kind == "classification"}
        return _driver(self.family).predict_proba(self, spectra, elements, energy)

    def check_inputs(self, spectra, elements) -> tuple[np.ndarray, np.ndarray]:
        spectra = np.asarray(spectra, dtype=np.float32)
        if spectra.ndim == 1:
            spectra = spectra[None]
        if spectra.ndim != 2 or spectra.shape[1] != self.grid_len:
            raise ModelError(f"spectra must be (n, {self.grid_len}) on the model's grid, got {spectra.shape}")
        check_finite_spectra(spectra, np.zeros_like(spectra))
        elements = np.asarray(elements).astype(str).reshape(-1)
        if elements.shape != (len(spectra),):
            raise ModelError(f"need one absorbing element per spectrum, got {elements.size} for {len(spectra)}")
        unknown = sorted(str(e) for e in set(elements) - set(self.elements))
        if unknown:
            raise ModelError(f"{self.label} model for group {self.group!r} was trained on {self.elements}, "
                             f"not {unknown}")
        return spectra, elements

    def save(self, path: str | os.PathLike) -> None:
        """One file, written atomically: joblib for the baselines, the SPT's own checkpoint for the SPT."""
        driver = _driver(self.family)
        if hasattr(driver, "save"):
            driver.save(self, path)
            return
        with atomic_path(path) as tmp:
            joblib.dump({"format": MODEL_FORMAT, "model": self}, tmp, compress=3)


def load_model(path: str | os.PathLike) -> FittedModel:
    """A model saved by FittedModel.save (or an SPT checkpoint, *.pt), ready to predict."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no model file at {path}")
    if path.suffix == ".pt":
        return _driver("spt").load(path)
    try:
        bundle = joblib.load(path)
    except Exception as error:
        raise ModelError(f"cannot read model file {path}: {error}") from error
    if not isinstance(bundle, dict) or bundle.get("format") != MODEL_FORMAT:
        raise ModelError(f"{path} is not a model file of format {MODEL_FORMAT}")
    return bundle["model"]


def predicted_cn(path: str | os.PathLike, spectra, elements) -> np.ndarray | None:
    """The CN a saved model reads from spectra, None if it has no CN head: what diffusion shells are asked for."""
    model = load_model(path)
    if "CN" not in model.targets or len(spectra) == 0:
        return None
    return np.asarray(model.predict(np.asarray(spectra), np.asarray(elements))["CN"], dtype=float)


@dataclass
class GroupTable:
    """One site group's rows of a site table, as the baselines see them (training elements only)."""

    features: np.ndarray
    spectra: np.ndarray
    elements: np.ndarray
    split: np.ndarray
    descriptors: dict[str, np.ndarray]
    element_list: list[str]


def group_table(table: dict, group: str) -> GroupTable:
    check_site_table(table)
    rows = group_mask(table["element"], group)
    split = np.asarray(table["split"]).astype(str)[rows]
    elements = np.asarray(table["element"]).astype(str)[rows]
    if not (split == "train").any():
        raise ModelError(f"group {group!r} has no training sites")
    element_list = training_elements(elements[split == "train"])
    seen = np.isin(elements, element_list)  # an absorber absent from training cannot be predicted
    spectra = np.asarray(table["spectrum"], dtype=np.float32)[rows][seen]
    check_finite_spectra(spectra, np.asarray(table["energy"], dtype=np.float32)[rows][seen])
    return GroupTable(grid_features(spectra, elements[seen], element_list), spectra, elements[seen], split[seen],
                      {name: np.asarray(values, dtype=np.float64)[rows][seen]
                       for name, values in table["descriptors"].items()}, element_list)


def fit_family(name: str, table: dict, group: str, cfg: dict | None = None, seed: int = 0,
               targets: list[str] | None = None, n_jobs: int = 1) -> FittedModel:
    """Train one family on the training split of a site group (all its descriptors, or `targets`)."""
    family = family_of(name)
    names = group_targets(group, targets)
    if family.driver == "spt_family":
        return _driver(name).fit(table, group, cfg, seed, list(names))
    cfg = resolve_family_cfg(name, cfg)
    data = group_table(table, group)
    train = data.split == "train"
    specs = build_target_specs(data.descriptors, train, names)
    encoded = {spec.name: spec.encode(data.descriptors[spec.name][train]) for spec in specs}
    started = time.perf_counter()
    state = _driver(name).fit(_module(name), data.features[train], encoded, specs, cfg, int(seed), n_jobs)
    return FittedModel(name, group, data.element_list, data.spectra.shape[1], specs, cfg, int(seed), state,
                       round(time.perf_counter() - started, 3))


def scored_rows(table: dict, model: FittedModel, split: str) -> np.ndarray:
    """Rows of one split a model can be scored on: its site group, absorbers it was trained on."""
    rows = group_mask(table["element"], model.group) & (np.asarray(table["split"]).astype(str) == split)
    return rows & np.isin(np.asarray(table["element"]).astype(str), model.elements)


def score_predictions(model: FittedModel, table: dict, rows: np.ndarray, predictions: dict) -> dict:
    """{descriptor: {kind, f1_weighted/accuracy or r2/mae, n[, n_unseen_class]}} for predictions of `rows`."""
    scores = {}
    for spec in model.specs:
        truth = np.asarray(table["descriptors"][spec.name], dtype=np.float64)[rows]
        scores[spec.name] = {"kind": spec.kind, **metrics(truth, predictions[spec.name], spec.kind)}
        if spec.kind == "classification":
            scores[spec.name]["n_unseen_class"] = spec.unseen_count(truth)
    return scores


def score_model(model: FittedModel, table: dict, split: str = "test") -> dict:
    """Scores per descriptor on one split of the model's site group (same metrics for every family)."""
    check_site_table(table)
    rows = scored_rows(table, model, split)
    predictions = model.predict(np.asarray(table["spectrum"])[rows], np.asarray(table["element"])[rows],
                                np.asarray(table["energy"])[rows])
    return score_predictions(model, table, rows, predictions)


def infer_seconds_per_1000(model: FittedModel, spectra, elements) -> float | None:
    """Wall time of one prediction of 1,000 spectra (the given ones repeated), after one warm-up call."""
    spectra, elements = np.asarray(spectra, dtype=np.float32), np.asarray(elements).astype(str)
    if len(spectra) == 0:
        return None
    repeat = np.resize(np.arange(len(spectra)), INFERENCE_BATCH)
    model.predict(spectra[:8], elements[:8])
    started = time.perf_counter()
    model.predict(spectra[repeat], elements[repeat])
    return round((time.perf_counter() - started) * 1000 / INFERENCE_BATCH, 4)


def metrics_record(model: FittedModel, table: dict, split: str = "test", dataset_hash: str | None = None) -> dict:
    """The metrics JSON every model rule writes (the SPT's shape, plus timing measured in this run)."""
    rows = scored_rows(table, model, split)
    return {"group": model.group, "split": split, "model": model.label, "family": model.family,
            "seed": model.seed, "n_sites": int(rows.sum()), "dataset_hash": dataset_hash,
            "descriptors": score_model(model, table, split), "train_seconds": model.train_seconds,
            "infer_seconds_per_1000": infer_seconds_per_1000(model, np.asarray(table["spectrum"])[rows],
                                                             np.asarray(table["element"])[rows]),
            "cfg": model.cfg}

"""Fits a tree family: one estimator per descriptor on its labelled training sites, as the SPT paper's baselines.

A descriptor with a single class in training (e.g. OS = -2 on nearly every oxide O site) gets a constant
predictor, as the SPT keeps its one-class head; XGBoost cannot fit a one-class problem.
"""

from __future__ import annotations

import numpy as np
from sklearn.dummy import DummyClassifier

from .targets import IGNORE_INDEX, TargetSpec


def labelled_rows(spec: TargetSpec, encoded: np.ndarray) -> np.ndarray:
    return encoded != IGNORE_INDEX if spec.kind == "classification" else np.isfinite(encoded)


def fit(module, features: np.ndarray, encoded: dict, specs: list[TargetSpec], cfg: dict, seed: int,
        n_jobs: int) -> dict:
    estimators = {}
    for spec in specs:
        rows = labelled_rows(spec, encoded[spec.name])
        if spec.kind == "classification" and len(spec.classes) == 1:
            estimator = DummyClassifier(strategy="most_frequent")
        else:
            estimator = module.make_estimator(spec.kind, cfg, seed, n_jobs)
        estimator.fit(features[rows], encoded[spec.name][rows])
        estimators[spec.name] = estimator
    return estimators


def predict(model, spectra: np.ndarray, elements: np.ndarray, energy=None) -> dict[str, np.ndarray]:
    features = model.features(spectra, elements)
    predictions = {}
    for spec in model.specs:
        output = np.asarray(model.state[spec.name].predict(features))
        predictions[spec.name] = spec.decode(output.astype(np.int64) if spec.kind == "classification" else output)
    return predictions


def predict_proba(model, spectra: np.ndarray, elements: np.ndarray, energy=None) -> dict[str, np.ndarray]:
    """Vote fractions placed in the columns of spec.classes (an estimator's classes_ are the encoded indices it
    saw in training, possibly fewer than the spec's)."""
    features = model.features(spectra, elements)
    probabilities = {}
    for spec in model.specs:
        if spec.kind != "classification":
            continue
        estimator = model.state[spec.name]
        full = np.zeros((len(features), len(spec.classes)))
        full[:, np.asarray(estimator.classes_).astype(np.int64)] = estimator.predict_proba(features)
        probabilities[spec.name] = full
    return probabilities

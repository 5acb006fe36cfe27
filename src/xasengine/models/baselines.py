"""Random-forest baseline (one forest per descriptor and site group), scored like the SPT.

Features are the gridded spectrum itself (plus an element one-hot for non-O sites, mirroring the SPT's element
embedding); forests are fitted on the training split only and scored on the test split with the same
`metrics` as the SPT, so the two are compared on identical sites.
"""

from __future__ import annotations

import os

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from ..atomic import atomic_path
from ..errors import ModelError
from .metrics import metrics
from .targets import (GROUP_TARGETS, check_finite_spectra, check_site_table, group_mask,
                                      target_kind)

RF_DEFAULTS = {"n_estimators": 300, "max_depth": None, "min_samples_leaf": 1, "max_features": "sqrt", "seed": 0}


def rf_features(spectra: np.ndarray, elements: np.ndarray, element_list: list[str]) -> np.ndarray:
    """Spectrum values on the grid, followed by a one-hot of the absorbing element (none when one element)."""
    spectra = np.asarray(spectra, dtype=np.float32)
    elements = np.asarray(elements).astype(str)
    if len(element_list) <= 1:
        return spectra
    one_hot = (elements[:, None] == np.asarray(element_list)[None, :]).astype(np.float32)
    return np.hstack([spectra, one_hot])


def fit_random_forest(table: dict, group: str, cfg: dict | None = None, targets: list[str] | None = None,
                      out_path: str | os.PathLike | None = None, n_jobs: int = 1) -> tuple[dict, dict]:
    """Fit one forest per descriptor of the group; return (forests by descriptor, test metrics by descriptor).

    With out_path, the forests are saved (joblib, atomically) together with what is needed to rebuild the
    features: group, element list, grid length and cfg.
    """
    unknown = sorted(set(cfg or {}) - set(RF_DEFAULTS))
    if unknown:
        raise ModelError(f"unknown random-forest cfg keys {unknown}; known: {sorted(RF_DEFAULTS)}")
    cfg = {**RF_DEFAULTS, **(cfg or {})}
    check_site_table(table)
    rows = group_mask(table["element"], group)
    split = np.asarray(table["split"]).astype(str)[rows]
    train, test = split == "train", split == "test"
    if not train.any():
        raise ModelError(f"group {group!r} has no training sites")
    spectra = np.asarray(table["spectrum"], dtype=np.float32)[rows]
    check_finite_spectra(spectra, np.asarray(table["energy"])[rows])
    elements = np.asarray(table["element"]).astype(str)[rows]
    element_list = sorted(str(e) for e in set(elements[train]))
    test &= np.isin(elements, element_list)  # the same test sites the SPT is scored on
    features = rf_features(spectra, elements, element_list)

    forests, scores = {}, {}
    for name in targets or GROUP_TARGETS[group]:
        kind = target_kind(name)
        values = np.asarray(table["descriptors"][name], dtype=np.float64)[rows]
        labelled = np.isfinite(values)
        if not (train & labelled).any():
            raise ModelError(f"descriptor {name!r} has no labelled training sites in group {group!r}")
        Forest = RandomForestClassifier if kind == "classification" else RandomForestRegressor
        forest = Forest(n_estimators=cfg["n_estimators"], max_depth=cfg["max_depth"],
                        min_samples_leaf=cfg["min_samples_leaf"], max_features=cfg["max_features"],
                        random_state=cfg["seed"], n_jobs=n_jobs)
        forest.fit(features[train & labelled], values[train & labelled])
        forests[name] = forest
        predicted = forest.predict(features[test]) if test.any() else np.empty(0)
        scores[name] = {"kind": kind, **metrics(values[test], predicted, kind)}

    if out_path is not None:
        bundle = {"group": group, "elements": element_list, "grid_len": spectra.shape[1], "cfg": cfg,
                  "forests": forests, "metrics": scores}
        with atomic_path(out_path) as tmp:
            joblib.dump(bundle, tmp, compress=3)
    return forests, scores

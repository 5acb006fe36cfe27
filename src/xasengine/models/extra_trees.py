"""Extremely randomised trees (scikit-learn), one ensemble per descriptor: random split thresholds, cheaper
than a random forest and often as good on smooth, correlated inputs such as a gridded spectrum."""

from __future__ import annotations

from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

DEFAULTS = {
    "n_estimators": 300,
    "max_depth": None,
    "min_samples_leaf": 1,
    "max_features": "sqrt",
}


def make_estimator(kind: str, cfg: dict, seed: int, n_jobs: int = 1):
    Trees = ExtraTreesClassifier if kind == "classification" else ExtraTreesRegressor
    return Trees(n_estimators=cfg["n_estimators"], max_depth=cfg["max_depth"],
                 min_samples_leaf=cfg["min_samples_leaf"], max_features=cfg["max_features"], random_state=seed,
                 n_jobs=n_jobs)

"""Random forest (scikit-learn), one forest per descriptor: the baseline the SPT was first compared with."""

from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

DEFAULTS = {
    "n_estimators": 300,
    "max_depth": None,
    "min_samples_leaf": 1,
    "max_features": "sqrt",  # features tried per split: sqrt of ~130 grid points + element columns
}


def make_estimator(kind: str, cfg: dict, seed: int, n_jobs: int = 1):
    Forest = RandomForestClassifier if kind == "classification" else RandomForestRegressor
    return Forest(n_estimators=cfg["n_estimators"], max_depth=cfg["max_depth"],
                  min_samples_leaf=cfg["min_samples_leaf"], max_features=cfg["max_features"], random_state=seed,
                  n_jobs=n_jobs)

"""Gradient-boosted trees (xgboost, the CPU wheel `xgboost-cpu`), one booster per descriptor."""

from __future__ import annotations

from xgboost import XGBClassifier, XGBRegressor

DEFAULTS = {
    "n_estimators": 200,     # boosting rounds
    "max_depth": 4,
    "learning_rate": 0.1,
    "subsample": 0.8,        # rows per round: the seed matters through this and colsample_bytree
    "colsample_bytree": 0.5,
    "min_child_weight": 1.0,
}


def make_estimator(kind: str, cfg: dict, seed: int, n_jobs: int = 1):
    Booster = XGBClassifier if kind == "classification" else XGBRegressor
    return Booster(n_estimators=cfg["n_estimators"], max_depth=cfg["max_depth"], learning_rate=cfg["learning_rate"],
                   subsample=cfg["subsample"], colsample_bytree=cfg["colsample_bytree"],
                   min_child_weight=cfg["min_child_weight"], tree_method="hist", random_state=seed, n_jobs=n_jobs,
                   verbosity=0)

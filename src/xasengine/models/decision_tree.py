"""Decision tree (scikit-learn): the simplest baseline, one tree per descriptor.

It considers every feature at every split, so only ties between equally good splits depend on the random state;
that is fixed (TIE_BREAK_STATE) rather than seeded, making the tree deterministic: `benchmark_seeds` skips it.
"""

from __future__ import annotations

from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

DEFAULTS = {
    "max_depth": None,       # grow until leaves are pure (or min_samples_leaf)
    "min_samples_leaf": 1,
    "criterion_classification": "gini",
}
TIE_BREAK_STATE = 0


def make_estimator(kind: str, cfg: dict, seed: int, n_jobs: int = 1):
    if kind == "classification":
        return DecisionTreeClassifier(max_depth=cfg["max_depth"], min_samples_leaf=cfg["min_samples_leaf"],
                                      criterion=cfg["criterion_classification"], random_state=TIE_BREAK_STATE)
    return DecisionTreeRegressor(max_depth=cfg["max_depth"], min_samples_leaf=cfg["min_samples_leaf"],
                                 random_state=TIE_BREAK_STATE)

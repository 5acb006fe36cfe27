"""The scores every model family is judged by, below models/ so that models and reports share one definition."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score

from ..errors import ModelError

# the headline score of each task (tables, radars, sweeps) and the one shown beside it
MAIN_SCORE = {"classification": "f1_weighted", "regression": "r2"}
SECOND_SCORE = {"classification": "accuracy", "regression": "mae"}


def metrics(y_true, y_pred, kind: str) -> dict:
    """Weighted F1 + accuracy (classification) or R² + MAE (regression) over sites with a finite truth.

    Undefined scores (no labelled site; R² of a single site) are None so the result stays valid JSON.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    labelled = np.isfinite(y_true)
    y_true, y_pred = y_true[labelled], y_pred[labelled]
    n = int(labelled.sum())
    if kind == "classification":
        if n == 0:
            return {"f1_weighted": None, "accuracy": None, "n": 0}
        return {"f1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
                "accuracy": float(accuracy_score(y_true, y_pred)), "n": n}
    if kind == "regression":
        if n == 0:
            return {"r2": None, "mae": None, "n": 0}
        # R² is undefined for a single site or a constant truth (it would divide by ~0)
        defined = n >= 2 and float(np.var(y_true)) > 1e-12
        return {"r2": float(r2_score(y_true, y_pred)) if defined else None,
                "mae": float(mean_absolute_error(y_true, y_pred)), "n": n}
    raise ModelError(f"metric kind must be 'classification' or 'regression', got {kind!r}")

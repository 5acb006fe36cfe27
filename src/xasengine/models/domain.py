"""How typical a spectrum is of what a model was trained on, so predictions for unlike spectra can be doubted.

A measured spectrum can differ from every FEFF spectrum (broader features, a lower white line), and the model
still answers with confident class probabilities. The check: the part of a spectrum that the training spectra's
leading principal components cannot express (the reconstruction residual), ranked against the residuals of
spectra of materials the model never saw (the validation split). Percentile 97 means: less typical than 97 % of
unseen simulated spectra. On the 741-site nonO set of session 4 the measured Mn oxides ranked 96-97 (their
oxidation states were mispredicted) and Ni(OH)2 91 (predicted right); 4 of 94 simulated test spectra passed 95.
"""

from __future__ import annotations

import numpy as np

N_COMPONENTS = 16
ATYPICAL_PERCENTILE = 95.0  # above this rank a prediction is marked atypical
MIN_REFERENCE = 20  # fewer validation spectra than this: rank against the training spectra instead


def fit_domain(train: np.ndarray, val: np.ndarray) -> dict:
    """Principal components of the training spectra and the sorted residuals to rank new spectra against."""
    train = np.asarray(train, dtype=np.float64)
    mean = train.mean(axis=0)
    k = int(min(N_COMPONENTS, max(1, train.shape[0] - 1), train.shape[1]))
    components = np.linalg.svd(train - mean, full_matrices=False)[2][:k]
    domain = {"mean": mean.tolist(), "components": components.tolist()}
    val = np.asarray(val, dtype=np.float64).reshape(-1, train.shape[1])
    reference, name = (val, "val") if len(val) >= MIN_REFERENCE else (train, "train")
    domain["reference_residuals"] = np.sort(residuals(domain, reference)).tolist()
    domain["reference_split"] = name
    return domain


def residuals(domain: dict, spectra: np.ndarray) -> np.ndarray:
    mean, components = np.asarray(domain["mean"]), np.asarray(domain["components"])
    centred = np.asarray(spectra, dtype=np.float64) - mean
    return np.linalg.norm(centred - centred @ components.T @ components, axis=1)


def typicality(domain: dict, spectra: np.ndarray) -> list[dict]:
    """Per spectrum: residual, its percentile among the reference residuals, and whether it is atypical."""
    reference = np.asarray(domain["reference_residuals"])
    values = residuals(domain, spectra)
    ranks = 100.0 * np.searchsorted(reference, values, side="right") / len(reference)
    return [{"residual": round(float(v), 4), "percentile": round(float(p), 1), "atypical": bool(p > ATYPICAL_PERCENTILE)}
            for v, p in zip(values, ranks)]

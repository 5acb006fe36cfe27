"""How typical a spectrum is of what a model was trained on, so predictions for unlike spectra can be doubted.

A measured spectrum can differ from every FEFF spectrum (broader features, a lower white line), and the model
still answers with confident class probabilities. The check: the part of a spectrum that the training spectra's
leading principal components cannot express (the reconstruction residual), ranked against the residuals of
spectra of materials the model never saw (the validation split). Percentile 97 means: less typical than 97 % of
unseen simulated spectra. On the 741-site nonO set of session 4 the measured Mn oxides ranked 96-97 (their
oxidation states were mispredicted) and Ni(OH)2 91 (predicted right); 4 of 94 simulated test spectra passed 95.

The residual sees only the spectrum. The second score sees it the way the model does: the mean distance from a
spectrum's SPT latent vector (what every head reads) to its nearest training latents, standardised per latent
dimension, ranked against the same distance for the validation spectra. A spectrum whose features the model maps
far from anything it learnt from is out of distribution, however ordinary its shape looks to the PCA.
"""

from __future__ import annotations

import numpy as np
import torch

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


LATENT_NEIGHBOURS = 5  # training latents averaged over per spectrum (one neighbour is noisy, many blur the edge)
MAX_LATENT_REFERENCE = 4000  # training latents kept in the checkpoint (float16; ~0.5 MB at 64 dimensions)


def knn_distance(reference: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """Mean Euclidean distance of each query to its k nearest reference rows (itself skipped if exclude_self)."""
    reference = torch.as_tensor(np.asarray(reference, dtype=np.float32))
    out = []
    for start in range(0, len(queries), 1024):
        block = torch.as_tensor(np.asarray(queries[start:start + 1024], dtype=np.float32))
        distances = torch.cdist(block, reference)
        n = min(k + int(exclude_self), reference.shape[0])
        nearest = torch.topk(distances, n, dim=1, largest=False).values[:, int(exclude_self):]
        out.append(nearest.mean(dim=1).numpy())
    return np.concatenate(out) if out else np.empty(0, dtype=np.float32)


def fit_latent_domain(train: np.ndarray, val: np.ndarray, k: int = LATENT_NEIGHBOURS, seed: int = 0) -> dict:
    """Standardised training latents (a seeded subsample if many) and the sorted validation kNN distances.

    Plain tensors and lists only, so the checkpoint still loads with torch's weights_only reader."""
    train = np.asarray(train, dtype=np.float64)
    mean, scale = train.mean(axis=0), train.std(axis=0) + 1e-6
    reference = (train - mean) / scale
    if len(reference) > MAX_LATENT_REFERENCE:
        rows = np.random.default_rng(seed).choice(len(reference), MAX_LATENT_REFERENCE, replace=False)
        reference = reference[np.sort(rows)]
    val = np.asarray(val, dtype=np.float64).reshape(-1, train.shape[1])
    if len(val) >= MIN_REFERENCE:
        distances, name = knn_distance(reference, (val - mean) / scale, k), "val"
    else:
        distances, name = knn_distance(reference, reference, k, exclude_self=True), "train"
    return {"mean": mean.tolist(), "scale": scale.tolist(), "k": int(k),
            "train": torch.from_numpy(reference.astype(np.float16)),
            "reference_distances": np.sort(distances).astype(float).tolist(), "reference_split": name}


def latent_typicality(domain: dict, latents: np.ndarray, ood_percentile: float = ATYPICAL_PERCENTILE) -> list[dict]:
    """Per spectrum: latent kNN distance, its percentile among the reference distances, and the OOD flag."""
    mean, scale = np.asarray(domain["mean"]), np.asarray(domain["scale"])
    queries = (np.asarray(latents, dtype=np.float64) - mean) / scale
    values = knn_distance(domain["train"].float().numpy(), queries, domain["k"])
    reference = np.asarray(domain["reference_distances"])
    ranks = 100.0 * np.searchsorted(reference, values, side="right") / len(reference)
    return [{"distance": round(float(v), 4), "percentile": round(float(p), 1), "ood": bool(p > ood_percentile)}
            for v, p in zip(values, ranks)]

"""The one input every baseline family sees: the gridded spectrum, plus a one-hot of the absorbing element.

The one-hot mirrors the SPT's element embedding (non-O groups mix Co, Mn, Ni, Li absorbers); with a single
training element it would be a constant column, so it is left out.
"""

from __future__ import annotations

import numpy as np


def training_elements(elements: np.ndarray) -> list[str]:
    return sorted(str(e) for e in set(np.asarray(elements).astype(str)))


def grid_features(spectra: np.ndarray, elements: np.ndarray, element_list: list[str]) -> np.ndarray:
    """(n, grid) spectra -> (n, grid [+ n_elements]) float32 features."""
    spectra = np.asarray(spectra, dtype=np.float32)
    elements = np.asarray(elements).astype(str).reshape(-1)
    if len(element_list) <= 1:
        return spectra
    one_hot = (elements[:, None] == np.asarray(element_list)[None, :]).astype(np.float32)
    return np.hstack([spectra, one_hot])

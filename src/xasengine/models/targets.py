"""Site groups, descriptor targets and site-table checks shared by the SPT, its evaluation and the baselines.

Encodings are learnt from the training split only (class lists, regression scalers) so that nothing about
validation or test leaks into the model; they are stored as plain dicts beside the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError

CLASSIFICATION = ("OS", "CN", "CN2", "OCN", "PSGO")
REGRESSION = ("NNRS", "MOOD", "NNOSM")
GROUP_TARGETS = {
    "O": ("OS", "CN", "CN2", "NNRS", "NNOSM", "PSGO"),
    "nonO": ("OS", "CN", "CN2", "NNRS", "PSGO", "OCN", "MOOD"),
}
IGNORE_INDEX = -1  # class index of a missing or never-trained-on value; skipped by the loss
SITE_TABLE_KEYS = ("spectrum", "energy", "element", "structure_id", "split", "descriptors")


def check_site_table(table: dict) -> None:
    """Fail early, naming the problem, if a site table does not follow the shard reader's contract."""
    missing = [key for key in SITE_TABLE_KEYS if key not in table]
    if missing:
        raise ModelError(f"site table lacks {missing}")
    spectrum, energy = np.asarray(table["spectrum"]), np.asarray(table["energy"])
    if spectrum.ndim != 2 or energy.shape != spectrum.shape:
        raise ModelError(f"spectrum {spectrum.shape} and energy {energy.shape} must be equal (sites, grid) arrays")
    n_sites = spectrum.shape[0]
    columns = {key: table[key] for key in ("element", "structure_id", "split")}
    columns.update({f"descriptors[{name!r}]": values for name, values in table["descriptors"].items()})
    wrong = [key for key, values in columns.items() if np.shape(values) != (n_sites,)]
    if wrong:
        raise ModelError(f"site table columns {wrong} do not have one entry per site ({n_sites})")


def check_finite_spectra(spectrum: np.ndarray, energy: np.ndarray) -> None:
    """Refuse NaN/inf spectra, naming how many and the first row, so the failed site can be found."""
    bad = ~(np.isfinite(spectrum).all(axis=1) & np.isfinite(energy).all(axis=1))
    if bad.any():
        raise ModelError(f"{int(bad.sum())} spectra contain NaN or infinite values (first: row {int(np.argmax(bad))}); "
                         "leave failed sites out")


def group_of(element: str) -> str:
    """The site group of one absorbing element: oxygen sites have their own descriptors."""
    return "O" if str(element) == "O" else "nonO"


def group_mask(elements: np.ndarray, group: str) -> np.ndarray:
    """Rows of a site table that belong to a site group ('O' sites or all other absorbers)."""
    if group not in GROUP_TARGETS:
        raise ModelError(f"unknown site group {group!r}; expected one of {sorted(GROUP_TARGETS)}")
    is_oxygen = np.asarray(elements).astype(str) == "O"
    return is_oxygen if group == "O" else ~is_oxygen


def group_targets(group: str, targets=None) -> tuple[str, ...]:
    """The descriptors a model of the group learns: all of the group's, or the named ones if they belong to it."""
    if group not in GROUP_TARGETS:
        raise ModelError(f"unknown site group {group!r}; expected one of {sorted(GROUP_TARGETS)}")
    names = tuple(targets) if targets else GROUP_TARGETS[group]
    foreign = sorted(set(names) - set(GROUP_TARGETS[group]))
    if foreign:
        raise ModelError(f"descriptors {foreign} are not defined for group {group!r} ({GROUP_TARGETS[group]})")
    return names


def target_kind(name: str) -> str:
    if name in CLASSIFICATION:
        return "classification"
    if name in REGRESSION:
        return "regression"
    raise ModelError(f"unknown descriptor {name!r}; expected one of {CLASSIFICATION + REGRESSION}")


@dataclass(frozen=True)
class TargetSpec:
    """How one descriptor maps to model outputs: class values for classification, a scaler for regression."""

    name: str
    kind: str
    classes: tuple[float, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @property
    def n_outputs(self) -> int:
        """Head size in the convention of SPT: number of classes, 0 for a scalar regression output."""
        return len(self.classes) if self.kind == "classification" else 0

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Raw descriptor values -> class indices (int64, IGNORE_INDEX if NaN/unseen) or standardised floats."""
        values = np.asarray(values, dtype=np.float64)
        if self.kind == "regression":
            return ((values - self.mean) / self.std).astype(np.float32)
        index = np.full(values.shape, IGNORE_INDEX, dtype=np.int64)
        known = np.isin(values, self.classes)
        index[known] = np.searchsorted(self.classes, values[known])
        return index

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """Class indices -> descriptor values, or standardised outputs -> physical units."""
        outputs = np.asarray(outputs)
        if self.kind == "regression":
            return outputs.astype(np.float64) * self.std + self.mean
        return np.asarray(self.classes, dtype=np.float64)[outputs]

    def unseen_count(self, values: np.ndarray) -> int:
        """Labelled values this spec cannot represent (a class absent from training)."""
        if self.kind == "regression":
            return 0
        values = np.asarray(values, dtype=np.float64)
        return int(np.sum(np.isfinite(values) & ~np.isin(values, self.classes)))

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes), "mean": self.mean,
                "std": self.std}

    @classmethod
    def from_dict(cls, data: dict) -> TargetSpec:
        return cls(data["name"], data["kind"], tuple(float(c) for c in data["classes"]), float(data["mean"]),
                   float(data["std"]))


def build_target_specs(descriptors: dict[str, np.ndarray], train_rows: np.ndarray,
                       names: list[str] | tuple[str, ...]) -> list[TargetSpec]:
    """Specs for the named descriptors, fitted on the training rows (a boolean mask or index array)."""
    specs = []
    for name in names:
        kind = target_kind(name)
        if name not in descriptors:
            raise ModelError(f"site table has no descriptor {name!r}")
        values = np.asarray(descriptors[name], dtype=np.float64)[train_rows]
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ModelError(f"descriptor {name!r} has no labelled training sites")
        if kind == "classification":
            # A descriptor constant in training (e.g. OS = -2 on nearly every oxide O site) keeps its one-class
            # head: it predicts that constant, and test sites with another value show up as errors.
            specs.append(TargetSpec(name, kind, classes=tuple(float(v) for v in np.unique(values))))
        else:
            std = float(values.std())
            specs.append(TargetSpec(name, kind, mean=float(values.mean()), std=std if std > 0 else 1.0))
    return specs

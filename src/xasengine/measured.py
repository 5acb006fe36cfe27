"""Beamline files (XDI, Athena projects, plain columns) read into energy-calibrated, normalised scans.

Measured edges carry monochromator offsets of several eV between beamtimes, larger than the chemical shifts
between oxidation states, so the absolute energy must come from the reference foil recorded behind the sample.
Calibration follows Athena: each scan's reference channel is aligned to one chosen reference (least squares on
the derivatives, which is what Athena's "align" does), and that one reference is calibrated to the element's
tabulated edge energy at its *first* inflection point. The largest dmu/dE of a foil lies on the main rise a few
eV higher and moves between scans, so it is never used for calibration. Reading and pre-edge normalisation use
xraylarch, the field's implementation, so numbers agree with Athena/Larch users' own.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import SpectrumError
from .readers import UnreadableFile, reading

MODES = ("auto", "transmission", "fluorescence", "mu")
ALIGN_WINDOW_EV = (-8.0, 5.0)  # around the master's first inflection: the edge onset every foil shares
ALIGN_MAX_SHIFT_EV = 1.5  # refinement range around the shift of the two first inflections
INFLECTION_SMOOTH_EV = 0.5  # Gaussian smoothing of the foil derivative before looking for its first peak
INFLECTION_FRACTION = 0.4  # the first derivative peak above this fraction of the largest is the first inflection
FLAT_FOIL_STEP = 0.02  # a reference channel whose edge step (absorbance units) is below this is no foil


@dataclass
class Scan:
    """One measured spectrum; `energy` is the file's own axis plus every shift applied so far."""

    source: str
    element: str | None
    edge: str
    energy: np.ndarray
    mu: np.ndarray
    mode: str
    reference: np.ndarray | None = None  # mu of the reference foil on `energy`, when the file has one
    header: dict = field(default_factory=dict)
    energy_shift: float = 0.0
    calibration: str = "none"  # none | reference | user-shift | athena-shift (+ reference)


def _larch():
    """xraylarch, imported late (4 s) and with its start-up chatter silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from larch.io import read_ascii, read_athena, read_xdi
        from larch.xafs import pre_edge
    return read_xdi, read_athena, read_ascii, pre_edge


def tabulated_edge(element: str, edge: str = "K") -> float:
    """Edge energy of the pure element (eV), from xraydb's tables (Bearden & Burr, as Athena uses)."""
    import xraydb

    try:
        return float(xraydb.xray_edge(element, edge).energy)
    except Exception as exc:  # xraydb raises bare errors for unknown symbols
        raise SpectrumError(f"no tabulated {element} {edge} edge ({exc})") from exc


def _channels(group) -> dict[str, np.ndarray]:
    labels = [str(lab).lower() for lab in getattr(group, "array_labels", [])]
    return {lab: np.asarray(getattr(group, lab), dtype=float) for lab in labels if hasattr(group, lab)}


def _log_ratio(numerator: np.ndarray, denominator: np.ndarray, what: str, source: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = numerator / denominator
    if not np.all(ratio > 0):
        raise SpectrumError(f"{source}: {what} has non-positive intensity ratios, so mu = ln(...) is undefined")
    return np.log(ratio)


def _mu_from_channels(ch: dict[str, np.ndarray], mode: str, source: str) -> tuple[np.ndarray, str]:
    """mu and the mode it was computed in: transmission ln(I0/It), fluorescence If/I0, or a given mu column."""
    fluor = next((ch[k] for k in ("ifluor", "if", "ifl") if k in ch), None)
    if mode == "auto":
        if "mutrans" in ch or ("i0" in ch and "itrans" in ch):
            mode = "transmission"
        elif "mufluor" in ch or ("i0" in ch and fluor is not None):
            mode = "fluorescence"
        else:
            mode = "mu"
    if mode == "transmission":
        if "i0" in ch and "itrans" in ch:
            return _log_ratio(ch["i0"], ch["itrans"], "ln(i0/itrans)", source), mode
        if "mutrans" in ch:
            return ch["mutrans"], mode
        raise SpectrumError(f"{source}: transmission needs i0 and itrans columns (have {sorted(ch)})")
    if mode == "fluorescence":
        if "i0" in ch and fluor is not None:
            if not np.all(ch["i0"] > 0):
                raise SpectrumError(f"{source}: i0 has non-positive values, so ifluor/i0 is undefined")
            return fluor / ch["i0"], mode
        if "mufluor" in ch:
            return ch["mufluor"], mode
        raise SpectrumError(f"{source}: fluorescence needs i0 and ifluor columns (have {sorted(ch)})")
    for key in ("mu", "xmu", "norm", "mutrans", "mufluor"):
        if key in ch:
            return ch[key], "mu"
    others = [k for k in ch if k not in ("energy", "e", "ev")]
    if not others:
        raise SpectrumError(f"{source}: no absorption column besides the energy")
    return ch[others[0]], "mu"


def _reference_channel(ch: dict[str, np.ndarray], source: str) -> np.ndarray | None:
    """The foil's mu = ln(It/Iref) when the file has a reference channel."""
    if "itrans" in ch and "irefer" in ch:
        return _log_ratio(ch["itrans"], ch["irefer"], "reference ln(itrans/irefer)", source)
    if "murefer" in ch:
        return ch["murefer"]
    return None


def _foil_in_spite_of_header(energy, ref, element, edge) -> bool:
    """XDI headers sometimes say `Sample.reference: none` over a channel that clearly holds the element's foil
    (the shared Ni scans: a 2.3 absorbance-unit Ni edge); the data decide, and the scan's header records it."""
    if ref is None or not element:
        return False
    near = tabulated_edge(element, edge)
    if foil_edge_step(energy, ref, near) < 10 * FLAT_FOIL_STEP:
        return False
    try:
        return abs(first_inflection(energy, ref, near) - near) < 5.0
    except SpectrumError:
        return False


def _checked(scan: Scan) -> Scan:
    e, mu = scan.energy, scan.mu
    if e.ndim != 1 or e.shape != mu.shape or e.size < 10:
        raise SpectrumError(f"{scan.source}: need an energy column and mu of equal length (≥ 10 points)")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(mu))):
        raise SpectrumError(f"{scan.source}: energy or mu contains NaN or infinite values")
    order = np.argsort(e, kind="stable")
    keep = np.concatenate([[True], np.diff(e[order]) > 0])
    idx = order[keep]
    if idx.size < 10:
        raise SpectrumError(f"{scan.source}: fewer than 10 distinct energies")
    ref = None if scan.reference is None else scan.reference[idx]
    return replace(scan, energy=e[idx], mu=mu[idx], reference=ref)


def _energy_column(ch: dict[str, np.ndarray], source: str) -> np.ndarray:
    for key in ("energy", "e", "ev", "enot"):
        if key in ch:
            return ch[key]
    raise SpectrumError(f"{source}: no energy column (columns: {', '.join(sorted(ch)) or 'none'})")


def _read_xdi(path: Path, mode: str) -> list[Scan]:
    read_xdi = _larch()[0]
    with reading(path):  # larch's XDI reader raises generic errors on malformed files
        group = read_xdi(str(path))
    ch = _channels(group)
    attrs = getattr(group, "attrs", {}) or {}
    element = attrs.get("element", {}).get("symbol")
    edge = attrs.get("element", {}).get("edge") or "K"
    ch.setdefault("energy", np.asarray(getattr(group, "energy", []), dtype=float))
    energy = _energy_column(ch, str(path))
    mu, used = _mu_from_channels(ch, mode, str(path))
    ref = _reference_channel(ch, str(path))
    header = {f"{sec}.{key}": val for sec, items in attrs.items() if isinstance(items, dict) for key, val in items.items()}
    said = str(attrs.get("sample", {}).get("reference", "")).strip().lower()
    if ref is not None and said in ("", "none"):
        if _foil_in_spite_of_header(energy, ref, element, edge):
            header["calibration.note"] = f"Sample.reference says {said or 'nothing'}, but the irefer channel holds a {element} edge"
        else:
            ref = None
    return [_checked(Scan(str(path), element, edge, energy, mu, used, ref, header))]


def _read_athena(path: Path, group_name: str | None) -> list[Scan]:
    read_athena = _larch()[1]
    with reading(path):
        project = read_athena(str(path), do_preedge=False)
    groups = dict(project.groups)
    if group_name is not None:
        if group_name not in groups:
            raise SpectrumError(f"{path}: no group {group_name!r} (groups: {', '.join(groups)})")
        groups = {group_name: groups[group_name]}
    scans = []
    for name, group in groups.items():
        bkg = getattr(getattr(group, "athena_params", None), "bkg", None)
        shift = float(getattr(bkg, "eshift", None) or getattr(group, "energy_shift", 0.0) or 0.0)
        energy = np.asarray(group.energy, dtype=float)
        mu = np.asarray(group.mu, dtype=float)
        scan = Scan(f"{path}:{name}", getattr(group, "atsym", None), getattr(group, "edge", None) or "K",
                    energy + shift, mu, "mu", None, {"athena.group": name}, shift,
                    "athena-shift" if shift else "none")
        scans.append(_checked(scan))
    if not scans:
        raise SpectrumError(f"{path}: Athena project holds no groups")
    return scans


def _read_columns(path: Path, mode: str) -> list[Scan]:
    read_ascii = _larch()[2]
    with reading(path):
        group = read_ascii(str(path))
    data = np.asarray(getattr(group, "data", np.empty((0, 0))), dtype=float)
    if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] < 10:
        raise SpectrumError(f"{path}: need at least two numeric columns (energy, mu) of ≥ 10 rows")
    ch = _channels(group)
    if not any(k in ch for k in ("energy", "e", "ev", "enot")):  # unlabelled columns: energy first, then mu
        ch = {"energy": data[0], "mu": data[1]}
    energy = _energy_column(ch, str(path))
    mu, used = _mu_from_channels(ch, mode, str(path))
    return [_checked(Scan(str(path), None, "K", energy, mu, used, _reference_channel(ch, str(path)), {}))]


def read_scans(path: str | Path, mode: str = "auto", group: str | None = None) -> list[Scan]:
    """Every scan of a file: one for XDI and column files, every group (or the named one) of an Athena .prj."""
    if mode not in MODES:
        raise SpectrumError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    path = Path(path)
    if not path.is_file():
        raise SpectrumError(f"{path}: spectrum file not found")
    suffix = path.suffix.lower()
    if suffix == ".prj":
        return _read_athena(path, group)
    with reading(path), open(path, "rb") as fh:
        head = fh.read(4096)
    if b"\x00" in head or not head.strip():
        raise UnreadableFile(path, "binary data where text was expected" if head.strip() else "no data")
    if head.lstrip().startswith(b"# XDI"):
        return _read_xdi(path, mode)
    return _read_columns(path, mode)


def _smoothed_derivative(energy: np.ndarray, mu: np.ndarray, step: float = 0.05, smooth_ev: float = 0.0):
    fine = np.arange(energy[0], energy[-1], step)
    y = np.interp(fine, energy, mu)
    if smooth_ev > 0:
        width = max(1, int(round(smooth_ev / step)))
        kernel = np.exp(-0.5 * (np.arange(-4 * width, 4 * width + 1) / width) ** 2)
        y = np.convolve(np.pad(y, 4 * width, mode="edge"), kernel / kernel.sum(), mode="valid")
    return fine, np.gradient(y, fine)


def first_inflection(energy: np.ndarray, mu: np.ndarray, near: float, source: str = "reference") -> float:
    """The first peak of dmu/dE (above a fraction of the largest) within ±25 eV of `near`: a foil's E0."""
    fine, deriv = _smoothed_derivative(energy, mu, smooth_ev=INFLECTION_SMOOTH_EV)
    window = (fine > near - 25) & (fine < near + 25)
    if window.sum() < 20:
        raise SpectrumError(f"{source}: the reference channel does not cover the edge at {near:.1f} eV")
    f, d = fine[window], deriv[window]
    threshold = INFLECTION_FRACTION * d.max()
    peaks = np.flatnonzero((d[1:-1] > threshold) & (d[1:-1] >= d[:-2]) & (d[1:-1] >= d[2:])) + 1
    if not peaks.size or d.max() <= 0:
        raise SpectrumError(f"{source}: the reference channel shows no absorption edge near {near:.1f} eV")
    i = int(peaks[0])
    y0, y1, y2 = d[i - 1 : i + 2]
    denom = y0 - 2 * y1 + y2
    offset = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
    return float(f[i] + np.clip(offset, -1, 1) * (f[1] - f[0]))


def foil_edge_step(energy: np.ndarray, ref: np.ndarray, near: float) -> float:
    """Rise of the foil's absorbance over its edge: highest value up to 15 eV above minus the pre-edge median.

    Not the usual post-edge mean: reference channels of powder filters dip right after the white line."""
    below = ref[(energy > near - 30) & (energy < near - 10)]
    rise = ref[(energy > near - 5) & (energy < near + 15)]
    if not below.size or not rise.size:
        return 0.0
    return float(rise.max() - np.median(below))


def align_shift(master_e: np.ndarray, master_ref: np.ndarray, energy: np.ndarray, ref: np.ndarray,
                near: float) -> float:
    """Energy shift (eV) that best overlays this reference's derivative on the master's (Athena's align).

    Coarse: the difference of the two first inflections; then refined by the best overlap of the derivatives
    over the edge onset only. Foil channels recorded behind different samples differ above the edge (their
    white lines and slopes do), so a wide window aligns those differences instead of the edge (seen on the
    shared Mn scans: shifts up to 1.4 eV with a -20..+40 eV window, 0.2 eV with this one)."""
    m_infl = first_inflection(master_e, master_ref, near)
    coarse = m_infl - first_inflection(energy, ref, near)
    lo, hi = m_infl + ALIGN_WINDOW_EV[0], m_infl + ALIGN_WINDOW_EV[1]
    mf, md = _smoothed_derivative(master_e, master_ref, step=0.05, smooth_ev=INFLECTION_SMOOTH_EV)
    sf, sd = _smoothed_derivative(energy, ref, step=0.05, smooth_ev=INFLECTION_SMOOTH_EV)
    keep = (mf > lo) & (mf < hi)
    target = md[keep] / np.linalg.norm(md[keep])
    shifts = coarse + np.arange(-ALIGN_MAX_SHIFT_EV, ALIGN_MAX_SHIFT_EV + 1e-9, 0.05)
    scores = []
    for s in shifts:  # a scan at E - s matches the master at E
        moved = np.interp(mf[keep] - s, sf, sd, left=np.nan, right=np.nan)
        if np.isnan(moved).any():
            scores.append(-np.inf)
            continue
        scores.append(float(moved @ target) / (np.linalg.norm(moved) or 1.0))
    scores = np.asarray(scores)
    i = int(np.argmax(scores))
    if not np.isfinite(scores[i]):
        raise SpectrumError("reference channels do not overlap around the edge, so they cannot be aligned")
    if 0 < i < len(shifts) - 1 and np.all(np.isfinite(scores[i - 1 : i + 2])):
        y0, y1, y2 = scores[i - 1 : i + 2]
        denom = y0 - 2 * y1 + y2
        return float(shifts[i] + (0.5 * (y0 - y2) / denom if denom else 0.0) * 0.05)
    return float(shifts[i])


def check_foil(scan: Scan) -> None:
    """A reference channel that is there but shows no edge cannot calibrate anything: say so, per scan."""
    if scan.reference is None or not scan.element:
        return
    step = foil_edge_step(scan.energy, scan.reference, tabulated_edge(scan.element, scan.edge))
    if step < FLAT_FOIL_STEP:
        raise SpectrumError(f"{scan.source}: the reference foil channel is flat (edge step {step:.3f}); "
                            "calibrate with --e0-shift instead")


def calibrate(scans: list[Scan], e0_shift: float | None = None, master: str | None = None) -> list[Scan]:
    """Energy-calibrated copies of the scans (see the module docstring); per element one master reference.

    Scans without a reference foil get the user's `e0_shift` (eV) if given, else stay uncalibrated (and say so).
    """
    out = list(scans)
    by_element: dict[str, list[int]] = {}
    for i, scan in enumerate(scans):
        if scan.reference is not None and scan.element:
            by_element.setdefault(scan.element, []).append(i)
    for element, idx in by_element.items():
        edge_e = tabulated_edge(element, scans[idx[0]].edge)
        for i in idx:
            check_foil(scans[i])
        chosen = next((i for i in idx if master and master in scans[i].source), idx[0])
        m = scans[chosen]
        inflection = first_inflection(m.energy, m.reference, edge_e, m.source)
        for i in idx:
            s = scans[i]
            rel = 0.0 if i == chosen else align_shift(m.energy, m.reference, s.energy, s.reference, edge_e)
            # this scan's foil at E_s + rel overlays the master's at E_s; the master's inflection goes to edge_e
            total = (edge_e - inflection) + rel
            how = "reference" if s.calibration == "none" else f"{s.calibration}+reference"
            out[i] = replace(s, energy=s.energy + total, energy_shift=s.energy_shift + total, calibration=how,
                             header={**s.header, "calibration.master": m.source,
                                     "calibration.master_inflection_eV": round(inflection, 3),
                                     "calibration.tabulated_edge_eV": edge_e,
                                     "calibration.align_shift_eV": round(rel, 3)})
    if e0_shift is not None:
        for i, scan in enumerate(out):
            if scan.reference is None:
                out[i] = replace(scan, energy=scan.energy + e0_shift, energy_shift=scan.energy_shift + e0_shift,
                                 calibration="user-shift" if scan.calibration == "none"
                                 else f"{scan.calibration}+user-shift")
    return out


def normalise(scan: Scan, e0: float, pre_edge_window, post_edge_window) -> dict:
    """Larch's pre_edge with the engine's windows (line below, constant above, like the simulated spectra).

    Returns the normalised mu and the exact parameters Larch used, so a reader can redo it in Athena."""
    pre_edge = _larch()[3]
    from larch import Group

    group = Group(energy=scan.energy, mu=scan.mu)
    pars = dict(e0=float(e0), pre1=float(pre_edge_window[0]), pre2=float(pre_edge_window[1]),
                norm1=float(post_edge_window[0]), norm2=float(post_edge_window[1]), nnorm=0, npre=1)
    if scan.energy[0] > e0 + pars["pre1"]:  # short scans: as much pre-edge as the file has, down to 5 eV
        pars["pre1"] = float(scan.energy[0] - e0)
        if pars["pre2"] - pars["pre1"] < 5:
            raise SpectrumError(f"{scan.source}: too little pre-edge below E0 ({scan.energy[0] - e0:+.1f} eV)")
    if scan.energy[-1] < e0 + pars["norm2"]:
        pars["norm2"] = float(scan.energy[-1] - e0)
        if pars["norm2"] - pars["norm1"] < 5:
            raise SpectrumError(f"{scan.source}: too little post-edge above E0 ({scan.energy[-1] - e0:+.1f} eV)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre_edge(group, **pars)
    step = float(group.edge_step)
    if not step > 0:
        raise SpectrumError(f"{scan.source}: edge step is not positive ({step:.3g}); is this an absorption edge?")
    return {"norm": np.asarray(group.norm, dtype=float), "edge_step": step, "larch_pre_edge": pars}

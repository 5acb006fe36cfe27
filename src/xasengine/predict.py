"""`xasengine predict`: descriptors (with class probabilities) for measured or simulated spectra.

Measured spectra are read with xraylarch (XDI, Athena projects, columns), energy-calibrated together on their
reference foils (xasengine.measured), normalised with Larch's pre_edge over the training data's windows and put
on the model's grid relative to E0 (max dmu/dE, as for the FEFF spectra); shards are already gridded.
Every prediction says how its energy axis was calibrated, so an uncalibrated one can be doubted."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from .config import load_config
from .errors import PredictError, XasEngineError
from .models.targets import group_of
from .models.domain import ATYPICAL_PERCENTILE, latent_typicality, typicality
from .models.edge_fusion import fuse, map_edge, measured_edge
from .models.edge_ladder import SHIPPED_GUARDS, Guards, read_ladder
from .measured import Scan, calibrate, check_foil, normalise, read_scans, tabulated_edge
from .spectra import edge_grid, find_e0, to_grid

SPECTRUM_SUFFIXES = {".xdi", ".dat", ".txt", ".csv", ".xmu", ".nor"}
SMOOTH_MEASURED_EV = 1.0  # light smoothing before locating E0 in noisy measured data
EDGE_MAP_FILE = "edge_map.json"  # beside the checkpoints: the measured-to-FEFF edge map (rule edge_map)
# How a calibrated measured scan's OS is read (benchmarks/README.md, "The edge ladder"): the edge on FEFF's ladder
# of states (models.edge_ladder), the SPT's shape times the edge (models.edge_fusion), or the SPT's shape alone.
OS_READINGS = ("ladder", "fusion", "shape")


def load_models(model_path: str) -> dict:
    """A checkpoint file, or a folder with spt-joint-nonO.pt / spt-joint-O.pt; keyed by site group."""
    from .train import load_checkpoint

    path = Path(model_path)
    files = [path] if path.is_file() else sorted(path.glob("spt-joint-*.pt")) if path.is_dir() else []
    if not files:
        raise PredictError(f"no SPT checkpoint at {model_path} (give a .pt file or a folder of spt-joint-*.pt)")
    models = {}
    for file in files:
        try:
            model, meta = load_checkpoint(file)
        except XasEngineError as exc:
            raise PredictError(str(exc)) from exc
        models[meta["group"]] = (model, meta, file)
    return models


def load_edge_map(model_path: str, explicit: str | None = None, required: bool = True) -> dict | None:
    """The edge map of the ladder and fusion readings: `explicit`, else edge_map.json beside the checkpoints.
    A missing one is an error when given or `required`; otherwise None (the records then say why)."""
    from .readers import read_json

    path = Path(explicit) if explicit else (Path(model_path) if Path(model_path).is_dir() else
                                            Path(model_path).parent) / EDGE_MAP_FILE
    if not path.is_file():
        if not (required or explicit):
            return None
        raise PredictError(f"no edge map at {path} (built by `snakemake results/models/edge_map.json`, or give "
                           "--edge-map; --os-reading shape needs none)")
    try:
        doc = read_json(path)
        return {"stats": doc["stats"], "map": doc["map"], "standards": doc.get("standards", []), "path": str(path)}
    except (XasEngineError, KeyError, TypeError) as exc:
        raise PredictError(f"{path}: unreadable edge map ({exc})") from exc


def _unreadable_edge(processing: dict, edge_map: dict | None) -> str:
    """Why a scan's edge cannot inform its OS ('' when it can)."""
    if edge_map is None:
        return "no edge map (none beside the model and no --edge-map, or too few measured standards to fit one)"
    if processing["calibration"] == "none":
        return "energy axis not calibrated (no reference foil, no --e0-shift)"
    return ""


def _replace_os(record: dict, key: str, classes, probabilities: np.ndarray, extra: dict) -> None:
    """Put a reading's OS probabilities in the record, keeping the shape-only ones under record[key]."""
    entry = record["descriptors"]["OS"]
    record[key] = {"applied": True, **extra, "shape_probabilities": dict(entry["probabilities"]),
                   "shape_value": entry["value"]}
    entry["probabilities"] = {f"{c:g}": round(float(p), 4) for c, p in zip(classes, probabilities)}
    entry["value"] = float(np.asarray(classes, float)[int(np.argmax(probabilities))])


def _shape_probabilities(entry: dict, classes) -> np.ndarray:
    """The SPT's OS probabilities as a vector in `classes` order, the input of every edge reading."""
    return np.array([entry["probabilities"][f"{c:g}"] for c in classes])


def apply_edge_ladder(record: dict, edge_map: dict | None, classes, standards: list[dict] | None = None,
                      guards: Guards = SHIPPED_GUARDS) -> None:
    """Replace a calibrated measured scan's OS probabilities by the edge-ladder reading (models.edge_ladder);
    `standards`: those allowed to inform it (default: every standard of the map). Simulated spectra are left
    alone: the SPT reads them on their own scale."""
    processing, entry = record.get("processing"), record["descriptors"].get("OS")
    if processing is None or entry is None or "probabilities" not in entry:
        return
    why = _unreadable_edge(processing, edge_map)
    if why:
        record["edge_ladder"] = {"applied": False, "why": why}
        return
    shape = _shape_probabilities(entry, classes)
    p, how = read_ladder(shape, classes, record["element"], processing["edge_above_foil_eV"],
                         processing["e0_minus_tabulated_edge_eV"],
                         edge_map.get("standards", []) if standards is None else standards, edge_map["stats"], guards)
    _replace_os(record, "edge_ladder", classes, p, {"how": how, "edge_above_foil_eV": processing["edge_above_foil_eV"],
                                                    "e0_above_foil_eV": processing["e0_minus_tabulated_edge_eV"]})


def apply_edge_fusion(record: dict, stats: dict, edge_map: dict | None, classes) -> None:
    """Replace the record's OS probabilities by shape x edge ones (kept: the shape-only ones) when the scan is
    energy-calibrated and its element has simulated edges; otherwise say why not. Measured scans only: a
    simulated spectrum's edge is already on FEFF's scale and its shape posterior is the model's own."""
    processing, entry = record.get("processing"), record["descriptors"].get("OS")
    if processing is None or entry is None or "probabilities" not in entry:
        return
    why, fused = _unreadable_edge(processing, edge_map), None
    if not why:
        mapped = map_edge(edge_map, record["element"], processing["edge_above_foil_eV"])
        shape = _shape_probabilities(entry, classes)
        fused = fuse(shape, classes, record["element"], mapped, stats)
        why = "" if fused is not None else f"no simulated {record['element']} edges to compare with"
    if fused is None:
        record["edge_fusion"] = {"applied": False, "why": why}
        return
    _replace_os(record, "edge_fusion", classes, fused, {"edge_above_foil_eV": processing["edge_above_foil_eV"],
                                                         "edge_on_feff_scale_eV": round(float(mapped), 3)})


def apply_os_reading(record: dict, reading: str, edge_map: dict | None, classes) -> None:
    """The chosen OS reading of a measured scan (OS_READINGS); the record says which."""
    if record.get("processing") is None:
        return
    record["os_reading"] = reading
    if reading == "ladder":
        apply_edge_ladder(record, edge_map, classes)
    elif reading == "fusion":
        apply_edge_fusion(record, (edge_map or {}).get("stats", {}), (edge_map or {}).get("map"), classes)


def _is_prose(path: Path) -> bool:
    """Folder mode passes over text such as a LICENSE.txt (first data line not numbers), saying so; binary or
    empty files are kept, so they fail as unreadable instead of vanishing."""
    try:
        with open(path, errors="strict") as fh:
            for line in fh:
                if line.strip() and not line.lstrip().startswith("#"):
                    [float(x) for x in line.replace(",", " ").split()]
                    return False
    except (UnicodeDecodeError, OSError):  # before ValueError, of which UnicodeDecodeError is a kind
        return False
    except ValueError:
        return True
    return False


def _expand(inputs: list[str]) -> list[Path]:
    """Every input file named or found in a folder; a named file that is missing is kept and fails on its own."""
    paths = []
    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            paths.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in SPECTRUM_SUFFIXES | {".h5"})
        prose = [p for p in found if p.suffix.lower() != ".h5" and _is_prose(p)]
        for p in prose:
            print(f"xasengine: skipped {p}: text without numeric columns, not a spectrum", file=sys.stderr)
        if len(found) == len(prose):
            raise PredictError(f"folder {path} holds no spectrum files ({', '.join(sorted(SPECTRUM_SUFFIXES))}, .h5)")
        paths.extend(p for p in found if p not in prose)
    return paths


def shard_items(path: Path) -> list[dict]:
    """The usable sites of an HDF5 shard, already on the training grid."""
    from .shards import read_shards

    table = read_shards([path], only_ok=True)
    if not len(table["element"]):
        raise PredictError(f"{path}: shard holds no usable spectra")
    return [{"source": f"{path}:{sid}#{idx}", "element": el, "edge": ed, "spectrum": sp, "energy": en, "e0": e0}
            for sid, idx, el, ed, sp, en, e0 in zip(table["structure_id"], table["site_index"], table["element"],
                                                    table["edge"], table["spectrum"], table["energy"], table["e0"])]


def read_measured_file(path: Path, args) -> list[Scan]:
    """The scans of one beamline file, with the element/edge the user gave overriding the header's."""
    if not path.exists():
        raise PredictError(f"input not found: {path}")
    scans = read_scans(path, mode=getattr(args, "mode", "auto"), group=getattr(args, "athena_group", None))
    out = []
    for scan in scans:
        element = args.element or scan.element
        if not element:
            raise PredictError(f"{scan.source}: absorbing element unknown; pass --element (no Element.symbol in "
                               "the header)")
        scan.element, scan.edge = element, args.edge or scan.edge or "K"
        check_foil(scan)
        out.append(scan)
    return out


def scan_item(scan: Scan, spectra_cfg: dict, grid_len: int) -> dict:
    """A calibrated scan processed like the training spectra, with what was done to it."""
    grid = edge_grid(spectra_cfg, scan.element, scan.edge)
    if grid_len is not None and grid.size != grid_len:
        raise PredictError(f"{scan.source}: the config's {scan.element}-{scan.edge} grid has {grid.size} points, "
                           f"the model {grid_len}")
    e0 = find_e0(scan.energy, scan.mu, SMOOTH_MEASURED_EV)
    norm = normalise(scan, e0, spectra_cfg["pre_edge"], spectra_cfg["post_edge"])
    processing = {"mode": scan.mode, "calibration": scan.calibration, "energy_shift_eV": round(scan.energy_shift, 3),
                  "e0_minus_tabulated_edge_eV": round(e0 - tabulated_edge(scan.element, scan.edge), 3),
                  "edge_step": round(norm["edge_step"], 6), "larch_pre_edge": norm["larch_pre_edge"],
                  "edge_above_foil_eV": round(measured_edge(scan.energy, norm["norm"],
                                                            tabulated_edge(scan.element, scan.edge)), 3)}
    processing.update({k.split(".", 1)[1]: v for k, v in scan.header.items() if k.startswith("calibration.")})
    return {"source": scan.source, "element": scan.element, "edge": scan.edge, "e0": e0, "energy": grid,
            "spectrum": to_grid(scan.energy, norm["norm"], e0, grid), "processing": processing}


def failed_row(source, reason: str) -> dict:
    """A spectrum that got no prediction, kept in the output beside the good ones."""
    return {"source": str(source), "status": "failed", "reason": reason}


def _unfit_reason(item: dict, models: dict, group: str) -> str:
    """Why no loaded model can take this spectrum ('' if one can)."""
    if group not in models:
        return f"{item['source']}: no {group} model loaded for {item['element']} spectra"
    trained = sorted(models[group][1]["elements"]) if group == "nonO" else ["O"]
    if item["element"] not in trained:
        return f"{item['source']}: the model was trained on {trained}, not {item['element']}"
    if item["edge"] != "K":
        return f"{item['source']}: the model was trained on K edges, not {item['edge']}"
    return ""


def predict_items(items: list[dict], models: dict, ood_percentile: float = ATYPICAL_PERCENTILE,
                  edge_map: dict | None = None, reading: str = "shape") -> tuple[list[dict], list[dict]]:
    """Predictions for the spectra a model can take, and a failed row for each one it cannot; measured scans'
    OS read as `reading` says (OS_READINGS) with the edge map given (load_edge_map)."""
    from .evaluate import latent_vectors, predict_table
    from .models.targets import TargetSpec

    results, failed = [], []
    for group in ("nonO", "O"):
        chosen = []
        for it in (it for it in items if group_of(it["element"]) == group):
            reason = _unfit_reason(it, models, group)
            if reason:
                failed.append(failed_row(it["source"], reason))
            else:
                chosen.append(it)
        if not chosen:
            continue
        model, meta, file = models[group]
        spectra = np.stack([it["spectrum"] for it in chosen])
        energy, elements = np.stack([it["energy"] for it in chosen]), [it["element"] for it in chosen]
        try:
            preds = predict_table(model, meta, spectra, energy, elements)
            latent = (latent_typicality(meta["latent_domain"], latent_vectors(model, meta, spectra, energy, elements),
                                        ood_percentile)
                      if "latent_domain" in meta else [None] * len(chosen))
        except XasEngineError as exc:
            failed.extend(failed_row(it["source"], f"{it['source']}: {exc}") for it in chosen)
            continue
        specs = {d["name"]: TargetSpec.from_dict(d) for d in meta["targets"]}
        domain = typicality(meta["domain"], spectra) if "domain" in meta else [None] * len(chosen)
        for i, it in enumerate(chosen):
            record = {"source": it["source"], "status": "ok", "reason": "", "element": it["element"],
                      "edge": it["edge"], "e0": float(it["e0"]), "model": str(file), "typicality": domain[i],
                      "latent_distance": latent[i], "ood": bool(latent[i]["ood"]) if latent[i] else None,
                      "descriptors": {}}
            record["probabilities"] = "temperature-scaled on validation" if meta.get("temperatures") else "as trained"
            if "processing" in it:
                record["processing"] = it["processing"]
            for name, pred in preds.items():
                value = pred["pred"][i]
                entry = {"value": float(value)}
                if pred["proba"] is not None:
                    entry["probabilities"] = {f"{c:g}": round(float(p), 4)
                                              for c, p in zip(specs[name].classes, pred["proba"][i])}
                record["descriptors"][name] = entry
            if "OS" in specs:
                apply_os_reading(record, reading, edge_map, specs["OS"].classes)
            results.append(record)
    return results, failed


def _csv(results: list[dict]) -> str:
    names = sorted({n for r in results for n in r.get("descriptors", {})})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["source", "element", "edge", "e0", "typicality_pct", "atypical", "latent_pct", "ood"] + names
                    + [f"{n}_p" for n in names] + ["calibration", "status", "reason"])
    for r in results:
        if r["status"] == "failed":
            writer.writerow([r["source"]] + [""] * (8 + 2 * len(names)) + [r["status"], r["reason"]])
            continue
        values = [r["descriptors"].get(n, {}).get("value", "") for n in names]
        probs = [max(r["descriptors"][n]["probabilities"].values()) if "probabilities" in r["descriptors"].get(n, {})
                 else "" for n in names]
        typical, latent = r["typicality"] or {}, r.get("latent_distance") or {}
        writer.writerow([r["source"], r["element"], r["edge"], f"{r['e0']:.2f}", typical.get("percentile", ""),
                         typical.get("atypical", ""), latent.get("percentile", ""), latent.get("ood", "")]
                        + values + probs
                        + [r.get("processing", {}).get("calibration", ""), r["status"], r["reason"]])
    return buf.getvalue()


def gathered_items(args, grid_len: int, spectra_cfg: dict | None = None) -> tuple[list[dict], list[dict]]:
    """Every spectrum of the inputs on the model's grid, and a failed row for each file or scan that is unusable;
    shared by `predict`, `generate` and the experimental report so all read and reject inputs the same way.
    spectra_cfg: the config's `spectra` section (default: that of args.config, or of the default config)."""
    if spectra_cfg is None:
        spectra_cfg = load_config(getattr(args, "config", None))["spectra"]
    items, failed, scans = [], [], []

    def fail(source, exc):
        failed.append(failed_row(source, f"{source}: {exc}" if str(source) not in str(exc) else str(exc)))

    for path in _expand(args.inputs):
        try:
            if path.suffix == ".h5":
                items.extend(shard_items(path))
            else:
                scans.extend(read_measured_file(path, args))
        except XasEngineError as exc:
            fail(path, exc)
    try:  # calibrated together: each element's foils are aligned to one of them (Athena's way)
        scans = calibrate(scans, e0_shift=getattr(args, "e0_shift", None))
    except XasEngineError as exc:
        for scan in scans:
            fail(scan.source, exc)
        scans = []
    for scan in scans:
        try:
            items.append(scan_item(scan, spectra_cfg, grid_len))
        except XasEngineError as exc:
            fail(scan.source, exc)
    return items, failed


N_NEAREST = 3


def nearest_training(meta: dict, element: str, spectrum: np.ndarray, k: int = N_NEAREST) -> list[dict]:
    """The k training spectra of `element` kept in the checkpoint (meta["references"], a per-element subsample)
    nearest to `spectrum` by Euclidean distance on the grid, nearest first; [] if the checkpoint keeps none."""
    refs = meta.get("references", {}).get(element)
    if not refs or not len(refs["structure_id"]):
        return []
    bank = np.asarray(refs["spectrum"], dtype=np.float64)
    dist = np.linalg.norm(bank - np.asarray(spectrum, dtype=np.float64), axis=1)
    order = np.argsort(dist, kind="stable")[:k]
    return [{"structure_id": refs["structure_id"][i], "distance": float(dist[i]), "spectrum": bank[i]} for i in order]


def _label(record: dict) -> str:
    """The prediction as a reader states it: 'OS = 3 (80 %), 4 (15 %)' per class descriptor, then the trust."""
    lines = []
    for name, entry in record["descriptors"].items():
        probs = entry.get("probabilities")
        if probs:
            top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
            lines.append(f"{name} = " + ", ".join(f"{c} ({p:.0%})" for c, p in top if p >= 0.01))
        else:
            lines.append(f"{name} = {entry['value']:.3g}")
    latent = record.get("latent_distance")
    if latent:
        verdict = "OUT OF DISTRIBUTION" if latent["ood"] else "within the training distribution"
        lines.append(f"latent distance: percentile {latent['percentile']:.0f} of validation ({verdict})")
    return "\n".join(lines)


def plot_predictions(path: str, items: list[dict], results: list[dict], models: dict) -> None:
    """One panel per predicted input: its normalised spectrum on the model's grid, the 3 nearest training spectra
    of its element (thin, grey, structure ids in the legend) and, under the axes, the predicted descriptors and
    the out-of-distribution verdict."""
    from .reports.figures import pyplot, save_png

    by_source = {it["source"]: it for it in items}
    done = [r for r in results if r["status"] == "ok" and r["source"] in by_source]
    if not done:
        raise PredictError(f"--plot {path}: no input was predicted, nothing to draw")
    plt = pyplot()
    ncol = min(3, len(done))
    nrow = -(-len(done) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.6 * ncol, 6.4 * nrow), squeeze=False)
    for ax, record in zip(axes.flat, done):
        item = by_source[record["source"]]
        meta = models[group_of(item["element"])][1]
        x = np.asarray(item["energy"], dtype=float)
        for j, ref in enumerate(nearest_training(meta, item["element"], item["spectrum"])):
            ax.plot(x, ref["spectrum"], color="0.6", lw=0.8, ls=("-", "--", ":")[j % 3],
                    label=f"{ref['structure_id']} (d={ref['distance']:.2f})")
        ax.plot(x, item["spectrum"], color="C0", lw=1.8, label="input", zorder=3)
        ax.text(0.0, -0.16, _label(record), transform=ax.transAxes, ha="left", va="top", fontsize=7.5,
                family="monospace", color="C3" if record.get("ood") else "black")
        ax.set_title(f"{Path(record['source'].split(':')[0]).name} ({item['element']}-{item['edge']})", fontsize=9)
        ax.set_xlabel("E − E0 (eV)")
        ax.set_ylabel("normalised μ")
        ax.legend(fontsize=7, loc="lower right", title="nearest training spectra", title_fontsize=7)
    for ax in list(axes.flat)[len(done):]:
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)


def predict_cli(args) -> int:
    """Each input file succeeds or fails on its own: 1 if any failed (each named on stderr and as a failed row)."""
    models = load_models(args.model)
    grid_len = len(next(iter(models.values()))[1]["energy_grid"])
    reading = "fusion" if args.edge_fusion else args.os_reading
    edge_map = (load_edge_map(args.model, args.edge_map, required=reading == "fusion") if reading != "shape"
                else None)
    items, failed = gathered_items(args, grid_len)
    results, unfit = predict_items(items, models, args.ood_percentile, edge_map, reading)
    failed += unfit
    for row in failed:
        print(f"xasengine: error [predict]: {row['reason']}", file=sys.stderr)
    rows = results + failed
    if getattr(args, "plot", None):
        plot_predictions(args.plot, items, results, models)
    sys.stdout.write(json.dumps(rows, indent=1) + "\n" if args.format == "json" else _csv(rows))
    return 1 if failed else 0

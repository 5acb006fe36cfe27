"""`xasengine predict`: descriptors (with class probabilities) for measured or simulated spectra.

Measured spectra get the same processing as the training data (E0 from max dmu/dE, edge-step normalisation,
the model's grid relative to E0); shards are already gridded and go straight to the model."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from .config import load_config
from .errors import PredictError, XasEngineError
from .models.domain import typicality
from .spectra import edge_grid, process, read_measured

SPECTRUM_SUFFIXES = {".xdi", ".dat", ".txt", ".csv", ".xmu", ".nor"}
SMOOTH_MEASURED_EV = 1.0  # light smoothing before locating E0 in noisy measured data


def _load_models(model_path: str) -> dict:
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


def _looks_numeric(path: Path) -> bool:
    """Folder mode skips files such as a LICENSE.txt: the first data line must be numbers."""
    try:
        with open(path, errors="strict") as fh:
            for line in fh:
                if line.strip() and not line.lstrip().startswith("#"):
                    [float(x) for x in line.replace(",", " ").split()]
                    return True
    except (ValueError, UnicodeDecodeError):
        return False
    return False


def _expand(inputs: list[str]) -> list[Path]:
    paths = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".h5"
                           or (p.suffix.lower() in SPECTRUM_SUFFIXES and _looks_numeric(p)))
            if not found:
                raise PredictError(f"folder {path} holds no spectrum files ({', '.join(sorted(SPECTRUM_SUFFIXES))}, .h5)")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            raise PredictError(f"input not found: {path}")
    return paths


def items_from_file(path: Path, element: str | None, edge: str | None, spectra_cfg: dict, grid_len: int) -> list[dict]:
    """Model-ready spectra of one file: a measured spectrum processed like the training data, or a shard's sites."""
    if path.suffix == ".h5":
        from .shards import read_shards

        table = read_shards([path], only_ok=True)
        if not len(table["element"]):
            raise PredictError(f"{path}: shard holds no usable spectra")
        return [{"source": f"{path}:{sid}#{idx}", "element": el, "edge": ed, "spectrum": sp, "energy": en, "e0": e0}
                for sid, idx, el, ed, sp, en, e0 in zip(table["structure_id"], table["site_index"], table["element"],
                                                        table["edge"], table["spectrum"], table["energy"], table["e0"])]
    energy, mu, header = read_measured(path)
    element = element or header.get("Element.symbol")
    edge = edge or header.get("Element.edge") or "K"
    if not element:
        raise PredictError(f"{path}: absorbing element unknown; pass --element (no Element.symbol in the header)")
    grid = edge_grid(spectra_cfg, element, edge)
    if grid.size != grid_len:
        raise PredictError(f"{path}: the config's {element}-{edge} grid has {grid.size} points, the model {grid_len}")
    processed = process(energy, mu, grid, spectra_cfg, smooth_ev=SMOOTH_MEASURED_EV)
    return [{"source": str(path), "element": element, "edge": edge, "spectrum": processed["spectrum"],
             "energy": grid, "e0": processed["e0"]}]


def predict_items(items: list[dict], models: dict) -> list[dict]:
    from .evaluate import predict_table
    from .models.targets import TargetSpec

    results = []
    for group in ("nonO", "O"):
        chosen = [it for it in items if (it["element"] == "O") == (group == "O")]
        if not chosen:
            continue
        if group not in models:
            raise PredictError(f"no {group} model loaded for {sorted({it['element'] for it in chosen})} spectra")
        model, meta, file = models[group]
        trained = sorted(meta["elements"]) if group == "nonO" else ["O"]
        for it in chosen:
            if it["element"] not in trained:
                raise PredictError(f"{it['source']}: the model was trained on {trained}, not {it['element']}")
            if it["edge"] != "K":
                raise PredictError(f"{it['source']}: the model was trained on K edges, not {it['edge']}")
        spectra = np.stack([it["spectrum"] for it in chosen])
        try:
            preds = predict_table(model, meta, spectra, np.stack([it["energy"] for it in chosen]),
                                  [it["element"] for it in chosen])
        except XasEngineError as exc:
            raise PredictError(str(exc)) from exc
        specs = {d["name"]: TargetSpec.from_dict(d) for d in meta["targets"]}
        domain = typicality(meta["domain"], spectra) if "domain" in meta else [None] * len(chosen)
        for i, it in enumerate(chosen):
            record = {"source": it["source"], "element": it["element"], "edge": it["edge"], "e0": float(it["e0"]),
                      "model": str(file), "typicality": domain[i], "descriptors": {}}
            for name, pred in preds.items():
                value = pred["pred"][i]
                entry = {"value": float(value)}
                if pred["proba"] is not None:
                    entry["probabilities"] = {f"{c:g}": round(float(p), 4)
                                              for c, p in zip(specs[name].classes, pred["proba"][i])}
                record["descriptors"][name] = entry
            results.append(record)
    return results


def _csv(results: list[dict]) -> str:
    names = sorted({n for r in results for n in r["descriptors"]})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["source", "element", "edge", "e0", "typicality_pct", "atypical"] + names + [f"{n}_p" for n in names])
    for r in results:
        values = [r["descriptors"].get(n, {}).get("value", "") for n in names]
        probs = [max(r["descriptors"][n]["probabilities"].values()) if "probabilities" in r["descriptors"].get(n, {})
                 else "" for n in names]
        typical = r["typicality"] or {}
        writer.writerow([r["source"], r["element"], r["edge"], f"{r['e0']:.2f}", typical.get("percentile", ""),
                         typical.get("atypical", "")] + values + probs)
    return buf.getvalue()


def predict_cli(args) -> None:
    spectra_cfg = load_config(args.config)["spectra"] if args.config else load_config(None)["spectra"]
    models = _load_models(args.model)
    grid_len = len(next(iter(models.values()))[1]["energy_grid"])
    items = []
    for path in _expand(args.inputs):
        try:
            items.extend(items_from_file(path, args.element, args.edge, spectra_cfg, grid_len))
        except XasEngineError as exc:
            raise PredictError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) from exc
    results = predict_items(items, models)
    sys.stdout.write(json.dumps(results, indent=1) + "\n" if args.format == "json" else _csv(results))

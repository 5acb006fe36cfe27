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


def items_from_file(path: Path, element: str | None, edge: str | None, spectra_cfg: dict, grid_len: int) -> list[dict]:
    """Model-ready spectra of one file: a measured spectrum processed like the training data, or a shard's sites."""
    if not path.exists():
        raise PredictError(f"input not found: {path}")
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


def predict_items(items: list[dict], models: dict) -> tuple[list[dict], list[dict]]:
    """Predictions for the spectra a model can take, and a failed row for each one it cannot."""
    from .evaluate import predict_table
    from .models.targets import TargetSpec

    results, failed = [], []
    for group in ("nonO", "O"):
        chosen = []
        for it in (it for it in items if (it["element"] == "O") == (group == "O")):
            reason = _unfit_reason(it, models, group)
            if reason:
                failed.append(failed_row(it["source"], reason))
            else:
                chosen.append(it)
        if not chosen:
            continue
        model, meta, file = models[group]
        spectra = np.stack([it["spectrum"] for it in chosen])
        try:
            preds = predict_table(model, meta, spectra, np.stack([it["energy"] for it in chosen]),
                                  [it["element"] for it in chosen])
        except XasEngineError as exc:
            failed.extend(failed_row(it["source"], f"{it['source']}: {exc}") for it in chosen)
            continue
        specs = {d["name"]: TargetSpec.from_dict(d) for d in meta["targets"]}
        domain = typicality(meta["domain"], spectra) if "domain" in meta else [None] * len(chosen)
        for i, it in enumerate(chosen):
            record = {"source": it["source"], "status": "ok", "reason": "", "element": it["element"],
                      "edge": it["edge"], "e0": float(it["e0"]), "model": str(file), "typicality": domain[i],
                      "descriptors": {}}
            for name, pred in preds.items():
                value = pred["pred"][i]
                entry = {"value": float(value)}
                if pred["proba"] is not None:
                    entry["probabilities"] = {f"{c:g}": round(float(p), 4)
                                              for c, p in zip(specs[name].classes, pred["proba"][i])}
                record["descriptors"][name] = entry
            results.append(record)
    return results, failed


def _csv(results: list[dict]) -> str:
    names = sorted({n for r in results for n in r.get("descriptors", {})})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["source", "element", "edge", "e0", "typicality_pct", "atypical"] + names + [f"{n}_p" for n in names]
                    + ["status", "reason"])
    for r in results:
        if r["status"] == "failed":
            writer.writerow([r["source"]] + [""] * (5 + 2 * len(names)) + [r["status"], r["reason"]])
            continue
        values = [r["descriptors"].get(n, {}).get("value", "") for n in names]
        probs = [max(r["descriptors"][n]["probabilities"].values()) if "probabilities" in r["descriptors"].get(n, {})
                 else "" for n in names]
        typical = r["typicality"] or {}
        writer.writerow([r["source"], r["element"], r["edge"], f"{r['e0']:.2f}", typical.get("percentile", ""),
                         typical.get("atypical", "")] + values + probs + [r["status"], r["reason"]])
    return buf.getvalue()


def predict_cli(args) -> int:
    """Each input file succeeds or fails on its own: 1 if any failed (each named on stderr and as a failed row)."""
    spectra_cfg = load_config(args.config)["spectra"] if args.config else load_config(None)["spectra"]
    models = _load_models(args.model)
    grid_len = len(next(iter(models.values()))[1]["energy_grid"])
    items, failed = [], []
    for path in _expand(args.inputs):
        try:
            items.extend(items_from_file(path, args.element, args.edge, spectra_cfg, grid_len))
        except XasEngineError as exc:
            failed.append(failed_row(path, f"{path}: {exc}" if str(path) not in str(exc) else str(exc)))
    results, unfit = predict_items(items, models)
    failed += unfit
    for row in failed:
        print(f"xasengine: error [predict]: {row['reason']}", file=sys.stderr)
    rows = results + failed
    sys.stdout.write(json.dumps(rows, indent=1) + "\n" if args.format == "json" else _csv(rows))
    return 1 if failed else 0

"""Which domain-alignment protocol reads oxidation states right on beamline scans? (issue 16)

Candidates (fast screening model: a random forest on the nonO transition-metal sites' OS, 3 seeds):
  A      the engine's grid relative to each spectrum's own E0 (today's default)
  A+aug  A, trained on FEFF spectra plus 3 degraded copies each (broadening, white-line damping, shift, stretch)
  B      energy relative to the element's metal edge (FEFF metal / tabulated foil edge): keeps the chemical shift
  B+aug  B with the augmentation
  C      cumulative integral of mu on B's axis (FeatureXAS); C+aug likewise
  Esim   per-element linear map edge position -> OS fitted on the simulated spectra (edge on B's axis)
  Estd   per-element linear map edge position -> OS fitted on the measured standards, leave-one-compound-out
         (a compound's scans never inform its own prediction); elements with < 2 other compounds fall back to Esim
  F1     Estd for the OS value, B+aug's class probabilities only where Estd has no standards (falls back to B+aug)
  F2     mean of Estd's and B+aug's expected OS
  B+map  B (and B+aug+map) with each measured scan shifted rigidly so that its edge sits where FEFF puts edges:
         edge_FEFF = a_element + b * edge_measured, fitted leave-one-compound-out on the other oxide standards
         (target: the simulated training sites' mean edge at the standard's nominal OS; one slope b shared by all
         elements, an offset per element, the mean offset for an element without other oxide standards). Metal
         foils are not fitted (their slow ramp puts the half-step several eV above the first inflection in both
         domains) but are mapped like any scan, since a user's scan comes without a label.

Scores: simulated test split (weighted F1 of OS, the forest; for the maps, F1 of the rounded map), and on every
shared measured scan the exact OS (integer-OS compounds) and per compound |expected - nominal|.

    PYTHONPATH=src python benchmarks/domain_alignment.py --shards 'results/shards/*.h5' --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import glob
import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score

from xasengine.alignment import FEFF_METAL_EDGE_EV, augment, cumulative, edge_position, foil_grid, on_foil_axis
from xasengine.config import load_config
from xasengine.measured import calibrate, normalise, read_scans, tabulated_edge
from xasengine.standards import compound_of, read_standards
from xasengine.shards import read_shards
from xasengine.spectra import edge_grid, find_e0, normalize, to_grid

ELEMENTS = ("Mn", "Co", "Ni")
N_AUG = 3


def simulated(table: dict, spectra_cfg: dict) -> dict:
    """Per usable Co/Mn/Ni site: normalised raw spectrum, E0, OS, split."""
    keep = np.isin(table["element"], ELEMENTS) & np.isfinite(table["descriptors"]["OS"])
    out = {"energy": [], "norm": [], "e0": [], "element": [], "os": [], "split": []}
    for i in np.flatnonzero(keep):
        n = table["raw_length"][i]
        e, mu = table["raw_energy"][i, :n], table["raw_mu"][i, :n]
        norm, _ = normalize(e, mu, table["e0"][i], spectra_cfg["pre_edge"], spectra_cfg["post_edge"])
        for key, value in (("energy", e), ("norm", norm), ("e0", table["e0"][i]), ("element", table["element"][i]),
                           ("os", table["descriptors"]["OS"][i]), ("split", table["split"][i])):
            out[key].append(value)
    for key in ("e0", "element", "os", "split"):
        out[key] = np.asarray(out[key])
    return out


def measured(folder: Path, standards: list[dict], spectra_cfg: dict) -> list[dict]:
    """Every shared scan calibrated (Athena-style, all of a folder's foils together) and normalised with larch."""
    scans = [s for p in sorted(folder.glob("*.xdi")) for s in read_scans(p)]
    items = []
    for scan in calibrate(scans):
        name = Path(scan.source).name
        std = compound_of(scan.source, standards)
        if std is None:
            continue
        e0 = find_e0(scan.energy, scan.mu, 1.0)
        norm = normalise(scan, e0, spectra_cfg["pre_edge"], spectra_cfg["post_edge"])["norm"]
        items.append({"file": name, "compound": std["compound"], "element": scan.element, "os": std["OS"],
                      "energy": scan.energy, "norm": norm, "e0": e0, "metal_edge": tabulated_edge(scan.element)})
    return items


def features(kind: str, energy, norm, e0, element, metal_edge, grid_a) -> np.ndarray:
    onehot = [float(element == el) for el in ELEMENTS]
    if kind == "A":
        x = to_grid(energy, norm, e0, grid_a)
    elif kind == "B":
        x = on_foil_axis(energy, norm, metal_edge, foil_grid())
    elif kind == "C":
        x = cumulative(on_foil_axis(energy, norm, metal_edge, foil_grid()), foil_grid())[0] / 10.0
    else:
        raise ValueError(kind)
    return np.concatenate([x, onehot])


def forest(kind: str, aug: bool, sim: dict, items: list[dict], grid_a, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    train = np.flatnonzero(sim["split"] == "train")
    xs, ys = [], []
    for i in train:
        el = sim["element"][i]
        versions = [(sim["energy"][i], sim["norm"][i])]
        if aug:
            versions += [augment(sim["energy"][i], sim["norm"][i], sim["e0"][i], rng) for _ in range(N_AUG)]
        for e, y in versions:
            xs.append(features(kind, e, y, sim["e0"][i], el, FEFF_METAL_EDGE_EV[el], grid_a))
            ys.append(sim["os"][i])
    model = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1).fit(np.asarray(xs), ys)
    test = np.flatnonzero(sim["split"] == "test")
    xt = np.asarray([features(kind, sim["energy"][i], sim["norm"][i], sim["e0"][i], sim["element"][i],
                              FEFF_METAL_EDGE_EV[sim["element"][i]], grid_a) for i in test])
    test_proba = model.predict_proba(xt)
    f1 = f1_score(sim["os"][test], model.classes_[test_proba.argmax(1)], average="weighted")
    xm = np.asarray([features(kind, it["energy"], it["norm"], it["e0"], it["element"], it["metal_edge"], grid_a)
                     for it in items])
    proba = model.predict_proba(xm)
    classes = model.classes_
    return {"f1": f1, "pred": classes[proba.argmax(1)], "expected": proba @ classes, "proba": proba,
            "classes": classes, "test_proba": test_proba}


def sim_edge_positions(sim: dict) -> np.ndarray:
    return np.asarray([edge_position(e - FEFF_METAL_EDGE_EV[el], y, after=-10.0)
                       for e, y, el in zip(sim["energy"], sim["norm"], sim["element"])])


def linear_sim(sim: dict, items: list[dict]) -> dict:
    """OS = a + b * edge position, per element, fitted on the simulated training split."""
    pos = sim_edge_positions(sim)
    fits = {}
    for el in ELEMENTS:
        m = (sim["element"] == el) & (sim["split"] == "train") & np.isfinite(pos)
        fits[el] = np.polyfit(pos[m], sim["os"][m], 1)
    test = np.flatnonzero((sim["split"] == "test") & np.isfinite(pos))
    pred_t = [np.polyval(fits[sim["element"][i]], pos[i]) for i in test]
    f1 = f1_score(sim["os"][test], np.clip(np.rint(pred_t), 0, 4), average="weighted")
    expected = np.asarray([np.polyval(fits[it["element"]], it["edge"]) for it in items])
    return {"f1": f1, "expected": expected, "pred": np.clip(np.rint(expected), 0, 4), "fits": fits}


def linear_standards(items: list[dict], fallback: dict) -> dict:
    """Leave-one-compound-out: each compound's OS from a line through the other compounds of its element."""
    expected = np.array(fallback["expected"], dtype=float)
    used = np.zeros(len(items), bool)
    for n, it in enumerate(items):
        others = [o for o in items if o["element"] == it["element"] and o["compound"] != it["compound"]]
        if len({o["compound"] for o in others}) < 2:
            continue
        fit = np.polyfit([o["edge"] for o in others], [o["os"] for o in others], 1)
        expected[n], used[n] = np.polyval(fit, it["edge"]), True
    return {"expected": expected, "pred": np.clip(np.rint(expected), 0, 4), "from_standards": used}


def sim_edge_by_os(sim: dict, pos: np.ndarray) -> dict:
    """Per element: the training sites' mean half-step edge at each OS (> 0), for interpolating nominal OS."""
    out = {}
    for el in ELEMENTS:
        m = (sim["element"] == el) & (sim["split"] == "train") & np.isfinite(pos) & (sim["os"] > 0)
        levels = np.unique(sim["os"][m])
        out[el] = (levels, np.asarray([pos[m & (sim["os"] == v)].mean() for v in levels]))
    return out


def edge_maps(items: list[dict], by_os: dict) -> list[tuple[float, float]]:
    """Leave-one-compound-out (offset, slope) of edge_FEFF = a_el + b * edge_measured, per scan."""
    maps = []
    for it in items:
        train = [o for o in items if o["compound"] != it["compound"] and o["os"] > 0]
        els = sorted({o["element"] for o in train})
        if not train:
            maps.append((0.0, 1.0))
            continue
        a = np.zeros((len(train), len(els) + 1))
        y = np.zeros(len(train))
        for n, o in enumerate(train):
            a[n, els.index(o["element"])] = 1.0
            a[n, -1] = o["edge"]
            y[n] = np.interp(o["os"], *by_os[o["element"]])
        coef = np.linalg.lstsq(a, y, rcond=None)[0]
        offset = coef[els.index(it["element"])] if it["element"] in els else float(np.mean(coef[:-1]))
        maps.append((float(offset), float(coef[-1])))
    return maps


def mapped(items: list[dict], maps: list[tuple[float, float]]) -> list[dict]:
    out = []
    for it, (a, b) in zip(items, maps):
        shift = a + b * it["edge"] - it["edge"]
        out.append({**it, "energy": it["energy"] + shift, "e0": it["e0"] + shift})
    return out


def edge_likelihood(sim: dict, pos: np.ndarray, items: list[dict], classes: np.ndarray) -> np.ndarray:
    """p(mapped edge | OS) per scan and class: a Gaussian per element and OS over the simulated training edges
    (sd floored at 0.5 eV; classes an element lacks get the smallest likelihood of the row)."""
    out = np.zeros((len(items), len(classes)))
    for n, it in enumerate(items):
        for k, c in enumerate(classes):
            m = (sim["element"] == it["element"]) & (sim["split"] == "train") & (sim["os"] == c) & np.isfinite(pos)
            if not m.any():
                out[n, k] = np.nan
                continue
            sd = max(float(np.std(pos[m])), 0.5)
            out[n, k] = np.exp(-0.5 * ((it["edge"] - pos[m].mean()) / sd) ** 2) / sd
        row = out[n]
        row[np.isnan(row)] = np.nanmin(row) if np.isfinite(row).any() else 1.0
    return out


def fused(run: dict, likelihood: np.ndarray) -> dict:
    """Product of experts among the oxidised classes: the forest's shape posterior times the edge likelihood,
    renormalised within OS > 0; p(OS 0) stays the forest's (a metal's half-step is not on the oxides' map)."""
    classes = run["classes"]
    p = run["proba"].copy()
    ox = classes > 0
    q = p[:, ox] * likelihood[:, ox]
    q /= np.clip(q.sum(1, keepdims=True), 1e-12, None)
    p[:, ox] = q * (1.0 - p[:, ~ox].sum(1, keepdims=True))
    return {"f1": run["f1"], "pred": classes[p.argmax(1)], "expected": p @ classes}


def score(items: list[dict], pred, expected) -> dict:
    integer = np.array([float(it["os"]).is_integer() for it in items])
    exact = np.array([p == it["os"] for p, it in zip(pred, items)])
    per = {}
    for c in dict.fromkeys(it["compound"] for it in items):
        idx = [n for n, it in enumerate(items) if it["compound"] == c]
        per[c] = float(np.mean([expected[n] for n in idx]))
    nominal = {it["compound"]: it["os"] for it in items}
    return {"exact": int(exact[integer].sum()), "n_integer": int(integer.sum()),
            "expected": per, "worst_abs_err": max(abs(per[c] - nominal[c]) for c in per),
            "within_05": sum(abs(per[c] - nominal[c]) <= 0.5 for c in per), "n_compounds": len(per)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", default="results/shards/*.h5")
    parser.add_argument("--measured", default="../shared/data/experimental-xanes")
    parser.add_argument("--standards", default="resources/measured/standards.tsv")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="benchmarks/results/domain_alignment.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    spectra_cfg = load_config("config.yaml")["spectra"]
    grid_a = edge_grid(spectra_cfg, "Mn", "K")
    sim = simulated(read_shards(sorted(glob.glob(args.shards)), only_ok=True), spectra_cfg)
    items = measured(Path(args.measured), read_standards(args.standards), spectra_cfg)
    for it in items:
        it["edge"] = edge_position(it["energy"] - it["metal_edge"], it["norm"], after=-10.0)
    print(f"{len(sim['os'])} simulated sites ({(sim['split'] == 'train').sum()} train, "
          f"{(sim['split'] == 'test').sum()} test); {len(items)} measured scans", flush=True)
    print("measured edge positions (eV above the foil): " + ", ".join(
        f"{it['file']} {it['edge']:.2f}" for it in items), flush=True)
    rows = []
    esim = linear_sim(sim, items)
    estd = linear_standards(items, esim)
    maps = edge_maps(items, sim_edge_by_os(sim, sim_edge_positions(sim)))
    items_mapped = mapped(items, maps)
    sim_pos = sim_edge_positions(sim)
    mapped_edges = [{**it, "edge": a + b * it["edge"]} for it, (a, b) in zip(items, maps)]
    print("edge maps (offset, slope) per scan: " + ", ".join(
        f"{it['file']} ({a:.2f}, {b:.2f})" for it, (a, b) in zip(items, maps)), flush=True)
    for seed in args.seeds:
        runs = {}
        for kind in ("A", "B", "C"):
            for aug in (False, True):
                name = kind + ("+aug" if aug else "")
                t0 = time.perf_counter()
                runs[name] = forest(kind, aug, sim, items, grid_a, seed)
                print(f"seed {seed} {name}: {time.perf_counter() - t0:.0f} s", flush=True)
            if kind == "B":
                for aug in (False, True):
                    runs["B" + ("+aug" if aug else "") + "+map"] = forest(kind, aug, sim, items_mapped, grid_a, seed)
        for name in ("A", "A+aug", "C", "C+aug"):
            like = edge_likelihood(sim, sim_pos, mapped_edges, runs[name]["classes"])
            runs[name + "×edge"] = fused(runs[name], like)
            # the same fusion on the simulated test split, with each test site's own (native) edge
            test = np.flatnonzero(sim["split"] == "test")
            native = [{"element": sim["element"][i], "edge": sim_pos[i]} for i in test]
            like_t = edge_likelihood(sim, sim_pos, native, runs[name]["classes"])
            on_test = fused({**runs[name], "proba": runs[name]["test_proba"]}, like_t)
            runs[name + "×edge"]["f1"] = f1_score(sim["os"][test], on_test["pred"], average="weighted")
        runs["Esim"] = esim
        runs["Estd"] = {**estd, "f1": esim["f1"]}
        bd = runs["B+aug"]
        f1_exp = np.where(estd["from_standards"], estd["expected"], bd["expected"])
        f1_pred = np.where(estd["from_standards"], estd["pred"], bd["pred"])
        runs["F1"] = {"f1": bd["f1"], "expected": f1_exp, "pred": f1_pred}
        f2 = 0.5 * (estd["expected"] + bd["expected"])
        runs["F2"] = {"f1": bd["f1"], "expected": f2, "pred": np.clip(np.rint(f2), 0, 4)}
        for name, run in runs.items():
            rows.append({"candidate": name, "seed": seed, "sim_f1": float(run["f1"]),
                         **score(items, run["pred"], run["expected"]),
                         "per_scan": {it["file"]: [float(p), float(x)] for it, p, x in
                                      zip(items, run["pred"], run["expected"])}})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "edges": {it["file"]: it["edge"] for it in items},
                                          "esim_fits": {k: list(v) for k, v in esim["fits"].items()},
                                          "seconds": time.perf_counter() - started}, indent=1))
    compounds = list(dict.fromkeys(it["compound"] for it in items))
    print("\n| candidate | sim test OS F1 | measured exact OS | compounds within 0.5 | "
          + " | ".join(compounds) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(compounds))
    for name in dict.fromkeys(r["candidate"] for r in rows):
        rs = [r for r in rows if r["candidate"] == name]
        f1 = [r["sim_f1"] for r in rs]
        cells = [f"{np.mean([r['expected'][c] for r in rs]):.2f}" for c in compounds]
        print(f"| {name} | {np.mean(f1):.3f} ± {np.std(f1):.3f} | {sum(r['exact'] for r in rs)}/"
              f"{sum(r['n_integer'] for r in rs)} | {sum(r['within_05'] for r in rs)}/"
              f"{sum(r['n_compounds'] for r in rs)} | " + " | ".join(cells) + " |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

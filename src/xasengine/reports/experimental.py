"""The joint SPT on measured beamline spectra of known compounds (issue 16): predicted against nominal oxidation
state and coordination for every shipped scan, with calibrated class probabilities and the out-of-distribution
flag, so a reader sees which measured spectra the model reads right and whether it says so when it does not.

Scans go through exactly what `xasengine predict` does to them (xraylarch reader, the foils aligned to one and
calibrated at its first inflection, Larch pre_edge, the training grid relative to E0). The reliability diagrams
are drawn on the simulated *test* split (temperatures fitted on validation): the measured set is too small to
say anything about calibration, and the validation split is the fit's own data.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..atomic import write_json, write_text
from ..errors import ReportError
from ..models.calibration import reliability
from ..models.edge_ladder import METAL_GATE_EV, SHIPPED_GUARDS, Guards
from ..models.targets import TargetSpec, group_mask
from ..standards import compound_of, read_standards
from .delithiation import expected_value
from .figures import pyplot, save_png
from .tables import fmt, heading, html_page, html_table, paragraph, write_csv

GROUP = "nonO"  # measured standards are transition-metal K edges
DESCRIPTORS = ("OS", "CN")  # the two a beamline user checks a standard against
WITHIN = 0.5  # |expected - nominal| that counts as read right for a mixed-valence or nominal compound
SHAPE, FUSED, LADDER = "shape only", "shape × edge", "edge ladder"  # the SPT's own; times the edge; the edge alone
READINGS = {"shape": SHAPE, "fusion": FUSED, "ladder": LADDER}  # config reports.measured.reading -> name
CSV_TAG = {SHAPE: "shape_only", FUSED: "fused", LADDER: "ladder"}
MARKERS = {SHAPE: "s", FUSED: "D", LADDER: "^"}  # the non-headline readings' hollow markers in the OS plot


def predict_scans(scans: list[str], checkpoint: str, spectra_cfg: dict) -> tuple[list[dict], list[dict], list[dict],
                                                                                dict]:
    """items (processed spectra), results and failed rows of `xasengine predict` on the scan files."""
    from ..predict import load_models, gathered_items, predict_items

    models = load_models(checkpoint)
    if GROUP not in models:
        raise ReportError(f"{checkpoint} is not a {GROUP} SPT checkpoint")
    grid_len = len(models[GROUP][1]["energy_grid"])
    if not scans:
        raise ReportError("no measured scan files (.xdi, .prj) to report on")
    args = SimpleNamespace(inputs=list(scans), element=None, edge=None, mode="auto", athena_group=None, e0_shift=None)
    items, failed = gathered_items(args, grid_len, spectra_cfg)
    results, unfit = predict_items(items, models)
    return items, results, failed + unfit, models


def known_compounds(results: list[dict], standards: list[dict]) -> dict[str, dict]:
    """source -> its standard's row, for the scans whose file names a standard (matched once per report)."""
    return {r["source"]: standard for r in results if (standard := compound_of(r["source"], standards))}


def scan_rows(results: list[dict], known: dict[str, dict], meta: dict) -> list[dict]:
    """One row per predicted scan of a known compound: nominal vs predicted, probabilities, trust."""
    specs = {d["name"]: TargetSpec.from_dict(d) for d in meta["targets"]}
    rows = []
    for record in results:
        standard = known.get(record["source"])
        if standard is None:
            continue
        row = {"source": record["source"], "scan": Path(record["source"].split(":")[0]).name,
               "compound": standard["compound"],
               "element": record["element"], "note": standard["note"],
               "calibration": record.get("processing", {}).get("calibration", ""),
               "latent_percentile": (record.get("latent_distance") or {}).get("percentile"),
               "ood": record.get("ood"), "typicality_percentile": (record.get("typicality") or {}).get("percentile")}
        for name in DESCRIPTORS:
            entry, nominal = record["descriptors"][name], standard[name]
            classes = [float(c) for c in specs[name].classes]
            probs = np.array([entry["probabilities"][f"{c:g}"] for c in specs[name].classes])
            row[name] = {"nominal": nominal, "predicted": float(entry["value"]),
                         "expected": float(expected_value(probs[None], classes)[0]),
                         "probabilities": {f"{c:g}": round(float(p), 4) for c, p in zip(classes, probs)},
                         "nominal_is_a_class": any(abs(nominal - c) < 1e-6 for c in classes),
                         "integer_nominal": abs(nominal - round(nominal)) < 1e-6}
            row[name]["exact"] = (row[name]["predicted"] == nominal) if row[name]["integer_nominal"] else None
            row[name]["abs_error_expected"] = abs(row[name]["expected"] - nominal)
            row[name]["read_right"] = bool(row[name]["exact"] if row[name]["integer_nominal"]
                                           else row[name]["abs_error_expected"] <= WITHIN)
        rows.append(row)
    return rows


def compound_summary(rows: list[dict]) -> list[dict]:
    """Per compound: scans, mean expected OS / CN against nominal, exact-class share, OOD share."""
    out = []
    for compound in dict.fromkeys(r["compound"] for r in rows):
        mine = [r for r in rows if r["compound"] == compound]
        entry = {"compound": compound, "element": mine[0]["element"], "n_scans": len(mine),
                 "ood_share": float(np.mean([bool(r["ood"]) for r in mine]))}
        for name in DESCRIPTORS:
            expected = float(np.mean([r[name]["expected"] for r in mine]))
            exact = [r[name]["exact"] for r in mine if r[name]["exact"] is not None]
            entry[name] = {"nominal": mine[0][name]["nominal"], "mean_expected": expected,
                           "abs_error": abs(expected - mine[0][name]["nominal"]),
                           "within": abs(expected - mine[0][name]["nominal"]) <= WITHIN,
                           "exact_share": float(np.mean(exact)) if exact else None,
                           "nominal_is_a_class": mine[0][name]["nominal_is_a_class"]}
        out.append(entry)
    return out


def simulated_test_reliability(shards: list[str], model, meta: dict) -> dict:
    """Reliability of the class descriptors on the simulated test split, before and after temperature scaling."""
    from ..evaluate import predict_table
    from ..shards import read_shards

    table = read_shards(shards, only_ok=True)
    elements = np.asarray(table["element"]).astype(str)
    rows = group_mask(elements, GROUP) & (np.asarray(table["split"]).astype(str) == "test") & np.isin(
        elements, meta["elements"])
    if not rows.any():
        raise ReportError(f"no {GROUP} test sites of the model's elements in the shards")
    inputs = (np.asarray(table["spectrum"])[rows], np.asarray(table["energy"])[rows], elements[rows])
    raw, scaled = predict_table(model, meta, *inputs, calibrated=False), predict_table(model, meta, *inputs)
    out = {}
    for spec in (TargetSpec.from_dict(d) for d in meta["targets"]):
        if spec.kind != "classification" or spec.name not in DESCRIPTORS:
            continue
        truth = np.asarray(table["descriptors"][spec.name], dtype=float)[rows]
        known = np.isin(truth, spec.classes)
        labels = np.searchsorted(spec.classes, truth[known])
        out[spec.name] = {"before": reliability(raw[spec.name]["proba"][known], labels),
                          "after": reliability(scaled[spec.name]["proba"][known], labels),
                          "temperature": meta.get("temperatures", {}).get(spec.name)}
    return out


def experimental(rows: list[dict], failed: list[dict], calibration: dict, model_path: str) -> dict:
    integer = [r for r in rows if r["OS"]["exact"] is not None and r["OS"]["nominal_is_a_class"]]
    unreadable = [r for r in rows if r["OS"]["integer_nominal"] and not r["OS"]["nominal_is_a_class"]]
    compounds = compound_summary(rows)
    return {"model": model_path, "n_scans": len(rows), "scans": rows, "compounds": compounds, "failed": failed,
            "os_exact": {"right": int(sum(r["OS"]["exact"] for r in integer)), "of": len(integer)},
            "compounds_within": {"right": int(sum(c["OS"]["within"] for c in compounds)), "of": len(compounds)},
            "nominal_not_a_class": sorted({r["compound"] for r in unreadable}),
            "ood_flagged": {"right_os": int(sum(bool(r["ood"]) for r in rows if r["OS"]["read_right"])),
                            "wrong_os": int(sum(bool(r["ood"]) for r in rows if not r["OS"]["read_right"])),
                            "n_right": int(sum(r["OS"]["read_right"] for r in rows)),
                            "n_wrong": int(sum(not r["OS"]["read_right"] for r in rows))},
            "calibration": calibration}


def plot_oxidation(result: dict, path: str) -> None:
    """Expected against nominal OS per scan, one colour per element; crosses are flagged out of distribution."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    colours = {"Mn": "C0", "Ni": "C2", "Co": "C3"}
    compounds = list(dict.fromkeys(r["compound"] for r in result["scans"]))
    for r in result["scans"]:
        jitter = 0.06 * (compounds.index(r["compound"]) % 3 - 1)
        x = r["OS"]["nominal"] + jitter
        for name, other in r.get("OS_readings", {}).items():
            if abs(other["expected"] - r["OS"]["expected"]) > 1e-6:
                ax.plot([x, x], [other["expected"], r["OS"]["expected"]], color="0.6", lw=0.6, zorder=1)
                ax.scatter(x, other["expected"], s=30, facecolor="none", marker=MARKERS[name],
                           edgecolor=colours.get(r["element"], "0.4"), lw=0.8, zorder=2)
        ax.scatter(x, r["OS"]["expected"], s=46, color=colours.get(r["element"], "0.4"),
                   marker="X" if r["ood"] else "o", edgecolor="black", lw=0.4, zorder=3)
    for c in result["compounds"]:
        ax.annotate(c["compound"], (c["OS"]["nominal"], c["OS"]["mean_expected"]), xytext=(6, 0),
                    textcoords="offset points", fontsize=8, va="center")
    ax.plot([-0.2, 4.6], [-0.2, 4.6], color="0.5", lw=0.8, ls="--", label="predicted = nominal")
    ax.fill_between([-0.2, 4.6], [-0.2 - WITHIN, 4.6 - WITHIN], [-0.2 + WITHIN, 4.6 + WITHIN], color="0.9",
                    label=f"within ±{WITHIN}")
    for element, colour in colours.items():
        ax.scatter([], [], color=colour, label=element, edgecolor="black", lw=0.4)
    ax.scatter([], [], marker="X", color="white", edgecolor="black", label="flagged out of distribution")
    for name in result.get("others", {}):
        ax.scatter([], [], s=30, facecolor="none", marker=MARKERS[name], edgecolor="0.3", label=name)
    ax.set_xlabel("nominal oxidation state")
    ax.set_ylabel("expected oxidation state  Σ p_k·OS_k")
    ax.set_xlim(-0.3, 4.7)
    ax.set_ylim(-0.3, 4.7)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"Measured spectra: {result.get('headline', SHAPE)}, filled, one per scan\n"
                 f"(hollow: {', '.join(result.get('others', {})) or '–'}; standards leave-one-compound-out)",
                 fontsize=9.5)
    fig.tight_layout()
    save_png(fig, path)


def plot_probabilities(result: dict, path: str) -> None:
    """The OS class probabilities of every scan as stacked bars, nominal OS marked."""
    plt = pyplot()
    rows = result["scans"]
    classes = sorted({c for r in rows for c in r["OS"]["probabilities"]}, key=float)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.6))
    left = np.zeros(len(rows))
    for k, c in enumerate(classes):
        p = np.array([r["OS"]["probabilities"].get(c, 0.0) for r in rows])
        ax.barh(range(len(rows)), p, left=left, color=f"C{k}", label=f"OS {c}")
        left += p
    ax.set_yticks(range(len(rows)),
                  [f"{r['scan']}  (nominal {r['OS']['nominal']:g}{', OOD' if r['ood'] else ''})" for r in rows],
                  fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("class probability (temperature-scaled)")
    ax.legend(fontsize=8, ncol=len(classes), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    save_png(fig, path)


def plot_reliability(calibration: dict, path: str) -> None:
    """Reliability diagrams on the simulated test split, before and after temperature scaling."""
    plt = pyplot()
    names = list(calibration)
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for when, style in (("before", "o--"), ("after", "s-")):
            bins = calibration[name][when]["bins"]
            x, y = [b["confidence"] for b in bins], [b["accuracy"] for b in bins]
            line, = ax.plot(x, y, style, ms=4, label=f"{when} (ECE {calibration[name][when]['ece']:.3f})")
            if when == "after":  # how many sites each point rests on: a lone site makes a 0-or-1 point
                for xi, yi, b in zip(x, y, bins):
                    ax.annotate(f"n={b['n']}", (xi, yi), xytext=(3, -10), textcoords="offset points", fontsize=6.5,
                                color=line.get_color())
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls=":")
        ax.set_title(f"{name}, {calibration[name]['after']['n']} test sites, T = "
                     f"{fmt(calibration[name]['temperature'], 2)}", fontsize=9)
        ax.set_xlabel("confidence of the top class")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    save_png(fig, path)


def _first_scan_per_compound(items: list[dict], results: list[dict], rows: list[dict]):
    """The first scan of each compound in `rows` (scan_rows' output): one plotted spectrum per standard."""
    chosen = {row["compound"]: row["source"] for row in reversed(rows)}
    sources = set(chosen.values())
    return [it for it in items if it["source"] in sources], [r for r in results if r["source"] in sources]


def summary_sentences(result: dict) -> list[str]:
    exact, within, flagged = result["os_exact"], result["compounds_within"], result["ood_flagged"]
    text = [f"{exact['right']} of {exact['of']} scans of compounds with an integer nominal OS that is a training "
            f"class are read in the right OS class; {within['right']} of {within['of']} compounds have a mean "
            f"expected OS within ±{WITHIN} of nominal."]
    if result.get("others"):
        text.append(f"Headline reading: {result['headline']}. " + " ".join(
            f"{name}: {o['os_exact']['right']} of {o['os_exact']['of']} scans in the right OS class, "
            f"{o['compounds_within']['right']} of {o['compounds_within']['of']} compounds within ±{WITHIN}."
            for name, o in result["others"].items()))
    if result["nominal_not_a_class"]:
        text.append(f"{', '.join(result['nominal_not_a_class'])}: the nominal OS is not a class the model was "
                    "trained on, so these readings are wrong by construction; only the out-of-distribution flag "
                    "can warn about them.")
    text.append(f"Out-of-distribution flag (latent distance above the 95th percentile of validation spectra): "
                f"{flagged['wrong_os']} of {flagged['n_wrong']} wrongly read scans and {flagged['right_os']} of "
                f"{flagged['n_right']} rightly read scans (right: the integer nominal OS class, or the expected OS "
                f"within ±{WITHIN} for a mixed-valence compound).")
    if result["failed"]:
        text.append(f"{len(result['failed'])} scans could not be predicted: "
                    + "; ".join(f["reason"] for f in result["failed"]))
    return text


def report_html(result: dict, png_names: dict) -> str:
    others = list(result.get("others", {}))
    scans = [[r["scan"], r["compound"], r["calibration"], f"{r['OS']['nominal']:g}", f"{r['OS']['predicted']:g}",
              f"{r['OS']['expected']:.2f}", *(fmt(r.get("OS_readings", {}).get(n, {}).get("expected"), 2)
                                              for n in others),
              fmt(r.get("edge", {}).get("edge_above_foil_eV"), 2), fmt(r.get("edge", {}).get("e0_above_foil_eV"), 2),
              ", ".join(f"{c}: {p:.2f}" for c, p in r["OS"]["probabilities"].items() if p >= 0.01),
              f"{r['CN']['nominal']:g}", f"{r['CN']['predicted']:g}", fmt(r["latent_percentile"], 1),
              "yes" if r["ood"] else "no"] for r in result["scans"]]
    marks = [["", "", "", "", "bad" if r["OS"]["exact"] is False else "", "", *([""] * len(others)), "", "", "",
              "", "bad" if r["CN"]["exact"] is False else "", "", "bad" if r["ood"] else ""] for r in result["scans"]]
    by_reading = {n: {c["compound"]: c for c in result["others"][n]["compounds"]} for n in others}
    compounds = [[c["compound"], c["element"], c["n_scans"], f"{c['OS']['nominal']:g}",
                  f"{c['OS']['mean_expected']:.2f}", f"{c['OS']['abs_error']:.2f}",
                  *(fmt(by_reading[n].get(c["compound"], {}).get("OS", {}).get("mean_expected"), 2) for n in others),
                  f"{c['CN']['nominal']:g}", f"{c['CN']['mean_expected']:.2f}", f"{c['ood_share']:.0%}"]
                 for c in result["compounds"]]
    ladder_how = [[r["scan"], r.get("edge", {}).get("edge_ladder", {}).get("how") or
                   r.get("edge", {}).get("edge_ladder", {}).get("why", "–")] for r in result["scans"]]
    calibration = [[name, fmt(v["temperature"], 3), v["after"]["n"], f"{v['before']['ece']:.3f}",
                    f"{v['after']['ece']:.3f}"] for name, v in result["calibration"].items()]
    return html_page("Measured spectra: oxidation state and coordination against the nominal values of known "
                     "compounds", [
        paragraph(f"Model {result['model']}. Every scan is processed as `xasengine predict` processes it "
                  "(foil calibration, Larch pre_edge, the training grid relative to E0). Three readings of the "
                  "OS: the SPT's own (shape only: its grid starts at each spectrum's E0, so it cannot see the "
                  "chemical shift); shape × edge (xasengine.models.edge_fusion, `predict --os-reading fusion`): the "
                  "half-step edge above the foil mapped onto FEFF's scale by a line fitted on the measured "
                  "standards and scored against the simulated training edges of each OS, times the SPT's "
                  "posterior; and the edge ladder (xasengine.models.edge_ladder, `predict`'s default): the same "
                  "mapped edge alone on FEFF's ladder of states, with a calibrated scan whose E0 lies within "
                  f"{METAL_GATE_EV:g} eV of its foil's edge read as metal, the SPT's shape (without its metal share) "
                  "kept for an element with fewer than two oxidised standards, and the SPT's reading for a scan "
                  "without energy calibration. Every scan's map, gate and standards come from the "
                  "*other* compounds (leave-one-compound-out). CN is the SPT's in every reading. Headline: "
                  f"{result.get('headline', SHAPE)} (config reports.measured.reading); benchmarks/README.md has the "
                  "candidates measured on the way."),
        *(paragraph(t) for t in summary_sentences(result)),
        heading("Per compound"),
        html_table(["compound", "element", "scans", "nominal OS", "mean expected OS", "|error|",
                    *(f"mean expected OS, {n}" for n in others), "nominal CN",
                    "mean expected CN", "flagged OOD"], compounds),
        heading("Per scan"),
        html_table(["scan", "compound", "energy calibration", "nominal OS", "predicted OS", "expected OS",
                    *(f"expected OS, {n}" for n in others), "half-step edge above foil (eV)", "E0 above foil (eV)",
                    "OS probabilities", "nominal CN", "predicted CN", "latent distance percentile", "OOD"],
                   scans, marks),
        heading("How the edge ladder read each scan"),
        html_table(["scan", "edge ladder (standards leave-one-compound-out)"], ladder_how),
        heading("Calibration on the simulated test split"),
        html_table(["descriptor", "temperature (fitted on validation)", "test sites", "ECE before", "ECE after"],
                   calibration),
        paragraph(f"Figures: {', '.join(png_names.values())}."),
    ])


def read_leave_one_compound_out(results: list[dict], known: dict[str, dict], doc: dict, meta: dict,
                                reading: str, guards: Guards = SHIPPED_GUARDS) -> list[dict]:
    """Copies of the shape-only records read as `reading` ('fusion' or 'ladder'), each scan's map and standards
    taken from the *other* compounds (a compound's own scans never inform its prediction)."""
    import copy

    from ..edge_map import refit_without, standards_without
    from ..predict import apply_edge_fusion, apply_edge_ladder

    classes = next(TargetSpec.from_dict(d) for d in meta["targets"] if d["name"] == "OS").classes
    out = []
    for record in results:
        record = copy.deepcopy(record)
        compound = (known.get(record["source"]) or {}).get("compound")
        if reading == "fusion":
            apply_edge_fusion(record, doc["stats"], refit_without(doc, compound) if compound else doc["map"], classes)
        else:
            apply_edge_ladder(record, doc, classes, standards_without(doc, compound), guards)
        out.append(record)
    return out


def write_experimental(scans: list[str], standards_path: str, checkpoint: str, edge_map_path: str,
                       shards: list[str], spectra_cfg: dict, outputs: dict, reading: str = "ladder") -> dict:
    """outputs: json, csv, html, oxidation, probabilities, spectra, reliability (PNGs). reading: the headline
    reading (the config's reports.measured.reading, a key of READINGS); the other two are shown beside it."""
    from ..predict import plot_predictions
    from ..readers import read_json

    standards = read_standards(standards_path)
    items, results, failed, models = predict_scans(scans, checkpoint, spectra_cfg)
    model, meta, _ = models[GROUP]
    known = known_compounds(results, standards)
    edge_doc = read_json(edge_map_path)
    readings = {SHAPE: results, FUSED: read_leave_one_compound_out(results, known, edge_doc, meta, "fusion"),
                LADDER: read_leave_one_compound_out(results, known, edge_doc, meta, "ladder")}
    headline = READINGS[reading]
    rows = scan_rows(readings[headline], known, meta)
    if not rows:
        raise ReportError(f"no scan of {len(scans)} files matches a compound of {standards_path}")
    result = experimental(rows, failed, simulated_test_reliability(shards, model, meta), str(checkpoint))
    result["headline"] = headline
    result["others"] = {}
    by_source = {name: {r["source"]: r for r in records} for name, records in readings.items()}
    for name in (n for n in readings if n != headline):
        other_rows = scan_rows(readings[name], known, meta)
        result["others"][name] = {k: v for k, v in experimental(other_rows, [], {}, str(checkpoint)).items()
                                  if k in ("os_exact", "compounds_within", "compounds")}
        for row, other_row in zip(rows, other_rows):
            row.setdefault("OS_readings", {})[name] = other_row["OS"]
    for row in rows:
        processing = by_source[SHAPE][row["source"]].get("processing", {})
        row["edge"] = {"edge_above_foil_eV": processing.get("edge_above_foil_eV"),
                       "e0_above_foil_eV": processing.get("e0_minus_tabulated_edge_eV"),
                       **{key: {k: v for k, v in by_source[name][row["source"]].get(key, {}).items()
                                if k not in ("shape_probabilities", "shape_value")}
                          for key, name in (("edge_fusion", FUSED), ("edge_ladder", LADDER))}}
    result["edge_map"] = {"path": edge_map_path, "fitted_on_all": edge_doc["map"], "stats": edge_doc["stats"]}
    plot_oxidation(result, outputs["oxidation"])
    plot_probabilities(result, outputs["probabilities"])
    plot_reliability(result["calibration"], outputs["reliability"])
    plot_predictions(outputs["spectra"], *_first_scan_per_compound(items, readings[headline], rows), models)
    others = list(result["others"])
    write_csv(outputs["csv"], ["scan", "compound", "element", "nominal_OS", "predicted_OS", "expected_OS",
                               *(f"expected_OS_{CSV_TAG[n]}" for n in others), "edge_above_foil_eV",
                               "e0_above_foil_eV", "nominal_CN", "predicted_CN", "expected_CN", "latent_percentile",
                               "ood", "typicality_percentile", "calibration"],
              [[r["scan"], r["compound"], r["element"], r["OS"]["nominal"], r["OS"]["predicted"],
                round(r["OS"]["expected"], 4), *(round(r["OS_readings"][n]["expected"], 4) for n in others),
                r["edge"]["edge_above_foil_eV"], r["edge"]["e0_above_foil_eV"], r["CN"]["nominal"],
                r["CN"]["predicted"], round(r["CN"]["expected"], 4),
                r["latent_percentile"], r["ood"], r["typicality_percentile"], r["calibration"]] for r in rows])
    write_text(outputs["html"], report_html(result, {k: Path(v).name for k, v in outputs.items() if v.endswith(".png")}))
    write_json(outputs["json"], result)
    return result


"""Dataset card: what is in the shards, what failed and why, and where it came from."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..atomic import write_json, write_text
from .figures import pyplot, save_png
from ..descriptors import DESCRIPTORS_NON_O, DESCRIPTORS_O
from ..feff.cache import NOT_COMPUTED
from ..feff.inputs import RESCUE_NOTE
from ..readers import open_hdf5
from ..shards import read_shards
from ..structures.collect import FAILURE_COLUMNS, read_tsv, tsv_text
from ..structures.io import DEFAULT_ELEMENTS

CATEGORICAL = ("OS", "CN", "CN2", "OCN", "PSGO")
CONTINUOUS = ("NNRS", "MOOD", "NNOSM")


def _structure_failures(shard_paths) -> list[dict]:
    rows = []
    for path in shard_paths:
        with open_hdf5(path) as fh:
            s = fh["structures"]
            for sid, status, message in zip(s["structure_id"].asstr()[()], s["status"].asstr()[()],
                                             s["message"].asstr()[()]):
                if status != "ok":
                    stage = message.split(":", 1)[0]
                    rows.append({"structure_id": sid, "site_index": "", "stage": stage, "message": message})
    return rows


def collect_failures(table: dict, shard_paths, structure_failures_tsv) -> list[dict]:
    rows = list(read_tsv(structure_failures_tsv)) + _structure_failures(shard_paths)
    for i in np.flatnonzero(table["status"] == "failed"):
        message = str(table["message"][i])
        stage = "spectra" if message.startswith("spectra:") else "feff"
        rows.append({"structure_id": table["structure_id"][i], "site_index": int(table["site_index"][i]),
                     "stage": stage, "message": message})
    return rows


def summarize(table: dict, failures: list[dict], shard_paths) -> dict:
    ok = table["status"] == "ok"
    rescued = np.char.startswith(table["message"].astype(str), RESCUE_NOTE)
    elements = sorted(set(table["element"]))
    summary = {
        "n_structures": int(len(set(table["structure_id"]))),
        "n_sites": int(len(table["status"])),
        "n_sites_ok": int(ok.sum()),
        "n_sites_not_computed": int((table["status"] == NOT_COMPUTED).sum()),
        "sites_per_edge": {f"{el}-{edge}": {status: int(((table["element"] == el) & (table["edge"] == edge)
                                                         & (table["status"] == status)).sum())
                                            for status in ("ok", "failed", NOT_COMPUTED)}
                           for el in elements for edge in sorted(set(table["edge"][table["element"] == el]))},
        "split_sites": {s: int(((table["split"] == s) & ok).sum()) for s in ("train", "val", "test")},
        "split_structures": {s: int(len(set(table["structure_id"][table["split"] == s]))) for s in ("train", "val", "test")},
        "os_method": dict(Counter(str(m) for m in table["os_method"])),
        "categorical": {},
        "continuous": {},
        "failures": dict(Counter(f["stage"] for f in failures)),
        "rescued": dict(sorted(Counter(str(el) for el in table["element"][ok & rescued]).items())),
    }
    for group, names, mask in (("nonO", DESCRIPTORS_NON_O, table["element"] != "O"), ("O", DESCRIPTORS_O, table["element"] == "O")):
        mask = mask & ok
        for name in names:
            values = table["descriptors"][name][mask]
            values = values[np.isfinite(values)]
            if name in CATEGORICAL:
                counts = Counter(f"{v:g}" for v in values)
                summary["categorical"][f"{group}:{name}"] = dict(sorted(counts.items(), key=lambda kv: float(kv[0])))
            else:
                summary["continuous"][f"{group}:{name}"] = (
                    {"n": int(values.size), "min": float(values.min()), "median": float(np.median(values)),
                     "max": float(values.max())} if values.size else {"n": 0}
                )
    engines = set()
    for path in shard_paths:
        with open_hdf5(path) as fh:
            engines.update(json.loads(fh.attrs["feff_engines"]))
    with open_hdf5(sorted(shard_paths)[0]) as fh:
        summary["provenance"] = {
            "schema_version": int(fh.attrs["schema_version"]),
            "xasengine_version": str(fh.attrs["xasengine_version"]),
            "config_hash": str(fh.attrs["config_hash"]),
            "package_versions": json.loads(fh.attrs["package_versions"]),
            "feff_engines": sorted(engines),
            "feff_preset": json.loads(fh.attrs["config_json"])["feff"]["preset"],
        }
    return summary


def markdown(summary: dict, failures: list[dict]) -> str:
    lines = ["# Dataset card", "",
             f"{summary['n_structures']} structures, {summary['n_sites']} nonequivalent absorbing sites "
             f"({summary['n_sites_ok']} with a usable spectrum"
             + (f", {summary['n_sites_not_computed']} not computed: absent from the FEFF cache under feff.cached_only"
                if summary["n_sites_not_computed"] else "") + ").", "",
             "## Sites per absorption edge", "", "| edge | ok | failed | not computed |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v['ok']} | {v['failed']} | {v[NOT_COMPUTED]} |" for k, v in summary["sites_per_edge"].items()]
    lines += ["", "## Material-wise split", "", "| split | structures | sites (ok) |", "|---|---:|---:|"]
    lines += [f"| {s} | {summary['split_structures'][s]} | {summary['split_sites'][s]} |" for s in ("train", "val", "test")]
    lines += ["", "## Class balance of categorical descriptors", ""]
    for key, counts in summary["categorical"].items():
        lines.append(f"- **{key}**: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    lines += ["", "## Ranges of continuous descriptors", "", "| descriptor | n | min | median | max |", "|---|---:|---:|---:|---:|"]
    for key, r in summary["continuous"].items():
        lines.append(f"| {key} | {r['n']} | " + (" | ".join(f"{r[k]:.3f}" for k in ("min", "median", "max")) if r["n"] else "– | – | –") + " |")
    lines += ["", f"Oxidation-state methods (per site): {summary['os_method']}", "",
              "## Failures", "", f"By stage: {summary['failures'] or 'none'}", "",
              "FEFF crashes rescued by a rerun with slower SCF mixing (feff.rescue; usable, the note is in each "
              f"site's message): {summary['rescued'] or 'none'}", ""]
    if failures:
        lines += ["| structure | site | stage | message |", "|---|---|---|---|"]
        lines += [f"| {f['structure_id']} | {f['site_index']} | {f['stage']} | {str(f['message']).replace('|', '/')} |"
                  for f in failures[:200]]
        if len(failures) > 200:
            lines.append(f"| … | | | {len(failures) - 200} more in failures.tsv |")
    p = summary["provenance"]
    lines += ["", "## Provenance", "", f"- schema_version {p['schema_version']}, xasengine {p['xasengine_version']}, "
              f"config hash {p['config_hash']}", f"- FEFF: {', '.join(p['feff_engines'])}, preset `{p['feff_preset']}`",
              "- packages: " + ", ".join(f"{k} {v}" for k, v in p["package_versions"].items()),
              _chemical_space_line(p.get("allowed_elements", list(DEFAULT_ELEMENTS))), ""]
    return "\n".join(lines)


def _chemical_space_line(allowed: list[str]) -> str:
    line = f"- chemical space (structures.allowed_elements): {', '.join(allowed)}"
    if set(allowed) != set(DEFAULT_ELEMENTS):
        line += f" (**widened by the config** from the engine's default {', '.join(DEFAULT_ELEMENTS)})"
    return line


def _plot_spectra(table: dict, path: Path) -> None:
    plt = pyplot()

    ok = table["status"] == "ok"
    elements = [e for e in ("Co", "Mn", "Ni", "Li", "O") if np.any((table["element"] == e) & ok)]
    fig, axes = plt.subplots(1, max(1, len(elements)), figsize=(3.2 * max(1, len(elements)), 3), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, el in zip(axes[0], elements):
        idx = np.flatnonzero((table["element"] == el) & ok)
        for i in rng.choice(idx, size=min(6, idx.size), replace=False):
            ax.plot(table["energy"][i], table["spectrum"][i], lw=1,
                    label=f"{table['structure_id'][i]}#{table['site_index'][i]}")
        ax.set_title(f"{el} K edge ({idx.size} sites)")
        ax.set_xlabel("E − E0 (eV)")
        ax.legend(fontsize=5)
    axes[0][0].set_ylabel("normalised μ")
    fig.tight_layout()
    save_png(fig, path)


def _plot_counts(summary: dict, path: Path) -> None:
    plt = pyplot()

    edges = list(summary["sites_per_edge"])
    ok = [summary["sites_per_edge"][e]["ok"] for e in edges]
    bad = [summary["sites_per_edge"][e]["failed"] for e in edges]
    skipped = [summary["sites_per_edge"][e][NOT_COMPUTED] for e in edges]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(edges, ok, label="ok")
    ax.bar(edges, bad, bottom=ok, label="failed")
    if any(skipped):
        ax.bar(edges, skipped, bottom=[a + b for a, b in zip(ok, bad)], label="not computed", color="0.8")
    ax.set_ylabel("nonequivalent sites")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


def write_dataset_card(shard_paths, structure_failures_tsv, outputs: dict, allowed_elements=DEFAULT_ELEMENTS) -> dict:
    table = read_shards(shard_paths)
    failures = collect_failures(table, shard_paths, structure_failures_tsv)
    summary = summarize(table, failures, shard_paths)
    summary["provenance"]["allowed_elements"] = list(allowed_elements)
    write_text(outputs["failures"], tsv_text(failures, FAILURE_COLUMNS))
    pairs = sorted(set(zip(table["structure_id"], table["split"])))
    write_text(outputs["split"], tsv_text([{"structure_id": sid, "split": sp} for sid, sp in pairs],
                                          ["structure_id", "split"]))
    write_json(outputs["summary"], summary)
    _plot_spectra(table, Path(outputs["spectra"]))
    _plot_counts(summary, Path(outputs["counts"]))
    write_text(outputs["card"], markdown(summary, failures))
    return summary

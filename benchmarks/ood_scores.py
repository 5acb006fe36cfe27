"""Do the trust scores of `xasengine predict` point at wrong predictions? (issue 16)

For the joint nonO SPT of a finished main job: on the simulated test split (materials the model never saw),
the share flagged by the SPT-latent distance (`ood`, > 95th percentile of validation) and by the PCA residual
(`atypical`), the OS error rate inside and outside the flagged set, and the AUROC of each score's percentile
for an OS error; and the percentiles the measured scans of the experimental report got.

    PYTHONPATH=src python benchmarks/ood_scores.py --results results
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from xasengine.evaluate import latent_vectors, predict_table
from xasengine.models.domain import latent_typicality, typicality
from xasengine.shards import read_shards
from xasengine.train import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    results = Path(args.results)
    model, meta = load_checkpoint(results / "models" / "spt-joint-nonO.pt")
    table = read_shards(sorted(glob.glob(str(results / "shards" / "*.h5"))), only_ok=True)
    elements, split = np.asarray(table["element"]).astype(str), np.asarray(table["split"]).astype(str)
    rows = (elements != "O") & (split == "test") & np.isin(elements, meta["elements"])
    spectra, energy = np.asarray(table["spectrum"])[rows], np.asarray(table["energy"])[rows]
    latent = latent_typicality(meta["latent_domain"], latent_vectors(model, meta, spectra, energy, elements[rows]))
    pca = typicality(meta["domain"], spectra)
    wrong = predict_table(model, meta, spectra, energy, elements[rows])["OS"]["pred"] != np.asarray(
        table["descriptors"]["OS"], dtype=float)[rows]
    out = {"n_test": int(rows.sum()), "n_os_wrong": int(wrong.sum())}
    for name, scores, flag in (("latent", latent, "ood"), ("pca", pca, "atypical")):
        flagged = np.array([s[flag] for s in scores])
        out[name] = {"flagged_share": round(float(flagged.mean()), 3),
                     "os_error_rate_flagged": round(float(wrong[flagged].mean()), 3) if flagged.any() else None,
                     "os_error_rate_unflagged": round(float(wrong[~flagged].mean()), 3),
                     "auroc_os_error": round(float(roc_auc_score(wrong, [s["percentile"] for s in scores])), 3)}
    report = results / "reports" / "experimental.json"
    if report.is_file():
        scans = json.loads(report.read_text())["scans"]
        out["measured_latent_percentiles"] = sorted(s["latent_percentile"] for s in scans)
        out["measured_pca_percentiles"] = sorted(s["typicality_percentile"] for s in scans)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

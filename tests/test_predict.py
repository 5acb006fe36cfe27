"""`xasengine predict` on the tiny workflow's trained SPT: measured XDI spectra and bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

XDI = Path(__file__).parent / "data" / "measured"  # public-domain XDI scans (XAS Data Library)
pytestmark = pytest.mark.workflow


def _predict(wf, *args):
    cmd = [sys.executable, "-m", "xasengine.cli", "predict", "--model", str(wf.root / "results" / "models"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_predicts_measured_spectra_folder(tiny_workflow):
    proc = _predict(tiny_workflow, str(XDI))
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == len(list(XDI.glob("*.xdi")))
    for r in results:
        assert r["element"] in {"Mn", "Ni", "Co"}
        os_pred = r["descriptors"]["OS"]
        assert abs(sum(os_pred["probabilities"].values()) - 1) < 1e-3
        assert str(int(os_pred["value"])) in os_pred["probabilities"]
        assert 0 <= r["typicality"]["percentile"] <= 100 and r["typicality"]["residual"] > 0
        assert r["typicality"]["atypical"] == (r["typicality"]["percentile"] > 95)
        latent = r["latent_distance"]
        assert latent["distance"] > 0 and 0 <= latent["percentile"] <= 100
        assert r["ood"] == latent["ood"] == (latent["percentile"] > 95)
    mno = next(r for r in results if r["source"].endswith("MnO_rt_01.xdi"))
    assert 6535 < mno["e0"] < 6560
    # both Mn scans calibrated on their foils, one aligned to the other; the edge's chemical shift is kept
    mno2 = next(r for r in results if r["source"].endswith("MnO2_rt_01.xdi"))
    assert mno["processing"]["calibration"] == mno2["processing"]["calibration"] == "reference"
    assert mno["processing"]["master"] == mno2["processing"]["master"]
    assert 0 < mno["processing"]["e0_minus_tabulated_edge_eV"] < mno2["processing"]["e0_minus_tabulated_edge_eV"]
    assert mno["processing"]["larch_pre_edge"]["nnorm"] == 0
    strict = json.loads(_predict(tiny_workflow, str(XDI), "--ood-percentile", "-1").stdout)
    assert all(r["ood"] for r in strict)  # every rank exceeds -1: the threshold is the user's
    csv = _predict(tiny_workflow, str(XDI / "MnO2_rt_01.xdi"), "--format", "csv")
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith("source,element,edge,e0,typicality_pct,atypical,latent_pct,ood")


def test_unsorted_columns_read_like_sorted_ones(tiny_workflow, tmp_path):
    energy = np.linspace(7650, 7800, 300)
    mu = 0.5 + np.arctan((energy - 7712) / 2) / np.pi
    ordered = _predict(tiny_workflow, str(_two_column(tmp_path / "a.dat", energy, mu)), "--element", "Co")
    reverse = _predict(tiny_workflow, str(_two_column(tmp_path / "b.dat", energy[::-1].copy(), mu[::-1].copy())),
                       "--element", "Co")
    assert ordered.returncode == reverse.returncode == 0, reverse.stderr
    a, b = json.loads(ordered.stdout)[0], json.loads(reverse.stdout)[0]
    assert a["descriptors"] == b["descriptors"] and a["processing"]["calibration"] == "none"


def test_predicts_a_shard(tiny_workflow):
    shard = sorted((tiny_workflow.root / "results" / "shards").glob("*.h5"))[0]
    proc = _predict(tiny_workflow, str(shard))
    assert proc.returncode == 0, proc.stderr
    assert all("#" in r["source"] for r in json.loads(proc.stdout))


def _two_column(path, energy, mu):
    np.savetxt(path, np.column_stack([energy, mu]))
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("nan", "NaN"),
        ("short", "grid needs"),
        ("element", "not Fe"),
        ("binary", "unreadable (binary data"),
        ("missing", "not found"),
    ],
)
def test_bad_input_gives_one_error_line_and_nonzero_exit(tiny_workflow, tmp_path, kind, message):
    energy = np.linspace(7650, 7800, 300)
    mu = 0.5 + np.arctan((energy - 7712) / 2) / np.pi
    element = ["--element", "Co"]
    if kind == "nan":
        mu[100] = np.nan
        path = _two_column(tmp_path / "s.dat", energy, mu)
    elif kind == "short":
        keep = energy < 7745  # post-edge present, but the grid reaches E0+40 eV
        path = _two_column(tmp_path / "s.dat", energy[keep], mu[keep])
    elif kind == "element":
        path, element = _two_column(tmp_path / "s.dat", energy, mu), ["--element", "Fe"]
    elif kind == "binary":
        path = tmp_path / "s.dat"
        path.write_bytes(b"\x00\xff\xfe\x89binary")
    else:
        path = tmp_path / "nope.xdi"
    proc = _predict(tiny_workflow, str(path), *element)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xasengine: error") and message in lines[0], proc.stderr


def test_plot_draws_inputs_with_nearest_training_spectra(tiny_workflow, tmp_path):
    from PIL import Image

    from xasengine.predict import load_models, nearest_training

    out = tmp_path / "pred.png"
    missing = tmp_path / "nope.xdi"  # a failed input: still listed, skipped in the figure
    proc = _predict(tiny_workflow, str(XDI), str(missing), "--plot", str(out))
    assert proc.returncode == 1 and "not found" in proc.stderr
    rows = json.loads(proc.stdout)
    assert sum(r["status"] == "failed" for r in rows) == 1
    with Image.open(out) as img:
        img.verify()
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width >= 600 and img.height >= 400
    single = tmp_path / "one.png"
    assert _predict(tiny_workflow, str(XDI / "MnO2_rt_01.xdi"), "--plot", str(single)).returncode == 0
    assert single.stat().st_size > 10_000
    # the nearest spectra are training spectra of the same element, nearest first
    meta = load_models(str(tiny_workflow.root / "results" / "models"))["nonO"][1]
    refs = meta["references"]["Mn"]
    bank = np.asarray(refs["spectrum"], dtype=np.float64)
    query = bank[0] + 0.01
    near = nearest_training(meta, "Mn", query)
    assert 1 <= len(near) <= 3 and near[0]["structure_id"] == refs["structure_id"][0]
    assert all(n["structure_id"] in refs["structure_id"] for n in near)
    distances = [n["distance"] for n in near]
    assert distances == sorted(distances)
    assert np.allclose(distances, np.sort(np.linalg.norm(bank - query, axis=1))[:len(near)])
    assert nearest_training(meta, "Zz", query) == []


def test_experimental_report_scores_every_measured_scan(tiny_workflow):
    """The `experimental` rule of the main job: every test scan of a known compound predicted, with nominal vs
    predicted OS, probabilities, the OOD flag, and reliability before/after temperature scaling on test."""
    reports = tiny_workflow.root / "results" / "reports"
    result = json.loads((reports / "experimental.json").read_text())
    assert sorted(r["compound"] for r in result["scans"]) == ["MnO", "MnO2", "NiOH2"] and not result["failed"]
    for r in result["scans"]:
        probs = r["OS"]["probabilities"]
        assert abs(sum(probs.values()) - 1) < 1e-3 and f"{r['OS']['predicted']:g}" in probs
        assert r["OS"]["expected"] == pytest.approx(sum(float(c) * p for c, p in probs.items()), abs=1e-3)
        assert 0 <= r["latent_percentile"] <= 100 and r["ood"] == (r["latent_percentile"] > 95)
        assert r["OS"]["read_right"] == (r["OS"]["predicted"] == r["OS"]["nominal"])
    assert result["os_exact"]["of"] == 3
    assert result["os_exact"]["right"] == sum(r["OS"]["exact"] for r in result["scans"])
    os_cal = result["calibration"]["OS"]
    assert os_cal["before"]["n"] == os_cal["after"]["n"] > 0 and 0 <= os_cal["after"]["ece"] <= 1
    for name in ("os", "probabilities", "spectra", "reliability"):
        assert (reports / f"experimental_{name}.png").stat().st_size > 10_000
    rows = (reports / "experimental.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("scan,compound,element,nominal_OS,predicted_OS,expected_OS")
    # three readings, standards leave-one-compound-out. shape x edge: the map's slope needs two compounds of one
    # element, so it can be fitted without NiOH2 (MnO and MnO2 remain) but not without either Mn compound. The
    # edge ladder needs two oxidised standards of the scan's own element, which no scan has here: each keeps the
    # SPT's shape without its metal share (no scan's E0 is within the metal gate of its foil)
    assert result["headline"] == "edge ladder" and set(result["others"]) == {"shape only", "shape × edge"}
    assert all(o["os_exact"]["of"] == 3 for o in result["others"].values())
    for r in result["scans"]:
        fusion, ladder = r["edge"]["edge_fusion"], r["edge"]["edge_ladder"]
        assert fusion["applied"] is (r["compound"] == "NiOH2") and r["edge"]["edge_above_foil_eV"] > 0
        if r["compound"] != "NiOH2":
            assert "too few measured standards" in fusion["why"]
            assert r["OS_readings"]["shape × edge"] == r["OS_readings"]["shape only"]
        assert ladder["applied"] and "fewer than 2" in ladder["how"] and r["edge"]["e0_above_foil_eV"] > 2
        assert r["OS"]["probabilities"].get("0", 0) == 0  # the tiny model may have no OS-0 class at all
        shape = r["OS_readings"]["shape only"]["probabilities"]
        assert r["OS"]["probabilities"]["2"] == pytest.approx(shape["2"] / (1 - shape.get("0", 0)), abs=2e-3)
    assert "fewer than 2 oxidised" in (reports / "experimental.html").read_text()  # the per-scan ladder table
    header = (reports / "experimental.csv").read_text().splitlines()[0]
    assert "expected_OS_shape_only" in header and "expected_OS_fused" in header


def test_measured_os_is_fused_with_the_edge_map_beside_the_model(tiny_workflow):
    """`predict --edge-fusion --model results/models` finds edge_map.json (rule edge_map, fitted on the three
    test scans) and moves the OS probabilities of calibrated scans towards the state whose simulated edges match;
    the shape-only reading is kept in the record; `--os-reading shape` reports it, the default reads the ladder."""
    from xasengine.models.edge_fusion import map_edge

    doc = json.loads((tiny_workflow.root / "results" / "models" / "edge_map.json").read_text())
    assert {s["compound"] for s in doc["standards"]} == {"MnO", "MnO2", "NiOH2"} and doc["map"] is not None
    assert set(doc["stats"]) >= {"Mn"} and all(v["sd"] >= 0.5 for lv in doc["stats"].values() for v in lv.values())
    fused = {r["source"]: r for r in json.loads(_predict(tiny_workflow, str(XDI), "--edge-fusion").stdout)}
    shape = {r["source"]: r for r in json.loads(_predict(tiny_workflow, str(XDI), "--os-reading", "shape").stdout)}
    ladder = {r["source"]: r for r in json.loads(_predict(tiny_workflow, str(XDI)).stdout)}
    assert fused.keys() == shape.keys() == ladder.keys()
    for source, f in fused.items():
        assert shape[source]["os_reading"] == "shape" and "edge_fusion" not in shape[source]
        assert f["os_reading"] == "fusion" and ladder[source]["os_reading"] == "ladder"
        # predict's default reading uses every standard of the map: Mn has two (MnO, MnO2), Ni one
        how = ladder[source]["edge_ladder"]["how"]
        assert how.startswith("edge ladder") if f["element"] == "Mn" else "fewer than 2" in how
        assert ladder[source]["edge_ladder"]["shape_probabilities"] == shape[source]["descriptors"]["OS"]["probabilities"]
        fusion = f["edge_fusion"]
        assert fusion["shape_probabilities"] == shape[source]["descriptors"]["OS"]["probabilities"]
        assert fusion["edge_on_feff_scale_eV"] == pytest.approx(
            map_edge(doc["map"], f["element"], fusion["edge_above_foil_eV"]), abs=1e-3)
        probs = f["descriptors"]["OS"]["probabilities"]
        assert abs(sum(probs.values()) - 1) < 1e-3
        assert f"{f['descriptors']['OS']['value']:g}" == max(probs, key=probs.get)
    edges = {Path(s).name: f["edge_fusion"]["edge_above_foil_eV"] for s, f in fused.items()}
    assert edges["MnO_rt_01.xdi"] + 5 < edges["MnO2_rt_01.xdi"]  # measured: 4.4 and 12.4 eV above the Mn foil
    missing = _predict(tiny_workflow, str(XDI), "--edge-fusion", "--edge-map", str(XDI / "no-such-map.json"))
    errors = [line for line in missing.stderr.splitlines() if line.strip()]
    assert missing.returncode == 1 and len(errors) == 1 and "no-such-map.json" in errors[0]


def test_standards_table_names_a_damaged_file(tmp_path):
    from xasengine.errors import StandardsError
    from xasengine.standards import compound_of, read_standards

    standards = read_standards(Path(__file__).parents[1] / "resources" / "measured" / "standards.tsv")
    assert compound_of("x/MnO2_rt_01.xdi", standards)["OS"] == 4.0
    assert compound_of("x/MnO_rt_01.xdi", standards)["compound"] == "MnO"  # not Mn2O3 / MnO2
    assert compound_of("x/unknown_rt_01.xdi", standards) is None
    bad = tmp_path / "standards.tsv"
    bad.write_text("compound\tfile_prefix\telement\tOS\tCN\tnote\nMnO\tMnO_rt\tMn\ttwo\t6\t\n")
    with pytest.raises(StandardsError, match=str(bad)):
        read_standards(bad)

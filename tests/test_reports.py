"""The comparison reports (xasengine.reports): perturbations that behave as their physics says, level 0 equal to
the clean scores, tables and radars that show every model, and the tiny workflow building every report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from test_spt import one_thread, synthetic_table  # noqa: F401  (one_thread: autouse fixture)
from xasengine.config import validate_config
from xasengine.errors import ConfigError, ReportError
from xasengine.models.family import fit_family, load_model, metrics_record, score_model
from xasengine.models.metrics import MAIN_SCORE
from xasengine.reports import robustness as rob
from xasengine.reports.benchmark import collect, shortfalls, write_benchmark

GRID = np.linspace(-15.0, 40.0, 128)
SWEEPS = {"noise_levels": [0.0, 0.02, 0.05, 0.1, 0.15, 0.2], "shift_ev": [1.0, 3.0], "broadening_ev": [1.0, 3.0],
          "seed": 0}


def _edge(center: float = 0.0, width: float = 1.0) -> np.ndarray:
    """A normalised edge with a white line at `center` (eV)."""
    return (1 / (1 + np.exp(-(GRID - center) / 0.8)) + 0.8 * np.exp(-0.5 * ((GRID - center - 3) / width) ** 2))[None]


def test_noise_scales_with_each_spectrums_edge_step_and_level_zero_is_the_identity():
    spectra = np.concatenate([_edge(), 3 * _edge()]).astype(np.float32)
    assert np.array_equal(rob.perturb("noise", spectra, GRID, 0.0, seed=0), spectra)
    noisy = rob.add_noise(np.repeat(spectra, 200, axis=0), 0.1, np.random.default_rng(0))
    residual = (noisy - np.repeat(spectra, 200, axis=0)).reshape(2, 200, -1)
    steps = rob.edge_steps(spectra)
    assert np.allclose(residual.std(axis=(1, 2)), 0.1 * steps, rtol=0.05)  # σ = level × edge step, per spectrum


def test_shift_moves_the_white_line_by_the_shift_and_broadening_lowers_it():
    spectrum = _edge(center=5.0).astype(np.float32)
    peak = GRID[spectrum[0].argmax()]
    for shift in (-3.0, 2.0):
        moved = rob.shift_energy(spectrum, GRID, shift)
        assert abs(GRID[moved[0].argmax()] - (peak + shift)) < 0.5  # grid step 0.43 eV
    assert np.array_equal(rob.shift_energy(spectrum, GRID, 0.0), spectrum)
    heights = [rob.broaden(spectrum, GRID, fwhm)[0].max() for fwhm in (0.0, 1.0, 3.0)]
    assert heights[0] == spectrum.max() and heights[0] > heights[1] > heights[2]
    # far above the edge the level is kept (edge padding, unit-area kernel)
    assert abs(rob.broaden(spectrum, GRID, 3.0)[0, -1] - spectrum[0, -1]) < 1e-3


def test_an_r2_panel_with_a_collapsed_model_is_floored_and_names_it():
    from xasengine.reports.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 0.1, 0.2], [0.8, 0.6, 0.4], label="SPT")
    ax.plot([0, 0.1, 0.2], [0.7, -5e4, -2e5], label="MLP")
    note = rob._clip_r2_axis(ax)
    assert ax.get_ylim()[0] == pytest.approx(rob.R2_FLOOR - 0.05) and ax.get_ylim()[1] <= 1.03
    assert "MLP" in note and "SPT" not in note and "-2e+05" in note
    fig2, ax2 = plt.subplots()
    ax2.plot([0, 0.1], [0.9, -0.5], label="SPT")
    before = ax2.get_ylim()
    assert rob._clip_r2_axis(ax2) == "" and ax2.get_ylim() == before
    plt.close(fig)
    plt.close(fig2)


def test_sweep_levels_include_zero_and_symmetric_shifts_and_refuse_negative_levels():
    levels = rob.sweep_levels(SWEEPS)
    assert levels["noise"][0] == 0 and len(levels["noise"]) >= 6 and max(levels["noise"]) == 0.2
    assert levels["shift"] == [-3.0, -1.0, 0.0, 1.0, 3.0]
    assert levels["broadening"] == [0.0, 1.0, 3.0]
    with pytest.raises(ReportError, match=r"reports.noise_levels must be >= 0, got \[-0.1\]"):
        rob.sweep_levels({**SWEEPS, "noise_levels": [0.0, -0.1]})


@pytest.mark.parametrize("bad, message", [
    ({"noise_levels": [0.0, -0.05]}, r"reports.noise_levels.1: -0.05 is less than the minimum of 0"),
    ({"shift_ev": []}, "reports.shift_ev: .* should be non-empty"),
    ({"umap": {"n_neighbours": 5}}, "reports.umap.n_neighbours: unknown key"),
])
def test_bad_report_config_fails_validation(bad, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"reports": bad})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Two real baselines on the synthetic table (labels set the edge position and the white-line width)."""
    table = synthetic_table(n_structures=40)
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for family, cfg in (("dt", {}), ("rf", {"n_estimators": 20})):
        model = fit_family(family, table, "nonO", cfg, targets=["OS", "CN", "NNRS"])
        paths[family] = folder / f"{family}-nonO.joblib"
        model.save(paths[family])
        (folder / f"{family}-nonO.json").write_text(json.dumps(metrics_record(model, table, "test", "synthetic")))
    return table, folder, paths


def test_level_zero_reproduces_the_clean_scores_exactly_and_noise_does_not_help(fitted):
    table, _, paths = fitted
    for path in paths.values():
        model = load_model(path)
        sweeps = rob.model_sweeps(model, table, rob.sweep_levels(SWEEPS), seed=0)
        clean = score_model(model, table)
        for kind in ("noise", "shift", "broadening"):
            zero = next(p for p in sweeps[kind] if p["level"] == 0)
            assert zero["descriptors"] == clean
        noise = sweeps["noise"]

        def mean_score(point):
            return np.mean([s[MAIN_SCORE[s["kind"]]] for s in point["descriptors"].values()])
        assert mean_score(noise[-1]) <= mean_score(noise[0]) + 0.05
        assert mean_score(noise[-1]) < mean_score(noise[0])  # σ = 0.2 edge step blurs the learnt edge position


def test_benchmark_table_and_radar_show_every_model_and_say_where_the_spt_does_not_lead(fitted, tmp_path):
    table, folder, _ = fitted
    docs = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    # a stand-in for the SPT: the decision tree's real scores relabelled, so the forest may lead it
    spt = {**docs["dt-nonO"], "model": "SPT"}
    (tmp_path / "spt-joint-nonO.json").write_text(json.dumps(spt))
    paths = [str(tmp_path / "spt-joint-nonO.json")] + [str(p) for p in sorted(folder.glob("*.json"))]
    outputs = {k: str(tmp_path / f"out.{k}") for k in ("html", "json", "csv", "times_csv", "radar")}
    result = write_benchmark(paths, None, outputs)
    assert result["models"] == ["SPT", "DecisionTree", "RandomForest"]
    with open(outputs["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert {r["model"] for r in rows} == {"SPT", "DecisionTree", "RandomForest"}
    assert {r["descriptor"] for r in rows} == {"OS", "CN", "NNRS"}
    html = (tmp_path / "out.html").read_text()
    assert all(label in html for label in result["models"]) and "inference s / 1000 spectra" in html
    # the relabelled tree ties the SPT on every descriptor, so every descriptor gets a sentence
    lagging = shortfalls(result)
    assert {(i["descriptor"], i["model"]) for i in lagging} >= {(n, "DecisionTree") for n in ("OS", "CN", "NNRS")}
    assert html.count("ties the SPT by 0.000") + html.count("leads the SPT by") == 3  # one sentence per descriptor
    assert "DecisionTree" in html.split("Where the SPT does not lead")[1]
    assert (tmp_path / "out.radar").read_bytes()[:4] == b"\x89PNG"


def test_benchmark_refuses_metrics_from_different_datasets(fitted, tmp_path):
    _, folder, _ = fitted
    doc = json.loads((folder / "rf-nonO.json").read_text())
    (tmp_path / "rf-other.json").write_text(json.dumps({**doc, "dataset_hash": "0123456789abcdef"}))
    with pytest.raises(ReportError, match="different datasets or splits.*rf-other.json: 0123456789abcdef"):
        collect([str(folder / "dt-nonO.json"), str(tmp_path / "rf-other.json")])


REPORTS = ["benchmark.html", "benchmark_radar.png", "benchmark.csv", "benchmark_times.csv", "robustness.json",
           "robustness_noise.png", "robustness_shift.png", "robustness_broadening.png", "expert_vs_joint.html",
           "expert_vs_joint.png", "umap-nonO.png", "umap-O.png"]


@pytest.mark.workflow
def test_tiny_workflow_builds_every_report_and_level_zero_matches_each_models_metrics(tiny_workflow):
    wf = tiny_workflow
    reports = wf.root / "results" / "reports"
    assert all((reports / name).is_file() for name in REPORTS)
    robustness = json.loads((reports / "robustness.json").read_text())
    models = set(wf.config.get("benchmark", {}).get("models", ["dt", "rf", "et", "xgb", "ftt", "amformer", "mlp"]))
    for group, per_model in robustness["groups"].items():
        assert len(per_model) == len(models) + 1  # every baseline and the SPT
        for label, sweeps in per_model.items():
            stem = "spt-joint" if label == "SPT" else next(
                p.stem.rsplit("-", 1)[0] for p in (wf.root / "results" / "metrics").glob(f"*-{group}.json")
                if json.loads(p.read_text())["model"] == label)
            clean = json.loads((wf.root / "results" / "metrics" / f"{stem}-{group}.json").read_text())["descriptors"]
            for kind in ("noise", "shift", "broadening"):
                zero = next(p for p in sweeps[kind] if p["level"] == 0)["descriptors"]
                for name, scores in zero.items():
                    key = MAIN_SCORE[scores["kind"]]
                    assert scores[key] == clean[name][key], (label, group, kind, name)
    assert [-v for v in robustness["levels"]["shift"]] == robustness["levels"]["shift"][::-1]
    with open(reports / "benchmark_times.csv") as fh:
        times = {row["model"]: row for row in csv.DictReader(fh)}
    assert len(times) == len(models) + 1 and all(float(r["train s (nonO)"]) > 0 for r in times.values())
    expert = json.loads((reports / "expert_vs_joint.json").read_text())
    assert all(e["joint_seconds"] > 0 and e["expert_seconds"] > 0 for e in expert["groups"].values())
    umap = json.loads((reports / "umap-O.json").read_text())
    assert len(umap["raw"]) == len(umap["latent"]) == umap["n_sites"] > 0


@pytest.mark.workflow
def test_html_report_holds_every_report_figure(tiny_workflow, tmp_path):
    out = tmp_path / "report.html"
    tiny_workflow.snakemake("--report", str(out))
    page = out.read_text(errors="replace")
    for name in REPORTS:
        if name.endswith((".png", ".html")):
            assert name in page, name


@pytest.mark.workflow
def test_negative_noise_level_fails_before_anything_runs(tiny_workflow):
    from conftest import tiny_config

    wf = tiny_workflow
    wf.set_config(tiny_config(reports={"noise_levels": [0.0, -0.1]}))
    try:
        proc = wf.snakemake("-n", check=False)
    finally:
        wf.set_config(tiny_config())
    assert proc.returncode != 0
    assert "noise_levels" in proc.stdout + proc.stderr and "-0.1 is less than the minimum of 0" in proc.stdout + proc.stderr

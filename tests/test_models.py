"""Every model family behind one interface (xasengine.models.family): fit, save / load, predict, score, timing,
and bad settings, on the tiny workflow's real FEFF shards; learning itself on the labelled synthetic table of
test_spt (peak position and width set by the labels), where the answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from test_spt import SMALL_CFG, one_thread, synthetic_table  # noqa: F401  (one_thread: autouse fixture)
from xasengine.config import SCHEMA_PATH, validate_config
from xasengine.errors import ConfigError, ModelError
from xasengine.models.family import (BASELINES, FAMILIES, fit_family, load_model, metrics_record,
                                     resolve_family_cfg, score_model, scored_rows)
from xasengine.models.targets import GROUP_TARGETS
from xasengine.shards import read_shards

FAST = {"dt": {}, "rf": {"n_estimators": 10}, "et": {"n_estimators": 10}, "xgb": {"n_estimators": 10},
        "ftt": {"epochs": 2}, "amformer": {"epochs": 2}, "mlp": {"epochs": 5}, "spt": {"max_epochs": 2}}
# enough to learn CN (a peak width) from 72 training spectra; AMFormer needs 60 epochs: at 30 its weighted F1 was
# 0.79 / 0.72 / 0.25 for seeds 0 / 1 / 2 (0.25 = one class for all), at 60 it was 0.915-0.917 for all three
LEARN = {**FAST, "rf": {"n_estimators": 30}, "et": {"n_estimators": 30}, "xgb": {"n_estimators": 30},
         "ftt": {"epochs": 30, "lr": 3e-3}, "amformer": {"epochs": 60, "lr": 3e-3}, "mlp": {"epochs": 40},
         "spt": {**SMALL_CFG, "patience": None}}


@pytest.fixture(scope="module")
def tiny_table(tiny_workflow):
    return read_shards(sorted((tiny_workflow.root / "results" / "shards").glob("shard-*.h5")), only_ok=True)


@pytest.mark.workflow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_saves_loads_and_predicts_identically_on_real_shards(tiny_table, family, tmp_path):
    model = fit_family(family, tiny_table, "nonO", FAST[family], seed=0)
    path = tmp_path / ("model.pt" if family == "spt" else "model.joblib")
    model.save(path)
    loaded = load_model(path)
    rows = np.isin(tiny_table["element"], model.elements)
    spectra, elements = tiny_table["spectrum"][rows], tiny_table["element"][rows]
    before, after = model.predict(spectra, elements), loaded.predict(spectra, elements)
    assert sorted(before) == sorted(GROUP_TARGETS["nonO"]) and loaded.family == family
    for name in before:
        assert before[name].shape == (rows.sum(),)
        np.testing.assert_array_equal(before[name], after[name])
    record = metrics_record(loaded, tiny_table)
    n_test = int(scored_rows(tiny_table, loaded, "test").sum())
    assert n_test > 0 and record["n_sites"] == n_test
    assert record["descriptors"]["OS"]["n"] == n_test and record["infer_seconds_per_1000"] > 0
    json.dumps(record)  # the rule writes it as JSON


@pytest.mark.workflow
def test_train_baseline_rule_writes_the_spt_metrics_shape_with_timing(tiny_workflow):
    results = tiny_workflow.root / "results"
    spt = json.loads((results / "metrics" / "spt-joint-nonO.json").read_text())
    for family in BASELINES:
        for group in ("nonO", "O"):
            doc = json.loads((results / "metrics" / f"{family}-{group}.json").read_text())
            assert doc["model"] == FAMILIES[family].label and doc["group"] == group
            assert doc["train_seconds"] > 0 and doc["infer_seconds_per_1000"] > 0
            assert sorted(doc["descriptors"]) == sorted(GROUP_TARGETS[group])
            if group == "nonO":  # the same test sites as the SPT
                assert {k: v["n"] for k, v in doc["descriptors"].items()} == \
                       {k: v["n"] for k, v in spt["descriptors"].items()}
            assert (results / "models" / f"{family}-{group}.joblib").is_file()
            assert (results / "benchmarks" / "models" / f"{family}-{group}.tsv").is_file()


def _shuffled(table: dict, name: str, seed: int = 0) -> dict:
    """The table with one descriptor's training labels permuted among the training sites (test untouched)."""
    values = np.array(table["descriptors"][name], dtype=np.float64)
    train = np.flatnonzero(table["split"] == "train")
    values[train] = values[np.random.default_rng(seed).permutation(train)]
    return {**table, "descriptors": {**table["descriptors"], name: values}}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_model_that_sees_the_labels_beats_one_trained_on_shuffled_labels(family):
    table = synthetic_table()
    honest = score_model(fit_family(family, table, "nonO", LEARN[family], targets=["CN"]), table)["CN"]
    fooled = score_model(fit_family(family, _shuffled(table, "CN"), "nonO", LEARN[family], targets=["CN"]),
                         table)["CN"]
    assert honest["f1_weighted"] > 0.85 and honest["f1_weighted"] > fooled["f1_weighted"] + 0.2


def test_seed_changes_stochastic_families_only():
    table = synthetic_table(n_structures=30)
    for family in ("dt", "rf"):
        a, b = (fit_family(family, table, "O", FAST[family], seed=s, targets=["NNRS"]).predict(
            table["spectrum"][table["element"] == "O"], table["element"][table["element"] == "O"])["NNRS"]
            for s in (0, 1))
        assert np.array_equal(a, b) != FAMILIES[family].stochastic


def test_bad_family_settings_are_refused_with_one_clear_error(tmp_path):
    table = synthetic_table(n_structures=10)
    with pytest.raises(ModelError, match="unknown model family 'gbm'"):
        fit_family("gbm", table, "nonO")
    with pytest.raises(ModelError, match=r"unknown mlp cfg keys \['epoch'\]"):
        fit_family("mlp", table, "nonO", {"epoch": 3})
    with pytest.raises(ModelError, match="not defined for group 'O'"):
        fit_family("dt", table, "O", targets=["MOOD"])
    model = fit_family("dt", table, "nonO", targets=["OS"])
    with pytest.raises(ModelError, match=r"trained on \['Co', 'Mn'\], not \['Ni'\]"):
        model.predict(table["spectrum"][:1], ["Ni"])
    damaged = tmp_path / "dt-nonO.joblib"
    damaged.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="dt-nonO.joblib"):
        load_model(damaged)


@pytest.mark.parametrize("bad, message", [
    ({"models": ["rf", "gbm"]}, "benchmark.models.1: 'gbm' is not one of"),
    ({"seeds": []}, "benchmark.seeds: .* should be non-empty"),
    ({"xgb": {"n_trees": 5}}, "benchmark.xgb.n_trees: unknown key"),
])
def test_bad_benchmark_config_fails_validation(bad, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"benchmark": bad})


def test_schema_lists_exactly_each_familys_settings():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["benchmark"]["properties"]
    assert schema["models"]["items"]["enum"] == list(BASELINES)
    for family in BASELINES:
        listed = schema[family].get("properties") or schema[family]["propertyNames"]["enum"]  # typed or just named
        assert sorted(listed) == sorted(resolve_family_cfg(family, {}))


@pytest.mark.workflow
def test_benchmark_seeds_reports_the_spread_of_the_per_seed_runs(tiny_workflow):
    wf = tiny_workflow
    jobs = wf.executed(wf.snakemake("benchmark_seeds"))
    seeds = wf.config["benchmark"]["seeds"]
    stochastic = [f for f in wf.config.get("benchmark", {}).get("models", BASELINES) if FAMILIES[f].stochastic]
    assert jobs["seed_run"] == (len(stochastic) + 1) * 2 * len(seeds)  # + the joint SPT; two site groups
    summary = json.loads((wf.root / "results" / "reports" / "benchmark_seeds.json").read_text())
    assert summary["seconds"] > 0 and summary["cpu_seconds"] > 0 and "DecisionTree" not in summary["models"]
    runs = [json.loads((wf.root / "results" / "seeds" / f"rf-nonO-seed{s}.json").read_text()) for s in seeds]
    r2 = [run["descriptors"]["MOOD"]["r2"] for run in runs]
    entry = summary["models"]["RandomForest"]["nonO"]["descriptors"]["MOOD"]["r2"]
    assert entry["n_seeds"] == len(seeds) and entry["mean"] == pytest.approx(np.mean(r2))
    assert entry["sd"] == pytest.approx(np.std(r2, ddof=1)) and entry["sd"] > 0  # the seed does change a forest
    assert "SPT" in summary["models"] and "± " in (wf.root / "results" / "reports" / "benchmark_seeds.md").read_text()
    assert wf.planned("benchmark_seeds") == {}
    # the seed summary now feeds the benchmark report: the main target reruns just that, and the shared
    # fixture is left complete for the tests after this one
    assert wf.executed(wf.snakemake())["benchmark"] == 1
    assert wf.planned() == {}

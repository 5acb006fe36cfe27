"""Amorphous config: bad input is one clear line before any job; a missing cell with shipped_only never runs MD."""
import pytest
import yaml
from conftest import sites_not_in_shipped_cache

from xasengine.config import REPO_ROOT, config_problems, load_config
from xasengine.errors import XasEngineError
from xasengine.structures import amorphous


def _config(**amo):
    raw = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    raw["amorphous"] |= {"enabled": True} | amo
    return raw


def test_every_default_cell_and_its_sampled_sites_ship(tmp_path):
    """The default run never starts MD or FEFF for a glass: each composition x seed of the default config is a
    shipped cell, and the engine's FEFF stage finds every site it samples in the shipped cache."""
    from xasengine.sites import site_manifest

    cfg = load_config(REPO_ROOT / "config.yaml")
    amo = cfg["amorphous"] | {"cache_dir": str(tmp_path / "cache")}
    assert amo["enabled"] is True
    paths = []
    for formula in amo["compositions"]:
        for seed in amo["seeds"]:
            paths.append(tmp_path / f"{formula}-s{seed}.json")
            assert amorphous.amorphous_cell(formula, seed, amo, paths[-1]) == "shipped", (formula, seed)
    records, failures = amorphous.amorphous_records([str(p) for p in paths], amo)
    assert failures == [] and len(records) == len(paths)
    for record in records:
        manifest = site_manifest(record, cfg["sites"]["absorbers"], cfg["sites"]["edge"], cfg["sites"]["symprec"])
        assert len(manifest["sites"]) == amo["sites_per_cell"] * len({site["element"] for site in manifest["sites"]})
    missing = sites_not_in_shipped_cache(records, cfg, tmp_path)
    assert missing == [], f"not in the shipped FEFF cache: {missing}"


@pytest.mark.parametrize("amo, needle", [
    ({"compositions": ["FeO"]}, "FeO has Fe, not in structures.allowed_elements"),
    ({"protocol": {"melt_K": 200.0}}, "melt_K: 200 K must exceed final_K"),
    ({"protocol": {"melt_K": 9000.0}}, "amorphous.protocol.melt_K"),
    ({"protocol": {"melt_steps": 0}}, "amorphous.protocol.melt_steps"),
    ({"seeds": [1], "finetune_cells": 1}, "leaves none held out"),
    ({"seeds": [1, 1, 2]}, "amorphous.seeds: [1, 1, 2] has non-unique elements"),
])
def test_bad_amorphous_config_names_the_problem(amo, needle):
    problems = config_problems(_config(**amo))[1]
    assert problems and any(needle in line for line in problems), problems


def test_missing_cell_with_shipped_only_is_a_clear_error(tmp_path):
    amo = load_config(REPO_ROOT / "config.yaml")["amorphous"] | {
        "shipped_dir": str(tmp_path / "shipped"), "cache_dir": str(tmp_path / "cache")}
    with pytest.raises(XasEngineError, match="shipped_only is true; make it with"):
        amorphous.amorphous_cell("Li7Co5O12", 1, amo, tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "cache").exists()


def test_the_shipped_cell_is_found_by_the_default_configs_inputs_without_md(tmp_path):
    import json

    from xasengine.config import load_config

    from conftest import REPO

    amo = load_config(REPO / "config.yaml")["amorphous"] | {"cache_dir": str(tmp_path / "cache")}
    out = tmp_path / "cell.json"
    assert amorphous.amorphous_cell("Li7Co5O12", 1, amo, out) == "shipped"
    doc = json.loads(out.read_text())
    assert doc["provenance"]["n_atoms"] == 96 and doc["provenance"]["relaxation"]["max_force_final_eV_per_A"] <= 0.05
    assert not (tmp_path / "cache").exists()


def test_zero_shot_only_needs_no_second_cell():
    """finetune_cells 0 holds every cell out (a single seed is enough) and the report skips fine-tuning."""
    from xasengine.structures.amorphous import amorphous_split

    assert config_problems(_config(seeds=[1], finetune_cells=0))[1] == []
    assert amorphous_split(1, [1], 0) == "amorphous-test" and amorphous_split(1, [1, 2], 1) == "amorphous-train"

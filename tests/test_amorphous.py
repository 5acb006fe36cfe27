"""Melt-quench protocol: validation before any MD, packing, and a real (very short) CHGNet run."""

import json

import numpy as np
import pytest

from xasengine.structures.amorphous import (MeltQuench, amorphous_cell, amorphous_records, melt_quench,
                                            random_packing, scaled_composition, write_cell)
from xasengine.structures.relax import RelaxError, RelaxSettings


@pytest.mark.parametrize("bad, match", [({"melt_K": 20000}, "melt_K"), ({"final_K": 4000}, "must exceed"),
                                        ({"quench_steps": 0}, "quench_steps"), ({"timestep_fs": 50}, "timestep")])
def test_out_of_range_protocol_is_one_error_before_md(bad, match):
    with pytest.raises(RelaxError, match=match):
        melt_quench("CoO", 8, MeltQuench(**bad), 1, RelaxSettings())


def test_unsupported_element_is_named():
    with pytest.raises(RelaxError, match="CHGNet does not cover Am"):
        melt_quench("AmO2", 6, MeltQuench(melt_steps=1, quench_steps=1), 1, RelaxSettings())


def test_random_packing_has_the_composition_density_and_separation():
    composition = scaled_composition("Li7Co5O12", 100)
    assert composition.num_atoms == 96
    s = random_packing(composition, 4.0, 1.6, seed=3)
    assert s.composition == composition and s.density == pytest.approx(4.0, rel=1e-6)
    assert s.distance_matrix[~np.eye(len(s), dtype=bool)].min() >= 1.6


def test_short_melt_quench_gives_a_relaxed_cell_with_provenance(tmp_path):
    protocol = MeltQuench(density_g_cm3=5.5, melt_steps=3, quench_steps=3)
    structure, prov = melt_quench("CoO", 8, protocol, 2, RelaxSettings(fmax=0.3, max_steps=300, keep_symmetry=False),
                                  progress=False)
    assert prov["relaxation"]["max_force_final_eV_per_A"] < 0.3 and prov["seed"] == 2
    assert prov["protocol"]["melt_K"] == 3000 and prov["seconds_per_md_step"] > 0
    doc = json.loads(write_cell(tmp_path, "CoO", structure, prov).read_text())
    assert doc["id"] == "amorphous-CoO-s2" and len(doc["structure"]["sites"]) == 8


AMO = {"seeds": [1, 2], "finetune_cells": 1, "sites_per_cell": 2, "atoms": 8, "shipped_only": False,
       "protocol": {"density_g_cm3": 5.5, "melt_steps": 3, "quench_steps": 3}}


def test_cells_become_records_split_by_cell_with_a_seeded_site_sample(tmp_path):
    """Rule amorphous_cell's output joins the engine: the lowest seed fine-tunes, the other is held out; sites are
    a per-element sample (multiplicity 1, no symmetry reduction), the same on every call; OS labels are whole
    numbers ranked by bond-valence sum and keep the cell neutral."""
    from xasengine.descriptors import site_descriptors
    from xasengine.shards import split_of
    from xasengine.sites import site_manifest

    amo = AMO | {"cache_dir": str(tmp_path / "cache"), "relax_settings": {"fmax": 0.3, "max_steps": 300}}
    paths = []
    for seed in (1, 2):
        paths.append(tmp_path / f"cell-{seed}.json")
        assert amorphous_cell("LiCoO2", seed, amo, paths[-1]) == "md"
    records, failures = amorphous_records([str(p) for p in paths], amo)
    assert not failures and [r.family for r in records] == ["amorphous-train", "amorphous-test"]
    split_cfg = {"test_families": [], "seed": 0, "test_fraction": 0.5, "val_fraction": 0.5}
    assert [split_of(r.id, r.family, split_cfg) for r in records] == ["amorphous-train", "amorphous-test"]
    manifest = site_manifest(records[0], ["Co", "Li", "O"], "K", 0.01)
    assert sorted(s["element"] for s in manifest["sites"]) == ["Co", "Co", "Li", "Li", "O", "O"]
    assert all(s["multiplicity"] == 1 for s in manifest["sites"])
    assert manifest == site_manifest(records[0], ["Co", "Li", "O"], "K", 0.01)
    labels = site_descriptors(records[0].structure, glass=True)
    assert all(float(v["OS"]).is_integer() for v in labels.values())
    assert sum(v["OS"] for v in labels.values()) == 0


def test_a_cell_whose_relaxation_does_not_converge_is_a_recorded_failure(tmp_path):
    amo = AMO | {"cache_dir": str(tmp_path / "cache"), "relax_settings": {"fmax": 1e-4, "max_steps": 1}}
    out = tmp_path / "cell.json"
    assert amorphous_cell("LiCoO2", 1, amo, out) == "failed"
    records, failures = amorphous_records([str(out)], amo)
    assert records == [] and failures[0]["structure_id"] == "amorphous-LiCoO2-s1"
    assert "did not converge in 1 steps" in failures[0]["message"] and failures[0]["stage"] == "amorphous"

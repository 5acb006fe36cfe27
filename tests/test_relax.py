"""CHGNet relaxation stage: real potential on a small LiCoO2 cell, a few steps."""

import json

import numpy as np
import pytest

from xasengine.config import validate_config
from xasengine.errors import ConfigError
from xasengine.structures.collect import collect_structures
from xasengine.structures.io import StructureRecord, load_record, structure_hash, write_record
from xasengine.structures.library import build_library
from xasengine.structures.relax import RelaxError, RelaxSettings, cached_relax, relax_structure


@pytest.fixture(scope="module")
def rattled_licoo2():
    """LiCoO2 (4 atoms) with positions displaced 0.08 Å, so there is something to relax."""
    structure = build_library(only_ids=["lib-licoo2"])[0].structure
    displacements = np.random.default_rng(3).normal(scale=0.08, size=(len(structure), 3))
    for i, d in enumerate(displacements):
        structure.translate_sites([i], d, frac_coords=False)
    return structure


SETTINGS = RelaxSettings(fmax=0.05, max_steps=200, relax_cell=False, keep_symmetry=False)


@pytest.fixture(scope="module")
def relaxed(rattled_licoo2):
    return relax_structure(rattled_licoo2, SETTINGS, "licoo2-rattled")


def test_chgnet_lowers_the_energy_below_fmax_and_records_provenance(rattled_licoo2, relaxed):
    settings, result = SETTINGS, relaxed
    p = result.provenance
    assert p["energy_final_eV_per_atom"] < p["energy_initial_eV_per_atom"]
    assert p["max_force_initial_eV_per_A"] > settings.fmax > p["max_force_final_eV_per_A"]
    assert p["potential"].startswith("CHGNet") and p["potential_version"].startswith("chgnet 0.4")
    assert p["input_hash"] == structure_hash(rattled_licoo2) != structure_hash(result.structure)
    assert 0 < p["steps"] <= settings.max_steps


def test_relaxation_is_cached_by_input(rattled_licoo2, tmp_path):
    settings = SETTINGS
    first = cached_relax(rattled_licoo2, settings, "x", tmp_path / "cache", shipped_dir=tmp_path / "none")
    (cached,) = (tmp_path / "cache").glob("*.json")
    again = cached_relax(rattled_licoo2, settings, "x", tmp_path / "cache", shipped_dir=tmp_path / "none")
    assert structure_hash(again.structure) == structure_hash(first.structure) and again.provenance == first.provenance
    cached.write_text("{not json")
    with pytest.raises(RelaxError, match="damaged relaxation cache file"):
        cached_relax(rattled_licoo2, settings, "x", tmp_path / "cache", shipped_dir=tmp_path / "none")


def test_step_limit_gives_a_recorded_relax_failure(tmp_path):
    options = validate_config({"structures": {
        "library_subset": "tiny", "library_ids": ["lib-licoo2", "lib-coo-rocksalt"],
        "relax_families": {"prototype": "chgnet"}, "relax_settings": {"max_steps": 1, "fmax": 1e-4},
        "relax_cache_dir": str(tmp_path / "cache")}})["structures"]
    records, failures = collect_structures(options)
    stages = {f["structure_id"]: (f["stage"], f["message"]) for f in failures}
    assert stages["lib-licoo2"][0] == "relax" and "did not converge in 1 steps" in stages["lib-licoo2"][1]
    assert "lib-licoo2" not in {r.id for r in records}


def test_relaxed_record_keeps_its_provenance_on_disk(rattled_licoo2, relaxed, tmp_path):
    result = relaxed
    record = StructureRecord("lib-x", result.structure, "library", "prototype", relaxation=result.provenance)
    loaded = load_record(write_record(record, tmp_path))
    assert loaded.relaxation == result.provenance and loaded.hash == record.hash
    assert "relaxation" not in json.loads(write_record(StructureRecord("lib-y", rattled_licoo2, "library",
                                                                       "prototype"), tmp_path).read_text())


@pytest.mark.parametrize("bad", [{"relax": "mace"}, {"relax_families": {"x": "vasp"}},
                                 {"relax_settings": {"max_steps": 0}}, {"relax_settings": {"fmax": -1}}])
def test_bad_relax_settings_are_one_config_error(bad):
    with pytest.raises(ConfigError, match="structures.relax"):
        validate_config({"structures": bad})


def test_every_default_relaxation_and_its_feff_ship(tmp_path):
    """The default run never starts CHGNet or FEFF for a relaxed family: every reference cell the default config
    relaxes has its relaxation in resources/relaxed, and each site of the relaxed cell is in the shipped cache."""
    from conftest import sites_not_in_shipped_cache

    from xasengine.config import REPO_ROOT, load_config
    from xasengine.structures.reference import read_reference_ids
    from xasengine.structures.relax import SHIPPED_RELAXED, cache_key, method_for, potential_version

    cfg = load_config(REPO_ROOT / "config.yaml")
    options = cfg["structures"]
    entries = [e for e in build_library(only_ids=read_reference_ids()) if method_for(e.family, options) == "chgnet"]
    assert entries, "the default config relaxes no reference family"
    settings = RelaxSettings.from_config(options["relax_settings"])
    unshipped = [e.id for e in entries if not (
        SHIPPED_RELAXED / f"{cache_key(structure_hash(e.structure), settings, potential_version())}.json").exists()]
    assert unshipped == [], f"relaxation not in {SHIPPED_RELAXED}: {unshipped}"
    records, failures = collect_structures(options | {"library_ids": [e.id for e in entries],
                                                      "relax_cache_dir": str(tmp_path / "relax")})
    assert failures == [] and len(records) == len(entries) and all(r.relaxation for r in records)
    missing = sites_not_in_shipped_cache(records, cfg, tmp_path)
    assert missing == [], f"not in the shipped FEFF cache: {missing}"

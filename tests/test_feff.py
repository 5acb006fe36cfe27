"""Real FEFF10 (feff10-rs) on rock-salt CoO with the `ci` preset: inputs, cache, timeout."""

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from xasengine.config import validate_config
from xasengine.errors import ConfigError
from xasengine.feff.cache import FeffCache, cache_key, export_shipped
from xasengine.feff.inputs import feff_input_text
from xasengine.feff.presets import resolve_preset
from xasengine.feff.runner import run_structure
from xasengine.sites import site_manifest
from xasengine.structures.io import StructureRecord

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def coo():
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.26), ["Co", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return StructureRecord("lib-coo-test", s.get_primitive_structure(), "library", "prototype")


def _feff_cfg(tmp_path, **extra):
    cfg = validate_config({"feff": {"preset": "ci", "shipped_cache": None, "cache_dir": str(tmp_path / "cache")}})
    cfg["feff"].update(extra)
    return cfg["feff"]


def test_input_is_deterministic_and_follows_the_preset(coo):
    params = resolve_preset("default")
    a = feff_input_text(coo.structure, 0, "K", params)
    assert a == feff_input_text(coo.structure, 0, "K", params)
    assert "SCF 3.0" in a and "FMS 4.0" in a and "LDOS" not in a and "EGRID" in a
    assert a.index("EGRID") < a.index("ATOMS")
    ci = feff_input_text(coo.structure, 0, "K", resolve_preset("ci"))
    assert "SCF" not in ci
    assert cache_key(a, "v1") != cache_key(ci, "v1") != cache_key(ci, "v2")
    with pytest.raises(ConfigError, match="unknown field"):
        resolve_preset("ci", {"fmss": 3})


def test_real_feff_run_then_cache_hit(coo, tmp_path):
    manifest = site_manifest(coo, ["Co", "O"], "K", 0.01)
    assert [s["multiplicity"] for s in manifest["sites"]] == [1, 1]
    cfg = _feff_cfg(tmp_path)
    first = run_structure(coo, manifest, cfg, tmp_path / "work")
    assert [s["status"] for s in first["sites"]] == ["ok", "ok"]
    assert not any(s["cached"] for s in first["sites"])
    co = first["sites"][0]
    energy, mu = np.array(co["energy"]), np.array(co["mu"])
    assert 7650 < energy[np.argmax(np.gradient(mu, energy))] < 7760  # Co K edge ~7709 eV
    assert co["stage_seconds"]["FMS"] > 0
    second = run_structure(coo, manifest, cfg, tmp_path / "work")
    assert all(s["cached"] for s in second["sites"])
    assert second["sites"][0]["mu"] == co["mu"]
    # packed into a shipped HDF5 cache, a fresh folder still finds the results
    n = export_shipped(cfg["cache_dir"], tmp_path / "shipped" / "feff.h5")
    assert n == 2
    shipped = FeffCache(tmp_path / "empty", tmp_path / "shipped").get(co["feff_hash"])
    assert shipped["mu"] == co["mu"]


def test_timeout_is_recorded_not_raised(coo, tmp_path):
    manifest = site_manifest(coo, ["Co"], "K", 0.01)
    result = run_structure(coo, manifest, _feff_cfg(tmp_path, timeout_s=0.3), tmp_path / "work")
    (site,) = result["sites"]
    assert site["status"] == "failed" and "timeout" in site["message"]
    assert (tmp_path / "work" / "lib-coo-test" / "site0000" / "feff.inp").exists()  # kept for debugging


def test_cached_only_uses_the_shipped_results_and_never_runs_feff(tmp_path):
    """Training on the shipped dataset must not start hours of FEFF for sites nobody computed yet."""
    from pathlib import Path

    from xasengine.structures.io import read_structure_file
    from xasengine.structures.library import build_library

    entry = build_library(only_ids=["lib-coo-rocksalt"])[0]
    coo = StructureRecord(entry.id, entry.structure, "library", entry.family)
    cfg = validate_config({"feff": {"cached_only": True, "cache_dir": str(tmp_path / "cache")}})["feff"]
    shipped = run_structure(coo, site_manifest(coo, ["Co", "O"], "K", 0.01), cfg, tmp_path / "work")
    assert [(s["status"], s["cached"]) for s in shipped["sites"]] == [("ok", True), ("ok", True)]

    strained = read_structure_file(Path(__file__).parent / "data" / "NiO_strained.cif")
    nio = StructureRecord("lib-extra-nio", strained, "extra", "extra")
    result = run_structure(nio, site_manifest(nio, ["Ni"], "K", 0.01), cfg, tmp_path / "work")
    assert [s["status"] for s in result["sites"]] == ["not_computed"]
    assert "cached_only" in result["sites"][0]["message"]
    assert not (tmp_path / "work").exists()


def test_a_feff_crash_is_reported_with_feffs_own_reason(tmp_path):
    """log1.dat of a real pot-module crash (Mn site of a rock-salt Mn/Ni cell, `default` preset, feff10-rs 0.2.4)."""
    from pathlib import Path
    import shutil

    from xasengine.feff.runner import feff_error_lines

    shutil.copy(Path(__file__).parent / "data" / "feff_crash" / "log1.dat", tmp_path / "log1.dat")
    lines = feff_error_lines(tmp_path)
    assert "Cannot determine Norman radius -- quitting." in lines
    assert "Z=           25" in lines[0] and lines[-1] == "FRNRM-1"
    assert feff_error_lines(tmp_path / "nothing-here") == []


def test_rescue_input_slows_scf_mixing_only():
    from xasengine.feff.inputs import RESCUE_SCF_CONTROL, rescue_input_text

    params = resolve_preset("default")
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.26), ["Co", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    inp = feff_input_text(s.get_primitive_structure(), 0, "K", params)
    rescued = rescue_input_text(inp)
    changed = [(a, b) for a, b in zip(inp.splitlines(), rescued.splitlines()) if a != b]
    assert changed == [("SCF 3.0 0 30 .2 1", f"SCF 3.0 {RESCUE_SCF_CONTROL}")]
    assert rescue_input_text(rescued) is None  # nothing slower to try
    assert rescue_input_text(feff_input_text(s.get_primitive_structure(), 0, "K", resolve_preset("ci"))) is None


def test_a_crashing_site_is_rescued_with_slower_scf_mixing(tmp_path):
    """A real FEFF crash: site 14 (Co) of the library rock-salt Co/Mn cell lib-coo-rocksalt-co75mn25-59928975 as
    pymatgen wrote it before inputs were made canonical (tests/data/feff_crash/norman_radius.inp). With the
    `default` preset FEFF's pot module stops with 'Cannot determine Norman radius'; SCF mixing 0.05 converges
    (≈1.5 min of real FEFF). Whether FEFF crashes here hangs on 1e-16 Å of noise in the coordinates, which is why
    the engine's own inputs are canonical; the text is kept as it was so that the crash is the same everywhere."""
    from xasengine.errors import FeffCrashError
    from xasengine.feff.runner import run_feff_job

    inp = (DATA / "feff_crash" / "norman_radius.inp").read_text()
    cfg = validate_config({"feff": {"shipped_cache": None, "cache_dir": str(tmp_path / "cache")}})["feff"]
    with pytest.raises(FeffCrashError, match="Cannot determine Norman radius"):
        run_feff_job(inp, tmp_path / "work", {**cfg, "rescue": False})
    entry = run_feff_job(inp, tmp_path / "work", cfg)
    assert entry["rescue"].startswith("rescued with slower SCF charge mixing")
    assert "Cannot determine Norman radius" in entry["rescue"]  # the first attempt's reason is kept
    energy, mu = np.array(entry["energy"]), np.array(entry["mu"])
    assert 7700 < energy[np.argmax(np.gradient(mu, energy))] < 7740  # a Co K edge


def test_newly_cached_names_the_structures_a_new_cache_part_completes(coo, tmp_path, capsys):
    """cached_only leaves a site not_computed; once FEFF results for it arrive in a cache (here: computed with
    the `ci` preset into the cache folder), `xasengine newly-cached --forget` removes just that structure's results."""
    import json

    from xasengine.cli import main
    from xasengine.feff.cache import newly_cached

    manifest = site_manifest(coo, ["Co"], "K", 0.01)
    base = {"preset": "ci", "shipped_cache": None, "cache_dir": str(tmp_path / "cache")}
    cached_only = validate_config({"feff": {**base, "cached_only": True}})["feff"]
    results = tmp_path / "results"
    for stage in ("sites", "descriptors", "feff"):
        (results / stage).mkdir(parents=True)
        for sid in ("lib-coo-test", "lib-other"):
            (results / stage / f"{sid}.json").write_text("{}")
    doc = run_structure(coo, manifest, cached_only, tmp_path / "work")
    assert doc["sites"][0]["status"] == "not_computed"
    (results / "feff" / "lib-coo-test.json").write_text(json.dumps(doc))
    (results / "feff" / "lib-other.json").write_text(json.dumps({**doc, "sites": []}))
    assert newly_cached(results / "feff", FeffCache(base["cache_dir"])) == []

    run_structure(coo, manifest, validate_config({"feff": base})["feff"], tmp_path / "work")  # real FEFF, cached
    assert newly_cached(results / "feff", FeffCache(base["cache_dir"])) == ["lib-coo-test"]
    from xasengine.shards import bucket_of

    n_buckets = validate_config({})["shards"]["n_buckets"]
    (results / "shards").mkdir()
    shard = results / "shards" / f"shard-{bucket_of('lib-coo-test', n_buckets):03d}.h5"
    shard.write_text("")
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"feff": {**base, "cached_only": True}}))
    assert main(["newly-cached", "--config", str(config), "--results", str(results), "--forget"]) == 0
    assert capsys.readouterr().out.split() == ["lib-coo-test"]
    assert not any((results / stage / "lib-coo-test.json").exists() for stage in ("sites", "descriptors", "feff"))
    assert all((results / stage / "lib-other.json").exists() for stage in ("sites", "descriptors", "feff"))
    assert not shard.exists()  # its shard is rebuilt, which recomputes the structure


@pytest.mark.parametrize("executable, reason", [("/nonexistent/feff10", "No such file or directory"),
                                                ("NOT_EXECUTABLE", "Permission denied")])
def test_external_command_that_cannot_start_is_a_failure_row(coo, tmp_path, executable, reason):
    if executable == "NOT_EXECUTABLE":  # on disk but without the x bit: passes a PATH lookup by name, fails to start
        executable = str(tmp_path / "feff")
        (tmp_path / "feff").write_text("#!/bin/sh\nexit 0\n")
    manifest = site_manifest(coo, ["Co", "O"], "K", 0.01)
    doc = run_structure(coo, manifest, _feff_cfg(tmp_path, engine="external", executable=executable),
                        tmp_path / "work")
    assert [s["status"] for s in doc["sites"]] == ["failed", "failed"]
    for site in doc["sites"]:
        assert site["message"] == f"FEFF command {executable!r} cannot start ({reason}); check feff.executable"


def test_the_cache_key_text_ignores_floating_point_noise():
    """Two CPUs' BLAS kernels differ in the last bits: the same site must give the same feff.inp (the cache key)."""
    from xasengine.feff.inputs import canonical_input
    from xasengine.structures.library import build_library

    coo = build_library(only_ids=["lib-coo-rocksalt"])[0]
    params = resolve_preset("default")
    text = feff_input_text(coo.structure, 0, "K", params)
    noisy = coo.structure.copy()
    noisy.translate_sites(list(range(len(noisy))), [3e-13, -2e-13, 1e-13], frac_coords=False)
    assert feff_input_text(noisy, 0, "K", params) == text
    head, _, rest = text.partition("ATOMS\n")
    card, _, tail = rest.partition("END\n")
    header, *rows = card.splitlines()
    shuffled = f"{head}ATOMS\n{header}\n" + "\n".join(reversed(rows)) + f"\nEND\n{tail}"
    assert canonical_input(shuffled) == text
    moved = coo.structure.copy()
    moved.translate_sites([1], [0.01, 0, 0], frac_coords=False)  # a real change still changes the key
    assert feff_input_text(moved, 0, "K", params) != text

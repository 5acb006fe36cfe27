"""The delithiation report (xasengine.reports.delithiation) on a real shard written by the shard writer: expected
OS = Σ p_k·OS_k of each site, per-cell means weighted by multiplicity as by hand, x and Co–O read off the cells,
class probabilities of every family consistent with its predictions, and one line when the series is absent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from test_spt import SMALL_CFG, one_thread, synthetic_table  # noqa: F401  (one_thread: autouse fixture)
from xasengine.descriptors import ALL_DESCRIPTORS
from xasengine.errors import ReportError
from xasengine.models.family import fit_family, load_model
from xasengine.reports import delithiation as dl

FAMILY = "delithiation-LixCoO2"  # the default config's reports.delithiation_family
from xasengine.shards import write_shard
from xasengine.structures.io import StructureRecord
from xasengine.atomic import write_text

CO_O = 1.9  # Å: Co at the corner, O at the edge centres of 3.8 Å cubes
# (structure id, Li atoms, [(site multiplicity, true OS)] of its Co sites: as many Co atoms as the multiplicities)
CELLS = [("lib-licoo2-x100-aaaa", 2, [(2, 3.0)]), ("lib-licoo2-x050-bbbb", 2, [(1, 3.0), (3, 4.0)]),
         ("lib-licoo2-x050-cccc", 1, [(1, 4.0), (1, 4.0)]), ("lib-licoo2-x000-dddd", 0, [(2, 4.0)])]


def cell(n_co: int, n_li: int) -> Structure:
    """n_co CoO3 cubes along a (Co–O 1.9 Å, six O per Co); n_li of the cube centres hold Li."""
    lattice = Lattice.orthorhombic(3.8 * n_co, 3.8, 3.8)
    species, coords = [], []
    for k in range(n_co):
        shift = k / n_co
        species += ["Co", "O", "O", "O"]
        coords += [[shift, 0, 0], [shift + 0.5 / n_co, 0, 0], [shift, 0.5, 0], [shift, 0, 0.5]]
    for k in range(n_li):
        species.append("Li")
        coords.append([(k + 0.5) / n_co, 0.5, 0.5])
    return Structure(lattice, species, coords)


def shard_row(sid, index, multiplicity, os_, spectrum, energy):
    return {"structure_id": sid, "site_index": index, "multiplicity": multiplicity, "element": "Co", "edge": "K",
            "wyckoff": "a", "feff_hash": f"{sid}-{index}", "status": "ok", "message": "", "split": "test",
            "os_method": "bvs", "feff_seconds": 1.0, "raw_energy": [0.0], "raw_mu": [0.0], "e0": 7709.0,
            "edge_step": 1.0, "energy": energy, "spectrum": spectrum,
            "descriptors": {name: float("nan") for name in ALL_DESCRIPTORS} | {"OS": os_, "MOOD": 2.687}}


def write_series(folder, family: str = FAMILY) -> tuple[list[str], list[str]]:
    """A real shard of the four cells' Co sites (spectra from the synthetic generator, on its grid) and their
    structure records."""
    source = synthetic_table(n_structures=20, seed=3)
    co = np.where(source["element"] == "Co")[0]
    rows, structures, paths = [], [], []
    k = 0
    for sid, n_li, sites in CELLS:
        for index, (multiplicity, os_) in enumerate(sites):
            rows.append(shard_row(sid, index, multiplicity, os_, source["spectrum"][co[k]], source["energy"][co[k]]))
            k += 1
        structures.append({"structure_id": sid, "hash": sid, "formula": "", "family": family, "source": "library",
                           "status": "ok", "message": ""})
        path = folder / f"{sid}.json"
        write_text(path, StructureRecord(sid, cell(sum(m for m, _ in sites), n_li), "library", family).to_json())
        paths.append(str(path))
    shard = folder / "shard-000.h5"
    write_shard(shard, rows, structures, {"shards": {"raw_points": 4}, "spectra": {"grid": {"points": 64}}},
                ["test"])
    return [str(shard)], paths


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A real SPT and two baselines (a neural and a tree family) on the synthetic table, saved as the rules do."""
    table = synthetic_table(n_structures=40)
    folder = tmp_path_factory.mktemp("models")
    spt = fit_family("spt", table, "nonO", {**SMALL_CFG, "max_epochs": 3, "patience": None}, targets=["OS", "CN"])
    spt.save(folder / "spt-joint-nonO.pt")
    paths = {"spt": str(folder / "spt-joint-nonO.pt")}
    for family, cfg in (("mlp", {"epochs": 5}), ("dt", {})):
        fit_family(family, table, "nonO", cfg, targets=["OS", "CN"]).save(folder / f"{family}-nonO.joblib")
        paths[family] = str(folder / f"{family}-nonO.joblib")
    benchmark = {"groups": {"nonO": {"OS": {"kind": "classification", "scores": {
        "SPT": {"f1_weighted": 0.99}, "MLP": {"f1_weighted": 0.8}, "DecisionTree": {"f1_weighted": 0.7}}}}}}
    paths["benchmark"] = str(folder / "benchmark.json")
    write_text(paths["benchmark"], json.dumps(benchmark))
    return paths


def test_probabilities_of_every_family_sum_to_one_and_their_argmax_is_the_prediction(models):
    table = synthetic_table(n_structures=10, seed=5)
    rows = table["element"] != "O"
    for key in ("spt", "mlp", "dt"):
        model = load_model(models[key])
        spectra, elements, energy = table["spectrum"][rows], table["element"][rows], table["energy"][rows]
        probabilities = model.predict_proba(spectra, elements, energy)
        assert set(probabilities) == {"OS", "CN"}
        for spec in model.specs:
            p = probabilities[spec.name]
            assert p.shape == (rows.sum(), len(spec.classes)) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
            assert np.array_equal(spec.decode(p.argmax(axis=1)), model.predict(spectra, elements, energy)[spec.name])


def test_report_expected_os_is_the_probability_sum_and_cell_means_are_multiplicity_weighted(models, tmp_path):
    shards, structures = write_series(tmp_path)
    outputs = {k: str(tmp_path / f"out.{k}") for k in ("json", "html", "oxidation", "confusion", "geometry")}
    result = dl.write_delithiation(shards, models["spt"], [models["dt"], models["mlp"]], models["benchmark"],
                                   structures, outputs, FAMILY)
    assert [m["label"] for m in result["models"]] == ["SPT", "MLP"]  # best baseline by nonO OS F1, SPT excluded
    assert json.loads(open(outputs["json"]).read())["n_sites"] == 6
    for key in ("oxidation", "confusion", "geometry"):
        assert open(outputs[key], "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    # each site: expected OS = Σ p_k OS_k of its own probabilities, and those are the model's on its spectrum
    spt = load_model(models["spt"])
    probabilities = spt.predict_proba(*(np.stack([r[k] for r in [_shard_site(shards, s) for s in result["sites"]]])
                                        for k in ("spectrum", "element", "energy")))["OS"]
    for site, p in zip(result["sites"], probabilities):
        for label, entry in site["models"].items():
            by_hand = sum(float(c) * v for c, v in entry["probabilities"].items())
            assert entry["expected_os"] == pytest.approx(by_hand, abs=1e-9)
        assert list(site["models"]["SPT"]["probabilities"].values()) == pytest.approx(p.tolist(), abs=1e-6)

    # per cell: Σ m_i E_i / Σ m_i by hand; per x: the mean over the cells with that x
    cells = {c["structure_id"]: c for c in result["cells"]}
    for sid, _, sites in CELLS:
        own = [s for s in result["sites"] if s["structure_id"] == sid]
        for label in ("SPT", "MLP"):
            by_hand = (sum(s["multiplicity"] * s["models"][label]["expected_os"] for s in own)
                       / sum(s["multiplicity"] for s in own))
            assert cells[sid]["expected_os"][label] == pytest.approx(by_hand, abs=1e-12)
        assert cells[sid]["true_mean_os"] == pytest.approx(sum(m * o for m, o in sites) / sum(m for m, _ in sites))
    half = [cells[s]["expected_os"]["MLP"] for s in ("lib-licoo2-x050-bbbb", "lib-licoo2-x050-cccc")]
    assert result["per_x"]["MLP"]["0.5"]["mean"] == pytest.approx(np.mean(half))
    assert result["per_x"]["MLP"]["0.5"]["n_cells"] == 2 and result["per_x"]["SPT"]["0"]["nominal_os"] == 4.0

    # x = Li / Co of each cell; every Co atom has six O at 1.9 Å, so no spread
    assert [cells[s]["x"] for s, _, _ in CELLS] == [1.0, 0.5, 0.5, 0.0]
    assert [cells[s]["n_co_o_bonds"] for s, _, _ in CELLS] == [12, 24, 12, 12]
    assert all(c["co_o_mean"] == pytest.approx(CO_O) for c in cells.values())
    assert result["co_o_spread"] == pytest.approx(0.0, abs=1e-9)
    assert sum(map(sum, result["confusion"]["SPT"]["matrix"])) == 6
    assert "monoton" in result["trend"]["SPT"] and "SPT" in open(outputs["html"]).read()


def _shard_site(shards, site):
    from xasengine.shards import read_shards

    table = read_shards(shards)
    i = np.where((table["structure_id"] == site["structure_id"]) & (table["site_index"] == site["site_index"]))[0][0]
    return {"spectrum": table["spectrum"][i], "element": table["element"][i], "energy": table["energy"][i]}


def test_series_absent_from_the_shards_is_one_line_report_error(models, tmp_path):
    shards, structures = write_series(tmp_path, family="prototype")
    outputs = {k: str(tmp_path / f"out.{k}") for k in ("json", "html", "oxidation", "confusion", "geometry")}
    with pytest.raises(ReportError, match=r"no structure of family 'delithiation-LixCoO2' in the shards") as error:
        dl.write_delithiation(shards, models["spt"], [models["mlp"]], models["benchmark"], structures, outputs,
                              FAMILY)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out.json").exists()

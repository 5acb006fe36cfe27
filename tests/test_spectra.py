from pathlib import Path

import numpy as np
import pytest

from xasengine import spectra
from xasengine.config import validate_config
from xasengine.errors import SpectrumError

XDI = Path(__file__).resolve().parents[2] / "shared" / "data" / "experimental-xanes"
CFG = validate_config({})["spectra"]


def _e0(name):
    energy, mu, _ = spectra.read_measured(XDI / name)
    return spectra.find_e0(energy, mu, smooth_ev=1.0)


@pytest.mark.skipif(not XDI.exists(), reason="shared experimental data not present")
def test_measured_mn_edges_shift_with_oxidation_state():
    e0 = {os: _e0(f"{name}_rt_01.xdi") for os, name in ((2, "MnO"), (2.67, "Mn3O4"), (3, "Mn2O3"), (4, "MnO2"))}
    assert e0[2] < e0[2.67] < e0[3] < e0[4]
    assert 6535 < e0[2] < 6560


@pytest.mark.skipif(not XDI.exists(), reason="shared experimental data not present")
def test_measured_spectrum_is_normalised_onto_the_grid():
    energy, mu, header = spectra.read_measured(XDI / "NiOH2_rt_01.xdi")
    assert header["Element.symbol"] == "Ni"
    grid = spectra.edge_grid(CFG, "Ni", "K")
    out = spectra.process(energy, mu, grid, CFG, smooth_ev=1.0)
    assert abs(out["spectrum"][0]) < 0.1
    assert abs(out["spectrum"][-20:].mean() - 1.0) < 0.3
    assert 8330 < out["e0"] < 8360


def test_synthetic_arctan_edge_e0_and_step():
    energy = np.linspace(7600, 7800, 801)
    mu = 0.1 + 0.0002 * (energy - 7600) + 2.0 * (0.5 + np.arctan((energy - 7712.3) / 1.5) / np.pi)
    e0 = spectra.find_e0(energy, mu)
    assert abs(e0 - 7712.3) < 0.1
    norm, step = spectra.normalize(energy, mu, e0, CFG["pre_edge"], CFG["post_edge"])
    assert step == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize(
    "energy, mu, message",
    [
        (np.linspace(0, 100, 50), np.full(50, np.nan), "NaN"),
        (np.r_[np.linspace(0, 50, 25), np.linspace(40, 90, 25)], np.linspace(0, 1, 50), "strictly increasing"),
        (np.linspace(0, 10, 5), np.linspace(0, 1, 5), "only 5 points"),
    ],
)
def test_bad_spectra_raise_one_clear_error(energy, mu, message):
    with pytest.raises(SpectrumError, match=message):
        spectra.process(energy, mu, spectra.edge_grid(CFG, "Co", "K"), CFG)


def test_grid_not_covered_is_an_error():
    energy = np.linspace(7700, 7730, 300)
    mu = 0.5 + np.arctan((energy - 7712) / 1.5) / np.pi
    with pytest.raises(SpectrumError, match="grid needs"):
        spectra.to_grid(energy, mu, 7712.0, spectra.edge_grid(CFG, "Co", "K"))


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\x89PNG\x00\xff\xfe")
    with pytest.raises(SpectrumError):
        spectra.read_measured(bad)
    with pytest.raises(SpectrumError, match="not found"):
        spectra.read_measured(tmp_path / "missing.xdi")

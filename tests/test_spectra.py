from pathlib import Path

import numpy as np
import pytest

from xasengine import spectra
from xasengine.config import validate_config
from xasengine.errors import SpectrumError
from xasengine.readers import UnreadableFile

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
    with pytest.raises(UnreadableFile, match=rf"^{bad}: unreadable \(binary data"):
        spectra.read_measured(bad)
    with pytest.raises(SpectrumError, match="not found"):
        spectra.read_measured(tmp_path / "missing.xdi")


def _write_xdi(path, reference: str, with_irefer: bool = True):
    energy = np.linspace(6500, 6600, 401)
    sample_mu = 0.2 + 1.5 * (0.5 + np.arctan((energy - 6550.0) / 1.5) / np.pi)
    foil_mu = 0.1 + 1.0 * (0.5 + np.arctan((energy - 6539.0) / 1.0) / np.pi)
    i0 = np.full_like(energy, 1.0e5)
    itrans = i0 * np.exp(-sample_mu)
    irefer = itrans * np.exp(-foil_mu)
    cols = ["energy eV", "i0", "itrans"] + (["irefer"] if with_irefer else [])
    head = [f"# Column.{i + 1}: {c}" for i, c in enumerate(cols)] + [f"# Sample.reference: {reference}", "#---"]
    data = np.column_stack([energy, i0, itrans] + ([irefer] if with_irefer else []))
    np.savetxt(path, data, header="\n".join(h.lstrip("# ") for h in head), comments="# ")


def test_reference_foil_channel_gives_the_calibration_edge(tmp_path):
    _write_xdi(tmp_path / "foil.xdi", "Mn filter")
    energy, mu, _ = spectra.read_measured(tmp_path / "foil.xdi")
    energy_ref, mu_ref = spectra.read_reference(tmp_path / "foil.xdi")
    assert abs(spectra.find_e0(energy, mu) - 6550.0) < 0.5
    assert abs(spectra.find_e0(energy_ref, mu_ref) - 6539.0) < 0.5


def test_no_reference_foil_means_none(tmp_path):
    _write_xdi(tmp_path / "none.xdi", "none")
    _write_xdi(tmp_path / "no-column.xdi", "Mn filter", with_irefer=False)
    assert spectra.read_reference(tmp_path / "none.xdi") is None
    assert spectra.read_reference(tmp_path / "no-column.xdi") is None


def test_forest_screening_augment_damps_the_white_line_as_training_does():
    """alignment.augment (numpy, the forest screening) and train.augment (torch, the SPT) share one damping
    formula: with no broadening, shift or stretch, a drawn factor of 0.5 halves what stands above the step and
    leaves the rest alone, exactly as the torch path does with fraction 0.5."""
    import torch

    from xasengine.alignment import augment as screen_augment
    from xasengine.spectra import damp_white_line

    energy = np.arange(-10.0, 30.0, 0.1)
    mu = 1 / (1 + np.exp(-energy / 0.5)) + 0.8 * np.exp(-0.5 * ((energy - 3) / 1.5) ** 2)
    fine, damped = screen_augment(energy, mu, 0.0, np.random.default_rng(0), broaden=(1e-3, 1e-3),
                                  damping=(0.5, 0.5), shift=0.0, stretch=0.0)
    expected = np.where(mu > 1, 1 + 0.5 * (mu - 1), mu)
    assert np.allclose(fine, energy[: fine.size]) and np.allclose(damped, expected[: damped.size], atol=1e-9)
    torch_damped = damp_white_line(torch.tensor(mu)[None], torch.tensor([[0.5]]))[0].numpy()
    assert np.allclose(torch_damped, expected)

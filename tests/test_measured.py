"""Reading beamline files and calibrating them as Athena does, on real XDI scans (XAS Data Library, public domain)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xasengine.errors import SpectrumError
from xasengine.measured import calibrate, first_inflection, normalise, read_scans, tabulated_edge

DATA = Path(__file__).parent / "data" / "measured"
MN_EDGE = 6539.0


def _shifted_copy(src: Path, dst: Path, shift: float) -> Path:
    """The same scan with the monochromator `shift` eV off, as between two beamtimes."""
    lines = []
    for line in src.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            lines.append(line)
            continue
        cols = line.split()
        lines.append(" ".join([f"{float(cols[0]) + shift:.4f}"] + cols[1:]))
    dst.write_text("\n".join(lines) + "\n")
    return dst


def test_xdi_transmission_and_reference_channel():
    (scan,) = read_scans(DATA / "MnO2_rt_01.xdi")
    raw = np.loadtxt(DATA / "MnO2_rt_01.xdi", comments="#")
    assert scan.element == "Mn" and scan.edge == "K" and scan.mode == "transmission"
    np.testing.assert_allclose(scan.mu, np.log(raw[:, 1] / raw[:, 2]))
    np.testing.assert_allclose(scan.reference, np.log(raw[:, 2] / raw[:, 3]))
    # the header says "no foil", but the channel holds a 2.3-unit Ni edge: used, and the header says why
    (ni,) = read_scans(DATA / "NiOH2_rt_01.xdi")
    assert ni.reference is not None and "holds a Ni edge" in ni.header["calibration.note"]
    assert abs(first_inflection(ni.energy, ni.reference, tabulated_edge("Ni")) - tabulated_edge("Ni")) < 2.0


def test_first_inflection_not_largest_derivative():
    """The foil's first inflection sits within 1 eV of the tabulated Mn edge; its largest dmu/dE does not."""
    (scan,) = read_scans(DATA / "MnO_rt_01.xdi")
    e0 = first_inflection(scan.energy, scan.reference, MN_EDGE)
    assert abs(e0 - MN_EDGE) < 1.0
    largest = scan.energy[np.argmax(np.gradient(scan.reference, scan.energy))]
    assert largest - e0 > 3.0


def test_calibration_undoes_a_monochromator_offset(tmp_path):
    """Two scans of one sample, one recorded 3.7 eV off: after calibration their foils and samples coincide."""
    off = _shifted_copy(DATA / "MnO2_rt_01.xdi", tmp_path / "MnO2_off.xdi", 3.7)
    scans = read_scans(DATA / "MnO2_rt_01.xdi") + read_scans(off) + read_scans(DATA / "MnO_rt_01.xdi")
    cal = calibrate(scans)
    assert all(s.calibration == "reference" for s in cal)
    assert cal[1].energy_shift - cal[0].energy_shift == pytest.approx(-3.7, abs=0.05)
    np.testing.assert_allclose(cal[1].energy, cal[0].energy, atol=0.05)
    for s in cal:  # every foil lands on the tabulated edge, within the spread of the foils' own shapes
        assert abs(first_inflection(s.energy, s.reference, MN_EDGE) - MN_EDGE) < 0.3
    assert cal[0].header["calibration.tabulated_edge_eV"] == tabulated_edge("Mn")


def test_user_shift_without_reference(tmp_path):
    (mn,) = read_scans(DATA / "MnO_rt_01.xdi")
    cols = tmp_path / "plain.dat"
    np.savetxt(cols, np.column_stack([mn.energy, mn.mu]), header="energy mu")
    (plain,) = read_scans(cols)
    assert plain.reference is None
    assert calibrate([plain])[0].calibration == "none"
    moved = calibrate([plain], e0_shift=-1.5)[0]
    assert moved.calibration == "user-shift" and moved.energy_shift == -1.5
    np.testing.assert_allclose(moved.energy, plain.energy - 1.5)


def test_flat_foil_is_one_clear_error(tmp_path):
    src = (DATA / "MnO_rt_01.xdi").read_text().splitlines()
    out = []
    for line in src:  # irefer := itrans * const: a reference channel with no foil in it
        if line.startswith("#") or not line.strip():
            out.append(line)
            continue
        e, i0, it, _ = line.split()
        out.append(f"{e} {i0} {it} {float(it) * 0.8:.6f}")
    flat = tmp_path / "flat.xdi"
    flat.write_text("\n".join(out) + "\n")
    with pytest.raises(SpectrumError, match=r"flat.xdi: the reference foil channel is flat"):
        calibrate(read_scans(flat))


def test_bad_files(tmp_path):
    bad_log = tmp_path / "neg.xdi"
    bad_log.write_text((DATA / "MnO_rt_01.xdi").read_text().replace("31237.500000", "-31237.500000", 1))
    no_energy = tmp_path / "cols.dat"
    no_energy.write_text("# foo bar\n" + "\n".join(f"{i} {i * 2}" for i in range(5)) + "\n")
    with pytest.raises(SpectrumError, match=r"neg.xdi: .*non-positive"):
        read_scans(bad_log)
    with pytest.raises(SpectrumError, match=r"cols.dat: "):
        read_scans(no_energy)
    with pytest.raises(SpectrumError, match="not found"):
        read_scans(tmp_path / "missing.xdi")


def test_plain_columns_and_athena_project(tmp_path):
    from larch import Group
    from larch.io import create_athena

    (scan,) = read_scans(DATA / "MnO_rt_01.xdi")
    cols = tmp_path / "mno.dat"
    np.savetxt(cols, np.column_stack([scan.energy, scan.mu]), header="energy mu")
    (plain,) = read_scans(cols)
    np.testing.assert_allclose(plain.mu, scan.mu)
    # an Athena project: each group's own energy shift is applied when reading
    project = create_athena(str(tmp_path / "p.prj"))
    for name, shift in (("mno_a", 0.0), ("mno_b", 1.25)):
        group = Group(energy=scan.energy.copy(), mu=scan.mu.copy(), energy_shift=shift, filename=name)
        project.add_group(group, name)
    project.save()
    groups = read_scans(tmp_path / "p.prj")
    assert len(groups) == 2
    by_shift = sorted(groups, key=lambda g: g.energy_shift)
    np.testing.assert_allclose(by_shift[1].energy - by_shift[0].energy, 1.25)
    assert by_shift[1].calibration == "athena-shift"
    one = read_scans(tmp_path / "p.prj", group=by_shift[0].header["athena.group"])
    assert len(one) == 1
    with pytest.raises(SpectrumError, match="no group 'nope'"):
        read_scans(tmp_path / "p.prj", group="nope")


def test_larch_normalisation_records_its_parameters():
    (scan,) = read_scans(DATA / "MnO_rt_01.xdi")
    out = normalise(scan, 6545.0, (-30.0, -10.0), (15.0, 60.0))
    post = (scan.energy > 6545 + 15) & (scan.energy < 6545 + 60)
    pre = (scan.energy > 6545 - 30) & (scan.energy < 6545 - 10)
    assert abs(out["norm"][post].mean() - 1.0) < 0.05 and abs(out["norm"][pre].mean()) < 0.02
    assert out["larch_pre_edge"]["pre1"] == pytest.approx(max(-30.0, scan.energy[0] - 6545.0))  # as far as the scan goes
    assert out["larch_pre_edge"]["nnorm"] == 0 and out["edge_step"] > 0

"""Melt-quench protocol: validation before any MD, packing, and a real (very short) CHGNet run."""

import json

import numpy as np
import pytest

from xasengine.structures.amorphous import MeltQuench, melt_quench, random_packing, scaled_composition, write_cell
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

"""Materials Project source, replayed from recorded summary documents (never the network)."""

import json
import os
import subprocess
import sys
import time

import pytest
from pymatgen.core import Lattice, Structure

from xasengine.errors import StructureError
from xasengine.structures.collect import collect_structures
from xasengine.structures.mp import RecordedRester, api_key_from_env, chemical_systems, fetch_mp
from xasengine.config import validate_config
from conftest import WorkflowCopy, tiny_config


def test_every_o_subsystem_with_a_metal_is_queried():
    systems = chemical_systems(["Co", "Li", "Mn", "Ni", "O"], ["Co", "Mn", "Ni"])
    assert len(systems) == 14  # subsets of {Co, Li, Mn, Ni} with Co, Mn or Ni, each plus O
    assert "Co-O" in systems and "Co-Li-Mn-Ni-O" in systems and "Li-Mn-O" in systems
    assert "Li-O" not in systems


@pytest.mark.parametrize("value, message", [("", "MP_API_KEY is not set"), ("abc-123", "MP_API_KEY is malformed")])
def test_bad_key_names_the_variable_and_the_offline_source(monkeypatch, value, message):
    monkeypatch.setenv("MP_API_KEY", value)
    with pytest.raises(StructureError, match=message) as err:
        api_key_from_env()
    assert "structures.source: library" in str(err.value)


def _recorded(tmp_path):
    def doc(mid, structure, ehull):
        return {"material_id": mid, "formula_pretty": structure.composition.reduced_formula,
                "energy_above_hull": ehull, "structure": structure.as_dict()}

    coo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.26), ["Co", "O"], [[0, 0, 0], [0.5] * 3])
    li2o = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.61), ["Li", "O"], [[0.25] * 3, [0, 0, 0]])
    lco = Structure.from_spacegroup("R-3m", Lattice.hexagonal(2.816, 14.05), ["Li", "Co", "O"],
                                    [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.2396]])
    unstable = coo.copy()
    unstable.scale_lattice(coo.volume * 1.3)
    docs = [doc("mp-22408", coo.get_primitive_structure(), 0.0), doc("mp-1960", li2o.get_primitive_structure(), 0.0),
            doc("mp-22526", lco.get_primitive_structure(), 0.0), doc("mp-999", unstable.get_primitive_structure(), 0.5)]
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps(docs))
    return path


class _NoNetwork:
    def search(self, **kwargs):
        raise AssertionError("the cache should have answered")


def test_recorded_query_caches_each_material_and_reruns_offline(tmp_path):
    options = validate_config({"structures": {"mp": {"cache_dir": str(tmp_path / "cache"),
                                                     "recorded_responses": str(_recorded(tmp_path))}}})["structures"]["mp"]
    records = fetch_mp(options)
    assert sorted(r.id for r in records) == ["mp-22408", "mp-22526"]  # Li-O has no metal; mp-999 is off the hull
    assert sorted(p.name for p in (tmp_path / "cache" / "materials").glob("*.json")) == ["mp-22408.json", "mp-22526.json"]
    again = fetch_mp(options, rester=_NoNetwork())
    assert [r.hash for r in again] == [r.hash for r in records]


def test_mp_source_through_collect(tmp_path):
    cfg = validate_config({"structures": {"source": "mp", "mp": {"cache_dir": str(tmp_path / "c"),
                                                                  "recorded_responses": str(_recorded(tmp_path))}}})
    records, failures = collect_structures(cfg["structures"])
    assert {r.source for r in records} == {"mp"} and not failures


def test_recorded_rester_filters_like_the_api(tmp_path):
    rester = RecordedRester(_recorded(tmp_path))
    docs = rester.search(chemsys=["Co-O"], energy_above_hull=(0, 0.1), num_sites=(1, 80), fields=[])
    assert [d["material_id"] for d in docs] == ["mp-22408"]


UNUSABLE_KEY = "abcdefghijklmnopqrstuvwxyz012345"  # well formed (32 letters/digits), never valid
NO_SERVER = "http://127.0.0.1:9/"  # the discard port: connection refused, as with no network


def test_unreachable_materials_project_is_one_bounded_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MP_API_KEY", UNUSABLE_KEY)
    monkeypatch.setenv("MPRESTER_ENDPOINT", NO_SERVER)
    options = validate_config({"structures": {"mp": {"cache_dir": str(tmp_path / "cache")}}})["structures"]["mp"]
    t0 = time.perf_counter()
    with pytest.raises(StructureError) as err:
        fetch_mp(options)
    assert time.perf_counter() - t0 < 60, "mp-api retries were not bounded"
    message = str(err.value)
    assert message.startswith(f"the Materials Project could not be reached at {NO_SERVER}")
    assert "structures.source: library works offline" in message and "\n" not in message
    assert err.value.__cause__ is None and not (tmp_path / "cache").exists()


def test_workflow_without_network_ends_with_one_line(tmp_path):
    wf = WorkflowCopy(tmp_path, tiny_config(structures={"source": "mp"}))
    env = os.environ | {"MP_API_KEY": UNUSABLE_KEY, "MPRESTER_ENDPOINT": NO_SERVER}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", str(wf.config_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text
    lines = {line for line in text.splitlines() if "Materials Project" in line}  # echoed again in the summary
    assert lines == {f"error [structures]: the Materials Project could not be reached at {NO_SERVER} "
                     "(ConnectionError after 3 tries, 30 s timeout); check the network, or note that "
                     "structures.source: library works offline"}
    assert not (tmp_path / "results" / "structures").exists()

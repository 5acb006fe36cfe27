import subprocess
import sys

import pytest
import yaml

from xasengine.config import config_problems, load_config, validate_config
from xasengine.errors import ConfigError
from conftest import REPO, WorkflowCopy, tiny_config


def test_shipped_config_is_valid_and_defaults_are_filled():
    config = load_config(REPO / "config.yaml")
    assert config["feff"]["preset"] == "default"
    assert config["spectra"]["grid"]["points"] == 128
    assert validate_config({})["split"]["test_families"] == ["delithiation-LixCoO2"]


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"feff": {"preset": "fast"}}, "feff.preset"),
        ({"spectra": {"grid": {"points": 2}}}, "spectra.grid.points"),
        ({"sites": {"absorbers": ["Fe"]}}, "sites.absorbers.0"),
        ({"structures": {"sourc": "mp"}}, "structures"),
    ],
)
def test_bad_config_names_the_key(bad, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        validate_config(bad)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


# Each bad knob that used to pass validation and fail later inside a job (issue 11), with the key it must name.
BAD_KNOBS = [
    ({"feff": {"overrides": {"fmss": 5.0}}}, "feff.overrides.fmss: unknown key"),
    ({"feff": {"overrides": {"fms": "five"}}}, "feff.overrides.fms: 'five' is not of type 'number'"),
    ({"feff": {"overrides": {"radius": -1.0}}}, "feff.overrides.radius"),
    ({"split": {"val_fraction": 0.5, "test_fraction": 0.5}}, "split.test_fraction: val_fraction + test_fraction = 1 leaves no training data"),
    ({"train": {"spt": {"max_epochs": -3}}}, "train.spt.max_epochs: -3 is less than the minimum of 1"),
    ({"train": {"spt": {"lr": "1e-3"}}}, "train.spt.lr: '1e-3' is not of type 'number' (YAML reads 1e-3 as text"),
    ({"train": {"spt": {"lr": 0}}}, "train.spt.lr"),
    ({"train": {"spt": {"epochs": 5}}}, "train.spt.epochs: unknown key"),
    ({"benchmark": {"rf": {"n_estimators": 0}}}, "benchmark.rf.n_estimators"),
    ({"benchmark": {"mlp": {"epochs": 0}}}, "benchmark.mlp.epochs: 0 is less than the minimum of 1"),
    ({"benchmark": {"ftt": {"lr": "fast"}}}, "benchmark.ftt.lr: 'fast' is not of type 'number'"),
    ({"resources": {"feff_mem_mb": -100}}, "resources.feff_mem_mb: -100 is less than the minimum of 1"),
    ({"resources": {"train_gpus": -1}}, "resources.train_gpus"),
    ({"resources": {"train_threads": 0}}, "resources.train_threads"),
    ({"spectra": {"grid": {"start": 40.0, "stop": -15.0}}}, "spectra.grid: start (40 eV) must be below stop (-15 eV)"),
    ({"spectra": {"grid_overrides": {"O-K": {"start": 50}}}}, "spectra.grid_overrides.O-K: start (50 eV) must be below stop"),
    ({"spectra": {"grid_overrides": {"O-K": {"pts": 64}}}}, "spectra.grid_overrides.O-K.pts: unknown key"),
    ({"spectra": {"pre_edge": [-10.0, -30.0]}}, "spectra.pre_edge: window [-10.0, -30.0] must go from low to high"),
    ({"spectra": {"pre_edge": [-30.0, 20.0]}}, "spectra.pre_edge: window [-30.0, 20.0] overlaps spectra.post_edge"),
    ({"structures": {"allowed_elements": ["Co", "O"]}}, "sites.absorbers: Li, Mn, Ni not in structures.allowed_elements"),
    ({"feff": {"engine": "external", "executable": "/nonexistent/feff10"}},
     "feff.executable: '/nonexistent/feff10' not found on PATH"),
]


@pytest.mark.parametrize("bad, line", BAD_KNOBS)
def test_every_bad_knob_is_one_line_naming_it(bad, line):
    _, problems = config_problems(bad)
    assert len(problems) == 1 and problems[0].startswith("config: ") and line in problems[0], problems


def test_all_problems_are_reported_at_once():
    _, problems = config_problems({"train": {"spt": {"max_epochs": 0, "lr": "fast"}}, "resources": {"train_gpus": -1}})
    assert [p.split(":")[1].strip() for p in problems] == ["resources.train_gpus", "train.spt.lr", "train.spt.max_epochs"]


def test_known_good_values_pass():
    good = {"feff": {"overrides": {"scf": None, "fms": 5, "corehole": "RPA", "exchange": "0 0.0 0.0 2"}},
            "train": {"spt": {"lr": 1.0e-3, "patience": None, "kernel_sizes": [1, 3]}},
            "benchmark": {"rf": {"max_features": "sqrt", "max_depth": None}, "mlp": {"epochs": 5, "lr": 0.01}},
            "spectra": {"grid_overrides": {"O-K": {"start": -10, "stop": 40}}}}
    assert config_problems(good)[1] == []
    assert config_problems(yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text()))[1] == []


def _no_traceback(text):
    assert "Traceback" not in text and "Error in" not in text, text


def test_validate_config_cli_prints_one_line_per_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("feff:\n  overrides: {fms: five}\nsplit: {val_fraction: 0.5, test_fraction: 0.5}\n")
    proc = subprocess.run([sys.executable, "-m", "xasengine.cli", "validate-config", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["config: feff.overrides.fms: 'five' is not of type 'number'"]
    _no_traceback(proc.stderr)
    path.write_text("split: {val_fraction: 0.5, test_fraction: 0.5}\n")  # semantic check once the schema passes
    proc = subprocess.run([sys.executable, "-m", "xasengine.cli", "validate-config", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1 and "split.test_fraction" in proc.stderr
    path.write_text("- just\n- a list\n")
    proc = subprocess.run([sys.executable, "-m", "xasengine.cli", "validate-config", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.splitlines() == [
        f"xasengine: error [config]: config file {path} must hold a mapping of keys, not a list"]


@pytest.mark.parametrize("bad, line", [BAD_KNOBS[1], BAD_KNOBS[5], BAD_KNOBS[14], BAD_KNOBS[20]])
def test_snakemake_stops_before_any_job_with_the_line(tmp_path, bad, line):
    wf = WorkflowCopy(tmp_path, tiny_config(**bad))
    proc = wf.snakemake(check=False, timeout=120)
    assert proc.returncode != 0
    _no_traceback(proc.stdout + proc.stderr)
    errors = [l for l in proc.stderr.splitlines() if l.startswith("config: ")]
    assert len(errors) == 1 and line in errors[0], proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("content, message", [
    (None, "config file not found: {path}"),
    (b"\x7fELF\x02\x01\x01\x00\xff\xfe", "{path}: unreadable (binary data where text was expected)"),
    (b"feff: [1\n", "config file {path} is not valid YAML (line 2: expected ',' or ']'"),
])
def test_unreadable_config_file_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "my.yaml"
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "xasengine.cli", "validate-config", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("xasengine: error [config]: " + message.format(path=path)), proc.stderr


def test_key_order_of_a_config_file_does_not_matter(tmp_path):
    """The same settings written in another order give the identical (canonically ordered) config."""
    from xasengine.config import validate_or_exit

    text = (REPO / "tests" / "configs" / "tiny.yaml").read_text()
    data = yaml.safe_load(text)
    shuffled = {key: data[key] for key in reversed(list(data))}
    a, b = validate_or_exit(data), validate_or_exit(shuffled)
    assert a == b and list(a) == sorted(a) and list(a["feff"]) == sorted(a["feff"])
    assert repr(a) == repr(b)  # what Snakemake compares when it checks a rule's params

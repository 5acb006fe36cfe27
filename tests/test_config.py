import pytest

from xasengine.config import load_config, validate_config
from xasengine.errors import ConfigError
from conftest import REPO


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

from pathlib import Path

import pytest

from metgan.config import REAL_MET_API_URL, VARIABLES, Settings
from metgan.errors import ConfigError

BAD_VALUES = {
    "METGAN_DATABASE_URL": "mysql://root@localhost/met",
    "METGAN_DATA_DIR": "   ",
    "METGAN_RESULTS_DIR": "",
    "METGAN_MET_API_URL": "ftp://example.org/api",
    "METGAN_MET_RATE": "fast",
    "METGAN_MET_WORKERS": "0",
    "METGAN_MET_CONCURRENCY": "2.5",
    "METGAN_MET_TIMEOUT": "-1",
    "METGAN_MET_USER_AGENT": "",
    "METGAN_IMAGE_HOSTS": " , ",
    "METGAN_MAX_IMAGE_BYTES": "lots",
    "METGAN_MAX_IMAGE_PIXELS": "-5",
}


def test_every_variable_has_a_bad_value_case():
    assert set(BAD_VALUES) == {v.name for v in VARIABLES}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_bad_value_names_the_variable(name):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: BAD_VALUES[name]})


def test_defaults_point_at_the_real_met():
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.met_api_url == REAL_MET_API_URL
    assert settings.met_rate == 80.0
    assert settings.image_hosts == ("images.metmuseum.org",)
    assert settings.data_dir == Path("data").resolve()
    assert settings.images_dir == settings.data_dir / "images"


def test_values_are_parsed():
    settings = Settings.from_env({
        "METGAN_MET_RATE": "40", "METGAN_MET_WORKERS": "4", "METGAN_IMAGE_HOSTS": "a.org, B.org",
        "METGAN_MET_API_URL": "http://127.0.0.1:9000/v1/", "METGAN_DATA_DIR": "/tmp/x",
    })
    assert settings.task_rate == 10.0
    assert settings.image_hosts == ("a.org", "b.org")
    assert settings.met_api_url == "http://127.0.0.1:9000/v1"
    assert settings.data_dir == Path("/tmp/x")


def test_unknown_variable_is_rejected_with_the_valid_ones():
    with pytest.raises(ConfigError, match="METGAN_MET_RATES.*METGAN_MET_RATE"):
        Settings.from_env({"METGAN_MET_RATES": "10"})


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.met_rate = 1

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
    "METGAN_CSV_HOSTS": "user@github.com",
    "METGAN_IMPORT_DIR": " ",
    "METGAN_MAX_IMAGE_BYTES": "lots",
    "METGAN_MAX_IMAGE_PIXELS": "-5",
    "METGAN_STORAGE_OPTIONS": "[1, 2]",
    "METGAN_CACHE_DIR": "  ",
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


@pytest.mark.parametrize(("name", "value", "message"), [
    ("METGAN_MET_RATE", "1e-300", "between 0.01 and 1000"),
    ("METGAN_MET_RATE", "1e9", "between 0.01 and 1000"),
    ("METGAN_MET_RATE", "nan", "between 0.01 and 1000"),
    ("METGAN_MET_RATE", "inf", "between 0.01 and 1000"),
    ("METGAN_MET_WORKERS", "65", "between 1 and 64"),
    ("METGAN_MET_CONCURRENCY", "100000", "between 1 and 256"),
    ("METGAN_MET_TIMEOUT", "0.001", "between 1 and 600"),
    ("METGAN_MET_TIMEOUT", "1e12", "between 1 and 600"),
])
def test_numbers_out_of_range_name_the_variable_and_the_range(name, value, message):
    with pytest.raises(ConfigError, match=f"^{name}=.*{message}$"):
        Settings.from_env({name: value})


def test_the_bounds_themselves_are_accepted():
    settings = Settings.from_env({"METGAN_MET_RATE": "0.01", "METGAN_MET_WORKERS": "64",
                                  "METGAN_MET_CONCURRENCY": "256", "METGAN_MET_TIMEOUT": "600"})
    assert (settings.met_rate, settings.met_workers, settings.met_concurrency, settings.met_timeout) == \
        (0.01, 64, 256, 600.0)


@pytest.mark.parametrize("agent", ["metgan\r\nX-Injected: 1", "met\ngan", "met\x00gan", "met\tgan", "met\x7fgan"])
def test_user_agent_with_control_characters_is_one_line_error(agent):
    with pytest.raises(ConfigError, match="METGAN_MET_USER_AGENT") as caught:
        Settings.from_env({"METGAN_MET_USER_AGENT": agent})
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_host_entries_may_name_a_port_and_are_normalised():
    settings = Settings.from_env({"METGAN_IMAGE_HOSTS": "127.0.0.1:8765, Images.MetMuseum.org, [::1]:9000, ::1"})
    assert settings.image_hosts == ("127.0.0.1:8765", "images.metmuseum.org", "[::1]:9000", "[::1]")


@pytest.mark.parametrize("entry", ["a.org:0", "a.org:99999", "a.org:x", "a.org/path", "user@a.org",
                                   "a.org?x", "[::1", "a b.org", "-a.org"])
def test_bad_host_entries_are_refused(entry):
    with pytest.raises(ConfigError, match="METGAN_IMAGE_HOSTS entry"):
        Settings.from_env({"METGAN_IMAGE_HOSTS": entry})


def test_csv_hosts_default_to_where_the_open_access_csv_is_served():
    assert Settings.from_env({}).csv_hosts == ("github.com", "media.githubusercontent.com",
                                               "raw.githubusercontent.com")


def test_import_dir_follows_the_data_dir_unless_set(tmp_path):
    assert Settings.from_env({"METGAN_DATA_DIR": str(tmp_path)}).import_dirs == (tmp_path / "imports",)
    chosen = Settings.from_env({"METGAN_DATA_DIR": str(tmp_path),
                                "METGAN_IMPORT_DIR": f"{tmp_path / 'in'}:{tmp_path / 'more'}"})
    assert chosen.import_dirs == (tmp_path / "in", tmp_path / "more")
    assert chosen.import_dirs[0] == tmp_path / "in"
    with pytest.raises(ConfigError, match="METGAN_IMPORT_DIR must not be the root folder"):
        Settings.from_env({"METGAN_IMPORT_DIR": "/"})


@pytest.mark.parametrize("url", ["http://h:99999/v1", "http://[x/v1", "http://user@h/v1", "http:///v1"])
def test_a_malformed_api_url_is_one_line_error(url):
    with pytest.raises(ConfigError, match="^METGAN_MET_API_URL="):
        Settings.from_env({"METGAN_MET_API_URL": url})


@pytest.mark.parametrize("value, problem", [
    ("s3:///prefix", "names no bucket"),
    ("s3://key:secret@bucket/prefix", "credentials"),
    ("s3://bucket/prefix?endpoint=http://x", "credentials or options"),
])
def test_a_bad_store_url_is_refused_in_one_line(value, problem):
    with pytest.raises(ConfigError, match=f"METGAN_DATA_DIR.*{problem}|{problem}"):
        Settings.from_env({"METGAN_DATA_DIR": value})


def test_an_object_store_location_works_through_a_local_mirror(tmp_path):
    settings = Settings.from_env({"METGAN_DATA_DIR": "s3://bucket/metgan/", "METGAN_CACHE_DIR": str(tmp_path),
                                  "METGAN_STORAGE_OPTIONS": '{"endpoint_url": "http://minio:9000"}'})
    assert settings.data_location == "s3://bucket/metgan"
    assert settings.data_dir.parent == tmp_path / "data"  # the mirror, one folder per URL
    store = settings.data_store
    assert store.is_remote and store.options == {"endpoint_url": "http://minio:9000"}
    assert store.url("images/1/0.jpg") == "s3://bucket/metgan/images/1/0.jpg"
    assert not settings.results_store.is_remote
    assert settings.results_store.mirror == settings.results_dir


def test_an_object_store_needs_a_database_server(tmp_path):
    from metgan.db.engine import database_url

    settings = Settings.from_env({"METGAN_DATA_DIR": "s3://bucket/metgan", "METGAN_CACHE_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="set METGAN_DATABASE_URL"):
        database_url(settings)
    assert not (settings.data_dir / "postgres").exists()

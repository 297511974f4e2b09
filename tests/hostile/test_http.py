"""download_image, MetClient.get_json and the CSV opener against a hostile HTTP server.

Each test asserts the outcome a caller sees (the error class and its one-line message), that a
refused redirect target is never requested, that nothing is left in the images folder, and that
an oversized body is refused after a bounded read (the server counts what it managed to send).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from metgan.config import Settings
from metgan.errors import ConfigError, ImageError, MetApiError, MetRetryableError
from metgan.met.client import MetClient
from metgan.met.csv_import import _open_source
from metgan.met.download import download_image

MB = 1024 * 1024
MAX_BYTES = 1 * MB


def client_for(server, **options) -> MetClient:
    options = {"rate": 1000, "shared_rate": False, "max_attempts": 2, "backoff_base": 0.01,
               "backoff_cap": 0.02, "timeout": 2.0, **options}
    return MetClient(server.root, **options)


def download(server, url: str, images_dir: Path, hosts: tuple[str, ...] = ("127.0.0.1",), **options):
    async def run():
        async with client_for(server, **options) as client:
            return await download_image(client, url, object_id=7, seq=0, images_dir=images_dir,
                                        allowed_hosts=hosts, max_bytes=MAX_BYTES, max_pixels=10_000_000)
    return asyncio.run(run())


def get_json(server, path: str, params: dict | None = None, **options):
    async def run():
        async with client_for(server, **options) as client:
            return await client.get_json(path, params)
    return asyncio.run(run())


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- images ------------------------------------------------------------------------------------


def test_a_good_image_and_a_short_redirect_chain_on_the_allowed_host_are_stored(hostile, tmp_path):
    done = download(hostile, hostile.url("chain/3/ok.jpg"), tmp_path)
    assert (done.path, done.width, done.height) == ("7/0.jpg", 32, 24)
    assert (tmp_path / "7" / "0.jpg").read_bytes() == hostile.jpeg
    assert hostile.paths["/ok.jpg"] == 1


@pytest.mark.parametrize(("target", "reason"), [
    ("http://localhost:{port}/secret", "image host 'localhost' is not in METGAN_IMAGE_HOSTS (127.0.0.1)"),
    ("http://169.254.169.254/latest/meta-data/", "image host '169.254.169.254' is a link-local address"),
    ("http://user@127.0.0.1:{port}/secret", "image URL with a user name or password refused"),
    ("file:///etc/passwd", "not an http(s) image URL"),
    ("gopher://127.0.0.1:{port}/secret", "not an http(s) image URL"),
    ("http://127.0.0.1:99999/secret", "not a valid image URL"),
])
def test_a_redirect_off_the_policy_is_refused_and_its_target_never_asked(hostile, tmp_path, target, reason):
    url = hostile.url("to") + "?url=" + target.format(port=hostile.port)
    with pytest.raises(ImageError, match="^redirect refused: " + reason.replace("(", r"\(").replace(")", r"\)")):
        download(hostile, url, tmp_path)
    assert hostile.paths["/secret"] == 0 and hostile.paths["/to"] == 1  # refused: not retried either
    assert files_in(tmp_path) == []


def test_a_bracket_in_the_location_is_an_image_error(hostile, tmp_path):
    with pytest.raises(ImageError, match="redirect to a URL that is not valid: 'http://\\[x/'"):
        download(hostile, hostile.url("to") + "?url=http://[x/", tmp_path)


def test_another_port_of_a_host_listed_with_a_port_is_refused(hostile, tmp_path):
    hosts = (f"127.0.0.1:{hostile.port}",)
    other = hostile.port + 1 if hostile.port < 65535 else hostile.port - 1
    with pytest.raises(ImageError, match=f"redirect refused: port {other} of host '127.0.0.1' is not allowed"):
        download(hostile, hostile.url(f"to?url=http://127.0.0.1:{other}/secret"), tmp_path, hosts)
    with pytest.raises(ImageError, match=f"^port {other} of host '127.0.0.1'"):
        download(hostile, f"http://127.0.0.1:{other}/ok.jpg", tmp_path, hosts)
    assert download(hostile, hostile.url("ok.jpg"), tmp_path, hosts).bytes == len(hostile.jpeg)


def test_loops_and_long_chains_stop_after_five_hops(hostile, tmp_path):
    with pytest.raises(ImageError, match="more than 5 redirects"):
        download(hostile, hostile.url("loop"), tmp_path)
    assert hostile.paths["/loop"] == 6
    with pytest.raises(ImageError, match="more than 5 redirects"):
        download(hostile, hostile.url("chain/6/ok.jpg"), tmp_path)
    assert download(hostile, hostile.url("chain/5/ok.jpg"), tmp_path).path == "7/0.jpg"


def test_a_redirect_without_location_is_refused(hostile, tmp_path):
    with pytest.raises(ImageError, match="redirect without a Location"):
        download(hostile, hostile.url("no-location"), tmp_path)


def test_a_declared_100_mb_image_is_refused_before_its_body(hostile, tmp_path):
    with pytest.raises(ImageError, match=f"is {100 * MB} bytes, over the cap of {MAX_BYTES}"):
        download(hostile, hostile.url(f"declared/{100 * MB}"), tmp_path)
    assert files_in(tmp_path) == []


def test_an_endless_undeclared_image_is_cut_at_the_cap(hostile, tmp_path):
    with pytest.raises(ImageError, match=f"over the cap of {MAX_BYTES} bytes"):
        download(hostile, hostile.url("endless/image-jpeg"), tmp_path)
    # what the server got out before the client hung up: the cap plus socket buffers, not 100 MB
    assert hostile.sent["/endless/image-jpeg"] < 32 * MB
    assert files_in(tmp_path) == []


def test_a_body_shorter_than_declared_is_retried_then_raised(hostile, tmp_path):
    with pytest.raises(MetRetryableError, match="truncated image body.*after 2 attempts"):
        download(hostile, hostile.url("short"), tmp_path)
    assert hostile.paths["/short"] == 2
    assert files_in(tmp_path) == []


def test_a_slow_trickle_is_abandoned_at_the_total_timeout(hostile, tmp_path):
    with pytest.raises(MetRetryableError, match="after 2 attempts"):
        download(hostile, hostile.url("trickle"), tmp_path, timeout=0.25)  # total: 4 x 0.25 s
    assert hostile.sent["/trickle"] < 200  # bytes at one per 50 ms for about 2 s
    assert files_in(tmp_path) == []


def test_a_wrong_content_type_is_refused(hostile, tmp_path):
    with pytest.raises(ImageError, match="content type 'text/plain' is not an image \\(after 3 downloads\\)"):
        download(hostile, hostile.url("type/text-plain"), tmp_path)
    assert files_in(tmp_path) == []


# --- the API -----------------------------------------------------------------------------------


def test_the_api_follows_redirects_on_its_own_host_only(hostile):
    assert get_json(hostile, "chain/2/ok.json") == {"total": 1, "objectIDs": [1]}
    for target, reason in ((f"http://localhost:{hostile.port}/secret", "API host 'localhost' is not in "
                            f"METGAN_MET_API_URL \\(127.0.0.1:{hostile.port}\\)"),
                           (f"http://127.0.0.1:{hostile.port + 1}/secret", f"port {hostile.port + 1} of host"),
                           (f"https://127.0.0.1:{hostile.port}/secret", "not an http\\(s\\) API URL")):
        with pytest.raises(MetApiError, match="redirect refused: " + reason):
            get_json(hostile, "to", {"url": target})
    with pytest.raises(MetApiError, match="more than 5 redirects"):
        get_json(hostile, "loop")
    assert hostile.paths["/secret"] == 0


def test_the_api_refuses_oversized_bodies_after_a_bounded_read(hostile):
    with pytest.raises(MetApiError, match="declares 104857600 bytes, over the limit"):
        get_json(hostile, f"declared/{100 * MB}", max_json_bytes=MB)
    with pytest.raises(MetApiError, match=f"over the limit of {MB} bytes"):
        get_json(hostile, "endless/application-json", max_json_bytes=MB)
    assert hostile.sent["/endless/application-json"] < 32 * MB


def test_the_api_retries_a_body_that_is_not_json_then_raises(hostile):
    with pytest.raises(MetRetryableError, match="malformed or truncated JSON .*after 2 attempts"):
        get_json(hostile, "type/text-plain")
    with pytest.raises(MetRetryableError, match="truncated"):
        get_json(hostile, "short")


# --- the CSV opener ----------------------------------------------------------------------------


def csv_settings(tmp_path, hosts: str) -> Settings:
    return Settings.from_env({"METGAN_DATA_DIR": str(tmp_path), "METGAN_CSV_HOSTS": hosts})


def test_the_csv_opener_streams_an_allowed_url_and_checks_each_redirect(hostile, tmp_path):
    settings = csv_settings(tmp_path, "127.0.0.1")
    opened = _open_source(hostile.url("chain/2/ok.csv"), settings)
    try:
        assert opened.stream.read() == hostile.csv
        assert opened.name == hostile.url("ok.csv")  # the URL the body came from
    finally:
        opened.close()
    with pytest.raises(ConfigError, match="redirect refused: CSV host 'localhost' is not in METGAN_CSV_HOSTS"):
        _open_source(hostile.url(f"to?url=http://localhost:{hostile.port}/secret"), settings)
    with pytest.raises(ConfigError, match="more than 5 redirects"):
        _open_source(hostile.url("loop"), settings)
    assert hostile.paths["/secret"] == 0


def test_the_csv_opener_wants_https_off_loopback_and_a_listed_host(tmp_path):
    settings = csv_settings(tmp_path, "github.com,127.0.0.1")
    with pytest.raises(ConfigError, match="not an https CSV URL"):
        _open_source("http://github.com/metmuseum/openaccess/raw/master/MetObjects.csv", settings)
    with pytest.raises(ConfigError, match="CSV host 'evil.example' is not in METGAN_CSV_HOSTS"):
        _open_source("https://evil.example/MetObjects.csv", settings)
    with pytest.raises(ConfigError, match="not a valid CSV URL"):
        _open_source("https://github.com:99999/x.csv", settings)
    for source in ("file:///etc/passwd", "ftp://github.com/x.csv"):
        with pytest.raises(ConfigError, match="is neither an https URL nor a file in the import folder"):
            _open_source(source, settings)

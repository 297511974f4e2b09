"""Image URL encoding, the host allow-list, and Pillow validation under the caps."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from metgan.errors import ImageError
from metgan.met.download import (
    BadContent,
    check_host,
    encode_url,
    inspect_image,
    relative_path,
    sweep_temp_files,
)


def test_spaces_dashes_and_accents_are_percent_encoded():
    assert (encode_url("https://images.metmuseum.org/CRDImages/es/original/ESDA Kalimian Temple.jpg")
            == "https://images.metmuseum.org/CRDImages/es/original/ESDA%20Kalimian%20Temple.jpg")
    assert encode_url("https://h/x/LC-2019_66_1a–o_95-001.jpg") == "https://h/x/LC-2019_66_1a%E2%80%93o_95-001.jpg"
    assert encode_url("https://h/x/Bertall_LeDiableàParis_61-538-4.jpg") == \
        "https://h/x/Bertall_LeDiable%C3%A0Paris_61-538-4.jpg"


def test_existing_escapes_are_not_encoded_twice():
    once = encode_url("https://h/x/ESDA Kalimian Temple–1.jpg")
    assert encode_url(once) == once
    assert encode_url("https://h/x/a%2fb 100%.jpg") == "https://h/x/a%2Fb%20100%25.jpg"
    assert encode_url("https://h/x/plain/DP-42549-001.jpg?a=b c") == "https://h/x/plain/DP-42549-001.jpg?a=b%20c"


def test_only_allowed_hosts():
    check_host("https://images.metmuseum.org/CRDImages/a.jpg", ("images.metmuseum.org",))
    assert check_host("http://IMAGES.metmuseum.org:80/a b.jpg", ("images.metmuseum.org",)) == \
        "http://images.metmuseum.org/a%20b.jpg"
    for url in ("https://evil.example/a.jpg", "https://images.metmuseum.org.evil.example/a.jpg",
                "file:///etc/passwd", "ftp://images.metmuseum.org/a.jpg", "https://user@evil.example/x",
                "https://user:pw@images.metmuseum.org/a.jpg", "http://images.metmuseum.org:8080/a.jpg"):
        with pytest.raises(ImageError):
            check_host(url, ("images.metmuseum.org",))


def test_an_allowed_host_on_another_port_is_refused_unless_listed_with_it():
    with pytest.raises(ImageError, match="port 8080 of host 'images.metmuseum.org' is not allowed by "
                                         "METGAN_IMAGE_HOSTS .*list it as images.metmuseum.org:8080"):
        check_host("https://images.metmuseum.org:8080/a.jpg", ("images.metmuseum.org",))
    assert check_host("https://images.metmuseum.org:8080/a.jpg", ("images.metmuseum.org:8080",)) == \
        "https://images.metmuseum.org:8080/a.jpg"
    with pytest.raises(ImageError, match="port 443"):  # an explicit port allows that port only
        check_host("https://images.metmuseum.org/a.jpg", ("images.metmuseum.org:8080",))
    # a loopback host listed without a port (the fake Met's METGAN_IMAGE_HOSTS=127.0.0.1): any port
    assert check_host("http://127.0.0.1:8765/a.jpg", ("127.0.0.1",)) == "http://127.0.0.1:8765/a.jpg"
    assert check_host("http://[::1]:8765/a.jpg", ("::1",)) == "http://[::1]:8765/a.jpg"


@pytest.mark.parametrize("url", ["http://images.metmuseum.org:99999/x", "http://[x/", "http://images.metmuseum.org:x/a",
                                 "http://[::1/a.jpg", "https://\udcff.org/a.jpg"])
def test_a_url_the_parser_refuses_is_an_image_error_not_a_value_error(url):
    with pytest.raises(ImageError, match="not a valid image URL"):
        check_host(url, ("images.metmuseum.org", "::1"))


def test_relative_path_is_derived_from_ids_only():
    assert relative_path(436535, 0) == "436535/0.jpg"
    with pytest.raises(ValueError):
        relative_path("../../etc", 0)


def test_inspect_accepts_a_jpeg_and_refuses_truncated_and_oversized(tmp_path):
    path = tmp_path / "a.jpg"
    Image.new("RGB", (64, 80), (200, 180, 150)).save(path, "JPEG")
    assert inspect_image(path, 10_000) == (64, 80, "JPEG")
    with pytest.raises(ImageError, match="over the cap"):
        inspect_image(path, 64 * 80 - 1)
    broken = tmp_path / "b.jpg"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(BadContent):
        inspect_image(broken, 10_000)
    html = tmp_path / "c.jpg"
    html.write_bytes(b"<html><body>blocked</body></html>")
    with pytest.raises(BadContent):
        inspect_image(html, 10_000)


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb, "PNG")  # 400 Mpx, a few KB on disk
    assert os.path.getsize(bomb) < 200_000
    with pytest.raises(ImageError):
        inspect_image(bomb, 150_000_000)


def test_sweep_removes_temp_files_of_dead_processes_only(tmp_path):
    import socket

    host = socket.gethostname()
    dead = tmp_path / f".0.jpg.{host}.999999999.abcd1234.part"
    dead.write_bytes(b"x")
    other_host = tmp_path / ".1.jpg.elsewhere.12.abcd1234.part"
    other_host.write_bytes(b"x")
    keep = tmp_path / "0.jpg"
    keep.write_bytes(b"x")
    assert sweep_temp_files(tmp_path) == 1
    assert not dead.exists() and other_host.exists() and keep.exists()


def test_sweep_parses_host_names_with_dots(tmp_path, monkeypatch):
    from metgan.met import download

    monkeypatch.setattr(download, "_HOSTNAME", "worker-1.example.org")
    dead = tmp_path / ".3.jpg.worker-1.example.org.999999999.0badc0de.part"
    dead.write_bytes(b"x")
    mine_live = tmp_path / f".4.jpg.worker-1.example.org.{os.getpid()}.0badc0de.part"
    mine_live.write_bytes(b"x")
    monkeypatch.setattr(download, "_LIVE_TEMPS", {str(mine_live)})
    assert sweep_temp_files(tmp_path) == 1
    assert not dead.exists() and mine_live.exists()

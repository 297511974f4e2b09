"""The file store against a real S3 endpoint (moto's server) and on a local folder.

The remote tests use a fresh ``Store`` per "worker" with a mirror folder of its own, so what one
worker wrote is only visible to the other through the server, as on two hosts.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from metgan.errors import ConfigError, StorageError
from metgan.storage import Store, check_key, is_url, storage_options

pytest.importorskip("moto")
pytest.importorskip("s3fs")

from metgan.testing.s3server import s3_server  # noqa: E402


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


def remote(s3, tmp_path, name: str, prefix: str = "data") -> Store:
    return Store(f"s3://{s3.bucket}/{prefix}", tmp_path / name, dict(s3.options))


def test_urls_and_paths_are_told_apart():
    assert is_url("s3://bucket/prefix") and is_url("gs://b/p") and is_url("memory://x")
    assert not is_url("/data") and not is_url("./data") and not is_url("file:///data")
    assert not is_url("C:\\data")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "..", "../x", "a/../../x", "a\x00b"])
def test_keys_outside_the_store_are_refused(key):
    with pytest.raises(StorageError):
        check_key(key)
    assert check_key("a/./b//c.png") == "a/b/c.png"


def test_storage_options_must_be_a_json_object():
    assert storage_options({"METGAN_STORAGE_OPTIONS": '{"endpoint_url": "http://x"}'}) == {
        "endpoint_url": "http://x"}
    for bad in ("{not json", "[1, 2]"):
        with pytest.raises(ConfigError, match="METGAN_STORAGE_OPTIONS"):
            storage_options({"METGAN_STORAGE_OPTIONS": bad})


def test_a_local_store_is_its_own_mirror(tmp_path):
    store = Store.local(tmp_path)
    store.write_bytes("a/b.txt", b"hello")
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"hello"
    assert store.fetch("a/b.txt") == tmp_path / "a" / "b.txt"
    assert store.list() == {"a/b.txt": 5} and store.size("a/b.txt") == 5
    assert store.push() == 0 and store.pull() == 0
    with pytest.raises(StorageError, match="not in the store"):
        store.fetch("missing.txt")


def test_a_file_published_by_one_worker_is_fetched_by_another(s3, tmp_path):
    one, two = remote(s3, tmp_path, "one"), remote(s3, tmp_path, "two")
    one.write_bytes("images/1/0.jpg", b"\xff\xd8jpeg bytes")
    assert not (tmp_path / "two" / "images/1/0.jpg").exists()
    assert two.exists("images/1/0.jpg") and two.size("images/1/0.jpg") == 12
    assert two.fetch("images/1/0.jpg").read_bytes() == b"\xff\xd8jpeg bytes"
    assert two.list("images") == {"images/1/0.jpg": 12}
    two.remove("images/1/0.jpg")
    assert not one.exists("images/1/0.jpg")


def test_push_uploads_changes_only_and_the_named_keys_last(s3, tmp_path, monkeypatch):
    store = remote(s3, tmp_path, "w", prefix="subsets")
    for i in range(5):
        store.path(f"vases/{i}.png").parent.mkdir(parents=True, exist_ok=True)
        store.path(f"vases/{i}.png").write_bytes(bytes([i]) * (i + 1))
    store.path("vases/manifest.json").write_text("{}")
    order: list[str] = []
    publish = Store.publish
    monkeypatch.setattr(Store, "publish", lambda self, key: (order.append(key), publish(self, key)))
    assert store.push("vases", last=["vases/manifest.json"]) == 6
    assert order[-1] == "vases/manifest.json"
    order.clear()
    assert store.push("vases", last=["vases/manifest.json"]) == 0 and order == []  # nothing changed
    store.path("vases/3.png").write_bytes(b"changed size")
    assert store.push("vases") == 1 and order[-1] == "vases/3.png"


def test_a_refused_upload_stops_the_named_keys_last_but_not_the_others(s3, tmp_path, monkeypatch):
    """Concurrent puts: every other file is still tried, the error names the refused one, and the
    manifest (the reader's switch) is not published over a folder that lacks a file."""
    store = remote(s3, tmp_path, "w", prefix="refused")
    for i in range(40):
        store.path(f"vases/{i:02d}.png").parent.mkdir(parents=True, exist_ok=True)
        store.path(f"vases/{i:02d}.png").write_bytes(b"png %d" % i)
    store.path("vases/manifest.csv").write_text("path\n")
    publish = Store.publish

    def flaky(self, key):
        if key == "vases/07.png":
            raise StorageError("storage upload of 'vases/07.png' failed: refused")
        publish(self, key)
    monkeypatch.setattr(Store, "publish", flaky)
    with pytest.raises(StorageError, match="07.png"):
        store.push("vases", last=["vases/manifest.csv"])
    stored = store.list("vases")
    assert "vases/manifest.csv" not in stored and "vases/07.png" not in stored
    assert len(stored) == 39
    monkeypatch.setattr(Store, "publish", publish)
    assert store.push("vases", last=["vases/manifest.csv"]) == 2  # the refused file and the manifest
    assert len(store.list("vases")) == 41


def test_the_named_keys_are_put_only_after_every_other_put_finished(s3, tmp_path, monkeypatch):
    import time

    store = remote(s3, tmp_path, "w", prefix="ordered")
    for i in range(32):
        store.path(f"v/{i}.png").parent.mkdir(parents=True, exist_ok=True)
        store.path(f"v/{i}.png").write_bytes(b"x" * (i + 1))
    store.path("v/manifest.csv").write_text("m")
    events: list[tuple[str, str, float]] = []
    publish = Store.publish

    def timed(self, key):
        events.append(("start", key, time.monotonic()))
        publish(self, key)
        events.append(("end", key, time.monotonic()))
    monkeypatch.setattr(Store, "publish", timed)
    store.push("v", last=["v/manifest.csv"])
    manifest_start = next(t for kind, key, t in events if kind == "start" and key == "v/manifest.csv")
    others_end = max(t for kind, key, t in events if kind == "end" and key != "v/manifest.csv")
    assert others_end <= manifest_start
    starts = [t for kind, key, t in events if kind == "start" and key != "v/manifest.csv"]
    ends = sorted(t for kind, key, t in events if kind == "end" and key != "v/manifest.csv")
    assert sum(1 for t in starts if t < ends[0]) > 1, "the puts ran one after the other"


def test_uploads_started_while_producing_all_land_and_a_failure_is_raised_at_the_end(s3, tmp_path, monkeypatch):
    store = remote(s3, tmp_path, "w", prefix="streamed")
    publish = Store.publish
    monkeypatch.setattr(Store, "publish", lambda self, key: (_ for _ in ()).throw(
        StorageError(f"refused {key}")) if key.endswith("3.png") else publish(self, key))
    with pytest.raises(StorageError, match="refused out/3.png"):
        with store.uploads() as uploads:
            for i in range(8):
                store.path(f"out/{i}.png").parent.mkdir(parents=True, exist_ok=True)
                store.path(f"out/{i}.png").write_bytes(b"%d" % i)
                uploads.add(f"out/{i}.png")
    assert sorted(store.list("out")) == [f"out/{i}.png" for i in range(8) if i != 3]
    with Store.local(tmp_path / "plain").uploads() as uploads:  # a local folder: nothing to put
        uploads.add("anything.png")


def test_pull_mirrors_a_prefix_into_a_fresh_worker(s3, tmp_path):
    writer = remote(s3, tmp_path, "writer", prefix="results")
    for key in ("s/t/trial.json", "s/t/samples/e1.png", "s/u/trial.json"):
        writer.write_bytes(key, key.encode())
    reader = remote(s3, tmp_path, "reader", prefix="results")
    assert reader.pull("s/t") == 2
    assert (tmp_path / "reader" / "s/t/samples/e1.png").read_bytes() == b"s/t/samples/e1.png"
    assert not (tmp_path / "reader" / "s/u").exists()
    assert reader.pull("s/t") == 0  # nothing changed


def test_child_stores_share_the_server_under_a_prefix(s3, tmp_path):
    root = remote(s3, tmp_path, "root", prefix="results")
    trial = root.child("search/abc")
    trial.write_bytes("trial.json", b"{}")
    assert root.exists("search/abc/trial.json")
    assert trial.mirror == tmp_path / "root" / "search" / "abc"


def test_concurrent_readers_never_see_a_partial_object(s3, tmp_path):
    writer = remote(s3, tmp_path, "w2")
    big = bytes(range(256)) * 40_000  # 10 MB: s3fs uploads it in parts
    sizes: list[int | None] = []
    stop = threading.Event()

    def watch():
        reader = remote(s3, tmp_path, "r2")
        while not stop.is_set():
            sizes.append(reader.size("big.bin"))

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        writer.write_bytes("big.bin", big)
    finally:
        stop.set()
        thread.join()
    assert set(sizes) <= {None, len(big)}
    assert remote(s3, tmp_path, "r3").read_bytes("big.bin") == big


def test_an_unreachable_store_fails_in_one_line_without_secrets(tmp_path):
    store = Store("s3://nowhere/data", tmp_path / "m",
                  {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "TOPSECRET",
                   "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}})
    with pytest.raises(StorageError) as caught:
        store.exists("x.png")
    message = str(caught.value)
    assert "\n" not in message and "TOPSECRET" not in message and "s3://nowhere/data" in message


def test_the_sha256_travels_with_an_object(s3, tmp_path):
    import hashlib

    one = remote(s3, tmp_path, "sha-one")
    one.path("images/7/0.jpg").parent.mkdir(parents=True)
    one.path("images/7/0.jpg").write_bytes(b"pixels")
    digest = hashlib.sha256(b"pixels").hexdigest()
    one.publish("images/7/0.jpg", sha256=digest)
    assert remote(s3, tmp_path, "sha-two").stored_sha256("images/7/0.jpg") == digest
    assert remote(s3, tmp_path, "sha-two").stored_sha256("images/7/1.jpg") is None
    local = Store.local(tmp_path / "sha-one")
    assert local.stored_sha256("images/7/0.jpg") == digest


def _settings_on(s3, tmp_path, worker: str, prefix: str):
    from metgan.config import Settings

    env = {**s3.env(f"{prefix}/data", f"{prefix}/results"), "METGAN_CACHE_DIR": str(tmp_path / worker)}
    return Settings.from_env(env)


def _publish_subset(settings, name: str, files: dict[str, bytes], manifest: str | None = None) -> None:
    store = settings.data_store
    for key, data in files.items():
        store.write_bytes(f"subsets/{name}/{key}", data)
    lines = manifest if manifest is not None else "file,sha256\n" + "".join(f"{k},x\n" for k in files)
    store.write_bytes(f"subsets/{name}/manifest.csv", lines.encode())


def test_a_subset_is_staged_once_per_worker_and_reused(s3, tmp_path, monkeypatch):
    from metgan.images.staging import stage_subset

    builder = _settings_on(s3, tmp_path, "builder", "stage1")
    files = {f"images/h/{i:02d}.png": bytes([i]) * 50 for i in range(12)}
    _publish_subset(builder, "vases", files)
    trainer = _settings_on(s3, tmp_path, "trainer", "stage1")
    fetched: list[str] = []
    fetch = Store.fetch
    monkeypatch.setattr(Store, "fetch", lambda self, key, **kw: (fetched.append(key), fetch(self, key, **kw))[1])
    folder = stage_subset("vases", trainer)
    assert folder.is_relative_to(tmp_path / "trainer")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == sorted(files)
    assert (folder / "images/h/03.png").read_bytes() == files["images/h/03.png"]
    assert sorted(fetched) == sorted(["manifest.csv", *files])
    fetched.clear()
    # the second trial reads the manifest again (to notice a rebuild) and downloads no image
    assert stage_subset("vases", trainer) == folder and fetched == ["manifest.csv"]
    # a rebuilt subset (new manifest) is a new staging folder
    _publish_subset(builder, "vases", {**files, "images/h/99.png": b"new"})
    assert stage_subset("vases", trainer) != folder


def test_staging_refuses_a_manifest_that_climbs_out_or_lists_missing_files(s3, tmp_path):
    from metgan.errors import SubsetError
    from metgan.images.staging import stage_subset

    settings = _settings_on(s3, tmp_path, "w", "stage2")
    _publish_subset(settings, "evil", {}, manifest="file,sha256\n../../secrets.txt,x\n")
    with pytest.raises(SubsetError, match="outside the subset"):
        stage_subset("evil", settings)
    _publish_subset(settings, "holes", {}, manifest="file,sha256\nimages/h/gone.png,x\n")
    with pytest.raises(SubsetError, match="could not be staged.*gone.png"):
        stage_subset("holes", settings)
    assert not list((tmp_path / "w" / "staged").iterdir()), "no half-staged folder is left"
    with pytest.raises(SubsetError, match="no manifest.csv"):
        stage_subset("never-built", settings)


def test_push_can_prune_and_pull_can_leave_heavy_files_behind(s3, tmp_path):
    writer = remote(s3, tmp_path, "pw", prefix="prune")
    for key in ("t/checkpoints/ckpt_0001.weights.h5", "t/checkpoints/ckpt_0002.weights.h5", "t/trial.json"):
        writer.path(key).parent.mkdir(parents=True, exist_ok=True)
        writer.path(key).write_bytes(key.encode())
    assert writer.push("t") == 3
    writer.path("t/checkpoints/ckpt_0001.weights.h5").unlink()  # the trainer dropped an old checkpoint
    writer.push("t", prune=True)
    assert set(writer.list("t")) == {"t/checkpoints/ckpt_0002.weights.h5", "t/trial.json"}
    reader = remote(s3, tmp_path, "pr", prefix="prune")
    assert reader.pull("t", exclude=("/checkpoints/",)) == 1
    assert (tmp_path / "pr" / "t" / "trial.json").exists() and not (tmp_path / "pr" / "t" / "checkpoints").exists()


def test_a_synced_block_pushes_only_what_it_changed(s3, tmp_path):
    """Two workers sync different trial folders of one search; neither undoes the other's files."""
    a = remote(s3, tmp_path, "sa", prefix="sync")
    b = remote(s3, tmp_path, "sb", prefix="sync")
    a.write_bytes("s/search.json", b'{"v": 1}')
    with b.synced("s") as sync:
        assert (tmp_path / "sb" / "s" / "search.json").read_bytes() == b'{"v": 1}'
        b.path("s/t2/trial.json").parent.mkdir(parents=True)
        b.path("s/t2/trial.json").write_bytes(b"b's trial")
        assert sync.push() == 1  # in between, as a trainer does at a checkpoint
        a.write_bytes("s/search.json", b'{"v": 2}')  # meanwhile another worker rewrites search.json
        b.path("s/t2/samples.png").write_bytes(b"png")
    stored = remote(s3, tmp_path, "sc", prefix="sync")
    assert stored.read_bytes("s/search.json") == b'{"v": 2}', "b pushed back its stale copy"
    assert stored.read_bytes("s/t2/samples.png") == b"png"
    # a file rewritten with the same size is still seen as a new version by the next pull
    a.write_bytes("s/search.json", b'{"v": 3}')
    b.pull("s")
    assert (tmp_path / "sb" / "s" / "search.json").read_bytes() == b'{"v": 3}'
    # and a deletion in the block reaches the store
    with b.synced("s"):
        b.path("s/t2/samples.png").unlink()
    assert not stored.exists("s/t2/samples.png")


def test_a_synced_block_pushes_its_record_even_when_it_fails(s3, tmp_path):
    store = remote(s3, tmp_path, "fail", prefix="syncfail")
    with pytest.raises(RuntimeError), store.synced("t"):
        store.path("t/trial.json").parent.mkdir(parents=True)
        store.path("t/trial.json").write_bytes(b'{"status": "failed"}')
        raise RuntimeError("training blew up")
    assert remote(s3, tmp_path, "fail2", prefix="syncfail").read_bytes("t/trial.json") == b'{"status": "failed"}'


def _cli(env: dict, *args: str):
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("METGAN_")}
    return subprocess.run([sys.executable, "-m", "metgan", *args], env={**clean, **env}, capture_output=True,
                          text=True, timeout=120)


def test_storage_check_from_a_fresh_shell_creates_the_bucket_and_round_trips(s3, tmp_path):
    import json

    env = {"METGAN_DATA_DIR": "s3://fresh-bucket/data", "METGAN_RESULTS_DIR": str(tmp_path / "results"),
           "METGAN_STORAGE_OPTIONS": json.dumps(s3.options), "METGAN_CACHE_DIR": str(tmp_path / "cache")}
    missing = _cli(env, "storage", "check")
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0 and "fresh-bucket" in missing.stderr, missing.stderr
    made = _cli(env, "storage", "check", "--create-bucket")
    assert made.returncode == 0, made.stderr
    assert "data: object store s3://fresh-bucket/data readable and writable (bucket created)" in made.stdout
    assert f"results: folder {tmp_path / 'results'} readable and writable" in made.stdout
    again = _cli(env, "storage", "check", "--create-bucket")
    assert again.returncode == 0 and "(bucket created)" not in again.stdout
    leftovers = Store("s3://fresh-bucket/data", tmp_path / "x", dict(s3.options)).list()
    assert leftovers == {}, "the probe object was left behind"


def test_storage_check_names_bad_credentials_without_printing_them(tmp_path):
    import json

    with s3_server(check_credentials=True) as strict:  # refuses every key it does not know
        options = {**strict.options, "key": "AKIA-UNKNOWN-KEY", "secret": "WRONG-SECRET-VALUE"}
        env = {"METGAN_DATA_DIR": f"s3://{strict.bucket}/data", "METGAN_RESULTS_DIR": str(tmp_path / "r"),
               "METGAN_STORAGE_OPTIONS": json.dumps(options), "METGAN_CACHE_DIR": str(tmp_path / "cache")}
        result = _cli(env, "storage", "check")
    assert result.returncode != 0, result.stdout
    error = result.stderr.strip()
    assert error.count("\n") == 0, error  # one line, no traceback
    assert f"s3://{strict.bucket}/data" in error and "access key" in error.lower(), error
    assert "WRONG-SECRET-VALUE" not in result.stdout + result.stderr


def test_a_file_put_by_another_host_after_a_listing_is_seen(s3, tmp_path):
    """No cached listing: a store that listed a folder still sees a file another host put there."""
    reader = remote(s3, tmp_path, "lister", prefix="listing")
    writer = remote(s3, tmp_path, "putter", prefix="listing")
    writer.write_bytes("s/a.txt", b"a")
    assert set(reader.list("s")) == {"s/a.txt"}
    # another host: its own S3 client (fsspec would otherwise hand both stores one cached instance)
    Store(reader.location, tmp_path / "other", {**s3.options, "skip_instance_cache": True}).write_bytes(
        "s/b.txt", b"b")
    assert reader.exists("s/b.txt") and set(reader.list("s")) == {"s/a.txt", "s/b.txt"}


def test_a_second_pull_of_an_unchanged_prefix_hashes_nothing(s3, tmp_path, monkeypatch):
    """A pull hashes a mirror file once per local version (then compares the remembered MD5 with
    the ETag), so the gallery's pull on every page load does not re-read every picture, and a new
    version put by another host within the same second is still seen."""
    import metgan.storage as storage

    writer = remote(s3, tmp_path, "writer", prefix="hashed")
    for i in range(5):
        writer.write_bytes(f"s/{i}.png", b"%d" % i)
    hashed: list = []
    real_md5 = storage.file_md5
    monkeypatch.setattr(storage, "file_md5", lambda path: (hashed.append(path), real_md5(path))[1])
    monkeypatch.setattr(storage, "_MD5_BY_VERSION", {})
    assert writer.pull("s") == 0 and len(hashed) == 5  # the writer's own files: the same bytes
    hashed.clear()
    assert writer.pull("s") == 0 and hashed == []
    other = remote(s3, tmp_path, "other", prefix="hashed")
    other.write_bytes("s/2.png", b"X")  # another host: a new version, same size
    assert writer.pull("s") == 1 and writer.path("s/2.png").read_bytes() == b"X"


def test_the_gallery_reads_a_mirror_of_its_own_and_leaves_a_workers_unpushed_files_alone(
        s3, tmp_path, monkeypatch):
    """In compose every container of a host shares one cache: a page load must not replace a
    training worker's files written since its last push with the older stored copies."""
    from metgan.config import get_settings

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "plugins"))
    import metgan_gallery

    for name, value in {**s3.env("data", "gallery-results"), "METGAN_CACHE_DIR": str(tmp_path / "cache"),
                        "METGAN_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/unused"}.items():
        monkeypatch.setenv(name, value)
    worker = get_settings().results_store
    worker.write_bytes("s/t/metrics.jsonl", b'{"epoch": 1}\n')  # pushed at a checkpoint
    worker.path("s/t/metrics.jsonl").write_bytes(b'{"epoch": 1}\n{"epoch": 2}\n')  # not pushed yet
    metgan_gallery._refresh_from_store()
    assert worker.path("s/t/metrics.jsonl").read_bytes() == b'{"epoch": 1}\n{"epoch": 2}\n'
    gallery = metgan_gallery.results_dir()
    assert gallery != worker.mirror and gallery.is_relative_to(tmp_path / "cache" / "gallery")
    assert (gallery / "s/t/metrics.jsonl").read_bytes() == b'{"epoch": 1}\n'

"""A full disk under a GIF, a store's mirror or an upload target is one DiskWriteError line that
names the folder (issue #25); no temp file is left, and what was there before stays intact."""

from __future__ import annotations

import uuid

import pytest
from PIL import Image

from metgan.errors import DiskWriteError
from metgan.storage import Store
from metgan.viz.gifs import write_gif
from tests.hostile.disk import files_under, fill, small_disk


def test_a_gif_on_a_full_disk_is_one_line_and_leaves_the_old_gif(tmp_path):
    folder = tmp_path / "trial"
    frames = [Image.effect_noise((96, 96), 40 + i).convert("RGB") for i in range(12)]
    with small_disk(folder, "256k"):
        write_gif(folder / "progress.gif", frames[:2], duration=0.1)
        before = (folder / "progress.gif").read_bytes()
        fill(folder)
        with pytest.raises(DiskWriteError) as caught:
            write_gif(folder / "progress.gif", frames, duration=0.1)
        assert str(folder) in str(caught.value) and "(ENOSPC)" in str(caught.value)
        assert (folder / "progress.gif").read_bytes() == before
        assert [name for name in files_under(folder) if name != "filler.bin"] == ["progress.gif"]


def test_a_local_store_write_on_a_full_disk_is_one_line_and_leaves_no_part_file(tmp_path):
    folder = tmp_path / "data"
    with small_disk(folder, "128k"):
        store = Store.local(folder)
        fill(folder, leave=4096)
        with pytest.raises(DiskWriteError) as caught:
            store.write_bytes("subsets/vases/big.bin", b"x" * 200_000)
        assert str(folder / "subsets" / "vases") in str(caught.value)
        assert files_under(folder) == ["filler.bin"]


def test_a_download_into_a_full_mirror_is_a_disk_error_not_a_storage_error(tmp_path):
    remote = Store(f"memory://metgan-{uuid.uuid4().hex[:8]}", tmp_path / "writer")
    remote.write_bytes("images/1/0.jpg", b"j" * 100_000)
    mirror = tmp_path / "mirror"
    with small_disk(mirror, "64k"):
        reader = Store(remote.location, mirror)
        with pytest.raises(DiskWriteError) as caught:
            reader.fetch("images/1/0.jpg")
        assert str(mirror / "images" / "1") in str(caught.value) and "disk is full" in str(caught.value)
        assert files_under(mirror) == []

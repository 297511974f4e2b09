"""Training images from a subset folder, as a tf.data pipeline.

The subset folder has ``manifest.csv`` (header ``file,sha256,object_id,image_seq,width,height,
mode,source_width,source_height``; ``file`` relative to the folder); without one, the images in
it (and in ``images/``) are globbed. Images are decoded once by tf.data (resized if they are not
at the trial's size), cached in memory as uint8, and each epoch is a seeded permutation of them:
the order of epoch ``e`` depends only on (seed, e), so a resumed trial sees exactly the batches
it would have seen without the crash.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from metgan.errors import TrainingError
from metgan.gan._tf import tensorflow

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MANIFEST_HEADER = ("file", "sha256", "object_id", "image_seq", "width", "height", "mode",
                   "source_width", "source_height")


def image_files(subset_dir: Path | str) -> list[Path]:
    """The subset's image files: from manifest.csv when present, else by globbing."""
    subset_dir = Path(subset_dir)
    manifest = subset_dir / "manifest.csv"
    if manifest.exists():
        with manifest.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "file" not in reader.fieldnames:
                raise TrainingError(f"{manifest} has no 'file' column (expected header {','.join(MANIFEST_HEADER)})")
            files = [subset_dir / row["file"] for row in reader if row.get("file")]
        root = subset_dir.resolve()
        outside = [f for f in files if not f.resolve().is_relative_to(root)]
        if outside:
            raise TrainingError(f"{manifest} names {len(outside)} file(s) outside the subset folder, "
                                f"e.g. {outside[0]}")
        missing = [f for f in files if not f.exists()]
        if missing:
            raise TrainingError(f"{manifest} lists {len(missing)} missing file(s), e.g. {missing[0]}")
    else:
        files = sorted(p for folder in (subset_dir, subset_dir / "images") if folder.is_dir()
                       for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(f"no training images in {subset_dir} (no manifest.csv entries, no image files)")
    return files


def subset_images(subset_dir: Path | str) -> tuple[int, int, int]:
    """(image count, height, width) of a subset, without TensorFlow: for planning.

    The size is the manifest's (the builder writes one size for all); a folder without a
    manifest is measured on its first image.
    """
    subset_dir = Path(subset_dir)
    files = image_files(subset_dir)
    manifest = subset_dir / "manifest.csv"
    if manifest.exists():
        with manifest.open(newline="") as handle:
            first = next(csv.DictReader(handle))
        try:
            return len(files), int(first["height"]), int(first["width"])
        except (KeyError, TypeError, ValueError):
            pass  # a hand-made manifest without sizes: measure the image
    from PIL import Image

    with Image.open(files[0]) as image:
        width, height = image.size
    return len(files), height, width


def load_images(subset_dir: Path | str, height: int, width: int, channels: int,
                limit: int | None = None) -> np.ndarray:
    """All images of the subset as uint8 NHWC at (height, width, channels)."""
    tf = tensorflow()
    files = [str(p) for p in image_files(subset_dir)][:limit]

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        image.set_shape([None, None, channels])
        if image.shape[0] != height or image.shape[1] != width:
            image = tf.image.resize(image, (height, width), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(tf.cast(image, tf.float32)), 0, 255), tf.uint8)

    dataset = (tf.data.Dataset.from_tensor_slices(files)
               .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .batch(256))
    return np.concatenate([batch.numpy() for batch in dataset], axis=0)


def resize_images(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 NHWC images at (height, width), antialiased as :func:`load_images` resizes files."""
    tf = tensorflow()
    resized = tf.image.resize(tf.cast(images, tf.float32), (height, width), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def to_uint8(images) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 [0, 255], correctly rescaled (the origin cast without it)."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def training_dataset(images: np.ndarray, *, batch_size: int, seed: int, first_epoch: int, epochs: int,
                     x_flip: bool):
    """Batches in [-1, 1] for epochs ``first_epoch`` .. ``epochs - 1``, shuffled per (seed, epoch).

    Returns (dataset, steps_per_epoch). Incomplete last batches are dropped (batch norm and the
    throughput numbers assume full batches).
    """
    tf = tensorflow()
    count = len(images)
    steps = count // batch_size
    if steps < 1:
        raise TrainingError(f"batch_size {batch_size} is larger than the {count} training images")
    pixels = tf.constant(images)

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order[: steps * batch_size])

    def gather(step, indices):
        batch = tf.cast(tf.gather(pixels, indices), tf.float32) / 127.5 - 1.0
        if x_flip:
            flip_seed = tf.stack([tf.cast(seed, tf.int64) + 1, step + first_epoch * steps])
            flip = tf.random.stateless_uniform([tf.shape(indices)[0], 1, 1, 1], seed=flip_seed) < 0.5
            batch = tf.where(flip, tf.reverse(batch, axis=[2]), batch)
        return batch

    dataset = (tf.data.Dataset.range(first_epoch, epochs)
               .flat_map(epoch_order)
               .batch(batch_size, drop_remainder=True)
               .enumerate()
               .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .prefetch(tf.data.AUTOTUNE))
    return dataset, steps

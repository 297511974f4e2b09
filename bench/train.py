"""Benchmark: GAN training throughput and quality, ours vs the origin project's loop.

1. Throughput. Training images per second at 64x80 (width x height), batch 64, with
   the origin's architecture on both sides (noise 62, dense to a 20x16x64 seed grid,
   transposed-conv blocks of 256 and 128 filters with batch norm, tanh; D conv blocks of 64 and
   128 filters with batch norm and LeakyReLU(0.1), dense sigmoid):
   * origin-style: Keras ``fit`` on the origin's train step (binary cross-entropy on sigmoid
     outputs, a fresh generator forward inside the D step, then a second generator forward on
     twice the batch for the G step) fed by ``image_dataset_from_directory`` as the origin did;
   * ours: ``metgan.gan.model.GAN`` with the same builders and loss, where one generator forward
     serves both steps on the batch, fed by the cached, prefetched pipeline of
     ``metgan.gan.data``.
   Both are warmed up (tracing excluded), then timed in interleaved rounds (origin, ours,
   origin, ...) so that load from other processes hits both alike; the speedup is the median of
   the per-round ratios.
2. Quality. Preset ``default`` vs preset ``origin``, each trained as a real trial (same code path
   as a search) for the same wall-clock budget on a generated vase-like subset (the fake Met's
   vase drawer when that package is present, else a procedural one here); the SWD (x1e3, vs
   held-out halves of the reals) of the final epoch, with the real-vs-real floor beside it.

3. Efficiency against the machine's limit. For each architecture's preset (default = DCGAN,
   fastgan, r3gan) at the quality size and the preset's batch: training images/s over timed steps
   after warm-up, times the FLOPs one training image costs (counted from the layers,
   ``metgan.gan.budget.train_flops_per_image``: G and D forward and backward, penalties), as a
   share of a large float32 matmul's FLOP rate timed in the same run
   (``metgan.gan.budget.device_rate``, 2048x2048). A low share says the step is bound by
   something other than arithmetic (small matrices, memory-bound layers, Python/TF overhead).

Ends with ``speedup: <ratio>x`` of the throughput comparison.

    python bench/train.py            # 64x80, 4 rounds of 2 timed steps, 300 s per preset
    python bench/train.py --quick    # 32x40, small filters, short budget: checks the script runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

# The one vase drawer (bench/gpu_check.sh imports vase_images from here).
from metgan.testing.vases import vase_images  # noqa: E402,F401


def write_folder(images: np.ndarray, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:05d}.png")


# --- throughput -------------------------------------------------------------------------------

class StepClock:
    """Step-end timestamps of one ``fit`` call."""

    def __init__(self, keras):
        clock = self

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                clock.stamps.append(time.perf_counter())

        self.callback = _Callback()
        self.stamps: list[float] = []


def _runner(keras, gan, dataset, batch_size: int):
    """A function that trains ``steps`` steps and returns (images, seconds) between the first and last step end."""
    def run(steps: int) -> tuple[int, float]:
        clock = StepClock(keras)
        gan.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=[clock.callback], verbose=0)
        return (len(clock.stamps) - 1) * batch_size, clock.stamps[-1] - clock.stamps[0]

    return run


def origin_style_runner(config, folder: Path):
    import keras
    import tensorflow as tf

    from metgan.gan.model import build_discriminator, build_generator

    class OriginGAN(keras.Model):
        """The origin's train step (without its file-system and trainable-flag side effects)."""

        def __init__(self, d_model, g_model, noise_size):
            super().__init__()
            self.d_model, self.g_model, self.noise_size = d_model, g_model, noise_size
            self.bce = keras.losses.BinaryCrossentropy()

        def compile(self, d_optimizer, g_optimizer):
            super().compile()
            self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

        def train_step(self, real):
            batch = tf.shape(real)[0]
            noise = tf.random.normal([batch, self.noise_size])
            with tf.GradientTape() as d_tape:
                d_real = self.d_model(real, training=True)
                d_loss_real = self.bce(tf.ones((batch, 1)), d_real)
                fake = self.g_model(noise, training=True)
                d_fake = self.d_model(fake, training=True)
                d_loss_fake = self.bce(tf.zeros((batch, 1)), d_fake)
                d_loss = d_loss_real + d_loss_fake
            grads = d_tape.gradient(d_loss, self.d_model.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.d_model.trainable_variables, strict=True))
            with tf.GradientTape() as g_tape:
                fake = self.g_model(tf.random.normal([batch * 2, self.noise_size]), training=True)
                d_fake = self.d_model(fake, training=True)
                g_loss = self.bce(tf.ones((batch * 2, 1)), d_fake)
            grads = g_tape.gradient(g_loss, self.g_model.trainable_variables)
            self.g_optimizer.apply_gradients(zip(grads, self.g_model.trainable_variables, strict=True))
            return {"d_loss_real": d_loss_real, "d_loss_fake": d_loss_fake, "g_loss": g_loss}

    keras.utils.set_random_seed(0)
    discriminator = keras.Sequential([build_discriminator(config), keras.layers.Activation("sigmoid")])
    gan = OriginGAN(discriminator, build_generator(config), config.noise_dim)
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-4), g_optimizer=keras.optimizers.Adam(2e-4))
    dataset = keras.utils.image_dataset_from_directory(
        str(folder), label_mode=None, seed=123, image_size=(config.height, config.width),
        batch_size=config.batch_size, verbose=False)
    dataset = dataset.map(lambda x: tf.cast(x * 2.0 / 255.0 - 1.0, tf.float32)).repeat()
    return _runner(keras, gan, dataset, config.batch_size)


def our_runner(config, folder: Path):
    import keras

    from metgan.gan.data import load_images, training_dataset
    from metgan.gan.model import build_gan

    keras.utils.set_random_seed(0)
    images = load_images(folder, config.height, config.width, config.channels)
    dataset, _ = training_dataset(images, batch_size=config.batch_size, seed=0, first_epoch=0,
                                  epochs=10**6, x_flip=config.x_flip)
    return _runner(keras, build_gan(config), dataset, config.batch_size)


def throughput(origin_config, our_config, folder: Path, rounds: int, steps: int) -> tuple[float, float, float]:
    """Interleaved rounds (origin, ours, origin, ...) so machine load hits both alike.

    Returns (origin images/s, our images/s, median of the per-round ratios).
    """
    origin, ours = origin_style_runner(origin_config, folder), our_runner(our_config, folder)
    origin(2), ours(2)  # tracing and first execution
    totals = {"origin": [0, 0.0], "ours": [0, 0.0]}
    ratios = []
    for _ in range(rounds):
        o_images, o_seconds = origin(steps + 1)
        u_images, u_seconds = ours(steps + 1)
        totals["origin"][0] += o_images
        totals["origin"][1] += o_seconds
        totals["ours"][0] += u_images
        totals["ours"][1] += u_seconds
        ratios.append((u_images / u_seconds) / (o_images / o_seconds))
    ratios.sort()
    median = ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1: len(ratios) // 2 + 1]) / 2
    return totals["origin"][0] / totals["origin"][1], totals["ours"][0] / totals["ours"][1], median


# --- efficiency -------------------------------------------------------------------------------

def efficiency(presets: tuple[str, ...], overrides: dict, folder: Path, steps: int) -> tuple[float, list[dict]]:
    """(matmul FLOP/s, one row per preset: images/s, FLOPs per image, achieved FLOP/s and its share)."""
    from metgan.gan import budget
    from metgan.gan.config import GanConfig

    _, peak = budget.device_rate(size=2048, repeats=4)
    rows = []
    for preset in presets:
        config = GanConfig.from_dict({"preset": preset, **overrides})
        run = our_runner(config, folder)
        run(3)  # tracing and first execution
        images, seconds = run(steps + 1)
        flops = budget.train_flops_per_image(config)
        rate = images / seconds
        rows.append({"preset": preset, "batch": config.batch_size, "images_per_s": rate, "flops_per_image": flops,
                     "flops_per_s": rate * flops, "share": rate * flops / peak})
    return peak, rows


# --- quality ----------------------------------------------------------------------------------

def preset_swd(preset: str, overrides: dict, images: np.ndarray, budget_s: float, out: Path) -> dict:
    from metgan import trialdir
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial

    config = GanConfig.from_dict({"preset": preset, **overrides, "time_budget_s": budget_s})
    summary = run_trial(out / preset, config, out / "unused", images=images)
    last = trialdir.read_metrics(out / preset)[-1]
    info = trialdir.read_trial_info(out / preset)
    return {"swd": last["swd"], "swd_real": last["swd_real"], "epochs": summary["epochs"],
            "images": info["images_seen"], "wall_s": info["wall_s"], "stop": summary["stop_reason"] or summary["status"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script, not the numbers")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds of 2 timed steps per loop")
    parser.add_argument("--budget", type=float, default=None, help="seconds of training per preset")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    from metgan.gan.config import GanConfig

    if args.quick:
        height, width, rounds, steps, budget = 40, 32, args.rounds or 2, 2, args.budget or 5.0
        arch = {"g_filters": 64, "g_seed_filters": 16, "d_filters": 16}
        quality = {"height": 40, "width": 32, "g_filters": 64, "g_seed_filters": 32, "d_filters": 16,
                   "swd_images": 128}
        quality_images = 128
    else:
        height, width, rounds, steps, budget = 80, 64, args.rounds or 4, 2, args.budget or 300.0
        arch = {}
        quality = {"height": 80, "width": 64, "swd_images": 512}
        quality_images = 512
    base = {"preset": "origin", "height": height, "width": width, "batch_size": 64, **arch}
    origin_config = GanConfig.from_dict(base)
    our_config = GanConfig.from_dict({**base, "g_batch_factor": 1})

    with tempfile.TemporaryDirectory(prefix="metgan-bench-") as tmp:
        tmp = Path(tmp)
        write_folder(vase_images(64 * 8, height, width, seed=1), tmp / "images")
        origin_rate, ours, speedup = throughput(origin_config, our_config, tmp / "images", rounds, steps)

        images = vase_images(quality_images, quality["height"], quality["width"], seed=2)
        common = {k: v for k, v in quality.items()}
        common.update(epochs=1000, swd_every=1000, checkpoint_every=1000, n_generated=0, n_samples=4,
                      collapse_patience=1000)
        q_origin = preset_swd("origin", common, images, budget, tmp / "quality")
        q_default = preset_swd("default", common, images, budget, tmp / "quality")

        size = {"height": quality["height"], "width": quality["width"]}
        write_folder(vase_images(64, size["height"], size["width"], seed=3), tmp / "efficiency")
        peak, shares = efficiency(("default", "fastgan", "r3gan"), {**size, **(arch if args.quick else {})},
                                  tmp / "efficiency", steps=2 if args.quick else 12)

    reduction = 1 - q_default["swd"] / q_origin["swd"]
    rows = [
        ("measurement", "origin-style", "ours", "ours vs origin"),
        (f"train images/s, {width}x{height}, batch 64, origin architecture ({rounds} interleaved rounds)",
         f"{origin_rate:.2f}", f"{ours:.2f}", f"{speedup:.2f}x (median)"),
        (f"SWD x1e3 after {budget:.0f} s (preset origin vs default), {quality['width']}x{quality['height']}",
         f"{q_origin['swd']:.1f}", f"{q_default['swd']:.1f}", f"{100 * reduction:.0f}% lower"),
        ("  real-vs-real SWD floor (same halves)", f"{q_origin['swd_real']:.1f}", f"{q_default['swd_real']:.1f}", ""),
        ("  epochs / images trained in the budget", f"{q_origin['epochs']} / {q_origin['images']}",
         f"{q_default['epochs']} / {q_default['images']}", ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(f"\nshare of the machine's limit: a 2048x2048 float32 matmul runs at {peak / 1e9:.1f} GFLOP/s here")
    rows = [("preset", "batch", "train images/s", "GFLOP per image", "GFLOP/s", "share of matmul")]
    rows += [(row["preset"], str(row["batch"]), f"{row['images_per_s']:.1f}", f"{row['flops_per_image'] / 1e9:.2f}",
              f"{row['flops_per_s'] / 1e9:.1f}", f"{100 * row['share']:.0f}%") for row in shares]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(f"targets: throughput >= 2x ({'met' if speedup >= 2 else 'NOT met'}); "
          f"SWD >= 30% lower ({'met' if reduction >= 0.3 else 'NOT met'})")
    print(json.dumps({"origin_images_per_s": origin_rate, "our_images_per_s": ours, "speedup_median": speedup,
                      "swd_origin": q_origin,
                      "swd_default": q_default, "matmul_flops_per_s": peak, "efficiency": shares}, default=str))
    print(f"speedup: {speedup:.2f}x")


if __name__ == "__main__":
    main()

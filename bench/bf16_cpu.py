"""Measure: does ``mixed_bfloat16`` speed up training on this CPU (issue #15, point 4)?

For each preset (default = DCGAN, fastgan) at 64x80 (width x height), builds the GAN once in float32 and
once under Keras' ``mixed_bfloat16`` policy (bf16 compute, float32 variables; bf16 needs no loss
scaling), warms both up, then times them in interleaved rounds so machine load hits both alike.
Prints images/s per policy and the median per-round ratio, and ends with ``speedup: Nx``, the
default preset's bf16 over float32 ratio. These are bare train steps; whole trials at equal time
(bench/quality.py with ``+mixed_precision=on`` variants) are what decided ``mixed_precision: auto``:
there bf16 trained fewer images than float32 and ended no better, so auto stays float32 on a CPU.

    python bench/bf16_cpu.py                 # 4 rounds of 4 steps, batch 32
    python bench/bf16_cpu.py --quick         # 32x40, 1 round: checks the script runs
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metgan.testing.vases import vase_images  # noqa: E402


def runner(config, policy: str, images):
    import keras

    from metgan.gan import fastgan, model
    from metgan.gan.data import training_dataset

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        builders = fastgan if config.architecture == "fastgan" else model
        decoder = fastgan.build_decoder(config) if config.architecture == "fastgan" else None
        gan = model.GAN(builders.build_generator(config), builders.build_discriminator(config),
                        noise_dim=config.noise_dim, ema_decay=config.ema_decay, decoder=decoder)
    finally:
        keras.config.set_dtype_policy(previous)
    d_opt, g_opt = model.make_optimizers(config, False)
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss=config.loss, diffaugment=config.diffaugment,
                recon_weight=config.recon_weight)
    dataset, _ = training_dataset(images, batch_size=config.batch_size, seed=0, first_epoch=0, epochs=10**6,
                                  x_flip=True)

    def run(steps: int) -> float:
        started = time.perf_counter()
        gan.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        return steps * config.batch_size / (time.perf_counter() - started)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    from metgan.gan.config import GanConfig

    height, width = (40, 32) if args.quick else (80, 64)
    rounds = 1 if args.quick else args.rounds
    images = vase_images(256, height, width, seed=4)
    medians = {}
    for preset in ("default", "fastgan"):
        config = GanConfig.from_dict({"preset": preset, "height": height, "width": width})
        runs = {policy: runner(config, policy, images) for policy in ("float32", "mixed_bfloat16")}
        for run in runs.values():
            run(2)  # tracing and the first execution
        rates = {policy: [] for policy in runs}
        for _ in range(rounds):
            for policy, run in runs.items():
                rates[policy].append(run(args.steps))
        ratios = sorted(b / f for f, b in zip(rates["float32"], rates["mixed_bfloat16"], strict=True))
        median = medians[preset] = ratios[len(ratios) // 2]
        print(f"{preset} {width}x{height} batch {config.batch_size}: float32 "
              f"{sum(rates['float32']) / rounds:.1f} images/s, mixed_bfloat16 "
              f"{sum(rates['mixed_bfloat16']) / rounds:.1f} images/s; bf16/fp32 median {median:.2f}x", flush=True)
    print(f"speedup: {medians['default']:.2f}x")


if __name__ == "__main__":
    main()

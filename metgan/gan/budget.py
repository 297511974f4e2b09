"""Fit a search into a time budget: the share each trial gets, and what a trial can afford in it.

A person asks for *minutes*, not epochs: how long a search may take. Planning splits that budget
over the trials (:func:`trial_budget`); the worker that trains a trial then fits the training
size and the number of epochs into its share (:func:`fit_to_budget`), because only that machine
knows how fast it trains (a GPU worker affords a larger size than a 2-core CPU in the same time).

How much a trial affords is estimated, not probed by training: the floating-point work of one
training image is counted from the models' layers (:func:`train_flops_per_image`) and divided
into this device's measured matmul rate times the share of it a GAN step reaches
(``STEP_EFFICIENCY``, measured with ``bench/first_session.py``'s calibration, scaled per
architecture by ``ARCHITECTURE_EFFICIENCY`` from ``bench/train.py``'s efficiency table). The time budget
stays the hard stop, so a wrong estimate costs quality, never time.

Which size: the largest of the requested size halved 0, 1, 2 ... times whose images seen in the
budget reach ``IMAGES_PER_PIXEL`` per pixel of the image: a GAN needs more images seen to draw a
larger image well, and on our measurements a 32x40 DCGAN needs ~20k images seen to draw vases
at about 2x the data's floor; sizes here are width x height, as in the subset form (docs/searching.md, "Time budgets"). A smaller size trained well
beats a larger one trained briefly: the trial's size is recorded in its config.json and the
reason in trial.json's ``fitted`` entry, so nothing about it is silent.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from metgan.errors import GanConfigError
from metgan.gan.config import GanConfig

log = logging.getLogger(__name__)

# The whole search's budget when the form or the CLI does not say: a first search on a 2-core CPU
# (plan, two trials one after another, their GIFs and the report) ends within 10 minutes.
DEFAULT_SEARCH_BUDGET_S = 480
# Seconds of a trial's share that are not training: the TensorFlow import and model build, the
# evaluations, samples, checkpoints and export (measured on the 2-core machine: 15-30 s).
TRIAL_OVERHEAD_S = 25.0
# Seconds of a search that no trial spends: planning, every trial's GIFs and latent walk, the
# report (measured: about 20 s per trial plus 15 s).
SEARCH_OVERHEAD_S = 15.0
RENDER_S_PER_TRIAL = 20.0
# A trial's share below this trains too little to draw anything; planning refuses it.
MIN_TRIAL_S = 30.0
# Share of the device's large-matmul rate a GAN training step of the default (DCGAN) reaches, per
# device kind, with a trial's evaluations and data pipeline included.
STEP_EFFICIENCY = {"CPU": 0.45, "GPU": 0.05}
# Each architecture's training step against the default's, in share of the matmul rate
# (bench/train.py's efficiency table at 64x80 on the 2-core CPU: default 75%, fastgan 84-96%, r3gan
# 36-37%): r3gan's grouped 3x3 convolutions and blurs do little arithmetic per byte moved. Measured
# on CPUs only, so a GPU uses 1 for every architecture.
ARCHITECTURE_EFFICIENCY = {"CPU": {"dcgan": 1.0, "fastgan": 1.1, "r3gan": 0.5}}
# A fitted trial's epoch cap over the epochs its budget is expected to afford: the matmul probe
# misjudged the step rate by up to 1.6x on the shared 2-core machine (a trial ended its epochs
# with 40% of its budget unspent); the time budget, not the cap, ends the trial.
EPOCH_HEADROOM = 1.5
# Images seen per pixel of one image that the chosen size must afford (20k images at 32x40).
IMAGES_PER_PIXEL = 20_000 / (40 * 32)


def trial_budget(budget_s: float, trainings: int) -> float:
    """Seconds of training time each of ``trainings`` (run one after another) gets from a search's
    ``budget_s``; refuses a budget too small to train them at all."""
    if trainings < 1:
        raise GanConfigError("a search with a time budget needs at least one trial")
    share = (budget_s - SEARCH_OVERHEAD_S) / trainings - TRIAL_OVERHEAD_S - RENDER_S_PER_TRIAL
    if share < MIN_TRIAL_S:
        needed = SEARCH_OVERHEAD_S + trainings * (MIN_TRIAL_S + TRIAL_OVERHEAD_S + RENDER_S_PER_TRIAL)
        raise GanConfigError(f"a search budget of {budget_s:.0f} s leaves {max(share, 0):.0f} s of training to each "
                             f"of {trainings} trials (at least {MIN_TRIAL_S:.0f} s is needed): raise the budget "
                             f"to {math.ceil(needed)} s or more, or try fewer combinations")
    return math.floor(share)


def needs_fitting(config: GanConfig) -> bool:
    """Whether the worker still has to fit the size or the epochs of ``config`` to its budget."""
    return config.size_by_budget or config.epochs == 0


def candidate_sizes(config: GanConfig) -> list[tuple[int, int]]:
    """(height, width) of the requested size halved 0, 1, 2 ... times, largest first, while the
    models can still be built at it (each side a multiple of 2**blocks, at least 2 cells)."""
    sizes, height, width = [], config.height, config.width
    while True:
        try:
            GanConfig.from_dict({**config.to_dict(), "height": height, "width": width})
        except GanConfigError:
            break
        if min(height, width) // 2 ** max(config.g_blocks, config.d_blocks) < 2:
            break
        sizes.append((height, width))
        if height % 2 or width % 2:
            break
        height, width = height // 2, width // 2
    return sizes or [(config.height, config.width)]


def _layer_flops(layer, wrapper=None) -> float:
    """Multiply-adds x2 of one layer's forward pass for one image (0 for cheap layers); a layer
    wrapped by another (SpectralNormalization) has its wrapper's input and output shapes."""
    import keras

    inner = getattr(layer, "layer", None)  # SpectralNormalization wraps a layer
    if inner is not None and isinstance(inner, keras.layers.Layer):
        return _layer_flops(inner, wrapper=layer)
    if isinstance(layer, keras.Model):
        return model_flops(layer)
    name = type(layer).__name__
    if isinstance(layer, keras.layers.Conv2D):  # and its subclasses (r3gan's GroupedConv2D)
        name = "Conv2D"
    if name == "DepthwiseConv2D":  # kernel (kh, kw, channels, multiplier)
        out_shape = (wrapper or layer).output.shape
        return 2.0 * int(out_shape[1]) * int(out_shape[2]) * int(out_shape[3]) * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    if name not in ("Conv2D", "Conv2DTranspose", "Dense"):
        return 0.0
    outer = wrapper or layer
    kernel = layer.kernel.shape
    fan = 1
    for dim in kernel[:-1]:
        fan *= int(dim)
    if name == "Dense":
        return 2.0 * fan * int(kernel[-1])
    if name == "Conv2DTranspose":
        # kernel (kh, kw, out, in): every input position scatters kh*kw*out values per input channel
        in_shape = outer.input.shape
        return 2.0 * int(in_shape[1]) * int(in_shape[2]) * int(kernel[0]) * int(kernel[1]) * int(kernel[2]) * int(kernel[3])
    out_shape = outer.output.shape  # a grouped kernel is (kh, kw, in / groups, out): fan counts one group
    return 2.0 * int(out_shape[1]) * int(out_shape[2]) * fan * int(kernel[-1])


def model_flops(model) -> float:
    """Forward-pass FLOPs of one image through a functional Keras model."""
    return sum(_layer_flops(layer) for layer in model.layers)


def train_flops_per_image(config: GanConfig) -> float:
    """FLOPs one training image costs: D's step (G forward, D forward and backward on a real and a
    fake) and G's step (G and D forward and backward), a backward pass counted as twice a forward;
    each gradient penalty (R1, R2, WGAN-GP) adds a D forward and a double backward (about 5 D
    forwards, every ``penalty_every`` steps), and the relativistic loss a D forward on the real images in G's step."""
    from metgan.gan.model import build_models

    generator, discriminator, decoder = build_models(config)
    g_fwd, d_fwd = model_flops(generator), model_flops(discriminator)
    if decoder is not None:
        d_fwd += model_flops(decoder) / 2  # the decoders see the real images only
    penalties = (config.r1_weight > 0) + (config.r2_weight > 0) + (config.loss == "wgan-gp")
    relativistic = d_fwd if config.loss == "relativistic" else 0.0
    return (g_fwd + 2 * 3 * d_fwd + penalties * 5 * d_fwd / config.penalty_every) + config.g_batch_factor * 3 * (g_fwd + d_fwd) + relativistic


def device_rate(size: int = 1024, repeats: int = 8) -> tuple[str, float]:
    """(device kind, FLOP/s) of a large float32 matmul on the device TensorFlow trains on."""
    from metgan.gan._tf import tensorflow

    tf = tensorflow()
    kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    a = tf.random.stateless_normal((size, size), seed=(1, 2))
    b = tf.random.stateless_normal((size, size), seed=(3, 4))
    (a @ b).numpy()  # warm-up: thread pools, kernels
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        out = a
        for _ in range(repeats):
            out = tf.matmul(out, b) * (1.0 / size)
        out.numpy()
        best = min(best, time.perf_counter() - started)
    return kind, 2.0 * size ** 3 * repeats / best


def step_efficiency(kind: str, architecture: str) -> float:
    """Share of a ``kind`` device's matmul rate that ``architecture``'s training step reaches."""
    relative = ARCHITECTURE_EFFICIENCY.get(kind, {}).get(architecture, 1.0)
    return STEP_EFFICIENCY.get(kind, STEP_EFFICIENCY["CPU"]) * relative


def fit_to_budget(config: GanConfig, images: int, *, rate: tuple[str, float] | None = None) -> tuple[GanConfig, dict]:
    """The config this worker trains for ``config``'s ``time_budget_s`` on ``images`` images, and
    a record of why (trial.json's ``fitted``).

    With ``size_by_budget`` the size is the largest candidate (:func:`candidate_sizes`) that affords
    ``IMAGES_PER_PIXEL`` per pixel, else the smallest; with ``epochs: 0`` the epochs are those the
    budget affords at that size (at least 1). The returned config has neither left to fit.
    """
    if not needs_fitting(config):
        return config, {}
    kind, flops = rate or device_rate()
    per_s = flops * step_efficiency(kind, config.architecture)
    budget = config.time_budget_s
    sizes = candidate_sizes(config) if config.size_by_budget else [(config.height, config.width)]
    estimates = []
    for height, width in sizes:
        at_size = GanConfig.from_dict({**config.to_dict(), "height": height, "width": width,
                                       "size_by_budget": False, "epochs": max(config.epochs, 1)})
        images_per_s = per_s / train_flops_per_image(at_size)
        estimates.append((height, width, images_per_s, images_per_s * budget))
    chosen = next((e for e in estimates if e[3] >= IMAGES_PER_PIXEL * e[0] * e[1]), estimates[-1])
    height, width, images_per_s, affordable = chosen
    steps_per_epoch = max(images // config.batch_size, 1)
    expected = max(1, math.floor(affordable / (steps_per_epoch * config.batch_size)))
    # The time budget ends a fitted trial (its status reads completed, with a last evaluation);
    # the epochs are only a cap, with headroom for a device faster than the probe said.
    epochs = config.epochs or max(1, math.floor(expected * EPOCH_HEADROOM))
    cadence = {}
    if not config.epochs:
        # about 20 evaluations and 10 checkpoints a trial, whatever its epochs: one per epoch of a
        # small subset would spend a quarter of the budget on them
        cadence = {"swd_every": max(config.swd_every, round(expected / 20)),
                   "checkpoint_every": max(config.checkpoint_every, round(expected / 10))}
    fitted = GanConfig.from_dict({**config.to_dict(), "height": height, "width": width, "epochs": epochs,
                                  "size_by_budget": False, **cadence})
    shrunk = (height, width) != (config.height, config.width)
    reason = (f"{budget:.0f} s on this {kind} (~{images_per_s:.0f} images/s at {width}x{height}) affords "
              f"~{affordable:,.0f} images seen")
    if shrunk:
        reason += (f"; at {config.width}x{config.height} it would see "
                   f"~{estimates[0][3]:,.0f}, too few to draw well, so it trains at {width}x{height}")
    record = {"requested": config.to_dict(), "height": height, "width": width, "epochs": epochs,
              "epochs_expected": expected if not config.epochs else epochs,
              "epochs_fitted": not config.epochs, **cadence,
              "device": kind, "device_gflops": round(flops / 1e9, 1),
              "estimated_images_per_s": round(images_per_s, 1), "below_subset_size": shrunk, "reason": reason}
    log.info("fitted to the time budget: %s; %d epochs of %d images", reason, epochs, images)
    return fitted, record


def describe_fit(fitted: dict[str, Any] | None) -> str | None:
    """One line for the report and the gallery: what the worker chose and why (None: nothing fitted)."""
    if not fitted:
        return None
    epochs = fitted.get("epochs_expected", fitted["epochs"])
    return f"trained at {fitted['width']}x{fitted['height']} for ~{epochs} epochs: {fitted['reason']}"

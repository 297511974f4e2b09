"""The GAN configuration: one frozen dataclass, validated at construction.

Pure Python on purpose (no TensorFlow import), so that planning a grid search, or parsing an
Airflow DAG, stays cheap. Four presets exist:

* ``default``: our best measured small-data setup on CPUs (DCGAN 4x4 stride-2 convolutions, batch
  norm in G and in D, LeakyReLU(0.2) in D, non-saturating loss, Adam(8e-4, 0.5) for both, batch
  16, an EMA of G, DiffAugment translation, x-flips; G's batch-norm statistics follow at momentum
  0.9, PyTorch's DCGAN default, so samples drawn in inference mode are right after a few steps).
  How each choice was measured: docs/benchmarks.md and CHANGELOG.md. With ``loss: wgan-gp`` set
  ``d_norm: none`` too (the gradient penalty is per sample). It is sized for CPUs (G 128 filters
  halving over 3 blocks, D 32 doubling): on a 2-core machine many more, smaller steps beat a
  wider model in the same time (bench/train.py). On a GPU, widen it in the grid (e.g. g_filters
  256-512, d_filters 64, batch 64; a larger batch may want the learning rates measured again).
* ``origin``: the model of the notebook project metgan grew from (README, "the origin"): noise 62, dense to a seed grid of 64 channels, stride-2 transposed-conv blocks with batch norm
  and ReLU halving the filters, tanh, Keras' default initialisers and batch-norm momentum; D conv
  blocks with batch norm and LeakyReLU(0.1), dense sigmoid output; binary cross-entropy; the
  generator step on twice the batch; Adam(2e-4) with Keras' default betas; no augmentation, no
  EMA. Kept so our changes can be measured against it.
* ``fastgan``: ``architecture: fastgan`` (:mod:`metgan.gan.fastgan`): skip-layer excitation, GLU
  blocks with noise injection, a two-scale spectrally normalised D whose decoders rebuild real
  images (MSE x ``recon_weight``), hinge loss with a soft real margin, DiffAugment, EMA G,
  Adam(2e-4, 0.5, 0.999), batch 32.
* ``r3gan``: ``architecture: r3gan`` (:mod:`metgan.gan.r3gan`), R3GAN's recipe sized for CPUs: a
  normalisation-free residual G and D with depthwise 3x3 convolutions (``group_size`` 1:
  TensorFlow's grouped kernels are slow on CPUs), the relativistic loss with R1 and R2 (gamma 1
  each, every 16th D step and weighted 16x: StyleGAN2's lazy regularisation, which R3GAN does not
  use), Adam(6e-4, 0, 0.99) (the paper's 2e-4 at its batch 256 trained too slowly in a CPU's
  minutes), adaptive augmentation (translation, colour and cutout, target 0.6), EMA G, batch 16.
  On a GPU: ``group_size`` 16, ``g_filters`` 256, ``d_filters`` 64, ``res_blocks`` 2.

``holdout`` (0 to 0.5) keeps that share of the subset out of training; the scores then compare
against those images only.

``GanConfig.from_dict`` takes a dict that may name a ``preset`` to start from; every other key
overrides a field. Unknown keys and impossible combinations raise
:class:`~metgan.errors.GanConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any

from metgan.errors import GanConfigError

# Bump when a change to the training code makes old results incomparable: it is part of every
# trial id, so a rerun after such a change trains afresh instead of skipping.
SCHEMA_VERSION = 1

LOSSES = ("non-saturating", "hinge", "wgan-gp", "least-squares", "relativistic")
G_NORMS = ("batch", "none")
# How the DCGAN generator doubles its maps: a stride-2 transposed convolution, or nearest-neighbour
# resizing then a stride-1 convolution (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts")
G_UPSAMPLES = ("transpose", "resize")
D_NORMS = ("batch", "spectral", "none")
AUGMENTATIONS = ("translation", "cutout", "color")
SWITCHES = ("auto", "on", "off")
ARCHITECTURES = ("dcgan", "fastgan", "r3gan")


@dataclass(frozen=True)
class GanConfig:
    """Every setting of one GAN trial. Field defaults are the ``default`` preset."""

    # architecture: "dcgan" (metgan.gan.model's builders), "fastgan" (metgan.gan.fastgan) or
    # "r3gan" (metgan.gan.r3gan)
    architecture: str = "dcgan"
    # images
    height: int = 80
    width: int = 64
    channels: int = 3
    x_flip: bool = True
    # generator
    noise_dim: int = 128
    g_blocks: int = 3
    g_filters: int = 128
    g_seed_filters: int = 128
    g_kernel: int = 4
    g_dense: int = 0
    g_dense_units: int = 256
    g_norm: str = "batch"
    g_upsample: str = "transpose"
    g_bn_momentum: float = 0.9
    # discriminator
    d_blocks: int = 3
    d_filters: int = 32
    d_kernel: int = 4
    d_dense: int = 0
    d_dense_units: int = 256
    d_norm: str = "batch"
    d_dropout: float = 0.0
    d_leak: float = 0.2
    # r3gan: residual blocks per stage, and channels per group of their 3x3 convolution
    res_blocks: int = 1
    group_size: int = 16
    # training
    loss: str = "non-saturating"
    gp_weight: float = 10.0
    r1_weight: float = 0.0
    r2_weight: float = 0.0  # R2: R1's penalty on generated images (R3GAN applies both)
    # lazy regularisation (StyleGAN2): the gradient penalties every this many D steps, weighted as many times
    penalty_every: int = 1
    recon_weight: float = 1.0
    diffaugment: tuple[str, ...] = ("translation",)
    # adaptive augmentation (StyleGAN2-ADA): above 0, each diffaugment policy applies to a sample
    # with a probability p that rises while the share of real images D scores positive exceeds
    # this target, and falls below it; p moves by at most 1 per ada_images images seen
    ada_target: float = 0.0
    ada_images: int = 20_000
    ema_decay: float = 0.999
    g_lr: float = 8e-4
    g_beta1: float = 0.5
    g_beta2: float = 0.999
    d_lr: float = 8e-4
    d_beta1: float = 0.5
    d_beta2: float = 0.999
    batch_size: int = 16
    g_batch_factor: int = 1
    # 0: as many as ``time_budget_s`` affords, decided by the worker that trains (metgan.gan.budget)
    epochs: int = 50
    d_steps: int = 1
    seed: int = 0
    mixed_precision: str = "auto"
    xla: str = "auto"
    steps_per_execution: int = 1
    # evaluation, checkpoints, stopping
    holdout: float = 0.0
    swd_every: int = 5
    swd_images: int = 1024
    inception_weights: str | None = None
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    time_budget_s: float = 0.0
    # height x width is the largest size; the worker trains at the largest halving of it that
    # time_budget_s affords on its hardware (metgan.gan.budget), recorded in config.json
    size_by_budget: bool = False
    collapse_within_std: float = 7.0
    collapse_across_std: float = 2.0
    collapse_patience: int = 4
    n_samples: int = 16
    n_generated: int = 32

    def __post_init__(self) -> None:
        _validate(self)

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None = None) -> GanConfig:
        """A validated config from ``data`` (an optional ``preset`` name plus overrides)."""
        data = dict(data or {})
        preset = data.pop("preset", "default")
        if preset not in PRESETS:
            raise GanConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        valid = cls.field_names()
        for key in data:
            if key not in valid:
                close = difflib.get_close_matches(str(key), ["preset", *valid], n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"valid keys: preset, {', '.join(valid)}"
                raise GanConfigError(f"unknown GAN config key {key!r}; {hint}")
        values = {**PRESETS[preset], **data}
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field (tuples as lists)."""
        out = dataclasses.asdict(self)
        out["diffaugment"] = list(self.diffaugment)
        return out

    def replace(self, **changes: Any) -> GanConfig:
        return GanConfig.from_dict({**self.to_dict(), **changes})

    # --- identity ---------------------------------------------------------------------------

    def canonical_json(self) -> str:
        config = self.to_dict()
        for key, default in LATER_FIELDS.items():  # absent unless set, so older trials keep their ids
            if config[key] == default:
                del config[key]
        return json.dumps({"schema_version": SCHEMA_VERSION, "config": config},
                          sort_keys=True, separators=(",", ":"))

    def trial_id(self) -> str:
        """12 hex digits of the sha256 of the canonical config JSON plus the schema version."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]

    def overrides(self, preset: str = "default") -> dict[str, Any]:
        """The fields whose value differs from ``preset``."""
        base = GanConfig.from_dict({"preset": preset}).to_dict()
        return {k: v for k, v in self.to_dict().items() if base[k] != v}

    def label(self) -> str:
        """A short human name: the preset it is closest to, plus the settings that differ."""
        best: list[str] | None = None
        for name in PRESETS:
            parts = [name] if name != "default" else []
            for key, value in sorted(self.overrides(name).items()):
                if key in _LABEL_SKIP or (self.size_by_budget and key in ("height", "width")):
                    continue
                if isinstance(value, list):
                    value = "+".join(value) or "none"
                parts.append(f"{key}={value}")
            if best is None or len(parts) < len(best):
                best = parts
        return " ".join(best or []) or "default"

    # --- derived ----------------------------------------------------------------------------

    @property
    def seed_height(self) -> int:
        return self.height // 2 ** self.g_blocks

    @property
    def seed_width(self) -> int:
        return self.width // 2 ** self.g_blocks


# Fields added after trial ids were first issued, with their defaults: a config that leaves them at
# the default has the id it had before they existed.
LATER_FIELDS: dict[str, Any] = {"size_by_budget": False, "r2_weight": 0.0, "res_blocks": 1, "group_size": 16,
                                "ada_target": 0.0, "ada_images": 20_000, "penalty_every": 1,
                                "g_upsample": "transpose"}

# Settings that do not change what is trained, left out of labels.
_LABEL_SKIP = {"epochs", "seed", "swd_every", "swd_images", "checkpoint_every", "keep_checkpoints",
               "n_samples", "n_generated", "time_budget_s", "steps_per_execution", "inception_weights",
               "size_by_budget"}

_TYPES: dict[str, str] = {}


def _coerce(key: str, value: Any) -> Any:
    """Accept the JSON/YAML spellings of a value (lists for tuples, ints for floats)."""
    kind = _field_types().get(key)
    if key == "diffaugment":
        if value is None or value == "" or value == "none":
            return ()
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise GanConfigError(f"diffaugment must be a list of {', '.join(AUGMENTATIONS)}; got {value!r}")
        return tuple(value)
    if kind == "float" and isinstance(value, str):
        # "1e-3": YAML 1.1 (PyYAML) reads it as a string where Python and YAML 1.2 read a float
        try:
            return float(value.strip())
        except ValueError:
            return value  # _check_type names the key
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _field_types() -> dict[str, str]:
    if not _TYPES:
        for f in fields(GanConfig):
            _TYPES[f.name] = f.type if isinstance(f.type, str) else f.type.__name__
    return _TYPES


def _check_type(config: GanConfig) -> None:
    for name, kind in _field_types().items():
        value = getattr(config, name)
        if kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "str":
            ok = isinstance(value, str)
        elif kind == "str | None":
            ok = value is None or isinstance(value, str)
        else:
            ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        if not ok:
            raise GanConfigError(f"GAN config key {name!r} must be {kind}; got {value!r}")


def _at_least(config: GanConfig, minimum: float, *names: str) -> None:
    for name in names:
        if getattr(config, name) < minimum:
            raise GanConfigError(f"GAN config key {name!r} must be at least {minimum}; "
                                 f"got {getattr(config, name)!r}")


def _one_of(config: GanConfig, name: str, choices: tuple[str, ...]) -> None:
    if getattr(config, name) not in choices:
        raise GanConfigError(f"GAN config key {name!r} must be one of {', '.join(choices)}; "
                             f"got {getattr(config, name)!r}")


# What the trainer can use: a value beyond these fails the trial (or fills the memory) long after
# the plan accepted it, so the config refuses it. Each is far above any setting that trains well.
UPPER_BOUNDS: dict[str, int | float] = {
    "height": 1024, "width": 1024, "noise_dim": 4096, "g_blocks": 10, "d_blocks": 10,
    "g_filters": 4096, "g_seed_filters": 4096, "d_filters": 4096, "g_kernel": 15, "d_kernel": 15,
    "g_dense": 8, "d_dense": 8, "g_dense_units": 8192, "d_dense_units": 8192,
    "batch_size": 4096, "g_batch_factor": 16, "d_steps": 100, "steps_per_execution": 10_000,
    "epochs": 1_000_000, "swd_images": 65_536, "n_samples": 256, "keep_checkpoints": 1000,
    "time_budget_s": 30 * 24 * 3600.0, "res_blocks": 8, "group_size": 4096, "ada_images": 10**9,
    "penalty_every": 1000,
    # numpy's seeds stop at 2**32 - 1 and the trainer derives a few seeds as seed + small offsets
    "seed": 2**31 - 1,
}
# One layer's weights, and one batch's activations of one layer, in float32 values
MAX_LAYER_WEIGHTS = 2**28
MAX_LAYER_ACTIVATIONS = 2**31


def _at_most(config: GanConfig) -> None:
    for name, bound in UPPER_BOUNDS.items():
        if getattr(config, name) > bound:
            raise GanConfigError(f"GAN config key {name!r} must be at most {bound}; got {getattr(config, name)!r}")


def _check_capacity(c: GanConfig) -> None:
    """Refuse a model whose largest layer (weights or one batch's activations) would not fit in
    memory; the estimate follows the builders' shapes: G halves its filters per block, D doubles."""
    gib = 4 / 2**30
    g_inputs = c.g_dense_units if c.g_dense else c.noise_dim
    weights = {
        "the generator's seed layer": g_inputs * c.seed_height * c.seed_width * c.g_seed_filters,
        "the generator's first block": c.g_kernel ** 2 * c.g_seed_filters * c.g_filters,
        "the discriminator's last block": c.d_kernel ** 2 * c.d_filters * 2 ** max(0, c.d_blocks - 2)
        * c.d_filters * 2 ** (c.d_blocks - 1),
        "the discriminator's dense layer": (c.height >> c.d_blocks) * (c.width >> c.d_blocks)
        * c.d_filters * 2 ** (c.d_blocks - 1) * (c.d_dense_units if c.d_dense else 1),
    }
    layer, count = max(weights.items(), key=lambda item: item[1])
    if count > MAX_LAYER_WEIGHTS:
        raise GanConfigError(f"GAN config is too large: {layer} would hold {count:,} weights "
                             f"({count * gib:.1f} GiB, over {MAX_LAYER_WEIGHTS * gib:.0f}); lower noise_dim, "
                             "the filters or the dense units, or raise the blocks")
    per_image = max(
        max((c.seed_height << i) * (c.seed_width << i) * max(1, c.g_filters >> (i - 1)) for i in range(1, c.g_blocks + 1)),
        max((c.height >> i) * (c.width >> i) * (c.d_filters << (i - 1)) for i in range(1, c.d_blocks + 1)))
    count = per_image * c.batch_size * c.g_batch_factor
    if count > MAX_LAYER_ACTIVATIONS:
        raise GanConfigError(f"GAN config is too large: one batch's activations of one layer would be {count:,} "
                             f"values ({count * gib:.1f} GiB, over {MAX_LAYER_ACTIVATIONS * gib:.0f}); lower "
                             "batch_size, height/width or the filters")


def _validate(c: GanConfig) -> None:
    _check_type(c)
    _at_most(c)
    _at_least(c, 1, "height", "width", "noise_dim", "g_blocks", "g_filters", "g_seed_filters",
              "g_kernel", "g_dense_units", "d_blocks", "d_filters", "d_kernel", "d_dense_units",
              "batch_size", "g_batch_factor", "d_steps", "steps_per_execution", "swd_every",
              "checkpoint_every", "keep_checkpoints", "collapse_patience", "n_samples")
    _at_least(c, 1, "res_blocks", "group_size", "ada_images", "penalty_every")
    _at_least(c, 0, "g_dense", "d_dense", "gp_weight", "r1_weight", "r2_weight", "seed", "time_budget_s", "epochs",
              "collapse_within_std", "collapse_across_std", "n_generated", "d_leak")
    if (c.epochs == 0 or c.size_by_budget) and not c.time_budget_s:
        what = "epochs 0 (as many as the budget affords)" if c.epochs == 0 else "size_by_budget"
        raise GanConfigError(f"GAN config {what} needs a time budget: set time_budget_s")
    if c.channels not in (1, 3):
        raise GanConfigError(f"GAN config key 'channels' must be 1 (grayscale) or 3 (RGB); got {c.channels!r}")
    _one_of(c, "g_norm", G_NORMS)
    _one_of(c, "g_upsample", G_UPSAMPLES)
    if c.g_upsample != "transpose" and c.architecture != "dcgan":
        raise GanConfigError(f"GAN config key 'g_upsample'={c.g_upsample!r} is for 'architecture'='dcgan'; "
                             f"{c.architecture} upsamples its own way")
    _one_of(c, "d_norm", D_NORMS)
    _one_of(c, "loss", LOSSES)
    _one_of(c, "mixed_precision", SWITCHES)
    _one_of(c, "xla", SWITCHES)
    _one_of(c, "architecture", ARCHITECTURES)
    _at_least(c, 0, "recon_weight")
    if not 0 <= c.holdout <= 0.5:
        raise GanConfigError(f"GAN config key 'holdout' must be in [0, 0.5] (the share of images kept out of "
                             f"training for the scores); got {c.holdout!r}")
    if c.architecture == "fastgan":
        _validate_fastgan(c)
    if not 0 <= c.ada_target < 1:
        raise GanConfigError(f"GAN config key 'ada_target' must be in [0, 1) (0 = off; ADA's paper uses 0.6); "
                             f"got {c.ada_target!r}")
    if c.ada_target and not c.diffaugment:
        raise GanConfigError("GAN config key 'ada_target' needs augmentation policies to adapt: set diffaugment "
                             f"(e.g. translation, color, cutout); got ada_target={c.ada_target} with none")
    if c.architecture == "r3gan":
        _validate_r3gan(c)
    for name in ("height", "width"):
        size = getattr(c, name)
        for blocks_key in ("g_blocks", "d_blocks"):
            blocks = getattr(c, blocks_key)
            if size % 2 ** blocks:
                raise GanConfigError(
                    f"GAN config key {name!r}={size} is not divisible by 2**{blocks_key} "
                    f"(= {2 ** blocks}); each block halves or doubles the size")
            if size // 2 ** blocks < 2:
                raise GanConfigError(
                    f"GAN config key {blocks_key!r}={blocks} is too many for {name}={size}: "
                    f"the smallest feature map would be {size // 2 ** blocks} px (need >= 2)")
    if c.architecture == "dcgan" and c.g_filters // 2 ** (c.g_blocks - 1) < 1:  # fastgan keeps >= 8
        raise GanConfigError(f"GAN config key 'g_filters'={c.g_filters} is too small for "
                             f"g_blocks={c.g_blocks}: filters halve each block and would reach 0")
    if not 0 <= c.g_bn_momentum < 1:
        raise GanConfigError(f"GAN config key 'g_bn_momentum' must be in [0, 1); got {c.g_bn_momentum!r}")
    if not 0 <= c.d_dropout < 1:
        raise GanConfigError(f"GAN config key 'd_dropout' must be in [0, 1); got {c.d_dropout!r}")
    if not 0 <= c.ema_decay < 1:
        raise GanConfigError(f"GAN config key 'ema_decay' must be in [0, 1) (0 = off); got {c.ema_decay!r}")
    for name in ("g_lr", "d_lr"):
        if not getattr(c, name) > 0:
            raise GanConfigError(f"GAN config key {name!r} must be above 0; got {getattr(c, name)!r}")
    for name in ("g_beta1", "g_beta2", "d_beta1", "d_beta2"):
        if not 0 <= getattr(c, name) < 1:
            raise GanConfigError(f"GAN config key {name!r} must be in [0, 1); got {getattr(c, name)!r}")
    for policy in c.diffaugment:
        if policy not in AUGMENTATIONS:
            raise GanConfigError(f"GAN config key 'diffaugment' has unknown policy {policy!r}; "
                                 f"valid: {', '.join(AUGMENTATIONS)}")
    if len(set(c.diffaugment)) != len(c.diffaugment):
        raise GanConfigError(f"GAN config key 'diffaugment' repeats a policy: {list(c.diffaugment)}")
    if c.loss == "wgan-gp" and c.d_norm == "batch":
        raise GanConfigError("GAN config keys 'loss'='wgan-gp' and 'd_norm'='batch' cannot be combined: "
                             "the gradient penalty is per sample, batch norm mixes samples "
                             "(set d_norm: none or spectral with wgan-gp)")
    if c.loss == "wgan-gp" and (c.r1_weight > 0 or c.r2_weight > 0):
        key = "r1_weight" if c.r1_weight > 0 else "r2_weight"
        raise GanConfigError(f"GAN config keys 'loss'='wgan-gp' and {key!r} > 0 cannot be combined: "
                             "choose one gradient penalty")
    if c.loss == "relativistic" and c.g_batch_factor != 1:
        raise GanConfigError(f"GAN config key 'g_batch_factor'={c.g_batch_factor} cannot be used with "
                             "'loss'='relativistic': the loss pairs each generated image with one real image "
                             "of the batch (set g_batch_factor: 1)")
    if c.loss == "relativistic" and c.d_norm == "batch" and c.architecture == "dcgan":
        raise GanConfigError("GAN config keys 'loss'='relativistic' and 'd_norm'='batch' cannot be combined: "
                             "the loss pairs each real image with a generated one, batch norm mixes them "
                             "(set d_norm: none or spectral)")
    if c.n_generated > 1000:
        raise GanConfigError(f"GAN config key 'n_generated' must be at most 1000; got {c.n_generated}")
    if c.swd_images < 4:
        raise GanConfigError(f"GAN config key 'swd_images' must be at least 4; got {c.swd_images}")
    if c.inception_weights is not None and not c.inception_weights.strip():
        raise GanConfigError("GAN config key 'inception_weights' is empty; leave it null for no FID")
    if c.collapse_patience < 1:
        raise GanConfigError("GAN config key 'collapse_patience' must be at least 1")
    _check_capacity(c)


def _validate_fastgan(c: GanConfig) -> None:
    """What the FastGAN-style builders and step cannot do, refused by key."""
    if c.loss == "wgan-gp":
        raise GanConfigError("GAN config keys 'architecture'='fastgan' and 'loss'='wgan-gp' cannot be combined: "
                             "its discriminator has batch-norm-free patch logits meant for the hinge loss; "
                             "use hinge, non-saturating or least-squares")
    if c.d_blocks < 3:
        raise GanConfigError(f"GAN config key 'd_blocks'={c.d_blocks} is too few for 'architecture'='fastgan': "
                             "its decoders read the last two maps before the final one (need >= 3)")
    _validate_dense_free(c)


def _validate_r3gan(c: GanConfig) -> None:
    """What the R3GAN-style builders cannot do, refused by key."""
    _validate_dense_free(c)


def _validate_dense_free(c: GanConfig) -> None:
    """fastgan and r3gan: no hidden dense layers, no dropout, a seed grid of at most 2**18 values."""
    name = c.architecture
    for key in ("g_dense", "d_dense"):
        if getattr(c, key):
            raise GanConfigError(f"GAN config key {key!r} must be 0 with 'architecture'={name!r} "
                                 "(it has no hidden dense layers)")
    if c.d_dropout:
        raise GanConfigError(f"GAN config key 'd_dropout' must be 0 with 'architecture'={name!r} "
                             "(its discriminator has no dropout)")
    if c.seed_height * c.seed_width * c.g_seed_filters > 1 << 18:
        raise GanConfigError(f"GAN config key 'g_blocks'={c.g_blocks} is too few for {c.width}x{c.height} with "
                             f"'architecture'={name!r}: the seed grid {c.seed_width}x{c.seed_height}x"
                             f"{c.g_seed_filters} would exceed 2**18 values; raise g_blocks")


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "origin": {
        "x_flip": False,
        "noise_dim": 62,
        "g_blocks": 2,
        "g_filters": 256,
        "g_seed_filters": 64,
        "g_kernel": 4,
        "g_norm": "batch",
        "g_bn_momentum": 0.99,
        "d_blocks": 2,
        "d_filters": 64,
        "d_kernel": 4,
        "d_norm": "batch",
        "d_dropout": 0.0,
        "d_leak": 0.1,
        "loss": "non-saturating",
        "diffaugment": (),
        "ema_decay": 0.0,
        "g_lr": 2e-4,
        "g_beta1": 0.9,
        "g_beta2": 0.999,
        "d_lr": 2e-4,
        "d_beta1": 0.9,
        "d_beta2": 0.999,
        "g_batch_factor": 2,
        "batch_size": 10,
        "collapse_within_std": 7.0,
        "collapse_patience": 4,
    },
    "fastgan": {
        "architecture": "fastgan",
        "g_blocks": 3,
        "g_filters": 64,
        "g_seed_filters": 128,
        "g_kernel": 3,
        "d_blocks": 3,
        "d_filters": 32,
        "d_kernel": 4,
        "d_norm": "spectral",
        "d_dropout": 0.0,
        "loss": "hinge",
        "recon_weight": 1.0,
        "diffaugment": ("color", "translation"),
        "ema_decay": 0.999,
        "g_lr": 2e-4,
        "d_lr": 2e-4,
        "batch_size": 32,
    },
    "r3gan": {
        "architecture": "r3gan",
        "noise_dim": 64,
        "g_blocks": 3,
        "g_filters": 64,
        "g_seed_filters": 128,
        "g_norm": "none",
        "d_blocks": 3,
        "d_filters": 16,
        "d_norm": "none",
        "res_blocks": 1,
        "group_size": 1,
        "loss": "relativistic",
        "r1_weight": 1.0,
        "r2_weight": 1.0,
        "penalty_every": 16,
        "diffaugment": ("translation", "color", "cutout"),
        "ada_target": 0.6,
        "ema_decay": 0.999,
        "g_lr": 6e-4,
        "g_beta1": 0.0,
        "g_beta2": 0.99,
        "d_lr": 6e-4,
        "d_beta1": 0.0,
        "d_beta2": 0.99,
        "batch_size": 16,
    },
}
# R3GAN's network at a GPU's width: grouped 3x3 convolutions (16 channels a group, which GPUs run
# fast and TensorFlow's CPU kernels slowly), two residual blocks a stage, 4x the CPU preset's
# channels, a batch of 64 and the penalties every 4th step. Built and trained in tests on the CPU
# at tiny sizes; no GPU was available to measure its speed (bench/gpu_check.sh includes it).
PRESETS["r3gan-gpu"] = {**PRESETS["r3gan"], "group_size": 16, "res_blocks": 2, "g_filters": 256,
                        "g_seed_filters": 256, "d_filters": 64, "batch_size": 64, "penalty_every": 4}


def preset(name: str) -> GanConfig:
    """The named preset as a config."""
    return GanConfig.from_dict({"preset": name})

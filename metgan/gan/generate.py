"""New images from a trial's best snapshot: one PNG per seed, a contact sheet, and latent walks.

A seed names one latent: ``numpy.random.default_rng(seed).standard_normal(noise_dim)``, the
N(0, 1) noise the generator trained on. Truncation scales that latent towards the distribution's
mean (zero): ``z * truncation``, so 1 is the full distribution, 0.7 trades variety for typical
images, and 0 gives the mean image for every seed. Each image is generated on its own (batch of
one), so a seed gives the same pixels whichever other seeds share the run.

A walk goes through its seeds' latents by spherical interpolation (slerp: Gaussian latents live
near a sphere, where a straight line would pass through the unlikely, low-norm middle) and back
to the first seed, so the sequence loops.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from metgan import trialdir
from metgan.errors import ConfigError
from metgan.gan import export
from metgan.gan.callbacks import generate_uint8, image_grid, save_png_atomic

log = logging.getLogger(__name__)

MAX_SEED = 2**32 - 1
MAX_IMAGES = 10_000
MAX_UPSCALE = 16
MAX_TRUNCATION = 2.0
_SEED_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str) -> list[int]:
    """``"1-64"``, ``"3,17,42"`` or a mix (``"1-4,9"``) -> the seeds in that order, each once."""
    seeds: list[int] = []
    for part in str(text).split(","):
        match = _SEED_PART.match(part.strip())
        if not match:
            raise ConfigError(f"seeds {text!r}: {part.strip()!r} is not a seed or a range like 1-64 "
                              "(whole numbers from 0, comma-separated)")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ConfigError(f"seeds {text!r}: range {part.strip()} runs backwards")
        if last > MAX_SEED:
            raise ConfigError(f"seeds {text!r}: {last} is above the largest seed {MAX_SEED}")
        if last - first + 1 + len(seeds) > MAX_IMAGES:
            raise ConfigError(f"seeds {text!r}: more than {MAX_IMAGES} images")
        seeds.extend(range(first, last + 1))
    return list(dict.fromkeys(seeds))


def seed_range(first: int, count: int) -> list[int]:
    """``count`` consecutive seeds from ``first`` (``--n 64 --seed 0``)."""
    if not 1 <= count <= MAX_IMAGES:
        raise ConfigError(f"n must be 1 to {MAX_IMAGES}, got {count}")
    if not 0 <= first <= MAX_SEED - count + 1:
        raise ConfigError(f"seed must be 0 to {MAX_SEED - count + 1} for {count} images, got {first}")
    return list(range(first, first + count))


def check_truncation(truncation: float) -> float:
    truncation = float(truncation)
    if not 0 <= truncation <= MAX_TRUNCATION:
        raise ConfigError(f"truncation must be 0 to {MAX_TRUNCATION} (1 = no truncation), got {truncation}")
    return truncation


def seed_latent(seed: int, noise_dim: int, truncation: float = 1.0) -> np.ndarray:
    """The latent a seed names, scaled by ``truncation`` towards the mean."""
    latent = np.random.default_rng(seed).standard_normal(noise_dim).astype(np.float32)
    return (latent * np.float32(truncation)).astype(np.float32)


def slerp(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation from ``start`` (0) to ``end`` (1); linear when they are (anti)parallel."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    norms = np.linalg.norm(start) * np.linalg.norm(end)
    if norms == 0:
        return ((1 - fraction) * start + fraction * end).astype(np.float32)
    cosine = np.clip(np.dot(start, end) / norms, -1.0, 1.0)
    angle = np.arccos(cosine)
    if np.sin(angle) < 1e-6:
        return ((1 - fraction) * start + fraction * end).astype(np.float32)
    mixed = (np.sin((1 - fraction) * angle) * start + np.sin(fraction * angle) * end) / np.sin(angle)
    return mixed.astype(np.float32)


def walk_latents(seeds: list[int], frames: int, noise_dim: int, truncation: float = 1.0) -> np.ndarray:
    """``frames`` latents through ``seeds`` and back to the first: frame 0 and the last frame are
    the first seed's latent exactly, and every seed is passed at an even spacing."""
    if len(seeds) < 2:
        raise ConfigError(f"a walk needs at least 2 seeds, got {len(seeds)}")
    if frames < len(seeds) + 1:
        raise ConfigError(f"a walk through {len(seeds)} seeds needs at least {len(seeds) + 1} frames, got {frames}")
    anchors = [seed_latent(seed, noise_dim, truncation) for seed in seeds]
    out = np.empty((frames, noise_dim), np.float32)
    for index, position in enumerate(np.linspace(0.0, len(seeds), frames)):
        segment = min(int(position), len(seeds) - 1)
        fraction = float(position - segment)
        start, end = anchors[segment], anchors[(segment + 1) % len(seeds)]
        out[index] = start if fraction == 0 else (end if fraction == 1 else slerp(start, end, fraction))
    return out


def images_for(generator, latents: np.ndarray) -> np.ndarray:
    """uint8 images, one generator call per latent (a batch of one: same pixels whatever the company)."""
    return np.concatenate([generate_uint8(generator, latents[i:i + 1]) for i in range(len(latents))], axis=0)


def upscaled(image: np.ndarray, factor: int) -> np.ndarray:
    """An HWC uint8 image ``factor`` times larger with the Lanczos filter (sharp, little ringing)."""
    if factor == 1:
        return image
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.LANCZOS)
    array = np.asarray(picture)
    return array[..., None] if array.ndim == 2 else array


def generate(trial_dir: Path | str, seeds: list[int], out: Path | str, *, truncation: float = 1.0,
             upscale: int = 1, generator=None) -> dict:
    """Write ``seed_NNNN.png`` per seed, ``contact_sheet.png`` and ``generation.json`` into ``out``.

    ``trial_dir`` is a trial folder with a best snapshot (or a ``generator.keras`` file).
    Returns {"out", "images", "contact_sheet", "epoch", "model"}.
    """
    trial_dir = Path(trial_dir)
    truncation = check_truncation(truncation)
    if not 1 <= int(upscale) <= MAX_UPSCALE:
        raise ConfigError(f"upscale must be a whole number 1 to {MAX_UPSCALE}, got {upscale}")
    if not seeds:
        raise ConfigError("no seeds to generate")
    model_path = trial_dir if trial_dir.suffix == ".keras" else trialdir.best_generator_path(trial_dir)
    record = trialdir.read_model_record_beside(model_path) or {}
    generator = generator or export.load_generator(model_path)
    noise_dim = int(generator.input_shape[-1])
    latents = np.stack([seed_latent(seed, noise_dim, truncation) for seed in seeds])
    images = np.stack([upscaled(image, int(upscale)) for image in images_for(generator, latents)])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for seed, image in zip(seeds, images, strict=True):
        save_png_atomic(out / trialdir.seed_image_name(seed), image)
        names.append(trialdir.seed_image_name(seed))
    sheet = out / trialdir.CONTACT_SHEET
    save_png_atomic(sheet, image_grid(images))
    trialdir.write_generation_record(out, trialdir.GenerationRecord(
        search_name=record.get("search_name"), trial_id=record.get("trial_id"), model=str(model_path),
        epoch=record.get("epoch"), seeds=list(seeds), truncation=truncation, upscale=int(upscale), images=names,
        contact_sheet=trialdir.CONTACT_SHEET, created_at=trialdir.utc_now()))
    log.info("generated %d images from %s into %s", len(seeds), model_path, out)
    return {"out": str(out), "images": [str(out / name) for name in names], "contact_sheet": str(sheet),
            "epoch": record.get("epoch"), "model": str(model_path)}


def walk_images(trial_dir: Path | str, seeds: list[int], frames: int, *, truncation: float = 1.0) -> np.ndarray:
    """The uint8 frames of a looping walk through ``seeds`` of a trial's best snapshot."""
    trial_dir = Path(trial_dir)
    model_path = trial_dir if trial_dir.suffix == ".keras" else trialdir.best_generator_path(trial_dir)
    generator = export.load_generator(model_path)
    latents = walk_latents(seeds, frames, int(generator.input_shape[-1]), check_truncation(truncation))
    return images_for(generator, latents)


def generation_name(trial_id: str, seeds: list[int], truncation: float, upscale: int) -> str:
    """A generation folder's name, from what it holds: the same request names the same folder."""
    import hashlib

    digest = hashlib.sha256(json.dumps([seeds, truncation, upscale]).encode()).hexdigest()[:10]
    return f"{trial_id}-{digest}"


def generate_for_search(search_name: str, *, trial_id: str | None = None, seeds: list[int],
                        truncation: float = 1.0, upscale: int = 1, settings=None) -> dict:
    """Generate from a search's trial (its best trial when ``trial_id`` is None) into
    ``<search>/generations/<trial>-<hash>/``; a folder already complete is kept as it is."""
    from metgan.config import get_settings
    from metgan.gan.search_record import synced

    settings = settings or get_settings()
    with synced(search_name, settings=settings):  # on an object store: pulled, then pushed
        return _generate_for_search(search_name, trial_id, seeds, truncation, upscale, settings)


def _generate_for_search(search_name: str, trial_id: str | None, seeds: list[int], truncation: float,
                         upscale: int, settings) -> dict:
    from metgan.gan.search_record import best_trial, read_search, search_folder

    folder = search_folder(search_name, settings)
    if read_search(folder) is None:
        raise ConfigError(f"search {search_name!r} has no search.json under {folder.parent}")
    if trial_id is None:
        best = best_trial(folder)
        if best is None:
            raise ConfigError(f"no trial of search {search_name!r} has a best snapshot yet")
        trial_id = best[0]
    elif trial_id not in {path.name for path in trialdir.trial_folders(folder)}:
        raise ConfigError(f"search {search_name!r} has no trial {trial_id!r}")
    truncation = check_truncation(truncation)
    out = trialdir.generation_dir(folder, generation_name(trial_id, seeds, truncation, upscale))
    record = trialdir.read_generation_record(out)
    if record is not None and (out / trialdir.CONTACT_SHEET).is_file():
        log.info("generation %s already written: kept", out)
        return {"out": str(out), "trial_id": trial_id, "images": len(record.get("images") or []),
                "contact_sheet": str(out / trialdir.CONTACT_SHEET), "epoch": record.get("epoch")}
    result = generate(folder / trial_id, seeds, out, truncation=truncation, upscale=upscale)
    return {"out": result["out"], "trial_id": trial_id, "images": len(result["images"]),
            "contact_sheet": result["contact_sheet"], "epoch": result["epoch"]}

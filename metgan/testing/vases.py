"""The one drawer of procedural, deterministic photographs (numpy + Pillow, no files, no network).

Everything that needs a synthetic vase draws it here: the fake Met's image server (any object
kind), the trial-folder fixtures (:mod:`metgan.testing.trialfolders`), the GAN tests' tiny data
and the benchmarks. :func:`vase` / :func:`vase_images` / :func:`vase_jpeg` are the parametrised
entry points (size, background, colour, seed, RGB or grayscale); :func:`render` /
:func:`render_jpeg` are what the fake Met serves, and their bytes for a given seed must not change
(tests and cached scrapes compare image hashes).

Each picture depends only on ``(seed, kind, scene)`` and the requested size, so the original and
the web-large rendition show the same object. Vases are lathe-turned: a smooth random radius
profile swept around a vertical axis, shaded with a Lambert term and a specular highlight under a
light from the upper left, glazed, with painted bands, on an off-white studio background with a
soft floor shadow. Plates, shards, paintings and textiles are simpler.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, ImageDraw

GLAZES = [  # (body colour, band colours) in 0..1 RGB
    ((0.78, 0.86, 0.78), [(0.35, 0.52, 0.45), (0.55, 0.68, 0.58)]),        # celadon
    ((0.95, 0.95, 0.93), [(0.12, 0.22, 0.55), (0.25, 0.38, 0.70)]),        # blue and white
    ((0.55, 0.10, 0.09), [(0.85, 0.70, 0.35), (0.25, 0.05, 0.05)]),        # oxblood, gilt bands
    ((0.80, 0.45, 0.25), [(0.08, 0.07, 0.06), (0.45, 0.15, 0.08)]),        # terracotta, black figure
    ((0.10, 0.09, 0.09), [(0.80, 0.45, 0.25), (0.65, 0.35, 0.20)]),        # black glaze, red figure
    ((0.22, 0.38, 0.62), [(0.90, 0.82, 0.50), (0.95, 0.95, 0.92)]),        # cobalt
    ((0.85, 0.75, 0.52), [(0.40, 0.25, 0.12), (0.20, 0.35, 0.22)]),        # stoneware
    ((0.30, 0.50, 0.42), [(0.85, 0.80, 0.55), (0.15, 0.25, 0.20)]),        # green glaze
]
Colour = tuple[float, float, float]  # 0..1 RGB
MODES = ("RGB", "L")

_LIGHT_NORM = (0.55 ** 2 + 0.45 ** 2 + 0.70 ** 2) ** 0.5
LIGHT = (-0.55 / _LIGHT_NORM, -0.45 / _LIGHT_NORM, 0.70 / _LIGHT_NORM)  # plain floats keep arrays float32


def stable_seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.5:
        return values
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _background(rng: np.random.Generator, width: int, height: int, colour: Colour | None = None) -> np.ndarray:
    base = np.array([rng.uniform(0.90, 0.96), rng.uniform(0.88, 0.94), rng.uniform(0.84, 0.90)], dtype=np.float32)
    if colour is not None:  # drawn anyway, so the rest of the picture keeps its random numbers
        base = np.array(colour, dtype=np.float32)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :, None]
    return (1.0 - 0.06 * ys - 0.04 * xs * xs) * base


def _profile(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, dict]:
    """Radius (0..1 of the widest point) for each row from lip (0) to foot (rows-1)."""
    style = rng.choice(["baluster", "amphora", "bottle", "ovoid", "beaker"])
    lip = rng.uniform(0.3, 0.55)
    neck_t, neck = rng.uniform(0.12, 0.25), rng.uniform(0.18, 0.4)
    belly_t = rng.uniform(0.4, 0.62)
    base = rng.uniform(0.35, 0.6)
    foot = base * rng.uniform(0.85, 1.1)
    if style == "bottle":
        neck, neck_t, lip, belly_t = rng.uniform(0.12, 0.2), rng.uniform(0.3, 0.4), rng.uniform(0.15, 0.25), 0.7
    elif style == "beaker":
        lip, neck, neck_t, belly_t = rng.uniform(0.75, 0.95), rng.uniform(0.5, 0.6), 0.3, 0.55
    elif style == "ovoid":
        neck, neck_t = lip * 0.9, 0.08
    knots_t = np.array([0.0, 0.03, neck_t, (neck_t + belly_t) / 2, belly_t, 0.82, 0.93, 0.96, 1.0])
    shoulder = 0.55 + 0.45 * rng.uniform(0.6, 1.0)
    knots_r = np.array([lip, lip * 0.96, neck, shoulder * (0.8 if style == "bottle" else 1.0), 1.0,
                        (1.0 + base) / 2, base, foot, foot])
    t = np.linspace(0.0, 1.0, rows)
    radius = _smooth(np.interp(t, knots_t, knots_r), rows * 0.035)
    radius[-max(2, rows // 40):] = foot                   # a flat foot ring
    radius *= 1.0 + 0.015 * np.sin(t * rng.uniform(8, 14) + rng.uniform(0, 6))
    return np.clip(radius, 0.05, 1.05), {"style": style, "neck_t": neck_t, "belly_t": belly_t}


def draw_vase(rng: np.random.Generator, width: int, height: int, *, background: Colour | None = None,
              colour: Colour | None = None) -> np.ndarray:
    """Float RGB in 0..1; ``background`` and ``colour`` (0..1 RGB) replace the studio ground and the glaze."""
    image = _background(rng, width, height, background)
    top = int(height * rng.uniform(0.08, 0.14))
    bottom = int(height * rng.uniform(0.89, 0.93))
    rows = max(4, bottom - top)
    radius_px = min(width * rng.uniform(0.26, 0.40), rows * rng.uniform(0.32, 0.45))
    profile, shape = _profile(rng, rows)
    cx = width / 2 + rng.uniform(-0.02, 0.02) * width
    body, bands = GLAZES[rng.integers(len(GLAZES))]
    body = (np.array(body) * rng.uniform(0.9, 1.05)).astype(np.float32)
    if colour is not None:  # after the draws above, so only the glaze changes
        body = np.array(colour, dtype=np.float32)
    # All the drawing happens in the box around the vase; the rest is background.
    x0, x1 = max(0, int(cx - radius_px * 1.7)), min(width, int(cx + radius_px * 1.7) + 2)
    y0, y1 = max(0, top - int(radius_px * 0.3) - 2), min(height, bottom + int(radius_px * 0.3) + 2)
    box = image[y0:y1, x0:x1]
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)

    # Floor shadow: a soft dark ellipse under the foot.
    foot_r = profile[-1] * radius_px
    near = slice(max(0, bottom - y0 - int(foot_r * 0.6) - 2), None)
    shadow = (((xs[near] - cx - foot_r * 0.25) / (foot_r * 1.6)) ** 2
              + ((ys[near] - bottom) / (foot_r * 0.22 + 2)) ** 2)
    box[near] *= (1.0 - 0.35 * np.exp(-shadow * 1.5))[..., None]

    # Optional loop handles from the neck to the shoulder, behind the body.
    if shape["style"] in ("amphora", "baluster") and rng.random() < 0.6:
        handle = Image.new("L", (x1 - x0, y1 - y0), 0)
        pen = ImageDraw.Draw(handle)
        hy0 = top + shape["neck_t"] * rows * 0.8 - y0
        hy1 = top + (shape["neck_t"] + shape["belly_t"]) / 2 * rows - y0
        neck_r = profile[int(shape["neck_t"] * rows)] * radius_px
        reach = radius_px * rng.uniform(0.9, 1.05)
        thick = max(2, int(radius_px * 0.06))
        pen.arc([cx - x0 + neck_r * 0.5, hy0, cx - x0 + reach, hy1], 270, 90, fill=255, width=thick)
        pen.arc([cx - x0 - reach, hy0, cx - x0 - neck_r * 0.5, hy1], 90, 270, fill=255, width=thick)
        mask = np.asarray(handle, dtype=np.float32)[..., None] / 255.0
        box[:] = box * (1 - mask) + mask * body * 0.75

    # The turned body: per pixel, the horizontal position on the surface u in [-1, 1].
    radius_rows = np.zeros(y1 - y0, dtype=np.float32)
    radius_rows[top - y0:top - y0 + rows] = profile * radius_px
    slope = np.gradient(np.pad(radius_rows, 1, mode="edge"))[1:-1]
    r = radius_rows[:, None]
    coverage = np.where(r > 0, np.clip(r - np.abs(xs - cx) + 0.5, 0.0, 1.0), 0.0)
    u = np.clip((xs - cx) / np.maximum(r, 1e-3), -1.0, 1.0)
    nz = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    ny = np.clip(-slope, -1.5, 1.5)[:, None] * nz * 0.6   # the surface leans up where it widens downwards
    norm = np.sqrt(u * u + ny * ny + nz * nz) + 1e-6
    diffuse = np.clip((u * LIGHT[0] + ny * LIGHT[1] + nz * LIGHT[2]) / norm, 0.0, 1.0)
    reflect_z = 2 * diffuse * nz / norm - LIGHT[2]
    specular = np.clip(reflect_z, 0.0, 1.0) ** float(rng.integers(18, 40)) * rng.uniform(0.35, 0.7)

    # Painted bands, some with a repeating motif around the circumference.
    albedo = np.empty(box.shape, dtype=np.float32)
    albedo[:] = body
    theta = np.arcsin(u)
    for _ in range(rng.integers(2, 6)):
        start = rng.uniform(0.02, 0.9)
        extent = rng.uniform(0.015, 0.12)
        colour = np.array(bands[rng.integers(len(bands))], dtype=np.float32)
        band_rows = slice(top - y0 + int(start * rows), top - y0 + int(min(1.0, start + extent) * rows))
        region = coverage[band_rows] > 0
        motif = rng.choice(["solid", "stripes", "zigzag", "dots"])
        band_theta, band_ys = theta[band_rows], ys[band_rows]
        mid = top + (start + extent / 2) * rows
        if motif == "stripes":
            region &= np.sin(band_theta * rng.integers(6, 16)) > 0
        elif motif == "zigzag":
            wave = (np.abs(((band_theta * 4) % 2) - 1) - 0.5) * extent * rows * 0.6
            region &= np.abs(band_ys - mid - wave) < extent * rows * 0.25
        elif motif == "dots":
            region &= (np.cos(band_theta * rng.integers(8, 20)) > 0.6) & (np.abs(band_ys - mid) < extent * rows * 0.3)
        albedo[band_rows][region] = colour

    vase = albedo * (0.32 + 0.75 * diffuse)[..., None] + specular[..., None]
    alpha = coverage[..., None]
    box[:] = box * (1 - alpha) + vase * alpha

    # The mouth: a dark opening in a rim ellipse seen from slightly above.
    lip_r = profile[0] * radius_px
    lip_h = max(2.0, lip_r * rng.uniform(0.12, 0.22))
    near = slice(max(0, top - y0 - int(lip_h) - 2), top - y0 + int(lip_h) + 2)
    rim = ((xs[near] - cx) / lip_r) ** 2 + ((ys[near] - top) / lip_h) ** 2
    rim_mask = np.clip((1.0 - rim) * lip_r * 0.5, 0.0, 1.0)[..., None]
    inner = np.clip((0.72 - rim) * lip_r * 0.5, 0.0, 1.0)[..., None]
    mouth = box[near] * (1 - rim_mask) + rim_mask * body * 0.85
    box[near] = mouth * (1 - inner) + inner * body * 0.18
    return image


def draw_plate(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    image = _background(rng, width, height)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width / 2, height / 2
    radius = min(width, height) * rng.uniform(0.38, 0.46)
    squash = 1.0 if width == height else rng.uniform(0.8, 1.0)
    dist = np.sqrt(((xs - cx) / radius) ** 2 + ((ys - cy) / (radius * squash)) ** 2)
    angle = np.arctan2(ys - cy, xs - cx)
    body, bands = GLAZES[rng.integers(len(GLAZES))]
    albedo = np.broadcast_to(np.array(body), (height, width, 3)).copy()
    rim = (dist > 0.8) & (dist < 0.95) & (np.sin(angle * rng.integers(8, 24)) > 0)
    albedo[rim] = bands[0]
    albedo[(dist > 0.55) & (dist < 0.6)] = bands[1]
    albedo[dist < rng.uniform(0.2, 0.35)] = bands[0]
    shade = 0.85 + 0.2 * np.clip(1 - dist, 0, 1) - 0.1 * (xs - cx) / width
    alpha = np.clip((1.0 - dist) * radius, 0.0, 1.0)[..., None]
    return image * (1 - alpha) + albedo * shade[..., None] * alpha


def draw_fragment(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    image = _background(rng, width, height)
    body, bands = GLAZES[rng.choice([3, 4, 6])]
    points = []
    for angle in np.sort(rng.uniform(0, 2 * np.pi, rng.integers(6, 11))):
        reach = rng.uniform(0.25, 0.45)
        points.append((width / 2 + np.cos(angle) * reach * width, height / 2 + np.sin(angle) * reach * height))
    mask_image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask_image).polygon(points, fill=255)
    mask = np.asarray(mask_image, dtype=np.float32)[..., None] / 255.0
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    curve = ys + ((xs - width / 2) / width) ** 2 * height * 0.3
    albedo = np.broadcast_to(np.array(body), (height, width, 3)).copy()
    albedo[(np.sin(curve / height * rng.uniform(10, 20)) > 0.7)] = bands[0]
    shade = 0.8 + 0.2 * (1 - ys / height)
    return image * (1 - mask) + albedo * shade[..., None] * mask


def draw_painting(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    ys = np.linspace(0, 1, height)[:, None]
    xs = np.linspace(0, 1, width)[None, :]
    sky_top, sky_low = np.array(rng.uniform(0.3, 0.6, 3)), np.array(rng.uniform(0.7, 0.95, 3))
    image = sky_top + (sky_low - sky_top) * ys[..., None]
    image = np.broadcast_to(image, (height, width, 3)).copy()
    for layer in range(rng.integers(2, 5)):
        horizon = 0.45 + 0.12 * layer + 0.08 * np.sin(xs * rng.uniform(3, 9) + rng.uniform(0, 6))
        ground = np.array(rng.uniform(0.1, 0.6, 3)) * (0.9 - 0.1 * layer)
        image[np.broadcast_to(ys > horizon, (height, width))] = ground
    frame = max(2, int(min(width, height) * 0.05))
    gold = np.array([0.55, 0.42, 0.18])
    image[:frame], image[-frame:], image[:, :frame], image[:, -frame:] = gold, gold, gold, gold
    return image


def draw_textile(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    palette = rng.uniform(0.1, 0.9, (4, 3))
    ys, xs = np.mgrid[0:height, 0:width]
    warp = (xs // max(2, int(width * rng.uniform(0.03, 0.1)))) % 4
    weft = (ys // max(2, int(height * rng.uniform(0.03, 0.1)))) % 4
    image = (palette[warp] + palette[weft]) / 2
    image *= (0.85 + 0.15 * ((xs + ys) % 3 == 0))[..., None]
    margin = int(min(width, height) * 0.04)
    background = _background(rng, width, height)
    inside = np.zeros((height, width, 1), dtype=bool)
    inside[margin:-margin or None, margin:-margin or None] = True
    return np.where(inside, image, background)


DRAWERS = {"vase": draw_vase, "plate": draw_plate, "fragment": draw_fragment,
           "painting": draw_painting, "textile": draw_textile}


def render(kind: str, seed: int, scene: int, width: int, height: int, **options) -> Image.Image:
    """The picture of one scene at the given size (any rendition draws the same scene).

    ``options`` go to the drawer (``background``, ``colour`` for vases); without them the bytes are
    the fake Met's, unchanged for a given seed.
    """
    if kind not in DRAWERS:
        raise ValueError(f"unknown picture kind {kind!r}: expected one of {', '.join(DRAWERS)}")
    rng = np.random.default_rng(stable_seed(seed, kind, scene))
    pixels = DRAWERS[kind](rng, width, height, **options)
    grain = np.random.default_rng(stable_seed("grain", seed, scene)).integers(-2, 3, (height, width, 1))
    pixels = np.clip(pixels * 255.0 + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def render_jpeg(kind: str, seed: int, scene: int, width: int, height: int, quality: int = 88, **options) -> bytes:
    buffer = io.BytesIO()
    render(kind, seed, scene, width, height, **options).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def vase_image(seed: int = 0, scene: int = 0, *, width: int = 32, height: int = 40, background: Colour | None = None,
               colour: Colour | None = None, mode: str = "RGB") -> Image.Image:
    """One vase photograph as a Pillow image. Small tiles (under 128 px) are drawn at twice the size and
    reduced, as the subset builder reduces the Met's photographs, so a 32x40 vase is still a vase."""
    if mode not in MODES:
        raise ValueError(f"unknown image mode {mode!r}: expected one of {', '.join(MODES)}")
    if width < 8 or height < 8:
        raise ValueError(f"picture size {width}x{height} is too small: width and height must be at least 8 pixels")
    scale = 2 if max(width, height) < 128 else 1
    image = render("vase", seed, scene, width * scale, height * scale, background=background, colour=colour)
    if scale != 1:
        image = image.resize((width, height), Image.LANCZOS)
    return image.convert(mode) if mode != "RGB" else image


def vase(seed: int = 0, scene: int = 0, **options) -> np.ndarray:
    """One vase as uint8 pixels: ``(height, width, 3)`` for RGB, ``(height, width)`` for ``mode="L"``."""
    return np.asarray(vase_image(seed, scene, **options), dtype=np.uint8)


def vase_images(count: int, height: int = 40, width: int = 32, seed: int = 0, *, mode: str = "RGB",
                background: Colour | None = None, colour: Colour | None = None) -> np.ndarray:
    """``count`` different vases (scenes 0..count-1 of ``seed``) as uint8 NHWC, C = 3 (RGB) or 1 (L)."""
    if count < 1:
        raise ValueError(f"vase count must be at least 1, got {count}")
    images = np.stack([vase(seed, scene, width=width, height=height, mode=mode, background=background,
                            colour=colour) for scene in range(count)])
    return images[..., None] if mode == "L" else images


def vase_jpeg(seed: int = 0, scene: int = 0, *, quality: int = 88, **options) -> bytes:
    """One vase as encoded JPEG bytes (options as :func:`vase_image`)."""
    buffer = io.BytesIO()
    vase_image(seed, scene, **options).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()

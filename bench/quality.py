"""Benchmark: picture quality at equal wall-clock time, each variant over several seeds (issues #15, #28).

By default the baseline ``default`` and the candidate ``r3gan`` each train ``--seeds`` 3 times
(seeds 0, 1, 2), and the table gives each variant's mean and spread (min to max) over its seeds:
single runs of one seed differ by ~10%, so close variants cannot be ranked from one run. Each run trains as a real trial (the code path a search takes) for the same ``--budget-s`` on the
same generated vase subset (the fake Met's vase drawer, ``metgan.testing.vases``), at 64x80 (width x height)
by default. A ``--holdout`` share of the images is never trained on: the SWD
(x1e3) and its real-vs-real floor are measured on those images only, every ``--swd-every``
epochs and at the end, with the image count per side printed beside them. The collapse breaker
is off (a stopped preset would leave the comparison); everything else is the preset's own.

Printed per run: the final SWD / floor ratio, the time to reach 3x the floor (or "not reached"),
epochs and images trained, and the fidelity and diversity scores (precision, recall, density,
coverage, KID on random-CNN features) where the trial recorded them; then one line per variant
with the mean and the range over its seeds. A side-by-side PNG of real images and each variant's
final samples (its first seed) goes to ``--out``. The last line is ``speedup: Nx`` = for each
seed, the ``--baseline`` variant's time (default: preset default) to reach its own final SWD
divided by the ``--candidate``'s (default: r3gan) time to reach that same SWD, the geometric mean
over the seeds ("not reached" when a candidate run never did). A variant is a preset with
overrides, ``default+mixed_precision=on`` (bf16 on a CPU); its overrides win over the bench's own
settings (``+checkpoint_every=1`` pays a search's per-epoch checkpoints, which the bench skips). Wall-clock time includes the periodic scoring, which each preset pays per scored epoch.

    python bench/quality.py                       # 600 s per run, 3 seeds, default and r3gan, 1280 vases, 64x80
    python bench/quality.py --quick               # seconds: 96 vases at 32x40, default and r3gan, 3 s, 1 seed
    python bench/quality.py --budget-s 300 --presets default,default+mixed_precision=on \
        --candidate default+mixed_precision=on   # float32 against bf16 at equal time
    python bench/quality.py --subset .demo/data/subsets/vases --height 40 --width 32 --holdout 0 \
        --swd-every 10 --budget-s 90 --presets default+checkpoint_every=1,default   # make demo's trial
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from metgan.testing.vases import vase_images  # noqa: E402

PRESETS = ("default", "r3gan")
TARGET_RATIO = 3.0
QUICK = {"budget_s": 3.0, "images": 96, "height": 40, "width": 32, "swd_every": 1, "swd_images": 32,
         "presets": "default,r3gan", "seeds": 1}
SCORES = ("precision", "recall", "density", "coverage", "kid")


def parse_variant(text: str) -> tuple[str, dict]:
    """``preset`` or ``preset+key=value+...`` (values as JSON where they parse, else strings):
    ``default+mixed_precision=on`` is the default preset trained in bf16 on a CPU."""
    preset, *changes = text.split("+")
    overrides = {}
    for change in changes:
        key, sep, value = change.partition("=")
        if not sep or not key:
            sys.exit(f"variant {text!r}: {change!r} is not key=value")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return preset, overrides


def split_variants(text: str) -> list[str]:
    """The comma-separated variants of ``--presets``; a comma inside brackets belongs to a JSON list
    (``default+diffaugment=["translation","cutout"]``)."""
    variants, depth, current = [], 0, ""
    for char in text + ",":
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            if current.strip():
                variants.append(current.strip())
            current = ""
        else:
            current += char
    return variants


def train_preset(variant: str, images: np.ndarray, args, out: Path, seed: int) -> dict:
    from metgan import trialdir
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial

    preset, overrides = parse_variant(variant)
    config = GanConfig.from_dict({
        "height": args.height, "width": args.width, "epochs": 10**5,
        "time_budget_s": args.budget_s, "swd_every": args.swd_every, "swd_images": args.swd_images,
        "holdout": args.holdout, "checkpoint_every": 10**5, "collapse_patience": 10**5, "n_generated": 0,
        "n_samples": 16, "seed": seed, **overrides, "preset": preset})
    trial_dir = out / run_folder(variant, seed)
    summary = run_trial(trial_dir, config, out / "unused", images=images)
    info = trialdir.read_trial_info(trial_dir)
    lines = trialdir.read_metrics(trial_dir)
    scored = [(line["wall_s"], line["swd"], line["swd_real"], line["swd_count"]) for line in lines
              if line.get("swd") is not None]
    last = next(line for line in reversed(lines) if line.get("swd") is not None)
    return {"preset": variant, "seed": seed, "dtype": info.get("dtype_policy"), "curve": scored,
            "epochs": summary["epochs"], "images": info["images_seen"], "wall_s": info["wall_s"],
            "grid": trial_dir / trialdir.FINAL_GRID, "chroma": last.get("chroma"),
            "scores": {key: last.get(key) for key in SCORES},
            "scores_real": {key: last.get(f"{key}_real") for key in SCORES}}


def run_folder(variant: str, seed: int) -> str:
    return f"{variant.replace('=', '-')}-seed{seed}"


def time_to_reach(curve: list[tuple], threshold: float) -> float | None:
    """Wall seconds at the first scored epoch whose SWD is at or below ``threshold``."""
    for wall, swd, _, _ in curve:
        if swd <= threshold:
            return wall
    return None


def side_by_side(reals: np.ndarray, runs: list[dict], path: Path) -> None:
    from metgan.gan.callbacks import image_grid

    panels = [("real (held out)", Image.fromarray(np.squeeze(image_grid(reals[:64], columns=8))))]
    panels += [(f"{run['preset']} (seed {run['seed']})", Image.open(run["grid"]).convert("RGB")) for run in runs]
    label_h, gap = 16, 8
    width = sum(panel.width for _, panel in panels) + gap * (len(panels) - 1)
    height = max(panel.height for _, panel in panels) + label_h
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for label, panel in panels:
        draw.text((x + 2, 2), label, fill="black")
        canvas.paste(panel.convert("RGB"), (x, label_h))
        x += panel.width + gap
    canvas.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (96 vases at 32x40, 3 s each for default and fastgan): checks the "
                             "script runs, not the numbers; any option given explicitly wins")
    parser.add_argument("--budget-s", type=float, default=600.0, help="training seconds per run")
    parser.add_argument("--seeds", type=int, default=3, help="runs per variant, seeds --seed, --seed + 1, ...")
    parser.add_argument("--images", type=int, default=1280, help="vases in the subset (>= 1000 for the issue)")
    parser.add_argument("--subset", type=Path, default=None,
                        help="train on a built subset folder (e.g. make demo's .demo/data/subsets/vases) "
                             "instead of --images generated vases")
    parser.add_argument("--height", type=int, default=80)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--holdout", type=float, default=0.2, help="share never trained on, scored against")
    parser.add_argument("--swd-every", type=int, default=2, help="epochs between SWD scores")
    parser.add_argument("--swd-images", type=int, default=512, help="held-out images scored (both halves)")
    parser.add_argument("--presets", default=",".join(PRESETS),
                        help="comma-separated presets to compare; a preset may carry overrides, "
                             "preset+key=value+... (e.g. default+mixed_precision=on)")
    parser.add_argument("--baseline", default="default", help="the variant speedup is measured against")
    parser.add_argument("--candidate", default="r3gan", help="the variant whose speedup is printed")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--out", type=Path, default=None, help="folder for trials and the PNG (default: a new temp folder)")
    if parser.parse_args().quick:
        parser.set_defaults(**QUICK)
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import split_holdout

    presets = split_variants(args.presets)
    if args.subset:
        from metgan.gan.data import load_images

        images = load_images(args.subset, args.height, args.width, 3)
        args.images = len(images)
    else:
        images = vase_images(args.images, args.height, args.width, seed=2)
    args.out = args.out or Path(tempfile.mkdtemp(prefix="metgan-quality-"))
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for preset in presets:
        parse_variant(preset)  # a malformed variant fails before any training
    seeds = range(args.seed, args.seed + args.seeds)
    for preset in presets:
        for seed in seeds:
            if (args.out / run_folder(preset, seed)).exists():
                sys.exit(f"{args.out / run_folder(preset, seed)} exists: remove it or pick another --out "
                         "(a finished trial is not retrained)")
    for seed in seeds:  # seed by seed, so an interrupted run still compares every variant
        for preset in presets:
            print(f"training {preset} seed {seed} for {args.budget_s:.0f} s ...", flush=True)
            runs.append(train_preset(preset, images, args, args.out, seed))

    print(f"\n{args.width}x{args.height}, {args.images} vases, {args.holdout:.0%} held out, "
          f"{args.budget_s:.0f} s per run, seeds {args.seed}-{args.seed + args.seeds - 1}; SWD x1e3 on held-out images")
    print_table(runs)
    print()
    print_means(presets, runs)

    reals = split_holdout(images, GanConfig.from_dict({"preset": "default", "height": args.height,
                                                       "width": args.width, "holdout": args.holdout,
                                                       "swd_images": args.swd_images, "seed": args.seed}))[1]
    side_by_side(reals, [run for run in runs if run["seed"] == args.seed], args.out / "side_by_side.png")
    print(f"side-by-side: {args.out / 'side_by_side.png'}")
    print(json.dumps({f"{run['preset']} seed {run['seed']}": {"curve": run["curve"], "epochs": run["epochs"],
                                                             "images": run["images"], "scores": run["scores"]}
                      for run in runs}))

    print_speedup(args.baseline, args.candidate, runs)


def _cell(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_rows(rows: list[tuple]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def print_table(runs: list[dict]) -> None:
    rows = [("variant", "seed", "dtype", "final SWD", "floor", "images/side", "SWD/floor",
             f"time to {TARGET_RATIO:g}x floor", "epochs", "images trained", "chroma", *SCORES)]
    for run in runs:
        wall, swd, floor, count = run["curve"][-1]
        reach = time_to_reach(run["curve"], TARGET_RATIO * floor)
        rows.append((run["preset"], str(run["seed"]), str(run["dtype"]), f"{swd:.1f}", f"{floor:.1f}", str(count),
                     f"{swd / floor:.2f}", f"{reach:.0f} s" if reach is not None else "not reached",
                     str(run["epochs"]), str(run["images"]), _cell(run["chroma"], ".1f"),
                     *(_cell(run["scores"][key], ".4f" if key == "kid" else ".2f") for key in SCORES)))
    print_rows(rows)
    reference = next((run["scores_real"] for run in runs if run["scores_real"].get("precision") is not None), None)
    if reference:
        print("real-vs-real reference: " + ", ".join(f"{key} {_cell(reference[key], '.4f' if key == 'kid' else '.2f')}"
                                                     for key in SCORES))


def print_means(presets: list[str], runs: list[dict]) -> None:
    """Per variant: the mean and the range over its seeds of SWD/floor and of each score."""
    rows = [("variant", "seeds", "SWD/floor mean", "range", *(f"{key} mean" for key in SCORES))]
    for preset in presets:
        mine = [run for run in runs if run["preset"] == preset]
        ratios = [run["curve"][-1][1] / run["curve"][-1][2] for run in mine]
        means = []
        for key in SCORES:
            values = [run["scores"][key] for run in mine if run["scores"][key] is not None]
            means.append(_cell(float(np.mean(values)) if values else None, ".4f" if key == "kid" else ".2f"))
        rows.append((preset, str(len(mine)), f"{np.mean(ratios):.2f}", f"{min(ratios):.2f}-{max(ratios):.2f}", *means))
    print_rows(rows)


def print_speedup(base: str, candidate: str, runs: list[dict]) -> None:
    pairs = [(b, c) for b in runs for c in runs if b["preset"] == base and c["preset"] == candidate
             and b["seed"] == c["seed"]]
    if not pairs:
        return
    ratios, lower = [], []
    for base_run, cand_run in pairs:
        base_final = base_run["curve"][-1][1]
        lower.append(1 - cand_run["curve"][-1][1] / base_final)
        cand_time = time_to_reach(cand_run["curve"], base_final)
        ratios.append(None if cand_time is None else time_to_reach(base_run["curve"], base_final) / cand_time)
    print(f"{candidate} final SWD {100 * float(np.mean(lower)):.0f}% lower than {base}'s (mean over {len(pairs)} seeds)")
    if any(ratio is None for ratio in ratios):
        missed = sum(ratio is None for ratio in ratios)
        print(f"speedup: not reached ({candidate} never reached {base}'s final SWD in {missed} of {len(pairs)} seeds)")
    else:
        print(f"speedup: {float(np.exp(np.mean(np.log(ratios)))):.2f}x")


if __name__ == "__main__":
    main()

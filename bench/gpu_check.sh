#!/usr/bin/env bash
# GPU check: for each preset in PRESETS and each size in SIZES, train one trial for a fixed number of
# steps and print images/s with the mixed-precision and XLA state actually used, and the mean GPU
# utilisation (nvidia-smi sampled every 0.5 s during that trial).
#
#   bash bench/gpu_check.sh                                  # on a GPU machine: default, fastgan, r3gan-gpu
#                                                            # at 128x160 and 256x320, 400 steps, batch 64
#   bash bench/gpu_check.sh --quick                          # seconds: 32x40, 2 steps, batch 8
#   REQUIRE_GPU=0 bash bench/gpu_check.sh --quick            # the same on a CPU (the smoke test's run)
#
# Without a GPU it says so on stderr and exits 2 (unless REQUIRE_GPU=0); any other failure exits 1.
# There is no baseline to beat here, so it prints no speedup line: it ends with
# "gpu check: N of N trials completed".
#
# Environment: STEPS (default 400), SIZES as width x height ("128x160 256x320"), PRESETS
# ("default fastgan r3gan-gpu"), BATCH (64), MIXED and XLA (auto|on|off; auto = on with a
# GPU), REQUIRE_GPU (1: exit 2 when TensorFlow sees no GPU), OUT (folder for the trials; default a
# temp folder). fastgan's and r3gan's blocks grow with the size (seed grid 4x5 at 4:5 sizes); the DCGAN presets
# keep theirs. Run from the repository root with the project's venv active or at .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--quick" ]; then
  export SIZES="${SIZES:-32x40}" STEPS="${STEPS:-2}" BATCH="${BATCH:-8}"
elif [ $# -gt 0 ]; then
  echo "usage: bash bench/gpu_check.sh [--quick]  (settings come from the environment: see the header)" >&2
  exit 1
fi
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export STEPS="${STEPS:-400}" SIZES="${SIZES:-${SIZE:-128x160 256x320}}" PRESETS="${PRESETS:-default fastgan r3gan-gpu}" BATCH="${BATCH:-64}" MIXED="${MIXED:-auto}" XLA="${XLA:-auto}"
export REQUIRE_GPU="${REQUIRE_GPU:-1}"

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "nvidia-smi: not found"
fi

exec "$PYTHON" - <<'PY'
import json, math, os, statistics, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, "bench")
sys.path.insert(0, ".")
import tensorflow as tf

gpus = tf.config.list_physical_devices("GPU")
print(f"tensorflow {tf.__version__}; GPUs seen: {[g.name for g in gpus] or 'none'}")
if not gpus and os.environ["REQUIRE_GPU"] == "1":
    print("no GPU visible to TensorFlow (install the CUDA build: pip install 'metgan[gpu]'); "
          "set REQUIRE_GPU=0 to run on the CPU anyway", file=sys.stderr)
    sys.exit(2)

from train import vase_images  # bench/train.py: the same vase-like images as the benchmark
from metgan.gan.config import GanConfig
from metgan.gan.trial import run_trial
from metgan.trialdir import read_metrics, read_trial_info

import shutil
import subprocess


def grown_blocks(height, width):
    # fastgan and r3gan keep a seed grid of at least 4 pixels wide: more blocks at larger sizes
    blocks = 3
    while height % 2 ** (blocks + 1) == 0 and width % 2 ** (blocks + 1) == 0 and width // 2 ** (blocks + 1) >= 4:
        blocks += 1
    return blocks


def check(preset, height, width):
    steps, batch = int(os.environ["STEPS"]), int(os.environ["BATCH"])
    steps_per_epoch = max(1, min(8, steps))
    epochs = max(2, math.ceil(steps / steps_per_epoch))
    blocks = {}
    if GanConfig.from_dict({"preset": preset}).architecture in ("fastgan", "r3gan"):
        blocks = {"g_blocks": grown_blocks(height, width), "d_blocks": grown_blocks(height, width)}
    config = GanConfig.from_dict({
        "preset": preset, "height": height, "width": width, "batch_size": batch, "epochs": epochs,
        "mixed_precision": os.environ["MIXED"], "xla": os.environ["XLA"], "swd_every": 10**6,
        "swd_images": 256, "checkpoint_every": 10**6, "n_generated": 8, "n_samples": 16,
        "collapse_patience": 10**6, **blocks})
    images = vase_images(steps_per_epoch * batch, height, width, seed=3)
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="metgan-gpu-check-")) / config.trial_id()
    sampler = None
    if shutil.which("nvidia-smi"):
        sampler = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                    "-lms", "500"], stdout=subprocess.PIPE, text=True)
    started = time.perf_counter()
    try:
        summary = run_trial(out, config, out / "unused", images=images)
    finally:
        utilisation = None
        if sampler is not None:
            sampler.terminate()
            samples = [float(v) for v in sampler.communicate()[0].split() if v.replace(".", "", 1).isdigit()]
            utilisation = round(statistics.mean(samples), 1) if samples else None
    wall = time.perf_counter() - started
    info = read_trial_info(out)
    lines = read_metrics(out)
    rates = [line["images_per_s"] for line in lines if line.get("images_per_s")]
    steady = statistics.median(rates[1:]) if len(rates) > 1 else rates[0]
    print(json.dumps({"preset": preset, "device": info["device"], "mixed_precision": info["mixed_precision"],
                      "xla": info["xla"], "size": f"{width}x{height}", "batch": batch,
                      "steps": epochs * steps_per_epoch, "status": summary["status"],
                      "first_epoch_images_per_s": rates[0], "steady_images_per_s": steady,
                      "gpu_utilisation_pct": utilisation, "final_swd": lines[-1]["swd"], "wall_s": round(wall, 1),
                      "trial_dir": str(out)}, indent=2))
    print(f"{preset} {width}x{height}: images/s {steady:.1f} (steady, median of epochs 2..{len(rates)}; first "
          f"epoch with compilation {rates[0]:.1f}); mixed precision: {'on' if info['mixed_precision'] else 'off'}; "
          f"XLA: {'on' if info['xla'] else 'off'}; GPU utilisation: "
          f"{'n/a' if utilisation is None else f'{utilisation}%'}; device: {info['device']}", flush=True)
    return summary["status"] == "completed"


results = [check(preset, *reversed([int(v) for v in size.lower().split("x")]))
           for preset in os.environ["PRESETS"].split() for size in os.environ["SIZES"].split()]
print(f"gpu check: {sum(results)} of {len(results)} trials completed")
if not all(results):
    sys.exit(1)
PY

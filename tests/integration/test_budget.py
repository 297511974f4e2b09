"""A search's time budget: split over the trials at planning, fitted to the worker's hardware at training.

The worker's choice is tested with a given device rate (a slow CPU, a fast GPU), so what it picks
does not depend on how busy this machine is; one trial trains for real to show the fitted size
and epochs land in config.json and trial.json, and that a resumed trial trains what it started.
"""

import pytest

from metgan import trialdir
from metgan.errors import GanConfigError
from metgan.gan import budget, search
from metgan.gan.config import GanConfig
from metgan.gan.trial import run_trial
from tests.gan_support import TINY, make_subset, vase_images


def test_the_search_budget_is_split_over_the_trials_and_a_too_small_one_is_refused_with_what_would_do():
    share = budget.trial_budget(480, 2)
    assert 150 <= share < 240  # less than half: each trial also builds, evaluates and renders
    assert budget.trial_budget(480, 1) > 2 * share
    with pytest.raises(GanConfigError, match=r"leaves \d+ s of training to each of 16 trials.*raise the budget to \d+ s"):
        budget.trial_budget(480, 16)


def test_the_candidate_sizes_halve_the_subsets_size_while_the_models_can_be_built():
    config = GanConfig.from_dict({"height": 160, "width": 128, "epochs": 0, "time_budget_s": 100,
                                  "size_by_budget": True})
    assert budget.candidate_sizes(config) == [(160, 128), (80, 64), (40, 32)]


def test_the_flop_count_matches_the_layers_arithmetic():
    # default G at 64x80: dense to 10x8x128, then 4x4 transposed convs 128->128 (16x20), ->64 (32x40),
    # ->32 (64x80), ->3 (stride 1); each multiply-add is two FLOPs
    config = GanConfig.from_dict({"height": 80, "width": 64})
    from metgan.gan.model import build_generator

    expected = 2 * (128 * 10 * 8 * 128 + 10 * 8 * 16 * 128 * 128 + 20 * 16 * 16 * 128 * 64
                    + 40 * 32 * 16 * 64 * 32 + 80 * 64 * 16 * 32 * 3)
    assert budget.model_flops(build_generator(config)) == pytest.approx(expected)
    # resizing first: each 4x4 convolution runs at its output size, 4x the transposed one's FLOPs
    resized = GanConfig.from_dict({"height": 80, "width": 64, "g_upsample": "resize"})
    upsampling = 2 * (10 * 8 * 16 * 128 * 128 + 20 * 16 * 16 * 128 * 64 + 40 * 32 * 16 * 64 * 32)
    assert budget.model_flops(build_generator(resized)) == pytest.approx(expected + 3 * upsampling)


def test_a_slow_cpu_trains_below_the_subsets_size_and_a_gpu_at_it_and_both_say_why():
    config = GanConfig.from_dict({"height": 160, "width": 128, "epochs": 0, "time_budget_s": 190,
                                  "size_by_budget": True})
    cpu, why_cpu = budget.fit_to_budget(config, 135, rate=("CPU", 110e9))
    assert (cpu.height, cpu.width) == (40, 32) and not cpu.size_by_budget and cpu.epochs > 50
    assert why_cpu["below_subset_size"] and "so it trains at 32x40" in why_cpu["reason"]
    assert why_cpu["epochs_fitted"] and cpu.swd_every > 1 and cpu.checkpoint_every > 1
    gpu, why_gpu = budget.fit_to_budget(config, 135, rate=("GPU", 400e12))
    assert (gpu.height, gpu.width) == (160, 128) and not why_gpu["below_subset_size"]
    assert gpu.epochs > cpu.epochs / 16  # ~a sixteenth of the pixels per image... and a far faster device
    # a fixed size and fixed epochs are left alone
    fixed = GanConfig.from_dict({"height": 40, "width": 32, "epochs": 7})
    assert budget.fit_to_budget(fixed, 135, rate=("CPU", 1e9)) == (fixed, {})


def test_the_estimate_uses_each_architectures_measured_share_of_the_matmul_rate():
    """r3gan's step reaches about half the default's share of the matmul rate on a CPU: its
    estimate of images/s is FLOPs-per-image and that share, not FLOPs alone."""
    rate = ("CPU", 200e9)
    estimates = {}
    for preset in ("default", "r3gan"):
        config = GanConfig.from_dict({"preset": preset, "height": 80, "width": 64, "epochs": 0,
                                      "time_budget_s": 200})
        _, why = budget.fit_to_budget(config, 1000, rate=rate)
        by_flops = 200e9 * budget.STEP_EFFICIENCY["CPU"] / budget.train_flops_per_image(config)
        estimates[preset] = why["estimated_images_per_s"] / by_flops
    assert estimates["default"] == pytest.approx(1.0, rel=0.01)
    assert estimates["r3gan"] == pytest.approx(budget.ARCHITECTURE_EFFICIENCY["CPU"]["r3gan"], rel=0.01)
    assert estimates["r3gan"] < 0.6
    # no measurement on a GPU: every architecture is estimated alike there
    assert budget.step_efficiency("GPU", "r3gan") == budget.step_efficiency("GPU", "dcgan")


def test_planning_with_a_budget_gives_each_trial_its_share_and_leaves_size_and_epochs_to_the_worker(db, settings):
    make_subset(settings.subsets_dir / "vases", count=40, height=160, width=128)
    overview = search.plan_search("budgeted", {"loss": ["hinge", "non-saturating"]}, subset="vases",
                                  settings=settings, budget_s=480)
    assert overview["trial_budget_s"] == budget.trial_budget(480, 2) and overview["fitted"] == ["epochs", "size"]
    for item in overview["trials"]:
        config = GanConfig.from_dict(trialdir.read_config(settings.results_dir / "budgeted" / item["trial_id"]))
        assert config.size_by_budget and config.epochs == 0 and (config.height, config.width) == (160, 128)
        assert config.time_budget_s == overview["trial_budget_s"]
        assert item["label"] in ("loss=hinge", "loss=non-saturating")
    # what the person sets wins: set epochs (or halving's rungs) decide the training, the budget is unused
    kept = search.plan_search("kept", {"loss": ["hinge"]}, subset="vases", settings=settings, budget_s=480,
                              base={"epochs": 3}, dry_run=True)
    assert kept["budget_unused"] and kept["budget_s"] is None and kept["rungs"][0]["epochs"] == 3
    halving = search.plan_search("halved", {"loss": ["hinge", "non-saturating"]}, subset="vases", settings=settings,
                                 budget_s=480, strategy={"strategy": "halving", "max_epochs": 4}, dry_run=True)
    assert halving["budget_unused"] and halving["rungs"][-1]["epochs"] == 4
    with pytest.raises(GanConfigError, match="raise the budget"):
        search.plan_search("tiny", {"loss": ["hinge", "non-saturating"]}, subset="vases", settings=settings,
                           budget_s=60, dry_run=True)


def test_a_fitted_trial_records_what_it_trained_ends_completed_and_resumes_the_same(tmp_path):
    requested = GanConfig.from_dict({**TINY, "height": 80, "width": 64, "epochs": 0, "time_budget_s": 6,
                                     "size_by_budget": True})
    images = vase_images(32, height=80, width=64)
    summary = run_trial(tmp_path, requested, tmp_path, images=images, trial_id="fit")
    trained = GanConfig.from_dict(trialdir.read_config(tmp_path))
    info = trialdir.read_trial_info(tmp_path)
    assert not trained.size_by_budget and trained.epochs >= 1
    assert (info["fitted"]["height"], info["fitted"]["width"]) == (trained.height, trained.width)
    assert info["fitted"]["requested"] == requested.to_dict()
    assert summary["status"] == "completed" and info["status"] == "completed"
    # the same request again is the same trial: it is finished, nothing is refitted or retrained
    again = run_trial(tmp_path, requested, tmp_path, images=images, trial_id="fit")
    assert again["status"] == "completed" and trialdir.read_config(tmp_path) == trained.to_dict()

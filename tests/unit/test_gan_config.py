import json
import re
import subprocess
import sys

import pytest

from metgan.errors import GanConfigError
from metgan.gan.config import PRESETS, GanConfig, preset
from metgan.gan.param_grid import expand_grid, resolve_grid

# (key, a bad value, words the error must contain): one row per config key.
BAD_VALUES = [
    ("height", 81, "height"), ("height", 0, "height"), ("width", 30, "width"), ("channels", 2, "channels"),
    ("x_flip", "yes", "x_flip"), ("noise_dim", 0, "noise_dim"), ("g_blocks", 0, "g_blocks"),
    ("g_blocks", 6, "g_blocks"), ("g_filters", 0, "g_filters"), ("g_seed_filters", 0, "g_seed_filters"),
    ("g_kernel", 0, "g_kernel"), ("g_dense", -1, "g_dense"), ("g_dense_units", 0, "g_dense_units"),
    ("g_norm", "spectral", "g_norm"), ("g_upsample", "bilinear", "g_upsample"), ("g_bn_momentum", 1.0, "g_bn_momentum"), ("d_blocks", 0, "d_blocks"),
    ("d_blocks", 7, "d_blocks"), ("d_filters", 0, "d_filters"), ("d_kernel", 0, "d_kernel"), ("d_dense", -1, "d_dense"),
    ("d_dense_units", 0, "d_dense_units"), ("d_norm", "group", "d_norm"), ("d_dropout", 1.0, "d_dropout"),
    ("d_leak", -0.1, "d_leak"), ("loss", "bce", "loss"), ("gp_weight", -1.0, "gp_weight"),
    ("r1_weight", -1.0, "r1_weight"), ("r2_weight", -1.0, "r2_weight"), ("penalty_every", 0, "penalty_every"),
    ("res_blocks", 0, "res_blocks"), ("group_size", 0, "group_size"), ("ada_target", 1.0, "ada_target"),
    ("ada_images", 0, "ada_images"), ("diffaugment", ["zoom"], "diffaugment"),
    ("diffaugment", ["color", "color"], "diffaugment"), ("ema_decay", 1.0, "ema_decay"), ("g_lr", 0.0, "g_lr"),
    ("g_beta1", 1.0, "g_beta1"), ("g_beta2", -0.1, "g_beta2"), ("d_lr", -1e-4, "d_lr"), ("d_beta1", 1.5, "d_beta1"),
    ("d_beta2", 1.0, "d_beta2"), ("batch_size", 0, "batch_size"), ("g_batch_factor", 0, "g_batch_factor"),
    ("epochs", 0, "epochs"), ("epochs", True, "epochs"), ("d_steps", 0, "d_steps"), ("seed", -1, "seed"),
    ("mixed_precision", "yes", "mixed_precision"), ("xla", True, "xla"),
    ("steps_per_execution", 0, "steps_per_execution"), ("swd_every", 0, "swd_every"),
    ("swd_images", 2, "swd_images"), ("inception_weights", " ", "inception_weights"),
    ("checkpoint_every", 0, "checkpoint_every"), ("keep_checkpoints", 0, "keep_checkpoints"),
    ("time_budget_s", -1.0, "time_budget_s"), ("collapse_within_std", -1.0, "collapse_within_std"),
    ("collapse_across_std", -2.0, "collapse_across_std"), ("collapse_patience", 0, "collapse_patience"),
    ("n_samples", 0, "n_samples"), ("n_generated", 5000, "n_generated"),
    ("architecture", "stylegan", "architecture"), ("recon_weight", -1.0, "recon_weight"),
    ("holdout", 0.6, "holdout"), ("size_by_budget", "yes", "size_by_budget"),
    ("size_by_budget", True, "time_budget_s"),
]


def test_every_config_key_has_a_validation_case():
    assert {key for key, _, _ in BAD_VALUES} == set(GanConfig.field_names())


@pytest.mark.parametrize(("key", "value", "words"), BAD_VALUES)
def test_bad_value_is_rejected_naming_the_key(key, value, words):
    with pytest.raises(GanConfigError, match=words):
        GanConfig.from_dict({key: value})


def test_unknown_key_is_rejected_listing_valid_keys():
    with pytest.raises(GanConfigError) as error:
        GanConfig.from_dict({"learning_rate": 1e-3})
    assert "'learning_rate'" in str(error.value) and "g_lr" in str(error.value)
    with pytest.raises(GanConfigError, match="unknown preset"):
        GanConfig.from_dict({"preset": "stylegan"})


@pytest.mark.parametrize(("combo", "words"), [
    ({"loss": "wgan-gp", "d_norm": "batch"}, "'loss'='wgan-gp' and 'd_norm'='batch'"),
    ({"loss": "wgan-gp", "d_norm": "none", "r1_weight": 1.0}, "'r1_weight'"),
    ({"height": 40, "g_blocks": 4}, "height"),
    ({"g_filters": 4, "g_blocks": 4}, "g_filters"),
    ({"preset": "fastgan", "loss": "wgan-gp"}, "'architecture'='fastgan' and 'loss'='wgan-gp'"),
    ({"preset": "fastgan", "d_blocks": 2}, "'d_blocks'=2"),
    ({"preset": "fastgan", "g_dense": 1}, "'g_dense'"),
    ({"preset": "fastgan", "d_dropout": 0.3}, "'d_dropout'"),
    ({"preset": "fastgan", "height": 320, "width": 256, "g_blocks": 2}, "'g_blocks'=2"),
])
def test_impossible_combinations_are_rejected(combo, words):
    with pytest.raises(GanConfigError, match=words.replace("(", r"\(")):
        GanConfig.from_dict(combo)


def test_rectangular_sizes_and_json_spellings_are_accepted():
    config = GanConfig.from_dict({"height": 160, "width": 128, "g_lr": 1, "diffaugment": "color,cutout"})
    assert (config.seed_height, config.seed_width) == (20, 16)
    assert config.g_lr == 1.0 and config.diffaugment == ("color", "cutout")
    assert GanConfig.from_dict({"diffaugment": []}).diffaugment == ()


def test_origin_preset_reproduces_the_origin_settings():
    origin = preset("origin")
    assert origin.noise_dim == 62 and origin.g_seed_filters == 64 and origin.g_blocks == 2
    assert (origin.seed_height, origin.seed_width) == (20, 16)  # dense to 20x16x64 at 64x80
    assert origin.d_norm == "batch" and origin.d_leak == 0.1 and origin.loss == "non-saturating"
    assert origin.g_batch_factor == 2 and origin.g_lr == origin.d_lr == 2e-4
    assert origin.diffaugment == () and origin.ema_decay == 0.0
    assert origin.label() == "origin"
    assert set(PRESETS) == {"default", "origin", "fastgan", "r3gan", "r3gan-gpu"}


def test_fields_added_later_leave_the_ids_of_older_configs_unchanged():
    """Trial ids issued before r2_weight, penalty_every, res_blocks, group_size and the ADA keys
    existed stay the same: a field at its default is left out of the canonical JSON."""
    assert preset("default").trial_id() == "4b837f259a1c"
    assert preset("fastgan").trial_id() == "29aeb247c218"
    assert preset("origin").trial_id() == "3616f26ee54e"
    assert GanConfig.from_dict({"r2_weight": 1.0}).trial_id() != preset("default").trial_id()
    assert GanConfig.from_dict({"g_upsample": "resize"}).trial_id() != preset("default").trial_id()


@pytest.mark.parametrize(("changes", "words"), [
    ({"loss": "relativistic", "g_batch_factor": 2, "d_norm": "none"}, "g_batch_factor"),
    ({"loss": "relativistic"}, "'loss'='relativistic' and 'd_norm'='batch'"),
    ({"ada_target": 0.6, "diffaugment": []}, "ada_target"),
    ({"preset": "r3gan", "d_dropout": 0.3}, "d_dropout"),
    ({"preset": "r3gan", "g_dense": 1}, "g_dense"),
    ({"preset": "fastgan", "g_upsample": "resize"}, "'g_upsample'='resize' is for 'architecture'='dcgan'"),
    ({"loss": "wgan-gp", "d_norm": "none", "r2_weight": 1.0}, "r2_weight"),
])
def test_modern_baseline_combinations_that_cannot_train_are_refused_by_key(changes, words):
    with pytest.raises(GanConfigError, match=re.escape(words)):
        GanConfig.from_dict(changes)


def test_trial_id_is_a_stable_hash_of_the_resolved_config():
    a = GanConfig.from_dict({"g_lr": 1e-4, "epochs": 3})
    b = GanConfig.from_dict({"epochs": 3, "g_lr": 0.0001})
    assert a.trial_id() == b.trial_id() and len(a.trial_id()) == 12
    assert a.trial_id() != GanConfig.from_dict({"g_lr": 1e-4, "epochs": 4}).trial_id()
    assert GanConfig.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert a.overrides() == {"g_lr": 1e-4, "epochs": 3}
    assert a.label() == "g_lr=0.0001"


def test_grid_expansion_follows_parameter_grid():
    assert expand_grid({"g_lr": [1e-4, 2e-4], "loss": ["hinge", "non-saturating"]}) == [
        {"g_lr": 1e-4, "loss": "hinge"}, {"g_lr": 1e-4, "loss": "non-saturating"},
        {"g_lr": 2e-4, "loss": "hinge"}, {"g_lr": 2e-4, "loss": "non-saturating"}]
    assert expand_grid([{"loss": ["hinge"]}, {"loss": "wgan-gp", "d_norm": ["none", "spectral"]}]) == [
        {"loss": "hinge"}, {"d_norm": "none", "loss": "wgan-gp"}, {"d_norm": "spectral", "loss": "wgan-gp"}]
    assert expand_grid('{"loss": ["hinge"], "g_lr": 0.001}') == [{"g_lr": 0.001, "loss": "hinge"}]  # DAG param text
    assert expand_grid({"diffaugment": [["color"], []]}) == [{"diffaugment": ["color"]}, {"diffaugment": []}]
    resolved = resolve_grid({"epochs": [1, 1, 2]})
    assert [config.epochs for _, config in resolved] == [1, 2]  # duplicates collapse to one trial


def test_grid_with_one_invalid_combination_fails_naming_it():
    grid = {"loss": ["non-saturating", "wgan-gp"], "d_norm": ["none", "batch"]}
    with pytest.raises(GanConfigError) as error:
        resolve_grid(grid)
    message = str(error.value)
    assert '"d_norm": "batch"' in message and '"loss": "wgan-gp"' in message


def test_config_and_search_planning_import_no_tensorflow():
    code = ("import json, sys, metgan.gan.config, metgan.gan.search, metgan.gan.commands;"
            "metgan.gan.param_grid.resolve_grid({'g_lr': [1e-4, 2e-4]});"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_fastgan_preset_is_the_papers_recipe_and_round_trips_through_json():
    config = preset("fastgan")
    assert (config.architecture, config.loss, config.d_norm, config.g_kernel) == ("fastgan", "hinge", "spectral", 3)
    assert (config.g_lr, config.g_beta1, config.g_beta2, config.ema_decay) == (2e-4, 0.5, 0.999, 0.999)
    assert config.diffaugment == ("color", "translation")
    again = GanConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.trial_id() == config.trial_id()
    assert config.label() == "fastgan"
    assert preset("default").architecture == "dcgan"


def test_a_misspelled_key_gets_a_did_you_mean_on_one_short_line():
    with pytest.raises(GanConfigError) as error:
        resolve_grid({"los": ["hinge"]})
    message = str(error.value)
    assert message.endswith("unknown GAN config key 'los'; did you mean 'loss'?") and "\n" not in message
    with pytest.raises(GanConfigError, match="valid keys: preset, architecture"):  # nothing close: every key
        GanConfig.from_dict({"zzz": 1})

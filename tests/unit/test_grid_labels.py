from metgan.gan.param_grid import grid_labels
from metgan.gan.search import plan_trials
from tests.gan_support import make_subset


def test_labels_name_only_the_settings_that_vary_across_the_grid():
    combos = [{"loss": "non-saturating", "d_norm": "none", "epochs": 3},
              {"loss": "hinge", "d_norm": "none", "epochs": 3},
              {"loss": "hinge", "d_norm": "spectral", "epochs": 3}]
    assert grid_labels(combos) == ["d_norm=none loss=non-saturating", "d_norm=none loss=hinge",
                                   "d_norm=spectral loss=hinge"]
    assert grid_labels([{"diffaugment": ["color", "translation"]}, {"diffaugment": []}]) == [
        "diffaugment=color+translation", "diffaugment=none"]


def test_a_one_trial_grid_falls_back_to_the_config_label(settings):
    make_subset(settings.subsets_dir / "vases", count=20, height=80, width=64)  # the default size: no label
    plan = plan_trials("labels", {"loss": ["hinge"]}, subset="vases", base={"epochs": 2}, dry_run=True)
    assert plan[0]["label"] == "loss=hinge"  # epochs is in the _LABEL_SKIP list of GanConfig.label
    many = plan_trials("labels", {"loss": ["hinge", "non-saturating"]}, subset="vases",
                       base={"epochs": 2, "g_filters": 64}, dry_run=True)
    assert [p["label"] for p in many] == ["loss=hinge", "loss=non-saturating"]

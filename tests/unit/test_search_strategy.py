"""Search strategies: seeded draws within each distribution's bounds, and successive halving's plan
following scikit-learn's HalvingGridSearchCV schedule (computed here from its documented rule)."""

import math

import pytest

from metgan.errors import GanConfigError
from metgan.gan.strategy import MAX_RUNGS, Strategy, epochs_trained, halving_schedule, plan_rungs, sample

SPACE = {"g_lr": {"loguniform": [1e-5, 1e-3]}, "d_lr": {"uniform": [0.0001, 0.0002]},
         "d_filters": {"choice": [32, 64]}, "batch_size": {"randint": [16, 64]}, "loss": ["hinge", "wgan-gp"],
         "x_flip": True}


def test_draws_are_reproducible_by_seed_and_differ_between_seeds():
    first, again, other = sample(SPACE, 30, seed=7), sample(SPACE, 30, seed=7), sample(SPACE, 30, seed=8)
    assert first == again
    assert first != other
    assert len(first) == 30 and len({str(sorted(c.items())) for c in first}) == 30


def test_draws_respect_each_distributions_bounds_and_reach_across_them():
    draws = sample(SPACE, 400, seed=0)
    g_lr = [d["g_lr"] for d in draws]
    assert all(1e-5 <= v <= 1e-3 for v in g_lr)
    # log-uniform: about half the draws fall below the geometric middle (1e-4), not 1/11 as uniform would
    below = sum(v < 1e-4 for v in g_lr) / len(g_lr)
    assert 0.4 < below < 0.6, below
    assert all(0.0001 <= d["d_lr"] <= 0.0002 for d in draws)
    assert {d["d_filters"] for d in draws} == {32, 64}
    sizes = {d["batch_size"] for d in draws}
    assert all(isinstance(v, int) and 16 <= v <= 64 for v in sizes) and {16, 64} <= sizes  # both ends included
    assert {d["loss"] for d in draws} == {"hinge", "wgan-gp"}
    assert all(d["x_flip"] is True for d in draws)


def test_a_small_discrete_space_is_drawn_without_replacement():
    draws = sample({"loss": ["hinge", "wgan-gp"], "d_norm": ["none", "spectral"]}, 10, seed=1)
    assert sorted((d["loss"], d["d_norm"]) for d in draws) == sorted(
        (a, b) for a in ("hinge", "wgan-gp") for b in ("none", "spectral"))


def test_a_list_of_grids_picks_a_part_per_draw():
    draws = sample([{"loss": ["hinge"], "r1_weight": {"uniform": [0.1, 1.0]}}, {"loss": ["wgan-gp"]}], 20, seed=3)
    assert {d["loss"] for d in draws} == {"hinge", "wgan-gp"}
    assert all(("r1_weight" in d) == (d["loss"] == "hinge") for d in draws)


@pytest.mark.parametrize("value, problem", [
    ({"loguniform": [0, 1]}, "low > 0"),
    ({"uniform": [2, 1]}, "must be less than"),
    ({"randint": [1.5, 4]}, "whole numbers"),
    ({"choice": []}, "non-empty list"),
    ({"normal": [0, 1]}, "is not a distribution"),
    ({"loguniform": [1e-5]}, "needs [low, high]"),
])
def test_a_bad_distribution_is_named(value, problem):
    with pytest.raises(GanConfigError, match="g_lr") as raised:
        sample({"g_lr": value}, 3, seed=0)
    assert problem in str(raised.value)


@pytest.mark.parametrize("data, problem", [
    ({"strategy": "bayes"}, "strategy 'bayes' is not one of grid, random, halving"),
    ({"strategy": "random"}, "needs n_iter"),
    ({"strategy": "grid", "n_iter": 3}, "n_iter is for strategy random or halving"),
    ({"strategy": "halving", "factor": 1}, "factor must be a whole number of at least 2"),
    ({"strategy": "halving", "min_epochs": 9, "max_epochs": 3}, "min_epochs 9 is more than max_epochs 3"),
    ({"strategy": "random", "n_iter": 2, "min_epochs": 1}, "min_epochs is for strategy halving"),
    ({"strategy": "halving", "rungs": 2}, "unknown strategy key 'rungs'"),
])
def test_a_bad_strategy_is_one_line_naming_it(data, problem):
    with pytest.raises(GanConfigError) as raised:
        Strategy.from_dict(data)
    assert problem in str(raised.value)


def sklearn_schedule(n_candidates: int, factor: int, min_resources: int | None, max_resources: int):
    """scikit-learn's documented successive-halving schedule (HalvingGridSearchCV, aggressive_elimination
    False): n_required = 1 + floor(log_factor(n_candidates)); min_resources "exhaust" =
    max_resources // factor**(n_required - 1); n_possible = 1 + floor(log_factor(max // min));
    n_iterations = min(n_possible, n_required); iteration i uses min(min * factor**i, max) resources
    on ceil(n_(i-1) / factor) candidates."""
    def floor_log(x):  # exact, so 243 in base 3 is 5 (the float log gives 4.999...)
        return max(k for k in range(64) if factor ** k <= x)

    n_required = 1 + floor_log(n_candidates)
    if min_resources is None:
        min_resources = max(1, max_resources // factor ** (n_required - 1))
    n_iterations = min(1 + floor_log(max_resources // min_resources), n_required)
    rows, candidates = [], n_candidates
    for i in range(n_iterations):
        rows.append((candidates, min(min_resources * factor ** i, max_resources)))
        candidates = math.ceil(candidates / factor)
    return rows


@pytest.mark.parametrize("n, factor, min_epochs, max_epochs", [
    (9, 3, 1, 9), (9, 3, None, 9), (9, 3, None, 27), (10, 3, 1, 100), (30, 2, 2, 40), (27, 3, 1, 2),
    (100, 3, None, 50), (1, 3, None, 10), (243, 3, 1, 243), (5, 4, 3, 80), (16, 2, None, 5),
])
def test_the_halving_plan_matches_scikit_learns_schedule(n, factor, min_epochs, max_epochs):
    rungs = halving_schedule(n, factor, min_epochs, max_epochs)
    assert [(r.trials, r.epochs) for r in rungs] == sklearn_schedule(n, factor, min_epochs, max_epochs)
    assert [r.rung for r in rungs] == list(range(len(rungs)))


def test_halving_nine_trials_by_three_trains_a_quarter_of_the_full_grids_epochs():
    rungs = plan_rungs(Strategy("halving", factor=3), 9, 9)
    assert [(r.trials, r.epochs) for r in rungs] == [(9, 1), (3, 3), (1, 9)]
    assert epochs_trained(rungs) == 9 * 1 + 3 * 2 + 1 * 6  # each survivor resumes where it stopped
    assert plan_rungs(Strategy("grid"), 9, 9)[0].trials == 9 and epochs_trained(plan_rungs(Strategy(), 9, 9)) == 81


def test_a_plan_with_more_rungs_than_the_dag_has_is_refused():
    with pytest.raises(GanConfigError, match=f"more than the {MAX_RUNGS} the gan_search DAG has"):
        plan_rungs(Strategy("halving", factor=2, min_epochs=1), 1024, 1024)

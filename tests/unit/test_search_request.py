"""The one request builder behind the gan_search form and `metgan search run`."""

from __future__ import annotations

import pytest

from metgan.errors import GanConfigError
from metgan.gan.request import SearchRequest
from metgan.gan.strategy import Strategy

FORM = {"search_name": "s", "subset": "vases", "grid": {"loss": ["non-saturating", "hinge"]}, "base": {},
        "budget_s": 480, "epochs": None, "objective": "swd", "direction": "min", "strategy": "grid",
        "n_iter": None, "seed": 0, "factor": 3, "min_epochs": None}


def test_the_form_and_the_command_line_build_the_same_request():
    form = SearchRequest.from_form(FORM)
    cli = SearchRequest.from_command_line("s", "vases", params=("loss=non-saturating,hinge",), budget_s=480)
    assert form == cli
    assert form.strategy == Strategy() and form.budget_s == 480


def test_a_grid_file_and_the_form_agree_on_halving(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("grid: {g_lr: [0.0001, 0.0002]}\nbase: {epochs: 9}\nstrategy: halving\nfactor: 2\n"
                         "min_epochs: 3\nobjective: diversity\ndirection: max\n")
    cli = SearchRequest.from_command_line("s", "vases", grid_file, budget_s=0)
    form = SearchRequest.from_form({**FORM, "grid": {"g_lr": [0.0001, 0.0002]}, "epochs": 9, "strategy": "halving",
                                    "factor": 2, "min_epochs": 3, "objective": "diversity", "direction": "max",
                                    "budget_s": 0, "n_iter": None})
    assert cli == form
    assert cli.budget_s is None and cli.base == {"epochs": 9} and cli.strategy.min_epochs == 3


def test_the_form_ignores_strategy_fields_its_strategy_does_not_use():
    # The form shows n_iter and min_epochs whatever the strategy; a grid search trains every combination.
    request = SearchRequest.from_form({**FORM, "n_iter": 5, "min_epochs": 2})
    assert request.strategy.n_iter is None and request.strategy.min_epochs is None
    assert SearchRequest.from_form({**FORM, "strategy": "random", "n_iter": 5}).strategy.n_iter == 5


def test_command_line_options_override_the_file(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("grid: [{loss: [hinge]}, {loss: [non-saturating], r1_weight: [1]}]\nobjective: diversity\n")
    request = SearchRequest.from_command_line("s", "v", grid_file, params=("g_lr=1e-4",), preset="origin",
                                              objective="swd")
    assert request.grid == [{"loss": ["hinge"], "g_lr": [0.0001]},
                            {"loss": ["non-saturating"], "r1_weight": [1], "g_lr": [0.0001]}]
    assert request.base == {"preset": "origin"} and request.objective == "swd"


@pytest.mark.parametrize(("change", "message"), [
    ({"objective": "sharpness"}, "objective 'sharpness' is not one of"),
    ({"direction": "up"}, "direction 'up' must be 'min' or 'max'"),
    ({"base": [1]}, "base settings must be a mapping"),
    ({"strategy": "random"}, "strategy random needs n_iter"),
])
def test_a_bad_request_is_refused_with_one_line_naming_it(change, message):
    with pytest.raises(GanConfigError, match=message) as caught:
        SearchRequest.from_form({**FORM, **change})
    assert "\n" not in str(caught.value)


def test_a_missing_grid_file_is_named(tmp_path):
    with pytest.raises(GanConfigError, match="grid file .*missing.yaml does not exist"):
        SearchRequest.from_command_line("s", "v", tmp_path / "missing.yaml")

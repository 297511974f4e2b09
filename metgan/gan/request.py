"""What a user asks of a search, built one way from the Airflow form and from the command line.

The ``gan_search`` DAG's form and ``metgan search run`` take the same request in two shapes: the
form as flat fields (grid, base, epochs, strategy, n_iter, ...), the command line as a grid file
(the grid itself, or ``{grid, base, objective, direction, strategy keys}``) plus ``--param`` axes
and ``--preset``. :class:`SearchRequest` is the one result, validated once at construction (each
bad value named); :func:`metgan.gan.search.plan_request` plans it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metgan.errors import GanConfigError
from metgan.gan.budget import DEFAULT_SEARCH_BUDGET_S
from metgan.gan.strategy import Strategy

OBJECTIVES = ("swd", "color_distance", "diversity", "fid", "d_loss", "g_loss")


@dataclass(frozen=True)
class SearchRequest:
    """A search to plan: its name, subset, grid, shared settings, ranking, strategy and budget.

    ``budget_s`` (seconds for the whole search) is split over the trials when neither the base nor
    the grid sets ``epochs`` and the strategy is not halving; ``None`` or 0: no budget.
    ``airflow_dag_id``/``airflow_run_id`` name the Airflow run that asked (the gallery links to it).
    """

    search_name: str
    subset: str
    grid: dict | list | str = field(default_factory=dict)
    base: dict = field(default_factory=dict)
    objective: str = "swd"
    direction: str = "min"
    strategy: Strategy = field(default_factory=Strategy)
    budget_s: float | None = None
    airflow_dag_id: str | None = None
    airflow_run_id: str | None = None

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise GanConfigError(f"objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        if self.direction not in ("min", "max"):
            raise GanConfigError(f"direction {self.direction!r} must be 'min' or 'max'")
        if self.base is None:
            object.__setattr__(self, "base", {})
        if not isinstance(self.base, dict):
            raise GanConfigError(f"base settings must be a mapping of GAN config keys (e.g. {{\"epochs\": 5}}); "
                                 f"got {type(self.base).__name__}")
        if not isinstance(self.strategy, Strategy):
            object.__setattr__(self, "strategy", Strategy.from_dict(self.strategy))
        if not self.budget_s:
            object.__setattr__(self, "budget_s", None)

    @classmethod
    def from_form(cls, params: Mapping[str, Any], *, airflow_dag_id: str | None = None,
                  airflow_run_id: str | None = None) -> SearchRequest:
        """From the ``gan_search`` form's fields. The form shows every strategy field whatever the
        strategy: n_iter counts only for random and halving, min_epochs only for halving, and the
        Epochs field is the base's ``epochs`` (halving: the last rung's)."""
        base = params.get("base") or {}
        if isinstance(base, dict) and params.get("epochs") is not None:
            base = {**base, "epochs": int(params["epochs"])}
        kind = params.get("strategy") or "grid"
        strategy = {"strategy": kind, "seed": params.get("seed", 0), "factor": params.get("factor", 3),
                    "n_iter": params.get("n_iter") if kind != "grid" else None,
                    "min_epochs": params.get("min_epochs") if kind == "halving" else None}
        return cls(search_name=params["search_name"], subset=params["subset"], grid=params.get("grid") or {},
                   base=base, objective=params.get("objective") or "swd",
                   direction=params.get("direction") or "min", strategy=strategy,
                   budget_s=params.get("budget_s"), airflow_dag_id=airflow_dag_id, airflow_run_id=airflow_run_id)

    @classmethod
    def from_command_line(cls, search_name: str, subset: str, grid_file: Path | None = None, *,
                          params: Sequence[str] = (), preset: str | None = None, objective: str | None = None,
                          direction: str | None = None, budget_s: float | None = DEFAULT_SEARCH_BUDGET_S,
                          ) -> SearchRequest:
        """From ``metgan search run``: the grid file (optional), ``--param key=v1,v2`` axes added
        to every part of its grid, ``--preset`` into the base, ``--objective``/``--direction``
        over the file's; the budget by default the form's."""
        from metgan.gan import param_grid

        if grid_file is not None:
            from metgan.files import check_input_file

            check_input_file(grid_file, "grid file", error=GanConfigError)
            spec = param_grid.load_grid_file(grid_file)
        else:
            spec = {"grid": {}, "base": {}, "objective": "swd", "direction": "min", "strategy": {}}
        grid = spec["grid"]
        if params:
            extra = dict(parse_param(text) for text in params)
            grid = [{**part, **extra} for part in grid] if isinstance(grid, list) else {**(grid or {}), **extra}
        base = dict(spec["base"])
        if preset:
            base["preset"] = preset
        return cls(search_name=search_name, subset=subset, grid=grid, base=base,
                   objective=objective or spec["objective"], direction=direction or spec["direction"],
                   strategy=spec.get("strategy") or {}, budget_s=budget_s)


def parse_param(text: str) -> tuple[str, list]:
    """``key=v1,v2`` -> (key, [v1, v2]); values parsed as YAML scalars (``1e-3`` is a float, as in
    Python and YAML 1.2); diffaugment items join with '+'."""
    import yaml

    from metgan.files import load_yaml

    if "=" not in text:
        raise GanConfigError(f"--param {text!r} must look like key=value1,value2")
    key, _, raw = text.partition("=")
    key = key.strip()
    values: list = []
    for item in raw.split(","):
        item = item.strip()
        if key == "diffaugment":
            values.append([] if item in ("", "none") else item.split("+"))
            continue
        try:
            values.append(load_yaml(item))
        except yaml.YAMLError:
            raise GanConfigError(f"{text!r}: value {item!r} is not a YAML scalar; write key=value or "
                                 "key=value1,value2 (quote a string that starts with [ or {)") from None
    return key, values

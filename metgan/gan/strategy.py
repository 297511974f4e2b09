"""How a search picks its trials and how long each trains: a full grid, random draws, successive halving.

``grid`` trains every combination to the end (scikit-learn's ``GridSearchCV``). ``random`` draws
``n_iter`` combinations (``RandomizedSearchCV``): a list is a uniform choice, a one-key mapping is a
distribution (``{loguniform: [lo, hi]}``, ``{uniform: [lo, hi]}``, ``{randint: [lo, hi]}``, both
ends included, ``{choice: [a, b]}``), a scalar is fixed; the draws come from ``seed``, so the same
file gives the same trials. ``halving`` (``HalvingGridSearchCV``, or ``HalvingRandomSearchCV`` when
``n_iter`` is set) trains every candidate for ``min_epochs``, keeps the best ``1/factor`` by the
objective, trains those on to ``min_epochs * factor``, and so on: rung ``r`` trains to
``min_epochs * factor**r`` epochs (never past ``max_epochs``), each survivor resuming from its own
checkpoint.

The schedule follows scikit-learn's documented rule: with ``n`` candidates the search has
``min(1 + floor(log_factor(max_epochs // min_epochs)), 1 + floor(log_factor(n)))`` rungs, rung
``r + 1`` keeps ``ceil(n_r / factor)`` candidates, and ``min_epochs`` left unset is scikit-learn's
``"exhaust"``: ``max_epochs // factor**(1 + floor(log_factor(n)) - 1)``, so the last rung reaches
``max_epochs`` when the grid allows it. Pure Python; no TensorFlow, no numpy.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from typing import Any

from metgan.errors import GanConfigError

STRATEGIES = ("grid", "random", "halving")
DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice")
# The DAG has one mapped training stage per rung, wired when the file is parsed: a plan needing
# more rungs is refused at planning (factor 3 reaches 729 candidates in 6 rungs, factor 2 only 32).
MAX_RUNGS = 6
STRATEGY_KEYS = ("strategy", "n_iter", "seed", "factor", "min_epochs", "max_epochs")
# Redrawing a duplicate (a discrete space smaller than n_iter) stops after this many draws per trial.
_DRAWS_PER_TRIAL = 50


@dataclass(frozen=True)
class Rung:
    """One rung of a plan: how many trials it trains, and up to which epoch."""

    rung: int
    trials: int
    epochs: int


@dataclass(frozen=True)
class Strategy:
    """A search strategy, validated at construction (each bad value named)."""

    strategy: str = "grid"
    n_iter: int | None = None
    seed: int = 0
    factor: int = 3
    min_epochs: int | None = None
    max_epochs: int | None = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise GanConfigError(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        for name in ("n_iter", "min_epochs", "max_epochs"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise GanConfigError(f"{name} must be a whole number of at least 1; got {value!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise GanConfigError(f"seed must be a whole number of at least 0; got {self.seed!r}")
        if not _is_int(self.factor) or self.factor < 2:
            raise GanConfigError(f"factor must be a whole number of at least 2; got {self.factor!r}")
        if self.strategy == "random" and self.n_iter is None:
            raise GanConfigError("strategy random needs n_iter (how many trials to draw)")
        if self.strategy == "grid" and self.n_iter is not None:
            raise GanConfigError("n_iter is for strategy random or halving; strategy grid trains every combination")
        if self.strategy != "halving":
            extra = [name for name in ("min_epochs", "max_epochs") if getattr(self, name) is not None]
            if extra:
                raise GanConfigError(f"{extra[0]} is for strategy halving; this search's strategy is {self.strategy}")
        if (self.min_epochs is not None and self.max_epochs is not None and self.min_epochs > self.max_epochs):
            raise GanConfigError(f"min_epochs {self.min_epochs} is more than max_epochs {self.max_epochs}")

    @classmethod
    def from_dict(cls, data: dict | None) -> Strategy:
        """From the grid file's (or the form's) strategy keys; unknown keys are named."""
        data = dict(data or {})
        unknown = sorted(set(map(str, data)) - set(STRATEGY_KEYS))
        if unknown:
            raise GanConfigError(f"unknown strategy key {unknown[0]!r}; valid: {', '.join(STRATEGY_KEYS)}")
        data = {key: value for key, value in data.items() if value is not None}
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def draws(self) -> bool:
        """Whether the candidates are drawn (random, or halving over a random draw)."""
        return self.n_iter is not None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- distributions ----------------------------------------------------------------------------

def distribution_of(value: Any) -> tuple[str, list] | None:
    """``(name, arguments)`` when ``value`` is a one-key distribution mapping, else None."""
    if isinstance(value, dict) and len(value) == 1:
        name, args = next(iter(value.items()))
        if name in DISTRIBUTIONS:
            return name, args
    return None


def check_distribution(key: str, value: dict) -> None:
    """A distribution's arguments are what it needs, or one line naming the key and the problem."""
    found = distribution_of(value)
    if found is None:
        raise GanConfigError(f"grid key {key!r}: {json.dumps(value, default=str)} is not a distribution; "
                             f"write one of {', '.join(DISTRIBUTIONS)} with its arguments, e.g. "
                             "{loguniform: [1e-5, 1e-3]}")
    name, args = found
    if name == "choice":
        if not isinstance(args, list) or not args:
            raise GanConfigError(f"grid key {key!r}: choice needs a non-empty list of values")
        return
    if not isinstance(args, list) or len(args) != 2:
        raise GanConfigError(f"grid key {key!r}: {name} needs [low, high]; got {args!r}")
    low, high = args
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in args)
    if name == "randint":
        if not (_is_int(low) and _is_int(high)):
            raise GanConfigError(f"grid key {key!r}: randint needs whole numbers [low, high]; got {args!r}")
        if low > high:
            raise GanConfigError(f"grid key {key!r}: randint low {low} is more than high {high}")
        return
    if not numbers:
        raise GanConfigError(f"grid key {key!r}: {name} needs two finite numbers [low, high]; got {args!r}")
    if low >= high:
        raise GanConfigError(f"grid key {key!r}: {name} low {low} must be less than high {high}")
    if name == "loguniform" and low <= 0:
        raise GanConfigError(f"grid key {key!r}: loguniform needs low > 0; got {low}")


def _draw(rng: random.Random, value: Any) -> Any:
    found = distribution_of(value)
    if found is None:
        return rng.choice(value) if isinstance(value, list) else value
    name, args = found
    if name == "choice":
        return rng.choice(args)
    low, high = args
    if name == "randint":
        return rng.randint(low, high)
    if name == "uniform":
        return min(max(rng.uniform(low, high), low), high)
    return min(max(math.exp(rng.uniform(math.log(low), math.log(high))), low), high)


def _part_dicts(grid: Any) -> list[dict]:
    """The grid as a list of dicts (a dict is one part); anything else is refused."""
    if grid is None or grid == {}:
        return [{}]
    parts = [grid] if isinstance(grid, dict) else grid
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise GanConfigError("a grid must be a dict of lists or a list of such dicts")
    return parts


def has_distributions(grid: Any) -> str | None:
    """The first key written as a distribution (only random draws can use it), or None."""
    for part in _part_dicts(grid):
        for key in sorted(part, key=str):
            if isinstance(part[key], dict):
                return str(key)
    return None


def sample(grid: Any, n_iter: int, seed: int) -> list[dict]:
    """``n_iter`` distinct combinations drawn from ``grid`` with ``seed`` (fewer when the space is smaller).

    A part of a list-of-dicts grid is picked uniformly, then every key is drawn in name order, so a
    draw depends only on the file and the seed. A duplicate is drawn again (so a discrete space is
    sampled without replacement, as scikit-learn's ``ParameterSampler`` does).
    """
    parts = _part_dicts(grid)
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                check_distribution(str(key), value)
            elif isinstance(value, list) and not value:
                raise GanConfigError(f"grid key {key!r} has an empty list of values")
    rng = random.Random(seed)
    combos: list[dict] = []
    seen: set[str] = set()
    for _ in range(n_iter * _DRAWS_PER_TRIAL):
        if len(combos) == n_iter:
            break
        part = parts[rng.randrange(len(parts))]
        combo = {key: _draw(rng, part[key]) for key in sorted(part, key=str)}
        fingerprint = json.dumps(combo, sort_keys=True, default=str)
        if fingerprint not in seen:
            seen.add(fingerprint)
            combos.append(combo)
    return combos


# --- successive halving -----------------------------------------------------------------------

def floor_log(value: int, base: int) -> int:
    """``floor(log_base(value))`` for whole numbers, exactly (floating logs round 243 to 4.999 in base 3)."""
    power = 0
    while base ** (power + 1) <= value:
        power += 1
    return power


def halving_schedule(candidates: int, factor: int, min_epochs: int | None, max_epochs: int) -> list[Rung]:
    """The rungs of successive halving over ``candidates`` trials, by scikit-learn's rule (see the module)."""
    if candidates < 1:
        return []
    required = 1 + floor_log(candidates, factor)
    if min_epochs is None:
        min_epochs = max(1, max_epochs // factor ** (required - 1))
    if min_epochs > max_epochs:
        raise GanConfigError(f"min_epochs {min_epochs} is more than max_epochs {max_epochs}")
    possible = 1 + floor_log(max_epochs // min_epochs, factor)
    rungs, trials = [], candidates
    for index in range(min(possible, required)):
        rungs.append(Rung(index, trials, min(min_epochs * factor ** index, max_epochs)))
        trials = math.ceil(trials / factor)
    return rungs


def plan_rungs(strategy: Strategy, candidates: int, max_epochs: int) -> list[Rung]:
    """The plan's rungs: one rung of every trial to ``max_epochs`` unless the strategy halves."""
    if strategy.strategy != "halving":
        return [Rung(0, candidates, max_epochs)] if candidates else []
    rungs = halving_schedule(candidates, strategy.factor, strategy.min_epochs, max_epochs)
    if len(rungs) > MAX_RUNGS:
        raise GanConfigError(f"successive halving of {candidates} trials with factor {strategy.factor} needs "
                             f"{len(rungs)} rungs, more than the {MAX_RUNGS} the gan_search DAG has; "
                             "raise factor or min_epochs, or draw fewer trials (n_iter)")
    return rungs


def epochs_trained(rungs: list[Rung]) -> int:
    """The epochs a plan trains in all, each survivor resuming where its last rung stopped."""
    total, previous = 0, 0
    for rung in rungs:
        total += rung.trials * (rung.epochs - previous)
        previous = rung.epochs
    return total

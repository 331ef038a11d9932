"""What an optimisation searches and what it maximises. Pure Python, no Django, no Optuna.

A search space maps parameter names to a numeric range (``{"low": 3, "high": 20, "step": 1}``,
``"log": true`` for a log scale) or to a list of choices (``{"choices": ["sma", "ema"]}``);
parameters left out take the optimisation's fixed ``params`` (or their defaults). Every bound
and choice is checked against the strategy's declared parameters, so a trial can never draw a
value the strategy would reject on its own.

An objective is a metric (``"sharpe"``), or a weighted mix of metrics (``{"sharpe": 0.7,
"calmar": 0.3}``); a list of them is several objectives at once, searched for their Pareto
front. Each objective is maximised: a metric where lower is better enters a mix negated. Besides
the backtest metrics, ``profit`` is the total return and ``profit_drawdown`` the total return
over the depth of the maximum drawdown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backtests.metrics import LOWER_IS_BETTER, RANKABLE_METRICS
from strategies.base import Strategy
from strategies.params import Param, finite_number, show

SAMPLERS = ("tpe", "nsga2", "random", "grid")
DERIVED_METRICS = {"profit": "total return", "profit_drawdown": "total return / |max drawdown|"}
OBJECTIVE_METRICS = (*RANKABLE_METRICS, *DERIVED_METRICS)
MAX_OBJECTIVES = 3
MAX_GRID_POINTS = 100_000
RANGE_SYNTAX = '{"low": 3, "high": 20, "step": 1} (optionally "log": true)'
CHOICE_SYNTAX = '{"choices": ["sma", "ema"]}'


class SearchSpaceError(ValueError):
    """A search space or objective that cannot be run; ``errors`` maps fields to messages."""

    def __init__(self, code: str, message: str, errors: Mapping[str, list[str]]) -> None:
        super().__init__(message)
        self.code = code
        self.errors = dict(errors)


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: ``kind`` int, float or choice (bool parameters are choices)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def as_json(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        spec: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step is not None:
            spec["step"] = self.step
        if self.log:
            spec["log"] = True
        return spec

    def grid_count(self) -> int:
        """How many values the grid sampler takes of this dimension (a range needs a step)."""
        if self.kind == "choice":
            return len(self.choices)
        if self.low is None or self.high is None or self.step is None:
            raise ValueError(f"{self.name}: a grid needs a range with a step")
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def grid_values(self) -> list[Any]:
        """Every value of this dimension, for the grid sampler."""
        if self.kind == "choice":
            return list(self.choices)
        count = self.grid_count()  # checks low and step are there
        low, step = float(self.low or 0), float(self.step or 0)
        values = [low + i * step for i in range(count)]
        return [int(v) for v in values] if self.kind == "int" else [round(v, 12) for v in values]


def parse_space(
    strategy: type[Strategy], raw: Any, fixed: Mapping[str, Any]
) -> dict[str, Dimension]:
    """``raw`` checked against ``strategy``'s parameters; SearchSpaceError names each bad one."""
    if not isinstance(raw, Mapping) or not raw:
        raise SearchSpaceError(
            "invalid_space",
            "space must be a non-empty object of parameter: range or choices",
            {"space": [f"give each parameter {RANGE_SYNTAX} or {CHOICE_SYNTAX}"]},
        )
    declared = {param.name: param for param in strategy.params}
    errors: dict[str, list[str]] = {}
    space: dict[str, Dimension] = {}
    for name, spec in raw.items():
        if name not in declared:
            errors[str(name)] = [f"{name!r} is not a parameter of {strategy.key}"]
        elif name in fixed:
            errors[name] = [f"{name!r} is both fixed in params and searched in the space"]
        else:
            try:
                space[name] = _dimension(declared[name], spec)
            except ValueError as exc:
                errors[name] = [str(exc)]
    if errors:
        raise SearchSpaceError("invalid_space", "The search space has invalid entries.", errors)
    return space


def _dimension(param: Param, spec: Any) -> Dimension:
    if not isinstance(spec, Mapping):
        raise ValueError(f"give {RANGE_SYNTAX} or {CHOICE_SYNTAX}; got {show(spec)}")
    if "choices" in spec:
        return _choice_dimension(param, spec)
    if param.kind not in ("int", "float"):
        raise ValueError(f"{param.name} is a {param.kind} parameter: give {CHOICE_SYNTAX}")
    unknown = set(spec) - {"low", "high", "step", "log"}
    if unknown:
        raise ValueError(f"unknown keys {', '.join(sorted(map(str, unknown)))}: {RANGE_SYNTAX}")
    low: Any = spec.get("low")
    high: Any = spec.get("high")
    if not (finite_number(low) and finite_number(high)) or low >= high:
        raise ValueError(f"low and high must be numbers with low < high: {RANGE_SYNTAX}")
    for bound in (low, high):
        param.clean(bound)  # ValueError: outside the parameter's own bounds
    step, log = spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError("log must be true or false")
    return Dimension(param.name, param.kind, low, high, _checked_step(param, step, log), log)


def _checked_step(param: Param, step: Any, log: bool) -> float | None:
    if step is None:
        return 1 if param.kind == "int" else None
    if not finite_number(step) or step <= 0:
        raise ValueError("step must be a positive number")
    if param.kind == "int" and not float(step).is_integer():
        raise ValueError(f"{param.name} is an integer parameter: step must be an integer")
    if log and step != 1:
        raise ValueError("a log-scaled range takes no step (or step 1 for integers)")
    return int(step) if param.kind == "int" else float(step)


def _choice_dimension(param: Param, spec: Mapping[str, Any]) -> Dimension:
    choices = spec["choices"]
    if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
        raise ValueError(f"give a non-empty list of choices: {CHOICE_SYNTAX}")
    cleaned = [param.clean(choice) for choice in choices]
    if len({show(choice) for choice in cleaned}) != len(cleaned):
        raise ValueError("choices must be distinct")
    return Dimension(param.name, "choice", choices=tuple(cleaned))


def grid_size(space: Mapping[str, Dimension]) -> int:
    """How many points a grid over ``space`` has; SearchSpaceError if a range has no step."""
    unstepped = [d.name for d in space.values() if d.kind == "float" and d.step is None]
    if unstepped:
        raise SearchSpaceError(
            "invalid_space",
            "The grid sampler needs a step on every float range.",
            {name: ["give a step for the grid sampler"] for name in unstepped},
        )
    size = math.prod(dimension.grid_count() for dimension in space.values())
    if size > MAX_GRID_POINTS:
        raise SearchSpaceError(
            "grid_too_large",
            f"The grid has {size} points; at most {MAX_GRID_POINTS} are allowed.",
            {"space": [f"{size} grid points > {MAX_GRID_POINTS}: widen the steps"]},
        )
    return size


# --- Objectives --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """One maximised objective: a weighted sum of metrics (one metric: weight 1)."""

    weights: tuple[tuple[str, float], ...]

    @property
    def label(self) -> str:
        if len(self.weights) == 1 and self.weights[0][1] == 1:
            return self.weights[0][0]
        return " + ".join(f"{weight:g}×{metric}" for metric, weight in self.weights)

    def as_json(self) -> dict[str, float]:
        return dict(self.weights)

    def value(self, metrics: Mapping[str, Any]) -> float | None:
        """The objective on a backtest's ``metrics``; None when a metric is undefined (a Sharpe
        ratio without a single return, a drawdown of zero under profit_drawdown)."""
        total = 0.0
        for metric, weight in self.weights:
            value = metric_value(metric, metrics)
            if value is None:
                return None
            total += weight * (-value if metric in LOWER_IS_BETTER else value)
        return total


def metric_value(metric: str, metrics: Mapping[str, Any]) -> float | None:
    if metric == "profit":
        metric = "total_return"
    if metric == "profit_drawdown":
        profit, drawdown = metrics.get("total_return"), metrics.get("max_drawdown")
        if profit is None or not drawdown:
            return None
        return float(profit) / abs(float(drawdown))
    value: Any = metrics.get(metric)
    return float(value) if finite_number(value) else None


def parse_objectives(raw: Any) -> list[Objective]:
    """A metric, a ``{metric: weight}`` mix, or a list of up to MAX_OBJECTIVES of those."""
    items = raw if isinstance(raw, list) else [raw]
    if not items or len(items) > MAX_OBJECTIVES:
        raise _objective_error(f"give one to {MAX_OBJECTIVES} objectives")
    return [_objective(item) for item in items]


def _objective(raw: Any) -> Objective:
    if isinstance(raw, str):
        raw = {raw: 1}
    if not isinstance(raw, Mapping) or not raw:
        raise _objective_error(
            'give a metric such as "sharpe" or a weighted mix such as {"sharpe": 0.7, '
            f'"calmar": 0.3}}; got {show(raw)}'
        )
    unknown = [str(metric) for metric in raw if metric not in OBJECTIVE_METRICS]
    if unknown:
        raise _objective_error(
            f"unknown metric {', '.join(unknown)}; one of {', '.join(OBJECTIVE_METRICS)}"
        )
    if not all(finite_number(w) and not isinstance(w, bool) and w > 0 for w in raw.values()):
        raise _objective_error("every weight must be a positive number")
    return Objective(tuple((metric, float(weight)) for metric, weight in raw.items()))


def _objective_error(message: str) -> SearchSpaceError:
    return SearchSpaceError(
        "invalid_objective", "The objective is invalid.", {"objective": [message]}
    )


def default_sampler(objectives: list[Objective]) -> str:
    """TPE for one objective, NSGA-II for several."""
    return "nsga2" if len(objectives) > 1 else "tpe"


def check_sampler(sampler: str) -> None:
    """Every sampler takes one objective or several (NSGA-II is the default for several)."""
    if sampler not in SAMPLERS:
        raise SearchSpaceError(
            "invalid_sampler", "Unknown sampler.", {"sampler": [f"one of {', '.join(SAMPLERS)}"]}
        )

"""What an optimisation's page shows besides its fields: the search space in words, the Pareto
front's trials, the importances as bars, and the JSON its charts are drawn from.

Reads only, of one optimisation already fetched for its owner (``optimization_selectors``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from backtests.links import complete_params, params_key, period_backtests
from backtests.metrics import LOWER_IS_BETTER
from backtests.models import Backtest, Optimization, OptimizationTrial, TrialState
from backtests.optimization_selectors import (
    BEST_FIRST,
    optimization_history,
    parallel_coordinates,
    searched_params,
)
from backtests.templatetags.backtests_format import METRICS
from strategies.registry import UnknownStrategyError, active

PERCENT_METRICS = frozenset(key for key, (_, kind) in METRICS.items() if kind == "percent")


def param_labels(optimization: Optimization) -> dict[str, str]:
    """Each parameter's label (its name when the strategy is no longer registered)."""
    try:
        params = active().get(optimization.strategy_id).params
    except UnknownStrategyError:
        return {}
    return {param.name: param.display_name for param in params}


def metric_label(metric: str) -> str:
    if metric == "profit":
        return "Profit (total return)"
    if metric == "profit_drawdown":
        return "Profit / max drawdown"
    return METRICS.get(metric, (metric, ""))[0]


def objective_label(objective: dict[str, float]) -> str:
    """``{"sharpe": 1}`` → ``Sharpe ratio``; a mix → its weights times its metrics' labels,
    summed; a metric where lower is better enters negated (a minus sign before its label)."""
    parts = []
    for metric, weight in objective.items():
        label = ("−" if metric in LOWER_IS_BETTER else "") + metric_label(metric)
        parts.append(label if weight == 1 and len(objective) == 1 else f"{weight:g} × {label}")
    return " + ".join(parts)


def value_kind(objective: dict[str, float]) -> str:
    """``percent`` when the objective is one metric that is a fraction (a return), else
    ``number``: how its values read."""
    if len(objective) == 1:
        metric, weight = next(iter(objective.items()))
        if weight == 1 and (metric in PERCENT_METRICS or metric == "profit"):
            return "percent"
    return "number"


def space_rows(optimization: Optimization) -> list[dict[str, Any]]:
    """Each searched parameter: its name, label and what is searched, in words."""
    labels = param_labels(optimization)
    rows = []
    for name in searched_params(optimization):
        spec = optimization.space[name]
        if "choices" in spec:
            searched = "one of " + ", ".join(_text(choice) for choice in spec["choices"])
        else:
            searched = f"{spec['low']:g} to {spec['high']:g}"
            if spec.get("step") is not None:
                searched += f", step {spec['step']:g}"
            if spec.get("log"):
                searched += ", log scale"
        rows.append({"name": name, "label": labels.get(name, name), "searched": searched})
    return rows


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def pareto_rows(optimization: Optimization) -> list[OptimizationTrial]:
    """The Pareto front's trials (several objectives), best first objective first."""
    if not optimization.pareto:
        return []
    front = optimization.trials.filter(number__in=optimization.pareto, state=TrialState.COMPLETE)
    return list(front.order_by(*BEST_FIRST))


def trial_backtests(
    optimization: Optimization, trials: Iterable[OptimizationTrial]
) -> dict[int, Backtest]:
    """The owner's backtest of each of ``trials`` and of the best trial, by trial number, for
    those that have one (``backtests.links.period_backtests``)."""
    existing = period_backtests(run=optimization)
    params = {trial.number: trial.params for trial in trials}
    if optimization.best_trial is not None and optimization.best_params is not None:
        params[optimization.best_trial] = optimization.best_params
    found = {
        number: existing.get(params_key(complete_params(optimization.strategy_id, values)))
        for number, values in params.items()
    }
    return {number: backtest for number, backtest in found.items() if backtest is not None}


def importance_rows(optimization: Optimization) -> list[dict[str, Any]]:
    """The importances, largest first, with the bar's length relative to the largest."""
    labels = param_labels(optimization)
    shares = sorted(optimization.importances.items(), key=lambda item: (-item[1], item[0]))
    top = max((share for _, share in shares), default=0) or 1
    return [
        {"name": name, "label": labels.get(name, name), "share": share, "bar": share / top}
        for name, share in shares
    ]


def optimization_page_data(optimization: Optimization) -> dict[str, Any]:
    """What the page's charts draw (json_script ``optimization-data``): the history (each
    complete trial's value and the best so far), and the parallel coordinates (an axis per
    searched parameter: ``kind`` int, float or choice, its range or choices; each complete
    trial's values), the best trial and the Pareto front."""
    labels = param_labels(optimization)
    first = optimization.objectives[0]
    axes = []
    for name in searched_params(optimization):
        spec = optimization.space[name]
        axis: dict[str, Any] = {"name": name, "label": labels.get(name, name)}
        if "choices" in spec:
            axis |= {"kind": "choice", "choices": [_text(c) for c in spec["choices"]]}
        else:
            axis |= {"kind": "range", "low": spec["low"], "high": spec["high"]}
            axis["log"] = bool(spec.get("log"))
        axes.append(axis)
    choice_axes = {axis["name"] for axis in axes if axis["kind"] == "choice"}
    parallel = parallel_coordinates(optimization=optimization)
    trials = [
        {
            "number": trial["number"],
            "value": trial["value"],
            "params": {
                name: _text(value) if name in choice_axes else value
                for name, value in trial["params"].items()
            },
        }
        for trial in parallel["trials"]
    ]
    return {
        "objective": objective_label(first),
        "value_kind": value_kind(first),
        "history": optimization_history(optimization=optimization),
        "axes": axes,
        "trials": trials,
        "best_trial": optimization.best_trial,
        "pareto": optimization.pareto,
    }

"""Parameter grids for sweeps: expansion, validation and the size cap. Pure Python, no Django.

A grid maps parameter names to either a list of values (``{"fast": [5, 10, 20]}``) or an
inclusive range of numbers (``{"fast": {"start": 5, "stop": 50, "step": 5}}``). Parameters not in
the grid take the sweep's fixed ``params`` (or their defaults). The combinations are the cartesian
product, in the order the grid lists parameters and values.

A combination the strategy's own rules reject (``fast >= slow`` for MA Cross) is skipped, not an
error: a grid over two ranges naturally contains some. A grid with no valid combination at all,
an unknown parameter, a malformed value list or more than ``max_combinations`` combinations is a
:class:`GridError`. The size is checked from the lengths before anything is expanded, so an
absurd grid costs nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from strategies.base import Strategy
from strategies.params import Param, StrategyParamError, finite_number, show

MAX_VALUES_PER_PARAM = 10_000
# The accepted shapes of one parameter's values, quoted by every error about them.
LIST_SYNTAX = "a list of values such as [5, 10, 20]"
RANGE_SYNTAX = 'a range such as {"start": 5, "stop": 50, "step": 5} (stop included)'


class GridError(ValueError):
    """A grid that cannot be run; ``code`` is the API error code, ``errors`` maps fields."""

    def __init__(self, code: str, message: str, errors: Mapping[str, list[str]] | None = None):
        super().__init__(message)
        self.code = code
        self.errors = dict(errors or {})


@dataclass(frozen=True)
class ExpandedGrid:
    """The grid as value lists, and every valid combination as full validated parameters."""

    axes: dict[str, list[Any]]
    combinations: list[dict[str, Any]]
    skipped: int


def expand_grid(
    strategy: type[Strategy],
    grid: Any,
    fixed: Mapping[str, Any] | None,
    *,
    max_combinations: int,
) -> ExpandedGrid:
    """Validate ``grid`` against ``strategy``'s parameters and list the valid combinations."""
    if not isinstance(grid, Mapping) or not grid:
        raise GridError(
            "invalid_grid",
            "grid must be a non-empty object of parameter: values, each "
            f"{LIST_SYNTAX} or {RANGE_SYNTAX}",
        )
    declared = {param.name: param for param in strategy.params}
    fixed = dict(fixed or {})
    _check_fixed(declared, fixed)
    errors: dict[str, list[str]] = {}
    for name in grid:
        if name not in declared:
            errors[str(name)] = [f"{name!r} is not a parameter of {strategy.key}"]
        elif name in fixed:
            errors[str(name)] = [f"{name!r} is both fixed in params and swept in the grid"]
    if errors:
        raise GridError("invalid_grid", "The grid names unknown or fixed parameters.", errors)

    sizes = {name: _axis_size(declared[name], spec, errors) for name, spec in grid.items()}
    if errors:
        raise GridError("invalid_grid", "The grid has invalid values.", errors)
    total = math.prod(sizes.values())
    if total > max_combinations:
        raise GridError(
            "grid_too_large",
            f"The grid has {total} combinations; at most {max_combinations} are allowed.",
            {"grid": [f"{total} combinations > {max_combinations}"]},
        )
    axes = {name: _axis_values(declared[name], spec) for name, spec in grid.items()}
    combinations, skipped = _valid_combinations(strategy, axes, fixed)
    if not combinations:
        raise GridError(
            "invalid_grid",
            "No combination of the grid is valid for this strategy.",
            {"grid": [f"all {total} combinations break the strategy's rules"]},
        )
    return ExpandedGrid(axes=axes, combinations=combinations, skipped=skipped)


def _check_fixed(declared: Mapping[str, Param], fixed: Mapping[str, Any]) -> None:
    """Fixed parameters are checked on their own, so that a bad one is not reported as "every
    combination is invalid"."""
    errors: dict[str, list[str]] = {}
    for name, value in fixed.items():
        if name not in declared:
            errors[str(name)] = [f"{name!r} is not a parameter of this strategy"]
        elif not _accepts(declared[name], value):
            errors[name] = [f"expected {declared[name].expectation()}, got {show(value)}"]
    if errors:
        raise GridError("invalid_params", "The fixed parameters are invalid.", errors)


def _axis_size(param: Param, spec: Any, errors: dict[str, list[str]]) -> int:
    if isinstance(spec, list):
        if not spec:
            errors[param.name] = ["give at least one value"]
        elif len(spec) > MAX_VALUES_PER_PARAM:
            errors[param.name] = [f"at most {MAX_VALUES_PER_PARAM} values"]
        else:
            bad = [show(value) for value in spec if not _accepts(param, value)]
            if bad:
                errors[param.name] = [f"{', '.join(bad)}: expected {param.expectation()}"]
            elif len({show(value) for value in spec}) != len(spec):
                errors[param.name] = ["values must be distinct"]
        return max(len(spec), 1)
    if isinstance(spec, Mapping):
        try:
            return _range_size(param, spec)
        except ValueError as exc:
            errors[param.name] = [str(exc)]
            return 1
    errors[param.name] = [f"give {LIST_SYNTAX} or {RANGE_SYNTAX}; got {_brief(spec)}"]
    return 1


def _brief(value: Any, limit: int = 40) -> str:
    text = show(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _accepts(param: Param, value: Any) -> bool:
    try:
        param.clean(value)
    except ValueError:
        return False
    return True


def _range_size(param: Param, spec: Mapping[str, Any]) -> int:
    if param.kind not in ("int", "float"):
        raise ValueError(
            f"a range needs a number parameter; {param.name} is {param.kind}: give {LIST_SYNTAX}"
        )
    if set(spec) != {"start", "stop", "step"}:
        raise ValueError(f"a range is exactly {{start, stop, step}}: {RANGE_SYNTAX}")
    start, stop, step = (_range_number(param, spec[key], key) for key in ("start", "stop", "step"))
    if step <= 0:
        raise ValueError("step must be greater than 0")
    if stop < start:
        raise ValueError("stop must not be below start")
    size = int((stop - start) / step) + 1
    if size > MAX_VALUES_PER_PARAM:
        raise ValueError(f"the range has {size} values; at most {MAX_VALUES_PER_PARAM}")
    for bound in (start, stop):
        param.clean(int(bound) if param.kind == "int" else float(bound))
    return size


def _range_number(param: Param, value: Any, key: str) -> Decimal:
    if not isinstance(value, int | float) or not finite_number(value):
        raise ValueError(f"{key} must be a number")
    if param.kind == "int" and not float(value).is_integer():
        raise ValueError(f"{key} must be an integer for {param.name}")
    # Decimal steps: 0.1 + 0.1 + 0.1 must be 0.3, not 0.30000000000000004.
    return Decimal(str(value))


def _axis_values(param: Param, spec: Any) -> list[Any]:
    if isinstance(spec, list):
        return [param.clean(value) for value in spec]
    start, stop, step = (Decimal(str(spec[key])) for key in ("start", "stop", "step"))
    count = int((stop - start) / step) + 1
    values = (start + step * index for index in range(count))
    return [param.clean(int(v) if param.kind == "int" else float(v)) for v in values]


def _valid_combinations(
    strategy: type[Strategy], axes: dict[str, list[Any]], fixed: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], int]:
    valid, skipped = [], 0
    names = list(axes)
    for values in itertools.product(*axes.values()):
        try:
            valid.append(strategy.validate({**fixed, **dict(zip(names, values, strict=True))}))
        except StrategyParamError:
            skipped += 1
    return valid, skipped

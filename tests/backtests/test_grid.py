"""Sweep grids: lists and ranges expanded, the strategy's rules applied, the size capped."""

from __future__ import annotations

from typing import Any

import pytest

from backtests.grid import GridError, expand_grid
from strategies.registry import active

MA_CROSS = active().get("ma_cross")


def expand(grid: Any, fixed: dict[str, Any] | None = None, cap: int = 1000) -> Any:
    return expand_grid(MA_CROSS, grid, fixed, max_combinations=cap)


def grid_error(grid: Any, fixed: dict[str, Any] | None = None, cap: int = 1000) -> GridError:
    with pytest.raises(GridError) as caught:
        expand(grid, fixed, cap)
    return caught.value


def test_it_lists_the_cartesian_product_in_grid_order_with_full_params():
    grid = expand({"fast": [5, 10], "slow": [30, 50]})

    assert [(c["fast"], c["slow"]) for c in grid.combinations] == [
        (5, 30),
        (5, 50),
        (10, 30),
        (10, 50),
    ]
    assert grid.combinations[0] == {"fast": 5, "slow": 30, "ma": "sma", "allow_short": False}
    assert grid.skipped == 0


def test_it_expands_inclusive_ranges_without_float_drift():
    grid = expand({"fast": {"start": 5, "stop": 20, "step": 5}, "slow": [40]})

    assert grid.axes["fast"] == [5, 10, 15, 20]
    assert len(grid.combinations) == 4


def test_it_keeps_the_fixed_params_in_every_combination():
    grid = expand({"fast": [5, 10]}, fixed={"slow": 40, "ma": "ema"})

    assert {(c["slow"], c["ma"]) for c in grid.combinations} == {(40, "ema")}


def test_it_skips_the_combinations_the_strategy_rejects():
    grid = expand({"fast": [10, 30, 50], "slow": [20, 40]})

    assert [(c["fast"], c["slow"]) for c in grid.combinations] == [(10, 20), (10, 40), (30, 40)]
    assert grid.skipped == 3


def test_it_refuses_a_grid_where_no_combination_is_valid():
    error = grid_error({"fast": [50, 60], "slow": [20, 40]})

    assert error.code == "invalid_grid"
    assert "all 4 combinations" in error.errors["grid"][0]


def test_it_caps_the_size_before_expanding_anything():
    # 499 x 1998 combinations: refused from the lengths alone, nothing is validated one by one.
    error = grid_error(
        {
            "fast": {"start": 2, "stop": 500, "step": 1},
            "slow": {"start": 3, "stop": 2000, "step": 1},
        },
        cap=1000,
    )
    assert error.code == "grid_too_large"
    assert "997002 combinations" in str(error)

    error = grid_error({"fast": list(range(2, 40)), "slow": list(range(40, 80))}, cap=1000)
    assert error.code == "grid_too_large"
    assert "1520 combinations" in str(error)


@pytest.mark.parametrize(
    ("grid", "field", "fragment"),
    [
        ({"speed": [1]}, "speed", "not a parameter"),
        ({"fast": []}, "fast", "at least one value"),
        ({"fast": [5, 5]}, "fast", "distinct"),
        ({"fast": ["5"]}, "fast", "expected an integer"),
        ({"fast": [1]}, "fast", "expected an integer between 2 and 500"),
        ({"ma": ["sma", "wma"]}, "ma", "expected one of"),
        ({"fast": 5}, "fast", "list of values"),
        # the accepted shapes, in the error of a range written another way
        ({"fast": "5-15"}, "fast", 'such as [5, 10, 20] or a range such as {"start": 5'),
        ({"fast": {"start": 5, "stop": 10}}, "fast", "exactly {start, stop, step}: a range such"),
        ({"fast": {"start": 5, "stop": 10, "step": 0}}, "fast", "step must be greater"),
        ({"fast": {"start": 10, "stop": 5, "step": 1}}, "fast", "stop must not be below"),
        ({"fast": {"start": 5, "stop": 10, "step": 0.5}}, "fast", "must be an integer"),
        ({"fast": {"start": 1, "stop": 10, "step": 1}}, "fast", "between 2 and 500"),
        ({"ma": {"start": 1, "stop": 2, "step": 1}}, "ma", "needs a number parameter"),
        ({"fast": [5, 10**309]}, "fast", "an integer beyond ±1.8e308: expected an integer"),
        ({"fast": {"start": 5, "stop": 10**309, "step": 1}}, "fast", "stop must be a number"),
        ({"fast": {"start": 5, "stop": 10, "step": 10**309}}, "fast", "step must be a number"),
    ],
)
def test_it_names_the_field_of_a_malformed_axis(grid, field, fragment):
    error = grid_error(grid)

    assert error.code == "invalid_grid"
    assert fragment in " ".join(error.errors[field])


@pytest.mark.parametrize("grid", [None, [], {}, "fast"])
def test_it_refuses_a_grid_that_is_not_a_non_empty_object(grid):
    assert grid_error(grid).code == "invalid_grid"


def test_it_refuses_a_parameter_both_fixed_and_swept():
    error = grid_error({"fast": [5]}, fixed={"fast": 5})

    assert "both fixed" in error.errors["fast"][0]


def test_it_reports_a_bad_fixed_param_as_such():
    error = grid_error({"fast": [5]}, fixed={"ma": "wma", "colour": 1})

    assert error.code == "invalid_params"
    assert set(error.errors) == {"ma", "colour"}

"""The heat map's colour scale, centred on break even (pure Python)."""

from __future__ import annotations

import pytest

from backtests.heat_colours import colour_scale


def test_a_small_loss_is_red_even_when_every_other_cell_lost_more():
    # given a map where every combination lost, -2.89 % the least
    scale = colour_scale(
        "total_return", [-0.0289, -0.10, -0.20], initial_cash=10_000, lower_is_better=False
    )

    # then the least bad is still a loss, a light one
    assert scale.tone(-0.0289) == "loss"
    assert scale.strength(-0.0289) == pytest.approx(0.1445)
    assert scale.strength(-0.20) == 1.0


def test_gains_and_losses_share_one_reach_from_zero():
    scale = colour_scale("sharpe", [-0.5, 2.0, 0.0], initial_cash=1, lower_is_better=False)

    assert [scale.tone(v) for v in (-0.5, 2.0, 0.0)] == ["loss", "gain", "even"]
    assert [scale.strength(v) for v in (-0.5, 2.0, 0.0)] == [0.25, 1.0, 0.0]


@pytest.mark.parametrize(
    ("metric", "value", "tone", "lower_is_better"),
    [
        ("profit_factor", 0.9, "loss", False),  # below 1: lost more than it won
        ("profit_factor", 1.2, "gain", False),
        ("win_rate", 0.45, "loss", False),
        ("final_equity", 9_990.0, "loss", False),  # below the initial cash
        ("final_equity", 10_010.0, "gain", False),
        ("max_drawdown", -0.01, "loss", False),  # a drawdown is never a gain
        ("max_drawdown_duration", 3_600_000.0, "loss", True),
        ("max_drawdown_duration", 0.0, "even", True),
    ],
)
def test_each_metric_breaks_even_where_it_should(metric, value, tone, lower_is_better):
    scale = colour_scale(metric, [value], initial_cash=10_000, lower_is_better=lower_is_better)

    assert scale.tone(value) == tone


def test_a_map_of_one_even_value_has_no_strength():
    scale = colour_scale("total_return", [0.0], initial_cash=1, lower_is_better=False)

    assert (scale.tone(0.0), scale.strength(0.0)) == ("even", 0.0)

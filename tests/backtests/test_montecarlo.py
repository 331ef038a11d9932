"""The Monte Carlo of a backtest's trades (``backtests.montecarlo``), on hand-made trades whose
figures can be checked by hand. No database."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from backtests.montecarlo import (
    DEFAULT_RUNS,
    MAX_CELLS,
    MIN_RUNS,
    returns_on_equity,
    runs_for,
    trade_monte_carlo,
)


def test_a_trades_return_is_its_pnl_over_the_equity_it_was_opened_with():
    # 1,000 cash: +100 (on 1,000), -220 (on 1,100), +88 (on 880)
    returns = returns_on_equity([100.0, -220.0, 88.0], initial_cash=1000.0)
    assert returns.tolist() == pytest.approx([0.1, -0.2, 0.1])


def test_there_is_nothing_to_compound_after_the_equity_is_gone():
    assert returns_on_equity([-1000.0, 50.0], initial_cash=1000.0) is None


def test_the_original_order_gives_the_backtests_final_equity_and_its_closed_trade_drawdown():
    # given +10 %, -20 %, +10 % on 1,000: 1,100, 880, 968
    result = trade_monte_carlo([0.1, -0.2, 0.1], initial_cash=1000.0)

    # then
    assert result is not None
    assert result.original_final_equity == pytest.approx(968.0)
    assert result.original_max_drawdown == pytest.approx(880 / 1100 - 1)  # -20 %
    assert (result.runs, result.trades) == (DEFAULT_RUNS, 3)


def test_reshuffles_keep_the_final_equity_and_spread_the_drawdown_between_its_extremes():
    # given two losses and two gains of the same size
    returns = [0.1, 0.1, -0.1, -0.1]
    # every order's drawdown, by brute force: -19 % when the two losses come in a row (half the
    # orders), else -10.9 % or -10 %
    drawdowns = set()
    for order in itertools.permutations(returns):
        growth = np.cumprod(1 + np.array(order))
        peaks = np.maximum(np.maximum.accumulate(growth), 1.0)
        drawdowns.add(round(float((growth / peaks - 1).min()), 12))

    # when
    result = trade_monte_carlo(returns, initial_cash=1000.0)

    # then the final equity is the same in every reshuffle: compounding is a product
    final = 1000 * 1.1 * 1.1 * 0.9 * 0.9
    band = result.shuffled_final_equity
    assert (band.p5, band.p50, band.p95) == pytest.approx((final, final, final))
    # and the drawdown band lies within what the orders can give, the bad tail first
    low, high = min(drawdowns), max(drawdowns)
    band = result.shuffled_max_drawdown
    assert low - 1e-12 <= band.p5 <= band.p50 <= band.p95 <= high + 1e-12
    assert drawdowns == {-0.19, -0.109, -0.1}
    assert band.p5 == pytest.approx(-0.19)
    assert band.p95 > -0.19  # some reshuffles do part the losses


def test_resampling_with_replacement_spreads_the_final_equity_too():
    result = trade_monte_carlo([0.05, -0.03, 0.02, 0.01, -0.04], initial_cash=1000.0)
    band = result.resampled_final_equity
    assert band.p5 < result.original_final_equity < band.p95
    # the extremes: five times the worst trade, five times the best
    assert band.p5 >= 1000 * 0.96**5
    assert band.p95 <= 1000 * 1.05**5


def test_the_same_trades_give_the_same_figures_and_another_seed_others():
    returns = np.random.default_rng(3).normal(0.001, 0.02, 200)
    first = trade_monte_carlo(returns, initial_cash=10_000.0)
    assert trade_monte_carlo(returns, initial_cash=10_000.0) == first
    assert trade_monte_carlo(returns, initial_cash=10_000.0, seed=4) != first


@pytest.mark.parametrize("returns", [[], [0.1]])
def test_fewer_than_two_trades_have_no_monte_carlo(returns):
    assert trade_monte_carlo(returns, initial_cash=1000.0) is None


def test_long_lists_of_trades_get_fewer_runs_never_fewer_than_the_minimum():
    assert runs_for(300) == DEFAULT_RUNS
    assert runs_for(600) == MAX_CELLS // 600
    assert runs_for(1_000_000) == MIN_RUNS


def test_runs_made_in_several_batches_are_all_counted():
    # given more trades than one batch of DEFAULT_RUNS runs holds
    count = MAX_CELLS // 250 + 1
    returns = np.random.default_rng(5).normal(0.0, 0.01, count)

    # when
    result = trade_monte_carlo(returns, initial_cash=1000.0, runs=DEFAULT_RUNS)

    # then
    assert result.runs == DEFAULT_RUNS
    assert result.shuffled_final_equity.p5 == pytest.approx(result.original_final_equity)
    assert result.shuffled_max_drawdown.p5 <= result.shuffled_max_drawdown.p95 <= 0

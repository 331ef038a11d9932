"""Our backtest engine against two independent engines, vectorbt and backtesting.py.

The same run in all three: the shipped real BTC/USDT 5-minute candles (10,999), the registered
``ma_cross`` strategy (SMA 10/30, long only), all in, a 0.1 % fee on each side, no slippage, fills
at the next open, 10,000 initial cash. The peers are optional (``pip install -e '.[compare]'``);
each test skips cleanly when its peer is absent.

Where the engines differ by design, the test states why and asserts the difference is exactly
what that reason predicts:

- backtesting.py trades whole units only. ``FractionalBacktest`` makes the unit one satoshi
  (1e-8 BTC), so each entry buys ``floor(cash / (price * 1.001))`` satoshis and leaves under one
  satoshi's worth of cash uninvested. :func:`replay` recomputes our trades with that sizing rule
  and must land on backtesting.py's numbers; without it, on ours.
- vectorbt sizes exactly like us (``size=inf``: all the cash, fee included), so its trades and
  equity curve match ours to float rounding. Its Sharpe/Sortino/Calmar use a 365-day year (ours
  365.25) and a return series that also holds candle 0 (equity vs the initial cash); with those
  two changes our metric functions give its numbers.
- Neither peer closes a position still open at the end of the data; we close it at the last
  close and pay the exit fee, so their final equity is ours plus that one fee (backtesting.py
  also leaves the open trade out of its trade list).

docs/backtest-engine.md has the measured numbers.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests import metrics
from backtests.engine import BacktestResult, BacktestSettings, simulate
from strategies import registry

SAMPLE = Path(__file__).resolve().parents[2] / "markets" / "data" / "btc_usdt_5m.csv.gz"
CASH = 10_000.0
FEE = 0.001
SETTINGS = BacktestSettings(initial_cash=CASH, fee_rate=FEE, slippage_bps=0, position_size=1)
MA_CROSS = {"fast": 10, "slow": 30, "ma": "sma"}
SATOSHI = 1e-8
CENT = 0.01
# Float rounding only: ours sizes with a cumulative product, the peers and the replay with a loop.
ROUNDING = 1e-6  # dollars
# backtesting.py buys all in with its default size, one float epsilon below the full equity.
BT_FULL_EQUITY = 1 - sys.float_info.epsilon
# vectorbt's default year (settings.returns.year_freq); ours is 365.25 days.
VBT_YEAR_DAYS = 365.0


# --- the run in our engine -------------------------------------------------------------------


def load_candles() -> pd.DataFrame:
    return pd.read_csv(SAMPLE).rename(columns={"timestamp": "open_time"})


def ma_cross_target(candles: pd.DataFrame) -> np.ndarray:
    strategy = registry.active().create("ma_cross", MA_CROSS)
    return strategy.positions(candles).to_numpy()


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_candles()


@pytest.fixture(scope="module")
def target(candles: pd.DataFrame) -> np.ndarray:
    wanted = ma_cross_target(candles)
    # backtesting.py first asks the strategy after candle 1 (it needs two rows), so the target of
    # candle 0 would be lost there; the slow average is still warming up, so it is flat anyway.
    assert (wanted[: MA_CROSS["slow"] - 1] == 0).all()
    assert set(np.unique(wanted)) == {0, 1}  # long only
    return wanted


@pytest.fixture(scope="module")
def ours(candles: pd.DataFrame, target: np.ndarray) -> BacktestResult:
    result = simulate(candles, target, SETTINGS)
    assert len(result.trades) > 100  # enough trades for the comparison to mean something
    return result


def replay(
    entry_price: np.ndarray, exit_price: np.ndarray, *, unit: float | None = None
) -> tuple[np.ndarray, float]:
    """Quantities and final cash of all-in long trades at these prices, one trade at a time.

    ``unit=None`` sizes like our fill model: ``qty = cash / (entry * (1 + fee))``. With a unit it
    sizes like backtesting.py's ``FractionalBacktest``: prices are scaled to the unit, the
    quantity is the whole number of units that ``cash * BT_FULL_EQUITY`` pays for at the entry
    price plus commission, and the remainder stays in the cash.
    """
    cash = CASH
    quantities = []
    for entry, exit_ in zip(entry_price.tolist(), exit_price.tolist(), strict=True):
        if unit is None:
            qty = cash / (entry * (1 + FEE))
        else:
            scaled = entry * unit
            # backtesting.py's price per unit: adjusted_price + commission(size, price) / size
            per_unit = scaled + BT_FULL_EQUITY * scaled * FEE / BT_FULL_EQUITY
            qty = float(int(cash * BT_FULL_EQUITY // per_unit)) * unit
        cash += qty * (exit_ - entry) - qty * entry * FEE - qty * exit_ * FEE
        quantities.append(qty)
    return np.array(quantities), cash


def test_our_trades_match_a_trade_by_trade_replay_of_the_fill_model(ours: BacktestResult) -> None:
    # given our trades' fill prices
    trades = ours.trades

    # when a plain loop sizes them all in, fee included
    qty, final_cash = replay(trades["entry_price"].to_numpy(), trades["exit_price"].to_numpy())

    # then it buys what we bought and ends where our equity curve ends
    np.testing.assert_allclose(trades["qty"], qty, rtol=1e-12)
    assert ours.equity[-1] == pytest.approx(final_cash, abs=ROUNDING)
    assert ours.metrics["final_equity"] == pytest.approx(CASH + trades["pnl"].sum(), abs=ROUNDING)


# --- vectorbt --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vbt() -> ModuleType:
    return pytest.importorskip("vectorbt")


def candle_index(candles: pd.DataFrame) -> pd.DatetimeIndex:
    # Naive UTC: vectorbt turns a tz-aware index into an object array of Timestamps again and
    # again in .stats(), which takes seconds.
    return pd.DatetimeIndex(pd.to_datetime(candles["open_time"], unit="ms"))


def run_vectorbt(vbt: ModuleType, candles: pd.DataFrame, target: np.ndarray) -> Any:
    """Our target as vectorbt signals: the position held in candle ``j`` is ``target[j - 1]``,
    entered or left at candle ``j``'s open."""
    index = candle_index(candles)
    held = np.concatenate(([0], target[:-1]))
    column = {"index": index}
    return vbt.Portfolio.from_signals(
        pd.Series(candles["close"].to_numpy(), **column),
        entries=pd.Series(held > 0, **column),
        exits=pd.Series(held <= 0, **column),
        price=pd.Series(candles["open"].to_numpy(), **column),
        fees=FEE,
        size=np.inf,  # all the cash, the fee included
        init_cash=CASH,
        freq="5min",
    )


@pytest.fixture(scope="module")
def vbt_portfolio(vbt: ModuleType, candles: pd.DataFrame, target: np.ndarray) -> Any:
    return run_vectorbt(vbt, candles, target)


def assert_same_trades_as_vectorbt(ours: BacktestResult, portfolio: Any) -> None:
    theirs = portfolio.trades.records
    trades = ours.trades
    assert len(trades) == len(theirs)
    np.testing.assert_array_equal(trades["entry_bar"], theirs["entry_idx"])
    np.testing.assert_array_equal(trades["exit_bar"], theirs["exit_idx"])
    np.testing.assert_array_equal(trades["entry_price"], theirs["entry_price"])
    np.testing.assert_array_equal(trades["exit_price"], theirs["exit_price"])
    np.testing.assert_allclose(trades["qty"], theirs["size"], rtol=1e-12)
    np.testing.assert_allclose(trades["fee"], theirs["entry_fees"] + theirs["exit_fees"], rtol=1e-9)
    np.testing.assert_allclose(trades["pnl"], theirs["pnl"], rtol=1e-9, atol=ROUNDING)


def test_vectorbt_makes_the_same_trades_at_the_same_prices(
    ours: BacktestResult, vbt_portfolio: Any, candles: pd.DataFrame
) -> None:
    # given / when both engines ran the same signals (fixtures)
    trades = vbt_portfolio.trades.records

    # then every trade opens and closes in the same candle at the same price, same size and pnl
    assert_same_trades_as_vectorbt(ours, vbt_portfolio)
    times = candles["open_time"].to_numpy()
    np.testing.assert_array_equal(ours.trades["entry_time"], times[trades["entry_idx"]])
    np.testing.assert_array_equal(ours.trades["exit_time"], times[trades["exit_idx"]])
    assert (trades["status"] == 1).all()  # closed: the last signal exit is inside the data


def test_vectorbt_ends_with_the_same_equity_at_every_close(
    ours: BacktestResult, vbt_portfolio: Any
) -> None:
    # when vectorbt values the account at every close
    value = vbt_portfolio.value().to_numpy()

    # then the curve is ours, and the final equity is the same to far below a cent
    np.testing.assert_allclose(ours.equity, value, rtol=0, atol=ROUNDING)
    assert ours.metrics["final_equity"] == pytest.approx(vbt_portfolio.final_value(), abs=ROUNDING)


def test_vectorbt_stats_match_ours_where_the_definitions_match(
    ours: BacktestResult, vbt_portfolio: Any
) -> None:
    # when vectorbt computes its stats
    stats = vbt_portfolio.stats()
    mine = ours.metrics

    # then the plain ones are equal
    assert stats["Total Return [%]"] / 100 == pytest.approx(mine["total_return"], rel=1e-9)
    assert -stats["Max Drawdown [%]"] / 100 == pytest.approx(mine["max_drawdown"], rel=1e-9)
    assert stats["Max Drawdown Duration"] == pd.Timedelta(mine["max_drawdown_duration"], "ms")
    assert stats["Total Trades"] == stats["Total Closed Trades"] == mine["trade_count"]
    assert stats["Win Rate [%]"] / 100 == pytest.approx(mine["win_rate"], rel=1e-12)
    assert stats["Profit Factor"] == pytest.approx(mine["profit_factor"], rel=1e-9)
    assert stats["Expectancy"] == pytest.approx(mine["expectancy"], rel=1e-9)  # mean pnl, $
    assert stats["Total Fees Paid"] == pytest.approx(ours.trades["fee"].sum(), abs=ROUNDING)
    assert stats["Benchmark Return [%]"] / 100 == pytest.approx(mine["buy_and_hold_return"])


def test_vectorbt_ratios_differ_from_ours_only_by_its_year_and_its_first_return(
    ours: BacktestResult, vbt_portfolio: Any, candles: pd.DataFrame
) -> None:
    # given our metric functions with vectorbt's two conventions: a 365-day year, and a return
    # for candle 0 too (its equity against the initial cash)
    times = candles["open_time"].to_numpy()
    per_year = metrics.candles_per_year(times)
    assert per_year is not None
    vbt_per_year = per_year * VBT_YEAR_DAYS / 365.25
    returns = np.concatenate(([ours.equity[0] / CASH - 1], metrics.period_returns(ours.equity)))
    years = (times[-1] - times[0] + metrics.candle_spacing_ms(times)) / (VBT_YEAR_DAYS * 86_400e3)
    vbt_cagr = (ours.equity[-1] / CASH) ** (1 / years) - 1

    # when vectorbt computes its ratios
    stats = vbt_portfolio.stats()

    # then they are exactly ours under those conventions ...
    assert stats["Sharpe Ratio"] == pytest.approx(metrics.sharpe(returns, vbt_per_year), rel=1e-9)
    assert stats["Sortino Ratio"] == pytest.approx(metrics.sortino(returns, vbt_per_year), rel=1e-9)
    assert stats["Calmar Ratio"] == pytest.approx(
        metrics.calmar(vbt_cagr, ours.metrics["max_drawdown"]), rel=1e-9
    )
    # ... and those conventions move them by well under 1 %
    for name, key in (("Sharpe Ratio", "sharpe"), ("Sortino Ratio", "sortino")):
        assert stats[name] == pytest.approx(ours.metrics[key], rel=0.001)
    assert stats["Calmar Ratio"] == pytest.approx(ours.metrics["calmar"], rel=0.01)


@pytest.fixture(scope="module")
def open_at_the_end(candles: pd.DataFrame, target: np.ndarray) -> tuple[pd.DataFrame, Any]:
    """The candles (and target) cut where a long is held through the last candle."""
    held_through = np.flatnonzero((target[:-1] == 1) & (target[1:] == 1))
    end = int(held_through[held_through > len(target) // 2][0]) + 2
    return candles.iloc[:end].reset_index(drop=True), target[:end]


@pytest.fixture(scope="module")
def ours_at_the_end(
    open_at_the_end: tuple[pd.DataFrame, np.ndarray],
) -> tuple[pd.DataFrame, np.ndarray, BacktestResult, float]:
    """The cut candles and target, our run of them, and the exit fee we pay to close the long
    still open at the end."""
    cut, wanted = open_at_the_end
    result = simulate(cut, wanted, SETTINGS)
    last = result.trades.iloc[-1]
    assert last["exit_reason"] == "end"
    assert last["exit_price"] == cut["close"].iloc[-1]
    exit_fee = last["qty"] * last["exit_price"] * FEE
    assert exit_fee > CENT  # the difference is real money, so the checks on it have teeth
    return cut, wanted, result, exit_fee


def test_vectorbt_leaves_a_position_open_at_the_end_where_we_pay_its_exit_fee(
    vbt: ModuleType, ours_at_the_end: tuple[pd.DataFrame, np.ndarray, BacktestResult, float]
) -> None:
    # given the candles cut where a long is held through the last candle, and our run of them
    cut, wanted, result, exit_fee = ours_at_the_end

    # when vectorbt runs them
    portfolio = run_vectorbt(vbt, cut, wanted)

    # then we close it at the last close, paying the exit fee; vectorbt marks it at that close
    last = result.trades.iloc[-1]
    open_trade = portfolio.trades.records.iloc[-1]
    assert open_trade["status"] == 0  # open
    assert open_trade["exit_price"] == last["exit_price"]
    assert len(portfolio.trades.records) == len(result.trades)
    assert portfolio.final_value() == pytest.approx(result.equity[-1] + exit_fee, abs=ROUNDING)
    assert open_trade["pnl"] == pytest.approx(last["pnl"] + exit_fee, abs=ROUNDING)


def test_the_comparison_catches_a_fill_one_candle_late(
    candles: pd.DataFrame, target: np.ndarray, vbt_portfolio: Any
) -> None:
    # given our engine fed the signals one candle late (an off-by-one in the fill model)
    late = simulate(candles, np.concatenate(([0], target[:-1])), SETTINGS)

    # then the comparison with vectorbt fails
    with pytest.raises(AssertionError):
        assert_same_trades_as_vectorbt(late, vbt_portfolio)
    assert abs(late.equity[-1] - vbt_portfolio.final_value()) > 1.0


# --- backtesting.py --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backtesting_lib() -> ModuleType:
    return pytest.importorskip("backtesting.lib")


def run_backtesting(
    lib: ModuleType,
    candles: pd.DataFrame,
    target: np.ndarray,
    *,
    stop_loss: float | None = None,
    take_profit: float | None = None,
) -> pd.Series:
    """Our target in backtesting.py, satoshi units, next-open fills; returns its stats.

    The strategy buys all in when the target turns long and closes when it turns flat, like our
    engine (which, after a stop-loss or take-profit, waits for the target to change). Stops are
    prices in backtesting.py, set from the entry fill, the next candle's open: the ``NextOpen``
    column hands the strategy that price, scaled to satoshi units like the candles.
    """
    from backtesting import Strategy

    unit = SATOSHI
    data = pd.DataFrame(
        {
            "Open": candles["open"].to_numpy(),
            "High": candles["high"].to_numpy(),
            "Low": candles["low"].to_numpy(),
            "Close": candles["close"].to_numpy(),
            "Volume": candles["volume"].to_numpy(),
            "Target": target.astype(np.float64),
            "NextOpen": np.append(candles["open"].to_numpy()[1:], np.nan) * unit,
        },
        index=candle_index(candles),
    )

    class FollowTarget(Strategy):
        def init(self) -> None:
            pass

        def next(self) -> None:
            wanted, before = self.data.Target[-1], self.data.Target[-2]
            if wanted > 0 and before <= 0:
                fill = self.data.NextOpen[-1]
                self.buy(
                    sl=fill * (1 - stop_loss) if stop_loss else None,
                    tp=fill * (1 + take_profit) if take_profit else None,
                )
            elif wanted <= 0 and self.position:
                self.position.close()

    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setenv("TQDM_DISABLE", "1")
        warnings.simplefilter("ignore")  # "data index is not ..." style notices
        backtest = lib.FractionalBacktest(
            data,
            FollowTarget,
            cash=CASH,
            commission=FEE,
            trade_on_close=False,
            fractional_unit=unit,
        )
        return backtest.run()


@pytest.fixture(scope="module")
def bt_stats(backtesting_lib: ModuleType, candles: pd.DataFrame, target: np.ndarray) -> pd.Series:
    return run_backtesting(backtesting_lib, candles, target)


def assert_same_trades_as_backtesting(ours: BacktestResult, stats: pd.Series) -> None:
    """Same candles and prices; sizes within the satoshi rounding, and exactly the replay's."""
    theirs, trades = stats["_trades"], ours.trades
    assert len(trades) == len(theirs)
    np.testing.assert_array_equal(trades["entry_bar"], theirs["EntryBar"])
    np.testing.assert_array_equal(trades["exit_bar"], theirs["ExitBar"])
    # prices went through the satoshi scaling and back: equal to the last bit or two
    np.testing.assert_allclose(trades["entry_price"], theirs["EntryPrice"], rtol=1e-14)
    np.testing.assert_allclose(trades["exit_price"], theirs["ExitPrice"], rtol=1e-14)

    entry, exit_ = trades["entry_price"].to_numpy(), trades["exit_price"].to_numpy()
    satoshi_qty, _ = replay(entry, exit_, unit=SATOSHI)
    np.testing.assert_allclose(theirs["Size"], satoshi_qty, rtol=1e-12)
    # Each entry rounds down by under one satoshi; the cash it leaves over moves later sizes by a
    # small fraction of one more. The pnl moves by the size difference times the price change
    # and the fees: pnl = qty * (exit - entry) - qty * fee * (entry + exit).
    size_gap = np.abs(trades["qty"].to_numpy() - theirs["Size"].to_numpy())
    assert size_gap.max() < 2 * SATOSHI
    pnl_bound = size_gap * (np.abs(exit_ - entry) + FEE * (entry + exit_)) + ROUNDING
    assert (np.abs(trades["pnl"].to_numpy() - theirs["PnL"].to_numpy()) <= pnl_bound).all()


def test_backtesting_py_makes_the_same_trades_in_whole_satoshis(
    ours: BacktestResult, bt_stats: pd.Series, candles: pd.DataFrame
) -> None:
    # given / when both engines ran the same signals (fixtures)
    theirs = bt_stats["_trades"]

    # then the same candles and prices, sizes rounded down to a satoshi
    assert_same_trades_as_backtesting(ours, bt_stats)
    times = candle_index(candles)
    assert (theirs["EntryTime"].to_numpy() == times[ours.trades["entry_bar"]].to_numpy()).all()
    assert (theirs["ExitTime"].to_numpy() == times[ours.trades["exit_bar"]].to_numpy()).all()


def test_backtesting_py_final_equity_is_ours_with_satoshi_sizing(
    ours: BacktestResult, bt_stats: pd.Series
) -> None:
    # given our trades replayed in whole satoshis and in fractions
    entry = ours.trades["entry_price"].to_numpy()
    exit_ = ours.trades["exit_price"].to_numpy()
    _, satoshi_cash = replay(entry, exit_, unit=SATOSHI)
    _, fractional_cash = replay(entry, exit_)

    # when backtesting.py ends
    final = bt_stats["Equity Final [$]"]

    # then it lands on the satoshi replay; ours on the fractional one; the two differ by the
    # satoshi rounding alone, which is far below a cent
    assert final == pytest.approx(satoshi_cash, abs=ROUNDING)
    assert ours.metrics["final_equity"] == pytest.approx(fractional_cash, abs=ROUNDING)
    assert final - ours.metrics["final_equity"] == pytest.approx(
        satoshi_cash - fractional_cash, abs=2 * ROUNDING
    )
    assert final == pytest.approx(ours.metrics["final_equity"], abs=CENT)
    equity_curve = bt_stats["_equity_curve"]["Equity"].to_numpy()
    np.testing.assert_allclose(equity_curve, ours.equity, rtol=0, atol=CENT)


def test_backtesting_py_stats_match_ours_where_the_definitions_match(
    ours: BacktestResult, bt_stats: pd.Series
) -> None:
    mine, trades = ours.metrics, ours.trades
    assert bt_stats["# Trades"] == mine["trade_count"]
    assert bt_stats["Win Rate [%]"] / 100 == pytest.approx(mine["win_rate"], rel=1e-12)
    assert bt_stats["Return [%]"] / 100 == pytest.approx(mine["total_return"], abs=1e-8)
    assert bt_stats["Max. Drawdown [%]"] / 100 == pytest.approx(mine["max_drawdown"], abs=1e-8)
    assert bt_stats["Max. Drawdown Duration"] == pd.Timedelta(mine["max_drawdown_duration"], "ms")
    assert bt_stats["Buy & Hold Return [%]"] / 100 == pytest.approx(mine["buy_and_hold_return"])
    assert bt_stats["Commissions [$]"] == pytest.approx(trades["fee"].sum(), abs=CENT)
    # its "Expectancy [%]" is the mean trade return (pnl / entry notional): our avg_trade_return
    assert bt_stats["Expectancy [%]"] / 100 == pytest.approx(mine["avg_trade_return"], rel=1e-6)


def test_backtesting_py_stats_that_differ_by_definition_differ_exactly_so(
    ours: BacktestResult, bt_stats: pd.Series, candles: pd.DataFrame
) -> None:
    mine, trades = ours.metrics, ours.trades
    candle_count = len(candles)
    # Exposure: it counts a trade's exit candle as held (we do not: a signal exit fills at that
    # candle's open), so it adds one candle per trade.
    expected_exposure = mine["exposure"] + len(trades) / candle_count
    assert bt_stats["Exposure Time [%]"] / 100 == pytest.approx(expected_exposure, rel=1e-12)
    # CAGR: its years run from the first to the last open_time (ours add one candle spacing).
    times = candles["open_time"].to_numpy()
    years = (times[-1] - times[0]) / metrics.YEAR_MS
    expected_cagr = (bt_stats["Equity Final [$]"] / CASH) ** (1 / years) - 1
    assert bt_stats["CAGR [%]"] / 100 == pytest.approx(expected_cagr, rel=1e-9)
    assert bt_stats["CAGR [%]"] / 100 == pytest.approx(mine["cagr"], rel=0.01)
    # Profit factor: its is over trade returns (%), ours over pnl ($).
    profit_factor = metrics.profit_factor(trades["return"].to_numpy())
    assert bt_stats["Profit Factor"] == pytest.approx(profit_factor, rel=1e-6)
    # Its Sharpe, Sortino and Calmar use daily resampled equity and a geometric annual return:
    # different ratios altogether, not compared.


def test_backtesting_py_leaves_a_position_open_at_the_end_where_we_pay_its_exit_fee(
    backtesting_lib: ModuleType,
    ours_at_the_end: tuple[pd.DataFrame, np.ndarray, BacktestResult, float],
) -> None:
    # given the candles cut where a long is held through the last candle, and our run of them
    cut, wanted, result, exit_fee = ours_at_the_end

    # when backtesting.py runs them
    stats = run_backtesting(backtesting_lib, cut, wanted)

    # then it lists only the closed trades, the same as ours before the end, and its final
    # equity (marked at the last close) is ours plus the exit fee, to the cent
    assert stats["# Trades"] == len(result.trades) - 1
    closed = result.trades.iloc[:-1]
    np.testing.assert_array_equal(stats["_trades"]["EntryBar"], closed["entry_bar"])
    np.testing.assert_array_equal(stats["_trades"]["ExitBar"], closed["exit_bar"])
    final = stats["Equity Final [$]"]
    assert final == pytest.approx(result.equity[-1] + exit_fee, abs=CENT)


def with_gaps(candles: pd.DataFrame) -> pd.DataFrame:
    """The candles with every open moved off the previous close (seeded, sd 0.05 %, on the 0.1
    tick) and high/low widened to hold it, so that some stops and take-profits are gapped through.

    The gaps stay well inside the stop distances tested: backtesting.py rejects an order whose
    stop lies beyond the current close, and the stop here comes from the next open.
    """
    rng = np.random.default_rng(7)
    previous_close = np.concatenate(([candles["open"].iloc[0]], candles["close"].to_numpy()[:-1]))
    moved = candles.copy()
    moved["open"] = np.round(previous_close * np.exp(rng.normal(0, 0.0005, len(candles))), 1)
    moved["high"] = np.maximum(moved[["open", "close"]].max(axis=1), candles["high"])
    moved["low"] = np.minimum(moved[["open", "close"]].min(axis=1), candles["low"])
    return moved


@pytest.fixture(scope="module")
def markets(candles: pd.DataFrame, target: np.ndarray) -> dict[str, tuple[pd.DataFrame, Any]]:
    gapped = with_gaps(candles)
    return {"real": (candles, target), "gapped": (gapped, ma_cross_target(gapped))}


@pytest.mark.parametrize("market", ["real", "gapped"])
@pytest.mark.parametrize(
    ("stop_loss", "take_profit"),
    [(0.005, 0.01), (0.002, 0.004), (0.003, None), (None, 0.003)],
)
def test_backtesting_py_agrees_on_stop_loss_and_take_profit_exits(
    backtesting_lib: ModuleType,
    markets: dict[str, tuple[pd.DataFrame, np.ndarray]],
    market: str,
    stop_loss: float | None,
    take_profit: float | None,
) -> None:
    # given levels from the entry fill, checked from the entry candle on (fill model rule 6)
    candles, target = markets[market]
    settings = BacktestSettings(
        initial_cash=CASH, fee_rate=FEE, stop_loss=stop_loss, take_profit=take_profit
    )

    # when both engines run them
    result = simulate(candles, target, settings)
    stats = run_backtesting(
        backtesting_lib, candles, target, stop_loss=stop_loss, take_profit=take_profit
    )

    # then the same exits at the same prices, and the same final equity to the cent
    trades = result.trades
    at_level = trades[trades["exit_reason"].isin(["stop_loss", "take_profit"])]
    assert len(at_level) > 10
    assert (at_level["exit_bar"] == at_level["entry_bar"]).any()  # hit in the entry candle
    if market == "gapped":  # some levels were gapped through and filled at the open
        opens = candles["open"].to_numpy()[at_level["exit_bar"]]
        assert (at_level["exit_price"].to_numpy() == opens).any()
    assert_same_trades_as_backtesting(result, stats)
    assert stats["Equity Final [$]"] == pytest.approx(result.metrics["final_equity"], abs=CENT)

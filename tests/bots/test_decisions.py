"""The pure order decision (``bots.decisions.decide``) on Bitget's BTC/USDT spot rules from the
shipped market snapshot: amount step 0.000001 BTC, minimum cost 1 USDT, taker fee 0.2 %.
No database, no exchange, no clock."""

from __future__ import annotations

import dataclasses
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest

from bots.decisions import (
    Decision,
    OpenTrigger,
    Place,
    RiskSettings,
    Skip,
    TickInputs,
    Trigger,
    decide,
    protection,
    round_down,
)
from markets.exchanges.markets import shipped_catalog

RULES = shipped_catalog("bitget").rules("BTC/USDT")
STEP = Decimal("0.000001")
ASK = Decimal("20010.00")
BID = Decimal("19990.00")


def inputs(**changes: Any) -> TickInputs:
    """A flat bot with 10,000 USDT free, a +1 signal and all-in fraction sizing."""
    risk = changes.pop("risk", RiskSettings(order_size_kind="fraction", order_size=Decimal(1)))
    fields: dict[str, Any] = {
        "target": 1, "position_qty": Decimal(0), "entry_price": None, "open_order_ids": (),
        "risk": risk, "rules": RULES, "free_quote": Decimal(10_000), "ask": ASK, "bid": BID,
        "high": Decimal(20_100), "low": Decimal(19_900), "risk_exit_target": None,
    }  # fmt: skip
    fields.update(changes)
    return TickInputs(**fields)


def holding(qty: str = "0.4", entry: str = "20000", **changes: Any) -> TickInputs:
    return inputs(position_qty=Decimal(qty), entry_price=Decimal(entry), **changes)


def risk(**fields: Any) -> RiskSettings:
    return RiskSettings(**{"order_size_kind": "fraction", "order_size": Decimal(1), **fields})


# --- the rules the decision relies on -----------------------------------------------------------


def test_the_shipped_rules_are_the_ones_these_tests_assume() -> None:
    assert (RULES.amount_step, RULES.min_cost, RULES.taker_fee) == (
        STEP, Decimal(1), Decimal("0.002"),
    )  # fmt: skip


# --- entering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", ["1", "0.5", "0.123"])
def test_flat_with_a_long_signal_buys_the_fraction_of_free_quote_net_of_the_fee(
    fraction: str,
) -> None:
    f = Decimal(fraction)
    decision = decide(inputs(risk=risk(order_size=f)))
    exact = Decimal(10_000) * f / (ASK * Decimal("1.002"))
    expected = exact.quantize(STEP, rounding=ROUND_DOWN)
    assert decision.place == Place("buy", expected, "signal")
    assert decision.skip is None
    # rounded DOWN to the step: never more than the exact size, less by under one step
    assert expected <= exact < expected + STEP
    # and payable, fee included
    assert expected * ASK * Decimal("1.002") <= Decimal(10_000) * f


def test_sizing_rounds_down_even_when_the_next_step_is_a_hair_away() -> None:
    # free quote that buys 0.4999999... BTC: rounding to nearest would give 0.5 and overspend
    unit = ASK * Decimal("1.002")
    free = unit * Decimal("0.5") - Decimal("0.000001")
    decision = decide(inputs(free_quote=free))
    assert decision.place is not None
    assert decision.place.qty == Decimal("0.499999")


def test_quote_sizing_buys_that_amount_of_quote_at_the_ask() -> None:
    decision = decide(inputs(risk=risk(order_size_kind="quote", order_size=Decimal(250))))
    assert decision.place == Place("buy", round_down(Decimal(250) / ASK, STEP), "signal")
    assert decision.place.qty == Decimal("0.012493")


def test_max_position_caps_the_entry_at_its_value_in_quote() -> None:
    decision = decide(inputs(risk=risk(max_position=Decimal(1000))))
    assert decision.place == Place("buy", round_down(Decimal(1000) / ASK, STEP), "signal")
    assert decision.place.qty * ASK <= Decimal(1000)


def test_max_position_above_the_free_balance_changes_nothing() -> None:
    capped = decide(inputs(risk=risk(max_position=Decimal(1_000_000))))
    assert capped == decide(inputs())


def test_an_entry_below_the_minimum_cost_is_skipped_with_the_reason() -> None:
    decision = decide(inputs(free_quote=Decimal("0.5")))
    assert decision.place is None
    assert decision.skip is not None
    assert decision.skip.kind == "below_minimum"
    assert "minimum cost of 1 USDT" in decision.skip.message
    assert decision.action == "skip"


def test_an_amount_that_rounds_to_zero_is_below_the_minimum() -> None:
    decision = decide(inputs(free_quote=Decimal("0.01")))
    assert decision.skip is not None
    assert decision.skip.kind == "below_minimum"
    assert "rounds to zero" in decision.skip.message


def test_a_minimum_amount_is_honoured_too() -> None:
    rules = dataclasses.replace(RULES, min_amount=Decimal("0.01"))
    decision = decide(inputs(rules=rules, free_quote=Decimal(150)))  # ~0.0075 BTC
    assert decision.skip is not None
    assert decision.skip.kind == "below_minimum"
    assert "minimum amount of 0.01 BTC" in decision.skip.message


def test_a_quote_order_larger_than_the_free_balance_is_skipped_for_funds() -> None:
    decision = decide(
        inputs(free_quote=Decimal(100), risk=risk(order_size_kind="quote", order_size=Decimal(500)))
    )
    assert decision.place is None
    assert decision.skip == Skip(
        "insufficient_funds", "an order of 500 USDT needs more than the 100 USDT free"
    )


def test_the_refusal_names_the_amounts_as_a_trader_wrote_them() -> None:
    # order_size comes from the database with its 12 decimal places
    stored = risk(order_size_kind="quote", order_size=Decimal("100.000000000000"))
    decision = decide(inputs(free_quote=Decimal("50.500000000000"), risk=stored))
    assert decision.skip is not None
    assert decision.skip.message == "an order of 100 USDT needs more than the 50.5 USDT free"


def test_a_quote_order_that_fits_only_without_the_fee_is_skipped_for_funds() -> None:
    size = Decimal(100)
    decision = decide(
        inputs(free_quote=size, risk=risk(order_size_kind="quote", order_size=size))
    )  # 100 USDT + 0.2 % fee > 100 USDT
    assert decision.skip is not None
    assert decision.skip.kind == "insufficient_funds"


def test_a_flat_bot_without_a_long_signal_does_nothing() -> None:
    for target in (0, -1):
        assert decide(inputs(target=target)) == Decision()


# --- exiting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [0, -1])
def test_a_dropped_signal_sells_the_whole_position(target: int) -> None:
    decision = decide(holding("0.4000009", target=target))
    assert decision.place == Place("sell", Decimal("0.400000"), "signal")  # down to the step
    assert decision.risk_exit_target is None


def test_a_held_position_with_a_long_signal_is_kept() -> None:
    decision = decide(holding())
    assert decision.place is None
    assert decision.skip is None
    assert decision.action == "hold"


def test_a_low_at_the_stop_level_exits_with_stop_loss() -> None:
    # entry 20000, stop 2 %: the level is 19600, touched exactly
    decision = decide(holding(low=Decimal(19_600), risk=risk(stop_loss_pct=Decimal(2))))
    assert decision.place == Place("sell", Decimal("0.4"), "stop_loss")
    assert decision.risk_exit_target == 1


def test_a_low_above_the_stop_level_keeps_the_position() -> None:
    decision = decide(holding(low=Decimal("19600.01"), risk=risk(stop_loss_pct=Decimal(2))))
    assert decision.place is None


def test_a_high_at_the_take_profit_level_exits_with_take_profit() -> None:
    # entry 20000, take 5 %: the level is 21000
    decision = decide(holding(high=Decimal(21_000), risk=risk(take_profit_pct=Decimal(5))))
    assert decision.place == Place("sell", Decimal("0.4"), "take_profit")
    assert decision.risk_exit_target == 1
    below = decide(holding(high=Decimal("20999.99"), risk=risk(take_profit_pct=Decimal(5))))
    assert below.place is None


def test_the_stop_wins_when_a_candle_touched_both_levels() -> None:
    both = risk(stop_loss_pct=Decimal(2), take_profit_pct=Decimal(5))
    decision = decide(holding(low=Decimal(19_000), high=Decimal(22_000), risk=both))
    assert decision.place == Place("sell", Decimal("0.4"), "stop_loss")


def test_a_risk_exit_while_the_signal_is_already_flat_remembers_the_flat_signal() -> None:
    decision = decide(holding(target=0, low=Decimal(19_000), risk=risk(stop_loss_pct=Decimal(2))))
    assert decision.place == Place("sell", Decimal("0.4"), "stop_loss")
    assert decision.risk_exit_target == 0


# --- stop-loss and take-profit as trigger orders on the exchange ---------------------------------

BOTH = risk(stop_loss_pct=Decimal("2.5"), take_profit_pct=Decimal("5.5"))
# entry 20000.01: stop 19500.00975 rounded DOWN to 19500.00, take 21100.01055 rounded UP to 21100.02
STOP = Trigger("stop_loss", "sell", Decimal("0.4"), Decimal("19500.00"))
TAKE = Trigger("take_profit", "sell", Decimal("0.4"), Decimal("21100.02"))


def test_a_held_position_asks_for_its_stop_and_take_profit_from_the_entry_price() -> None:
    decision = decide(holding(entry="20000.01", risk=BOTH))
    assert decision.triggers == (STOP, TAKE)
    assert decision.place is None
    assert decision.cancels == ()
    assert decision.action == "protect"
    assert not decision.is_hold
    assert protection(Decimal("0.4"), Decimal("20000.01"), BOTH, RULES) == (STOP, TAKE)


def test_triggers_already_open_are_kept_and_the_decision_holds() -> None:
    open_ = (OpenTrigger("tb1-1-sl", STOP), OpenTrigger("tb1-1-tp", TAKE))
    decision = decide(
        holding(entry="20000.01", risk=BOTH, open_order_ids=("tb1-1-sl", "tb1-1-tp"),
                open_triggers=open_)
    )  # fmt: skip
    assert decision == Decision()
    assert decision.is_hold


def test_a_trigger_that_no_longer_fits_is_cancelled_and_replaced_other_orders_cancelled() -> None:
    stale = OpenTrigger("tb1-1-sl", dataclasses.replace(STOP, qty=Decimal("0.5")))
    decision = decide(
        holding(entry="20000.01", risk=BOTH, open_order_ids=("tb1-1-sl", "tb1-2-buy"),
                open_triggers=(stale,))
    )  # fmt: skip
    assert decision.cancels == ("tb1-1-sl", "tb1-2-buy")
    assert decision.triggers == (STOP, TAKE)


def test_a_level_with_an_open_trigger_is_left_to_the_exchange() -> None:
    # the closed candle went through the stop: the exchange's trigger fills it, not a market sell
    guarded = holding(
        entry="20000.01", risk=BOTH, low=Decimal(19_000), open_order_ids=("tb1-1-sl",),
        open_triggers=(OpenTrigger("tb1-1-sl", STOP),),
    )  # fmt: skip
    assert decide(guarded).place is None
    # the take-profit, which has no trigger open, is checked on the candle as before
    both = dataclasses.replace(guarded, high=Decimal(22_000), low=Decimal(19_900))
    assert decide(both).place == Place("sell", Decimal("0.4"), "take_profit")


def test_a_signal_exit_cancels_both_triggers_first() -> None:
    ids = ("tb1-1-sl", "tb1-1-tp")
    open_ = (OpenTrigger("tb1-1-sl", STOP), OpenTrigger("tb1-1-tp", TAKE))
    decision = decide(
        holding(entry="20000.01", target=0, risk=BOTH, open_order_ids=ids, open_triggers=open_)
    )
    assert decision.cancels == ids
    assert decision.place == Place("sell", Decimal("0.4"), "signal")


def test_after_a_trigger_filled_the_other_is_cancelled_and_the_bot_waits_for_a_new_signal() -> None:
    decision = decide(
        inputs(target=1, risk=BOTH, open_order_ids=("tb1-1-tp",),
               open_triggers=(OpenTrigger("tb1-1-tp", TAKE),), trigger_exit="stop_loss")
    )  # fmt: skip
    assert decision.cancels == ("tb1-1-tp",)
    assert decision.place is None
    assert decision.risk_exit_target == 1


def test_a_short_position_gets_buy_triggers_the_other_way_round() -> None:
    # entry 20000.01: stop 20500.01025 rounded UP to 20500.02, take 18900.00945 DOWN to 18900.00
    assert protection(Decimal("0.4"), Decimal("20000.01"), BOTH, RULES, side=-1) == (
        Trigger("stop_loss", "buy", Decimal("0.4"), Decimal("20500.02")),
        Trigger("take_profit", "buy", Decimal("0.4"), Decimal("18900.00")),
    )


def test_no_trigger_for_a_level_not_set_or_under_the_minimums() -> None:
    assert protection(Decimal("0.4"), Decimal(20_000), risk(), RULES) == ()
    assert protection(Decimal("0.00004"), Decimal(20_000), BOTH, RULES) == ()  # 0.78 USDT
    assert protection(Decimal("0.4"), None, BOTH, RULES) == ()


# --- after a risk exit --------------------------------------------------------------------------


def test_after_a_risk_exit_the_bot_stays_flat_while_the_signal_is_unchanged() -> None:
    decision = decide(inputs(target=1, risk_exit_target=1))
    assert decision.place is None
    assert decision.skip is None
    assert decision.risk_exit_target == 1  # still waiting for the signal to change


def test_a_changed_signal_clears_the_wait_and_the_next_long_signal_enters() -> None:
    cleared = decide(inputs(target=0, risk_exit_target=1))
    assert cleared.place is None
    assert cleared.risk_exit_target is None
    entered = decide(inputs(target=1, risk_exit_target=cleared.risk_exit_target))
    assert entered.place is not None
    assert entered.place.side == "buy"


def test_a_flat_signal_left_by_a_risk_exit_enters_as_soon_as_it_turns_long() -> None:
    decision = decide(inputs(target=1, risk_exit_target=0))
    assert decision.place is not None
    assert decision.place.side == "buy"
    assert decision.risk_exit_target is None


# --- dust and open orders -----------------------------------------------------------------------


def test_a_dust_position_counts_as_flat_and_the_bot_enters() -> None:
    # 0.00003 BTC at ~20000 is 0.6 USDT: below the 1 USDT minimum, it cannot be sold
    dust = holding("0.00003", target=1, free_quote=Decimal(5000))
    decision = decide(dust)
    assert decision.place is not None
    assert decision.place.side == "buy"
    assert decision.place.qty == round_down(Decimal(5000) / (ASK * Decimal("1.002")), STEP)


def test_a_dust_position_is_not_sold_on_a_flat_signal() -> None:
    assert decide(holding("0.00003", target=0)) == Decision()


def test_dust_is_not_stopped_out() -> None:
    dust = holding("0.00003", target=0, low=Decimal(1), risk=risk(stop_loss_pct=Decimal(2)))
    assert decide(dust).place is None


def test_open_orders_are_cancelled_whatever_else_happens() -> None:
    ids = ("tb1-100-buy", "tb1-stop3")
    assert decide(inputs(open_order_ids=ids)).cancels == ids
    assert decide(inputs(open_order_ids=ids, target=0)) == Decision(ids)
    assert decide(inputs(open_order_ids=ids, target=0)).action == "cancel"
    assert decide(holding(open_order_ids=ids, target=0)).cancels == ids
    assert decide(inputs(open_order_ids=ids, free_quote=Decimal("0.5"))).cancels == ids


def test_the_same_inputs_give_the_same_decision() -> None:
    assert decide(inputs()) == decide(inputs())

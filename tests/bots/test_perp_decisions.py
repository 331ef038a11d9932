"""The pure perp decision (``bots.perp_decisions.decide_perp``) on Bitget's BTC/USDT:USDT rules
from the shipped market snapshot: amount step 0.0001 BTC, price step 0.1, minimum cost 5 USDT,
taker fee 0.06 %. No database, no exchange, no clock."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bots.decisions import (
    Decision,
    OpenTrigger,
    PerpTerms,
    Place,
    RiskSettings,
    Skip,
    TickInputs,
    Trigger,
)
from bots.perp_decisions import decide_perp, free_after_close
from markets import perp
from markets.exchanges.markets import shipped_catalog

RULES = shipped_catalog("bitget").rules("BTC/USDT:USDT")
ASK, BID = Decimal("20010.0"), Decimal("19990.0")
FEE = Decimal("0.0006")


def inputs(**changes: Any) -> TickInputs:
    """A flat 10x bot with 10,000 USDT free, a -1 signal and all-in fraction sizing."""
    terms = changes.pop("terms", PerpTerms(leverage=10))
    fields: dict[str, Any] = {
        "target": -1, "position_qty": Decimal(0), "entry_price": None, "open_order_ids": (),
        "risk": RiskSettings(order_size_kind="fraction", order_size=Decimal(1)),
        "rules": RULES, "free_quote": Decimal(10_000), "ask": ASK, "bid": BID,
        "high": Decimal(20_100), "low": Decimal(19_900), "perp": terms,
    }  # fmt: skip
    fields.update(changes)
    return TickInputs(**fields)


def holding(side: int, qty: str = "4", entry: str = "20000", **changes: Any) -> TickInputs:
    margin = Decimal(qty) * Decimal(entry) / 10
    return inputs(
        position_qty=Decimal(qty), entry_price=Decimal(entry), position_side=side,
        terms=PerpTerms(leverage=10, margin=margin), **changes,
    )  # fmt: skip


def test_the_shipped_rules_are_the_ones_these_tests_assume() -> None:
    assert (RULES.type, RULES.amount_step, RULES.min_cost, RULES.taker_fee) == (
        "swap", Decimal("0.0001"), Decimal(5), FEE,
    )  # fmt: skip


def test_flat_a_short_signal_opens_a_short_sized_with_the_leverage() -> None:
    decision = decide_perp(inputs())
    # margin + fee = the free balance: qty = 10000 / (19990 * (1/10 + 0.0006)) = 4.97262..
    assert decision == Decision(place=Place("sell", Decimal("4.9726"), "signal"))
    assert decision.place is not None
    qty = decision.place.qty
    assert qty * BID * (Decimal("0.1") + FEE) <= 10_000


def test_flat_a_long_signal_opens_a_long_at_the_ask_and_zero_does_nothing() -> None:
    assert decide_perp(inputs(target=1)).place == Place("buy", Decimal("4.9676"), "signal")
    assert decide_perp(inputs(target=0)) == Decision()


def test_at_leverage_one_the_size_is_the_spot_rule() -> None:
    decision = decide_perp(inputs(target=1, terms=PerpTerms(leverage=1)))
    assert decision.place is not None
    assert decision.place.qty == Decimal(
        "0.4994"
    )  # 10000 / (20010 * 1.0006) = 0.49945.., rounded down


def test_a_quote_amount_is_the_margin_and_max_position_caps_the_notional() -> None:
    quote = RiskSettings(order_size_kind="quote", order_size=Decimal(1000))
    assert decide_perp(inputs(risk=quote)).place == Place("sell", Decimal("0.5002"), "signal")
    capped = RiskSettings(order_size_kind="quote", order_size=Decimal(1000),
                          max_position=Decimal(5000))  # fmt: skip
    assert decide_perp(inputs(risk=capped)).place == Place("sell", Decimal("0.2501"), "signal")


def test_a_margin_above_the_free_balance_is_a_skip() -> None:
    quote = RiskSettings(order_size_kind="quote", order_size=Decimal(2000))
    decision = decide_perp(inputs(risk=quote, free_quote=Decimal(1000)))
    assert decision.skip is not None
    assert decision.skip.kind == "insufficient_funds"
    assert decision.place is None


def test_held_long_and_a_zero_target_closes_it_reduce_only() -> None:
    decision = decide_perp(holding(1, target=0))
    assert decision == Decision(place=Place("sell", Decimal(4), "signal", reduce_only=True))


def test_held_short_and_a_zero_target_closes_it_with_a_reduce_only_buy() -> None:
    decision = decide_perp(holding(-1, target=0))
    assert decision.place == Place("buy", Decimal(4), "signal", reduce_only=True)


def test_a_flip_is_two_orders_the_open_sized_on_what_the_close_frees() -> None:
    # given: a 10x long of 4 BTC from 20000 (8000 USDT of margin), 2000 free, the signal -1
    decision = decide_perp(holding(1, target=-1, free_quote=Decimal(2000)))
    # then: a reduce-only sell of the 4, then a sell that opens the short
    assert decision.place == Place("sell", Decimal(4), "signal", reduce_only=True)
    assert decision.then is not None
    assert (decision.then.side, decision.then.reduce_only) == ("sell", False)
    # free after: 2000 + 8000 + (19990 - 20000) * 4 - 4 * 19990 * 0.0006 = 9912.0240
    free = free_after_close(holding(1, free_quote=Decimal(2000)), Decimal(4))
    assert free == Decimal("9912.0240")
    expected = free / (BID * (Decimal("0.1") + FEE))
    assert decision.then.qty == expected.quantize(Decimal("0.0001"), rounding="ROUND_DOWN")


def test_held_on_the_signals_side_holds() -> None:
    assert decide_perp(holding(-1, target=-1)).is_hold
    assert decide_perp(holding(1, target=1)).is_hold


def test_an_entry_liquidated_within_the_buffer_is_a_skip() -> None:
    # a 50x short at 19990 is liquidated at 19990 * 1.02 / 1.005 = 20288.3: 1.49 % away
    terms = PerpTerms(leverage=50, liquidation_buffer_pct=Decimal(2))
    decision = decide_perp(inputs(terms=terms))
    assert decision.place is None
    assert decision.skip is not None
    assert decision.skip.kind == "liquidation_buffer"
    assert "1.49%" in decision.skip.message
    liquidation = perp.liquidation_price("short", BID, Decimal(1), 50, perp.DEFAULT_TIERS)
    assert abs(liquidation - BID) / BID < Decimal("0.02")
    # a wider margin passes it
    roomy = PerpTerms(leverage=10, liquidation_buffer_pct=Decimal(2))
    assert decide_perp(inputs(terms=roomy)).place is not None


def test_a_long_at_leverage_one_is_never_liquidated_so_any_buffer_passes() -> None:
    terms = PerpTerms(leverage=1, liquidation_buffer_pct=Decimal(99))
    assert decide_perp(inputs(target=1, terms=terms)).place is not None


def test_a_short_gets_buy_triggers_above_and_below_and_keeps_them() -> None:
    risk = RiskSettings(order_size_kind="fraction", order_size=Decimal(1),
                        stop_loss_pct=Decimal(2), take_profit_pct=Decimal(3))  # fmt: skip
    decision = decide_perp(holding(-1, target=-1, risk=risk))
    assert decision.triggers == (
        Trigger("stop_loss", "buy", Decimal(4), Decimal("20400.0")),
        Trigger("take_profit", "buy", Decimal(4), Decimal("19400.0")),
    )
    resting = tuple(OpenTrigger(f"t{i}", t) for i, t in enumerate(decision.triggers))
    kept = decide_perp(holding(-1, target=-1, risk=risk, open_triggers=resting,
                               open_order_ids=("t0", "t1")))  # fmt: skip
    assert kept.is_hold


@pytest.mark.parametrize("reason", ["stop_loss", "take_profit", "liquidation"])
def test_after_a_risk_exit_it_stays_flat_on_that_side_and_enters_the_other(reason: str) -> None:
    # given: the short was closed by a trigger or liquidated since the last tick
    after = {"position_side": -1, "trigger_exit": reason}
    # then: no short again on the same signal, and it remembers the side
    same = decide_perp(inputs(target=-1, **after))
    assert (same.place, same.risk_exit_target) == (None, -1)
    assert decide_perp(inputs(target=-1, risk_exit_target=-1)).place is None
    # a long signal enters at once (the engine's run of -1 has ended)
    other = decide_perp(inputs(target=1, **after))
    assert other.place is not None
    assert other.place.side == "buy"
    assert other.risk_exit_target is None


def test_the_fallback_stop_of_a_short_exits_with_a_reduce_only_buy() -> None:
    # a stop at 2 % with no trigger resting: a high at 20400 reaches it
    risk = RiskSettings(order_size_kind="fraction", order_size=Decimal(1),
                        stop_loss_pct=Decimal(2))  # fmt: skip
    decision = decide_perp(holding(-1, target=-1, risk=risk, high=Decimal(20_400)))
    assert decision.place == Place("buy", Decimal(4), "stop_loss", reduce_only=True)
    assert decision.risk_exit_target == -1
    assert isinstance(decide_perp(holding(-1, target=-1, risk=risk)).place, type(None))


def test_an_entry_under_the_minimum_cost_is_a_skip() -> None:
    decision = decide_perp(inputs(free_quote=Decimal("0.4")))
    assert isinstance(decision.skip, Skip)
    assert decision.skip.kind == "below_minimum"

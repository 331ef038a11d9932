"""The perp swap arithmetic (markets/perp.py), checked against sums done by hand from first
principles: margin = notional / leverage, PnL = side * (mark - entry) * qty, liquidation where
margin + PnL = maintenance margin, funding = -side * qty * mark * rate. Pure: no database."""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest

from markets.perp import (
    DEFAULT_TIERS,
    MaintenanceTier,
    PerpRuleError,
    check_leverage,
    funding_payment,
    initial_margin,
    is_liquidated,
    liquidation_price,
    maintenance_margin,
    round_liquidation_price,
    tier_for,
    unrealized_pnl,
)

# Tiers shaped like Bitget's BTCUSDT ones (the rates and caps are made up, the shape is theirs).
TIERS = (
    MaintenanceTier(D(0), D(50_000), D("0.004"), 125),
    MaintenanceTier(D(50_000), D(250_000), D("0.005"), 100),
    MaintenanceTier(D(250_000), D(1_000_000), D("0.01"), 50),
)


# --- tiers ---------------------------------------------------------------------------------


def test_a_market_without_tiers_gets_one_default_tier_for_any_size():
    assert tier_for(D(0)) == DEFAULT_TIERS[0]
    assert tier_for(D(10) ** 12) == DEFAULT_TIERS[0]
    assert DEFAULT_TIERS[0].maintenance_margin_rate == D("0.005")
    assert DEFAULT_TIERS[0].max_leverage == 125


@pytest.mark.parametrize(
    ("notional", "tier"),
    [
        (D(0), 0),
        (D(50_000), 0),  # a tier's max is its own (ccxt: "the highest amount of this tier")
        (D("50000.01"), 1),
        (D(250_000), 1),
        (D("250000.000001"), 2),
        (D(1_000_000), 2),
    ],
)
def test_the_tier_is_the_first_whose_max_holds_the_notional(notional, tier):
    assert tier_for(notional, TIERS) is TIERS[tier]
    assert tier_for(notional, list(reversed(TIERS))) is TIERS[tier]  # order given does not matter


def test_a_notional_above_the_last_tier_is_refused():
    with pytest.raises(PerpRuleError, match="above the market's largest tier"):
        tier_for(D("1000000.01"), TIERS)


def test_the_tier_boundary_moves_the_liquidation_price_and_the_leverage_cap():
    # given: 1 BTC at 50,000 is 50,000 of notional, the last of tier 0 (m = 0.004)
    # long, L = 50: P = 50000 * (1 - 0.02) / (1 - 0.004) = 49000 / 0.996
    assert liquidation_price("long", D(50_000), D(1), 50, TIERS) == D(49_000) / D("0.996")
    # 1.0001 BTC is 50,005 of notional: tier 1 (m = 0.005): P = 49000 / 0.995, nearer the entry
    assert liquidation_price("long", D(50_000), D("1.0001"), 50, TIERS) == D(49_000) / D("0.995")
    # leverage 125 is allowed in tier 0, but tier 1 allows 100 at most
    assert liquidation_price("long", D(50_000), D(1), 125, TIERS) == D(49_600) / D("0.996")
    with pytest.raises(PerpRuleError, match="leverage must be between 1 and 100, not 125"):
        liquidation_price("long", D(50_000), D("1.0001"), 125, TIERS)


# --- leverage and margin -------------------------------------------------------------------


def test_initial_margin_is_the_notional_over_the_leverage():
    assert initial_margin(D(2_000), 1) == D(2_000)
    assert initial_margin(D(2_000), 3) == D(2_000) / D(3)  # 666.66...
    assert initial_margin(D(10_000), 125) == D(80)  # 10000 / 125
    assert initial_margin(D(10_000), D(50)) == D(200)  # an integral Decimal is a whole number


@pytest.mark.parametrize(
    ("leverage", "message"),
    [
        (0, "leverage must be between 1 and 125, not 0"),
        (-3, "leverage must be between 1 and 125, not -3"),
        (126, "leverage must be between 1 and 125, not 126"),
        (2.5, "leverage must be a whole number, not 2.5"),
        (3.0, "leverage must be a whole number, not 3.0"),
        (D("2.5"), "leverage must be a whole number, not 2.5"),
        (D("NaN"), "leverage must be a whole number, not NaN"),
        ("3", "leverage must be a whole number, not '3'"),
        (True, "leverage must be a whole number, not True"),
        (None, "leverage must be a whole number, not None"),
    ],
)
def test_invalid_leverage_is_refused_with_a_clear_message(leverage, message):
    with pytest.raises(PerpRuleError) as caught:
        initial_margin(D(1_000), leverage)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_leverage_above_the_market_maximum_is_refused():
    market = (MaintenanceTier(D(0), None, D("0.01"), 20),)
    assert check_leverage(20, 20) == 20
    with pytest.raises(PerpRuleError, match="leverage must be between 1 and 20, not 21"):
        check_leverage(21, 20)
    with pytest.raises(PerpRuleError, match="leverage must be between 1 and 20, not 21"):
        liquidation_price("short", D(100), D(1), 21, market)
    # a market claiming more than 125 is still held to 125
    with pytest.raises(PerpRuleError, match="between 1 and 125, not 126"):
        check_leverage(126, 200)


# --- liquidation price ---------------------------------------------------------------------

E = D(20_000)  # entry
Q = D("0.1")  # 2,000 of notional: the default tier, m = 0.005


@pytest.mark.parametrize(
    ("side", "leverage", "expected"),
    [
        # long: P = E (1 - 1/L) / (1 - m)
        ("long", 1, D(0)),  # 20000 * 0 / 0.995
        ("long", 3, D(40_000) / D("2.985")),  # 20000 * (2/3) / 0.995 = 13400.335...
        ("long", 50, D(19_600) / D("0.995")),  # 20000 * 0.98 / 0.995 = 19698.49...
        ("long", 125, D(19_840) / D("0.995")),  # 20000 * 0.992 / 0.995 = 19939.69...
        # short: P = E (1 + 1/L) / (1 + m)
        ("short", 1, D(40_000) / D("1.005")),  # 20000 * 2 / 1.005 = 39800.99...
        ("short", 3, D(80_000) / D("3.015")),  # 20000 * (4/3) / 1.005 = 26533.99...
        ("short", 50, D(20_400) / D("1.005")),  # 20000 * 1.02 / 1.005 = 20298.50...
        ("short", 125, D(20_160) / D("1.005")),  # 20000 * 1.008 / 1.005 = 20059.70...
    ],
)
def test_liquidation_price_by_hand(side, leverage, expected):
    assert liquidation_price(side, E, Q, leverage) == pytest.approx(expected, rel=D("1e-25"))


def test_liquidation_price_long_leverage_3_leaves_the_maintenance_margin_by_hand():
    # margin M = 2000 / 3 = 666.666...; P = 13400.335...
    # PnL at P = 0.1 * (13400.335 - 20000) = -659.966...; M + PnL = 6.7001...
    # maintenance at P = 0.1 * 13400.335 * 0.005 = 6.7001...
    price = liquidation_price("long", E, Q, 3)
    assert str(price.quantize(D("0.001"))) == "13400.335"
    left = initial_margin(Q * E, 3) + unrealized_pnl("long", E, price, Q)
    assert str(left.quantize(D("0.0001"))) == "6.7002"
    assert left == pytest.approx(Q * price * D("0.005"), rel=D("1e-25"))


def test_a_long_at_leverage_1_is_never_liquidated():
    # P = E * (1 - 1/1) / (1 - m - f) = 0, with or without the closing fee
    assert liquidation_price("long", E, Q, 1) == 0
    assert liquidation_price("long", E, Q, 1, taker_fee_rate=D("0.0006")) == 0
    assert not is_liquidated("long", D(0), D("0.00000001"), E)
    # a short at leverage 1 is liquidated when the price about doubles (see above): 39800.99...
    assert liquidation_price("short", E, Q, 1) < 2 * E


def test_the_closing_fee_brings_the_liquidation_price_nearer_the_entry():
    # long, L = 50, tier 0 (m = 0.004), f = 0.0006: P = 30000 * 0.98 / (1 - 0.0046) = 29400 / 0.9954
    with_fee = liquidation_price("long", D(30_000), D(1), 50, TIERS, taker_fee_rate=D("0.0006"))
    assert with_fee == D(29_400) / D("0.9954")  # 29535.86...
    assert with_fee > liquidation_price("long", D(30_000), D(1), 50, TIERS)  # 29400 / 0.996
    # short: P = 30000 * 1.02 / (1 + 0.0046) = 30600 / 1.0046 = 30460.0...
    short = liquidation_price("short", D(30_000), D(1), 50, TIERS, taker_fee_rate=D("0.0006"))
    assert short == D(30_600) / D("1.0046")
    assert short < liquidation_price("short", D(30_000), D(1), 50, TIERS)  # 30600 / 1.004


def test_a_leverage_whose_margin_is_below_the_maintenance_rate_is_refused():
    # m = 0.01 and L = 100: the margin, 1% of the notional, is all maintenance: liquidated at once
    market = (MaintenanceTier(D(0), None, D("0.01"), 125),)
    with pytest.raises(PerpRuleError, match="would be liquidated at once"):
        liquidation_price("long", D(100), D(1), 100, market)
    # L = 99 leaves 1/99 = 0.0101... > 0.01: allowed, and the price is just under the entry
    assert D(99) < liquidation_price("long", D(100), D(1), 99, market) < D(100)


def test_bad_sides_and_sizes_are_refused():
    with pytest.raises(PerpRuleError, match="side must be 'long' or 'short', not 'buy'"):
        liquidation_price("buy", E, Q, 3)
    with pytest.raises(PerpRuleError, match="must be positive"):
        liquidation_price("long", E, D(0), 3)
    with pytest.raises(PerpRuleError, match="side must be"):
        funding_payment("sell", Q, E, D("0.0001"))


# --- funding, PnL, the liquidation check ---------------------------------------------------


def test_with_a_positive_rate_longs_pay_shorts():
    # 0.5 BTC at a mark of 30,000, rate 0.01%: 0.5 * 30000 * 0.0001 = 1.5
    assert funding_payment("long", D("0.5"), D(30_000), D("0.0001")) == D("-1.5")
    assert funding_payment("short", D("0.5"), D(30_000), D("0.0001")) == D("1.5")


def test_with_a_negative_rate_shorts_pay_longs():
    # 2 ETH at a mark of 1,500, rate -0.02%: 2 * 1500 * 0.0002 = 0.6
    assert funding_payment("long", D(2), D(1_500), D("-0.0002")) == D("0.6")
    assert funding_payment("short", D(2), D(1_500), D("-0.0002")) == D("-0.6")
    assert funding_payment("long", D(2), D(1_500), D(0)) == 0


def test_unrealized_pnl_is_linear_in_the_price():
    # long 0.1 from 20,000 to 21,000: +100; the short loses the same
    assert unrealized_pnl("long", E, D(21_000), Q) == D(100)
    assert unrealized_pnl("short", E, D(21_000), Q) == D(-100)
    assert unrealized_pnl("short", E, D(19_500), Q) == D(50)


def test_a_mark_candle_liquidates_when_it_touches_the_price():
    assert is_liquidated("long", D(19_000), candle_low=D(19_000), candle_high=D(19_500))
    assert not is_liquidated("long", D(19_000), candle_low=D("19000.01"), candle_high=D(19_500))
    assert is_liquidated("short", D(21_000), candle_low=D(20_500), candle_high=D(21_000))
    assert not is_liquidated("short", D(21_000), candle_low=D(20_500), candle_high=D("20999.99"))
    # a long's candle high and a short's candle low do not matter
    assert not is_liquidated("long", D(19_000), candle_low=D(19_500), candle_high=D(10**6))


def test_the_liquidation_price_rounds_to_the_tick_towards_the_entry():
    # long 13400.335... on a 0.1 tick: up to 13400.4; short 26533.996... down to 26533.9
    assert round_liquidation_price("long", liquidation_price("long", E, Q, 3), D("0.1")) == D(
        "13400.4"
    )
    assert round_liquidation_price("short", liquidation_price("short", E, Q, 3), D("0.1")) == D(
        "26533.9"
    )
    assert round_liquidation_price("long", D("13400.4"), D("0.1")) == D("13400.4")


# --- the defining property, on random positions --------------------------------------------


def random_position(rng: random.Random) -> tuple[str, D, D, D, int]:
    """A random side, entry, qty, fee rate and a leverage the position's tier allows."""
    side = rng.choice(("long", "short"))
    # prices from 0.01 to 100,000 and notionals from 10 to 990,000 (every tier), log-uniform
    entry = D(str(round(10 ** rng.uniform(-2, 5), 8))).max(D("0.01"))
    notional = D(str(round(10 ** rng.uniform(1, 5.995), 2)))
    qty = (notional / entry).quantize(D("1e-8")).max(D("1e-8"))
    fee = rng.choice((D(0), D("0.0006"), D("0.0002")))
    tier = tier_for(qty * entry, TIERS)
    # the leverage must leave more margin than maintenance + fee: 1/L > m + f
    top = min(
        tier.max_leverage, int((1 / (tier.maintenance_margin_rate + fee)).to_integral_value()) - 1
    )
    return side, entry, qty, fee, rng.randint(1, top)


def test_the_pnl_at_the_liquidation_price_leaves_exactly_the_maintenance_margin():
    rng = random.Random(16)
    for _ in range(2_000):
        side, entry, qty, fee, leverage = random_position(rng)
        tier = tier_for(qty * entry, TIERS)
        price = liquidation_price(side, entry, qty, leverage, TIERS, taker_fee_rate=fee)
        left = initial_margin(qty * entry, leverage) + unrealized_pnl(side, entry, price, qty)
        needed = maintenance_margin(price, qty, tier, taker_fee_rate=fee)
        case = (side, entry, qty, fee, leverage, price)
        # Decimal keeps 28 digits: the difference is rounding, far below a millionth of a cent
        assert abs(left - needed) <= qty * entry * D("1e-24"), case
        # the price is on the losing side of the entry and a candle touching it liquidates
        if side == "long":
            assert 0 <= price < entry, case
            assert is_liquidated(side, price, price, entry) == (price > 0), case
        else:
            assert price > entry, case
            assert is_liquidated(side, price, entry, price), case
        # a step towards the entry (0.1%) still holds more than the maintenance margin
        safer = price + (entry - price) / 1000
        margin_left = initial_margin(qty * entry, leverage) + unrealized_pnl(
            side, entry, safer, qty
        )
        assert margin_left > maintenance_margin(safer, qty, tier, taker_fee_rate=fee), case

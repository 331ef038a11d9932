"""The arithmetic of USDT-margined (linear) perpetual swaps, isolated margin: margin, liquidation
price, funding and unrealised PnL (issue 16, first slice).

Pure Python on Decimals: no Django, no model, no numpy. The backtest engine, the paper exchange and
the bots are meant to share it, so a perp position has one liquidation price everywhere. Nothing
calls it yet.

Conventions
-----------
- ``side`` is ``"long"`` or ``"short"``; its sign ``s`` is +1 or -1.
- ``qty`` is the position size in the base currency (contracts * contract size), positive.
- Prices, notionals and amounts are Decimals in the quote currency (USDT). Results are not
  rounded: the default Decimal context keeps 28 significant digits, and a caller rounds to the
  market's tick with :func:`round_liquidation_price` (towards the entry, the cautious way).
- ``notional = qty * price``; ``leverage`` is an integer ``1..max_leverage``.

Bitget's rules (help center, "Position Tier", article 360052911052): in isolated margin each
position is margined on its own, and the larger the position value, the higher the maintenance
margin rate and the lower the maximum leverage (the tiers). ``margin rate = (position margin +
unrealised PnL) / position value``, with ``position value = contracts * contract size * mark
price``; the position is liquidated when the margin rate falls to the maintenance margin rate.
Bitget reports ``0`` as the liquidation price on some endpoints, so the platform computes it here.
Funding: every funding time, ``position value * funding rate`` moves between the sides; with a
positive rate longs pay shorts, with a negative one shorts pay longs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

Side = Literal["long", "short"]
SIDES: tuple[Side, ...] = ("long", "short")
MAX_LEVERAGE = 125  # Bitget's highest leverage on any USDT-M perp
ZERO = Decimal(0)
ONE = Decimal(1)


class PerpRuleError(ValueError):
    """A perp parameter breaks a rule (leverage, side, tier); the message says which and why."""


@dataclass(frozen=True)
class MaintenanceTier:
    """One row of a market's leverage/maintenance-margin tiers (ccxt ``fetchMarketLeverageTiers``):
    a position whose notional is in ``(min_notional, max_notional]`` (the first tier includes its
    ``min_notional``, usually 0) needs ``maintenance_margin_rate * position value`` of margin and
    may use at most ``max_leverage``. ``max_notional`` None means no upper bound."""

    min_notional: Decimal
    max_notional: Decimal | None
    maintenance_margin_rate: Decimal
    max_leverage: int


# A market whose tiers are unknown gets one tier: any size, Bitget's first-tier rate for BTCUSDT
# (0.4%) rounded up to 0.5% to stay on the cautious side, and the highest leverage Bitget offers.
DEFAULT_TIERS: tuple[MaintenanceTier, ...] = (
    MaintenanceTier(ZERO, None, Decimal("0.005"), MAX_LEVERAGE),
)


def side_sign(side: str) -> int:
    """+1 for a long, -1 for a short; anything else is a :class:`PerpRuleError`."""
    if side == "long":
        return 1
    if side == "short":
        return -1
    raise PerpRuleError(f"side must be 'long' or 'short', not {side!r}")


def tier_for(notional: Decimal, tiers: Sequence[MaintenanceTier] = ()) -> MaintenanceTier:
    """The tier a position of ``notional`` (quote currency, ≥ 0) falls in: the first, by
    ``min_notional``, with ``notional ≤ max_notional`` (a tier's upper bound is its own, as ccxt's
    ``maxNotional`` is "the highest amount of this tier"). No tiers: :data:`DEFAULT_TIERS`. A
    notional above the last tier is a :class:`PerpRuleError` (too large for the market)."""
    if notional < 0:
        raise PerpRuleError(f"notional must be positive or zero, not {notional}")
    ordered = sorted(tiers or DEFAULT_TIERS, key=lambda tier: tier.min_notional)
    for tier in ordered:
        if tier.max_notional is None or notional <= tier.max_notional:
            return tier
    raise PerpRuleError(
        f"a position of {notional} is above the market's largest tier ({ordered[-1].max_notional})"
    )


def check_leverage(leverage: object, max_leverage: int = MAX_LEVERAGE) -> int:
    """``leverage`` as an int, or a :class:`PerpRuleError`: it must be a whole number (an int or
    an integral Decimal; not a bool, a float or text) from 1 to ``max_leverage`` (the market's or
    its tier's maximum, never above 125)."""
    if isinstance(leverage, bool) or not isinstance(leverage, int | Decimal):
        raise PerpRuleError(f"leverage must be a whole number, not {leverage!r}")
    if isinstance(leverage, Decimal) and (
        not leverage.is_finite() or leverage != leverage.to_integral_value()
    ):
        raise PerpRuleError(f"leverage must be a whole number, not {leverage}")
    limit = min(max_leverage, MAX_LEVERAGE)
    if not 1 <= leverage <= limit:
        raise PerpRuleError(f"leverage must be between 1 and {limit}, not {leverage}")
    return int(leverage)


def initial_margin(notional: Decimal, leverage: int) -> Decimal:
    """The margin an isolated position of ``notional`` opens with: ``notional / leverage``
    (Bitget's "position margin" before any margin is added or fee deducted)."""
    return notional / check_leverage(leverage)


def unrealized_pnl(side: str, entry: Decimal, mark: Decimal, qty: Decimal) -> Decimal:
    """``s * (mark - entry) * qty``: a linear contract gains ``qty`` quote per unit of price."""
    return side_sign(side) * (mark - entry) * qty


def funding_payment(side: str, qty: Decimal, mark_price: Decimal, rate: Decimal) -> Decimal:
    """The funding credited to the holder at one funding time, signed:
    ``-s * qty * mark * rate``. A positive rate: a long pays (negative), a short receives
    (positive); a negative rate the other way round. The notional is taken at the mark price."""
    return -side_sign(side) * qty * mark_price * rate


def liquidation_price(
    side: str,
    entry_price: Decimal,
    qty: Decimal,
    leverage: int,
    tiers: Sequence[MaintenanceTier] = (),
    *,
    taker_fee_rate: Decimal = ZERO,
) -> Decimal:
    """The mark price at which an isolated position is liquidated.

    With ``E`` the entry, ``q`` the qty, ``L`` the leverage, ``m`` the maintenance margin rate of
    the tier of the ENTRY notional ``q * E``, and ``f`` the taker fee rate, the position margin is
    ``M = q * E / L``. Liquidation is at the mark price ``P`` where margin plus unrealised PnL
    equals the maintenance margin (Bitget: margin rate = maintenance margin rate), to which the
    estimated closing fee ``q * P * f`` is added when ``taker_fee_rate`` is given (0 by default,
    the rule as Bitget's tier article writes it; a fee makes the price nearer the entry, the
    cautious side)::

        long:   M + q (P - E) = q P (m + f)   =>   P = E (1 - 1/L) / (1 - m - f)
        short:  M + q (E - P) = q P (m + f)   =>   P = E (1 + 1/L) / (1 + m + f)

    ``q`` cancels: the price depends on the size only through the tier. A long at leverage 1 is
    liquidated at 0, that is never. The leverage must be allowed by the tier (its
    ``max_leverage``), and ``1/L`` must exceed ``m + f``, or the position would be liquidated at
    its own entry: both are a :class:`PerpRuleError`. The tier is chosen from the entry notional
    and kept (a simplification: a short's value grows towards its liquidation price, which may
    cross into a higher tier).
    """
    sign = side_sign(side)
    if entry_price <= 0 or qty <= 0:
        raise PerpRuleError(f"entry price and qty must be positive, not {entry_price} and {qty}")
    tier = tier_for(qty * entry_price, tiers)
    lev = check_leverage(leverage, tier.max_leverage)
    rate = tier.maintenance_margin_rate + taker_fee_rate
    if ONE / lev <= rate:
        raise PerpRuleError(
            f"leverage {lev} leaves a margin of {ONE / lev} of the notional, not above the "
            f"maintenance margin rate plus fee ({rate}): it would be liquidated at once"
        )
    return entry_price * (ONE - sign * (ONE / lev)) / (ONE - sign * rate)


def maintenance_margin(
    mark_price: Decimal,
    qty: Decimal,
    tier: MaintenanceTier,
    *,
    taker_fee_rate: Decimal = ZERO,
) -> Decimal:
    """What the position must keep at ``mark_price``: ``q * P * (m + f)`` (see
    :func:`liquidation_price` for the fee)."""
    return qty * mark_price * (tier.maintenance_margin_rate + taker_fee_rate)


def is_liquidated(
    side: str, liquidation_price: Decimal, candle_low: Decimal, candle_high: Decimal
) -> bool:
    """Whether a mark-price candle reaches the liquidation price: a long when its low is at or
    below it, a short when its high is at or above it. A long's price of 0 (leverage 1) is never
    reached, as prices are positive."""
    if side_sign(side) == 1:
        return liquidation_price > 0 and candle_low <= liquidation_price
    return candle_high >= liquidation_price


def round_liquidation_price(side: str, price: Decimal, tick: Decimal) -> Decimal:
    """``price`` on the market's tick, rounded towards the entry (a long's up, a short's down), so
    the rounded price is reached no later than the exact one."""
    rounding = ROUND_CEILING if side_sign(side) == 1 else ROUND_FLOOR
    return (price / tick).to_integral_value(rounding=rounding) * tick

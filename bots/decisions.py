"""What a bot does on a tick: signal, position, open orders and risk settings in, orders out.

Pure Python on ``Decimal``: no Django, no exchange, no clock, so it is tested on its own and a
tick that runs twice on the same inputs takes the same decision (which is what makes its
``client_order_id`` deterministic).

Spot, long only: a target of +1 means "hold the base currency", 0 (or -1) means "hold none".
The rules mirror the backtest engine's (``backtests/engine.py``) so that a paper bot on a replay
trades as its backtest does:

- Enter only when flat and the target is +1; exit the whole position when the target drops.
- Size an entry from the free quote balance: ``fraction * free / (ask * (1 + taker fee))`` (the
  engine's all-in sizing with the fee), or a fixed quote amount; never above ``max_position``.
- After a stop-loss or take-profit exit the bot stays flat until the target changes (the engine
  does the same), so it does not buy straight back into the signal that just lost.
- Stop-loss / take-profit are checked on the candles closed since the last tick: a low at or
  under ``entry * (1 - stop)`` or a high at or above ``entry * (1 + take)``. Unlike the engine,
  which fills at the level inside the candle, a bot exits with a market order at the next open:
  it learns of the touch only when the candle closes.
- Amounts are rounded DOWN to the market's amount step, and an order under the market's minimum
  amount or cost is not sent: it becomes a :class:`Skip` that the tick records as an event.
- Resting orders are cancelled first: a bot trades with market orders, so anything still open
  is left over from an earlier tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from markets.exchanges.base import MarketRules

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class RiskSettings:
    order_size_kind: str  # "fraction" | "quote"
    order_size: Decimal
    max_position: Decimal | None = None
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None


@dataclass(frozen=True)
class TickInputs:
    """Everything a decision depends on. ``high``/``low``: the extremes of the candles closed
    since the previous tick; ``ask``/``bid``: what a market buy/sell would fill at now."""

    target: int
    position_qty: Decimal
    entry_price: Decimal | None
    open_order_ids: tuple[str, ...]
    risk: RiskSettings
    rules: MarketRules
    free_quote: Decimal
    ask: Decimal
    bid: Decimal
    high: Decimal
    low: Decimal
    risk_exit_target: int | None = None


@dataclass(frozen=True)
class Place:
    side: str  # "buy" | "sell"
    qty: Decimal
    reason: str  # "signal" | "stop_loss" | "take_profit"


@dataclass(frozen=True)
class Skip:
    """An order the decision wanted but may not send; recorded as a bot event."""

    kind: str  # "below_minimum" | "insufficient_funds" | "max_position"
    message: str


@dataclass(frozen=True)
class Decision:
    cancels: tuple[str, ...] = ()
    place: Place | None = None
    skip: Skip | None = None
    # The value Bot.risk_exit_target takes after this tick.
    risk_exit_target: int | None = None

    @property
    def is_hold(self) -> bool:
        """Nothing to send, cancel or report."""
        return self.place is None and self.skip is None and not self.cancels

    @property
    def action(self) -> str:
        """One word for the log line: buy, sell, skip, cancel or hold."""
        if self.place is not None:
            return self.place.side
        if self.skip is not None:
            return "skip"
        return "cancel" if self.cancels else "hold"


def round_down(qty: Decimal, step: Decimal | None) -> Decimal:
    """``qty`` truncated to a multiple of ``step`` (never up: it must stay payable)."""
    if step is None or step <= 0:
        return qty
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


def minimum_problem(qty: Decimal, price: Decimal, rules: MarketRules) -> str | None:
    """Why ``qty`` at ``price`` is below the market's minimums, or None when it is tradable."""
    if qty <= 0:
        return f"the amount rounds to zero at the amount step of {rules.amount_step} {rules.base}"
    if rules.min_amount is not None and qty < rules.min_amount:
        return f"{qty} {rules.base} is below the minimum amount of {rules.min_amount} {rules.base}"
    cost = qty * price
    if rules.min_cost is not None and cost < rules.min_cost:
        return (
            f"{cost.normalize():f} {rules.quote} is below the minimum cost of "
            f"{rules.min_cost} {rules.quote}"
        )
    return None


def sellable_qty(inputs: TickInputs) -> Decimal:
    """The part of the position a market sell can close (dust under the minimums is not)."""
    qty = round_down(inputs.position_qty, inputs.rules.amount_step)
    if minimum_problem(qty, inputs.bid, inputs.rules) is not None:
        return ZERO
    return qty


def risk_exit(inputs: TickInputs) -> str | None:
    """``"stop_loss"`` or ``"take_profit"`` when a closed candle touched the level; the stop
    wins when both were touched (the order inside a candle is unknown)."""
    entry, risk = inputs.entry_price, inputs.risk
    if entry is None:
        return None
    if risk.stop_loss_pct is not None and inputs.low <= entry * (1 - risk.stop_loss_pct / HUNDRED):
        return "stop_loss"
    if risk.take_profit_pct is not None and inputs.high >= entry * (
        1 + risk.take_profit_pct / HUNDRED
    ):
        return "take_profit"
    return None


def entry_qty(inputs: TickInputs) -> Decimal | Skip:
    """The amount to buy on an entry signal, or why none may be bought."""
    risk, rules = inputs.risk, inputs.rules
    unit_cost = inputs.ask * (1 + rules.taker_fee)
    if risk.order_size_kind == "fraction":
        spend = inputs.free_quote * risk.order_size
    else:
        spend = risk.order_size
        if spend * (1 + rules.taker_fee) > inputs.free_quote:
            return Skip(
                "insufficient_funds",
                f"an order of {spend.normalize():f} {rules.quote} needs more than the "
                f"{inputs.free_quote.normalize():f} {rules.quote} free",
            )
    qty = spend / unit_cost if risk.order_size_kind == "fraction" else spend / inputs.ask
    if risk.max_position is not None:
        room = risk.max_position / inputs.ask - inputs.position_qty
        if room <= 0:
            most = f"{risk.max_position.normalize():f} {rules.quote}"
            return Skip("max_position", f"the position is at its maximum of {most}")
        qty = min(qty, room)
    qty = round_down(qty, rules.amount_step)
    problem = minimum_problem(qty, inputs.ask, rules)
    if problem is not None:
        return Skip("below_minimum", f"no order sent: {problem} for {rules.symbol}")
    if qty * unit_cost > inputs.free_quote:
        return Skip(
            "insufficient_funds",
            f"buying {qty} {rules.base} needs {(qty * unit_cost).normalize():f} {rules.quote}, "
            f"{inputs.free_quote.normalize():f} {rules.quote} is free",
        )
    return qty


def decide(inputs: TickInputs) -> Decision:
    """The orders for one tick (see the module docstring for the rules)."""
    cancels = inputs.open_order_ids
    held = sellable_qty(inputs)
    if held > 0:
        reason = risk_exit(inputs)
        if reason is not None:
            return Decision(cancels, Place("sell", held, reason), risk_exit_target=inputs.target)
        if inputs.target <= 0:
            return Decision(cancels, Place("sell", held, "signal"))
        return Decision(cancels, risk_exit_target=inputs.risk_exit_target)
    if inputs.risk_exit_target is not None and inputs.target == inputs.risk_exit_target:
        return Decision(cancels, risk_exit_target=inputs.risk_exit_target)
    if inputs.target <= 0:
        return Decision(cancels)
    qty = entry_qty(inputs)
    if isinstance(qty, Skip):
        return Decision(cancels, skip=qty)
    return Decision(cancels, Place("buy", qty, "signal"))

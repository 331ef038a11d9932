"""What a bot does on a tick: signal, position, open orders and risk settings in, orders out.

Pure Python on ``Decimal``: no Django, no exchange, no clock, so it is tested on its own and a
tick that runs twice on the same inputs takes the same decision (which is what makes its
``client_order_id`` deterministic).

Spot, long only: a target of +1 means "hold the base currency", 0 (or -1) means "hold none".
A perpetual swap's bot (long and short, leverage, funding, liquidation) decides with
``bots.perp_decisions.decide_perp`` on the same ``TickInputs`` (with ``position_side`` and
``perp``), ``Place`` (``reduce_only``) and ``Decision`` (``then``: a flip's opening order); its
rules are in that module's docstring. This module's rules are the spot bot's:
The rules mirror the backtest engine's (``backtests/engine.py``) so that a paper bot on a replay
trades as its backtest does:

- Enter only when flat and the target is +1; exit the whole position when the target drops.
- Size an entry from the free quote balance: ``fraction * free / (ask * (1 + taker fee))`` (the
  engine's all-in sizing with the fee), or a fixed quote amount; never above ``max_position``.
- After a stop-loss or take-profit exit the bot stays flat until the target changes (the engine
  does the same), so it does not buy straight back into the signal that just lost. A trigger
  that filled since the last tick (``TickInputs.trigger_exit``) counts as such an exit.
- Stop-loss / take-profit rest ON THE EXCHANGE as reduce-only trigger orders, where the engine
  puts them: once an entry has filled, :func:`protection` gives a sell stop at
  ``entry * (1 - stop)`` (rounded down to the price step) and a sell take-profit at
  ``entry * (1 + take)`` (rounded up), from the entry FILL price, for the whole position; the
  exchange fills them inside the candle that reaches them (the paper exchange by the engine's
  rule 6). While the position is held, the decision says which triggers must exist: it keeps
  the open ones that match, cancels the others, and asks for the missing ones
  (``Decision.triggers``).
- One of them filling ends the trade; the other is cancelled by the tick that finds the fill
  (the position is flat, so every open order is cancelled: OCO by the bot, as Bitget's spot
  plan orders know no pairs; on the paper exchange that is the tick of the candle it filled
  in). A signal exit cancels both first, then sells.
- A level whose trigger is NOT open on the exchange (it could not be placed, or a crash came
  between the entry and it) is still checked on the candles closed since the last tick: a low
  at or under the stop or a high at or above the take-profit exits with a market order at the
  next open, as before (the fallback the trigger order replaces).
- Amounts are rounded DOWN to the market's amount step, and an order under the market's minimum
  amount or cost is not sent: it becomes a :class:`Skip` that the tick records as an event.
- Other resting orders are cancelled: a bot trades with market orders, so any open order that is
  not one of its wanted protective triggers is left over from an earlier tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from markets.exchanges.base import MarketRules
from markets.perp import DEFAULT_TIERS, MaintenanceTier

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
class Trigger:
    """A protective reduce-only trigger order: the exchange sells ``qty`` once the price reaches
    ``price`` (down to it for a stop-loss, up to it for a take-profit)."""

    reason: str  # "stop_loss" | "take_profit"
    side: str  # "sell" for a long position (this module's spot bots), "buy" for a short
    qty: Decimal
    price: Decimal


@dataclass(frozen=True)
class OpenTrigger:
    """A trigger order the exchange holds open for the bot."""

    client_order_id: str
    trigger: Trigger


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
    # The protective triggers open on the exchange (their ids are in ``open_order_ids`` too).
    open_triggers: tuple[OpenTrigger, ...] = ()
    # "stop_loss" / "take_profit" (a perp's: "liquidation" too) when a trigger of the bot
    # filled since the last tick.
    trigger_exit: str | None = None
    # Perpetual swaps (``bots.perp_decisions``): the held position's side (+1 long, -1 short)
    # and the bot's perp terms; None on spot.
    position_side: int = 1
    perp: PerpTerms | None = None


@dataclass(frozen=True)
class PerpTerms:
    """A perp bot's leverage and liquidation buffer, the market's maintenance tiers, and the
    isolated margin the held position keeps (it comes back to the free balance on a close)."""

    leverage: int
    liquidation_buffer_pct: Decimal | None = None
    tiers: tuple[MaintenanceTier, ...] = DEFAULT_TIERS
    margin: Decimal = ZERO


@dataclass(frozen=True)
class Place:
    side: str  # "buy" | "sell"
    qty: Decimal
    reason: str  # "signal" | "stop_loss" | "take_profit"
    # A perp order that may only close (``create_perp_order(reduce_only=True)``); spot: False.
    reduce_only: bool = False


@dataclass(frozen=True)
class Skip:
    """An order the decision wanted but may not send; recorded as a bot event."""

    kind: str  # "below_minimum" | "insufficient_funds" | "max_position" | "liquidation_buffer"
    message: str


@dataclass(frozen=True)
class Decision:
    cancels: tuple[str, ...] = ()
    place: Place | None = None
    skip: Skip | None = None
    # The value Bot.risk_exit_target takes after this tick.
    risk_exit_target: int | None = None
    # Protective trigger orders to place (after the cancels).
    triggers: tuple[Trigger, ...] = ()
    # A perp flip's second order: ``place`` closes, this opens the other side once the close
    # has filled (sized here on the balance the close should leave; the tick sizes it again
    # on the balance it did leave).
    then: Place | None = None

    @property
    def is_hold(self) -> bool:
        """Nothing to send, cancel or report."""
        return self.place is None and self.skip is None and not self.cancels and not self.triggers

    @property
    def action(self) -> str:
        """One word for the log line: buy, sell, skip, protect, cancel or hold."""
        if self.place is not None:
            return self.place.side
        if self.skip is not None:
            return "skip"
        if self.triggers:
            return "protect"
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


def price_step_round(price: Decimal, step: Decimal | None, *, up: bool) -> Decimal:
    """``price`` on the market's price grid, rounded away from the position: a stop below it
    down, a take-profit above it up. On prices that lie on the grid (candle lows and highs),
    ``low <= rounded stop`` then holds exactly when ``low <= stop`` does: the trigger is touched
    by the same candles as the engine's unrounded level."""
    if step is None or step <= 0:
        return price
    rounding = ROUND_CEILING if up else ROUND_FLOOR
    return (price / step).to_integral_value(rounding=rounding) * step


def protection(
    qty: Decimal, entry: Decimal | None, risk: RiskSettings, rules: MarketRules, *,
    side: int = 1,
) -> tuple[Trigger, ...]:  # fmt: skip
    """The stop-loss and take-profit trigger orders a position of ``qty`` entered at the fill
    price ``entry`` must have on the exchange (none for a level that is not set, or whose order
    would be under the market's minimums). ``side``: +1 long (sell triggers: the stop under the
    entry, the take-profit over it), -1 short (buy triggers, the other way round), as the
    engine's rule 6; each level rounded to the price step away from the entry."""
    if entry is None or qty <= 0:
        return ()
    close = "sell" if side > 0 else "buy"
    wanted = []
    if risk.stop_loss_pct is not None:
        stop = entry * (1 - side * risk.stop_loss_pct / HUNDRED)
        price = price_step_round(stop, rules.price_step, up=side < 0)
        wanted.append(Trigger("stop_loss", close, qty, price))
    if risk.take_profit_pct is not None:
        take = entry * (1 + side * risk.take_profit_pct / HUNDRED)
        price = price_step_round(take, rules.price_step, up=side > 0)
        wanted.append(Trigger("take_profit", close, qty, price))
    return tuple(t for t in wanted if t.price > 0 and minimum_problem(qty, t.price, rules) is None)


def risk_exit(inputs: TickInputs) -> str | None:
    """``"stop_loss"`` or ``"take_profit"`` when a closed candle touched a level that has no
    trigger order open on the exchange (the fallback); the stop wins when both were touched
    (the order inside a candle is unknown)."""
    entry, risk = inputs.entry_price, inputs.risk
    if entry is None:
        return None
    guarded = {open_trigger.trigger.reason for open_trigger in inputs.open_triggers}
    if (
        risk.stop_loss_pct is not None
        and "stop_loss" not in guarded
        and inputs.low <= entry * (1 - risk.stop_loss_pct / HUNDRED)
    ):
        return "stop_loss"
    if (
        risk.take_profit_pct is not None
        and "take_profit" not in guarded
        and inputs.high >= entry * (1 + risk.take_profit_pct / HUNDRED)
    ):
        return "take_profit"
    return None


def _hold(inputs: TickInputs, held: Decimal) -> Decision:
    """Keep the position: the open triggers that match the wanted ones stay, every other open
    order is cancelled, the missing triggers are placed."""
    wanted = protection(held, inputs.entry_price, inputs.risk, inputs.rules)
    kept = {o.client_order_id: o.trigger for o in inputs.open_triggers if o.trigger in wanted}
    cancels = tuple(cid for cid in inputs.open_order_ids if cid not in kept)
    missing = tuple(t for t in wanted if t not in kept.values())
    return Decision(cancels, triggers=missing, risk_exit_target=inputs.risk_exit_target)


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
        return _hold(inputs, held)
    if inputs.trigger_exit is not None:  # a trigger closed the trade: the engine's rule 6
        return Decision(cancels, risk_exit_target=inputs.target)
    if inputs.risk_exit_target is not None and inputs.target == inputs.risk_exit_target:
        return Decision(cancels, risk_exit_target=inputs.risk_exit_target)
    if inputs.target <= 0:
        return Decision(cancels)
    qty = entry_qty(inputs)
    if isinstance(qty, Skip):
        return Decision(cancels, skip=qty)
    return Decision(cancels, Place("buy", qty, "signal"))

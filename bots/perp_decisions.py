"""What a perp bot does on a tick: the pure decision for a USDT-margined perpetual swap.

Pure Python on ``Decimal`` like ``bots.decisions`` (whose inputs, orders and rounding it reuses):
no Django, no exchange, no clock. The rules are the backtest engine's (``backtests/engine.py``,
rules 3 and P1-P5), so that a paper perp bot on a replay trades as its backtest does:

- The target is the strategy's -1/0/+1. Flat: +1 opens a long (a buy), -1 a short (a sell).
- Held, the target 0 closes the position with a reduce-only order (a sell for a long, a buy for
  a short). The opposite target closes AND opens the other side in the same tick: two orders
  (``Decision.place`` then ``Decision.then``), as the engine flips at one open; the exchange
  refuses a reversal in one order. The opening order is sized on the balance the close leaves
  (the engine sizes from the cash after the close): estimated here from the margin the close
  frees, its pnl and its fee; the tick sizes it again on the balance the exchange reports.
- Sizing with leverage ``L`` and the taker fee ``f``: a fraction of the free balance pays the
  margin and the entry fee, ``qty = free * fraction / (price * (1/L + f))`` (the engine's
  P1; at ``L = 1`` the spot rule); a quote amount is the MARGIN (``qty = amount * L / price``);
  ``max_position`` caps the notional. The price is the ask for a long, the bid for a short.
  Rounded down to the amount step; an order under the minimums is a ``Skip``.
- Liquidation buffer: an entry whose liquidation price (``markets.perp.liquidation_price`` with
  the market's tiers, else ``DEFAULT_TIERS``; entry at the ask or bid) lies nearer than
  ``liquidation_buffer_pct`` percent of the entry is not sent: ``Skip("liquidation_buffer")``.
- Stop-loss / take-profit rest on the exchange as reduce-only trigger orders
  (``decisions.protection`` with the position's side: a short gets buy triggers); a level whose
  trigger is not open falls back to an exit at the next open, as on spot.
- After a stop-loss, take-profit or liquidation exit the bot stays flat while the target is
  the side the trade was held for (``risk_exit_target``): the engine's trade is a run of one
  target, which such an exit cuts short. Another target (the other side at once) enters.
"""

from __future__ import annotations

from decimal import Decimal

from bots.decisions import (
    HUNDRED,
    ZERO,
    Decision,
    PerpTerms,
    Place,
    Skip,
    TickInputs,
    Trigger,
    minimum_problem,
    protection,
    round_down,
)
from markets import perp

SIDE_NAMES = {1: "long", -1: "short"}


def open_side(target: int) -> str:
    """The order side that opens a position of ``target`` (+1 buy, -1 sell)."""
    return "buy" if target > 0 else "sell"


def close_side(position_side: int) -> str:
    """The order side that closes a position of ``position_side``."""
    return "sell" if position_side > 0 else "buy"


def decide_perp(inputs: TickInputs) -> Decision:
    """The orders for one tick of a perp bot (see the module docstring)."""
    assert inputs.perp is not None, "a perp bot's inputs"
    cancels = inputs.open_order_ids
    side = inputs.position_side
    held = round_down(inputs.position_qty, inputs.rules.amount_step)
    if held > 0:
        closing = close_side(side)
        reason = perp_risk_exit(inputs)
        if reason is not None:
            exit_ = Place(closing, held, reason, reduce_only=True)
            return Decision(cancels, exit_, risk_exit_target=side)
        if inputs.target == side:
            return _hold(inputs, held)
        close = Place(closing, held, "signal", reduce_only=True)
        if inputs.target == 0:
            return Decision(cancels, close)
        opening = entry(inputs, inputs.target, free=free_after_close(inputs, held))
        if isinstance(opening, Skip):
            return Decision(cancels, close, skip=opening)
        return Decision(cancels, close, then=opening)
    # A trigger or a liquidation closed the trade: no entry while the target is still the
    # side it was held for (the engine's trade is the run of one target); another one enters.
    held_for = side if inputs.trigger_exit is not None else inputs.risk_exit_target
    if held_for is not None and inputs.target == held_for:
        return Decision(cancels, risk_exit_target=held_for)
    if inputs.target == 0:
        return Decision(cancels)
    opening = entry(inputs, inputs.target, free=inputs.free_quote)
    if isinstance(opening, Skip):
        return Decision(cancels, skip=opening)
    return Decision(cancels, opening)


def _hold(inputs: TickInputs, held: Decimal) -> Decision:
    """Keep the position and its protective triggers (``decisions._hold`` for either side)."""
    wanted = protection(
        held, inputs.entry_price, inputs.risk, inputs.rules, side=inputs.position_side
    )
    kept = {o.client_order_id: o.trigger for o in inputs.open_triggers if o.trigger in wanted}
    cancels = tuple(cid for cid in inputs.open_order_ids if cid not in kept)
    missing: tuple[Trigger, ...] = tuple(t for t in wanted if t not in kept.values())
    return Decision(cancels, triggers=missing, risk_exit_target=inputs.risk_exit_target)


def perp_risk_exit(inputs: TickInputs) -> str | None:
    """``stop_loss`` / ``take_profit`` when a closed candle reached a level of the position
    that has no trigger order open (the fallback); the stop first."""
    entry_price, risk, side = inputs.entry_price, inputs.risk, inputs.position_side
    if entry_price is None:
        return None
    guarded = {open_trigger.trigger.reason for open_trigger in inputs.open_triggers}
    adverse, favourable = (inputs.low, inputs.high) if side > 0 else (inputs.high, inputs.low)
    if risk.stop_loss_pct is not None and "stop_loss" not in guarded:
        stop = entry_price * (1 - side * risk.stop_loss_pct / HUNDRED)
        if side * (adverse - stop) <= 0:
            return "stop_loss"
    if risk.take_profit_pct is not None and "take_profit" not in guarded:
        take = entry_price * (1 + side * risk.take_profit_pct / HUNDRED)
        if side * (favourable - take) >= 0:
            return "take_profit"
    return None


def free_after_close(inputs: TickInputs, held: Decimal) -> Decimal:
    """The free balance once ``held`` is closed at the bid (a long) or ask (a short): the margin
    comes back with the pnl, less the fee (an isolated position loses at most its margin)."""
    assert inputs.perp is not None
    assert inputs.entry_price is not None
    side = inputs.position_side
    price = inputs.bid if side > 0 else inputs.ask
    pnl = side * (price - inputs.entry_price) * held
    fee = held * price * inputs.rules.taker_fee
    return inputs.free_quote + max(inputs.perp.margin + pnl - fee, ZERO)


def entry(inputs: TickInputs, target: int, *, free: Decimal) -> Place | Skip:
    """The order that opens a position of ``target`` with ``free`` quote, or why none may."""
    terms, rules, risk = inputs.perp, inputs.rules, inputs.risk
    assert terms is not None
    price = inputs.ask if target > 0 else inputs.bid
    unit_cost = price * (1 / Decimal(terms.leverage) + rules.taker_fee)  # margin + fee per unit
    if risk.order_size_kind == "fraction":
        qty = free * risk.order_size / unit_cost
    else:
        qty = risk.order_size * terms.leverage / price  # the quote amount is the margin
    if risk.max_position is not None:
        qty = min(qty, risk.max_position / price)
    qty = round_down(qty, rules.amount_step)
    problem = minimum_problem(qty, price, rules)
    if problem is not None:
        return Skip("below_minimum", f"no order sent: {problem} for {rules.symbol}")
    if qty * unit_cost > free:
        return Skip(
            "insufficient_funds",
            f"a {SIDE_NAMES[target]} of {qty} {rules.base} at {terms.leverage}x needs "
            f"{(qty * unit_cost).normalize():f} {rules.quote} of margin and fee, "
            f"{free.normalize():f} {rules.quote} is free",
        )
    buffer = buffer_problem(target, price, qty, terms)
    if buffer is not None:
        return Skip("liquidation_buffer", buffer)
    return Place(open_side(target), qty, "signal")


def buffer_problem(target: int, price: Decimal, qty: Decimal, terms: PerpTerms) -> str | None:
    """Why an entry at ``price`` would be liquidated too near (within the bot's buffer), or
    None. A long at leverage 1 is never liquidated."""
    if terms.liquidation_buffer_pct is None:
        return None
    name = SIDE_NAMES[target]
    try:
        liquidation = perp.liquidation_price(name, price, qty, terms.leverage, terms.tiers)
    except perp.PerpRuleError as error:
        return f"no {name} opened: {error}"
    if liquidation <= 0:
        return None
    distance = abs(price - liquidation) / price * HUNDRED
    if distance >= terms.liquidation_buffer_pct:
        return None
    return (
        f"no {name} opened: at {terms.leverage}x its liquidation price "
        f"{liquidation.quantize(Decimal('1e-8')).normalize():f} is {distance:.2f}% from the "
        f"entry {price.normalize():f}, nearer than the buffer of "
        f"{terms.liquidation_buffer_pct.normalize():f}%"
    )

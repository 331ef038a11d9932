"""A perp bot's position accounting: fills, funding and the mark (``books`` calls in).

A ``Position`` of a perp holds a ``side`` and a quantity that is never negative. A fill on the
side of the position (or on a flat one) opens or increases it; the other side reduces it (the
exchange refuses a reversal in one order, and so does the decision: close, then open). With
``s`` +1 for a long and -1 for a short:

- open / increase: ``entry_price`` is the quantity-weighted average, the fee is added to
  ``entry_fees``;
- reduce by ``q`` at ``P``: the trade's ``pnl = s (P - E) q - fee - fees share + funding
  share``, where the shares are the pro-rata parts of ``entry_fees`` and of ``open_funding``
  (the funding received on the quantity held, negative when paid). A round trip's pnl is
  therefore net of both fees AND of the funding it paid or received, as the engine's trade pnl;
- funding: each tick reads the position's funding from the exchange (``perp_sync``); the
  change since the last read goes to ``open_funding`` and to the cumulative ``funding``;
- ``unrealized_pnl = s (mark - E) q - entry_fees + open_funding``: what closing at the mark would
  add to ``pnl``, before the closing fee.
"""

from __future__ import annotations

from decimal import Decimal

from bots.models import Order, Position
from markets.exchanges.paper_ledger import PLACES

ZERO = Decimal(0)


def _q(value: Decimal) -> Decimal:
    return value.quantize(PLACES)


def sign_of(position: Position) -> int:
    return 1 if position.side == Position.Side.LONG else -1


def opens(position: Position, order_side: str) -> bool:
    """Whether a fill of ``order_side`` opens or increases ``position`` (else it reduces)."""
    if position.qty <= 0:
        return True
    return (order_side == Order.Side.BUY) == (position.side == Position.Side.LONG)


def perp_fill_apply(
    position: Position, order_side: str, qty: Decimal, price: Decimal, fee: Decimal
) -> Decimal:
    """Book a fill of ``qty`` at ``price`` (``fee`` in quote) on the perp ``position``
    (unsaved); the realised pnl (0 for an opening fill)."""
    if opens(position, order_side):
        if position.qty <= 0:
            position.side = (
                Position.Side.LONG if order_side == Order.Side.BUY else Position.Side.SHORT
            )
            position.qty, position.entry_price = ZERO, None
            position.entry_fees = position.open_funding = ZERO
        entry = position.entry_price or ZERO
        held = position.qty + qty
        position.entry_price = _q((position.qty * entry + qty * price) / held)
        position.qty = held
        position.entry_fees = _q(position.entry_fees + fee)
        return ZERO
    closed = min(qty, position.qty)
    fees_share = _q(position.entry_fees * closed / position.qty)
    funding_share = _q(position.open_funding * closed / position.qty)
    entry = position.entry_price or price
    pnl = _q(sign_of(position) * (price - entry) * closed - fee - fees_share + funding_share)
    position.qty -= closed
    position.entry_fees -= fees_share
    position.open_funding -= funding_share
    position.pnl = _q(position.pnl + pnl)
    if position.qty <= 0:
        position_flat(position)
    return pnl


def position_flat(position: Position) -> None:
    """Nothing held: the perp figures of the last position are cleared (``side`` is kept)."""
    position.qty, position.entry_price, position.entry_fees = ZERO, None, ZERO
    position.open_funding = position.margin = ZERO
    position.liquidation_price = None


def funding_read(position: Position, received: Decimal) -> Decimal:
    """The exchange says the open position has received ``received`` (since it opened); the
    change since the last read is booked. Returns that change."""
    change = _q(received - position.open_funding)
    position.open_funding = _q(received)
    position.funding = _q(position.funding + change)
    return change


def perp_unrealized(position: Position, mark: Decimal) -> Decimal:
    if position.qty <= 0 or position.entry_price is None:
        return ZERO
    move = sign_of(position) * (mark - position.entry_price) * position.qty
    return _q(move - position.entry_fees + position.open_funding)

"""The client order ids of a bot's orders: ``tb<bot id>-<what>``, the one scheme.

The exchange keeps the id with the order, so the id tells whose order it is (the prefix: the
tick adopts an open order with its bot's prefix that the books lack) and, for a decision, which
decision it carries out: the same bot, candle and side give the same id, so a decision is sent
at most once. Pure functions.
"""

from __future__ import annotations


def bot_order_prefix(bot_id: int) -> str:
    """What every client order id of the bot starts with."""
    return f"tb{bot_id}-"


def is_bot_order(bot_id: int, client_order_id: str) -> bool:
    return client_order_id.startswith(bot_order_prefix(bot_id))


def client_order_id(bot_id: int, candle_ms: int, side: str, *, stamp: str | None = None) -> str:
    """The one id a decision can have: the same bot, candle and side give the same id. A
    decision taken on a signal is stamped with the signal instead of the candle (``stamp``:
    ``signal_stamp``), so the same signal gives the same id whenever it is acted on."""
    return f"{bot_order_prefix(bot_id)}{_stamp(candle_ms, stamp)}-{side}"


def signal_stamp(signal_pk: int) -> str:
    """What a received signal's orders carry in place of the candle (``s<row id>``): a candle's
    stamp is digits only, so the two never meet."""
    return f"s{signal_pk}"


def _stamp(candle_ms: int, stamp: str | None) -> str:
    return stamp if stamp is not None else str(candle_ms // 1000)


def stop_order_id(bot_id: int, orders_before: int) -> str:
    """The id of the order that closes the position on a stop; ``orders_before`` (the bot's
    order count) makes each stop's id new."""
    return f"{bot_order_prefix(bot_id)}stop{orders_before}"


def close_order_id(bot_id: int, orders_before: int) -> str:
    """The id of the order that closes the position at the trader's request ("close position
    now"); ``orders_before`` (the bot's order count) makes each close's id new."""
    return f"{bot_order_prefix(bot_id)}close{orders_before}"


TRIGGER_SUFFIX = {"stop_loss": "sl", "take_profit": "tp"}


def trigger_order_id(bot_id: int, candle_ms: int, reason: str, *, stamp: str | None = None) -> str:
    """The id of a protective trigger order (``reason``: stop_loss or take_profit) placed on the
    tick of the candle opened at ``candle_ms`` (or on a signal: ``stamp``): one per candle and
    kind, so placing it is exactly-once like a decision's order."""
    return f"{bot_order_prefix(bot_id)}{_stamp(candle_ms, stamp)}-{TRIGGER_SUFFIX[reason]}"


def open_order_id(
    bot_id: int, candle_ms: int, position_side: str, *, stamp: str | None = None
) -> str:
    """The id of a perp bot's order that OPENS a position (``position_side``: long or short) on
    the tick of the candle opened at ``candle_ms``. A flip closes with ``client_order_id`` (its
    side: sell for a long) and opens with this one in the same tick: two ids, each sent once."""
    return f"{bot_order_prefix(bot_id)}{_stamp(candle_ms, stamp)}-{position_side}"


def liquidation_order_id(bot_id: int, key: str) -> str:
    """The id the books give a liquidation of the bot's position: ``key`` is the exchange's id
    of the liquidation order (the paper exchange's), else the open time of the candle whose tick
    found the position gone. The books go flat in the same transaction, so a second read of the
    same liquidation finds nothing left to book."""
    return f"{bot_order_prefix(bot_id)}liq{key}"

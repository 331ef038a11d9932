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


def client_order_id(bot_id: int, candle_ms: int, side: str) -> str:
    """The one id a decision can have: the same bot, candle and side give the same id."""
    return f"{bot_order_prefix(bot_id)}{candle_ms // 1000}-{side}"


def stop_order_id(bot_id: int, orders_before: int) -> str:
    """The id of the order that closes the position on a stop; ``orders_before`` (the bot's
    order count) makes each stop's id new."""
    return f"{bot_order_prefix(bot_id)}stop{orders_before}"


TRIGGER_SUFFIX = {"stop_loss": "sl", "take_profit": "tp"}


def trigger_order_id(bot_id: int, candle_ms: int, reason: str) -> str:
    """The id of a protective trigger order (``reason``: stop_loss or take_profit) placed on the
    tick of the candle opened at ``candle_ms``: one per candle and kind, so placing it is
    exactly-once like a decision's order."""
    return f"{bot_order_prefix(bot_id)}{candle_ms // 1000}-{TRIGGER_SUFFIX[reason]}"

"""The snapshot that starts a subscription, read only after the channel has been found to be the
user's, through the snapshot builder its app registered (``tradingbot.live.channels``).

Synchronous ORM code; the consumer calls it through ``database_sync_to_async``.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404

from tradingbot.errors import AppError
from tradingbot.live import channels
from tradingbot.live.protocol import Channel, Event, ProtocolError


def subscription_snapshot(*, user: Any, channel: Channel) -> Event:
    """The snapshot that starts a subscription to ``channel``.

    Raises ``ProtocolError`` ``not_found`` for an object that is not the user's (whether it
    exists or not, as the API's 404) and ``unknown_symbol`` for a market the exchange lacks.
    """
    kind = channels.kind_of(channel.kind)
    event: Event = {"type": f"{channel.kind}.snapshot", "channel": channel.name, "data": {}}
    if isinstance(kind, channels.ObjectKind):
        assert channel.object_id is not None
        try:
            event["data"] = dict(kind.snapshot(user=user, pk=channel.object_id))
        except Http404:
            raise ProtocolError(
                "not_found", f"no {channel.kind} {channel.object_id} of yours", channel=channel.name
            ) from None
        event["id"] = channel.object_id
        return event
    assert isinstance(kind, channels.MarketKind), "a parsed channel is of a registered kind"
    try:
        event["data"] = dict(
            kind.snapshot(
                exchange=channel.exchange, symbol=channel.symbol, timeframe=channel.timeframe
            )
        )
    except AppError as exc:
        raise ProtocolError(exc.code, exc.message, channel=channel.name) from None
    return event

"""Who may send a bot signals: its webhook's secret token, the IP allow-list, the rate limit.

- **The token** is the credential: it is in the webhook's path (``POST /api/signals/<token>``),
  because TradingView's alerts can set neither a header nor a cookie. Only its SHA-256 is
  stored (as ``accounts.ApiToken``'s key), so it is shown once, when it is made; making a new
  one (rotating) invalidates the old one at once, revoking it disables the bot's signals. A
  request is matched by looking its hash up (a unique index): nothing compares the secret
  itself, so the answer's timing tells nothing of it. A token that matches no bot whose
  signals are enabled is a 404, like any unknown path.
- **The allow-list** (optional): networks (``203.0.113.0/24``, ``2001:db8::1``) the webhook
  accepts requests from; any other address is a 403. The address is the request's
  ``REMOTE_ADDR``: the TCP peer, or behind a trusted proxy the client it names
  (``tradingbot.proxy``, ``TRUSTED_PROXIES``).
- **The rate limit**: at most ``SIGNAL_RATE_LIMIT`` requests per ``SIGNAL_RATE_WINDOW``
  seconds per bot, counted in Redis (a sliding window, as the login throttle's), so every web
  process sees the same count; over it, 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import secrets
import time
import uuid

import redis
from django.conf import settings
from django.db import transaction

from bots.models import Bot
from bots.services.events import bot_event
from tradingbot.errors import AppError
from tradingbot.logconfig import context
from tradingbot.redis import get_redis

logger = logging.getLogger("bots.bot")

TOKEN_BYTES = 32  # 43 URL-safe characters
RATE_KEY_PREFIX = "tb:signal-rate:"
MAX_ALLOWED_NETWORKS = 50


def signal_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def signal_token_rotate(*, bot: Bot) -> str:
    """Make the bot's signal token, replacing any earlier one (which stops working at once),
    and enable its signals; the token, which is not stored and cannot be shown again."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    rotated = bot.signal_token_hash is not None
    with transaction.atomic():
        Bot.objects.filter(pk=bot.pk).update(signal_token_hash=signal_token_hash(token))
        bot.signal_token_hash = signal_token_hash(token)
        verb = "replaced; the old one no longer works" if rotated else "made; signals enabled"
        bot_event(bot, "signal_token", f"Signal webhook token {verb}.")
    logger.info(
        "bot.signal_token", extra=context(bot_id=bot.pk, action="rotated" if rotated else "made")
    )
    return token


def signal_token_revoke(*, bot: Bot) -> None:
    """Disable the bot's signals: its token stops working (a new one can be made later)."""
    with transaction.atomic():
        Bot.objects.filter(pk=bot.pk).update(signal_token_hash=None)
        if bot.signal_token_hash is not None:
            bot_event(bot, "signal_token", "Signal webhook disabled; its token no longer works.")
        bot.signal_token_hash = None
    logger.info("bot.signal_token", extra=context(bot_id=bot.pk, action="revoked"))


def signal_allow_list_set(*, bot: Bot, networks: list[str]) -> list[str]:
    """Set the networks the bot's webhook accepts (empty: any address); each is checked and
    stored in its normal form (``10.0.0.7/8`` is refused: host bits set). 400
    ``validation_error`` naming the first bad entry."""
    if len(networks) > MAX_ALLOWED_NETWORKS:
        raise _bad_networks(f"At most {MAX_ALLOWED_NETWORKS} networks.")
    normal = []
    for text in networks:
        try:
            normal.append(str(ipaddress.ip_network(text.strip())))
        except ValueError as error:
            raise _bad_networks(f"{text!r} is not an IP network: {error}.") from None
    Bot.objects.filter(pk=bot.pk).update(signal_allowed_ips=normal)
    bot.signal_allowed_ips = normal
    return normal


def _bad_networks(message: str) -> AppError:
    return AppError("validation_error", message, 400, details={"networks": [message]})


def signal_bot(token: str) -> Bot:
    """The bot whose signals ``token`` sends (found by its hash); 404 ``not_found`` for a
    token of no bot, a rotated or revoked one."""
    bot = (
        Bot.objects.select_related("exchange_account", "user")
        .filter(signal_token_hash=signal_token_hash(token))
        .first()
    )
    if bot is None:
        raise AppError("not_found", "Not found.", 404)
    return bot


def signal_ip_check(bot: Bot, ip: str | None) -> None:
    """403 ``ip_not_allowed`` when the bot has an allow-list and ``ip`` is in none of it."""
    if not bot.signal_allowed_ips:
        return
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        address = None
    allowed = address is not None and any(
        address in ipaddress.ip_network(network) for network in bot.signal_allowed_ips
    )
    if not allowed:
        logger.warning("bot.signal_refused", extra=context(bot_id=bot.pk, ip=ip, reason="ip"))
        raise AppError("ip_not_allowed", "This address may not send signals to this bot.", 403)


def signal_rate_check(bot: Bot) -> None:
    """Count this request in the bot's window; 429 ``rate_limited`` with ``Retry-After`` when
    the window already holds ``SIGNAL_RATE_LIMIT`` (refused requests are not counted)."""
    key, now = f"{RATE_KEY_PREFIX}{bot.pk}", time.time()
    window, limit = settings.SIGNAL_RATE_WINDOW, settings.SIGNAL_RATE_LIMIT
    try:
        pipe = get_redis().pipeline()
        pipe.zremrangebyscore(key, 0, now - window)
        pipe.zcard(key)
        pipe.zrange(key, 0, 0, withscores=True)
        _, count, oldest = pipe.execute()
        if count < limit:
            pipe.zadd(key, {uuid.uuid4().hex: now})
            pipe.expire(key, window)
            pipe.execute()
            return
    except redis.RedisError:
        raise AppError("service_unavailable", "Signals are unavailable; try again.", 503) from None
    retry_after = max(1, math.ceil(oldest[0][1] + window - now))
    logger.warning("bot.signal_refused", extra=context(bot_id=bot.pk, reason="rate"))
    raise AppError(
        "rate_limited", f"Too many signals for this bot; try again in {retry_after} seconds.",
        429, details={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)},
    )  # fmt: skip

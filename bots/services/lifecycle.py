"""Creating, changing, starting and stopping bots; the staff kill switch.

Every state change is a conditional UPDATE on ``status``, so a start racing a stop (or a tick
that puts the bot in ``error``) ends in one clean state, never a mix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from bots.models import Bot, MarginMode, Order
from bots.services.books import position_of
from bots.services.events import bot_event, bot_set_status
from bots.services.lease import closing_now, no_lease
from bots.services.stopping import stop_actor
from bots.services.ticks import bot_tick
from markets import selectors as market_selectors
from markets.exchanges.base import MarketRules
from markets.exchanges.markets import get_catalog
from markets.models import Candle, ExchangeAccount
from markets.services import exchange_account_verify
from markets.timeframes import TIMEFRAMES, timeframe_ms
from strategies.services import usable_strategy, validated_params
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger("bots.bot")
ONE = Decimal(1)
MAX_REPLAY_SPEED = 6000.0  # candles a minute: 100 a second is as fast as a tick can follow


@dataclass(frozen=True)
class BotConfig:
    """What a trader chooses for a bot; checked as a whole by :func:`bot_config_check`."""

    name: str
    exchange_account: ExchangeAccount
    symbol: str
    timeframe: str
    strategy: str
    params: Mapping[str, Any]
    data_source: str = Bot.DataSource.LIVE
    replay_start: datetime | None = None
    replay_speed: float | None = None
    order_size_kind: str = Bot.OrderSizeKind.FRACTION
    order_size: Decimal = ONE
    max_position: Decimal | None = None
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    daily_loss_limit: Decimal | None = None
    leverage: int = 1
    margin_mode: str = MarginMode.ISOLATED
    liquidation_buffer_pct: Decimal | None = None


def _invalid(field: str, message: str, code: str = "validation_error") -> AppError:
    return AppError(code, message, 400, details={field: [message]})


def bot_config_check(*, user: User, config: BotConfig) -> dict[str, Any]:
    """The model fields for ``config``, or the 400 envelope naming the field that is wrong."""
    account = config.exchange_account
    if account.user_id != user.pk:
        raise AppError("not_found", "Exchange account not found.", 404)
    strategy = usable_strategy(config.strategy)
    params = validated_params(strategy, config.params)
    if config.timeframe not in TIMEFRAMES:
        raise _invalid("timeframe", f"Use one of {', '.join(TIMEFRAMES)}.")
    if market_selectors.is_data_only(exchange=account.exchange, symbol=config.symbol):
        raise _invalid(
            "symbol",
            f"{config.symbol} is a data-only market (candles imported from a file, no exchange "
            f"rules): backtest it; a bot needs a market {account.exchange} lists.",
        )
    rules = get_catalog(account.exchange).rules(config.symbol)  # unknown_symbol otherwise
    fields: dict[str, Any] = {
        "name": config.name.strip(), "exchange_account": account, "symbol": config.symbol,
        "timeframe": config.timeframe, "strategy_id": strategy.key, "params": params,
        "data_source": config.data_source,
        **_replay_fields(config, account),
        **_risk_fields(config),
        **_market_terms(user, config, rules, shorts=strategy(params).allows_short),
    }  # fmt: skip
    if not fields["name"]:
        raise _invalid("name", "A bot needs a name.")
    return fields


def _replay_fields(config: BotConfig, account: ExchangeAccount) -> dict[str, Any]:
    if config.data_source == Bot.DataSource.LIVE:
        return {"replay_start_ms": None, "replay_speed": None}
    if config.data_source != Bot.DataSource.REPLAY:
        raise _invalid("data_source", "kind must be live or replay.")
    if account.mode != ExchangeAccount.Mode.PAPER:
        raise _invalid("data_source", "A replay trades on a paper account only.")
    if config.replay_start is None:
        raise _invalid("data_source", "A replay needs a start time.")
    speed = config.replay_speed
    if speed is None or not (0 < speed <= MAX_REPLAY_SPEED):
        raise _invalid("data_source", f"speed must be above 0 and at most {MAX_REPLAY_SPEED:g}.")
    step = timeframe_ms(config.timeframe)
    start_ms = int(config.replay_start.timestamp() * 1000) // step * step
    has_data = Candle.objects.filter(
        exchange=account.exchange, symbol=config.symbol, timeframe=config.timeframe,
        open_time__gte=start_ms,
    ).exists()  # fmt: skip
    if not has_data:
        raise AppError(
            "empty_period",
            f"No stored {config.timeframe} candles of {config.symbol} from the replay start on.",
            400, details={"data_source": ["no stored candles to replay from this start"]},
        )  # fmt: skip
    return {"replay_start_ms": start_ms, "replay_speed": float(speed)}


def _risk_fields(config: BotConfig) -> dict[str, Any]:
    size = config.order_size
    if config.order_size_kind == Bot.OrderSizeKind.FRACTION:
        if not (0 < size <= 1):
            raise _invalid("order_size", "A fraction must be above 0 and at most 1.")
    elif config.order_size_kind == Bot.OrderSizeKind.QUOTE:
        if size <= 0:
            raise _invalid("order_size", "A quote amount must be positive.")
    else:
        raise _invalid("order_size", "Give either fraction or quote.")
    for name, upper in (("stop_loss_pct", Decimal(100)), ("take_profit_pct", Decimal(10_000))):
        value = getattr(config, name)
        if value is not None and not (0 < value < upper):
            raise _invalid(name, f"Must be above 0 and below {upper} (percent).")
    for name in ("max_position", "daily_loss_limit"):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise _invalid(name, "Must be positive (quote currency) or null.")
    return {
        "order_size_kind": config.order_size_kind, "order_size": size,
        "max_position": config.max_position, "stop_loss_pct": config.stop_loss_pct,
        "take_profit_pct": config.take_profit_pct, "daily_loss_limit": config.daily_loss_limit,
    }  # fmt: skip


def _market_terms(
    user: User, config: BotConfig, rules: MarketRules, *, shorts: bool
) -> dict[str, Any]:
    """Leverage, margin mode and liquidation buffer: a linear perp's, within the market's and
    the user's (staff-set) maximum; a spot market takes none of them, and no short."""
    if config.margin_mode != MarginMode.ISOLATED:
        raise _invalid("margin_mode", "Only isolated margin is supported (cross: not yet).")
    perp = market_selectors.perp_market(
        exchange=config.exchange_account.exchange, symbol=config.symbol
    )
    if rules.type == "spot":
        _check_spot_terms(config, shorts)
    elif perp is not None:
        _check_leverage(user, config, perp.max_leverage)
    else:
        raise _invalid("symbol", f"{config.symbol} is a {rules.type} market; bots trade spot.")
    buffer = config.liquidation_buffer_pct
    if buffer is not None and not (0 < buffer < 100):
        raise _invalid("liquidation_buffer_pct", "Must be above 0 and below 100 (percent).")
    return {
        "leverage": config.leverage, "margin_mode": config.margin_mode,
        "liquidation_buffer_pct": buffer,
    }  # fmt: skip


def _check_spot_terms(config: BotConfig, shorts: bool) -> None:
    swap = f"{config.symbol}:{config.symbol.partition('/')[2]}"
    if shorts:
        raise _invalid(
            "params",
            f"{config.symbol} is a spot market: a bot cannot short it, so allow_short must be "
            f"false (its perpetual swap {swap} can be shorted).",
        )
    for name, value, default in (
        ("leverage", config.leverage, 1),
        ("liquidation_buffer_pct", config.liquidation_buffer_pct, None),
    ):
        if value != default:
            raise _invalid(
                name, f"{config.symbol} is a spot market: {name} is for perpetual swaps."
            )


def _check_leverage(user: User, config: BotConfig, market_most: int) -> None:
    most, whose = market_most, f"{config.symbol} allows"
    if user.max_leverage is not None and user.max_leverage < most:
        most, whose = user.max_leverage, "your account is capped at"
    if not (1 <= config.leverage <= most):
        raise _invalid("leverage", f"Must be from 1 to {most}: {whose} {most}.")


def _unique_name(user: User, name: str, exclude: int | None = None) -> None:
    others = Bot.objects.filter(user=user, name=name)
    taken = (others.exclude(pk=exclude) if exclude is not None else others).exists()
    if taken:
        raise _invalid("name", "You already have a bot with this name.", "name_taken")


def bot_create(*, user: User, config: BotConfig) -> Bot:
    """A new bot, stopped, with a flat position."""
    fields = bot_config_check(user=user, config=config)
    _unique_name(user, fields["name"])
    try:
        with transaction.atomic():
            bot = Bot.objects.create(user=user, **fields)
            position_of(bot)
    except IntegrityError:  # the same name created concurrently
        raise _invalid("name", "You already have a bot with this name.", "name_taken") from None
    logger.info("bot.created", extra=context(bot_id=bot.pk, user_id=user.pk, symbol=bot.symbol))
    return bot


def bot_update(*, bot: Bot, config: BotConfig) -> Bot:
    """Change a stopped bot's configuration. A running bot must be stopped first (409): its
    open orders and position belong to the configuration they were made under."""
    if bot.status != Bot.Status.STOPPED and bot.status != Bot.Status.ERROR:
        raise AppError("bot_running", "Stop the bot before changing it.", 409)
    fields = bot_config_check(user=bot.user, config=config)
    _unique_name(bot.user, fields["name"], exclude=bot.pk)
    market_changed = (fields["symbol"], fields["exchange_account"].pk) != (
        bot.symbol, bot.exchange_account_id,
    )  # fmt: skip
    if market_changed and position_of(bot).qty > 0:
        raise _invalid("symbol", "Close the position before moving the bot to another market.")
    if _feed_changed(bot, fields):
        # Another market, timeframe or replay: the candles it acted on are not this feed's.
        fields.update(last_candle_ms=None, risk_exit_target=None, signal_target=None)
    updated = Bot.objects.filter(pk=bot.pk, status__in=(Bot.Status.STOPPED, Bot.Status.ERROR))
    if not updated.update(**fields, updated_at=timezone.now()):
        raise AppError("bot_running", "Stop the bot before changing it.", 409)
    bot.refresh_from_db()
    if market_changed:
        position_of(bot)
    return bot


def _feed_changed(bot: Bot, fields: dict[str, Any]) -> bool:
    """True when the bot will read other candles than it did: a new strategy, parameters or
    risk settings continue after the last candle acted on (a replay resumes where it was)."""
    before = (bot.exchange_account_id, bot.symbol, bot.timeframe, bot.data_source,
              bot.replay_start_ms)  # fmt: skip
    after = (fields["exchange_account"].pk, fields["symbol"], fields["timeframe"],
             fields["data_source"], fields["replay_start_ms"])  # fmt: skip
    return before != after


def bot_delete(*, bot: Bot) -> None:
    if bot.is_active:
        raise AppError("bot_running", "Stop the bot before deleting it.", 409)
    bot_id = bot.pk
    bot.delete()
    logger.info("bot.deleted", extra=context(bot_id=bot_id, user_id=bot.user_id))


def bot_start(
    *, bot: Bot, confirm_live: bool = False, clock: Callable[[], float] = time.time
) -> Bot:
    """Start a stopped (or failed) bot: it ticks at once, then on every candle close.

    A bot on a live account trades real money: it starts only with ``confirm_live`` (400
    ``confirm_live_required`` otherwise), and only once the exchange has accepted the account's
    keys (an unverified account is checked again now: 400 ``exchange_auth_failed`` when the
    keys are rejected, 503 ``exchange_unreachable`` when the exchange cannot be asked).

    A replay continues where it stopped: its market time resumes after the last candle the bot
    acted on (or at the replay's start), at the wall time of this start.
    """
    if bot.status not in (Bot.Status.STOPPED, Bot.Status.ERROR):
        raise AppError("invalid_transition", f"The bot is {bot.status}; it cannot start.", 409)
    if closing_now(bot):  # its first tick must not race the close over the bot's orders
        raise AppError("bot_busy", "The bot's position is being closed; start it in a moment.", 409)
    usable_strategy(bot.strategy_id)  # staff may have disabled it since
    _live_money_check(bot, confirm_live=confirm_live)
    fields: dict[str, Any] = {
        "last_error": "", "error_streak": 0, "stop_flatten": False, "stop_requested_by": "",
        "degraded_since": None, "degraded_reason": "", "next_tick_at": timezone.now(),
        **no_lease(),
    }  # fmt: skip
    if bot.data_source == Bot.DataSource.REPLAY:
        step = timeframe_ms(bot.timeframe)
        resume = bot.last_candle_ms + step if bot.last_candle_ms is not None else None
        fields["replay_resume_ms"] = resume or bot.replay_start_ms
        fields["replay_started_at"] = clock()
    if not bot_set_status(
        bot, Bot.Status.RUNNING, expected=(Bot.Status.STOPPED, Bot.Status.ERROR), **fields
    ):
        raise AppError("invalid_transition", "The bot changed meanwhile; reload it.", 409)
    money = " with real money" if bot.is_live_money else ""
    bot_event(
        bot, "started", f"Started on {bot.symbol} {bot.timeframe} ({bot.data_source}){money}."
    )
    bot.refresh_from_db()
    return bot


def _live_money_check(bot: Bot, *, confirm_live: bool) -> None:
    """A live account's bot: the trader confirmed it, and the exchange accepts the keys."""
    account = bot.exchange_account
    if not account.is_live:
        return
    if not confirm_live:
        raise AppError(
            "confirm_live_required",
            f"“{bot.name}” trades real money on {account.label} ({bot.symbol}): confirm the "
            "start with confirm_live: true.",
            400,
            details={"confirm_live": ["Required to start a bot on a live account."]},
        )
    if account.verified_at is None:
        exchange_account_verify(account=account)


def bot_stop(
    *, bot: Bot, flatten: bool = False, by: User | None = None, reason: str = "",
    clock: Callable[[], float] = time.time,
) -> Bot:  # fmt: skip
    """Stop the bot: cancel its open orders and, with ``flatten``, close its position.

    ``by`` is who asks (the bot's trader, or a staff member); without one, the system does,
    because of ``reason``: the bot's log says who stopped it. The stop is carried out at once
    when no tick holds the bot, trying each exchange request once with a short timeout (orders
    it could not cancel are listed as such), so it ends ``stopped`` even when the exchange is
    down; otherwise the tick in progress carries it out before it lets go.
    """
    if bot.status == Bot.Status.STOPPED:
        raise AppError("invalid_transition", "The bot is already stopped.", 409)
    actor = stop_actor(bot, by=by, reason=reason)
    if bot.status == Bot.Status.ERROR and not flatten and not _has_open_orders(bot):
        bot_set_status(bot, Bot.Status.STOPPED, expected=(Bot.Status.ERROR,),
                       stop_requested_by=actor)  # fmt: skip
        bot_event(bot, "stopped", f"Stopped by {actor} (it was in error).", data={"by": actor})
        return bot
    # A second stop never takes back a flatten that an earlier one (or the kill switch) asked for.
    flatten = flatten or (bot.status == Bot.Status.STOPPING and bot.stop_flatten)
    if bot.status == Bot.Status.STOPPING and bot.stop_requested_by:
        actor = bot.stop_requested_by  # the first to ask stopped it
    moved = bot_set_status(
        bot, Bot.Status.STOPPING,
        expected=(Bot.Status.RUNNING, Bot.Status.STOPPING, Bot.Status.ERROR),
        stop_flatten=flatten, next_tick_at=timezone.now(), stop_requested_by=actor,
    )  # fmt: skip
    if not moved:
        raise AppError("invalid_transition", "The bot changed meanwhile; reload it.", 409)
    bot_tick(bot_id=bot.pk, clock=clock)
    bot.refresh_from_db()
    if bot.status == Bot.Status.STOPPING:  # a tick holds it; the log says who asked meanwhile
        bot_event(bot, "stop_requested",
                  f"Stop asked by {actor}; the tick in progress carries it out.",
                  data={"by": actor})  # fmt: skip
    return bot


def _has_open_orders(bot: Bot) -> bool:
    return bot.orders.filter(status__in=Order.OPEN_STATUSES).exists()


def bots_kill(*, user: User | None = None, by: User | None = None, flatten: bool = False) -> int:
    """The staff kill switch: stop every active bot (of ``user``, or of everyone).

    Each bot is moved to ``stopping`` at once (no new order can be decided after that); its
    orders are cancelled by its own next tick, which the dispatcher runs within seconds, so that
    one slow exchange does not hold up stopping the others. Returns how many bots it stopped.
    """
    bots = Bot.objects.filter(status__in=(Bot.Status.RUNNING, Bot.Status.ERROR,
                                          Bot.Status.STOPPING))  # fmt: skip
    if user is not None:
        bots = bots.filter(user=user)
    count = 0
    for bot in bots.select_related("user"):
        actor = stop_actor(bot, by=by, reason="the staff kill switch was used") + (
            " (kill switch)" if by is not None else ""
        )
        moved = bot_set_status(
            bot, Bot.Status.STOPPING, expected=(bot.status,), stop_flatten=flatten,
            next_tick_at=timezone.now(), stop_requested_by=actor,
        )  # fmt: skip
        if moved:
            count += 1
            bot_event(bot, "killed", f"Stop asked by {actor}.", level="warning",
                      data={"by": actor})  # fmt: skip
    logger.warning(
        "bots.kill_switch",
        extra=context(user_id=user.pk if user else None, by=by.pk if by else None, bots=count),
    )
    return count

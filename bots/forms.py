from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from bots.models import Bot, MarginMode
from bots.services.lifecycle import MAX_REPLAY_SPEED, BotConfig
from markets.models import ExchangeAccount
from markets.perp import MAX_LEVERAGE
from markets.timeframes import TIMEFRAMES
from strategies.base import Strategy
from strategies.forms import params_from_query, percent_field

# What a link may fill in on the new-bot form (backtests.links writes them), besides the
# strategy, its parameters (param_<name>), the exchange and the replay's start.
PREFILL_FIELDS = ("name", "symbol", "timeframe", "stop_loss_pct", "take_profit_pct", "leverage")


class BotStopForm(forms.Form):
    flatten = forms.BooleanField(
        required=False, label="Also close the position (market sell)", initial=False
    )


def _optional_amount(help_text: str) -> forms.DecimalField:
    return forms.DecimalField(
        required=False, max_digits=28, decimal_places=12, min_value=Decimal("0.000000000001"),
        max_value=Decimal(10**12), help_text=help_text,
    )  # fmt: skip


class AccountChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: ExchangeAccount) -> str:
        return f"{obj.label} ({obj.get_mode_display()})"


class BotForm(forms.Form):
    """A bot's configuration (create and edit); its strategy's parameters are a
    ``StrategyParamsForm`` of their own. The service checks the whole (``bot_config_check``)."""

    name = forms.CharField(max_length=100)
    exchange_account = AccountChoiceField(queryset=ExchangeAccount.objects.none())
    symbol = forms.CharField(
        max_length=40, initial="BTC/USDT",
        help_text="A spot market (BTC/USDT), or a perpetual swap (BTC/USDT:USDT) to short or lever",
    )  # fmt: skip
    timeframe = forms.ChoiceField(choices=[(tf, tf) for tf in TIMEFRAMES], initial="5m")
    strategy = forms.ChoiceField(choices=())
    data_source = forms.ChoiceField(
        choices=Bot.DataSource.choices, initial=Bot.DataSource.LIVE, widget=forms.RadioSelect,
        help_text="Live: the exchange's candles as they close. Replay: stored candles, paper only.",
    )  # fmt: skip
    replay_start = forms.DateTimeField(
        required=False, label="Replay from", help_text="Market time, in your time zone",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )  # fmt: skip
    replay_speed = forms.FloatField(
        required=False, min_value=0.001, max_value=MAX_REPLAY_SPEED, initial=60,
        help_text="Candles a minute (60 = one candle a second)",
    )  # fmt: skip
    order_size_kind = forms.ChoiceField(
        choices=Bot.OrderSizeKind.choices, initial=Bot.OrderSizeKind.FRACTION, label="Order size",
    )  # fmt: skip
    order_size = forms.DecimalField(
        max_digits=28, decimal_places=12, min_value=Decimal(0), initial=Decimal(1),
        label="Amount", help_text="A fraction of the free quote balance in (0, 1], or quote",
    )  # fmt: skip
    max_position = _optional_amount("Largest position value (quote); empty = none")
    stop_loss_pct = percent_field(
        "Stop loss %", "Below the entry price", max_value=Decimal("99.999"), decimal_places=3
    )
    take_profit_pct = percent_field(
        "Take profit %", "Above the entry price", max_value=Decimal("9999.999"), decimal_places=3
    )
    daily_loss_limit = _optional_amount("Stop and flatten at this day's loss (quote); empty = none")
    leverage = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_LEVERAGE, initial=1,
        help_text="Perpetual swaps: 1 to the market's maximum; 1 on spot",
    )  # fmt: skip
    margin_mode = forms.ChoiceField(
        required=False, choices=MarginMode.choices, initial=MarginMode.ISOLATED,
        help_text="Perpetual swaps: each position margined on its own (cross: not yet)",
    )  # fmt: skip
    liquidation_buffer_pct = percent_field(
        "Liquidation buffer %",
        "Perpetual swaps: no entry whose liquidation price is nearer than this; empty = none",
        max_value=Decimal("99.999"),
        decimal_places=3,
    )

    def __init__(self, *args: Any, user: Any, strategies: list[tuple[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        field = self.fields["exchange_account"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = ExchangeAccount.objects.filter(user=user).order_by("label")
        strategy = self.fields["strategy"]
        assert isinstance(strategy, forms.ChoiceField)
        strategy.choices = strategies

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("data_source") == Bot.DataSource.REPLAY:
            for name in ("replay_start", "replay_speed"):
                if cleaned.get(name) is None and name not in self.errors:
                    self.add_error(name, "A replay needs this.")
        return cleaned

    def config(self, params: dict[str, Any]) -> BotConfig:
        data = self.cleaned_data
        replay = data["data_source"] == Bot.DataSource.REPLAY
        return BotConfig(
            name=data["name"], exchange_account=data["exchange_account"], symbol=data["symbol"],
            timeframe=data["timeframe"], strategy=data["strategy"], params=params,
            data_source=data["data_source"],
            replay_start=data["replay_start"] if replay else None,
            replay_speed=data["replay_speed"] if replay else None,
            order_size_kind=data["order_size_kind"], order_size=data["order_size"],
            max_position=data["max_position"], stop_loss_pct=data["stop_loss_pct"],
            take_profit_pct=data["take_profit_pct"], daily_loss_limit=data["daily_loss_limit"],
            leverage=data["leverage"] or 1, margin_mode=data["margin_mode"] or MarginMode.ISOLATED,
            liquidation_buffer_pct=data["liquidation_buffer_pct"],
        )  # fmt: skip


def bot_initial(bot: Bot) -> dict[str, Any]:
    """A stored bot as ``BotForm`` initial values (edit page)."""
    start = bot.replay_start_ms
    return {
        "name": bot.name, "exchange_account": bot.exchange_account_id, "symbol": bot.symbol,
        "timeframe": bot.timeframe, "strategy": bot.strategy_id, "data_source": bot.data_source,
        "replay_start": None if start is None else datetime.fromtimestamp(start / 1000, tz=UTC),
        "replay_speed": bot.replay_speed, "order_size_kind": bot.order_size_kind,
        "order_size": bot.order_size, "max_position": bot.max_position,
        "stop_loss_pct": bot.stop_loss_pct, "take_profit_pct": bot.take_profit_pct,
        "daily_loss_limit": bot.daily_loss_limit, "leverage": bot.leverage,
        "margin_mode": bot.margin_mode, "liquidation_buffer_pct": bot.liquidation_buffer_pct,
    }  # fmt: skip


def bot_prefill(
    query: Mapping[str, str], *, user: Any, strategies: Mapping[str, type[Strategy]]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A new bot's initial values from a link's query (a backtest's or a sweep combination's
    configuration, ``backtests.links``), and its strategy's parameters (None: the defaults).

    Only initial values: nothing is checked until the trader posts the form. ``exchange``
    picks the trader's first paper account on it; an unknown strategy is the first one.
    """
    key = query.get("strategy", "")
    if key not in strategies:
        key = next(iter(strategies), "")
    initial: dict[str, Any] = {"strategy": key}
    initial |= {name: query[name] for name in PREFILL_FIELDS if query.get(name)}
    start = parse_datetime(query.get("replay_start") or "")
    if start is not None and timezone.is_aware(start):
        initial["replay_start"] = start
    account = (
        ExchangeAccount.objects.filter(
            user=user, exchange=query.get("exchange", ""), mode=ExchangeAccount.Mode.PAPER
        )
        .order_by("label")
        .first()
    )
    if account is not None:
        initial["exchange_account"] = account.pk
    given = any(name.startswith("param_") for name in query)
    params = params_from_query(strategies[key], query) if key and given else None
    return initial, params


def stored_range_of(form: BotForm, ranges: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The stored candles (``stored_candle_ranges``) of the market the form shows: its
    account's exchange, its symbol and timeframe; None when none are stored."""
    account_field = form.fields["exchange_account"]
    assert isinstance(account_field, forms.ModelChoiceField)
    chosen = form["exchange_account"].value()
    accounts = {str(a.pk): a.exchange for a in account_field.queryset}  # type: ignore[union-attr]
    exchange = accounts.get(str(chosen)) if chosen else next(iter(accounts.values()), None)
    market = (exchange, form["symbol"].value(), form["timeframe"].value())
    found = next(
        (r for r in ranges if (r["exchange"], r["symbol"], r["timeframe"]) == market), None
    )
    if found is None:
        return None
    return {**found, "first_time": _aware(found["first"]), "last_time": _aware(found["last"])}


def _aware(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


def replay_from_stored_start(form: BotForm, stored: dict[str, Any] | None) -> None:
    """An unbound form's "Replay from" defaults to the first stored candle of its market."""
    if form.is_bound or stored is None or form.initial.get("replay_start"):
        return
    form.initial["replay_start"] = stored["first_time"]

"""The bots endpoints: create (and every refusal), list, detail, change, delete, start and stop,
the bot's positions, orders, trades and events, scoping to the owner, and authentication.

Bots trade on a funded paper account. A replay bot is driven through its ticks in the test
process with a manual clock (``tests.bots.bot_helpers``); no worker is involved.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bots import services
from bots.models import Bot, BotEvent, Order, Position, Trade
from markets.models import ExchangeAccount
from strategies.services import strategy_catalogue_sync
from tests.backtests.api_helpers import all_pages, error_of
from tests.bots.bot_helpers import (
    SYMBOL,
    TIMEFRAME,
    ManualClock,
    ReplayBot,
    as_datetime,
    paper_account,
    replay_bot,
    store_candles,
)

pytestmark = pytest.mark.django_db

BOTS = "/api/bots"
FIRST, COUNT = 2000, 150
FAST_CROSS = {"fast": 2, "slow": 3}  # crosses often: a few dozen candles make several trades
BOT_FIELDS = {
    "id", "name", "status", "state", "health", "health_reason", "last_error", "exchange_account",
    "symbol", "timeframe", "strategy", "params", "data_source", "order_size", "max_position",
    "stop_loss_pct", "take_profit_pct", "daily_loss_limit", "leverage", "margin_mode",
    "liquidation_buffer_pct", "position", "signals_enabled", "signal_allowed_ips", "signal_target",
    "last_tick_at", "created_at", "updated_at",
}  # fmt: skip
ORDER_FIELDS = {
    "client_order_id", "side", "order_type", "price", "qty", "filled_qty", "average_price",
    "status", "reason", "created_at",
}  # fmt: skip
TRADE_FIELDS = {"side", "qty", "price", "fee", "pnl", "time"}
EVENT_FIELDS = {"id", "time", "level", "kind", "message", "data"}
FLAT = {
    "side": "long", "qty": "0", "entry_price": None, "pnl": "0", "unrealized_pnl": "0",
    "mark_price": None, "leverage": 1, "margin": "0", "liquidation_price": None, "funding": "0",
}  # fmt: skip


@pytest.fixture(autouse=True)
def catalogue() -> None:
    strategy_catalogue_sync()


@pytest.fixture
def rows() -> list[Any]:
    return store_candles(FIRST, COUNT)


@pytest.fixture
def account(user: Any) -> ExchangeAccount:
    return paper_account(user)


def iso(ms: int) -> str:
    return as_datetime(ms).isoformat().replace("+00:00", "Z")


def live_body(account: ExchangeAccount, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "Trend", "exchange_account": account.pk, "symbol": SYMBOL,
        "timeframe": TIMEFRAME, "strategy": "ma_cross", "params": {"fast": 5, "slow": 20},
        "data_source": {"kind": "live"}, "order_size": {"fraction": 1},
        "stop_loss_pct": None, "take_profit_pct": None, "daily_loss_limit": None,
        **overrides,
    }  # fmt: skip


def replay_body(account: ExchangeAccount, rows: list[Any], **overrides: Any) -> dict[str, Any]:
    source = {"kind": "replay", "start": iso(rows[0].open_time), "speed": 60}
    return live_body(account, data_source=source, **overrides)


def created(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(BOTS, body, format="json")
    assert response.status_code == 201, response.content
    bot: dict[str, Any] = response.json()
    return bot


def send(client: Any, method: str, url: str, body: dict[str, Any]) -> Any:
    """A request with ``body`` as JSON (a GET sends none)."""
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body, format="json")


def text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


# --- create --------------------------------------------------------------------------------------


def test_create_answers_201_with_the_stopped_bot_and_a_flat_position(auth_client, account):
    # when
    response = auth_client.post(
        BOTS,
        live_body(account, stop_loss_pct="2.5", take_profit_pct=6, daily_loss_limit="150.50",
                  max_position="2500"),
        format="json",
    )  # fmt: skip
    # then
    assert response.status_code == 201
    body = response.json()
    assert set(body) == BOT_FIELDS
    bot = Bot.objects.get()
    assert body["id"] == bot.pk
    assert (body["status"], body["last_error"], body["last_tick_at"]) == ("stopped", "", None)
    assert (body["name"], body["exchange_account"]) == ("Trend", account.pk)
    assert (body["symbol"], body["timeframe"], body["strategy"]) == (SYMBOL, "5m", "ma_cross")
    assert body["params"] == {"fast": 5, "slow": 20, "ma": "sma", "allow_short": False}
    assert body["data_source"] == {"kind": "live", "start": None, "speed": None}
    assert body["order_size"] == {"fraction": "1"}
    assert (body["stop_loss_pct"], body["take_profit_pct"]) == ("2.5", "6")
    assert (body["daily_loss_limit"], body["max_position"]) == ("150.5", "2500")
    assert body["position"] == FLAT
    assert bot.status == Bot.Status.STOPPED
    assert (bot.order_size_kind, bot.order_size) == ("fraction", Decimal(1))
    assert bot.stop_loss_pct == Decimal("2.5")
    assert bot.daily_loss_limit == Decimal("150.5")
    position = Position.objects.get(bot=bot)
    assert (position.symbol, position.qty, position.pnl) == (SYMBOL, 0, 0)
    # the detail is the same body
    assert auth_client.get(f"{BOTS}/{bot.pk}").json() == body


def test_a_replay_bot_starts_at_the_candle_holding_its_start(auth_client, account, rows):
    # given: a start 90 s into a 5-minute candle
    body = replay_body(account, rows, order_size={"quote": "1000"})
    body["data_source"]["start"] = iso(rows[3].open_time + 90_000)
    # when
    bot = created(auth_client, body)
    # then
    assert bot["data_source"] == {"kind": "replay", "start": iso(rows[3].open_time), "speed": 60.0}
    assert bot["order_size"] == {"quote": "1000"}
    stored = Bot.objects.get()
    assert (stored.replay_start_ms, stored.replay_speed) == (rows[3].open_time, 60.0)
    assert (stored.order_size_kind, stored.order_size) == ("quote", Decimal(1000))


def test_data_source_and_order_size_default_to_live_and_the_whole_balance(auth_client, account):
    body = live_body(account)
    del body["data_source"], body["order_size"], body["stop_loss_pct"]
    bot = created(auth_client, body)
    assert bot["data_source"]["kind"] == "live"
    assert bot["order_size"] == {"fraction": "1"}
    assert bot["stop_loss_pct"] is None


START_OF_SAMPLE = "2020-01-01T00:00:00Z"  # before the stored stretch: fine, it starts at rows[0]
AFTER_SAMPLE = "2099-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"name": ""}, "validation_error", "name"),
        ({"name": "x" * 101}, "validation_error", "name"),
        ({"exchange_account": "main"}, "validation_error", "exchange_account"),
        ({"exchange_account": None}, "validation_error", "exchange_account"),
        ({"symbol": ["BTC/USDT"]}, "validation_error", "symbol"),
        ({"timeframe": "7m"}, "validation_error", "timeframe"),
        ({"strategy": "nope"}, "unknown_strategy", "strategy"),
        ({"symbol": "NOPE/USDT"}, "unknown_symbol", "symbol"),
        ({"params": {"fast": "five"}}, "invalid_params", "fast"),
        ({"params": {"fast": 5, "slow": 20, "turbo": 1}}, "invalid_params", "turbo"),
        ({"params": {"allow_short": True}}, "validation_error", "params"),
        ({"params": [5, 20]}, "validation_error", "params"),
        ({"order_size": {"fraction": 0.5, "quote": 100}}, "validation_error", "order_size"),
        ({"order_size": {}}, "validation_error", "order_size"),
        ({"order_size": {"fraction": 1.5}}, "validation_error", "order_size"),
        ({"order_size": {"quote": "-10"}}, "validation_error", "order_size"),
        ({"order_size": 1}, "validation_error", "order_size"),
        ({"stop_loss_pct": 100}, "validation_error", "stop_loss_pct"),
        ({"stop_loss_pct": "1.2345"}, "validation_error", "stop_loss_pct"),
        ({"take_profit_pct": 0}, "validation_error", "take_profit_pct"),
        ({"take_profit_pct": 10000}, "validation_error", "take_profit_pct"),
        ({"daily_loss_limit": -5}, "validation_error", "daily_loss_limit"),
        ({"max_position": "NaN"}, "validation_error", "max_position"),
        ({"data_source": {"kind": "backfill"}}, "validation_error", "data_source"),
        ({"data_source": {"kind": "replay", "speed": 60}}, "validation_error", "data_source"),
        (
            {"data_source": {"kind": "replay", "start": START_OF_SAMPLE, "speed": 0}},
            "validation_error",
            "data_source",
        ),
        (
            {"data_source": {"kind": "replay", "start": START_OF_SAMPLE, "speed": 6001}},
            "validation_error",
            "data_source",
        ),
        (
            {"data_source": {"kind": "replay", "start": AFTER_SAMPLE, "speed": 60}},
            "empty_period",
            "data_source",
        ),
        ({"data_source": {"kind": "live", "speed": 60}}, "validation_error", "data_source"),
    ],
)
def test_a_bad_bot_is_a_400_naming_the_field_and_writes_nothing(
    auth_client, account, rows, overrides, code, field
):
    # when
    response = auth_client.post(BOTS, live_body(account, **overrides), format="json")
    # then
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == code
    assert field in error["details"], error
    assert not Bot.objects.exists()
    assert not Position.objects.exists()


def test_a_body_that_is_not_json_is_a_400_malformed_request(auth_client, account):
    response = auth_client.post(BOTS, "{'name': ", content_type="application/json")
    assert error_of(response, 400)["code"] == "malformed_request"
    assert not Bot.objects.exists()


def test_a_replay_on_a_live_account_is_refused(auth_client, user, rows, exchange_account_factory):
    live = exchange_account_factory(user=user, mode=ExchangeAccount.Mode.LIVE)
    response = auth_client.post(BOTS, replay_body(live, rows), format="json")
    assert error_of(response, 400)["details"]["data_source"] == [
        "A replay trades on a paper account only."
    ]
    assert not Bot.objects.exists()


def test_a_second_bot_of_the_same_name_is_refused(auth_client, account):
    created(auth_client, live_body(account))
    response = auth_client.post(BOTS, live_body(account), format="json")
    error = error_of(response, 400)
    assert (error["code"], list(error["details"])) == ("name_taken", ["name"])
    assert Bot.objects.count() == 1


def test_another_users_exchange_account_is_a_404_and_writes_nothing(auth_client, other_user):
    theirs = paper_account(other_user)
    response = auth_client.post(BOTS, live_body(theirs), format="json")
    assert error_of(response, 404)["code"] == "not_found"
    assert not Bot.objects.exists()


# --- list ----------------------------------------------------------------------------------------


def test_the_list_is_the_users_bots_newest_first_paginated_and_filtered(
    auth_client, user, other_user, account, rows
):
    # given: three of mine (one running) and one of another user
    mine = [
        replay_bot(user, account, start_ms=rows[0].open_time, name=f"bot {n}").bot for n in range(3)
    ]
    services.bot_start(bot=mine[1], clock=ManualClock())
    replay_bot(other_user, paper_account(other_user), start_ms=rows[0].open_time)
    # when
    first = auth_client.get(BOTS, {"page_size": 2}).json()
    everything = all_pages(auth_client, BOTS, page_size=2)
    running = auth_client.get(BOTS, {"status": "running"}).json()
    # then
    assert first["count"] == 3
    assert first["next"] is not None
    assert first["previous"] is None
    assert [bot["id"] for bot in everything] == [bot.pk for bot in reversed(mine)]
    assert all(bot["position"] == FLAT for bot in everything)
    assert [bot["id"] for bot in running["results"]] == [mine[1].pk]
    assert running["results"][0]["status"] == "running"


@pytest.mark.parametrize("query", [{"status": "paused"}, {"page": 0}, {"page_size": 101}])
def test_a_bad_list_query_is_a_400(auth_client, query):
    response = auth_client.get(BOTS, query)
    assert error_of(response, 400)["code"] == "validation_error"
    assert set(error_of(response)["details"]) == set(query)


def test_a_page_of_bots_reads_their_positions_in_one_query(
    auth_client, user, account, rows, django_assert_max_num_queries
):
    for n in range(5):
        replay_bot(user, account, start_ms=rows[0].open_time, name=f"bot {n}")
    # token lookup (+ its last-use update), count, page, positions
    with django_assert_max_num_queries(5):
        response = auth_client.get(BOTS)
    assert len(response.json()["results"]) == 5


# --- scoping and authentication ------------------------------------------------------------------

BOT_ENDPOINTS = [
    ("get", ""),
    ("put", ""),
    ("patch", ""),
    ("delete", ""),
    ("post", "/start"),
    ("post", "/stop"),
    ("get", "/positions"),
    ("get", "/orders"),
    ("get", "/trades"),
    ("get", "/events"),
    ("get", "/chart"),
]


@pytest.mark.parametrize(("method", "suffix"), BOT_ENDPOINTS)
def test_another_users_bot_is_a_404_on_every_endpoint(
    auth_client, account, other_user, rows, method, suffix
):
    # given: a bot that each of these requests could act on, were it the caller's
    theirs = replay_bot(other_user, paper_account(other_user), start_ms=rows[0].open_time).bot
    body = replay_body(account, rows, name="mine now")
    # when
    response = send(auth_client, method, f"{BOTS}/{theirs.pk}{suffix}", body)
    # then
    assert error_of(response, 404)["code"] == "not_found"
    theirs.refresh_from_db()
    assert (theirs.name, theirs.status) == ("ma_cross replay", Bot.Status.STOPPED)
    assert not BotEvent.objects.filter(bot=theirs).exists()


@pytest.mark.parametrize(("method", "suffix"), BOT_ENDPOINTS)
def test_a_bot_that_does_not_exist_is_a_404(auth_client, method, suffix):
    response = send(auth_client, method, f"{BOTS}/999999{suffix}", {})
    assert error_of(response, 404)["code"] == "not_found"


@pytest.mark.parametrize(("method", "suffix"), [("get", None), ("post", None), *BOT_ENDPOINTS])
def test_every_endpoint_needs_credentials(api_client, user, account, rows, method, suffix):
    bot = replay_bot(user, account, start_ms=rows[0].open_time).bot
    url = BOTS if suffix is None else f"{BOTS}/{bot.pk}{suffix}"
    response = send(api_client, method, url, live_body(account, name="anon"))
    assert error_of(response, 401)["code"] == "not_authenticated"
    assert list(Bot.objects.values_list("name", "status")) == [("ma_cross replay", "stopped")]


# --- start, stop, change, delete -----------------------------------------------------------------


def test_start_runs_the_bot_and_stop_stops_it(auth_client, account, rows):
    bot_id = created(auth_client, replay_body(account, rows))["id"]
    # when
    started = auth_client.post(f"{BOTS}/{bot_id}/start")
    # then
    assert started.status_code == 200
    assert started.json()["status"] == "running"
    assert Bot.objects.get().status == Bot.Status.RUNNING
    assert Bot.objects.get().next_tick_at is not None  # the dispatcher picks it up
    # when
    stopped = auth_client.post(f"{BOTS}/{bot_id}/stop", {"flatten": False}, format="json")
    # then
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped"
    assert Bot.objects.get().status == Bot.Status.STOPPED
    kinds = set(BotEvent.objects.filter(bot_id=bot_id).values_list("kind", flat=True))
    assert {"started", "stopped"} <= kinds


def test_starting_a_running_bot_and_stopping_a_stopped_one_are_409(auth_client, account, rows):
    bot_id = created(auth_client, replay_body(account, rows))["id"]
    # a stopped bot cannot stop
    response = auth_client.post(f"{BOTS}/{bot_id}/stop")
    assert error_of(response, 409)["code"] == "invalid_transition"
    # a running bot cannot start
    assert auth_client.post(f"{BOTS}/{bot_id}/start").status_code == 200
    response = auth_client.post(f"{BOTS}/{bot_id}/start")
    assert error_of(response, 409)["code"] == "invalid_transition"
    assert Bot.objects.get().status == Bot.Status.RUNNING


def test_a_bad_flatten_is_a_400_and_the_bot_keeps_running(auth_client, account, rows):
    bot_id = created(auth_client, replay_body(account, rows))["id"]
    auth_client.post(f"{BOTS}/{bot_id}/start")
    response = auth_client.post(f"{BOTS}/{bot_id}/stop", {"flatten": "perhaps"}, format="json")
    assert list(error_of(response, 400)["details"]) == ["flatten"]
    assert Bot.objects.get().status == Bot.Status.RUNNING


def test_a_running_bot_cannot_be_changed_or_deleted(auth_client, account, rows):
    bot_id = created(auth_client, replay_body(account, rows))["id"]
    auth_client.post(f"{BOTS}/{bot_id}/start")
    for response in (
        auth_client.put(f"{BOTS}/{bot_id}", replay_body(account, rows, name="B"), format="json"),
        auth_client.patch(f"{BOTS}/{bot_id}", {"name": "B"}, format="json"),
        auth_client.delete(f"{BOTS}/{bot_id}"),
    ):
        assert error_of(response, 409)["code"] == "bot_running"
    assert Bot.objects.get().name == "Trend"


def test_put_replaces_the_configuration(auth_client, account, rows):
    bot_id = created(auth_client, replay_body(account, rows))["id"]
    body = replay_body(account, rows, name="Swing", params={"fast": 8, "slow": 21, "ma": "ema"},
                       order_size={"quote": "250"}, take_profit_pct="4")  # fmt: skip
    # when
    response = auth_client.put(f"{BOTS}/{bot_id}", body, format="json")
    # then
    assert response.status_code == 200
    bot = response.json()
    assert bot["name"] == "Swing"
    assert bot["params"] == {"fast": 8, "slow": 21, "ma": "ema", "allow_short": False}
    assert bot["order_size"] == {"quote": "250"}
    assert bot["take_profit_pct"] == "4"
    stored = Bot.objects.get()
    assert (stored.name, stored.order_size_kind, stored.order_size) == ("Swing", "quote", 250)


def test_patch_changes_only_the_fields_sent(auth_client, account, rows):
    before = created(auth_client, replay_body(account, rows, params={"fast": 7, "slow": 30}))
    # when
    response = auth_client.patch(f"{BOTS}/{before['id']}", {"stop_loss_pct": 3}, format="json")
    # then
    assert response.status_code == 200
    after = response.json()
    assert after["stop_loss_pct"] == "3"
    unchanged = BOT_FIELDS - {"stop_loss_pct", "updated_at"}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert Bot.objects.get().stop_loss_pct == Decimal(3)


def test_patch_back_to_live_and_to_a_quote_size(auth_client, account, rows):
    bot_id = created(auth_client, replay_body(account, rows))["id"]
    response = auth_client.patch(
        f"{BOTS}/{bot_id}",
        {"data_source": {"kind": "live"}, "order_size": {"quote": 75, "fraction": None}},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["data_source"] == {"kind": "live", "start": None, "speed": None}
    stored = Bot.objects.get()
    assert (stored.data_source, stored.replay_start_ms) == ("live", None)
    assert (stored.order_size_kind, stored.order_size) == ("quote", 75)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"order_size": {"fraction": 0.5, "quote": 10}}, "order_size"),
        ({"stop_loss_pct": -1}, "stop_loss_pct"),
        ({"data_source": {"kind": "replay"}}, "data_source"),
        ({"name": None}, "name"),
        (["name", "B"], "non_field_errors"),
    ],
)
def test_a_bad_patch_is_a_400_and_changes_nothing(auth_client, account, rows, changes, field):
    before = created(auth_client, replay_body(account, rows))
    response = auth_client.patch(f"{BOTS}/{before['id']}", changes, format="json")
    assert field in error_of(response, 400)["details"]
    assert auth_client.get(f"{BOTS}/{before['id']}").json() == before


def test_patch_to_another_users_exchange_account_is_a_404(auth_client, account, other_user, rows):
    bot_id = created(auth_client, replay_body(account, rows))["id"]
    theirs = paper_account(other_user)
    response = auth_client.patch(f"{BOTS}/{bot_id}", {"exchange_account": theirs.pk}, format="json")
    assert response.status_code == 404
    assert Bot.objects.get().exchange_account_id == account.pk


def test_delete_removes_a_stopped_bot(auth_client, account, rows):
    bot_id = created(auth_client, replay_body(account, rows))["id"]
    auth_client.post(f"{BOTS}/{bot_id}/start")
    auth_client.post(f"{BOTS}/{bot_id}/stop")
    # when
    response = auth_client.delete(f"{BOTS}/{bot_id}")
    # then
    assert response.status_code == 204
    assert not Bot.objects.exists()
    assert not Position.objects.exists()
    assert auth_client.get(f"{BOTS}/{bot_id}").status_code == 404


# --- what a running bot did ----------------------------------------------------------------------


@pytest.fixture
def traded(auth_client, account, rows) -> Bot:
    """A replay bot created through the API that has ticked through 60 candles, trading."""
    bot_id = created(auth_client, replay_body(account, rows, params=FAST_CROSS))["id"]
    runner = ReplayBot(Bot.objects.get(pk=bot_id), ManualClock())
    runner.start()
    for _ in range(60):
        runner.next_candle()
    bot = runner.refresh()
    assert bot.status == Bot.Status.RUNNING, bot.last_error
    assert Trade.objects.filter(bot=bot, side="sell").count() >= 3
    return bot


def test_trades_are_paginated_newest_first_with_times_in_epoch_ms(auth_client, traded):
    # when
    page = auth_client.get(f"{BOTS}/{traded.pk}/trades", {"page_size": 3}).json()
    trades = all_pages(auth_client, f"{BOTS}/{traded.pk}/trades", page_size=3)
    # then
    stored = list(Trade.objects.filter(bot=traded).order_by("-time", "-id"))
    assert page["count"] == len(stored) == len(trades)
    assert len(page["results"]) == 3
    assert page["next"].endswith("page=2&page_size=3")
    assert all(set(trade) == TRADE_FIELDS for trade in trades)
    assert [t["time"] for t in trades] == [int(s.time.timestamp() * 1000) for s in stored]
    assert [t["time"] for t in trades] == sorted((t["time"] for t in trades), reverse=True)
    assert [(t["side"], t["qty"], t["price"], t["fee"], t["pnl"]) for t in trades] == [
        (s.side, text(s.qty), text(s.price), text(s.fee), text(s.pnl)) for s in stored
    ]
    # the trades' realised pnl is the position's
    realised = sum(Decimal(t["pnl"]) for t in trades)
    detail = auth_client.get(f"{BOTS}/{traded.pk}").json()
    assert Decimal(detail["position"]["pnl"]) == realised != 0


def test_the_detail_and_positions_show_the_books(auth_client, traded):
    position = Position.objects.get(bot=traded)
    # when
    detail = auth_client.get(f"{BOTS}/{traded.pk}").json()
    positions = auth_client.get(f"{BOTS}/{traded.pk}/positions").json()
    # then
    assert detail["status"] == "running"
    assert detail["last_tick_at"] is not None
    assert detail["position"] == {
        "side": "long", "qty": text(position.qty), "entry_price": text(position.entry_price),
        "pnl": text(position.pnl), "unrealized_pnl": text(position.unrealized_pnl),
        "mark_price": text(position.mark_price), "leverage": 1, "margin": "0",
        "liquidation_price": None, "funding": "0",
    }  # fmt: skip
    assert positions["count"] == 1
    (row,) = positions["results"]
    assert row["symbol"] == SYMBOL
    assert (row["qty"], row["mark_price"]) == (text(position.qty), text(position.mark_price))


def test_orders_filter_open_means_pending_or_open(auth_client, traded):
    # given: the bot's filled market orders, plus one decided (pending) and one resting (open)
    filled = Order.objects.filter(bot=traded).count()
    assert filled >= 6
    for status, candle in ((Order.Status.PENDING, 1), (Order.Status.OPEN, 2)):
        Order.objects.create(
            bot=traded, client_order_id=f"tb{traded.pk}-{candle}-buy", symbol=SYMBOL,
            side="buy", order_type="limit", price=Decimal("16000.5"), qty=Decimal("0.01"),
            status=status, reason="signal", candle_ms=candle * 1000,
        )  # fmt: skip
    url = f"{BOTS}/{traded.pk}/orders"
    # when
    waiting = auth_client.get(url, {"status": "open"}).json()
    pending = auth_client.get(url, {"status": "pending"}).json()
    closed = auth_client.get(url, {"status": "closed", "page_size": 100}).json()
    everything = auth_client.get(url, {"page_size": 100}).json()
    # then
    assert {o["status"] for o in waiting["results"]} == {"pending", "open"}
    assert waiting["count"] == 2
    assert [o["client_order_id"] for o in pending["results"]] == [f"tb{traded.pk}-1-buy"]
    assert closed["count"] == filled
    assert {o["status"] for o in closed["results"]} == {"closed"}
    assert everything["count"] == filled + 2
    assert all(set(order) == ORDER_FIELDS for order in everything["results"])
    newest = everything["results"][0]
    assert (newest["status"], newest["price"], newest["qty"]) == ("open", "16000.5", "0.01")
    market = closed["results"][-1]
    assert (market["order_type"], market["price"]) == ("market", None)
    assert Decimal(market["filled_qty"]) == Decimal(market["qty"]) > 0
    assert auth_client.get(url, {"status": "filled"}).status_code == 400


def test_events_are_paginated_newest_first_and_filtered_by_level(auth_client, traded):
    BotEvent.objects.create(bot=traded, kind="insufficient_funds", message="m", level="warning")
    url = f"{BOTS}/{traded.pk}/events"
    # when
    events = all_pages(auth_client, url, page_size=25)
    warnings = auth_client.get(url, {"level": "warning"}).json()
    # then
    stored = list(BotEvent.objects.filter(bot=traded).order_by("-time", "-id"))
    assert len(stored) > 25  # more than one page
    assert [e["id"] for e in events] == [s.pk for s in stored]
    assert all(set(event) == EVENT_FIELDS for event in events)
    assert events[-1]["kind"] == "started"
    assert events[0]["time"] == int(stored[0].time.timestamp() * 1000)
    assert [e["kind"] for e in warnings["results"]] == ["insufficient_funds"]
    assert auth_client.get(url, {"level": "debug"}).status_code == 400


def test_an_exchange_account_with_bots_cannot_be_deleted(auth_client, account):
    bot = created(auth_client, live_body(account))
    response = auth_client.delete(f"/api/exchange-accounts/{account.pk}")
    assert error_of(response, 409)["code"] == "account_in_use"
    assert ExchangeAccount.objects.filter(pk=account.pk).exists()
    assert auth_client.delete(f"/api/bots/{bot['id']}").status_code == 204
    assert auth_client.delete(f"/api/exchange-accounts/{account.pk}").status_code == 204


def test_the_chart_carries_the_strategys_averages_from_its_first_candle_to_the_bots_clock(
    auth_client, user, account
):
    # given: a replay bot of 5- and 20-candle averages that has acted on 60 candles, with far
    # more candles stored before its start than the averages need to warm up
    stored = store_candles(FIRST, 400)
    runner = replay_bot(
        user, account, start_ms=stored[300].open_time, params={"fast": 5, "slow": 20}
    )
    runner.start()
    for _ in range(60):
        runner.next_candle()
    bot = runner.refresh()
    # when
    chart = auth_client.get(f"{BOTS}/{bot.pk}/chart").json()
    # then: the last 200 candles up to the bot's clock, each average defined on every one of
    # them (warmed up on the candles before) and equal to the mean of the closes it covers
    candles = chart["candles"]
    assert len(candles) == 200
    assert candles[-1][0] == bot.last_candle_ms
    closes = [float(row.close) for row in stored]
    last = next(i for i, row in enumerate(stored) if row.open_time == bot.last_candle_ms)
    by_key = {plot["key"]: plot for plot in chart["indicators"]}
    assert set(by_key) == {"fast", "slow"}
    for key, length in (("fast", 5), ("slow", 20)):
        data = by_key[key]["data"]
        assert [time for time, _ in data] == [row[0] for row in candles]
        assert data[-1][1] == pytest.approx(sum(closes[last - length + 1 : last + 1]) / length)

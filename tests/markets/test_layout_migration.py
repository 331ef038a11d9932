"""A database created before the markets app existed migrates to the new layout with every row
kept: exchange accounts (secrets still readable), candles, market snapshots and the paper
ledger change app in the migration state only, their tables and rows stay, and their content
types follow them (permissions and admin log entries keep pointing at the right model).

The old layout is the one the migrations before the move built (``OLD_LAYOUT``): the test takes
the test database back there, fills it through the historical models, and migrates forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.apps.registry import Apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bots.models import Bot, Order, Position, Trade
from markets.models import Candle, ExchangeAccount, MarketSnapshot, PaperBalance, PaperOrder

pytestmark = pytest.mark.django_db(transaction=True)

OLD_LAYOUT = [
    ("accounts", "0003_user_time_zone"),
    ("bots", "0002_bot_botevent_order_position_trade_bot_bot_due_and_more"),
    ("markets", None),
]
SECRET = "old-layout-secret-9f2c"


@pytest.fixture
def old_layout() -> Iterator[Apps]:
    """The database as the old layout had it; migrated forward to the newest state afterwards,
    whatever the test did."""
    executor = MigrationExecutor(connection)
    executor.migrate(OLD_LAYOUT)
    try:
        yield executor.loader.project_state([node for node in OLD_LAYOUT if node[1]]).apps
    finally:
        _migrate_to_newest()


def _migrate_to_newest() -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _old_rows(apps: Apps) -> dict[str, Any]:
    user = apps.get_model("accounts", "User").objects.create(email="old@example.com", password="x")
    account = apps.get_model("accounts", "ExchangeAccount").objects.create(
        user=user, exchange="bitget", label="Old live", mode="live",
        api_key="key-1234", api_secret=SECRET, passphrase="phrase",
    )  # fmt: skip
    apps.get_model("bots", "PaperBalance").objects.create(
        account=account, currency="USDT", free=Decimal("950.5"), used=Decimal("49.5")
    )
    apps.get_model("bots", "PaperOrder").objects.create(
        account=account, client_order_id="tb1-1-buy", symbol="BTC/USDT", side="buy",
        order_type="market", amount=Decimal("0.01"), status="closed", timestamp=1_700_000_000_000,
    )  # fmt: skip
    candle = apps.get_model("bots", "Candle")
    prices = {"open": 100, "high": 101, "low": 99, "close": 100.5, "volume": 1}
    candle.objects.bulk_create(
        candle(
            exchange="bitget",
            symbol="BTC/USDT",
            timeframe="1h",
            open_time=i * 3_600_000,
            **{name: value + i for name, value in prices.items()},
        )
        for i in range(5)
    )
    apps.get_model("bots", "MarketSnapshot").objects.create(exchange="bitget", markets={"X": 1})
    strategy = apps.get_model("strategies", "Strategy").objects.get_or_create(
        key="ma_cross", defaults={"name": "MA cross"}
    )[0]
    bot = apps.get_model("bots", "Bot").objects.create(
        user=user, exchange_account=account, name="Old bot", symbol="BTC/USDT", timeframe="1h",
        strategy=strategy, params={"fast": 5, "slow": 20},
    )  # fmt: skip
    order = apps.get_model("bots", "Order").objects.create(
        bot=bot, client_order_id="tb1-1-buy", symbol="BTC/USDT", side="buy",
        order_type="market", qty=Decimal("0.01"), reason="signal", candle_ms=0,
    )  # fmt: skip
    apps.get_model("bots", "Trade").objects.create(
        bot=bot, order=order, symbol="BTC/USDT", side="buy", qty=Decimal("0.01"),
        price=Decimal("100"), time="2024-01-01T00:00:00Z",
    )  # fmt: skip
    apps.get_model("bots", "Position").objects.create(
        bot=bot, symbol="BTC/USDT", qty=Decimal("0.01")
    )
    return {"user": user.pk, "account": account.pk, "bot": bot.pk}


def test_every_row_of_the_old_layout_is_kept_and_readable_after_the_move(old_layout):
    # given a database of the old layout, with rows in every moved table
    ids = _old_rows(old_layout)

    # when it migrates to the new layout
    _migrate_to_newest()

    # then every row is there, read through the new models
    account = ExchangeAccount.objects.get(pk=ids["account"])
    assert account.user_id == ids["user"]
    assert (account.label, account.mode) == ("Old live", "live")
    assert account.api_secret.reveal() == SECRET  # still decrypts
    assert account.api_key_masked.endswith("1234")
    balance = PaperBalance.objects.get(account=account)
    assert (balance.currency, balance.free, balance.used) == (
        "USDT",
        Decimal("950.5"),
        Decimal("49.5"),
    )
    assert PaperOrder.objects.get(account=account).client_order_id == "tb1-1-buy"
    assert Candle.objects.filter(exchange="bitget", symbol="BTC/USDT", timeframe="1h").count() == 5
    assert MarketSnapshot.objects.get().markets == {"X": 1}
    bot = Bot.objects.get(pk=ids["bot"])
    assert bot.exchange_account == account
    assert list(account.bots.values_list("pk", flat=True)) == [bot.pk]
    assert Order.objects.filter(bot=bot).count() == Trade.objects.filter(bot=bot).count() == 1
    assert Position.objects.get(bot=bot).qty == Decimal("0.01")


def test_permissions_and_admin_history_follow_the_moved_models(old_layout):
    # given the old layout's content types with a group's permission and a log entry on them
    ids = _old_rows(old_layout)
    old_types = {
        model: ContentType.objects.get(app_label=app, model=model)
        for app, model in (("accounts", "exchangeaccount"), ("bots", "candle"),
                           ("bots", "paperbalance"))
    }  # fmt: skip
    group = Group.objects.create(name="market staff")
    group.permissions.add(
        Permission.objects.get(content_type=old_types["candle"], codename="view_candle")
    )
    staff = old_layout.get_model("accounts", "User").objects.create(
        email="staff@example.com", password="x", is_staff=True
    )
    LogEntry.objects.create(
        user_id=staff.pk, content_type=old_types["exchangeaccount"], object_id=str(ids["account"]),
        object_repr="Old live", action_flag=CHANGE, change_message="looked",
    )  # fmt: skip

    # when it migrates to the new layout
    _migrate_to_newest()

    # then the same content type rows now name the markets app, and what pointed at them follows
    for model, before in old_types.items():
        after = ContentType.objects.get(pk=before.pk)
        assert (after.app_label, after.model) == ("markets", model)
    assert ContentType.objects.get_for_model(Candle).pk == old_types["candle"].pk
    assert list(group.permissions.values_list("content_type__app_label", "codename")) == [
        ("markets", "view_candle")
    ]
    entry = LogEntry.objects.get(change_message="looked")
    assert entry.get_edited_object() == ExchangeAccount.objects.get(pk=ids["account"])

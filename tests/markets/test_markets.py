"""Market rules, read from the shipped Bitget snapshot or the newest stored one."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from decimal import Decimal

import pytest

from markets.exchanges.errors import BelowMinimumError, InvalidOrderError, UnknownSymbolError
from markets.exchanges.markets import (
    MarketCatalog,
    forget_catalogs,
    get_catalog,
    shipped_catalog,
)
from markets.models import MarketSnapshot


@pytest.fixture
def catalog() -> MarketCatalog:
    return shipped_catalog("bitget")


@pytest.fixture
def _fresh_catalogs() -> Iterator[None]:
    forget_catalogs()
    yield
    forget_catalogs()


def check_at_price(
    catalog: MarketCatalog, symbol: str, *, amount: str, price: str
) -> tuple[Decimal, Decimal | None]:
    """``check_order`` for a limit order priced at the market's reference price."""
    return catalog.check_order(
        symbol, amount=Decimal(amount), price=Decimal(price), reference_price=Decimal(price)
    )


def test_it_reads_the_spot_rules(catalog: MarketCatalog) -> None:
    rules = catalog.rules("BTC/USDT")
    assert (rules.base, rules.quote, rules.type) == ("BTC", "USDT", "spot")
    assert rules.amount_step == Decimal("0.000001")
    assert rules.price_step == Decimal("0.01")
    assert rules.min_cost == Decimal(1)
    assert rules.min_amount is None  # Bitget lists 0: no minimum amount on spot
    assert (rules.maker_fee, rules.taker_fee) == (Decimal("0.002"), Decimal("0.002"))
    assert rules.active is True


def test_it_reads_the_swap_rules(catalog: MarketCatalog) -> None:
    rules = catalog.rules("BTC/USDT:USDT")
    assert rules.type == "swap"
    assert rules.min_amount == Decimal("0.0001")
    assert rules.min_cost == Decimal(5)
    assert rules.amount_step == Decimal("0.0001")
    assert rules.price_step == Decimal("0.1")
    assert (rules.maker_fee, rules.taker_fee) == (Decimal("0.0002"), Decimal("0.0006"))


def test_it_lists_the_shipped_markets(catalog: MarketCatalog) -> None:
    assert len(catalog.symbols) == 15
    assert {"BTC/USDT", "ETH/USDT", "BTC/USDT:USDT", "BTC/USD:BTC"} <= set(catalog.symbols)
    assert {"BTC", "USDT", "USD"} <= catalog.currencies


def test_it_truncates_amounts_and_rounds_prices_to_the_step(catalog: MarketCatalog) -> None:
    assert catalog.amount_to_precision("BTC/USDT", Decimal("0.0012349")) == Decimal("0.001234")
    assert catalog.price_to_precision("BTC/USDT", Decimal("25000.006")) == Decimal("25000.01")
    assert catalog.amount_to_precision("BTC/USDT", Decimal("0.0000009")) == Decimal(0)


def test_it_rounds_an_order_that_passes_the_minimums(catalog: MarketCatalog) -> None:
    amount, price = catalog.check_order(
        "BTC/USDT", amount=Decimal("0.0012349"), price=Decimal("25000.006"),
        reference_price=Decimal("25000"),
    )  # fmt: skip
    assert (amount, price) == (Decimal("0.001234"), Decimal("25000.01"))


def test_it_names_the_minimum_cost_it_refuses(catalog: MarketCatalog) -> None:
    with pytest.raises(BelowMinimumError) as caught:
        check_at_price(catalog, "BTC/USDT", amount="0.00001", price="25000")
    assert (
        caught.value.message
    ) == "order cost 0.25 USDT is below the minimum cost of 1 USDT for BTC/USDT"
    assert caught.value.details["min_cost"] == "1"
    assert caught.value.status == 400


def test_it_values_a_market_order_at_the_reference_price(catalog: MarketCatalog) -> None:
    # 0.001 BTC is 4.5 USDT at 4500, under the swap's 5 USDT minimum; 5.0 at 5000
    with pytest.raises(BelowMinimumError, match="minimum cost of 5 USDT"):
        catalog.check_order(
            "BTC/USDT:USDT", amount=Decimal("0.001"), price=None, reference_price=Decimal(4500)
        )
    assert catalog.check_order(
        "BTC/USDT:USDT", amount=Decimal("0.001"), price=None, reference_price=Decimal(5000)
    ) == (Decimal("0.001"), None)


def test_it_names_the_minimum_amount_it_refuses(catalog: MarketCatalog) -> None:
    with pytest.raises(BelowMinimumError) as caught:
        check_at_price(catalog, "BTC/USDT:USDT", amount="0.00005", price="100000")
    assert "below the minimum amount of 0.0001 BTC for BTC/USDT:USDT" in caught.value.message


def test_it_refuses_an_amount_that_rounds_to_zero(catalog: MarketCatalog) -> None:
    with pytest.raises(BelowMinimumError, match="rounds to zero at the amount precision"):
        check_at_price(catalog, "BTC/USDT", amount="0.0000004", price="1000000000")


def test_it_refuses_a_non_positive_amount(catalog: MarketCatalog) -> None:
    with pytest.raises(InvalidOrderError, match="positive"):
        check_at_price(catalog, "BTC/USDT", amount="0", price="1")


def test_it_refuses_an_unknown_symbol(catalog: MarketCatalog) -> None:
    with pytest.raises(UnknownSymbolError) as caught:
        catalog.rules("NOPE/USDT")
    assert caught.value.status == 400
    assert "symbol" in caught.value.details
    with pytest.raises(UnknownSymbolError):
        check_at_price(catalog, "NOPE/USDT", amount="1", price="1")


def test_it_refuses_an_inactive_market() -> None:
    markets = copy.deepcopy(shipped_catalog("bitget").markets)
    markets["BTC/USDT"]["active"] = False
    catalog = MarketCatalog("bitget", markets)
    assert catalog.rules("BTC/USDT").active is False
    with pytest.raises(InvalidOrderError, match="not active"):
        catalog.check_order(
            "BTC/USDT", amount=Decimal(1), price=Decimal(30000), reference_price=Decimal(30000)
        )


@pytest.mark.django_db
@pytest.mark.usefixtures("_fresh_catalogs")
def test_it_uses_the_shipped_snapshot_when_none_was_fetched() -> None:
    assert get_catalog("bitget").markets == shipped_catalog("bitget").markets


@pytest.mark.django_db
@pytest.mark.usefixtures("_fresh_catalogs")
def test_it_prefers_the_newest_stored_snapshot() -> None:
    # given: two fetched snapshots, the newer one with a 3 USDT minimum on BTC/USDT
    older = copy.deepcopy(shipped_catalog("bitget").markets)
    older["BTC/USDT"]["limits"]["cost"]["min"] = 2
    newer = copy.deepcopy(shipped_catalog("bitget").markets)
    newer["BTC/USDT"]["limits"]["cost"]["min"] = 3
    del newer["DOGE/USDT"]
    MarketSnapshot.objects.create(exchange="bitget", markets=older)
    MarketSnapshot.objects.create(exchange="bitget", markets=newer)
    MarketSnapshot.objects.create(exchange="otherex", markets={})
    # when
    catalog = get_catalog("bitget")
    # then
    assert catalog.rules("BTC/USDT").min_cost == Decimal(3)
    assert "DOGE/USDT" not in catalog.symbols
    with pytest.raises(BelowMinimumError, match="minimum cost of 3 USDT"):
        catalog.check_order(
            "BTC/USDT", amount=Decimal("0.0001"), price=Decimal(25000),
            reference_price=Decimal(25000),
        )  # fmt: skip


@pytest.mark.django_db
@pytest.mark.usefixtures("_fresh_catalogs")
def test_it_keeps_a_catalog_until_told_to_forget() -> None:
    # given: the process has read the catalog
    assert get_catalog("bitget").rules("BTC/USDT").min_cost == Decimal(1)
    markets = copy.deepcopy(shipped_catalog("bitget").markets)
    markets["BTC/USDT"]["limits"]["cost"]["min"] = 4
    MarketSnapshot.objects.create(exchange="bitget", markets=markets)
    # then: cached until forgotten (or the TTL passes)
    assert get_catalog("bitget").rules("BTC/USDT").min_cost == Decimal(1)
    forget_catalogs()
    assert get_catalog("bitget").rules("BTC/USDT").min_cost == Decimal(4)

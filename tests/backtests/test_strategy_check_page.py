"""The strategy page's check button: a POST (CSRF, any signed-in trader) runs both analyses on
the last 2,000 stored candles and shows the verdict in that strategy's card (Django test
client, real DB)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from markets.models import Candle
from strategies.checks import lookahead_analysis
from strategies.models import Strategy as StrategyRow
from strategies.registry import load_registry
from strategies.services import strategy_catalogue_sync
from tests.backtests.conftest import SampleMarket
from tests.backtests.test_pages import find, find_all, html, tags, text
from tests.strategies import peeking_strategy, raising_strategy
from tests.strategies.peeking_strategy import PeekingStrategy

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def peeking(strategy_catalogue: None) -> Iterator[None]:
    """The peeking and raising test strategies registered and in the catalogue, as
    STRATEGY_MODULES would have them; the configured registry back afterwards."""
    load_registry([peeking_strategy.MODULE, raising_strategy.MODULE])
    strategy_catalogue_sync()
    yield
    load_registry(django_settings.STRATEGY_MODULES)


def check_url(key: str) -> str:
    return f"/strategies/{key}/check/"


def test_every_strategy_card_has_the_button(trader: Client, sample_candles: SampleMarket) -> None:
    page = html(trader.get("/strategies/"))
    card = find(page, id="strategy-ma_cross")
    (form,) = find_all(card, class_="strategy-check-form")
    assert dict(form.attributes)["action"] == "/strategies/ma_cross/check/#check-ma_cross"
    assert dict(form.attributes)["method"] == "post"
    assert find_all(form, name="csrfmiddlewaretoken")
    assert not find_all(page, class_="strategy-check")  # no result before a check


def test_a_builtin_passes_and_the_result_shows_in_its_card(
    trader: Client, user: Any, sample_candles: SampleMarket, caplog: pytest.LogCaptureFixture
) -> None:
    # when
    with caplog.at_level(logging.INFO, logger="backtests.strategy_checks"):
        response = trader.post(check_url("ma_cross"))

    # then the strategies page comes back with the verdict in the ma_cross card only
    assert response.status_code == 200
    page = html(response)
    result = find(find(page, id="strategy-ma_cross"), id="check-ma_cross")
    assert dict(result.attributes)["data-check"] == "passed"
    assert text(find(result, id="check-verdict")) == "Passed"
    assert text(find(result, id="check-candles")).startswith(
        "With its default parameters, on 2000 candles of bitget BTC/USDT 5m, "
    )
    converged = {
        dict(row.attributes)["data-column"]: text(tags(row, "td")[2])
        for row in tags(find(result, id="recursive-columns"), "tr")[1:]
    }
    assert converged == {"fast": "yes", "slow": "yes"}
    assert not find_all(result, id="lookahead-findings")
    assert len(find_all(page, class_="strategy-check")) == 1
    # and one log line with the ids
    (record,) = [r for r in caplog.records if r.getMessage() == "strategy.checked"]
    assert (record.user_id, record.strategy, record.passed) == (user.pk, "ma_cross", True)
    assert (record.exchange, record.symbol, record.timeframe) == ("bitget", "BTC/USDT", "5m")


def test_a_peeking_strategy_fails_naming_the_candle_and_the_column(
    trader: Client, sample_candles: SampleMarket, peeking: None
) -> None:
    # given what the analysis finds on the last 2,000 stored candles
    candles = sample_candles.frame().iloc[-2000:].reset_index(drop=True)
    expected = lookahead_analysis(PeekingStrategy(), candles).findings

    # when
    response = trader.post(check_url("test_peeking"))

    # then
    assert response.status_code == 200
    result = find(html(response), id="check-test_peeking")
    assert dict(result.attributes)["data-check"] == "failed"
    verdict = find(result, id="check-verdict")
    assert text(tags(verdict, "strong")[0]) == "Failed"
    assert text(verdict).startswith(
        f"Failed : lookahead: first differing candle {expected[0].time_iso}, "
        f"column '{expected[0].column}'"
    )
    rows = tags(find(result, id="lookahead-findings"), "tr")[1:]
    shown = [
        (dict(row.attributes)["data-column"], *(text(cell) for cell in tags(row, "td")[1:4]))
        for row in rows
    ]
    assert shown == [
        (finding.column, finding.time_iso, finding.full_text, finding.truncated_text)
        for finding in expected
    ]
    # next_close cut short: the candle after the cut is unknown
    assert {row[0]: row[3] for row in shown}["next_close"] == "NaN"


def test_a_strategy_whose_code_raises_shows_its_error(
    trader: Client, sample_candles: SampleMarket, peeking: None, caplog: pytest.LogCaptureFixture
) -> None:
    response = trader.post(check_url("test_raising"))

    assert response.status_code == 200
    result = find(html(response), id="check-test_raising")
    assert dict(result.attributes)["data-check"] == "error"
    assert text(find(result, id="check-error")) == (
        "the strategy raised RuntimeError: this strategy is broken"
    )
    assert [r.strategy for r in caplog.records if r.getMessage() == "strategy.check_failed"] == [
        "test_raising"
    ]


def test_another_stored_market_can_be_chosen(trader: Client, sample_candles: SampleMarket) -> None:
    # given a second market with too few candles for the checks
    Candle.objects.bulk_create(
        Candle(exchange="bitget", symbol="ETH/USDT", timeframe="1h", open_time=i * 3_600_000,
               open=1, high=1, low=1, close=1, volume=1)
        for i in range(50)
    )  # fmt: skip

    # when it is chosen
    response = trader.post(check_url("macd"), {"market": "bitget|ETH/USDT|1h"})

    # then the card says why nothing ran, and offers both markets
    assert response.status_code == 400
    result = find(html(response), id="check-macd")
    assert text(find(result, id="check-error")) == ("the checks need at least 301 candles, got 50")
    options = [dict(o.attributes)["value"] for o in tags(result, "option")]
    assert options == ["bitget|BTC/USDT|5m", "bitget|ETH/USDT|1h"]


@pytest.mark.parametrize(
    ("market", "message"),
    [
        ("bitget|DOGE/USDT|5m", "no candles are stored for bitget DOGE/USDT 5m"),
        ("BTC/USDT", "'BTC/USDT' is not a market: write exchange|symbol|timeframe"),
    ],
)
def test_a_market_without_candles_is_a_400_saying_so(
    trader: Client, sample_candles: SampleMarket, market: str, message: str
) -> None:
    response = trader.post(check_url("macd"), {"market": market})
    assert response.status_code == 400
    assert text(find(html(response), id="check-error")) == message


def test_it_is_a_post_for_signed_in_traders_with_a_csrf_token(
    client: Client, user: Any, sample_candles: SampleMarket
) -> None:
    # anonymous: to the login page
    response = client.post(check_url("macd"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    # a GET runs nothing
    client.force_login(user)
    assert client.get(check_url("macd")).status_code == 405
    # without the CSRF token: refused
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(check_url("macd")).status_code == 403


def test_an_unknown_or_disabled_strategy_is_a_404(
    trader: Client, sample_candles: SampleMarket
) -> None:
    assert trader.post(check_url("no_such_strategy")).status_code == 404
    StrategyRow.objects.filter(key="macd").update(enabled=False)
    assert trader.post(check_url("macd")).status_code == 404

"""Hostile input (issue 15): bodies a fuzzer or an attacker sends get the error envelope with the
right status, at most two log lines, and never a 500; nothing is stored, and the server goes on
serving.

The reproducers: a lone UTF-16 surrogate (JSON's ``"\\ud800"``) in a choice field, a free-text
field or a ``params`` key; a strategy parameter of 10**309 (beyond any float); JSON nested 1,000
levels deep; a multipart content type on a body that is not multipart; a login with a form body.
Bodies are written as raw JSON text: a Python client could not even encode a lone surrogate.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from backtests.models import Backtest, Sweep
from bots.models import Bot
from markets.models import ExchangeAccount
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import as_datetime, paper_account, store_candles
from tests.conftest import server_env
from tests.daphne_process import daphne_running
from tradingbot.logconfig import JsonFormatter, TextFormatter

pytestmark = pytest.mark.django_db

SURROGATE = '"\\ud800"'  # JSON text: a string holding the lone surrogate U+D800
HUGE = "1" + "0" * 309  # JSON text: the integer 10**309, beyond the largest float
DEEP = "[" * 1000 + "]" * 1000
HOLE = "@@hostile@@"  # where a body template takes the raw JSON text
MAX_LOG_LINES = 2
ENVELOPE_KEYS = {"code", "message", "details"}


# --- the bodies ----------------------------------------------------------------------------------


def exchange_account(**fields: Any) -> dict[str, Any]:
    return {"exchange": "bitget", "label": "Fuzz", "mode": "paper", **fields}


def run(market: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "strategy": "ma_cross", "params": {"fast": 5, "slow": 20}, **market,
        "initial_cash": "10000", "fee_rate": "0.001", **fields,
    }  # fmt: skip


def sweep(market: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return run(market, **{"grid": {"fast": [5, 10]}, "rank_by": "sharpe", **fields})


def bot(account_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Fuzz", "exchange_account": account_id, "symbol": "BTC/USDT",
        "timeframe": "5m", "strategy": "ma_cross", "params": {"fast": 5, "slow": 20},
        "data_source": {"kind": "live"}, "order_size": {"fraction": 1}, **fields,
    }  # fmt: skip


def with_hole(body: dict[str, Any], raw: str) -> str:
    """``body`` as JSON text with ``raw`` (JSON text) where ``HOLE`` is, as a value or a key."""
    text = json.dumps(body)
    assert f'"{HOLE}"' in text
    return text.replace(f'"{HOLE}"', raw)


# (name, url, body(market, account id) -> JSON text, status, code)
Case = tuple[str, str, Callable[[dict[str, Any], int], str], int, str]
BAD_JSON = (400, "malformed_request")
BAD_PARAMS = (400, "invalid_params")
BAD_GRID = (400, "invalid_grid")
CASES: list[Case] = [
    # a lone surrogate: in a choice field, a free-text field, a params key, a nested choice
    ("account exchange", "/api/exchange-accounts",
     lambda m, a: with_hole(exchange_account(exchange=HOLE), SURROGATE), *BAD_JSON),
    ("account mode", "/api/exchange-accounts",
     lambda m, a: with_hole(exchange_account(mode=HOLE), SURROGATE), *BAD_JSON),
    ("account label", "/api/exchange-accounts",
     lambda m, a: with_hole(exchange_account(label=HOLE), SURROGATE), *BAD_JSON),
    ("backtest exchange", "/api/backtests",
     lambda m, a: with_hole(run(m, exchange=HOLE), SURROGATE), *BAD_JSON),
    ("backtest timeframe", "/api/backtests",
     lambda m, a: with_hole(run(m, timeframe=HOLE), SURROGATE), *BAD_JSON),
    ("backtest params key", "/api/backtests",
     lambda m, a: with_hole(run(m, params={HOLE: 5}), SURROGATE), *BAD_JSON),
    ("sweep rank_by", "/api/sweeps",
     lambda m, a: with_hole(sweep(m, rank_by=HOLE), SURROGATE), *BAD_JSON),
    ("sweep grid key", "/api/sweeps",
     lambda m, a: with_hole(sweep(m, grid={HOLE: [5, 10]}), SURROGATE), *BAD_JSON),
    ("bot timeframe", "/api/bots",
     lambda m, a: with_hole(bot(a, timeframe=HOLE), SURROGATE), *BAD_JSON),
    ("bot data_source.kind", "/api/bots",
     lambda m, a: with_hole(bot(a, data_source={"kind": HOLE}), SURROGATE), *BAD_JSON),
    ("bot params key", "/api/bots",
     lambda m, a: with_hole(bot(a, params={HOLE: 5}), SURROGATE), *BAD_JSON),
    ("login email", "/api/auth/login",
     lambda m, a: with_hole({"email": HOLE, "password": "x"}, SURROGATE), *BAD_JSON),
    # an integer parameter beyond any float
    ("backtest params value", "/api/backtests",
     lambda m, a: with_hole(run(m, params={"fast": HOLE}), HUGE), *BAD_PARAMS),
    ("sweep params value", "/api/sweeps",
     lambda m, a: with_hole(sweep(m, params={"slow": HOLE}), HUGE), *BAD_PARAMS),
    ("sweep grid value", "/api/sweeps",
     lambda m, a: with_hole(sweep(m, grid={"fast": [5, HOLE]}), HUGE), *BAD_GRID),
    ("sweep grid range", "/api/sweeps",
     lambda m, a: with_hole(sweep(m, grid={"fast": {"start": 5, "stop": HOLE, "step": 1}}),
                            HUGE), *BAD_GRID),
    ("bot params value", "/api/bots",
     lambda m, a: with_hole(bot(a, params={"fast": HOLE}), HUGE), *BAD_PARAMS),
    # nested 1,000 levels deep: the whole body, or one field
    ("account deep", "/api/exchange-accounts", lambda m, a: DEEP, *BAD_JSON),
    ("backtest deep params", "/api/backtests",
     lambda m, a: with_hole(run(m, params=HOLE), DEEP), *BAD_JSON),
    ("sweep deep", "/api/sweeps", lambda m, a: DEEP, *BAD_JSON),
    ("bot deep params", "/api/bots", lambda m, a: with_hole(bot(a, params=HOLE), DEEP), *BAD_JSON),
    ("login deep", "/api/auth/login", lambda m, a: '{"email":' * 1000 + "1" + "}" * 1000,
     *BAD_JSON),
]  # fmt: skip


# --- fixtures and checks -------------------------------------------------------------------------


@pytest.fixture
def market(db: Any) -> dict[str, Any]:
    """The period of a few stored candles, as a create request takes it."""
    strategy_catalogue_sync()
    rows = store_candles(2000, 300)
    return {
        "exchange": "bitget", "symbol": "BTC/USDT", "timeframe": "5m",
        "start": as_datetime(rows[0].open_time).isoformat(),
        "end": as_datetime(rows[-1].open_time).isoformat(),
    }  # fmt: skip


@pytest.fixture
def account(user: Any) -> ExchangeAccount:
    return paper_account(user)


def stored() -> dict[str, int]:
    models = (ExchangeAccount, Backtest, Sweep, Bot)
    return {model.__name__: model.objects.count() for model in models}


def assert_envelope(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content.decode("utf-8"))  # strict UTF-8: encodable all through
    assert set(body) == {"error"}
    assert set(body["error"]) == ENVELOPE_KEYS
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


def log_lines(records: list[logging.LogRecord]) -> list[str]:
    """The lines the records make in the production formats; each must encode as UTF-8."""
    lines = []
    for record in records:
        text = TextFormatter().format(record)
        text.encode("utf-8")
        JsonFormatter().format(record).encode("utf-8")
        lines.extend(text.splitlines())
    return lines


def assert_quiet(caplog: Any) -> None:
    lines = log_lines(caplog.records)
    assert len(lines) <= MAX_LOG_LINES, "\n".join(lines)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "\n".join(lines)
    assert not any(line.startswith("Traceback") for line in lines)


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "body", "status", "code"),
    [pytest.param(url, body, status, code, id=name) for name, url, body, status, code in CASES],
)
def test_hostile_json_gets_its_envelope_two_log_lines_at_most_and_stores_nothing(
    auth_client, market, account, caplog, url, body, status, code
):
    # given
    before = stored()
    text = body(market, account.pk)
    caplog.clear()
    # when
    with caplog.at_level(logging.INFO):
        response = auth_client.generic("POST", url, text, content_type="application/json")
    # then
    error = assert_envelope(response, status, code)
    if code in ("invalid_params", "invalid_grid"):  # refused next to the parameter
        assert set(error["details"]) in ({"fast"}, {"slow"}), error
    assert_quiet(caplog)
    assert stored() == before
    assert auth_client.get("/api/auth/me").status_code == 200  # and it goes on serving


def test_a_surrogate_is_refused_as_not_unicode_naming_where_it_is(auth_client, account):
    # when
    body = with_hole(bot(account.pk, params={"fast": 5, HOLE: 1}), SURROGATE)
    response = auth_client.generic("POST", "/api/bots", body, content_type="application/json")
    # then
    error = assert_envelope(response, 400, "malformed_request")
    assert error["message"] == (
        "JSON parse error - a key at params holds a lone UTF-16 surrogate (such as \\ud800), "
        "which is not Unicode text."
    )


@pytest.mark.parametrize(
    "body",
    ['{"label": NaN}', '{"label": Infinity}', '{"label": "x"', b'{"label": "\xff"}'],
    ids=["nan", "infinity", "truncated", "not-utf8"],
)
def test_what_was_not_json_is_still_refused(auth_client, body):
    response = auth_client.generic(
        "POST", "/api/exchange-accounts", body, content_type="application/json"
    )
    assert_envelope(response, 400, "malformed_request")


def test_a_valid_surrogate_pair_is_ordinary_text(auth_client):
    # given: "😀" written as its UTF-16 pair of escapes
    body = '{"exchange": "bitget", "label": "Fuzz \\ud83d\\ude00", "mode": "paper"}'
    # when
    response = auth_client.generic(
        "POST", "/api/exchange-accounts", body, content_type="application/json"
    )
    # then
    assert response.status_code == 201, response.content
    assert response.json()["label"] == "Fuzz \N{GRINNING FACE}"


@pytest.mark.parametrize("depth", [31, 32])
def test_nesting_up_to_the_limit_is_parsed(auth_client, settings, depth):
    # given: a body ``depth`` levels deep (the object itself is the first)
    settings.JSON_MAX_DEPTH = 32
    body = '{"exchange": "bitget", "label": "Fuzz", "mode": "paper", "x": ' + (
        "[" * (depth - 1) + "]" * (depth - 1) + "}"
    )
    # when
    response = auth_client.generic(
        "POST", "/api/exchange-accounts", body, content_type="application/json"
    )
    # then: the body was read (the unknown field is ignored)
    assert response.status_code == 201, response.content


def test_one_level_past_the_limit_is_refused(auth_client, settings):
    settings.JSON_MAX_DEPTH = 32
    body = '{"x": ' + "[" * 32 + "]" * 32 + "}"
    response = auth_client.generic(
        "POST", "/api/exchange-accounts", body, content_type="application/json"
    )
    error = assert_envelope(response, 400, "malformed_request")
    assert error["message"] == "JSON parse error - nested deeper than 32 levels."


MULTIPART_URLS = ["/api/exchange-accounts", "/api/backtests", "/api/sweeps", "/api/bots"]
CSRF_TOKEN = "a" * 32
MULTIPART_TYPES = ["multipart/form-data; boundary=xyz", "multipart/form-data"]


@pytest.mark.parametrize("url", MULTIPART_URLS)
@pytest.mark.parametrize("content_type", MULTIPART_TYPES)
def test_a_multipart_type_on_another_body_is_a_415_envelope(auth_client, caplog, url, content_type):
    with caplog.at_level(logging.INFO):
        response = auth_client.generic("POST", url, "hello", content_type=content_type)
    assert_envelope(response, 415, "unsupported_media_type")
    assert_quiet(caplog)


@pytest.mark.parametrize("content_type", MULTIPART_TYPES)
def test_a_bad_multipart_body_with_a_session_is_a_415_envelope(user, caplog, content_type):
    # given: a browser session, whose CSRF check reads the body before the view
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = CSRF_TOKEN
    # when
    with caplog.at_level(logging.INFO):
        response = client.generic(
            "POST", "/api/exchange-accounts", "hello", content_type=content_type,
            headers={"X-CSRFToken": CSRF_TOKEN},
        )  # fmt: skip
    # then
    assert_envelope(response, 415, "unsupported_media_type")
    assert_quiet(caplog)


@pytest.mark.parametrize("url", ["/bots/new/", "/backtests/new/", "/exchange-accounts/"])
def test_a_bad_multipart_body_on_a_page_is_the_sites_400_page(trader_client, caplog, url):
    # when: no boundary, so that Django cannot read the form
    with caplog.at_level(logging.INFO):
        response = trader_client.generic("POST", url, "hello", content_type="multipart/form-data")
    # then
    assert response.status_code == 400
    assert "The multipart body could not be parsed." in response.content.decode()
    assert_quiet(caplog)


@pytest.mark.parametrize("body", ["", "email=a%40example.com&password=x"])
def test_login_with_a_form_body_is_415_even_when_empty(api_client, caplog, body):
    with caplog.at_level(logging.INFO):
        response = api_client.generic(
            "POST", "/api/auth/login", body, content_type="application/x-www-form-urlencoded"
        )
    assert_envelope(response, 415, "unsupported_media_type")
    assert_quiet(caplog)


def test_login_without_a_body_is_still_a_validation_error(api_client):
    response = api_client.generic("POST", "/api/auth/login", "", content_type=None)
    error = assert_envelope(response, 400, "validation_error")
    assert set(error["details"]) == {"email", "password"}


# --- the pages' forms ---------------------------------------------------------------------------

# As a browser would percent-encode U+D800 if it could (its UTF-8-like bytes, invalid UTF-8):
# Django reads it as U+FFFD replacement characters, which no choice matches.
FORM_SURROGATE = "%ED%A0%80"


def page_form(market: dict[str, Any], account_id: int) -> dict[str, dict[str, Any]]:
    """A valid form of each page, as a browser posts it."""
    run_form = {
        "strategy": "ma_cross", **market, "start": market["start"][:16],
        "end": market["end"][:16], "initial_cash": "10000", "fee_rate": "0.001",
        "slippage_bps": "0", "position_size": "1", "param_fast": "5", "param_slow": "20",
    }  # fmt: skip
    return {
        "/exchange-accounts/": {"label": "Fuzz", "exchange": "bitget", "mode": "paper",
                                "paper_usdt": "100"},
        "/backtests/new/": run_form,
        "/sweeps/new/": {**run_form, "param_fast": "5, 10", "rank_by": "sharpe"},
        "/bots/new/": {
            "name": "Fuzz", "exchange_account": account_id, "symbol": "BTC/USDT",
            "timeframe": "5m", "strategy": "ma_cross", "ma_cross-fast": 5, "ma_cross-slow": 20,
            "data_source": "live", "order_size_kind": "fraction", "order_size": "0.5",
        },
    }  # fmt: skip


PAGE_CASES = [
    ("/exchange-accounts/", "exchange", FORM_SURROGATE),
    ("/exchange-accounts/", "mode", FORM_SURROGATE),
    ("/exchange-accounts/", "paper_usdt", HUGE),
    ("/backtests/new/", "exchange", FORM_SURROGATE),
    ("/backtests/new/", "timeframe", FORM_SURROGATE),
    ("/backtests/new/", "param_fast", HUGE),
    ("/sweeps/new/", "rank_by", FORM_SURROGATE),
    ("/sweeps/new/", "param_fast", f"5, {HUGE}"),
    ("/sweeps/new/", "param_fast", f"5:{HUGE}:1"),
    ("/bots/new/", "timeframe", FORM_SURROGATE),
    ("/bots/new/", "data_source", FORM_SURROGATE),
    ("/bots/new/", "ma_cross-fast", HUGE),
]


@pytest.mark.parametrize(("url", "field", "raw"), PAGE_CASES)
def test_a_hostile_form_is_shown_again_with_the_fields_error(
    trader_client, market, account, caplog, url, field, raw
):
    # given
    before = stored()
    data = {k: v for k, v in page_form(market, account.pk)[url].items() if k != field}
    body = urlencode(data) + f"&{field}={raw.replace(' ', '+')}"
    # when
    with caplog.at_level(logging.INFO):
        response = trader_client.post(url, body, content_type="application/x-www-form-urlencoded")
    # then: the form again, its error next to the field, nothing stored
    assert response.status_code == 400, response.content[:2000]
    assert response["Content-Type"].startswith("text/html")
    after_field = response.content.decode().rsplit(f'name="{field}"', 1)[1]
    assert 'class="field-error"' in after_field.split("<label")[0]
    assert_quiet(caplog)
    assert stored() == before


# --- under daphne --------------------------------------------------------------------------------


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.process
def test_under_daphne_hostile_bodies_get_envelopes_and_the_server_goes_on(
    transactional_db, user, tmp_path
):
    # given: a real daphne (as the Procfile runs it, without its own access log) and a token
    from accounts.services import api_token_issue

    account = paper_account(user)
    token = {"Authorization": f"Token {api_token_issue(user=user).key}"}
    json_type = {**token, "Content-Type": "application/json"}
    bodies = [
        # Twisted parsed these itself and answered a bare 400 with an empty body
        ("/api/exchange-accounts", b"hello", {**token, "Content-Type": "multipart/form-data"},
         415, "unsupported_media_type"),
        ("/api/auth/login", b"hello", {"Content-Type": "multipart/form-data; boundary=x"},
         415, "unsupported_media_type"),
        ("/api/auth/login", b"", {"Content-Type": "application/x-www-form-urlencoded"},
         415, "unsupported_media_type"),
        ("/api/bots", with_hole(bot(account.pk, timeframe=HOLE), SURROGATE).encode(), json_type,
         400, "malformed_request"),
        ("/api/bots", with_hole(bot(account.pk, params={"fast": HOLE}), HUGE).encode(),
         json_type, 400, "invalid_params"),
        ("/api/exchange-accounts", DEEP.encode(), json_type, 400, "malformed_request"),
    ]  # fmt: skip
    options = ("--access-log", os.devnull)
    with daphne_running(env=server_env(), log_path=tmp_path / "daphne.log", options=options) as d:
        for path, body, headers, status, code in bodies:
            mark = d.log_mark()
            # when
            answer = _post(d.port, path, body, headers)
            # then
            assert answer[0] == status, (path, answer)
            assert json.loads(answer[1])["error"]["code"] == code
            lines = d.log_since(mark).splitlines()
            assert 1 <= len(lines) <= MAX_LOG_LINES, lines
            assert not [line for line in lines if " ERROR " in line or "Traceback" in line]
        # and it goes on serving
        assert d.healthy()

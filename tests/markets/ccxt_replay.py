"""Replay Bitget's recorded HTTP traffic through ccxt, with only the transport replaced.

The fixtures in ``tests/data/ccxt-bitget`` are ccxt's own static tests: each response case has
the call's input, Bitget's raw answer (``httpResponse``) and the result ccxt must parse from it
(``parsedResponse``); each request case has the URL and JSON body ccxt must build.

Two ways in, both below ccxt's request building and response parsing:

- ``FakeFetch`` replaces ``client.fetch`` (ccxt's HTTP call; gets the signed URL and body,
  returns the decoded JSON): for replaying recorded answers and capturing what was sent.
- ``StubAdapter`` is a ``requests`` transport adapter mounted on ``client.session`` (or patched
  in for every session): ccxt's own ``fetch`` and the exchange's error handling run for real.

``block_network`` makes any other HTTP request fail the test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "ccxt-bitget"
SWAP_DIR = Path(__file__).resolve().parent.parent / "data" / "ccxt-bitget-swap"
# The credentials the recorded cases were signed with in ccxt's harness (any non-empty values do).
API_KEY = "key"
SECRET = "secretsecret"
PASSWORD = "password"


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads((DATA_DIR / name).read_text())


def recorded_markets() -> dict[str, dict[str, Any]]:
    return json.loads((DATA_DIR / "markets.bitget.json").read_text())


def response_cases(method: str) -> list[dict[str, Any]]:
    """Recorded response cases of one ccxt method (``"createOrder"``, ``"fetchOHLCV"``...)."""
    return _load("response.bitget.subset.json")["methods"][method]


def response_file_options() -> dict[str, Any]:
    """The exchange options every response case was recorded with (``{"uta": False}``)."""
    return dict(_load("response.bitget.subset.json").get("options") or {})


def request_cases(method: str) -> list[dict[str, Any]]:
    return _load("request.bitget.subset.json")["methods"][method]


def request_skip_keys() -> list[str]:
    return list(_load("request.bitget.subset.json").get("skipKeys") or [])


@cache
def _load_swap(name: str) -> dict[str, Any]:
    return json.loads((SWAP_DIR / name).read_text())


def swap_response_case(method: str, description: str) -> dict[str, Any]:
    """One recorded Bitget swap (USDT-M perpetual) response case, by its description."""
    cases = _load_swap("response.bitget.swap.json")["methods"][method]
    return next(case for case in cases if case["description"] == description)


def swap_request_case(method: str, description: str) -> dict[str, Any]:
    """One recorded swap request case: the ``url`` and JSON ``output`` ccxt must build."""
    cases = _load_swap("request.bitget.swap.json")["methods"][method]
    return next(case for case in cases if case["description"] == description)


def case_id(case: Mapping[str, Any]) -> str:
    return str(case["description"])


def spot_ticker_response() -> dict[str, Any]:
    """A recorded Bitget ticker answer (BTCUSDT, last 73369.13)."""
    return response_cases("fetchTicker")[0]["httpResponse"]


# -- replacing client.fetch ------------------------------------------------------------------


@dataclass
class SentRequest:
    url: str
    method: str
    headers: dict[str, Any]
    body: str | None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.url).query).items()}

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeFetch:
    """Stands in for ``client.fetch``: answers ``default``, or the body routed by URL fragment.

    ``routes`` maps a URL fragment (``"/market/ticker"``) to a decoded JSON answer; the first
    fragment found in the URL wins.
    """

    default: Any = None
    routes: dict[str, Any] = field(default_factory=dict)
    sent: list[SentRequest] = field(default_factory=list)

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.sent.append(SentRequest(url, method, dict(headers or {}), body))
        for fragment, answer in self.routes.items():
            if fragment in url:
                return answer
        if self.default is None:
            raise AssertionError(f"no recorded answer for {method} {url}")
        return self.default

    def install(self, client: Any) -> FakeFetch:
        client.fetch = self
        return self


# -- replacing the HTTP transport ----------------------------------------------------------------

Handler = Callable[[requests.PreparedRequest], requests.Response]


def json_response(
    request: requests.PreparedRequest, status: int, body: Any, reason: str | None = None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = reason or ("OK" if status < 400 else "Error")
    response._content = json.dumps(body).encode()
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
    response.encoding = "utf-8"
    response.url = request.url or ""
    response.request = request
    return response


class StubAdapter(HTTPAdapter):
    """A ``requests`` transport adapter that answers with ``handler`` and records requests."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.requests.append(request)
        return self.handler(request)

    def mount_on(self, session: requests.Session) -> StubAdapter:
        session.mount("https://", self)
        session.mount("http://", self)
        return self


def answer(status: int, body: Any) -> Handler:
    """A handler giving every request the same JSON answer."""
    return lambda request: json_response(request, status, body)


def raising(exc: Exception) -> Handler:
    def handler(request: requests.PreparedRequest) -> requests.Response:
        raise exc

    return handler


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any HTTP request through ``requests`` that no test arranged for fails the test."""

    def refuse(self: HTTPAdapter, request: requests.PreparedRequest, *a: Any, **k: Any) -> Any:
        raise AssertionError(f"unexpected network request: {request.method} {request.url}")

    monkeypatch.setattr(HTTPAdapter, "send", refuse)


def serve_everywhere(monkeypatch: pytest.MonkeyPatch, handler: Handler) -> list[Any]:
    """Answer every ``requests`` session in the process (for code that builds its own client)."""
    sent: list[Any] = []

    def send(self: HTTPAdapter, request: requests.PreparedRequest, *a: Any, **k: Any) -> Any:
        sent.append(request)
        return handler(request)

    monkeypatch.setattr(HTTPAdapter, "send", send)
    return sent


# -- Bitget's market endpoints, rebuilt from a market snapshot -----------------------------------


def bitget_markets_handler(markets: Mapping[str, Mapping[str, Any]]) -> Handler:
    """Serve what ccxt's ``bitget.load_markets`` fetches, rebuilt from the markets' raw ``info``.

    ``fetch_currencies``: GET /api/v2/spot/public/coins; ``fetch_markets``: GET
    /api/v2/spot/public/symbols, /api/v2/margin/currencies and /api/v2/mix/market/contracts for
    each productType.
    """
    spot = [dict(m["info"]) for m in markets.values() if m["type"] == "spot"]
    contracts: dict[str, list[dict[str, Any]]] = {}
    for m in markets.values():
        if m["type"] == "spot":
            continue
        product = "COIN-FUTURES" if m.get("inverse") else f"{m['settle']}-FUTURES"
        contracts.setdefault(product, []).append(dict(m["info"]))
    margin = [
        {
            "symbol": m["id"],
            "baseCoin": m["baseId"],
            "quoteCoin": m["quoteId"],
            "isBorrowable": True,
            "isCrossBorrowable": bool((m.get("marginModes") or {}).get("cross")),
            "isIsolatedBaseBorrowable": bool((m.get("marginModes") or {}).get("isolated")),
            "isIsolatedQuoteBorrowable": bool((m.get("marginModes") or {}).get("isolated")),
        }
        for m in markets.values()
        if m["type"] == "spot" and m.get("margin")
    ]

    # The classic account's tier rows (Bitget v2 "query-position-lever", the shape ccxt's
    # parse_market_leverage_tiers documents), rebuilt from a market's stored ccxt tiers.
    classic_tiers = {
        m["id"]: [
            {
                "symbol": m["id"],
                "level": str(row["tier"]),
                "startUnit": str(row["minNotional"]),
                "endUnit": str(row["maxNotional"]),
                "leverage": str(row["maxLeverage"]),
                "keepMarginRate": str(row["maintenanceMarginRate"]),
            }
            for row in m["leverageTiers"]
        ]
        for m in markets.values()
        if m.get("leverageTiers")
    }

    def ok(data: Any) -> dict[str, Any]:
        return {"code": "00000", "msg": "success", "requestTime": 1700000000000, "data": data}

    def handler(request: requests.PreparedRequest) -> requests.Response:
        parts = urlsplit(request.url or "")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/api/v2/spot/public/coins":
            return json_response(request, 200, ok([]))
        if parts.path == "/api/v2/spot/public/symbols":
            return json_response(request, 200, ok(spot))
        if parts.path == "/api/v2/margin/currencies":
            return json_response(request, 200, ok(margin))
        if parts.path == "/api/v2/mix/market/contracts":
            return json_response(request, 200, ok(contracts.get(query.get("productType"), [])))
        if parts.path == "/api/v2/mix/market/query-position-lever":
            tiers = classic_tiers.get(query.get("symbol", ""))
            if tiers is None:  # Bitget's answer to a symbol it has no tiers for (hand-made)
                return json_response(
                    request, 400, {"code": "40034", "msg": "Parameter does not exist"}
                )
            return json_response(request, 200, ok(tiers))
        raise AssertionError(f"unexpected request while loading markets: {request.url}")

    return handler


# -- comparing with the recorded results ---------------------------------------------------------


def without_info(value: Any) -> Any:
    """The structure without ccxt's raw ``info`` members (compared elsewhere, if at all)."""
    if isinstance(value, dict):
        return {k: without_info(v) for k, v in value.items() if k != "info"}
    if isinstance(value, list):
        return [without_info(v) for v in value]
    return value


def differences(actual: Any, expected: Any, path: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected``; numbers compare by value, ``info`` ignored."""
    actual, expected = without_info(actual), without_info(expected)
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(actual) | set(expected)):
            if key not in actual:
                found.append(f"{path}.{key}: missing (expected {expected[key]!r})")
            elif key not in expected:
                found.append(f"{path}.{key}: not expected ({actual[key]!r})")
            else:
                found.extend(differences(actual[key], expected[key], f"{path}.{key}"))
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return [f"{path}: {len(actual)} items, expected {len(expected)}"]
        return [
            d
            for i, (a, e) in enumerate(zip(actual, expected, strict=True))
            for d in differences(a, e, f"{path}[{i}]")
        ]
    if _is_number(actual) and _is_number(expected):
        return (
            []
            if Decimal(str(actual)) == Decimal(str(expected))
            else [f"{path}: {actual!r}, expected {expected!r}"]
        )
    return [] if actual == expected else [f"{path}: {actual!r}, expected {expected!r}"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- a Bitget account's private endpoints: keys accepted, rejected, or nobody answering --------


def bitget_error_body(code: str, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "requestTime": 1711648951774, "data": None}


@dataclass
class BitgetAccount:
    """Bitget as a live account sees it, at the HTTP layer (ccxt's own code runs above it).

    ``state`` is ``"accepting"`` (the recorded spot balance; no open orders), ``"rejecting"``
    (Bitget's answer to unknown keys, 40037), ``"busy"`` (Bitget's 503 when overloaded) or
    ``"down"`` (the connection times out, as when the exchange is unreachable). ``sent`` holds
    every request and ``timeouts`` the timeout each was sent with (seconds, as ``requests`` got
    it from ccxt).
    """

    state: str = "accepting"
    sent: list[requests.PreparedRequest] = field(default_factory=list)
    timeouts: list[Any] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> BitgetAccount:
        account = self

        def send(adapter: HTTPAdapter, request: requests.PreparedRequest, *a: Any, **k: Any) -> Any:
            account.sent.append(request)
            account.timeouts.append(k.get("timeout"))
            return account.answer(request)

        monkeypatch.setattr(HTTPAdapter, "send", send)
        return self

    def answer(self, request: requests.PreparedRequest) -> requests.Response:
        if self.state == "down":
            raise requests.exceptions.ConnectTimeout("connect timed out: api.bitget.com")
        if self.state == "busy":
            body = bitget_error_body("40604", "Server is busy, please try again later")
            return json_response(request, 503, body)
        if self.state == "rejecting":
            return json_response(request, 400, bitget_error_body("40037", "Apikey does not exist"))
        path = urlsplit(request.url or "").path
        if path == "/api/v3/account/settings":  # ccxt's probe for a unified account
            return json_response(request, 400, bitget_error_body("40084", "Classic account"))
        if path == "/api/v2/spot/account/assets":
            spot = next(
                c for c in response_cases("fetchBalance") if c["description"] == "spot balance"
            )
            return json_response(request, 200, spot["httpResponse"])
        if path == "/api/v2/spot/trade/unfilled-orders":
            return json_response(request, 200, {"code": "00000", "msg": "success", "data": []})
        raise AssertionError(f"no recorded answer for {request.method} {request.url}")

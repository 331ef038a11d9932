"""The release smoke check: the predecessor's release checklist, run against a RUNNING deployment.

It is a client of the deployment and nothing more: every check goes through the public HTTP API
and the ``/ws/`` WebSocket, exactly as a trader's client would, so it proves what a user would see
(proxy, daphne, workers, Redis and database together) and can run from any machine. It never
opens the database.

``SmokeCheck(options).run()`` runs the checks in order and returns one ``CheckResult`` each. A
check that needs an earlier one that failed is reported failed as "skipped", with the reason.
Whatever happened, the last row is ``cleanup``: it deletes what the run created (the backtest,
the bot, the paper account when the run had to open one) and revokes the API token it was issued,
so the smoke user is left as it was found.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markets.timeframes import timeframe_ms
from tradingbot.site.smoke_client import (
    CheckFailed,
    HttpClient,
    Reply,
    describe,
    envelope_code,
    expect,
    iso,
    websocket_rounds,
    ws_url,
)

CANDLE_COUNT = 200
STRATEGY_PREFERRED = "ma_cross"
FINISHED = frozenset({"done", "failed", "cancelled"})
POLL_SECONDS = 0.5
# Always defined once a backtest is done (others, like sharpe, may be null).
NUMERIC_METRICS = ("total_return", "final_equity")


@dataclass(frozen=True)
class SmokeOptions:
    url: str
    email: str
    password: str
    exchange: str = "bitget"
    symbol: str = "BTC/USDT"
    timeframe: str = "5m"
    ws_rounds: int = 20
    backtest_timeout: float = 120.0
    http_timeout: float = 15.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    duration_ms: int
    detail: str


# --- the runner ---------------------------------------------------------------------------------


@dataclass
class _State:
    """What the checks learned and created, for the later checks and the cleanup."""

    token: str | None = None
    strategy: str | None = None
    candles: list[list[float]] = field(default_factory=list)
    account_id: int | None = None
    account_created: bool = False
    bot_id: int | None = None
    backtest_id: int | None = None


Check = Callable[[], str]


class SmokeCheck:
    """Runs the checklist once. Not reusable: make one per run."""

    def __init__(self, options: SmokeOptions, *, http: HttpClient | None = None) -> None:
        self.options = options
        self.http = http or HttpClient(options.url, timeout=options.http_timeout)
        self.state = _State()
        self.results: list[CheckResult] = []

    def plan(self) -> list[tuple[str, Check, tuple[str, ...]]]:
        """(name, check, the checks it needs), in the order they run."""
        return [
            ("health", self.check_health, ()),
            ("login", self.check_login, ()),
            ("websocket", self.check_websocket, ("login",)),
            ("strategies", self.check_strategies, ("login",)),
            ("candles", self.check_candles, ("login",)),
            ("bot start/stop", self.check_bot, ("strategies", "candles")),
            ("positions", self.check_positions, ("bot start/stop",)),
            ("backtest", self.check_backtest, ("strategies", "candles")),
            ("error envelope", self.check_error_envelope, ()),
        ]

    def run(self) -> list[CheckResult]:
        try:
            for name, check, needs in self.plan():
                self._run_one(name, check, needs)
        finally:
            self._run_one("cleanup", self.cleanup, ())
        return self.results

    def _run_one(self, name: str, check: Check, needs: tuple[str, ...]) -> None:
        started = time.monotonic()
        try:
            self._require(needs)
            passed, detail = True, check()
        except CheckFailed as failure:
            passed, detail = False, str(failure)
        except Exception as error:  # a smoke check reports; it never dies half-way with a trace
            passed, detail = False, f"unexpected {type(error).__name__}: {error}"
        elapsed = round((time.monotonic() - started) * 1000)
        self.results.append(CheckResult(name, passed, elapsed, detail))

    def _require(self, needs: tuple[str, ...]) -> None:
        passed = {result.name for result in self.results if result.passed}
        missing = [name for name in needs if name not in passed]
        if missing:
            raise CheckFailed(f"skipped: needs {', '.join(missing)}, which did not pass")

    def _call(self, method: str, path: str, payload: Any = None) -> Reply:
        return self.http.call(method, path, payload, token=self.state.token)

    # --- the checks -----------------------------------------------------------------------------

    def check_health(self) -> str:
        body = expect(self.http.call("GET", "/healthz"), 200, "GET /healthz")
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise CheckFailed(f"GET /healthz answered {describe(body)}")
        return ", ".join(f"{part} {state}" for part, state in body.items() if part != "status")

    def check_login(self) -> str:
        wrong = self.http.call(
            "POST", "/api/auth/login", {"email": self.options.email, "password": self._wrong()}
        )
        expect(wrong, 401, "login with a wrong password")
        if envelope_code(wrong.body) != "invalid_credentials":
            raise CheckFailed(f"wrong password: expected invalid_credentials, got {wrong.body}")
        right = self.http.call(
            "POST",
            "/api/auth/login",
            {"email": self.options.email, "password": self.options.password},
        )
        body = expect(right, 200, "login with the given password")
        self.state.token = body["token"]
        return f"wrong password 401 invalid_credentials; user #{body['user']['id']} token issued"

    def _wrong(self) -> str:
        return f"{self.options.password}-not-{secrets.token_hex(4)}"

    def check_websocket(self) -> str:
        assert self.state.token is not None
        return asyncio.run(
            websocket_rounds(
                ws_url(self.options.url),
                self.state.token,
                rounds=self.options.ws_rounds,
                timeout=self.options.http_timeout,
            )
        )

    def check_strategies(self) -> str:
        body = expect(self._call("GET", "/api/strategies"), 200, "GET /api/strategies")
        keys = [item["key"] for item in body.get("results", [])]
        if not keys:
            raise CheckFailed("GET /api/strategies: no strategy is available")
        self.state.strategy = STRATEGY_PREFERRED if STRATEGY_PREFERRED in keys else keys[0]
        return f"{len(keys)} strategies: {', '.join(keys)}"

    def check_candles(self) -> str:
        o = self.options
        query = urllib.parse.urlencode(
            {"exchange": o.exchange, "symbol": o.symbol, "timeframe": o.timeframe,
             "limit": CANDLE_COUNT}
        )  # fmt: skip
        body = expect(self._call("GET", f"/api/candles?{query}"), 200, "GET /api/candles")
        candles = body.get("candles", [])
        if len(candles) != CANDLE_COUNT:
            raise CheckFailed(
                f"{o.exchange} {o.symbol} {o.timeframe}: {len(candles)} candles, expected "
                f"{CANDLE_COUNT} (are candles stored? see import_candles)"
            )
        times = [row[0] for row in candles]
        if any(len(row) != 6 for row in candles) or times != sorted(set(times)):
            raise CheckFailed("candles are not ascending [time, open, high, low, close, volume]")
        self.state.candles = candles
        return f"{CANDLE_COUNT} {o.timeframe} candles {iso(times[0])} .. {iso(times[-1])}"

    def check_bot(self) -> str:
        account = self._paper_account()
        bot = self._create_bot(account)
        started = expect(self._call("POST", f"/api/bots/{bot}/start"), 200, "start the bot")
        if started["status"] != "running":
            raise CheckFailed(f"started bot is {started['status']}, expected running")
        final = self._stop_bot(bot)
        origin = "opened for the check" if self.state.account_created else "the user's"
        return f"bot #{bot} on paper account #{account} ({origin}): stopped → running → {final}"

    def _paper_account(self) -> int:
        listed = expect(self._call("GET", "/api/exchange-accounts"), 200, "list exchange accounts")
        for account in listed["results"]:
            if account["mode"] == "paper" and account["exchange"] == self.options.exchange:
                self.state.account_id = int(account["id"])
                return self.state.account_id
        payload = {
            "exchange": self.options.exchange,
            "label": f"smoke-check-{secrets.token_hex(4)}",
            "mode": "paper",
        }
        created = expect(
            self._call("POST", "/api/exchange-accounts", payload), 201, "open a paper account"
        )
        self.state.account_id, self.state.account_created = int(created["id"]), True
        return self.state.account_id

    def _create_bot(self, account: int) -> int:
        # A replay from the oldest of the checked candles: no exchange is contacted, and a
        # strategy has no history yet there, so the few seconds it runs place no order.
        payload = {
            "name": f"smoke-check-{secrets.token_hex(4)}",
            "exchange_account": account,
            "symbol": self.options.symbol,
            "timeframe": self.options.timeframe,
            "strategy": self.state.strategy,
            "data_source": {"kind": "replay", "start": iso(int(self.state.candles[0][0])),
                            "speed": 1},
        }  # fmt: skip
        created = expect(self._call("POST", "/api/bots", payload), 201, "create the bot")
        self.state.bot_id = int(created["id"])
        if created["status"] != "stopped":
            raise CheckFailed(f"new bot is {created['status']}, expected stopped")
        return self.state.bot_id

    def _stop_bot(self, bot: int) -> str:
        """Stop the bot and wait until it is ``stopped`` (a tick in progress finishes it)."""
        stopped = expect(
            self._call("POST", f"/api/bots/{bot}/stop", {"flatten": False}), 200, "stop the bot"
        )
        return self._wait_stopped(bot, str(stopped["status"]))

    def _wait_stopped(self, bot: int, status: str) -> str:
        deadline = time.monotonic() + self.options.http_timeout
        while status == "stopping" and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            status = str(
                expect(self._call("GET", f"/api/bots/{bot}"), 200, "read the bot")["status"]
            )
        if status != "stopped":
            raise CheckFailed(f"bot #{bot} is {status} after the stop, expected stopped")
        return status

    def check_positions(self) -> str:
        bot = self.state.bot_id
        page = expect(self._call("GET", f"/api/bots/{bot}/positions"), 200, "GET positions")
        rows = page["results"]
        missing = [key for row in rows for key in ("pnl", "unrealized_pnl") if key not in row]
        summary = expect(self._call("GET", f"/api/bots/{bot}"), 200, "GET the bot")["position"]
        missing += [key for key in ("pnl", "unrealized_pnl") if key not in summary]
        if missing:
            raise CheckFailed(f"positions lack {', '.join(sorted(set(missing)))}: {page}")
        return (
            f"{page['count']} position row(s); qty {summary['qty']}, realised pnl "
            f"{summary['pnl']}, unrealised pnl {summary['unrealized_pnl']}"
        )

    def check_backtest(self) -> str:
        backtest = self._create_backtest()
        started = time.monotonic()
        body = self._wait_backtest(backtest)
        seconds = time.monotonic() - started
        if body["status"] != "done":
            raise CheckFailed(f"backtest #{backtest} {body['status']}: {body.get('error')}")
        metrics = body.get("metrics") or {}
        if not all(isinstance(metrics.get(key), int | float) for key in NUMERIC_METRICS):
            raise CheckFailed(f"backtest #{backtest} is done without metrics: {metrics}")
        trades = self._backtest_trade_count(backtest)
        if trades != body["trade_count"]:
            raise CheckFailed(f"{trades} trades read back, the backtest says {body['trade_count']}")
        return (
            f"backtest #{backtest} done in {seconds:.1f} s: {body['candle_count']} candles, "
            f"{trades} trades, total_return {metrics['total_return']:.4g}"
        )

    def _create_backtest(self) -> int:
        first, last = int(self.state.candles[0][0]), int(self.state.candles[-1][0])
        payload = {
            "strategy": self.state.strategy,
            "exchange": self.options.exchange,
            "symbol": self.options.symbol,
            "timeframe": self.options.timeframe,
            "start": iso(first),
            "end": iso(last + timeframe_ms(self.options.timeframe)),
            "initial_cash": "10000",
            "fee_rate": "0.001",
        }
        created = expect(self._call("POST", "/api/backtests", payload), 201, "create a backtest")
        self.state.backtest_id = int(created["id"])
        return self.state.backtest_id

    def _wait_backtest(self, backtest: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.options.backtest_timeout
        while True:
            body: dict[str, Any] = expect(
                self._call("GET", f"/api/backtests/{backtest}"), 200, "read the backtest"
            )
            if body["status"] in FINISHED:
                return body
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"backtest #{backtest} still {body['status']} after "
                    f"{self.options.backtest_timeout:g} s (is a worker consuming the backtests "
                    "queue?)"
                )
            time.sleep(POLL_SECONDS)

    def _backtest_trade_count(self, backtest: int) -> int:
        trades = expect(
            self._call("GET", f"/api/backtests/{backtest}/trades"), 200, "read the trades"
        )
        equity = expect(
            self._call("GET", f"/api/backtests/{backtest}/equity"), 200, "read the equity curve"
        )
        if not equity:
            raise CheckFailed(f"backtest #{backtest} is done with an empty equity curve")
        return int(trades["count"])

    def check_error_envelope(self) -> str:
        # Login takes no credentials, so these bad requests need none and create nothing.
        malformed = self.http.call("POST", "/api/auth/login", raw=b'{"email": ')
        expect(malformed, 400, "malformed JSON")
        if (code := envelope_code(malformed.body)) != "malformed_request":
            raise CheckFailed(f"malformed JSON: expected malformed_request, got {code}")
        invalid = self.http.call("POST", "/api/auth/login", {})
        expect(invalid, 400, "missing fields")
        if (code := envelope_code(invalid.body)) != "validation_error":
            raise CheckFailed(f"missing fields: expected validation_error, got {code}")
        fields = sorted(invalid.body["error"]["details"])
        return (
            "malformed JSON → 400 malformed_request; missing fields → 400 validation_error "
            f"({', '.join(fields)})"
        )

    # --- cleanup --------------------------------------------------------------------------------

    def cleanup(self) -> str:
        """Delete what the run created and revoke its token; every step is tried."""
        removed: list[str] = []
        problems: list[str] = []
        for step in (self._delete_backtest, self._delete_bot, self._delete_account, self._logout):
            try:
                if done := step():
                    removed.append(done)
            except Exception as error:  # one failed step must not keep the others from running
                problems.append(str(error) if isinstance(error, CheckFailed) else repr(error))
        if problems:
            raise CheckFailed("; ".join(problems) + f" (done: {', '.join(removed) or 'nothing'})")
        return f"removed {', '.join(removed)}" if removed else "nothing to remove"

    def _delete(self, path: str, what: str) -> str:
        """DELETE ``path``, which must answer 204; ``what`` was deleted."""
        expect(self._call("DELETE", path), 204, f"delete {what}")
        return what

    def _delete_backtest(self) -> str | None:
        backtest = self.state.backtest_id
        if backtest is None:
            return None
        return self._delete(f"/api/backtests/{backtest}", f"backtest #{backtest}")

    def _delete_bot(self) -> str | None:
        bot = self.state.bot_id
        if bot is None:
            return None
        status = expect(self._call("GET", f"/api/bots/{bot}"), 200, f"read bot #{bot}")["status"]
        if status == "running":
            self._stop_bot(bot)
        elif status == "stopping":
            self._wait_stopped(bot, status)
        return self._delete(f"/api/bots/{bot}", f"bot #{bot}")

    def _delete_account(self) -> str | None:
        account = self.state.account_id
        if account is None or not self.state.account_created:
            return None
        return self._delete(f"/api/exchange-accounts/{account}", f"paper account #{account}")

    def _logout(self) -> str | None:
        token = self.state.token
        if token is None:
            return None
        expect(self.http.call("POST", "/api/auth/logout", token=token), 204, "log out")
        expect(self.http.call("GET", "/api/auth/me", token=token), 401, "the revoked token")
        return "the API token (revoked)"


# --- the report ---------------------------------------------------------------------------------


def format_table(results: list[CheckResult]) -> str:
    """The pass/fail table: check, PASS/FAIL, duration in ms, detail; then a summary line."""
    rows = [("check", "result", "ms", "detail")] + [
        (r.name, "PASS" if r.passed else "FAIL", str(r.duration_ms), r.detail) for r in results
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        f"{name:<{widths[0]}}  {result:<{widths[1]}}  {ms:>{widths[2]}}  {detail}"
        for name, result, ms, detail in rows
    ]
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} of {len(results)} checks passed")
    return "\n".join(lines)

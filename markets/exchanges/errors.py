"""The project's exchange errors. They are ``AppError``s, so the API answers them with the
envelope and the right status, never a bare 500.

``transient`` errors (network, rate limit, exchange down) are worth retrying with backoff;
the others are not: retrying an order the exchange refused only repeats the refusal.
"""

from __future__ import annotations

from typing import Any

from tradingbot.errors import AppError


class ExchangeError(AppError):
    transient = False

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(
            code or self.default_code, message, status or self.default_status, details=details
        )

    default_code = "exchange_error"
    default_status = 502


class ExchangeAuthError(ExchangeError):
    default_code = "exchange_auth_failed"
    default_status = 400


class InsufficientFundsError(ExchangeError):
    default_code = "insufficient_funds"
    default_status = 400


class InvalidOrderError(ExchangeError):
    default_code = "invalid_order"
    default_status = 400


class InvalidLeverageError(ExchangeError):
    """A leverage the market or the exchange does not allow (perpetual swaps)."""

    default_code = "invalid_leverage"
    default_status = 400


class BelowMinimumError(InvalidOrderError):
    default_code = "below_minimum"


class OrderNotFoundError(ExchangeError):
    default_code = "order_not_found"
    default_status = 404


class UnknownSymbolError(ExchangeError):
    default_code = "unknown_symbol"
    default_status = 400


class TransientExchangeError(ExchangeError):
    """Network trouble, rate limit or maintenance: retry later, with backoff."""

    transient = True
    default_code = "exchange_unavailable"
    default_status = 503

"""The paper exchange's ledger: a paper account's balances (``PaperBalance``), locked, checked
and saved in the transactions of ``markets.exchanges.paper``, and funded by ``fund``.

``used`` is always the sum of the reserves of the account's open orders and of the margins of its
perpetual-swap positions (``save_balances`` recomputes it); amounts keep the database's 12
decimal places.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction

from markets.decimals import finite_decimal
from markets.exchanges.errors import ExchangeError, InsufficientFundsError, InvalidOrderError
from markets.exchanges.markets import MarketCatalog, get_catalog
from markets.exchanges.paper_results import fmt_decimal, iso_time
from markets.models import ExchangeAccount, PaperBalance, PaperOrder, PaperPosition

PLACES = Decimal("1e-12")  # the database keeps 12 decimal places (markets.models.PRICE)
MAX_BALANCE = Decimal("1e16")  # and 16 digits before the point


class PaperAccountRequiredError(ExchangeError):
    default_code = "paper_account_required"
    default_status = 400


def require_paper(account: ExchangeAccount) -> None:
    if account.mode != ExchangeAccount.Mode.PAPER:
        raise PaperAccountRequiredError(
            f"exchange account {account.label!r} is a {account.mode} account; "
            "the paper exchange trades paper accounts only"
        )


def round_amount(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=ROUND_HALF_UP)


def round_up(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=ROUND_CEILING)


def decimal_of(name: str, value: Any) -> Decimal:
    """``value`` as a finite Decimal; ``InvalidOrderError`` naming ``name`` otherwise."""
    number = finite_decimal(value)
    if number is None:
        raise InvalidOrderError(f"{name} must be a finite number, not {value!r}")
    return number


def split_symbol(symbol: str) -> tuple[str, str]:
    """Base and quote of a unified ccxt symbol (``BASE/QUOTE`` or ``BASE/QUOTE:SETTLE``)."""
    base, _, rest = symbol.partition("/")
    return base, rest.partition(":")[0]


def reserve_currency(order: PaperOrder) -> str:
    base, quote = split_symbol(order.symbol)
    return quote if order.side == PaperOrder.Side.BUY else base


def balances_result(account: ExchangeAccount, timestamp: int) -> dict[str, Any]:
    """The account's balances as ccxt's ``fetch_balance`` gives them, at market time
    ``timestamp``."""
    rows = PaperBalance.objects.filter(account=account).order_by("currency")
    result: dict[str, Any] = {
        "info": {
            "balances": [
                {
                    "currency": b.currency,
                    "free": fmt_decimal(b.free),
                    "used": fmt_decimal(b.used),
                }
                for b in rows
            ]
        },
        "timestamp": timestamp,
        "datetime": iso_time(timestamp),
        "free": {},
        "used": {},
        "total": {},
    }
    for row in rows:
        amounts = {
            "free": float(row.free),
            "used": float(row.used),
            "total": float(row.free + row.used),
        }
        result[row.currency] = amounts
        for key, value in amounts.items():
            result[key][row.currency] = value
    return result


def lock_balances(account: ExchangeAccount, currencies: Iterable[str]) -> dict[str, PaperBalance]:
    """Lock the account's existing balance rows of ``currencies``, in currency order."""
    query = (
        PaperBalance.objects.select_for_update()
        .filter(account=account, currency__in=sorted(set(currencies)))
        .order_by("currency")
    )
    return {row.currency: row for row in query}


def balance_row(
    account: ExchangeAccount, rows: dict[str, PaperBalance], currency: str
) -> PaperBalance:
    """The locked row of ``currency``, created (at zero) when the account has none yet."""
    row = rows.get(currency)
    if row is None:
        PaperBalance.objects.get_or_create(account=account, currency=currency)
        row = PaperBalance.objects.select_for_update().get(account=account, currency=currency)
        rows[currency] = row
    return row


def require_funds(rows: dict[str, PaperBalance], currency: str, needed: Decimal) -> None:
    row = rows.get(currency)
    available = row.free if row is not None else Decimal(0)
    if available < needed:
        raise InsufficientFundsError(
            f"insufficient {currency}: the order needs {fmt_decimal(needed)} {currency}, "
            f"{fmt_decimal(available)} {currency} is available",
            details={"currency": currency, "needed": fmt_decimal(needed),
                     "available": fmt_decimal(available)},
        )  # fmt: skip


def save_balances(account: ExchangeAccount, rows: dict[str, PaperBalance]) -> None:
    """Recompute ``used`` from the open orders' reserves and the positions' margins, and save
    the locked rows."""
    reserved: dict[str, Decimal] = {}
    for order in PaperOrder.objects.filter(account=account, status=PaperOrder.Status.OPEN):
        currency = reserve_currency(order)
        reserved[currency] = reserved.get(currency, Decimal(0)) + order.reserved
    for position in PaperPosition.objects.filter(account=account, margin__gt=0):
        currency = split_symbol(position.symbol)[1]  # USDT-margined: margin in the quote
        reserved[currency] = reserved.get(currency, Decimal(0)) + position.margin
    for currency, row in rows.items():
        row.used = round_amount(reserved.get(currency, Decimal(0)))
        row.free = round_amount(row.free)
        row.save(update_fields=["free", "used"])


def fund(
    account: ExchangeAccount,
    balances: Mapping[str, Decimal | int | str],
    *,
    catalog: MarketCatalog | None = None,
) -> dict[str, PaperBalance]:
    """Set the free balances of a paper account (e.g. its starting money), in one transaction.

    Each currency must be one of the exchange's markets; amounts are >= 0 with at most 12
    decimal places. Funds reserved by open orders (``used``) are left as they are.
    """
    require_paper(account)
    catalog = catalog if catalog is not None else get_catalog(account.exchange)
    amounts: dict[str, Decimal] = {}
    for currency, value in balances.items():
        if currency not in catalog.currencies:
            raise ExchangeError(
                f"unknown currency {currency!r} on {account.exchange}",
                code="unknown_currency", status=400,
                details={"currency": [f"Not a currency of {account.exchange}'s markets."]},
            )  # fmt: skip
        try:
            amount = decimal_of(f"balance of {currency}", value)
        except InvalidOrderError as error:
            raise ExchangeError(error.message, code="invalid_amount", status=400) from None
        if amount < 0 or amount >= MAX_BALANCE or amount != amount.quantize(PLACES):
            raise ExchangeError(
                f"balance of {currency} must be >= 0, below {MAX_BALANCE:f} and have at most "
                f"12 decimal places, not {value}",
                code="invalid_amount", status=400, details={"currency": currency},
            )  # fmt: skip
        amounts[currency] = amount
    funded: dict[str, PaperBalance] = {}
    with transaction.atomic():
        for currency in sorted(amounts):
            PaperBalance.objects.get_or_create(account=account, currency=currency)
        rows = PaperBalance.objects.select_for_update().filter(
            account=account, currency__in=sorted(amounts)
        )
        for row in rows.order_by("currency"):
            row.free = amounts[row.currency]
            row.save(update_fields=["free"])
            funded[row.currency] = row
    return funded

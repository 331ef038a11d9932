"""Writes of the markets app: exchange accounts (opened, funded, deleted, their balances)
and the demo market. Keyword-only, typed, transactional."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from markets.candles import candles_load_sample
from markets.exchanges import paper_ledger
from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.exchanges.errors import ExchangeAuthError, ExchangeError
from markets.exchanges.factory import exchange_for_account
from markets.models import ExchangeAccount
from markets.perp_data import perp_sample_load
from markets.selectors import BALANCE_CACHE_SECONDS, balance_cache_key
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

DEFAULT_PAPER_BALANCE = {"USDT": Decimal(10_000)}


def exchange_account_open(
    *,
    user: User,
    exchange: str,
    label: str,
    mode: str,
    api_key: str = "",
    api_secret: str = "",
    passphrase: str = "",
    paper_balance: dict[str, Decimal] | None = None,
) -> ExchangeAccount:
    """Create an exchange account; a paper one is funded (default 10,000 USDT) in the same
    transaction, so an account never exists half set up.

    A live account's keys are checked first with a balance fetch: keys the exchange rejects
    are refused (400 ``exchange_auth_failed`` with what the exchange said; nothing saved); an
    exchange that cannot be reached saves the account unverified (``verified_at`` NULL, with
    why), to be checked again before a bot starts on it."""
    if mode != ExchangeAccount.Mode.PAPER and paper_balance:
        raise AppError(
            "validation_error",
            "Only a paper account takes a starting balance.",
            400,
            details={"paper_balance": ["Only a paper account takes a starting balance."]},
        )
    _check_credentials(mode=mode, api_key=api_key, api_secret=api_secret, passphrase=passphrase)
    account = ExchangeAccount(
        user=user, exchange=exchange, label=label.strip(), mode=mode, api_key=api_key.strip(),
        api_secret=api_secret.strip(), passphrase=passphrase.strip(),
    )  # fmt: skip
    if mode == ExchangeAccount.Mode.LIVE:
        _label_free(user, account.label)
        _record_check(account, _keys_check(account))
    with transaction.atomic():
        _save_new(account)
        if mode == ExchangeAccount.Mode.PAPER:
            try:
                paper_ledger.fund(account, paper_balance or DEFAULT_PAPER_BALANCE)
            except AppError as error:
                # Rolls the account back with it, and names the field that was wrong.
                raise AppError(
                    error.code,
                    error.message,
                    error.status,
                    details={"paper_balance": [error.message]},
                ) from None
    logger.info(
        "exchange_account.created",
        extra=context(
            user_id=user.pk, exchange_account_id=account.pk, exchange=exchange, mode=mode,
            verification=account.verification,
        ),
    )  # fmt: skip
    return account


def _label_free(user: User, label: str) -> None:
    """The duplicate label refused before the exchange is asked anything."""
    if ExchangeAccount.objects.filter(user=user, label=label).exists():
        raise _duplicate_label()


def _keys_check(account: ExchangeAccount) -> str:
    """Ask the exchange for the account's balance with its keys: "" when it accepted them, the
    reason when it could not be asked (unreachable, or an error that says nothing of the keys).
    Keys the exchange rejects raise 400 ``exchange_auth_failed`` with what it said."""
    exchange = CcxtExchange.from_account(
        account, timeout_seconds=settings.EXCHANGE_KEY_CHECK_TIMEOUT_SECONDS
    )
    try:
        exchange.fetch_balance()
    except ExchangeAuthError as error:
        raise _keys_refused(account, error) from None
    except ExchangeError as error:
        return str(error.message)[:300]
    return ""


def _keys_refused(account: ExchangeAccount, error: ExchangeAuthError) -> AppError:
    said = str(error.details.get("exchange_message") or error.message)
    code = error.details.get("exchange_code")
    name = account.get_exchange_display()
    message = f"{name} rejected these API keys: {said}" + (f" (code {code})" if code else "")
    return AppError("exchange_auth_failed", message, 400, details={"api_key": [message]})


def _record_check(account: ExchangeAccount, problem: str) -> None:
    account.verified_at = None if problem else timezone.now()
    account.verification_error = problem


def exchange_account_verify(*, account: ExchangeAccount) -> ExchangeAccount:
    """Check a live account's keys against the exchange again (an unverified one, before a bot
    starts on it) and record the answer. Raises 400 ``exchange_auth_failed`` when the exchange
    rejects them, 503 ``exchange_unreachable`` when it cannot be asked."""
    if not account.is_live:
        return account
    try:
        problem = _keys_check(account)
    except AppError as error:
        _save_check(account, verified_at=None, verification_error=error.message[:300])
        raise
    _save_check(account, verified_at=None if problem else timezone.now(),
                verification_error=problem)  # fmt: skip
    if problem:
        raise AppError(
            "exchange_unreachable",
            f"{account.get_exchange_display()} is unreachable, cannot verify the API keys of "
            f"“{account.label}” ({problem}). Try again when the exchange answers.",
            503,
        )
    return account


def _save_check(account: ExchangeAccount, **fields: Any) -> None:
    ExchangeAccount.objects.filter(pk=account.pk).update(**fields)
    for name, value in fields.items():
        setattr(account, name, value)
    logger.info(
        "exchange_account.verified" if fields["verified_at"] else "exchange_account.unverified",
        extra=context(user_id=account.user_id, exchange_account_id=account.pk),
    )


def _save_new(account: ExchangeAccount) -> None:
    try:
        with transaction.atomic():
            account.save()
    except IntegrityError:
        raise _duplicate_label() from None


def _duplicate_label() -> AppError:
    return AppError(
        "duplicate_label",
        "You already have an exchange account with this label.",
        409,
        details={"label": ["You already have an exchange account with this label."]},
    )


def _check_credentials(*, mode: str, api_key: str, api_secret: str, passphrase: str) -> None:
    """A live account must carry the credentials its exchange needs."""
    if mode != ExchangeAccount.Mode.LIVE:
        return
    missing = {
        name: ["Required for a live account."]
        for name, value in (
            ("api_key", api_key),
            ("api_secret", api_secret),
            ("passphrase", passphrase),
        )
        if not value.strip()
    }
    if missing:
        raise AppError(
            "validation_error",
            "A live Bitget account needs an API key, secret and passphrase.",
            400,
            details=missing,
        )


def exchange_account_delete(*, account: ExchangeAccount) -> None:
    """Delete an account its bots no longer use (409 while any bot trades on it: the bot's
    orders and position live on that account)."""
    if account.bots.exists():
        raise AppError(
            "account_in_use",
            "Bots trade on this account; delete them first.",
            409,
            details={"bots": list(account.bots.values_list("name", flat=True)[:20])},
        )
    account_id, user_id = account.pk, account.user_id
    account.delete()
    cache.delete(balance_cache_key(account_id))
    logger.info(
        "exchange_account.deleted", extra=context(user_id=user_id, exchange_account_id=account_id)
    )


def exchange_account_balances(*, account: ExchangeAccount) -> dict[str, dict[str, str]]:
    """``{currency: {"free", "used", "total"}}`` as decimal strings, from the account's exchange.

    Currencies with nothing in them are left out.
    """
    balance = exchange_for_account(account).fetch_balance()
    totals: dict[str, Any] = balance.get("total") or {}
    result = {}
    for currency in sorted(totals):
        entry = balance.get(currency) or {}
        if not any(entry.get(part) for part in ("free", "used", "total")):
            continue
        result[currency] = {
            part: _decimal_text(entry.get(part)) for part in ("free", "used", "total")
        }
    logger.info(
        "exchange_account.balance",
        extra=context(user_id=account.user_id, exchange_account_id=account.pk, mode=account.mode),
    )
    if account.is_live:  # the page shows the last fetch, never waiting for the exchange
        cache.set(
            balance_cache_key(account.pk),
            {"balances": result, "fetched_at": timezone.now().isoformat()},
            BALANCE_CACHE_SECONDS,
        )
    return result


def _decimal_text(value: Any) -> str:
    if value is None:
        return "0"
    return format(Decimal(str(value)).normalize(), "f")


DEMO_PAPER_LABEL = "Paper (Bitget rules)"


def demo_market_seed(*, trader: User) -> dict[str, Any]:
    """Load the shipped BTC/USDT sample (5m and resampled) and give the demo trader a funded
    paper account, and the shipped XRP/USDT:USDT perp sample (trade and mark candles, funding
    rates). Idempotent: a second run creates nothing."""
    summary = candles_load_sample()
    perp = perp_sample_load()
    account = ExchangeAccount.objects.filter(user=trader, label=DEMO_PAPER_LABEL).first()
    if account is None:
        account = exchange_account_open(
            user=trader, exchange="bitget", label=DEMO_PAPER_LABEL, mode="paper"
        )
    logger.info("demo.seeded", extra=context(user_id=trader.pk, exchange_account_id=account.pk))
    return {
        "candles": summary.total,
        "created": summary.created,
        "perp_created": perp.created,
        "account": account.label,
    }

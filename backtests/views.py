"""Server-rendered pages: backtests, sweeps and schedules.

Thin function views: every object is read through an owner-scoped selector (another trader's
backtest, sweep or schedule is a 404), every write is one service call, and a form the services
refuse is shown again with their messages next to the fields, answered with 400 (429 for the
quota of active runs) and nothing stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.authentication import AuthenticatedHttpRequest
from backtests import selectors, services, strategy_checks
from backtests.forms import (
    PARAM_PREFIX,
    SWITCH_STRATEGY,
    BacktestForm,
    RunSpecForm,
    ScheduleEditForm,
    ScheduleForm,
    SweepForm,
    default_initial,
)
from backtests.links import sweep_backtests
from backtests.models import Backtest, BacktestSchedule, PeriodRun, RunStatus, Sweep
from backtests.schedule_status import schedule_coverage, schedule_next_run
from backtests.spec import split_spec
from strategies import selectors as strategy_selectors
from strategies.models import Strategy as StrategyRow
from strategies.registry import active
from strategies.views import strategy_list_page
from tradingbot.errors import AppError

PAGE_SIZE = 25
TRADES_PAGE_SIZE = 100
RANKING_ROWS = 100
HISTORY_PAGE_SIZE = 25


# --- shared by the three kinds of run -----------------------------------------------------------


def _create_page(
    request: AuthenticatedHttpRequest,
    form_class: type[RunSpecForm],
    template: str,
    create: Callable[..., Any],
    created: Callable[[Any], tuple[str, str]],
) -> HttpResponse:
    """A "new" page: the form for the strategy asked for (posted, ``?strategy=``, or the first).
    A valid post is handed to ``create(user=..., spec=..., **the rest)``; ``created`` of its
    result gives the message to show and the URL name of the page to open (with its pk).

    A post with ``switch_strategy`` only changes the strategy: the form comes back unbound,
    keeping what was typed except the old strategy's parameters.
    """
    rows = strategy_selectors.strategy_list_backtestable()
    usable = {row.key for row in rows}
    key = (request.POST if request.method == "POST" else request.GET).get("strategy")
    refusal = None
    markets = None
    if request.method == "POST" and SWITCH_STRATEGY not in request.POST:
        # An unusable key is the strategy field's error; the form then has no parameters.
        strategy = active().get(key) if key in usable else None
        form = form_class(request.POST, strategies=rows, strategy=strategy)
        if form.is_valid():
            spec, rest = split_spec(form.validated)
            try:
                run = create(user=request.user, spec=spec, **rest)
            except AppError as error:
                form.attach_error(error)
                refusal = error
            else:
                message, detail = created(run)
                messages.success(request, message)
                return redirect(detail, pk=run.pk)
    else:
        key = key if key in usable else (rows[0].key if rows else None)
        markets = selectors.candle_market_list()
        form = _unbound_form(request, form_class, rows, key, markets)
    status = 200
    if form.errors:
        status = 429 if refusal is not None and refusal.status == 429 else 400
    if markets is None:
        markets = selectors.candle_market_list()
    return render(request, template, {"form": form, "markets": markets}, status=status)


def _unbound_form(
    request: AuthenticatedHttpRequest,
    form_class: type[RunSpecForm],
    rows: list[StrategyRow],
    key: str | None,
    markets: list[dict[str, Any]],
) -> RunSpecForm:
    """A new form for strategy ``key``, filled with what was posted when switching to it."""
    initial = default_initial(markets=markets)
    if request.method == "POST":
        kept = {k: v for k, v in request.POST.items() if not k.startswith(PARAM_PREFIX)}
        initial |= kept | {"strategy": key}
    strategy = active().get(key) if key is not None else None
    return form_class(strategies=rows, strategy=strategy, initial=initial)


def _page(request: AuthenticatedHttpRequest, items: Any, size: int = PAGE_SIZE) -> Page[Any]:
    """The page of ``items`` that ``?page=`` asks for (the first for a bad one, the last past
    the end)."""
    return Paginator(items, size).get_page(request.GET.get("page"))


def _cancelled(
    request: AuthenticatedHttpRequest, run: PeriodRun, *, kind: str, detail: str
) -> HttpResponse:
    """What a cancel did to ``run``, said on its page (``detail``, a URL name)."""
    if run.status == RunStatus.CANCELLED:
        messages.success(request, f"{kind} #{run.pk} cancelled.")
    else:
        messages.info(request, f"{kind} #{run.pk} had already finished ({run.status}).")
    return redirect(detail, pk=run.pk)


# --- backtests ----------------------------------------------------------------------------------


@login_required
@require_GET
def backtest_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    status = request.GET.get("status")
    status = status if status in RunStatus.values else None
    backtests = selectors.backtest_list(user=request.user, status=status)
    context = {"page": _page(request, backtests), "status": status, "statuses": RunStatus.choices}
    return render(request, "backtests/backtest_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def backtest_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    def created(backtest: Backtest) -> tuple[str, str]:
        return f"Backtest #{backtest.pk} queued.", "backtests:backtest-detail"

    return _create_page(
        request, BacktestForm, "backtests/backtest_form.html", services.backtest_create, created
    )


@login_required
@require_GET
def backtest_detail_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    backtest = selectors.backtest_get(user=request.user, pk=pk)
    context: dict[str, Any] = {"backtest": backtest, "active": backtest.is_active}
    if backtest.status == RunStatus.DONE:
        trades = selectors.backtest_trade_list(backtest=backtest)
        zone = timezone.get_current_timezone()
        context["report"] = selectors.backtest_report(backtest=backtest, zone=zone)
        context["trades"] = _page(request, trades, TRADES_PAGE_SIZE)
    return render(request, "backtests/backtest_detail.html", context)


@login_required
@require_POST
def backtest_cancel_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    backtest = selectors.backtest_get(user=request.user, pk=pk)
    backtest = services.backtest_cancel(backtest=backtest)
    return _cancelled(request, backtest, kind="Backtest", detail="backtests:backtest-detail")


# --- strategy checks ----------------------------------------------------------------------------


@login_required
@require_POST
def strategy_check_view(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    """The strategies page with the overfitting guards of strategy ``key`` run on the last
    candles of a market (``strategy_checks.strategy_check_page``); any usable strategy, any
    signed-in trader (strategies are shared)."""
    if not strategy_selectors.strategy_list_usable().filter(key=key).exists():
        raise Http404("No such strategy.")
    outcome = strategy_checks.strategy_check_page(
        key=key, market=request.POST.get("market"), user_id=request.user.pk
    )
    extra = {"outcome": outcome, "check_markets": strategy_checks.check_markets()}
    return strategy_list_page(request, extra, status=outcome.status)


# --- sweeps -------------------------------------------------------------------------------------


@login_required
@require_GET
def sweep_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    sweeps = selectors.sweep_list(user=request.user)
    return render(request, "backtests/sweep_list.html", {"page": _page(request, sweeps)})


@login_required
@require_http_methods(["GET", "POST"])
def sweep_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    def created(sweep: Sweep) -> tuple[str, str]:
        message = f"Sweep #{sweep.pk} queued: {sweep.combination_count} combinations."
        return message, "backtests:sweep-detail"

    return _create_page(
        request, SweepForm, "backtests/sweep_form.html", services.sweep_create, created
    )


@login_required
@require_GET
def sweep_detail_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    sweep = selectors.sweep_get(user=request.user, pk=pk)
    context = {
        "sweep": sweep,
        "active": sweep.is_active,
        "varying": selectors.sweep_varying_params(sweep=sweep),
        "heat_map": selectors.sweep_heat_map(
            sweep=sweep, x=request.GET.get("x"), y=request.GET.get("y")
        ),
        "ranking": selectors.sweep_ranking(sweep=sweep, limit=RANKING_ROWS),
        "backtests": sweep_backtests(sweep=sweep),
        "ranking_limit": RANKING_ROWS,
        "failures": selectors.sweep_failure_list(sweep=sweep),
    }
    return render(request, "backtests/sweep_detail.html", context)


@login_required
@require_POST
def sweep_run_backtest_view(request: AuthenticatedHttpRequest, pk: int, seq: int) -> HttpResponse:
    """Open combination ``seq`` as a backtest: the existing one, or a new one queued."""
    sweep = selectors.sweep_get(user=request.user, pk=pk)
    try:
        backtest, created = services.sweep_run_backtest(sweep=sweep, seq=seq)
    except AppError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        messages.error(request, error.message)
        return redirect("backtests:sweep-detail", pk=sweep.pk)
    if created:
        messages.success(request, f"Backtest #{backtest.pk} queued: combination {seq}.")
    return redirect("backtests:backtest-detail", pk=backtest.pk)


@login_required
@require_POST
def sweep_cancel_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    sweep = selectors.sweep_get(user=request.user, pk=pk)
    sweep = services.sweep_cancel(sweep=sweep)
    return _cancelled(request, sweep, kind="Sweep", detail="backtests:sweep-detail")


# --- schedules ----------------------------------------------------------------------------------


@login_required
@require_GET
def schedule_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    now = timezone.now()
    schedules = list(selectors.schedule_list(user=request.user))
    rows = [(schedule, schedule_next_run(schedule, now)) for schedule in schedules]
    return render(request, "backtests/schedule_list.html", {"schedules": schedules, "rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def schedule_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    def created(schedule: BacktestSchedule) -> tuple[str, str]:
        return f"Schedule “{schedule.name}” saved.", "backtests:schedule-detail"

    return _create_page(
        request, ScheduleForm, "backtests/schedule_form.html", services.schedule_create, created
    )


@login_required
@require_GET
def schedule_detail_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    schedule = selectors.schedule_get(user=request.user, pk=pk)
    runs = selectors.backtest_list(user=request.user, schedule=schedule)
    now = timezone.now()
    context = {
        "schedule": schedule,
        "page": _page(request, runs, HISTORY_PAGE_SIZE),
        "next_run": schedule_next_run(schedule, now),
        "coverage": schedule_coverage(schedule, now),
    }
    return render(request, "backtests/schedule_detail.html", context)


@login_required
@require_POST
def schedule_run_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Run now, as beat would (over the last N days); a paused schedule is resumed first."""
    schedule = selectors.schedule_get(user=request.user, pk=pk)
    backtest = services.schedule_run(schedule_id=schedule.pk) if schedule.enabled else None
    if backtest is None:
        messages.error(request, f"“{schedule.name}” is paused: resume it to run it.")
    elif backtest.status == RunStatus.FAILED:
        messages.error(request, f"Backtest #{backtest.pk} could not start: {backtest.error}")
    else:
        messages.success(request, f"Backtest #{backtest.pk} queued: the last "
                         f"{schedule.lookback_days} days.")  # fmt: skip
    return redirect("backtests:schedule-detail", pk=schedule.pk)


@login_required
@require_http_methods(["GET", "POST"])
def schedule_edit_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    schedule = selectors.schedule_get(user=request.user, pk=pk)
    fields = ("name", "cron", "lookback_days", "enabled")
    initial = {name: getattr(schedule, name) for name in fields}
    form = ScheduleEditForm(request.POST if request.method == "POST" else None, initial=initial)
    if form.is_valid():
        try:
            services.schedule_update(schedule=schedule, **form.cleaned_data)
        except AppError as error:
            form.attach_error(error)
        else:
            messages.success(request, f"Schedule “{schedule.name}” saved.")
            return redirect("backtests:schedule-detail", pk=schedule.pk)
    status = 400 if form.errors else 200
    context = {"schedule": schedule, "form": form}
    return render(request, "backtests/schedule_edit.html", context, status=status)


@login_required
@require_POST
def schedule_delete_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    schedule = selectors.schedule_get(user=request.user, pk=pk)
    name = schedule.name
    services.schedule_delete(schedule=schedule)
    messages.success(request, f"Schedule “{name}” deleted; the backtests it ran are kept.")
    return redirect("backtests:schedule-list")


def _set_enabled(request: AuthenticatedHttpRequest, pk: int, *, enabled: bool) -> HttpResponse:
    schedule = selectors.schedule_get(user=request.user, pk=pk)
    schedule = services.schedule_update(schedule=schedule, enabled=enabled)
    state = "resumed" if enabled else "paused"
    messages.success(request, f"Schedule “{schedule.name}” {state}.")
    if request.POST.get("back") == "detail":
        return redirect("backtests:schedule-detail", pk=schedule.pk)
    return redirect("backtests:schedule-list")


@login_required
@require_POST
def schedule_pause_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _set_enabled(request, pk, enabled=False)


@login_required
@require_POST
def schedule_resume_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _set_enabled(request, pk, enabled=True)

"""Template tags of the links from results to action (``backtests.links``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from backtests.links import bot_form_url as _bot_form_url
from backtests.links import params_key
from backtests.models import Backtest, PeriodRun

register = template.Library()


@register.simple_tag
def bot_form_url(run: PeriodRun, params: Mapping[str, Any] | None = None) -> str:
    """``{% bot_form_url backtest %}``, ``{% bot_form_url sweep combination.params %}``."""
    return _bot_form_url(run, params=params)


@register.filter
def backtest_of(backtests: Mapping[str, Backtest], params: Mapping[str, Any]) -> Backtest | None:
    """``{{ backtests|backtest_of:combination.params }}``: its backtest, if it has one."""
    return backtests.get(params_key(params))

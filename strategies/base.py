"""The strategy contract: closed candles in, a target position per candle out. No Django.

A strategy is a class with a slug ``key``, a ``name``, a ``description``, its parameter
declarations ``params`` and optional default ``stop_loss`` / ``take_profit`` fractions (``0.02`` =
2 %). An INSTANCE holds validated parameter values in ``self.values`` (the class attribute
``params`` keeps the declarations; the two cannot share a name and stay typed).

``target_position(candles)`` gets a DataFrame with the columns ``open_time`` (int epoch ms),
``open``, ``high``, ``low``, ``close``, ``volume`` (floats), ascending by ``open_time``, every row a
CLOSED candle. It returns an int8 Series on ``candles.index`` with values in {-1, 0, +1}: the
position wanted once candle ``i`` has closed (the engine fills it at candle ``i + 1``'s open). The
value at row ``i`` may use rows ``<= i`` only, rows whose indicators are still warming up are 0,
and -1 appears only when the strategy allows shorts (its ``allow_short`` parameter is true).
Callers should use :meth:`Strategy.positions`, which checks the input and that contract.

What a strategy draws on a chart: its class attribute ``plots`` declares the lines (a
:class:`Plot` each), and ``indicators(candles)`` returns their values, a float Series on
``candles.index`` per plot key, causal like the positions (NaN while warming up). Callers use
:meth:`Strategy.plotted`, which checks that every declared key came back;
``strategies.plots.indicator_chart`` turns them into a chart's JSON.
"""

from __future__ import annotations

import inspect
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from strategies.params import (
    Param,
    StrategyDefinitionError,
    StrategyParamError,
    validate_params,
)

CANDLE_COLUMNS: tuple[str, ...] = ("open_time", "open", "high", "low", "close", "volume")
KEY_PATTERN = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$")
KEY_MAX_LENGTH = 64
NAME_MAX_LENGTH = 100


class StrategyInputError(ValueError):
    """Candles that do not have the shape a strategy needs."""


class StrategyOutputError(ValueError):
    """A strategy returned positions that break the contract (a bug in the strategy)."""


PLOT_PANES: tuple[str, ...] = ("price", "lower")
PLOT_STYLES: tuple[str, ...] = ("line", "dashed", "histogram")
_PLOT_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Plot:
    """One series a strategy draws on its chart.

    ``key`` names the Series that ``indicators`` returns for it; ``label`` is what the chart's
    legend says. ``pane`` "price" draws it over the candles (an average, a band), "lower" in a
    pane under them (an oscillator, with its own scale). ``color`` is ``"#rrggbb"``, or None to
    let the chart pick. ``style``: a ``"line"``, a ``"dashed"`` line (a level), or a
    ``"histogram"``. Checked when created, like :class:`~strategies.params.Param`.
    """

    key: str
    label: str
    pane: Literal["price", "lower"] = "price"
    color: str | None = None
    style: Literal["line", "dashed", "histogram"] = "line"

    def __post_init__(self) -> None:
        where = f"plot {self.key!r}"
        if not isinstance(self.key, str) or not _PLOT_KEY.match(self.key):
            raise StrategyDefinitionError(
                f"{where}: a key is lowercase letters, digits and underscores, starting with a "
                "letter (at most 64 characters)"
            )
        if not isinstance(self.label, str) or not self.label.strip():
            raise StrategyDefinitionError(f"{where}: label must be a non-empty string")
        if self.pane not in PLOT_PANES:
            raise StrategyDefinitionError(f"{where}: pane must be one of {', '.join(PLOT_PANES)}")
        if self.style not in PLOT_STYLES:
            raise StrategyDefinitionError(f"{where}: style must be one of {', '.join(PLOT_STYLES)}")
        if self.color is not None and not (
            isinstance(self.color, str) and _COLOR.match(self.color)
        ):
            raise StrategyDefinitionError(f"{where}: color must be None or '#rrggbb'")

    def schema(self) -> dict[str, Any]:
        return asdict(self)


class Strategy(ABC):
    """Base class of every strategy; see the module docstring for the contract."""

    key: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    stop_loss: ClassVar[float | None] = None
    take_profit: ClassVar[float | None] = None
    plots: ClassVar[tuple[Plot, ...]] = ()
    # False for a strategy whose positions come from outside (the signals a bot receives): a
    # backtest or sweep of it would trade nothing, so they refuse it.
    backtestable: ClassVar[bool] = True

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        """Validate ``params`` (defaults for what is missing) and keep them in ``self.values``.

        Raises :class:`~strategies.params.StrategyParamError` listing every bad field.
        """
        self.values: dict[str, Any] = type(self).validate(params)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key} {self.values!r}>"

    @property
    def allows_short(self) -> bool:
        """True when this instance may go short: its ``allow_short`` parameter is true."""
        return bool(self.values.get("allow_short", False))

    @classmethod
    def supports_short(cls) -> bool:
        """True when the strategy has an ``allow_short`` parameter at all."""
        return any(param.name == "allow_short" for param in cls.params)

    @classmethod
    def validate(cls, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validated parameter values: field rules (``validate_params``), then ``check``.

        Cross-field rules run only when every field is valid on its own.
        """
        values = validate_params(cls.params, params)
        errors = cls.check(values)
        if errors:
            raise StrategyParamError(errors)
        return values

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> dict[str, list[str]]:
        """Cross-field rules on already-typed values: ``{field: [message, ...]}``, empty if fine.

        Override it for rules such as ``fast < slow``; it is a classmethod because it runs
        before the instance exists.
        """
        return {}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {param.name: param.default for param in cls.params}

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """JSON-able description for the catalogue and the API."""
        return {
            "key": cls.key,
            "name": cls.name,
            "description": cls.description,
            "params": [param.schema() for param in cls.params],
            "stop_loss": cls.stop_loss,
            "take_profit": cls.take_profit,
            "plots": [plot.schema() for plot in cls.plots],
        }

    @abstractmethod
    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        """The wanted position after each closed candle (see the module docstring)."""

    def positions(self, candles: pd.DataFrame) -> pd.Series:
        """``target_position`` with its input and output checked.

        Raises :class:`StrategyInputError` for candles without the required columns or not
        strictly ascending by ``open_time``, and :class:`StrategyOutputError` when the result is
        not an int Series on ``candles.index`` with values in {-1, 0, +1} (-1 only when shorts
        are allowed). Returns the positions as int8.
        """
        check_candles(candles)
        result = self.target_position(candles)
        return self._checked_output(candles, result)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        """The values of ``plots``, by key: float Series on ``candles.index`` (see the module
        docstring). A strategy that draws nothing keeps this default."""
        return {}

    def plotted(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        """``indicators`` with its input and output checked, in the order of ``plots``.

        Raises :class:`StrategyInputError` for bad candles and :class:`StrategyOutputError` when a
        declared key is missing or its value is not a numeric Series on ``candles.index``.
        """
        check_candles(candles)
        found = self.indicators(candles)
        where = f"strategy {self.key!r}"
        if not isinstance(found, Mapping):
            raise StrategyOutputError(f"{where}: indicators returned {type(found).__name__}")
        series: dict[str, pd.Series] = {}
        for plot in self.plots:
            value = found.get(plot.key)
            if not isinstance(value, pd.Series) or not value.index.equals(candles.index):
                raise StrategyOutputError(
                    f"{where}: indicators must return a Series on candles.index for {plot.key!r}"
                )
            if value.dtype.kind not in "iuf":
                raise StrategyOutputError(f"{where}: indicator {plot.key!r} is not numeric")
            series[plot.key] = value.astype(float)
        return series

    def _checked_output(self, candles: pd.DataFrame, result: Any) -> pd.Series:
        where = f"strategy {self.key!r}"
        if not isinstance(result, pd.Series):
            raise StrategyOutputError(f"{where} returned {type(result).__name__}, not a Series")
        if not result.index.equals(candles.index):
            raise StrategyOutputError(f"{where} returned a Series not aligned to candles.index")
        values = result.to_numpy()
        if values.dtype.kind not in "iubf" or (values.dtype.kind == "f" and np.isnan(values).any()):
            raise StrategyOutputError(f"{where} returned NaN or non-numeric positions")
        if not np.isin(values, (-1, 0, 1)).all():
            raise StrategyOutputError(f"{where} returned positions outside -1, 0, +1")
        if not self.allows_short and (values == -1).any():
            raise StrategyOutputError(f"{where} went short although shorts are not allowed")
        return pd.Series(values.astype(np.int8), index=candles.index, name="position")


def check_candles(candles: Any) -> None:
    """Raise :class:`StrategyInputError` unless ``candles`` fits the contract's input."""
    if not isinstance(candles, pd.DataFrame):
        raise StrategyInputError(f"candles must be a DataFrame, got {type(candles).__name__}")
    missing = [column for column in CANDLE_COLUMNS if column not in candles.columns]
    if missing:
        raise StrategyInputError(f"candles lack the columns {', '.join(missing)}")
    open_time = candles["open_time"]
    if len(open_time) > 1 and not (open_time.diff().iloc[1:] > 0).all():
        raise StrategyInputError("candles must be strictly ascending by open_time")


def validate_strategy_class(cls: Any) -> None:
    """Raise :class:`StrategyDefinitionError` unless ``cls`` is a usable strategy class.

    Checks: a concrete ``Strategy`` subclass; ``key`` a slug of at most 64 characters (lowercase
    letters and digits, words joined by ``_`` or ``-``); a non-empty ``name`` of at most 100
    characters; a string ``description``; ``params`` a tuple of distinct ``Param``; an
    ``allow_short`` parameter, if any, of kind bool; ``stop_loss`` / ``take_profit`` None or a
    fraction in (0, 1) / (0, 10]; the defaults passing ``check``.
    """
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise StrategyDefinitionError(f"{cls!r} is not a Strategy subclass")
    label = f"{cls.__module__}.{cls.__qualname__}"
    if inspect.isabstract(cls):
        raise StrategyDefinitionError(f"{label} is abstract (implement target_position)")
    key = getattr(cls, "key", None)
    if not isinstance(key, str) or len(key) > KEY_MAX_LENGTH or not KEY_PATTERN.match(key):
        raise StrategyDefinitionError(
            f"{label}: key must be a slug of lowercase letters and digits joined by _ or - "
            f"(at most {KEY_MAX_LENGTH} characters), got {key!r}"
        )
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH:
        raise StrategyDefinitionError(
            f"{label}: name must be a non-empty string of at most {NAME_MAX_LENGTH} characters"
        )
    if not isinstance(cls.description, str):
        raise StrategyDefinitionError(f"{label}: description must be a string")
    if not isinstance(cls.params, tuple) or not all(isinstance(p, Param) for p in cls.params):
        raise StrategyDefinitionError(f"{label}: params must be a tuple of Param")
    names = [param.name for param in cls.params]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StrategyDefinitionError(f"{label}: duplicate parameters {', '.join(duplicates)}")
    for param in cls.params:
        if param.name == "allow_short" and param.kind != "bool":
            raise StrategyDefinitionError(f"{label}: allow_short must be a bool parameter")
    for attr, upper in (("stop_loss", 1.0), ("take_profit", 10.0)):
        value = getattr(cls, attr)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 < value <= upper
            or (attr == "stop_loss" and value >= 1)
        ):
            raise StrategyDefinitionError(
                f"{label}: {attr} must be None or a fraction such as 0.02, got {value!r}"
            )
    try:
        cls.validate({})
    except StrategyParamError as exc:
        raise StrategyDefinitionError(f"{label}: the defaults are invalid: {exc}") from None
    _validate_plots(cls, label)


def _validate_plots(cls: type[Strategy], label: str) -> None:
    """``plots`` a tuple of distinct :class:`Plot`, each of whose keys ``indicators`` returns
    (tried with the defaults on a made-up wave of candles)."""
    if not isinstance(cls.plots, tuple) or not all(isinstance(p, Plot) for p in cls.plots):
        raise StrategyDefinitionError(f"{label}: plots must be a tuple of Plot")
    keys = [plot.key for plot in cls.plots]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise StrategyDefinitionError(f"{label}: duplicate plots {', '.join(duplicates)}")
    if not keys:
        return
    try:
        cls({}).plotted(_probe_candles())
    except Exception as exc:  # any failure of the strategy's own code is a broken definition
        raise StrategyDefinitionError(f"{label}: its indicators failed: {exc}") from None


def _probe_candles(rows: int = 300) -> pd.DataFrame:
    """A smooth made-up market (a sine wave around 100), for trying a strategy's indicators.
    Its index does not start at 0, so a Series built without the candles' index shows."""
    close = 100 + 10 * np.sin(np.arange(rows) / 7)
    return pd.DataFrame(
        {
            "open_time": np.arange(rows, dtype=np.int64) * 60_000,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.ones(rows),
        },
        index=pd.RangeIndex(1000, 1000 + rows),
    )


def fast_shorter_than_slow(params: Mapping[str, Any]) -> dict[str, list[str]]:
    """The cross-field rule of a strategy that compares a fast line with a slow one: the
    ``fast`` length must be below the ``slow`` one (a ``check`` result)."""
    fast, slow = params["fast"], params["slow"]
    if fast >= slow:
        return {"slow": [f"slow must be greater than fast ({fast}), got {slow}"]}
    return {}


def position_series(long: pd.Series, short: pd.Series | None = None) -> pd.Series:
    """+1 where ``long`` is true, -1 where ``short`` is true, else 0 (int8, on ``long.index``).

    NaN counts as false; a row where both are true is 0 (a strategy should not produce that).
    """
    position = _flags(long).astype(np.int8)
    if short is not None:
        position = position - _flags(short).astype(np.int8)
    return pd.Series(position, index=long.index, dtype=np.int8, name="position")


def _flags(series: pd.Series) -> Any:
    if series.dtype == bool:
        return series.to_numpy()
    values = series.to_numpy(dtype=object)
    return np.where(pd.isna(values), False, values).astype(bool)

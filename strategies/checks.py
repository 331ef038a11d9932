"""Overfitting guards: does a strategy look ahead, and do its indicators depend on where the data
starts? Pure pandas/numpy, no Django; ``manage.py strategy_check`` and the strategy page run it.

**Lookahead analysis** (after freqtrade's ``lookahead-analysis``). The strategy runs once on all
the candles, then again on the candles truncated at each *cut point* (the candles ``0..c``). For a
causal strategy nothing it says about a candle can change when later candles are removed, so every
row of each truncated run (its ``positions`` and every ``indicators()`` column) must equal the
full run's value for the same candle: the same float within ``LOOKAHEAD_RTOL`` / ``_ATOL``, NaN
equal to NaN (a NaN against a number is a difference). The cut points are ``cuts`` candles spread
evenly from the end of the warm-up (the first candle where every indicator is defined, in the
full run) to the second-last candle, plus ``random_cuts`` drawn from the same range with a fixed
``seed``: the cost is bounded by ``cuts + random_cuts + 1`` runs whatever the number of candles.
A difference is a :class:`Finding` naming the column (``position`` or the indicator's key) and
the candle (its open time); per column the earliest differing candle over all cut points is kept.
A strategy that reads the next candle (``close.shift(-1)``) differs on the last row of a cut.

**Recursive analysis** (after freqtrade's ``recursive-analysis``). The target range is the last
``target`` candles. The indicators are computed again on data starting ``w`` candles before the
target range, for each warm-up length ``w`` in ``warmups`` shorter than what is available, and
compared with the *reference*: the indicators on all the candles (the longest warm-up). A
column's relative difference at a candle is ``|value_w - reference| / scale``, where ``scale`` is
the mean absolute reference value over the target range (1 when that is 0), so a line near zero
(a MACD histogram) is not judged by its own tiny value; both NaN is 0, NaN against a number is
infinite. A column **converges** when, for every warm-up, the difference at the END of the target
range is at most ``tolerance``: a warm-up of ``min(warmups)`` candles is then enough for the
indicator to forget where the data started. An SMA converges exactly once its window fits, an
EMA or Wilder's smoothing geometrically (a 26-candle EMA to ~1e-7 after 200 candles); a
cumulative sum or an ``expanding()`` mean never does. The positions are not compared here (a held
state may legitimately start later with less data); the lookahead analysis covers them.

Every time in a result is a candle open time in epoch ms, UTC (``iso_time`` formats it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from strategies.base import Strategy

POSITION = "position"
ERROR = "error"
LOOKAHEAD_RTOL = 1e-9
LOOKAHEAD_ATOL = 1e-12


class CheckInputError(ValueError):
    """Candles that cannot carry the analyses (too few for the settings asked)."""


@dataclass(frozen=True)
class CheckSettings:
    """How hard to look; the defaults fit 2,000 candles in well under a second per strategy."""

    cuts: int = 40
    random_cuts: int = 10
    seed: int = 19
    target: int = 100
    warmups: tuple[int, ...] = (200, 500, 1000)
    tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if self.cuts < 1 or self.random_cuts < 0 or self.target < 1:
            raise ValueError("cuts and target must be at least 1, random_cuts at least 0")
        if not self.warmups or min(self.warmups) < 1:
            raise ValueError("warmups must be positive candle counts")
        if not self.tolerance > 0:
            raise ValueError("tolerance must be positive")

    @property
    def min_candles(self) -> int:
        """The fewest candles both analyses can run on: the target range after the shortest
        warm-up, plus one candle more for the reference to start earlier."""
        return self.target + min(self.warmups) + 1


def iso_time(time_ms: int) -> str:
    """A candle's open time as ISO 8601 in UTC (``2023-01-03T00:05:00Z``)."""
    moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Finding:
    """A look-ahead: ``column`` at the candle opened at ``open_time`` was ``full`` with every
    candle but ``truncated`` with the candles up to ``cut_time`` only (``error``: the run on
    truncated candles raised, ``detail`` says what)."""

    column: str
    open_time: int
    cut_time: int
    full: float | None
    truncated: float | None
    detail: str = ""

    @property
    def time_iso(self) -> str:
        return iso_time(self.open_time)

    @property
    def cut_iso(self) -> str:
        return iso_time(self.cut_time)

    @property
    def full_text(self) -> str:
        return _number(self.full)

    @property
    def truncated_text(self) -> str:
        return _number(self.truncated)

    def describe(self) -> str:
        if self.column == ERROR:
            return f"with the candles up to {iso_time(self.cut_time)} it failed: {self.detail}"
        return (
            f"first differing candle {self.time_iso}, column {self.column!r}: "
            f"{self.full_text} with all candles, {self.truncated_text} with the candles "
            f"up to {self.cut_iso}"
        )


@dataclass(frozen=True)
class LookaheadResult:
    columns: tuple[str, ...]
    cut_times: tuple[int, ...]
    findings: tuple[Finding, ...]  # the earliest difference of each column, earliest first

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None


@dataclass(frozen=True)
class Divergence:
    """One indicator column over the warm-ups: ``differences[i]`` is the relative difference
    at the end of the target range with ``warmups[i]`` candles of warm-up (see the module
    docstring), ``largest`` its maximum."""

    column: str
    warmups: tuple[int, ...]
    differences: tuple[float, ...]
    tolerance: float

    @property
    def largest(self) -> float:
        return max(self.differences, default=0.0)

    @property
    def converged(self) -> bool:
        return self.largest <= self.tolerance

    def describe(self) -> str:
        pairs = ", ".join(
            f"{w}: {_number(d)}" for w, d in zip(self.warmups, self.differences, strict=True)
        )
        verdict = "converges" if self.converged else "does not converge"
        return (
            f"column {self.column!r} {verdict}: largest relative difference "
            f"{_number(self.largest)} (tolerance {self.tolerance:g}; by warm-up {pairs})"
        )


@dataclass(frozen=True)
class RecursiveResult:
    target_start: int  # open time of the target range's first candle
    target_end: int  # open time of its last candle
    warmups: tuple[int, ...]  # the warm-ups compared, shortest first
    reference_warmup: int  # the candles before the target range in the reference run
    columns: tuple[Divergence, ...]

    @property
    def failures(self) -> tuple[Divergence, ...]:
        return tuple(column for column in self.columns if not column.converged)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class StrategyCheck:
    """Both analyses of one strategy with its parameters, over ``candles`` candles."""

    key: str
    params: dict[str, Any]
    candles: int
    first_time: int
    last_time: int
    lookahead: LookaheadResult
    recursive: RecursiveResult
    settings: CheckSettings = field(default_factory=CheckSettings)

    @property
    def passed(self) -> bool:
        return self.lookahead.passed and self.recursive.passed

    @property
    def first_iso(self) -> str:
        return iso_time(self.first_time)

    @property
    def last_iso(self) -> str:
        return iso_time(self.last_time)

    def reason(self) -> str | None:
        """What failed first (the lookahead's first finding, else the first indicator that does
        not converge), None when both passed."""
        if self.lookahead.first is not None:
            return f"lookahead: {self.lookahead.first.describe()}"
        if self.recursive.failures:
            return f"recursive: {self.recursive.failures[0].describe()}"
        return None

    def failure(self) -> str | None:
        """One line naming the strategy and what failed first, None when both passed."""
        reason = self.reason()
        return None if reason is None else f"{self.key}: {reason}"


def _number(value: float | None) -> str:
    if value is None or np.isnan(value):
        return "NaN"
    return f"{value:.6g}"


def _outputs(strategy: Strategy, candles: pd.DataFrame, *, positions: bool) -> dict[str, Any]:
    """The strategy's columns as float arrays: ``position`` (when asked) and every indicator."""
    columns: dict[str, Any] = {}
    if positions:
        columns[POSITION] = strategy.positions(candles).to_numpy(dtype=float)
    found = strategy.indicators(candles)
    if not isinstance(found, Mapping):
        raise TypeError(f"indicators returned {type(found).__name__}, not a dict")
    for key, series in found.items():
        values = np.asarray(series, dtype=float)
        if values.shape != (len(candles),):
            raise ValueError(f"indicator {key!r} has {values.shape} values for {len(candles)}")
        columns[str(key)] = values
    return columns


def _differ(left: Any, right: Any, rtol: float, atol: float) -> Any:
    """Boolean array: where the two float arrays differ (NaN equals NaN)."""
    return ~np.isclose(left, right, rtol=rtol, atol=atol, equal_nan=True)


def _warmed_up(columns: Mapping[str, Any]) -> int:
    """The first row where every indicator that is ever defined is defined."""
    first = 0
    for name, values in columns.items():
        defined = np.flatnonzero(~np.isnan(values))
        if name != POSITION and len(defined):
            first = max(first, int(defined[0]))
    return first


def cut_points(count: int, *, start: int, settings: CheckSettings) -> list[int]:
    """The rows to truncate after: ``settings.cuts`` spread evenly over ``start .. count - 2``
    and ``settings.random_cuts`` random ones in it (seeded), sorted, without repeats."""
    last = count - 2
    start = min(max(start, 0), last)
    if last < 0:
        return []
    even = np.linspace(start, last, num=settings.cuts).round().astype(int)
    rng = np.random.default_rng(settings.seed)
    drawn = rng.integers(start, last + 1, size=settings.random_cuts)
    return sorted({int(row) for row in (*even, *drawn)})


def lookahead_analysis(
    strategy: Strategy, candles: pd.DataFrame, settings: CheckSettings | None = None
) -> LookaheadResult:
    """The lookahead analysis of the module docstring."""
    settings = settings or CheckSettings()
    times = candles["open_time"].to_numpy(dtype=np.int64)
    full = _outputs(strategy, candles, positions=True)
    cuts = cut_points(len(candles), start=_warmed_up(full), settings=settings)
    earliest: dict[str, Finding] = {}
    for cut in cuts:
        for finding in _cut_findings(strategy, candles, full, cut, times):
            known = earliest.get(finding.column)
            if known is None or finding.open_time < known.open_time:
                earliest[finding.column] = finding
    order = list(full)
    findings = sorted(earliest.values(), key=lambda f: (f.open_time, _rank(order, f.column)))
    return LookaheadResult(
        columns=tuple(full),
        cut_times=tuple(int(times[cut]) for cut in cuts),
        findings=tuple(findings),
    )


def _cut_findings(
    strategy: Strategy, candles: pd.DataFrame, full: Mapping[str, Any], cut: int, times: Any
) -> list[Finding]:
    """The earliest difference of each column between the run on the candles ``0..cut`` and
    the full run ``full``."""
    cut_time = int(times[cut])
    try:
        part = _outputs(strategy, candles.iloc[: cut + 1], positions=True)
    except Exception as exc:  # the strategy's own code failed on fewer candles
        return [Finding(ERROR, cut_time, cut_time, None, None, f"{type(exc).__name__}: {exc}")]
    findings = []
    for name, reference in full.items():
        values = part.get(name)
        if values is None:
            findings.append(Finding(ERROR, cut_time, cut_time, None, None, f"no column {name!r}"))
            continue
        differs = _differ(values, reference[: cut + 1], LOOKAHEAD_RTOL, LOOKAHEAD_ATOL)
        if differs.any():
            row = int(np.argmax(differs))
            found = Finding(
                name, int(times[row]), cut_time, float(reference[row]), float(values[row])
            )
            findings.append(found)
    return findings


def _rank(order: Sequence[str], column: str) -> int:
    return order.index(column) if column in order else -1


def _relative(values: Any, reference: Any, scale: float) -> Any:
    """``|values - reference| / scale``; 0 where both are NaN, infinite where one is."""
    with np.errstate(invalid="ignore"):
        difference = np.abs(values - reference) / scale
    one_nan = np.isnan(values) != np.isnan(reference)
    difference = np.where(one_nan, np.inf, difference)
    return np.where(np.isnan(values) & np.isnan(reference), 0.0, difference)


def _scale(reference: Any) -> float:
    defined = reference[~np.isnan(reference)]
    size = float(np.mean(np.abs(defined))) if len(defined) else 0.0
    return size if size > 0 and np.isfinite(size) else 1.0


def recursive_analysis(
    strategy: Strategy, candles: pd.DataFrame, settings: CheckSettings | None = None
) -> RecursiveResult:
    """The recursive analysis of the module docstring."""
    settings = settings or CheckSettings()
    count = len(candles)
    if count < settings.min_candles:
        raise CheckInputError(
            f"the recursive analysis needs at least {settings.min_candles} candles (a target "
            f"range of {settings.target} after a warm-up of {min(settings.warmups)}), got {count}"
        )
    start = count - settings.target
    warmups = tuple(sorted({w for w in settings.warmups if w < start}))
    reference = _outputs(strategy, candles, positions=False)
    runs = {w: _outputs(strategy, candles.iloc[start - w :], positions=False) for w in warmups}
    columns = []
    for name, values in reference.items():
        target = values[start:]
        scale = _scale(target)
        differences = []
        for warmup in warmups:
            shorter = runs[warmup].get(name)
            end = np.nan if shorter is None else shorter[-1]
            differences.append(float(_relative(np.array([end]), target[-1:], scale)[0]))
        columns.append(Divergence(name, warmups, tuple(differences), settings.tolerance))
    times = candles["open_time"].to_numpy(dtype=np.int64)
    return RecursiveResult(
        target_start=int(times[start]),
        target_end=int(times[-1]),
        warmups=warmups,
        reference_warmup=start,
        columns=tuple(columns),
    )


def strategy_check(
    strategy: Strategy, candles: pd.DataFrame, settings: CheckSettings | None = None
) -> StrategyCheck:
    """Both analyses of ``strategy`` over ``candles`` (closed candles, ascending, the columns
    of ``strategies.base.CANDLE_COLUMNS``). Raises :class:`CheckInputError` for too few."""
    settings = settings or CheckSettings()
    frame = candles.reset_index(drop=True)
    if len(frame) < settings.min_candles:
        raise CheckInputError(
            f"the checks need at least {settings.min_candles} candles, got {len(frame)}"
        )
    times = frame["open_time"].to_numpy(dtype=np.int64)
    return StrategyCheck(
        key=strategy.key,
        params=dict(strategy.values),
        candles=len(frame),
        first_time=int(times[0]),
        last_time=int(times[-1]),
        lookahead=lookahead_analysis(strategy, frame, settings),
        recursive=recursive_analysis(strategy, frame, settings),
        settings=settings,
    )


def report_lines(check: StrategyCheck) -> list[str]:
    """The check as text, a line per verdict (for the command)."""
    verdict = "passed" if check.passed else "FAILED"
    lines = [
        f"{check.key}: {verdict} ({check.candles} candles, {iso_time(check.first_time)} to "
        f"{iso_time(check.last_time)})"
    ]
    look = check.lookahead
    if look.passed:
        lines.append(
            f"  lookahead: passed ({len(look.cut_times)} cut points, columns "
            f"{', '.join(look.columns)})"
        )
    else:
        lines.append("  lookahead: FAILED")
        lines.extend(f"    {finding.describe()}" for finding in look.findings)
    rec = check.recursive
    warmups = ", ".join(str(w) for w in rec.warmups)
    head = (
        f"warm-ups {warmups} against {rec.reference_warmup}, target "
        f"{iso_time(rec.target_start)} to {iso_time(rec.target_end)}"
    )
    if rec.passed:
        widest = max(rec.columns, key=lambda column: column.largest, default=None)
        if widest is not None:
            head += f"; largest difference {_number(widest.largest)} on {widest.column!r}"
        lines.append(f"  recursive: passed ({head})")
    else:
        lines.append(f"  recursive: FAILED ({head})")
        lines.extend(f"    {column.describe()}" for column in rec.failures)
    return lines

"""Strategy parameters: declarations, their JSON schema, and strict validation. Pure Python.

A strategy declares its parameters as a tuple of :class:`Param`. Values arrive from JSON (the API,
a stored bot) and are validated strictly, so what runs is exactly what the user meant:

- ``int``: a JSON number with no fractional part (``10`` or ``10.0`` → ``10``). Booleans, ``1.5``,
  non-finite numbers (an integer too large for a float, such as ``10**309``, counts as one: see
  :func:`finite_number`) and strings (even ``"10"``) are rejected: the API takes JSON numbers, and a
  string there is a client bug worth reporting rather than guessing at.
- ``float``: any finite JSON number (``3`` → ``3.0``); booleans and strings are rejected.
- ``bool``: only ``true`` / ``false``; ``0``, ``1`` and ``"true"`` are rejected.
- ``choice``: only one of the listed values (same type and value).
- ``min`` / ``max`` are inclusive bounds for ``int`` and ``float``.
- Keys that are not declared parameters are rejected; missing keys take their defaults.

Every error is collected, one message per field (``{"fast": ["fast must be an integer between 2
and 500, got 1.5"]}``), and raised together as :class:`StrategyParamError`. Cross-field rules
(``fast < slow``) belong to the strategy's ``check`` and run only once every field is valid.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ParamKind = Literal["int", "float", "bool", "choice"]
PARAM_KINDS: tuple[str, ...] = ("int", "float", "bool", "choice")
NON_FIELD = "non_field_errors"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LABEL_MAX_LENGTH = 60


class StrategyParamError(ValueError):
    """Parameter values that do not fit a strategy; ``errors`` maps a field to its messages."""

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors: dict[str, list[str]] = {key: list(msgs) for key, msgs in errors.items()}
        summary = "; ".join(msg for msgs in self.errors.values() for msg in msgs)
        super().__init__(f"invalid strategy parameters: {summary}")


class StrategyDefinitionError(ValueError):
    """A strategy or parameter declared wrongly in code (a programming error, not user input)."""


def show(value: Any) -> str:
    """A value as the user wrote it: JSON when it is JSON (``true``, ``"10"``), else ``repr``;
    an integer beyond any float in words rather than its hundreds of digits."""
    if _is_number(value) and isinstance(value, numbers.Integral) and not finite_number(value):
        return "an integer beyond ±1.8e308"
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def finite_number(value: Any) -> bool:
    """Whether ``value`` is a number (not a bool) that a float holds: not NaN, not infinite, and
    not an integer too large for a float (``10**309``, on which ``math.isfinite`` raises
    ``OverflowError``). The one check every parameter value and sweep bound passes."""
    if not _is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _fmt(bound: float) -> str:
    return show(int(bound)) if float(bound).is_integer() else show(float(bound))


@dataclass(frozen=True)
class Param:
    """One parameter of a strategy.

    ``kind`` is ``"int"``, ``"float"``, ``"bool"`` or ``"choice"``; ``min`` / ``max`` (inclusive)
    apply to numbers, ``choices`` (a non-empty tuple) to ``choice``. The declaration is checked
    when it is created: a default that its own rules reject raises
    :class:`StrategyDefinitionError`, so a broken strategy module fails at import.
    """

    name: str
    kind: ParamKind
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    # What forms, pages and the API schema call it ("Moving-average kind"); empty: the name,
    # spelled out ("allow_short" -> "Allow short").
    label: str = ""

    def __post_init__(self) -> None:
        where = f"parameter {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise StrategyDefinitionError(
                f"{where}: a name is lowercase letters, digits and underscores, starting with a "
                "letter (at most 64 characters)"
            )
        if self.kind not in PARAM_KINDS:
            raise StrategyDefinitionError(
                f"{where}: kind must be one of {', '.join(PARAM_KINDS)}, got {self.kind!r}"
            )
        if self.kind in ("int", "float"):
            if self.choices is not None:
                raise StrategyDefinitionError(f"{where}: choices are only for kind 'choice'")
            for label, bound in (("min", self.min), ("max", self.max)):
                if bound is not None and not finite_number(bound):
                    raise StrategyDefinitionError(f"{where}: {label} must be a finite number")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise StrategyDefinitionError(f"{where}: min {self.min} is above max {self.max}")
        else:
            if self.min is not None or self.max is not None:
                raise StrategyDefinitionError(f"{where}: min/max are only for int and float")
        if self.kind == "choice":
            if not isinstance(self.choices, tuple | list):
                raise StrategyDefinitionError(f"{where}: kind 'choice' needs a tuple of choices")
            choices = tuple(self.choices)
            if not all(isinstance(c, str | int | float) for c in choices):
                raise StrategyDefinitionError(f"{where}: choices must be strings or numbers")
            if not choices or len(set(map(show, choices))) != len(choices):
                raise StrategyDefinitionError(f"{where}: choices must be non-empty and distinct")
            object.__setattr__(self, "choices", choices)
        elif self.kind == "bool" and self.choices is not None:
            raise StrategyDefinitionError(f"{where}: choices are only for kind 'choice'")
        if not isinstance(self.help, str):
            raise StrategyDefinitionError(f"{where}: help must be a string")
        if not isinstance(self.label, str) or len(self.label) > LABEL_MAX_LENGTH:
            raise StrategyDefinitionError(
                f"{where}: label must be a string of at most {LABEL_MAX_LENGTH} characters"
            )
        try:
            object.__setattr__(self, "default", self.clean(self.default))
        except ValueError as exc:
            raise StrategyDefinitionError(f"{where}: invalid default: {exc}") from None

    @property
    def display_name(self) -> str:
        """The human label: ``label``, or the name spelled out when it has none."""
        return self.label or self.name.replace("_", " ").capitalize()

    def expectation(self) -> str:
        """What a valid value looks like, in words (``an integer between 2 and 500``)."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(show(c) for c in self.choices or ())
        noun = "an integer" if self.kind == "int" else "a number"
        if self.min is not None and self.max is not None:
            return f"{noun} between {_fmt(self.min)} and {_fmt(self.max)}"
        if self.min is not None:
            return f"{noun} >= {_fmt(self.min)}"
        if self.max is not None:
            return f"{noun} <= {_fmt(self.max)}"
        return noun

    def clean(self, value: Any) -> Any:
        """``value`` converted to this parameter's type; ``ValueError`` with the message if not."""
        ok, cleaned = self._convert(value)
        if not ok:
            raise ValueError(f"{self.name} must be {self.expectation()}, got {show(value)}")
        return cleaned

    def _convert(self, value: Any) -> tuple[bool, Any]:
        if self.kind == "bool":
            return (isinstance(value, bool), value)
        if self.kind == "choice":
            for choice in self.choices or ():
                if type(choice) is type(value) and choice == value:
                    return (True, choice)
            return (False, None)
        if not finite_number(value):
            return (False, None)
        if self.kind == "int":
            if isinstance(value, numbers.Integral):
                number: int | float = int(value)
            elif float(value).is_integer():
                number = int(value)
            else:
                return (False, None)
        else:
            number = float(value)
        if self.min is not None and number < self.min:
            return (False, None)
        if self.max is not None and number > self.max:
            return (False, None)
        return (True, number)

    def schema(self) -> dict[str, Any]:
        """JSON-able description: name, label, type, default, min, max, choices, help."""
        return {
            "name": self.name,
            "label": self.display_name,
            "type": self.kind,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) if self.choices is not None else None,
            "help": self.help,
        }


def validate_params(params: Sequence[Param], raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with ``raw``, every value strictly typed (see the module docstring).

    Returns a new dict with one entry per declared parameter, in declaration order. Raises
    :class:`StrategyParamError` listing every bad field (unknown keys included) at once.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise StrategyParamError({NON_FIELD: [f"parameters must be an object, got {show(raw)}"]})
    declared = {param.name: param for param in params}
    errors: dict[str, list[str]] = {}
    for key in raw:
        if key not in declared:
            known = ", ".join(declared) or "none"
            errors.setdefault(str(key), []).append(
                f"unknown parameter {show(key)}; known parameters: {known}"
            )
    values: dict[str, Any] = {}
    for name, param in declared.items():
        if name not in raw:
            values[name] = param.default
            continue
        try:
            values[name] = param.clean(raw[name])
        except ValueError as exc:
            errors.setdefault(name, []).append(str(exc))
    if errors:
        raise StrategyParamError(errors)
    return values

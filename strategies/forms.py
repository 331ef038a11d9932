"""Form fields generated from a strategy's parameter declarations (``Param``), and the percent
fields of the exit levels a strategy trades with.

:func:`param_field` makes every parameter field of every page that configures a strategy: the
bot form (a :class:`StrategyParamsForm` per strategy, under the strategy's key as its prefix:
``ma_cross-fast``) and the backtest, sweep and schedule forms (``param_fast``). A field takes
one value, or with ``grid`` (a sweep) several. Either way the browser gets the declaration's
bounds and help, empty means the parameter's default, and the server checks the values with the
same rules as the API (``Strategy.validate``: field rules, then the strategy's cross-field
check).

Stop-loss and take-profit are typed as percentages everywhere a trader types them
(:func:`percent_field`: ``2`` = 2 %), whatever unit stores them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django import forms

from strategies.base import Strategy as StrategyClass
from strategies.params import NON_FIELD, Param, StrategyParamError, show

_BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
RANGE_EXAMPLE = "5:50:5"
PARAM_QUERY_PREFIX = "param_"
# A range written the way the grid does not read it: 5-15, 5..15, 5 to 15, 5–15.
_RANGE_LIKE = re.compile(
    r"^(?P<start>-?\d+(?:\.\d+)?)\s*(?:-|\.\.|–|to)\s*(?P<stop>-?\d+(?:\.\d+)?)$", re.IGNORECASE
)


def param_field(param: Param, *, grid: bool = False, check_bounds: bool = True) -> forms.Field:
    """The form field of one declared parameter: its label, help, default and input bounds.

    A value field cleans to the typed value (an int, a float, a bool or the choice itself), or
    None when empty. A ``grid`` field cleans to a list of values, or for a number a range
    ``{"start", "stop", "step"}``, or None when empty. ``check_bounds=False`` leaves min and max
    to ``Strategy.validate`` (the input still carries them), so that the refusal is worded as
    the API words it.
    """
    if grid:
        return ParamGridField(param)
    options: dict[str, Any] = {"label": _label(param), "help_text": _help(param)}
    if param.kind == "bool":
        return forms.BooleanField(required=False, initial=param.default, **options)
    if param.kind == "choice":
        return ParamChoiceField(param, **options)
    return _number_field(param, check_bounds=check_bounds, **options)


def _label(param: Param) -> str:
    return param.display_name


def _help(param: Param) -> str:
    if param.kind == "bool":
        return param.help or "True or false"
    expectation = param.expectation()
    return f"{param.help} ({expectation})" if param.help else expectation.capitalize()


def _number_field(param: Param, *, check_bounds: bool, **options: Any) -> forms.Field:
    low, high = (param.min, param.max) if check_bounds else (None, None)
    options |= {
        "required": False,
        "initial": param.default,
        "error_messages": {"invalid": f"{param.name} must be {param.expectation()}."},
    }
    field: forms.Field
    if param.kind == "int":
        # Whole bounds, so that the messages say 2, not 2.0
        field = forms.IntegerField(min_value=_whole(low), max_value=_whole(high), **options)
    else:
        field = forms.FloatField(min_value=low, max_value=high, **options)
    field.widget.attrs.update(_bounds_attrs(param))
    return field


def _whole(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


def _bounds_attrs(param: Param) -> dict[str, str]:
    attrs = {"step": "1" if param.kind == "int" else "any"}
    if param.min is not None:
        attrs["min"] = f"{param.min:g}"
    if param.max is not None:
        attrs["max"] = f"{param.max:g}"
    return attrs


def choice_of(param: Param, text: str) -> Any:
    """The choice that ``text`` names, as JSON (``"ema"``, ``5``) or as plain text (``ema``);
    KeyError if none."""
    choices = param.choices or ()
    for choice in choices:
        if show(choice) == text:
            return choice
    for choice in choices:
        if str(choice) == text:
            return choice
    raise KeyError(text)


class ParamChoiceField(forms.TypedChoiceField):
    """A ``choice`` parameter. The options carry each choice as JSON, so that the number 5 and
    the text "5" stay apart; a choice's plain text (``ema``) is read too, as a trader types it."""

    def __init__(self, param: Param, **options: Any) -> None:
        self.param = param
        by_json = {show(choice): choice for choice in param.choices or ()}
        super().__init__(
            choices=[(text, str(choice)) for text, choice in by_json.items()],
            coerce=by_json.__getitem__,
            empty_value=None,
            required=False,
            initial=show(param.default),
            **options,
        )

    def to_python(self, value: Any) -> str:
        text = super().to_python(value)
        try:
            return show(choice_of(self.param, text)) if text else text
        except KeyError:
            return text  # refused by validate() as any unknown choice is


class ParamGridField(forms.CharField):
    """A sweep's values of one parameter: one value, a list (``5, 10, 20``) or, for a number, a
    range (``5:50:5`` = start:stop:step, the stop included when the steps reach it)."""

    def __init__(self, param: Param) -> None:
        self.param = param
        if param.kind == "choice":
            examples = ", ".join(str(choice) for choice in param.choices or ())
        elif param.kind == "bool":
            examples = "true, false"
        else:
            examples = f"5, 10, 20 or a range start:stop:step such as {RANGE_EXAMPLE}"
        super().__init__(
            label=_label(param),
            required=False,
            help_text=f"{_help(param)}. One value, or several: {examples}. "
            f"Empty = the default, {param.default}.",
        )

    def to_python(self, value: Any) -> list[Any] | dict[str, Any] | None:  # type: ignore[override]
        text = (super().to_python(value) or "").strip()
        if not text:
            return None
        if ":" in text and self.param.kind in ("int", "float"):
            numbers = [parse_number(part.strip()) for part in text.split(":")]
            if len(numbers) != 3 or None in numbers:
                raise forms.ValidationError(
                    f"Write a range as start:stop:step (the stop included when the steps reach "
                    f"it), e.g. {RANGE_EXAMPLE}; got {text}."
                )
            return dict(zip(("start", "stop", "step"), numbers, strict=True))
        items = [item.strip() for item in text.split(",") if item.strip()]
        values = [self._value(item) for item in items]
        bad = [item for item, value in zip(items, values, strict=True) if value is None]
        if bad:
            raise forms.ValidationError(self._syntax_error(bad[0]))
        return values

    def _syntax_error(self, bad: str) -> str:
        """What was wrong and what is accepted: a number field names the range syntax, with the
        trader's own bounds when they wrote a range another way (``5-15`` → ``5:15:1``)."""
        message = f"Each value must be {self.param.expectation()}; got {bad}."
        if self.param.kind not in ("int", "float"):
            return f"{message} Write one value or several separated by commas."
        written = _RANGE_LIKE.match(bad)
        example = f"{written['start']}:{written['stop']}:1" if written else RANGE_EXAMPLE
        return (
            f"{message} Write one value, a list such as 5, 10, 20, or a range as "
            f"start:stop:step, e.g. {example}."
        )

    def _value(self, text: str) -> Any:
        if self.param.kind == "bool":
            return _BOOLEAN_WORDS.get(text.lower())
        if self.param.kind == "choice":
            try:
                return choice_of(self.param, text)
            except KeyError:
                return None
        return parse_number(text)


def parse_number(text: str) -> int | float | None:
    """``"12"`` → 12, ``"0.5"`` → 0.5; None for anything that is not a finite number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def percent_field(
    label: str, help_text: str, *, max_value: Decimal, decimal_places: int
) -> forms.DecimalField:
    """An optional percentage (``2`` = 2 %) above 0 and at most ``max_value``, with at most
    ``decimal_places`` decimals (so the smallest is one step above 0); empty = none."""
    step = Decimal(1).scaleb(-decimal_places)
    return forms.DecimalField(
        required=False,
        max_digits=decimal_places + 4,  # up to 9999.x
        decimal_places=decimal_places,
        min_value=step,
        max_value=max_value,
        label=label,
        help_text=help_text,
    )


class StrategyParamsForm(forms.Form):
    """One strategy's parameters; ``values`` holds them once the form is valid."""

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        strategy: type[StrategyClass],
        values: Mapping[str, Any] | None = None,
        exclude: tuple[str, ...] = (),
    ) -> None:
        initial = {key: _initial(strategy, key, value) for key, value in (values or {}).items()}
        super().__init__(data, prefix=strategy.key, initial=initial)
        self.strategy = strategy
        self.values: dict[str, Any] = {}
        for param in strategy.params:
            if param.name not in exclude:
                self.fields[param.name] = param_field(param)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            self.values = strategy_values(self.strategy, cleaned)
        except StrategyParamError as exc:
            self.add_errors(exc.errors)
        return cleaned

    def add_errors(self, errors: Mapping[str, list[str]]) -> None:
        """Errors from the service (``AppError.details``) next to the fields they name."""
        for name, messages in errors.items():
            field = name if name in self.fields and name != NON_FIELD else None
            for message in messages:
                self.add_error(field, message)


def strategy_values(strategy: type[StrategyClass], given: Mapping[str, Any]) -> dict[str, Any]:
    """The values of :func:`param_field` fields (by parameter name) checked by the strategy,
    with its defaults for those left empty; StrategyParamError otherwise."""
    return strategy.validate({name: value for name, value in given.items() if value is not None})


def _initial(strategy: type[StrategyClass], key: str, value: Any) -> Any:
    """A stored value as its field shows it (a choice's field holds its JSON text)."""
    for param in strategy.params:
        if param.name == key and param.kind == "choice":
            return show(value)
    return value


# --- a configuration in a link (the bot form prefilled from a backtest or a sweep) -------------


def params_as_query(values: Mapping[str, Any]) -> dict[str, str]:
    """Parameter values as the query of a link: ``param_<name>`` = the value as a trader types
    it (``true``, ``ema``, ``12``). :func:`params_from_query` reads it back."""
    return {PARAM_QUERY_PREFIX + name: _as_text(value) for name, value in values.items()}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def params_from_query(strategy: type[StrategyClass], query: Mapping[str, str]) -> dict[str, Any]:
    """The strategy's parameters that ``query`` gives (``param_<name>``), typed as declared;
    values that do not read or that the strategy refuses are left out (a link is a suggestion:
    the form then shows the default)."""
    found: dict[str, Any] = {}
    for param in strategy.params:
        text = query.get(PARAM_QUERY_PREFIX + param.name)
        if text is None:
            continue
        field = ParamGridField(param)
        try:
            values = field.to_python(text)
        except forms.ValidationError:
            continue
        if isinstance(values, list) and len(values) == 1:
            found[param.name] = values[0]
    try:
        return strategy.validate(found)
    except StrategyParamError as exc:
        kept = {name: value for name, value in found.items() if name not in exc.errors}
    try:
        return strategy.validate(kept)
    except StrategyParamError:
        return strategy.validate({})

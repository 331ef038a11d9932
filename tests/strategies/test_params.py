"""Parameter declarations and strict validation (pure Python, no database)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from strategies.builtin import MaCross, RsiReversion
from strategies.params import (
    NON_FIELD,
    Param,
    StrategyDefinitionError,
    StrategyParamError,
    finite_number,
    validate_params,
)

FAST = Param("fast", "int", 10, min=2, max=500, help="Fast length")
K = Param("k", "float", 2.0, min=0.1, max=10)
SHORT = Param("allow_short", "bool", False)
MA = Param("ma", "choice", "sma", choices=("sma", "ema"))
PARAMS = (FAST, K, SHORT, MA)


def errors_of(raw: Any, params: tuple[Param, ...] = PARAMS) -> dict[str, list[str]]:
    with pytest.raises(StrategyParamError) as caught:
        validate_params(params, raw)
    return caught.value.errors


def test_it_returns_the_defaults_when_nothing_is_given() -> None:
    assert validate_params(PARAMS, {}) == {"fast": 10, "k": 2.0, "allow_short": False, "ma": "sma"}
    assert validate_params(PARAMS, None) == validate_params(PARAMS, {})


def test_it_merges_given_values_over_the_defaults() -> None:
    # when
    values = validate_params(PARAMS, {"fast": 20, "ma": "ema"})
    # then
    assert values == {"fast": 20, "k": 2.0, "allow_short": False, "ma": "ema"}


def test_it_accepts_whole_floats_for_ints_and_ints_for_floats_with_python_types() -> None:
    # given JSON numbers as json.loads gives them
    values = validate_params(PARAMS, {"fast": 12.0, "k": 3})
    # then they come out as the declared types
    assert values["fast"] == 12
    assert type(values["fast"]) is int
    assert values["k"] == 3.0
    assert type(values["k"]) is float


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1.5, "1.5"), (True, "true"), ("10", '"10"'), (None, "null"), (1, "1"), (501, "501")],
)
def test_it_rejects_an_int_that_is_not_a_whole_number_in_range(value: Any, shown: str) -> None:
    assert errors_of({"fast": value}) == {
        "fast": [f"fast must be an integer between 2 and 500, got {shown}"]
    }


@pytest.mark.parametrize("param", [FAST, K])
@pytest.mark.parametrize(
    "value", [10**309, -(10**309), 2**20000], ids=["1e309", "-1e309", "2^20000"]
)
def test_it_rejects_a_number_beyond_any_float_without_overflowing(param: Param, value: int) -> None:
    # math.isfinite(10**309) raises OverflowError: it was a 500 on every form and API
    [message] = errors_of({param.name: value})[param.name]
    assert message.endswith("got an integer beyond ±1.8e308")


@pytest.mark.parametrize(
    ("value", "finite"),
    [(0, True), (-1.5, True), (10**308, True), (10**309, False), (math.inf, False),
     (math.nan, False), (True, False), ("1", False), (None, False)],
)  # fmt: skip
def test_finite_number_is_a_number_a_float_holds(value: Any, finite: bool) -> None:
    assert finite_number(value) is finite


@pytest.mark.parametrize(
    ("value", "shown"),
    [("2", '"2"'), (False, "false"), (math.nan, "nan"), (math.inf, "inf"), (0.05, "0.05")],
)
def test_it_rejects_a_float_that_is_not_a_finite_number_in_range(value: Any, shown: str) -> None:
    assert errors_of({"k": value}) == {"k": [f"k must be a number between 0.1 and 10, got {shown}"]}


@pytest.mark.parametrize(("value", "shown"), [(1, "1"), (0, "0"), ("true", '"true"')])
def test_it_accepts_only_true_or_false_for_a_bool(value: Any, shown: str) -> None:
    assert errors_of({"allow_short": value}) == {
        "allow_short": [f"allow_short must be true or false, got {shown}"]
    }
    assert validate_params(PARAMS, {"allow_short": True})["allow_short"] is True


def test_it_accepts_only_listed_values_for_a_choice() -> None:
    assert errors_of({"ma": "wma"}) == {"ma": ['ma must be one of "sma", "ema", got "wma"']}
    assert errors_of({"ma": "SMA"}) == {"ma": ['ma must be one of "sma", "ema", got "SMA"']}


def test_it_matches_numeric_choices_by_type_too() -> None:
    # given a choice of numbers
    window = Param("window", "choice", 5, choices=(1, 5))
    # then "5" is not 5 and true is not 1 (although True == 1 in Python)
    assert errors_of({"window": "5"}, (window,)) == {
        "window": ['window must be one of 1, 5, got "5"']
    }
    assert errors_of({"window": True}, (window,)) == {
        "window": ["window must be one of 1, 5, got true"]
    }
    assert validate_params((window,), {"window": 1}) == {"window": 1}


def test_it_words_one_sided_and_unbounded_ranges() -> None:
    params = (
        Param("a", "int", 3, min=1),
        Param("b", "float", 1.0, max=2.5),
        Param("c", "int", 0),
    )
    assert errors_of({"a": 0, "b": 3, "c": "x"}, params) == {
        "a": ["a must be an integer >= 1, got 0"],
        "b": ["b must be a number <= 2.5, got 3"],
        "c": ['c must be an integer, got "x"'],
    }


def test_it_rejects_unknown_keys_naming_the_known_ones() -> None:
    assert errors_of({"fats": 3}) == {
        "fats": ['unknown parameter "fats"; known parameters: fast, k, allow_short, ma']
    }


def test_it_reports_every_bad_field_at_once() -> None:
    # when
    with pytest.raises(StrategyParamError) as caught:
        validate_params(PARAMS, {"fast": 1.5, "k": "x", "extra": 1})
    # then
    assert sorted(caught.value.errors) == ["extra", "fast", "k"]
    assert "fast must be an integer between 2 and 500, got 1.5" in str(caught.value)


def test_it_rejects_parameters_that_are_not_an_object() -> None:
    assert errors_of([("fast", 3)]) == {
        NON_FIELD: ['parameters must be an object, got [["fast", 3]]']
    }


def test_it_runs_the_strategys_cross_field_check() -> None:
    # when fast is not below slow
    with pytest.raises(StrategyParamError) as caught:
        MaCross({"fast": 30, "slow": 20})
    # then
    assert caught.value.errors == {"slow": ["slow must be greater than fast (30), got 20"]}


def test_it_runs_the_cross_field_check_only_when_every_field_is_valid() -> None:
    # when a field is bad and the pair is also wrong
    with pytest.raises(StrategyParamError) as caught:
        MaCross({"fast": 40, "slow": 20, "ma": "wma"})
    # then only the field error is reported
    assert caught.value.errors == {"ma": ['ma must be one of "sma", "ema", got "wma"']}


def test_it_checks_the_rsi_levels_are_ordered() -> None:
    with pytest.raises(StrategyParamError) as caught:
        RsiReversion({"lower": 40, "exit_level": 35})
    assert caught.value.errors == {
        "exit_level": ["exit_level must be between lower (40) and upper (70), got 35"]
    }
    with pytest.raises(StrategyParamError) as caught:
        RsiReversion({"lower": 60, "upper": 60})
    assert caught.value.errors == {"upper": ["upper must be greater than lower (60), got 60"]}


def test_it_keeps_validated_values_on_the_instance() -> None:
    strategy = MaCross({"fast": 5, "slow": 8, "allow_short": True})
    assert strategy.values == {"fast": 5, "slow": 8, "ma": "sma", "allow_short": True}
    assert strategy.allows_short is True
    assert MaCross().allows_short is False


def test_it_describes_a_param_as_json() -> None:
    assert FAST.schema() == {
        "name": "fast",
        "label": "Fast",
        "type": "int",
        "default": 10,
        "min": 2,
        "max": 500,
        "choices": None,
        "help": "Fast length",
    }
    assert MA.schema()["choices"] == ["sma", "ema"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "int", "default": 1, "min": 2}, "invalid default: n must be an integer >= 2"),
        ({"kind": "int", "default": 2.5}, "invalid default: n must be an integer, got 2.5"),
        ({"kind": "bool", "default": 0}, "invalid default: n must be true or false, got 0"),
        ({"kind": "choice", "default": "x", "choices": ("a", "b")}, 'one of "a", "b", got "x"'),
        ({"kind": "choice", "default": "a", "choices": ()}, "choices must be non-empty"),
        ({"kind": "choice", "default": "a"}, "needs a tuple of choices"),
        ({"kind": "int", "default": 5, "min": 9, "max": 1}, "min 9 is above max 1"),
        ({"kind": "bool", "default": True, "min": 0}, "min/max are only for int and float"),
        ({"kind": "decimal", "default": 1}, "kind must be one of int, float, bool, choice"),
        ({"kind": "int", "default": 1, "label": 5}, "label must be a string of at most 60"),
        ({"kind": "int", "default": 1, "label": "x" * 61}, "label must be a string of at most 60"),
    ],
)
def test_it_rejects_a_param_declared_wrongly(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyDefinitionError) as caught:
        Param("n", **kwargs)
    assert message in str(caught.value)
    assert str(caught.value).startswith("parameter 'n': ")


def test_a_param_is_labelled_by_its_label_or_else_its_name_spelled_out() -> None:
    labelled = Param("ma", "choice", "sma", choices=("sma", "ema"), label="Moving-average kind")
    assert labelled.display_name == "Moving-average kind"
    assert labelled.schema()["label"] == "Moving-average kind"
    assert SHORT.display_name == "Allow short"


def test_every_builtin_parameter_has_a_human_label() -> None:
    from strategies.registry import load_registry

    for strategy in load_registry([], make_active=False).all():
        for param in strategy.params:
            # a label of its own, not the name spelled out ("Ma")
            assert param.label, f"{strategy.key}.{param.name} has no label"
            assert param.label.lower() != param.name.replace("_", " ")
    assert MaCross.params[2].display_name == "Moving-average kind"


def test_it_rejects_a_param_name_that_is_not_an_identifier() -> None:
    with pytest.raises(StrategyDefinitionError, match="lowercase letters, digits and underscores"):
        Param("Fast Length", "int", 1)

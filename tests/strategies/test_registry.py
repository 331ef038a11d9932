"""The strategy registry and the loader of strategy modules (pure Python, no database)."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from strategies import registry as registry_module
from strategies.base import Strategy
from strategies.builtin import MaCross
from strategies.params import Param, StrategyDefinitionError
from strategies.registry import (
    DuplicateStrategyError,
    Registry,
    StrategyLoadError,
    UnknownStrategyError,
    activate,
    active,
    load_registry,
    register,
)

BUILTIN_KEYS = ["bollinger_breakout", "ma_cross", "macd", "rsi_reversion", "signals"]

PLUGIN = """
import pandas as pd

from strategies.base import Strategy, position_series
from strategies.params import Param
from strategies.registry import register


@register
class AlwaysLong(Strategy):
    key = "always_long"
    name = "Always long"
    description = "Long after every candle."
    params = (Param("unused", "int", 1, min=0),)

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        return position_series(candles["close"] > 0)
"""


def make_strategy(key: str, **attrs: object) -> type[Strategy]:
    def target_position(self: Strategy, candles: pd.DataFrame) -> pd.Series:
        return pd.Series(0, index=candles.index, dtype="int8")

    namespace = {"key": key, "name": key.title(), "target_position": target_position, **attrs}
    return type(f"Strategy_{key}", (Strategy,), namespace)


@pytest.fixture(autouse=True)
def _restore_active_registry() -> Iterator[None]:
    before = active()
    yield
    activate(before)


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write source as a uniquely named module on sys.path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def write(source: str) -> str:
        name = f"strategy_plugin_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def test_it_holds_the_five_builtins_sorted_by_key() -> None:
    registry = load_registry([])
    assert [cls.key for cls in registry.all()] == BUILTIN_KEYS
    assert registry.keys() == BUILTIN_KEYS
    assert registry.get("ma_cross") is MaCross
    assert "macd" in registry
    assert "nope" not in registry
    assert len(registry) == 5


def test_it_names_the_known_keys_for_an_unknown_one() -> None:
    # when
    with pytest.raises(UnknownStrategyError) as caught:
        load_registry([]).get("turtle")
    # then
    assert caught.value.key == "turtle"
    assert caught.value.known == BUILTIN_KEYS
    assert str(caught.value) == (
        "unknown strategy 'turtle'; known strategies: "
        "bollinger_breakout, ma_cross, macd, rsi_reversion, signals"
    )


def test_it_rejects_two_classes_with_one_key() -> None:
    first, second = make_strategy("twin"), make_strategy("twin")
    with pytest.raises(DuplicateStrategyError, match="duplicate strategy key 'twin'"):
        Registry([first, second])


def test_it_counts_the_same_class_twice_once() -> None:
    cls = make_strategy("solo")
    assert Registry([cls, cls]).keys() == ["solo"]


def test_it_creates_instances_with_validated_params() -> None:
    strategy = load_registry([]).create("ma_cross", {"fast": 3, "slow": 7})
    assert isinstance(strategy, MaCross)
    assert strategy.values["fast"] == 3


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"key": "Bad Key"}, "key must be a slug"),
        ({"key": "x" * 65}, "key must be a slug"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"params": [Param("n", "int", 1)]}, "params must be a tuple of Param"),
        ({"params": (Param("n", "int", 1), Param("n", "int", 2))}, "duplicate parameters n"),
        ({"params": (Param("allow_short", "int", 0),)}, "allow_short must be a bool parameter"),
        ({"stop_loss": 2.0}, "stop_loss must be None or a fraction"),
        ({"take_profit": -0.1}, "take_profit must be None or a fraction"),
    ],
)
def test_it_refuses_to_register_an_invalid_class(attrs: dict[str, object], message: str) -> None:
    key = str(attrs.pop("key", "fine"))
    with pytest.raises(StrategyDefinitionError, match=message):
        register(make_strategy(key, **attrs))


def test_it_refuses_to_register_an_abstract_class() -> None:
    class Unfinished(Strategy):
        key = "unfinished"
        name = "Unfinished"

    with pytest.raises(StrategyDefinitionError, match="abstract"):
        register(Unfinished)


def test_it_refuses_to_register_a_class_whose_defaults_fail_its_check() -> None:
    class Backwards(MaCross):
        key = "backwards"
        params = (
            Param("fast", "int", 50, min=2, max=500),
            Param("slow", "int", 20, min=3, max=2000),
            Param("ma", "choice", "sma", choices=("sma", "ema")),
        )

    with pytest.raises(StrategyDefinitionError, match="the defaults are invalid"):
        register(Backwards)


def test_it_loads_an_extra_module_and_activates_the_result(
    write_module: Callable[[str], str],
) -> None:
    # given a plugin module on sys.path
    name = write_module(PLUGIN)
    # when
    registry = load_registry([name])
    # then it has the built-ins and the plugin, and it is the active registry
    assert registry.keys() == ["always_long", *BUILTIN_KEYS]
    assert active() is registry
    candles = pd.DataFrame(
        {"open_time": [0, 60_000], "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0}
    )
    assert active().create("always_long").positions(candles).tolist() == [1, 1]


def test_it_loads_the_same_modules_again_after_python_imported_them(
    write_module: Callable[[str], str],
) -> None:
    # given a plugin loaded once (its module now cached in sys.modules)
    name = write_module(PLUGIN)
    first = load_registry([name])
    # when loading again, and then without the plugin
    second = load_registry([name])
    third = load_registry([])
    # then
    assert second.keys() == first.keys()
    assert third.keys() == BUILTIN_KEYS
    assert active() is third


def test_it_accepts_a_plugin_that_imports_a_builtin_to_subclass_it(
    write_module: Callable[[str], str],
) -> None:
    name = write_module(
        """
        from strategies.builtin.ma_cross import MaCross
        from strategies.registry import register


        @register
        class FastCross(MaCross):
            key = "fast_cross"
            name = "Fast crossover"
        """
    )
    registry = load_registry([name])
    assert registry.keys() == [
        "bollinger_breakout",
        "fast_cross",
        "ma_cross",
        "macd",
        "rsi_reversion",
        "signals",
    ]


def test_it_does_not_activate_when_asked_not_to(write_module: Callable[[str], str]) -> None:
    before = active()
    registry = load_registry([write_module(PLUGIN)], make_active=False)
    assert "always_long" in registry
    assert active() is before


BROKEN = {
    "syntax error": ("def broken(:\n", "SyntaxError: "),
    "import error": ("import strategies.no_such_thing\n", "ModuleNotFoundError: No module named"),
    "error at import": ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    "invalid param default": (
        PLUGIN.replace('Param("unused", "int", 1, min=0)', 'Param("unused", "int", -1, min=0)'),
        "StrategyDefinitionError: parameter 'unused': invalid default: "
        "unused must be an integer >= 0, got -1",
    ),
    "invalid key": (
        PLUGIN.replace('key = "always_long"', 'key = "Always Long"'),
        "StrategyDefinitionError: ",
    ),
    "duplicate of a builtin key": (
        PLUGIN.replace('key = "always_long"', 'key = "ma_cross"'),
        "duplicate strategy key 'ma_cross'",
    ),
    "no strategies": ("X = 1\n", "it exposes no registered strategy"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_it_names_a_broken_module_and_keeps_the_active_registry(
    case: str, write_module: Callable[[str], str]
) -> None:
    # given an active registry with a good plugin in it
    good = write_module(PLUGIN)
    before = load_registry([good])
    source, cause = BROKEN[case]
    broken = write_module(source)
    # when a reload includes a broken module
    with pytest.raises(StrategyLoadError) as caught:
        load_registry([good, broken])
    # then the error names the module and the cause, and nothing changed
    assert caught.value.module == broken
    assert cause in caught.value.cause
    assert str(caught.value).startswith(f"cannot load strategy module {broken!r}: ")
    assert active() is before
    assert active().keys() == ["always_long", *BUILTIN_KEYS]


def test_it_points_at_the_line_of_a_syntax_error(write_module: Callable[[str], str]) -> None:
    name = write_module("X = 1\ndef broken(:\n")
    with pytest.raises(StrategyLoadError) as caught:
        load_registry([name])
    assert f"{name}.py, line 2)" in caught.value.cause


def test_it_points_at_the_plugin_line_that_declared_a_bad_param(
    write_module: Callable[[str], str],
) -> None:
    source = PLUGIN.replace('Param("unused", "int", 1, min=0)', 'Param("unused", "int", 0.5)')
    line = 1 + source.splitlines().index('    params = (Param("unused", "int", 0.5),)')
    name = write_module(source)
    with pytest.raises(StrategyLoadError) as caught:
        load_registry([name])
    assert caught.value.cause.endswith(f"{name}.py, line {line})")


def test_it_names_a_module_that_does_not_exist() -> None:
    before = active()
    with pytest.raises(StrategyLoadError) as caught:
        load_registry(["strategies.builtin", "no_such_strategy_module"])
    assert caught.value.module == "no_such_strategy_module"
    assert active() is before


def test_it_rejects_a_bare_string_as_the_module_list() -> None:
    with pytest.raises(TypeError, match="not a string"):
        load_registry("strategies.builtin")


def test_it_loads_the_builtins_on_first_use_when_nothing_was_activated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a process that never activated a registry
    monkeypatch.setattr(registry_module, "_active", None)
    # then
    assert active().keys() == BUILTIN_KEYS
    assert active() is active()

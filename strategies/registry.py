"""The strategy registry: which strategy classes exist, by key. Pure Python, no Django.

How registration works (and why it cannot leak a half-loaded registry):

- ``@register`` only VALIDATES a class (:func:`~strategies.base.validate_strategy_class`) and marks
  it as registered. It never adds to a shared registry, so importing a module, even one that
  fails half-way, changes nothing anybody reads.
- :func:`load_registry` imports ``strategies.builtin`` and then every extra module by dotted name,
  and collects the registered classes each module exposes as module attributes (defined there or
  imported into it; ``strategies.builtin`` imports its five). It builds a NEW :class:`Registry`
  from them; only when every module loaded and every key is unique does it
  :func:`activate` that registry. On any failure it raises :class:`StrategyLoadError` naming the
  module and the cause, and the active registry stays exactly as it was.
- Keys are unique: two different classes with one key raise (the same class exposed by two
  modules, e.g. a plugin importing a built-in to subclass it, counts once).
- Reading modules' attributes rather than recording at import time means loading works the same
  every time, also for modules that Python had already imported.

:func:`active` returns the current registry. Until something activates one, it loads the built-ins
alone (no extra modules) on first use; the Django app is expected to call
``load_registry(settings.STRATEGY_MODULES)`` at start-up.
"""

from __future__ import annotations

import importlib
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, TypeVar

from strategies.base import Strategy, validate_strategy_class
from strategies.params import StrategyDefinitionError

BUILTIN_MODULE = "strategies.builtin"

S = TypeVar("S", bound=type[Strategy])

_registered: set[type[Strategy]] = set()
_active: Registry | None = None
_lock = threading.RLock()


class UnknownStrategyError(LookupError):
    """No strategy has this key; ``known`` lists the keys that exist."""

    def __init__(self, key: str, known: Sequence[str]) -> None:
        self.key = key
        self.known = list(known)
        super().__init__(
            f"unknown strategy {key!r}; known strategies: {', '.join(self.known) or 'none'}"
        )


class DuplicateStrategyError(StrategyDefinitionError):
    """Two different classes claim the same key."""


class StrategyLoadError(RuntimeError):
    """A strategy module could not be loaded; ``module`` names it, ``cause`` says why."""

    def __init__(self, module: str, cause: str) -> None:
        self.module = module
        self.cause = cause
        super().__init__(f"cannot load strategy module {module!r}: {cause}")


def register(cls: S) -> S:
    """Class decorator: validate a strategy class and mark it for :func:`load_registry`.

    Raises :class:`~strategies.params.StrategyDefinitionError` at import when the class is not a
    valid strategy (bad key, bad parameter declarations, defaults failing ``check`` ...).
    """
    validate_strategy_class(cls)
    _registered.add(cls)
    return cls


def is_registered(cls: Any) -> bool:
    return cls in _registered


class Registry:
    """An immutable set of strategy classes, unique by key."""

    def __init__(self, strategies: Iterable[type[Strategy]] = ()) -> None:
        by_key: dict[str, type[Strategy]] = {}
        for cls in strategies:
            validate_strategy_class(cls)
            existing = by_key.get(cls.key)
            if existing is not None and existing is not cls:
                raise DuplicateStrategyError(
                    f"duplicate strategy key {cls.key!r}: {_label(cls)} and {_label(existing)}"
                )
            by_key[cls.key] = cls
        self._by_key: Mapping[str, type[Strategy]] = MappingProxyType(dict(sorted(by_key.items())))

    def get(self, key: str) -> type[Strategy]:
        """The class registered under ``key``; :class:`UnknownStrategyError` if none."""
        try:
            return self._by_key[key]
        except (KeyError, TypeError):
            raise UnknownStrategyError(str(key), self.keys()) from None

    def create(self, key: str, params: Mapping[str, Any] | None = None) -> Strategy:
        """An instance of strategy ``key`` with validated ``params``."""
        return self.get(key)(params)

    def all(self) -> list[type[Strategy]]:
        """Every class, sorted by key."""
        return list(self._by_key.values())

    def keys(self) -> list[str]:
        return list(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __iter__(self) -> Iterator[type[Strategy]]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"<Registry {', '.join(self._by_key)}>"


def _label(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def registered_in(module: ModuleType) -> list[type[Strategy]]:
    """The registered strategy classes that ``module`` exposes as attributes, in name order."""
    found: dict[int, type[Strategy]] = {}
    for _, value in sorted(vars(module).items()):
        if isinstance(value, type) and value in _registered:
            found.setdefault(id(value), value)
    return list(found.values())


def build_registry(extra_modules: Sequence[str] = ()) -> Registry:
    """Import ``strategies.builtin`` and ``extra_modules`` and build a registry from them.

    Raises :class:`StrategyLoadError` naming the first module that fails to import, exposes no
    registered strategy, or claims a key another module's class already has. Activates nothing.
    """
    if isinstance(extra_modules, str):
        raise TypeError("extra_modules must be a sequence of module names, not a string")
    by_key: dict[str, tuple[type[Strategy], str]] = {}
    for module_name in dict.fromkeys([BUILTIN_MODULE, *extra_modules]):
        if not isinstance(module_name, str) or not module_name:
            raise StrategyLoadError(str(module_name), "a module name must be a dotted string")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise StrategyLoadError(module_name, _describe(exc)) from exc
        classes = registered_in(module)
        if not classes:
            raise StrategyLoadError(
                module_name, "it exposes no registered strategy (decorate classes with @register)"
            )
        for cls in classes:
            try:
                validate_strategy_class(cls)  # again: a class attribute may have changed since
            except StrategyDefinitionError as exc:
                raise StrategyLoadError(module_name, str(exc)) from exc
            existing = by_key.get(cls.key)
            if existing is not None and existing[0] is not cls:
                raise StrategyLoadError(
                    module_name,
                    f"duplicate strategy key {cls.key!r}: {_label(cls)} and {_label(existing[0])}"
                    f" (from {existing[1]!r})",
                )
            by_key.setdefault(cls.key, (cls, module_name))
    return Registry(cls for cls, _ in by_key.values())


_SKIPPED_DIRS = (str(Path(__file__).resolve().parent), str(Path(importlib.__file__).parent))


def _describe(exc: BaseException) -> str:
    """``Type: message (file, line N)``: the line is the deepest one outside this package and
    outside the import machinery, i.e. the plugin's line that raised or declared the error."""
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg} ({exc.filename}, line {exc.lineno})"
    where = ""
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.startswith(("<", *_SKIPPED_DIRS)):
            continue
        where = f" ({filename}, line {lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def load_registry(extra_modules: Sequence[str] = (), *, make_active: bool = True) -> Registry:
    """Build a registry from the built-ins and ``extra_modules`` and (by default) activate it.

    All or nothing: on :class:`StrategyLoadError` the active registry is left as it was.
    """
    registry = build_registry(extra_modules)
    if make_active:
        activate(registry)
    return registry


def activate(registry: Registry) -> None:
    """Make ``registry`` the one :func:`active` returns (an atomic swap)."""
    global _active
    if not isinstance(registry, Registry):
        raise TypeError(f"expected a Registry, got {type(registry).__name__}")
    with _lock:
        _active = registry


def active() -> Registry:
    """The current registry; the built-ins alone if nothing was activated yet."""
    global _active
    registry = _active
    if registry is not None:
        return registry
    with _lock:
        if _active is None:
            _active = build_registry(())
        return _active

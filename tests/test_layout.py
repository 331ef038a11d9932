"""The house rules, read from the code itself: which app may import which, no import circle, and
the size of functions and modules (``docs/architecture.md``, "Rooms and arrows").

Every import counts, at the top of a module or inside a function, and also those only for type
checking: an import moved into a function to dodge a circle is still the circle.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("tradingbot", "accounts", "strategies", "markets", "bots", "backtests")
SITE = "tradingbot.site"  # the composition layer, on top of every app
# Who may import whom (besides itself). The ground floor, ``tradingbot`` without its site,
# imports no app; the site may import every app, and nothing imports the site.
MAY_IMPORT = {
    "tradingbot": set(),
    "accounts": {"tradingbot"},
    "strategies": {"tradingbot"},
    "markets": {"accounts", "tradingbot"},
    "bots": {"markets", "strategies", "accounts", "tradingbot"},
    "backtests": {"markets", "strategies", "accounts", "tradingbot"},
    SITE: {"bots", "backtests", "markets", "strategies", "accounts", "tradingbot"},
}
# Pure engine code: no Django, no model, nothing that needs settings; the backtest engine, the
# paper exchange and the bots share it. Every module it imports, however deep, is pure too.
PURE_MODULES = (
    "backtests.engine",
    "backtests.metrics",
    "backtests.montecarlo",
    "backtests.search_space",
    "backtests.trial_results",
    "backtests.report",
    "backtests.walk_forward",
    "accounts.notification_kinds",
    "bots.decisions",
    "bots.perp_decisions",
    "markets.decimals",
    "markets.perp",
    "markets.timeframes",
    "strategies.checks",
)
FRAMEWORKS = ("django", "rest_framework", "channels", "celery")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500


def app_modules() -> Iterator[tuple[str, Path]]:
    """Every module of the app code (migrations aside), with its dotted name."""
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def room_of(module: str) -> str | None:
    """The app (or the site) a module belongs to; None outside the app code."""
    if module == SITE or module.startswith(SITE + "."):
        return SITE
    top = module.split(".", 1)[0]
    return top if top in APPS else None


def imported_modules(path: Path, module: str) -> set[str]:
    """The app modules ``path`` imports, by dotted name (``from a import b`` counts as ``a.b``
    when ``a.b`` is a module, else as ``a``)."""
    known = _known_modules()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {name for name in found if room_of(name) is not None and name in known}


@functools.cache
def _known_modules() -> frozenset[str]:
    return frozenset(name for name, _ in app_modules())


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {name: imported_modules(path, name) for name, path in app_modules()}


def test_every_app_imports_only_the_rooms_below_it(graph):
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if room_of(target) != room_of(module)
        and room_of(target) not in MAY_IMPORT[room_of(module) or ""]
    )
    assert wrong == []


def test_services_never_import_tasks_and_selectors_never_import_services(graph):
    """A task wraps a service, so a service sends tasks by name (``tradingbot.tasks``); a read
    never writes."""

    def kind(module: str) -> str:
        return next((part for part in module.split(".") if part in ("services", "selectors",
                                                                    "tasks")), "")  # fmt: skip

    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if (kind(module), kind(target)) in (("services", "tasks"), ("selectors", "services"))
        and room_of(module) == room_of(target)
    )
    assert wrong == []


def test_no_module_imports_another_that_imports_it_back(graph):
    circles = sorted(_circles(graph))
    assert circles == []


def test_no_app_imports_another_that_imports_it_back(graph):
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        rooms.setdefault(room_of(module) or "", set()).update(
            room_of(target) or "" for target in targets
        )
    for room in rooms:
        rooms[room].discard(room)
    assert sorted(_circles(rooms)) == []


def _circles(graph: dict[str, set[str]]) -> Iterator[str]:
    """Each strongly connected group of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> Iterator[str]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                yield from visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                yield " <-> ".join(sorted(group))

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def test_no_function_is_longer_than_sixty_lines():
    long = sorted(
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"
        for _, path in app_modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    )
    assert long == []


def test_no_module_is_longer_than_five_hundred_lines():
    long = sorted(
        f"{path.relative_to(ROOT)} ({lines} lines)"
        for _, path in app_modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    )
    assert long == []


def test_pure_engine_code_imports_no_framework_even_indirectly(graph):
    """``markets.perp`` and the other pure modules, and every app module they reach, import no
    Django (so no model), DRF, Channels or Celery."""
    paths = dict(app_modules())
    reached: set[str] = set()
    todo = list(PURE_MODULES)
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph[module])
    wrong = sorted(
        f"{module} imports {name}"
        for module in reached
        for name in _every_import(paths[module])
        if name.split(".", 1)[0] in FRAMEWORKS
    )
    assert wrong == []


def _every_import(path: Path) -> set[str]:
    """Every module ``path`` imports by name, third-party ones included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return found

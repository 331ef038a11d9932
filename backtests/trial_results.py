"""Reading an optimisation's trials: the Pareto front of several objectives. Pure Python."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(trials: Sequence[tuple[int, Sequence[float] | None]]) -> set[int]:
    """The numbers of the trials no other trial dominates (every objective maximised): at least
    as good on every objective and better on one. One objective: the best trials (ties kept)."""
    scored = [(number, tuple(values)) for number, values in trials if values]
    return {
        number
        for number, values in scored
        if not any(_dominates(other, values) for _, other in scored)
    }


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )

"""Randomized sweeps and generated case families in two sizes: a quick one in the default
pass, the full one in the slow pass.

``@sweep(full=40, quick=8, deadline=None)`` is hypothesis's ``@settings`` with
``max_examples`` set per pass: ``quick`` examples in the default run (``python -m pytest
-q``, which deselects ``slow``), all ``full`` in the slow pass (``python -m pytest -q -m
slow``), where every sweep is also marked ``slow`` (see ``conftest.py``). The properties
checked are the same in both passes; only the number of drawn cases differs.
``thinned(cases, every)`` does the same for a ``parametrize`` family (the hostile-input
damage classes, the measured rows): every ``every``-th case by default, all in the slow pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pytest
from hypothesis import settings

F = TypeVar("F", bound=Callable[..., Any])

#: Set by ``conftest.pytest_configure``: this run is the slow pass (``-m slow``).
FULL = False


def slow_pass(markexpr: str) -> bool:
    """Whether a ``-m`` expression asks for the slow tests (``slow``, ``slow and x``, ...).

    >>> slow_pass("slow"), slow_pass("not slow"), slow_pass(""), slow_pass("extras")
    (True, False, False, False)
    """
    return "slow" in markexpr.split() and "not slow" not in " ".join(markexpr.split())


def sweep(full: int, quick: int, **options: Any) -> Callable[[F], F]:
    """hypothesis ``settings(**options)`` with ``quick`` examples, or ``full`` in the slow pass."""

    def decorate(test: F) -> F:
        return pytest.mark.sweep(settings(max_examples=full if FULL else quick, **options)(test))  # type: ignore[no-any-return]

    return decorate


def thinned(cases: Iterable[Any], every: int) -> list[Any]:
    """A generated family of cases: every ``every``-th in the default pass, the rest marked
    ``slow`` (so the slow pass runs all of them), for ``pytest.mark.parametrize``.

    >>> [getattr(c, "marks", ()) != () for c in thinned(["a", "b", "c"], 2)]
    [False, True, False]
    """
    return [case if i % every == 0 else pytest.param(case, marks=pytest.mark.slow) for i, case in enumerate(cases)]

"""Randomized sweeps in two sizes: a quick one in the default pass, the full one in the slow pass.

``@sweep(full=40, quick=8, deadline=None)`` is hypothesis's ``@settings`` with
``max_examples`` set per pass: ``quick`` examples in the default run (``python -m pytest
-q``, which deselects ``slow``), all ``full`` in the slow pass (``python -m pytest -q -m
slow``), where every sweep is also marked ``slow`` (see ``conftest.py``). The properties
checked are the same in both passes; only the number of drawn cases differs.
"""

from __future__ import annotations

from collections.abc import Callable
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

"""Deadlines: one :func:`time.perf_counter` instant that every phase of a solve shares.

A solver turns its ``time_limit`` into a deadline once (:func:`deadline_in`) and hands it
to each phase (DP columns, model building, writing the model for a backend, the backend
itself), so the phases together fit in the one limit. A phase that runs out raises
:class:`TimeLimitReached`; the solver turns it into the status ``no_solution`` (or
``feasible`` with an earlier solution), never an error.

Examples
--------
>>> check(None, "building")  # no deadline: never raises
>>> check(deadline_in(-1.0), "building the model")
Traceback (most recent call last):
...
splitllm.deadline.TimeLimitReached: time limit reached while building the model
"""

from __future__ import annotations

import time
from collections.abc import Iterator


class TimeLimitReached(Exception):
    """A phase passed its deadline (an outcome, so not a :class:`SplitLLMError`)."""


def deadline_in(time_limit: float | None) -> float | None:
    """The instant ``time_limit`` seconds from now (``None``: no limit)."""
    return None if time_limit is None else time.perf_counter() + time_limit


def check(deadline: float | None, doing: str) -> None:
    """Raise :class:`TimeLimitReached` ("... while ``doing``") if ``deadline`` has passed."""
    if deadline is not None and time.perf_counter() > deadline:
        raise TimeLimitReached(f"time limit reached while {doing}")


def requests(n: int, deadline: float | None, doing: str = "building the model") -> Iterator[int]:
    """``range(n)`` that calls :func:`check` before each item (for loops over requests)."""
    for r in range(n):
        check(deadline, doing)
        yield r

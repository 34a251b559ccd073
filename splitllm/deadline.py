"""Deadlines: one :func:`time.perf_counter` instant that every phase of a solve shares.

A solver turns its ``time_limit`` into a deadline once (:func:`deadline_in`) and hands it
to each phase (DP columns, model building, writing the model for a backend, the backend
itself), so the phases together fit in the one limit. A phase that runs out raises
:class:`TimeLimitReached`; the solver turns it into the status ``no_solution`` (or
``feasible`` with an earlier solution), never an error.

A phase that cannot look at the clock often enough (a backend's search or presolve,
building millions of model objects, freeing them) runs in a child process that is
killed :func:`grace_s` after the deadline: :func:`run_forked`. What the child reported
last (its incumbent) survives the kill.

Examples
--------
>>> check(None, "building")  # no deadline: never raises
>>> check(deadline_in(-1.0), "building the model")
Traceback (most recent call last):
...
splitllm.deadline.TimeLimitReached: time limit reached while building the model
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitllm.errors import SplitLLMError

#: Most seconds a child (a backend) gets after the deadline to stop by itself ...
GRACE_S = 2.0
#: ... and never more than this fraction of the call's time limit.
GRACE_FRACTION = 0.05
#: How often the parent looks at a forked child (seconds).
_POLL_S = 0.02
#: In a child of :func:`run_forked`: where it writes its outcome.
_child_result: Path | None = None


class TimeLimitReached(Exception):
    """A phase passed its deadline (an outcome, so not a :class:`SplitLLMError`)."""


def deadline_in(time_limit: float | None) -> float | None:
    """The instant ``time_limit`` seconds from now (``None``: no limit)."""
    return None if time_limit is None else time.perf_counter() + time_limit


def check(deadline: float | None, doing: str) -> None:
    """Raise :class:`TimeLimitReached` ("... while ``doing``") if ``deadline`` has passed.

    In a child of :func:`run_forked` the child ends at once instead, its last report
    standing: unwinding would free what the phase built, which can take seconds.
    """
    if deadline is not None and time.perf_counter() > deadline:
        reason = f"time limit reached while {doing}"
        if _child_result is not None:
            _dump(_child_result, ("stopped", reason))
            _exit(0)
        raise TimeLimitReached(reason)


def requests(n: int, deadline: float | None, doing: str = "building the model") -> Iterator[int]:
    """``range(n)`` that calls :func:`check` before each item (for loops over requests)."""
    for r in range(n):
        check(deadline, doing)
        yield r


def grace_s(time_limit: float | None) -> float:
    """Seconds a child may run past its deadline before it is killed."""
    return GRACE_S if time_limit is None else min(GRACE_S, GRACE_FRACTION * time_limit)


def can_fork() -> bool:
    """Whether :func:`run_forked` forks (Linux); elsewhere it runs in this process."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


@dataclass(frozen=True)
class Forked:
    """The outcome of :func:`run_forked`: ``value`` is what the work returned (``finished``)
    or, when it stopped at the deadline (``stopped`` says where) or was killed, the last
    value it reported (``None`` if none)."""

    value: Any
    finished: bool
    stopped: str = ""


def run_forked(work: Callable[[Callable[[Any], None]], Any], deadline: float | None, grace: float) -> Forked:
    """Run ``work(report)`` in a forked child process, killed ``grace`` s after ``deadline``.

    ``work`` calls ``report(value)`` with each improving partial answer (it must pickle);
    the last one reported is kept across a kill. An exception in the child is raised
    here; Ctrl-C kills the child and is raised here. Without a deadline, or where fork
    is not available (:func:`can_fork`), ``work`` runs in this process.
    """
    if deadline is None or not can_fork():
        return Forked(work(lambda value: None), True)
    with tempfile.TemporaryDirectory(prefix="splitllm-fork-") as folder:
        state, result = Path(folder) / "state.pkl", Path(folder) / "result.pkl"
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(work, state, result)
        finished = _wait(pid, deadline + grace)
        last = _load(state)[1] if state.exists() else None
        if not result.exists():
            if finished:
                raise SplitLLMError("the solver's child process died without an answer (out of memory?)")
            return Forked(last, False)
        kind, value = _load(result)
        if kind == "raised":
            raise value
        return Forked(value, True) if kind == "returned" else Forked(last, False, value)


def _child(work: Callable[[Callable[[Any], None]], Any], state: Path, result: Path) -> None:
    """Run ``work`` and write its outcome; leave at once (no cleanup of the parent's objects:
    freeing a large model can take seconds, the kernel does it at exit)."""
    global _child_result
    _child_result = result
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the parent speaks for both
        _dump(result, ("returned", work(lambda value: _dump(state, ("reported", value)))))
    except BaseException as exc:  # noqa: BLE001 -- handed to the parent, which raises it
        try:
            _dump(result, ("raised", exc))
        except Exception:  # noqa: BLE001 -- an exception that does not pickle
            _dump(result, ("raised", RuntimeError(f"{type(exc).__name__}: {exc}")))
        code = 1
    finally:
        _exit(code)


def _exit(code: int) -> None:
    """End a forked child now: no unwinding, no cleanup of the parent's objects."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _wait(pid: int, kill_at: float) -> bool:
    """Wait for the child ``pid``; kill it at ``kill_at``. True when it ended by itself."""
    try:
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return True
            if time.perf_counter() >= kill_at:
                break
            time.sleep(_POLL_S)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


def _dump(path: Path, value: Any) -> None:
    """Pickle ``value`` to ``path`` atomically (a reader never sees half a file)."""
    part = path.with_suffix(".part")
    with open(part, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(part, path)


def _load(path: Path) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)

"""Logging and progress bars: one ``"splitllm"`` logger, messages and bars on stderr.

The command line sets the level (``-v`` DEBUG, default INFO, ``-q`` ERROR); library code
only logs. Backend solver logs (HiGHS, CBC, CP-SAT) are shown when the logger is enabled
for DEBUG, and progress bars only while it is enabled for WARNING (so ``-q`` hides them).

Examples
--------
>>> configure(verbose=True).level == logging.DEBUG
True
>>> configure(quiet=True).level == logging.ERROR and not progress_enabled()
True
>>> configure().level == logging.INFO and progress_enabled()
True
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator

LOGGER_NAME = "splitllm"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _Formatter(logging.Formatter):
    """``warning: skipping a.json: ...``, the same shape as the CLI's ``error: ...`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def configure(verbose: bool = False, quiet: bool = False) -> logging.Logger:
    """Set the ``"splitllm"`` logger's level and its one stderr handler; return the logger."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)  # one handler however often the CLI runs in a process
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    return logger


def progress_enabled() -> bool:
    """True unless the ``"splitllm"`` logger is quieter than WARNING (``-q``)."""
    return logging.getLogger(LOGGER_NAME).isEnabledFor(logging.WARNING)


@contextlib.contextmanager
def elapsed_bar(description: str, limit_s: float | None = None, delay_s: float = 1.0) -> Iterator[None]:
    """A progress bar on stderr of the seconds spent in the block (out of ``limit_s``).

    For work that reports no progress of its own, such as one solve: the bar appears only
    on a terminal, only after ``delay_s`` (fast solves print nothing), and is removed when
    the block ends.
    """
    if not progress_enabled() or not sys.stderr.isatty():
        yield
        return
    from tqdm import tqdm

    stop = threading.Event()
    fmt = "{desc}: {elapsed}" + (f" of {limit_s:g} s limit" if limit_s else "")
    with tqdm(desc=description, bar_format=fmt, delay=delay_s, leave=False, file=sys.stderr) as bar:
        ticker = threading.Thread(target=_tick, args=(bar, stop, delay_s), daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()


def _tick(bar: object, stop: threading.Event, delay_s: float) -> None:
    """Refresh the bar twice a second, once ``delay_s`` has passed, until ``stop`` is set."""
    if stop.wait(delay_s):
        return
    while not stop.wait(0.5):
        bar.refresh()  # type: ignore[attr-defined]

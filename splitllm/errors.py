"""One exception root for misuse and bad input.

Outcomes of solving (infeasible, time limit) are statuses, never exceptions; these
classes are for input the package cannot work with.
"""

from __future__ import annotations

import math


class SplitLLMError(Exception):
    """Root of every error splitllm raises on purpose."""


class InputError(SplitLLMError):
    """Bad input, with the JSON path of the offending field.

    Examples
    --------
    >>> str(InputError("requests[17].slo.ttft_s", "must be >= 0, got -1"))
    'requests[17].slo.ttft_s: must be >= 0, got -1'
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class InputErrors(SplitLLMError):
    """Several input errors found in one pass; `str()` puts one on each line."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class SolverUnavailable(SplitLLMError):
    """A solver (or its backend) is unknown or not installed."""


class OptionError(InputError):
    """A solver option (or ``time_limit``) that is unknown, of the wrong type or out of range.

    Examples
    --------
    >>> str(OptionError("grid_step", "expected a number in (0, 1], got 'abc'"))
    "grid_step: expected a number in (0, 1], got 'abc'"
    """


def positive_number(path: str, text: str, unit: str = "") -> float:
    """``text`` (a field read from a file) as a finite number > 0, else an :class:`InputError`
    at ``path`` (``unit`` names what it counts in the message).

    Examples
    --------
    >>> positive_number("line 3: Latency", "2.5")
    2.5
    >>> positive_number("line 3: Latency", "nan", "s")
    Traceback (most recent call last):
    ...
    splitllm.errors.InputError: line 3: Latency: must be a finite number of s > 0, got 'nan'
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(path, f"must be a finite number{f' of {unit}' if unit else ''} > 0, got {text!r}")
    return value


def whole_number(path: str, text: str, low: int = 1) -> int:
    """``text`` (a field read from a file) as a whole number >= ``low``, else an
    :class:`InputError` at ``path``.

    Examples
    --------
    >>> whole_number("line 3: batch_size", "16")
    16
    >>> whole_number("line 3: batch_size", "2.5")
    Traceback (most recent call last):
    ...
    splitllm.errors.InputError: line 3: batch_size: must be a whole number >= 1, got '2.5'
    """
    digits = text.strip()
    if not digits.isdigit() or int(digits) < low:
        raise InputError(path, f"must be a whole number >= {low}, got {text!r}")
    return int(digits)


def printable(text: str) -> str:
    """``text`` safe for any terminal: control characters, lone surrogates and other
    unprintables escaped as ``\\x..``/``\\u....``, so user-given names can never break a
    table, fake a line, or crash the output encoder.

    Examples
    --------
    >>> printable("chat")
    'chat'
    >>> printable("a\\nb\\ud800")
    'a\\\\nb\\\\ud800'
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)

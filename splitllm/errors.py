"""One exception root for misuse and bad input.

Outcomes of solving (infeasible, time limit) are statuses, never exceptions; these
classes are for input the package cannot work with.
"""

from __future__ import annotations


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

"""Declared solver options: type, default, allowed values and a one-line help each.

Every registered solver declares its options (``@register(..., options=(...))``), so that
``splitllm solvers`` can list them, the CLI can turn ``-o KEY=VALUE`` strings into typed
values, and a misspelled or out-of-range option is refused with one line naming it before
any solver runs, from the CLI and from Python alike.

Examples
--------
>>> step = Option("grid_step", "number", 0.01, "grid step, a fraction of each limit", low=0, high=1, low_open=True)
>>> step.coerce("0.05"), step.expected()
(0.05, 'a number in (0, 1]')
>>> step.coerce("abc")
Traceback (most recent call last):
    ...
splitllm.errors.OptionError: grid_step: expected a number in (0, 1], got 'abc'
>>> Option("bound", "boolean", True, "prove a bound").coerce("false")
False
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from splitllm.errors import OptionError

Kind = Literal["number", "integer", "boolean", "choice"]
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Option:
    """One solver option.

    ``kind`` is ``number`` (a finite float), ``integer``, ``boolean`` or ``choice`` (one of
    ``choices``); ``low``/``high`` bound numbers and integers (``low_open``: ``low`` itself
    excluded). A ``default`` of ``None`` means "the backend decides" and cannot be given.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()

    def expected(self) -> str:
        """What a valid value is, in words (used in every error message).

        >>> Option("threads", "integer", None, "", low=1).expected()
        'an integer >= 1'
        """
        if self.kind == "boolean":
            return "true or false"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        noun = "a number" if self.kind == "number" else "an integer"
        low = None if self.low is None else _bound_text(self.low)
        if low is not None and self.high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{low}, {_bound_text(self.high)}]"
        if low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {low}"
        return noun if self.high is None else f"{noun} <= {_bound_text(self.high)}"

    def coerce(self, value: Any) -> Any:
        """``value`` (typed, or a CLI string) as this option's type; :class:`OptionError` if invalid."""
        typed = _COERCE[self.kind](self, value)
        if typed is None or not self._in_range(typed):
            raise OptionError(self.name, f"expected {self.expected()}, got {value!r}")
        return typed

    def _in_range(self, value: Any) -> bool:
        if self.kind not in ("number", "integer"):
            return True
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        """``name=default  expected: help``, one line for ``splitllm solvers``."""
        default = "backend default" if self.default is None else _text(self.default)
        return f"{self.name}={default}  ({self.expected()}) {self.help}"


def _bound_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _number(option: Option, value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _integer(option: Option, value: Any) -> int | None:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not hasattr(value, "__index__"):  # int and numpy integers, not 2.0
        return None
    return int(value)


def _boolean(option: Option, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _choice(option: Option, value: Any) -> str | None:
    return value if isinstance(value, str) and value in option.choices else None


_COERCE = {"number": _number, "integer": _integer, "boolean": _boolean, "choice": _choice}


def coerce_options(solver: str, declared: Iterable[Option], given: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``given`` checked against ``declared`` and converted to typed values.

    An unknown name or a bad value raises :class:`OptionError` whose path is
    ``prefix + name`` (the CLI passes ``"-o "``) and which names the valid options.

    >>> declared = [Option("bound", "boolean", True, "prove a bound")]
    >>> coerce_options("dp-grid", declared, {"bound": "no"})
    {'bound': False}
    >>> coerce_options("dp", [], {"time_limt": 5})
    Traceback (most recent call last):
        ...
    splitllm.errors.OptionError: time_limt: solver 'dp' has no option 'time_limt' (did you mean 'time_limit'?); valid: time_limit
    """
    by_name = {option.name: option for option in declared}
    typed: dict[str, Any] = {}
    for name, value in given.items():
        if name not in by_name:
            raise OptionError(prefix + name, _unknown(solver, name, list(by_name)))
        try:
            typed[name] = by_name[name].coerce(value)
        except OptionError as exc:
            raise OptionError(prefix + name, exc.message) from None
    return typed


def _unknown(solver: str, name: str, names: list[str]) -> str:
    if name == "time_limit":  # only a CLI -o can get here: Python takes it as a keyword
        return "not a solver option: use --time-limit SECONDS"
    valid = names + ["time_limit"]
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"solver {solver!r} has no option {name!r}{hint}; valid: {', '.join(valid)}"


def check_time_limit(value: Any) -> float | None:
    """``None`` (no limit) or a finite number of seconds ``>= 0``.

    >>> check_time_limit(5), check_time_limit(None)
    (5.0, None)
    >>> check_time_limit(float("inf"))
    Traceback (most recent call last):
        ...
    splitllm.errors.OptionError: time_limit: expected a number >= 0 (seconds), got inf
    """
    if value is None:
        return None
    number = _number(Option("time_limit", "number", None, ""), value) if not isinstance(value, str) else None
    if number is None or number < 0:
        raise OptionError("time_limit", f"expected a number >= 0 (seconds), got {value!r}")
    return number

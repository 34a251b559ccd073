"""How every ``splitllm`` command reports bad input: one line per problem, exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from splitllm.errors import SplitLLMError

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 0 solved/valid, 1 the answer is negative (infeasible, check failed, no
#: solution), 2 bad input or misuse.
EXIT_NEGATIVE, EXIT_BAD_INPUT = 1, 2


def input_errors_exit(function: F) -> F:
    """Turn :class:`SplitLLMError` into ``error: ...`` lines on stderr and exit code 2."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except SplitLLMError as exc:
            for line in str(exc).splitlines():
                click.echo(f"error: {line}", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper  # type: ignore[return-value]

"""How every ``splitllm`` command reports bad input: one line per problem, exit code 2."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from splitllm.errors import SplitLLMError, printable

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 0 solved/valid, 1 the answer is negative (infeasible, check failed, no
#: solution), 2 bad input or misuse, 130 interrupted (Ctrl-C), as shells report SIGINT.
EXIT_NEGATIVE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


def echo_error(line: str) -> None:
    """Print one ``error: ...`` line on stderr, escaped (see :func:`printable`)."""
    click.echo(f"error: {printable(line)}", err=True)


def input_errors_exit(function: F) -> F:
    """Turn :class:`SplitLLMError` into ``error: ...`` lines on stderr and exit code 2."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except SplitLLMError as exc:
            for line in str(exc).splitlines():
                echo_error(line)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper  # type: ignore[return-value]


def usage_line(exc: click.UsageError) -> str:
    """A command-line misuse as ``<option or argument>: <message>``: click's own message,
    without its usage lines.

    >>> option = click.Option(["--time-limit"], type=click.FloatRange(min=0))
    >>> usage_line(click.BadParameter("-1.0 is not in the range x>=0.", param=option))
    '--time-limit: -1.0 is not in the range x>=0.'
    """
    param = getattr(exc, "param", None)
    if isinstance(exc, click.NoSuchOption):
        where = exc.option_name
    elif isinstance(param, click.Option):  # its long name: --jobs, not -j
        where = max(param.opts, key=lambda opt: (opt.startswith("--"), len(opt)))
    elif param is not None:
        where = param.human_readable_name
    else:
        where = exc.ctx.command_path if exc.ctx is not None else "command line"
    plain = isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter)
    return f"{where}: {exc.message if plain else exc.format_message()}"


@contextlib.contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """Misuse of an option or argument (a value out of range, a missing argument, an
    unknown option): one ``error: <option>: <message>`` line and exit code 2, as for bad
    input. A bare ``splitllm`` still prints the help."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise
    except click.UsageError as exc:
        echo_error(usage_line(exc))
        sys.exit(EXIT_BAD_INPUT)


class InterruptibleGroup(click.Group):
    """A click group whose commands end on Ctrl-C with one line and exit code 130, and
    whose options' misuse is one line (:func:`one_line_usage_errors`)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with one_line_usage_errors():
                return super().invoke(ctx)
        except KeyboardInterrupt:
            echo_error("interrupted")
            sys.exit(EXIT_INTERRUPTED)



"""How every ``splitllm`` command reports bad input: one line per problem, exit code 2."""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from splitllm.errors import InputError, SplitLLMError, printable

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


def check_output_path(out: Path, option: str = "--out", inputs: tuple[Path, ...] = ()) -> None:
    """Refuse, before any work, an output file that could not be written atomically.

    Checks that ``out`` is not one of ``inputs``, is not a directory or special file,
    and that its folder (or the nearest existing ancestor, which writing creates the
    rest of) accepts a new file: one is created there and removed again.
    """
    for source in inputs:
        if _same_file(out, source):
            raise InputError(option, f"{out} is also an input file; refusing to overwrite it")
    try:
        info = out.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise InputError(option, f"{out}: cannot write: {exc.strerror or exc}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise InputError(option, f"{out} is a directory; give a file name")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise InputError(option, f"{out} exists and is not a regular file")
    _probe_folder(out, option)


def check_output_dir(out: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that could not be written: a path that
    exists and is not a folder, or whose folder (or nearest existing ancestor, which
    writing creates the rest of) does not accept a new file."""
    if out.exists() and not out.is_dir():
        raise InputError(option, f"{out} exists and is not a folder")
    _probe(Path(os.path.abspath(out)), out, option)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _probe_folder(out: Path, option: str) -> None:
    """Create and remove a temporary file where ``out`` will be written."""
    _probe(Path(os.path.abspath(out)).parent, out, option)


def _probe(folder: Path, out: Path, option: str) -> None:
    """Create and remove a temporary file in ``folder`` (or its nearest existing ancestor)."""
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(option, f"{out}: {folder} is not a directory")
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".probe")
    except OSError as exc:
        raise InputError(option, f"{out}: cannot write in {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(name)

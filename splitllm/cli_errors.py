"""How every ``splitllm`` command reports bad input: one line per problem, exit code 2."""

from __future__ import annotations

import functools
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from splitllm.errors import InputError, SplitLLMError

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 0 solved/valid, 1 the answer is negative (infeasible, check failed, no
#: solution), 2 bad input or misuse, 130 interrupted (Ctrl-C), as shells report SIGINT.
EXIT_NEGATIVE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


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


class InterruptibleGroup(click.Group):
    """A click group whose commands end on Ctrl-C with one line and exit code 130, and on
    a misused option (wrong type, out of range, unknown, missing) with one line and exit
    code 2, as bad input does."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            echo_error("interrupted")
            sys.exit(EXIT_INTERRUPTED)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        try:
            super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.exceptions.Exit as done:  # --help, --version
            sys.exit(done.exit_code)
        except click.exceptions.Abort:
            echo_error("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as exc:
            echo_error(usage_line(exc))
            sys.exit(exc.exit_code)
        sys.exit(0)


def usage_line(exc: click.ClickException) -> str:
    """Click's complaint about an option as one ``OPTION: problem`` line.

    >>> usage_line(click.BadParameter("'x' is not a valid integer.", param_hint="'--chunk'"))
    "--chunk: 'x' is not a valid integer"
    """
    message = " ".join(exc.format_message().split())
    message = re.sub(r"^Invalid value for '([^']+)': ", r"\1: ", message)
    return message.removesuffix(".")


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

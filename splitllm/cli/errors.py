"""How every ``splitllm`` command reports bad input: one line per problem, exit code 2."""

from __future__ import annotations

import functools
import os
import stat
import sys
import tempfile
from collections.abc import Callable
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


class InterruptibleGroup(click.Group):
    """A click group whose commands end on Ctrl-C with one line and exit code 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
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


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _probe_folder(out: Path, option: str) -> None:
    """Create and remove a temporary file where ``out`` will be written."""
    folder = Path(os.path.abspath(out)).parent
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

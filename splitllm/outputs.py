"""Output paths checked before any work: a file or folder that could not be written is
refused in one line naming the option, so nothing is computed for nothing and nothing is
left half-written."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from splitllm.errors import InputError


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

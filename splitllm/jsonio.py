"""Reading JSON strictly and writing files atomically."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from splitllm.errors import InputError


#: Largest input file read, in bytes: far above any real instance (100,000 requests with
#: explicit costs for 80 blocks is about 300 MB), far below what exhausts memory.
MAX_FILE_BYTES = 1 << 30
#: Deepest nesting of arrays and objects accepted. Instances nest 6 levels; the cap keeps
#: every later recursive step (validation, messages) far from Python's recursion limit.
MAX_DEPTH = 64
#: A number literal that may overflow a float: a three-digit exponent, or 300+ digits.
_MAY_OVERFLOW = re.compile(r"[eE]\+?0*[1-9][0-9]{2}|[0-9]{300}")


class NonFinite:
    """Stands in for ``NaN``, ``Infinity`` or a number too large for a float (``1e400``)
    in parsed JSON, so validation can name the path of the field that holds it."""

    def __init__(self, text: str) -> None:
        self.text = text if len(text) <= 32 else f"{text[:16]}...({len(text)} characters)"
        #: True for a number literal too large for a float, False for NaN/Infinity.
        self.overflow = text not in ("NaN", "Infinity", "-Infinity")

    def __repr__(self) -> str:
        return self.text


def json_path(parts: Any) -> str:
    """``['requests', 17, 'slo']`` -> ``'requests[17].slo'``.

    Examples
    --------
    >>> json_path(["requests", 17, "slo", "ttft_s"])
    'requests[17].slo.ttft_s'
    """
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_json(path: str | Path) -> Any:
    """Parse a JSON file strictly; anything unusable raises :class:`InputError`.

    Refused: a missing, empty, non-regular (FIFO, device) or larger than
    :data:`MAX_FILE_BYTES` file, malformed JSON, nesting deeper than :data:`MAX_DEPTH`,
    and a key repeated within one object (named with its JSON path). ``NaN``,
    ``Infinity`` and numbers that overflow a float (``1e400``) parse to
    :class:`NonFinite` markers, which the validators reject with the field's path.
    """
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise InputError(str(path), "file is empty")
    repeated: list[tuple[dict[str, Any], str]] = []
    try:
        data = _loads(text, repeated)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(str(path), f"nested deeper than {MAX_DEPTH} levels") from None
    where = _too_deep(data)
    if where is not None:
        shown = json_path(where[:8]) + ("..." if len(where) > 8 else "")
        raise InputError(shown, f"nested deeper than {MAX_DEPTH} levels")
    if repeated:
        obj, key = repeated[0]
        raise InputError(json_path([*_path_of(data, obj), key]), "key appears more than once in the same object")
    return data


def _read_text(path: Path) -> str:
    """The file's text; refuses what is not a regular file of bounded size."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(str(path), "is a directory, not a JSON file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(str(path), "is not a regular file (a pipe or device cannot be read as JSON)")
    if info.st_size > MAX_FILE_BYTES:
        raise InputError(str(path), f"is {info.st_size} bytes, above the {MAX_FILE_BYTES} byte limit")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(str(path), f"is above the {MAX_FILE_BYTES} byte limit")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"is not UTF-8 text (byte {exc.start})") from None


def _loads(text: str, repeated: list[tuple[dict[str, Any], str]]) -> Any:
    """``json.loads`` with NaN/Infinity/overflow markers; records repeated keys."""

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):  # json keeps the last value silently; we refuse
            repeated.append((obj, _first_repeat(pairs)))
        return obj

    if _MAY_OVERFLOW.search(text) is None:  # the common case keeps the fast C number parser
        return json.loads(text, parse_constant=NonFinite, object_pairs_hook=pairs_hook)
    return json.loads(
        text, parse_constant=NonFinite, object_pairs_hook=pairs_hook, parse_float=_parse_float, parse_int=_parse_int
    )


def _first_repeat(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    return ""


def _parse_float(text: str) -> float | NonFinite:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


def _parse_int(text: str) -> int | NonFinite:
    # More than 400 digits is above 1e308 (JSON has no leading zeros); int() would also
    # refuse more than 4300 digits with a ValueError.
    if len(text.lstrip("-")) > 400:
        return NonFinite(text)
    value = int(text)
    return value if abs(value) <= sys.float_info.max else NonFinite(text)


def _children(node: Any) -> list[tuple[str | int, Any]]:
    if type(node) is dict:
        return [(k, v) for k, v in node.items() if type(v) is dict or type(v) is list]
    return [(i, v) for i, v in enumerate(node) if type(v) is dict or type(v) is list]


def _too_deep(root: Any) -> list[str | int] | None:
    """Path of a container nested deeper than :data:`MAX_DEPTH`, else None (breadth-first)."""
    level: list[Any] = [root] if type(root) in (dict, list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return _path_of(root, level[0])
        nxt: list[Any] = []
        for node in level:
            nxt += [v for v in (node.values() if type(node) is dict else node) if type(v) is dict or type(v) is list]
        level = nxt
    return None


def _path_of(root: Any, target: Any) -> list[str | int]:
    """JSON path (as parts) of the container ``target`` inside ``root``, found by identity."""
    stack: list[tuple[Any, list[str | int]]] = [(root, [])]
    while stack:
        node, parts = stack.pop()
        if node is target:
            return parts
        if len(parts) < MAX_DEPTH + 1:
            stack += [(child, [*parts, key]) for key, child in _children(node)]
    return []


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path``; when the block ends without error it replaces
    ``path`` in one step (readers see the old file or the whole new one), else it is removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically; refuses NaN/Infinity."""
    write_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")

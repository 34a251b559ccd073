"""Rows of a measured-data CSV file, every kind of damage refused in one line.

A missing file, a missing column, a row cut short (a truncated file) and a file that is not
readable CSV text each raise an :class:`~splitllm.errors.InputError` naming the file (and
line); the caller checks the fields it reads, naming ``where``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from splitllm.errors import InputError


def dict_rows(path: Path, columns: Sequence[str], expected: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``(where, row)`` for each row of ``path``: ``where`` is ``"PATH: line N"``, ``row``
    maps the header's names to the fields. ``columns`` must all be in the header;
    ``expected`` says what file was wanted (in the message for a missing one).

    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = Path(folder, "t.csv")
    >>> _ = path.write_text("a,b\\n1,2\\n3\\n")
    >>> rows = dict_rows(path, ["a"], "a test file")
    >>> next(rows)[1]
    {'a': '1', 'b': '2'}
    >>> next(rows)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    splitllm.errors.InputError: ...t.csv: line 3: has fewer fields than the header (a truncated file?)
    """
    if not path.is_file():
        raise InputError(str(path), f"no such file (expected {expected})")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(str(path), f"missing column(s) {', '.join(missing)}")
            for row in reader:
                where = f"{path}: line {reader.line_num}"
                if None in row.values():
                    raise InputError(where, "has fewer fields than the header (a truncated file?)")
                yield where, row
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(str(path), f"not a readable CSV file ({exc})") from None

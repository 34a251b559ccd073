"""Running work on an existing Dask scheduler (the optional ``bench`` extra).

One place says whether Dask is installed, and turns a scheduler that cannot be reached
into one line naming ``--dask-scheduler`` (exit 2), checked before anything is written.

>>> DASK_MISSING
'--dask-scheduler needs dask[distributed]: pip install -e ".[bench]"'
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterator
from typing import Any

from splitllm.errors import InputError, SplitLLMError

DASK_MISSING = '--dask-scheduler needs dask[distributed]: pip install -e ".[bench]"'
#: Seconds to wait for the scheduler to answer (distributed's default is 30).
CONNECT_TIMEOUT_S = 10


def dask_installed() -> bool:
    """True when the optional ``dask[distributed]`` extra is importable."""
    return importlib.util.find_spec("distributed") is not None


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A ``distributed.Client`` on the scheduler at ``address``, closed on exit.

    Raises :class:`SplitLLMError` (:data:`DASK_MISSING`) without the extra, and
    :class:`InputError` on ``--dask-scheduler`` when the scheduler does not answer.
    """
    if not dask_installed():
        raise SplitLLMError(DASK_MISSING)
    distributed = importlib.import_module("distributed")
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise InputError("--dask-scheduler", f"no Dask scheduler answers at {address!r}: {exc}") from None
    with client:
        yield client


def check_scheduler(address: str | None) -> None:
    """Connect once to ``address`` (when given) so that a bad one fails before any output."""
    if address is not None:
        with dask_client(address):
            pass

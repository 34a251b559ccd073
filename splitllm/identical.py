"""Identical requests: an instance's distinct requests, each solved or placed once.

Per-request solvers solve one representative of each group of identical requests; the
serving policies charge a group's placing time to its first request.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> first, inverse = unique_requests(load_instance(example_path("tiny")).arrays)
>>> first.tolist(), inverse.tolist()
([0, 1], [0, 1])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from splitllm.instance import Arrays


def unique_requests(arrays: Arrays) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Representatives of the distinct requests and, per request, its representative's slot.

    Two requests are identical when every compiled figure of theirs is equal. Slots follow
    first appearance.
    """
    n = len(arrays.prompt_tokens)
    per_request = [
        value.reshape(n, -1).astype(float) + 0.0  # + 0.0 folds -0.0 into 0.0
        for value in vars(arrays).values()
        if isinstance(value, np.ndarray)
    ]
    # Group rows by a hash of their bytes (one vectorised pass per column), then check
    # every row equal to its group's first: np.unique(axis=0) took 5 s for 100,000
    # requests and a dict of row bytes 4.7 s; this takes a fraction of that. A hash
    # collision (never seen) falls back to the dict.
    digest = np.full(n, 14695981039346656037, dtype=np.uint64)  # FNV-1a over 64-bit words
    for table in per_request:
        for column in np.ascontiguousarray(table).view(np.uint64).T:
            digest = (digest ^ column) * np.uint64(1099511628211)
    _, first_of_hash, hash_slot = np.unique(digest, return_index=True, return_inverse=True)
    by_appearance = np.argsort(first_of_hash)
    slot = np.empty(len(first_of_hash), dtype=np.int64)
    slot[by_appearance] = np.arange(len(first_of_hash))
    first, inverse = first_of_hash[by_appearance].astype(np.int64), slot[hash_slot.ravel()]
    if all(np.array_equal(table, table[first[inverse]]) for table in per_request):
        return first, inverse
    return _unique_by_bytes(np.hstack(per_request))


def _unique_by_bytes(table: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """:func:`unique_requests` of the rows of ``table``, one dict look-up per row."""
    slot_of: dict[bytes, int] = {}
    first: list[int] = []
    inverse = np.empty(len(table), dtype=np.int64)
    for i, row in enumerate(np.ascontiguousarray(table)):
        slot = slot_of.setdefault(row.tobytes(), len(first))
        if slot == len(first):
            first.append(i)
        inverse[i] = slot
    return np.array(first, dtype=np.int64), inverse

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

    Two requests are identical when every compiled figure of theirs is equal.
    """
    per_request = [
        value.reshape(len(arrays.prompt_tokens), -1).astype(float)
        for value in vars(arrays).values()
        if isinstance(value, np.ndarray)
    ]
    table = np.ascontiguousarray(np.hstack(per_request)) + 0.0  # + 0.0 folds -0.0 into 0.0
    # Group rows by their bytes (a hash per row) rather than np.unique(axis=0), whose
    # row sort took 5 s for 100,000 requests; slots follow first appearance.
    slot_of: dict[bytes, int] = {}
    first: list[int] = []
    inverse = np.empty(len(table), dtype=np.int64)
    for i, row in enumerate(table):
        slot = slot_of.setdefault(row.tobytes(), len(first))
        if slot == len(first):
            first.append(i)
        inverse[i] = slot
    return np.array(first, dtype=np.int64), inverse

"""What one decode iteration of the batched server costs, and each request's share of it.

:func:`decode_iteration_report` times one decode iteration
(:func:`splitllm.batched.iteration_time`, every item ``q = 1``) of ``batch`` copies of each
given request, with each request's server blocks given by a mask, and splits the time
among the requests:

* a block's token-parallel work ``lin_b(n_b)`` and its attention floor go to the items
  that run it, equally (each decode item brings one token);
* an item's own attention over its context goes to that item;
* the per-iteration overhead goes equally to the items the iteration schedules, and the
  per-sequence overhead to each of them.

The shares of all items add up to the iteration time (when at least one item is
scheduled; with none, the iteration is the overhead alone and nobody's share).

Examples
--------
>>> import numpy as np
>>> from splitllm.batched import AttentionModel, BatchedCosts
>>> from splitllm.profiles import Curve
>>> lin = Curve.from_points([[1, 1.0], [3, 2.0]])
>>> att = AttentionModel(1e30, 1e30, 0.0, 1, 1, 2)
>>> costs = BatchedCosts("toy", "toy", {"embed": lin, "layer": lin, "head": lin}, att, overhead_s=0.5)
>>> rep = decode_iteration_report(costs, ("embed", "layer", "head"), [[True, True, True], [True, False, False]], [0, 0])
>>> rep["iteration_s"], rep["share_s"]
(4.0, [3.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from splitllm.batched import BatchedCosts, iteration_time, server_costs
from splitllm.errors import InputError, printable
from splitllm.instance import Instance


def decode_iteration_report(
    costs: BatchedCosts,
    kinds: Sequence[str],
    placements_server_mask: ArrayLike,
    contexts: ArrayLike,
    batch: int | ArrayLike = 1,
) -> dict[str, object]:
    """One decode iteration's time and each request's share of it.

    Parameters
    ----------
    costs : the server's batched tables (:class:`~splitllm.batched.BatchedCosts`).
    kinds : the kind of each block, in model order.
    placements_server_mask : bool, shape ``(requests, blocks)``: request ``r`` runs block ``b``
        on the server.
    contexts : tokens cached for each request, shape ``(requests,)``.
    batch : copies of each request decoding together: one int for all, or one per request.

    Returns
    -------
    dict with ``iteration_s`` (seconds of the iteration), ``share_s`` (one request's share
    of it, per request; a copy has the same share), ``overhead_s`` (per-iteration plus
    per-sequence overhead in the iteration), ``server_items`` (items the iteration
    schedules), ``active_blocks`` (blocks some item runs) and ``check_s`` (the sum of all
    shares plus any unattributed overhead, equal to ``iteration_s``).
    """
    mask = np.asarray(placements_server_mask, dtype=bool)
    ctx = np.asarray(contexts, dtype=float)
    if mask.ndim != 2 or mask.shape[1] != len(kinds):
        raise InputError("placements_server_mask", f"shape {mask.shape} must be (requests, {len(kinds)})")
    if ctx.shape != (mask.shape[0],):
        raise InputError("contexts", f"shape {ctx.shape} must be ({mask.shape[0]},)")
    copies = np.broadcast_to(np.asarray(batch, dtype=int), ctx.shape)
    if np.any(copies < 0):
        raise InputError("batch", "copies must be >= 0")
    rows = np.repeat(np.arange(ctx.size), copies)  # the request each item copies
    need = mask[rows]
    q = np.ones(rows.size)
    c = ctx[rows]
    total = float(iteration_time(costs, kinds, need, q, c)) if rows.size else costs.overhead_s
    kind_arr = np.asarray(kinds)
    n_b = need.sum(axis=0).astype(float)  # tokens at each block (one per decode item)
    lin = np.zeros(len(kinds))
    for kind in np.unique(kind_arr):
        cols = kind_arr == kind
        lin[cols] = costs.lin[str(kind)].value(n_b[cols])
    lin = np.where(n_b > 0, lin + costs.attention.floor_s * (kind_arr == "layer"), 0.0)
    per_token = np.divide(lin, n_b, out=np.zeros_like(lin), where=n_b > 0)
    scheduled = need.any(axis=1)
    n_sched = int(scheduled.sum())
    attn = costs.attention.item_s(np.ones(ctx.size), ctx) * (mask & (kind_arr == "layer")).sum(axis=1)
    share = mask @ per_token + attn  # one copy of each request
    any_block = mask.any(axis=1)
    if n_sched:
        share = share + np.where(any_block, costs.overhead_s / n_sched + costs.overhead_per_seq_s, 0.0)
    share = np.where(copies > 0, share, 0.0)
    unattributed = 0.0 if n_sched else costs.overhead_s
    return {
        "iteration_s": total,
        "share_s": [float(s) for s in share],
        "overhead_s": costs.overhead_s + costs.overhead_per_seq_s * n_sched,
        "server_items": n_sched,
        "active_blocks": int((n_b > 0).sum()),
        "check_s": float(share @ copies) + unattributed,
    }


def batched_lines(instance: Instance, placements: ArrayLike, admitted: ArrayLike, engine: str, batch: int) -> list[str]:
    """What a solution's placements cost a batching server: the decode iteration of
    ``batch`` copies of every admitted request, beside the same batch all on the server.

    Each request decodes at the context of its middle decode step, ``p + o / 2``.

    >>> from splitllm.instance import load_instance, example_path
    >>> from splitllm.registry import solve
    >>> inst = load_instance(example_path("llama2-7b"))
    >>> r = solve(inst, "dp")
    >>> batched_lines(inst, r.placements, r.admitted, "vllm", 8)[0]  # doctest: +ELLIPSIS
    'batched server (a100-80gb, vllm): one decode iteration of 8 copies of each of 6 requests...'
    """
    costs = server_costs(instance, engine)
    a = instance.arrays
    keep = np.asarray(admitted, dtype=bool)
    mask = np.asarray(placements, dtype=bool)[keep]
    contexts = (a.prompt_tokens + a.output_tokens / 2.0)[keep]
    kinds = [block.kind for block in instance.model.blocks]
    split = decode_iteration_report(costs, kinds, mask, contexts, batch)
    whole = decode_iteration_report(costs, kinds, np.ones_like(mask), contexts, batch)
    ms = 1e3
    lines = [
        f"batched server ({costs.device}, {engine}): one decode iteration of {batch} copies of each of {int(keep.sum())} requests "
        f"takes {split['iteration_s'] * ms:.4g} ms with these placements, {whole['iteration_s'] * ms:.4g} ms all on the server "
        f"({split['active_blocks']} of {len(kinds)} blocks active, {split['server_items']} sequences on the server)",
    ]
    shares = ", ".join(f"{printable(str(instance.requests[i].id))} {s * ms:.3g}" for i, s in zip(np.nonzero(keep)[0], split["share_s"]))
    lines.append(f"  each request's share of it, ms: {shares}")
    return lines

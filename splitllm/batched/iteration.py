"""The batched server: the time of one iteration of a continuous-batching engine.

An iteration processes, at every block ``b``, all work items that need ``b``. With ``n_b``
tokens at ``b``::

    T = overhead + sum_b [n_b > 0] * (lin_b(n_b) + attn_floor_b) + sum_{items at b} attn_b(item)

* ``lin_b(n)``: the block's token-parallel work (GEMMs, norms, activations, embedding, the
  head's GEMM) at ``n`` tokens, piecewise-linear through measured points (a
  :class:`~splitllm.profiles.Curve`: flat below the first point, the last segment extended
  above the last). At the head, ``n`` counts the tokens that sample: one per item.
* ``attn_b(item)``: attention of one item at a ``layer`` block, ``max(flops / F, bytes / B)``:
  ``q`` new tokens (a prefill chunk, or ``q = 1`` for a decode step) over ``c`` cached
  tokens. FLOPs ``4 * hidden * q * (c + (q + 1) / 2)`` (causal); bytes: the ``q`` tokens'
  Q, K, V and output once, plus the ``c`` cached tokens' K and V read once.
* ``attn_floor_b``: one attention kernel launch per block that runs, whatever the items.
* ``overhead``: the engine's per-iteration cost (scheduling, launches, sampling), fitted
  to whole-model measurements: ``overhead_s`` plus ``overhead_per_seq_s`` for every item
  the iteration schedules (an item with ``q > 0`` that runs at least one block here).

A block that no item needs costs nothing: its weights are not read.

Examples
--------
>>> import numpy as np
>>> from splitllm.profiles import Curve
>>> lin = Curve.from_points([[1, 1.0], [100, 2.0]])
>>> att = AttentionModel(flops_per_s=1e12, bytes_per_s=1e12, floor_s=0.0, hidden=8, kv_dim=8, dtype_bytes=2)
>>> costs = BatchedCosts("toy", "toy", {"embed": lin, "layer": lin, "head": lin}, att, overhead_s=0.5)
>>> kinds = ("embed", "layer", "head")
>>> # two decode items share every block: each block's floor is paid once, not twice
>>> t = iteration_time(costs, kinds, np.ones((2, 3), bool), q=[1, 1], context=[0, 0])
>>> round(float(t), 6)
3.530303
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from splitllm.batched.engines import ENGINES as ENGINE_TABLE, get_engine
from splitllm.errors import InputError
from splitllm.instance import Instance
from splitllm.profiles import BatchedTables, Curve

KINDS = ("embed", "layer", "head")


@dataclass(frozen=True)
class AttentionModel:
    """Per-item attention of one ``layer`` block: achieved FLOP/s, bytes/s, a per-block floor.

    ``folded_context`` (default 0): cached tokens per item whose attention the ``layer``
    lin already holds (tables measured on whole layers at some context); an item's
    attention then counts only its cached tokens beyond them, ``max(context -
    folded_context, 0)``.

    >>> plain = AttentionModel(1e12, 1e9, 0.0, 8, 8, 2)
    >>> folded = AttentionModel(1e12, 1e9, 0.0, 8, 8, 2, folded_context=100)
    >>> [float(t) for t in folded.item_s([1, 1, 1], [50, 100, 600]) - plain.item_s([1, 1, 1], [0, 0, 500])]
    [0.0, 0.0, 0.0]
    """

    flops_per_s: float
    bytes_per_s: float
    floor_s: float
    hidden: int
    kv_dim: int
    dtype_bytes: float
    folded_context: float = 0.0

    def item_s(self, q: ArrayLike, context: ArrayLike) -> NDArray[np.float64]:
        """Seconds of ``q`` new tokens attending over ``context`` cached tokens (element-wise),
        less the ``folded_context`` tokens already in the layer's lin."""
        qa = np.asarray(q, dtype=float)
        ca = np.maximum(np.asarray(context, dtype=float) - self.folded_context, 0.0)
        flops = 4.0 * self.hidden * qa * (ca + (qa + 1.0) / 2.0)
        n_bytes = (qa * (2 * self.hidden + 2 * self.kv_dim) + ca * 2 * self.kv_dim) * self.dtype_bytes
        out: NDArray[np.float64] = np.where(qa > 0, np.maximum(flops / self.flops_per_s, n_bytes / self.bytes_per_s), 0.0)
        return out


@dataclass(frozen=True)
class BatchedCosts:
    """The tables of one (device, model) for batched iterations, in seconds.

    ``lin`` maps each block kind (``embed``, ``layer``, ``head``) to its token-parallel
    curve; ``attention`` is the per-item attention of a ``layer`` block; ``overhead_s`` is
    the engine's per-iteration cost, ``overhead_per_seq_s`` its added cost per scheduled
    item (default 0); ``memory_bytes`` the device memory (for KV capacity).
    """

    device: str
    model: str
    lin: Mapping[str, Curve]
    attention: AttentionModel
    overhead_s: float = 0.0
    provenance: str = ""
    memory_bytes: float = 0.0
    weight_bytes: float = 0.0
    kv_bytes_per_token: float = field(default=0.0)
    overhead_per_seq_s: float = 0.0

    def with_overhead(self, overhead_s: float) -> BatchedCosts:
        """A copy with another per-iteration overhead."""
        return replace(self, overhead_s=float(overhead_s))


def iteration_time(
    costs: BatchedCosts, kinds: Sequence[str], needs: ArrayLike, q: ArrayLike, context: ArrayLike
) -> NDArray[np.float64] | np.float64:
    """Seconds of one iteration, or of many at once.

    Parameters
    ----------
    costs : the device's tables.
    kinds : the kind of each block, in model order (e.g. ``embed``, 32 x ``layer``, ``head``).
    needs : bool, shape ``(items, blocks)`` or ``(iterations, items, blocks)``: item ``i`` runs block ``b``.
    q : new tokens of each item, shape ``(items,)`` or ``(iterations, items)`` (1 for a decode step).
    context : tokens already cached for each item, same shape as ``q``.

    Returns
    -------
    The iteration time, a scalar, or one per iteration when inputs have a leading iterations axis.
    """
    kind_arr = np.asarray(kinds)
    _check_kinds(costs, kind_arr.tolist())
    qa = np.asarray(q, dtype=float)
    ca = np.asarray(context, dtype=float)
    need = np.asarray(needs, dtype=bool)
    if qa.shape != ca.shape:
        raise InputError("context", f"shape {ca.shape} differs from q's {qa.shape}")
    if need.shape[-1] != kind_arr.size or need.shape[-2] != qa.shape[-1]:
        raise InputError("needs", f"shape {need.shape} must end with (items, blocks) = ({qa.shape[-1]}, {kind_arr.size})")
    if np.any(qa < 0) or np.any(ca < 0):
        raise InputError("q", "token counts must be >= 0")
    need = np.broadcast_to(need, qa.shape + (kind_arr.size,))
    samples = (qa > 0).astype(float)  # the head runs for the tokens that sample: one per item
    is_head = kind_arr == "head"
    tokens = np.where(is_head, samples[..., None], qa[..., None]) * need  # (..., items, blocks)
    n_b = tokens.sum(axis=-2)  # (..., blocks)
    lin = np.zeros_like(n_b)
    for kind in np.unique(kind_arr):  # one vectorised curve evaluation per kind (3 kinds)
        cols = kind_arr == kind
        lin[..., cols] = costs.lin[str(kind)].value(n_b[..., cols].ravel()).reshape(n_b[..., cols].shape)
    active = n_b > 0
    is_layer = kind_arr == "layer"
    attn_item = costs.attention.item_s(qa, ca)  # (..., items)
    attn = (need[..., is_layer] & (qa[..., None] > 0)).astype(float) * attn_item[..., None]
    scheduled = ((qa > 0) & need.any(axis=-1)).sum(axis=-1)  # (...,): items this iteration schedules
    total = (
        costs.overhead_s
        + costs.overhead_per_seq_s * scheduled
        + np.where(active, lin, 0.0).sum(axis=-1)
        + costs.attention.floor_s * (active & is_layer).sum(axis=-1)
        + attn.sum(axis=(-2, -1))
    )
    return total


def _check_kinds(costs: BatchedCosts, kinds: Sequence[str]) -> None:
    unknown = sorted(set(kinds) - set(costs.lin))
    if unknown:
        raise InputError("kinds", f"no table for block kind(s) {', '.join(unknown)}; have {', '.join(sorted(costs.lin))}")


#: One item of an iteration for :class:`IterationPricer`: blocks ``lo`` to ``hi - 1``,
#: ``q`` new tokens, ``context`` cached tokens.
Item = tuple[int, int, int, int]


class IterationPricer:
    """:func:`iteration_time` of one iteration at a time, prepared once for many calls.

    Built from the tables and the block kinds; each item needs one run of consecutive
    blocks ``[lo, hi)`` (a server segment of a placement). The same formula, summed over
    the runs of blocks with the same token count instead of block by block; nothing is
    validated per call; curve values and per-item attention are kept by token count.
    Agrees with :func:`iteration_time` to rounding.

    >>> from splitllm.profiles import Curve
    >>> lin = Curve.from_points([[1, 1.0], [100, 2.0]])
    >>> att = AttentionModel(flops_per_s=1e12, bytes_per_s=1e12, floor_s=0.0, hidden=8, kv_dim=8, dtype_bytes=2)
    >>> costs = BatchedCosts("toy", "toy", {"embed": lin, "layer": lin, "head": lin}, att, overhead_s=0.5)
    >>> price = IterationPricer(costs, ("embed", "layer", "head"))
    >>> round(price([(0, 3, 1, 0), (0, 3, 1, 0)]), 6)  # as iteration_time's example
    3.530303
    """

    def __init__(self, costs: BatchedCosts, kinds: Sequence[str]) -> None:
        _check_kinds(costs, kinds)
        self.costs = costs
        names = sorted(set(kinds))
        self._kinds = [(name == "head", name == "layer", costs.lin[name], {}) for name in names]
        # _counts[k][b]: blocks of kind k among the first b blocks
        self._counts = [np.concatenate([[0], np.cumsum([kind == name for kind in kinds])]).tolist() for name in names]
        self._layers = self._counts[names.index("layer")] if "layer" in names else [0] * (len(kinds) + 1)
        self._attention: dict[tuple[int, int], float] = {}

    def _lin(self, curve: Curve, memo: dict[int, float], n: int) -> float:
        value = memo.get(n)
        if value is None:
            value = memo[n] = float(curve.value(n))
        return value

    def _attn(self, q: int, context: int) -> float:
        value = self._attention.get((q, context))
        if value is None:
            value = self._attention[q, context] = float(self.costs.attention.item_s(q, context))
        return value

    def __call__(self, items: Sequence[Item]) -> float:
        """Seconds of the iteration that runs ``items`` (``(lo, hi, q, context)`` each)."""
        tokens: dict[int, int] = {}  # change of the token count at a block boundary
        samples: dict[int, int] = {}  # the same for sampling tokens (the head's count)
        attn, scheduled = 0.0, 0
        for lo, hi, q, context in items:
            if hi <= lo:
                continue
            tokens[lo] = tokens.get(lo, 0) + q
            tokens[hi] = tokens.get(hi, 0) - q
            if q > 0:
                scheduled += 1
                samples[lo] = samples.get(lo, 0) + 1
                samples[hi] = samples.get(hi, 0) - 1
                layers = self._layers[hi] - self._layers[lo]
                if layers:
                    attn += layers * self._attn(q, context)
        lin, floors, n_q, n_s = 0.0, 0, 0, 0
        bounds = sorted(tokens)
        for a, b in zip(bounds[:-1], bounds[1:]):
            n_q += tokens[a]
            n_s += samples.get(a, 0)
            for (head, layer, curve, memo), counts in zip(self._kinds, self._counts):
                blocks = counts[b] - counts[a]
                n = n_s if head else n_q
                if blocks and n > 0:
                    lin += blocks * self._lin(curve, memo, n)
                    floors += blocks if layer else 0
        c = self.costs
        return c.overhead_s + c.overhead_per_seq_s * scheduled + lin + c.attention.floor_s * floors + attn


def all_blocks(n_layers: int) -> tuple[str, ...]:
    """Block kinds of a decoder-only model: ``embed``, ``n_layers`` x ``layer``, ``head``."""
    return ("embed",) + ("layer",) * n_layers + ("head",)


#: The serving engines whose per-iteration overhead profiles carry: the names of the engine table.
ENGINES = tuple(ENGINE_TABLE)


def costs_from_tables(tables: BatchedTables, engine: str, device: str = "", model: str = "", path: str = "batched") -> BatchedCosts:
    """The batched costs a profile's tables give for ``engine``: its overheads, and the
    kernel times (lin and attention) scaled by its ``kernel_scale``.

    >>> from splitllm.profiles import Curve, BatchedTables
    >>> lin = {"layer": Curve.from_points([[1, 0.01]])}
    >>> att = {"flops_per_s": 1e12, "bytes_per_s": 1e12, "floor_s": 0.0, "hidden": 8, "kv_dim": 8, "dtype_bytes": 2}
    >>> tables = BatchedTables(lin, att, {"vllm": {"overhead_s": 0.004, "kernel_scale": 0.5}}, 80e9, 13e9, 5e5)
    >>> costs = costs_from_tables(tables, "vllm")
    >>> costs.overhead_s, float(costs.lin["layer"].value(1)), costs.attention.flops_per_s
    (0.004, 0.005, 2000000000000.0)
    """
    if engine not in tables.engines:
        raise InputError(f"{path}.engines", f"no fit for engine {engine!r}; have {', '.join(sorted(tables.engines))}")
    fit = tables.engines[engine]
    k = float(fit.get("kernel_scale", 1.0))
    att = AttentionModel(**tables.attention)  # type: ignore[arg-type]
    return BatchedCosts(
        device=device,
        model=model,
        lin={kind: Curve(curve.xs, curve.ys * k) for kind, curve in tables.lin.items()},
        attention=replace(att, flops_per_s=att.flops_per_s / k, bytes_per_s=att.bytes_per_s / k, floor_s=att.floor_s * k),
        overhead_s=float(fit["overhead_s"]),
        provenance=tables.provenance,
        memory_bytes=tables.memory_bytes,
        weight_bytes=tables.weight_bytes,
        kv_bytes_per_token=tables.kv_bytes_per_token,
        overhead_per_seq_s=float(fit.get("overhead_per_seq_s", 0.0)),
    )


def tables_from_costs(costs: BatchedCosts, engines: Mapping[str, Mapping[str, float]], source: str = "measured") -> BatchedTables:
    """The profile section that stores ``costs``' measured tables (no engine applied) with
    each engine's fitted parameters."""
    att = costs.attention
    attention = {"flops_per_s": att.flops_per_s, "bytes_per_s": att.bytes_per_s, "floor_s": att.floor_s,
                 "hidden": att.hidden, "kv_dim": att.kv_dim, "dtype_bytes": att.dtype_bytes}
    if att.folded_context:
        attention["folded_context"] = att.folded_context
    return BatchedTables(dict(costs.lin), attention, {k: dict(v) for k, v in engines.items()}, costs.memory_bytes,
                         costs.weight_bytes, costs.kv_bytes_per_token, source, costs.provenance)


def server_costs(instance: Instance, engine: str = "vllm") -> BatchedCosts:
    """The batched costs of ``instance``'s server device under ``engine``.

    Only server profiles with a batched section (format version 2) have them: a device
    without (a derived client profile, an instance with explicit costs) is refused with a
    message naming it.

    >>> from splitllm.instance import load_instance, example_path
    >>> costs = server_costs(load_instance(example_path("llama2-7b")), "vllm")
    >>> costs.device, costs.overhead_s > 0
    ('a100-80gb', True)
    """
    get_engine(engine)
    name = instance.server.device
    profile = instance.profiles.get(name or "")
    if profile is None:
        raise InputError("server.device", "batched costs need a server device with a profile (this instance has explicit costs only)")
    if profile.batched is None:
        raise InputError(f"devices.{name}", "has no batched section (profile format version 2): no batched costs for this device")
    return costs_from_tables(profile.batched, engine, profile.device or str(name), profile.model, f"devices.{name}.batched")

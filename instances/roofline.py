"""Roofline pieces: the cost of an operation the data does not measure, from its FLOPs and bytes.

Importers fit a :class:`Roofline` to operations that *were* measured on a device (the
GEMMs of vidur, a whole layer of Helix, whole-model tokens/s of llama.cpp) and use it for
the operations that were not (attention, the LM head, sampling). The time of an
operation is ``floor_s + max(flops / flops_per_s, bytes / bytes_per_s)``.

Examples
--------
>>> r = Roofline(flops_per_s=1e12, bytes_per_s=1e9, floor_s=1e-6)
>>> r.time(flops=1e9, n_bytes=1e6)  # compute-bound: 1 ms, plus the floor
0.001001
"""

from __future__ import annotations

from dataclasses import dataclass

from splitllm.instances.models import ModelShape


@dataclass(frozen=True)
class Roofline:
    """Achieved FLOP/s and bytes/s of one device, with a per-kernel floor in seconds."""

    flops_per_s: float
    bytes_per_s: float
    floor_s: float = 0.0

    def time(self, flops: float, n_bytes: float) -> float:
        """Seconds for an operation of ``flops`` FLOPs that moves ``n_bytes`` bytes."""
        return self.floor_s + max(flops / self.flops_per_s, n_bytes / self.bytes_per_s)

    def describe(self) -> str:
        return (
            f"{self.flops_per_s / 1e12:.3g} TFLOP/s, {self.bytes_per_s / 1e9:.3g} GB/s, "
            f"floor {self.floor_s * 1e6:.3g} us"
        )


def attention_prefill_s(shape: ModelShape, tokens: int, dtype_bytes: float, roof: Roofline) -> float:
    """One layer's attention over a prompt: causal ``QK^T`` and ``PV`` FLOPs; Q, K, V, O bytes once."""
    n_bytes = tokens * (2 * shape.hidden + 2 * shape.kv_dim) * dtype_bytes
    return roof.time(shape.attention_flops(tokens), n_bytes)


def attention_decode_s(shape: ModelShape, context: int, dtype_bytes: float, roof: Roofline) -> float:
    """One layer's attention for one new token: read the whole KV cache of ``context`` tokens."""
    n_bytes = context * shape.kv_bytes_per_token(dtype_bytes) + 2 * shape.hidden * dtype_bytes
    return roof.time(shape.decode_attention_flops(context), n_bytes)


def lm_head_s(shape: ModelShape, dtype_bytes: float, roof: Roofline) -> float:
    """The head's GEMM for one token (serving engines compute logits of the last position only)."""
    params = shape.head_gemm_params()
    return roof.time(2.0 * params, params * dtype_bytes)


def sampling_s(shape: ModelShape, roof: Roofline) -> float:
    """Greedy sampling: one pass over float32 logits of the vocabulary (or the labels)."""
    width = shape.n_labels if shape.encoder else shape.vocab
    return roof.time(float(width), 4.0 * width)


def sig(value: float, digits: int = 6) -> float:
    """``value`` rounded to ``digits`` significant digits, for compact, stable JSON.

    Examples
    --------
    >>> sig(0.000123456789)
    0.000123457
    """
    return float(f"{value:.{digits}g}")

"""``splitllm profile``: time the real blocks of a model shape with PyTorch (optional extra).

The blocks are written here in plain torch with random weights (nothing is downloaded):
the embedding, one decoder (or encoder) layer, and the head (final norm, LM head on the
last position, greedy sampling; for ``bert`` the pooler and a classifier). Every projection
runs as model code runs it: ``torch.nn.functional.linear`` with the weight stored
(out_features, in_features), as ``torch.nn.Linear`` holds it. Prefill runs
a whole prompt of ``n`` tokens at batch 1; a decode step runs one new token against a
real KV cache of ``context - 1`` cached tokens (concatenated as a dynamic cache does).
Each point is timed ``repeats`` times after ``warmup`` runs; the profile keeps the median.
``threads`` sets ``torch.set_num_threads`` for the run (restored afterwards); the
provenance records the thread count, the CPU model and its matrix flags (AVX-512, AMX).

Examples
--------
>>> from splitllm.instances.models import shape_from_config
>>> tiny = shape_from_config({"arch": "llama", "n_layers": 1, "hidden": 32, "n_heads": 4,
...     "n_kv_heads": 2, "ffn": 64, "vocab": 50, "max_context": 64}, name="tiny")
>>> p = measure_profile(tiny, tokens=[1, 8], contexts=[4, 16], warmup=0, repeats=1)  # doctest: +SKIP
>>> sorted(p.kinds)  # doctest: +SKIP
['embed', 'head', 'layer']
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from splitllm.errors import InputError, SplitLLMError
from splitllm.instances.models import ModelShape
from splitllm.instances.roofline import sig
from splitllm.profiles import Curve, KindCosts, Profile

DTYPES = ("float32", "float16", "bfloat16")


def _torch() -> Any:
    try:
        import torch
    except ModuleNotFoundError:
        raise SplitLLMError('splitllm profile needs torch: pip install -e ".[profile]"') from None
    return torch


class Blocks:
    """Random-weight embed, layer and head of ``shape`` as closures over torch tensors."""

    def __init__(self, shape: ModelShape, dtype: str, device: str, seed: int = 0) -> None:
        torch = _torch()
        self.torch, self.shape, self.device = torch, shape, device
        self.dtype = getattr(torch, dtype)
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        s, h = shape, shape.hidden
        # Weights as torch.nn.Linear holds them, (out_features, in_features), applied with
        # F.linear as real model code does; the embedding table is (vocab, hidden).
        self.w = {
            "embed": self._rand(s.vocab + s.learned_positions, h),
            "qkv": self._rand(h + 2 * s.kv_dim, h),
            "o": self._rand(h, h),
            "up": self._rand(s.ffn * (2 if s.gated_mlp else 1), h),
            "down": self._rand(h, s.ffn),
            "head": self._rand(s.head_gemm_params() // h, h) if not s.encoder else self._rand(h, h),
            "cls": self._rand(max(s.n_labels, 1), h),
        }
        self.norm_w = torch.ones(h, dtype=self.dtype, device=device)
        self.bias = {k: self._rand(v.shape[0]) for k, v in self.w.items() if s.biases and k in ("qkv", "o", "up", "down")}

    def _rand(self, *size: int) -> Any:
        t = self.torch.randn(*size, generator=self.gen, dtype=self.torch.float32) * 0.02
        return t.to(device=self.device, dtype=self.dtype)

    def tokens(self, n: int) -> Any:
        return self.torch.randint(0, self.shape.vocab, (1, n), generator=self.gen).to(self.device)

    def hidden(self, n: int) -> Any:
        return self._rand(1, n, self.shape.hidden)

    def kv_cache(self, context: int) -> tuple[Any, Any]:
        size = (1, self.shape.n_kv_heads, context, self.shape.head_dim)
        return self._rand(*size), self._rand(*size)

    def _linear(self, x: Any, name: str) -> Any:
        """``torch.nn.functional.linear`` with the (out, in) weight and the fused bias, if any."""
        return self.torch.nn.functional.linear(x, self.w[name], self.bias.get(name))

    def _norm(self, x: Any) -> Any:
        F = self.torch.nn.functional
        if self.shape.arch == "llama":
            return F.rms_norm(x, (self.shape.hidden,), self.norm_w, 1e-5)
        return F.layer_norm(x, (self.shape.hidden,), self.norm_w, None, 1e-5)

    def embed(self, ids: Any, start: int = 0) -> Any:
        F = self.torch.nn.functional
        x = F.embedding(ids, self.w["embed"])
        if self.shape.learned_positions:
            positions = self.torch.arange(start, start + ids.shape[1], device=self.device) + self.shape.vocab
            x = x + F.embedding(positions, self.w["embed"])
        return self._norm(x) if self.shape.encoder else x

    def _rope(self, x: Any, start: int) -> Any:
        torch, d = self.torch, x.shape[-1]
        rot = d if self.shape.arch == "llama" else min(32, d)
        half = rot // 2
        pos = torch.arange(start, start + x.shape[-2], device=self.device, dtype=torch.float32)
        freq = 10000.0 ** (-torch.arange(half, device=self.device, dtype=torch.float32) / half)
        ang = pos[:, None] * freq[None, :]
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        x1, x2, rest = x[..., :half], x[..., half:rot], x[..., rot:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)

    def _attention(self, x: Any, cache: tuple[Any, Any] | None) -> tuple[Any, tuple[Any, Any]]:
        torch, s = self.torch, self.shape
        n = x.shape[1]
        start = 0 if cache is None else cache[0].shape[2]
        q, k, v = self._linear(x, "qkv").split([s.hidden, s.kv_dim, s.kv_dim], dim=-1)
        q = q.view(1, n, s.n_heads, s.head_dim).transpose(1, 2)
        k = k.view(1, n, s.n_kv_heads, s.head_dim).transpose(1, 2)
        v = v.view(1, n, s.n_kv_heads, s.head_dim).transpose(1, 2)
        if s.arch in ("llama", "phi"):
            q, k = self._rope(q, start), self._rope(k, start)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        causal = not s.encoder and cache is None and n > 1
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=causal, enable_gqa=s.n_kv_heads != s.n_heads
        )
        return self._linear(out.transpose(1, 2).reshape(1, n, s.hidden), "o"), (k, v)

    def _mlp(self, x: Any) -> Any:
        F = self.torch.nn.functional
        up = self._linear(x, "up")
        if self.shape.gated_mlp:
            gate, up = up.chunk(2, dim=-1)
            return self._linear(F.silu(gate) * up, "down")
        return self._linear(F.gelu(up, approximate="tanh"), "down")

    def layer(self, x: Any, cache: tuple[Any, Any] | None = None) -> Any:
        """One layer in the shape's arrangement (pre-norm, parallel, or post-norm)."""
        arch = self.shape.arch
        if arch == "bert":
            x = self._norm(x + self._attention(x, None)[0])
            return self._norm(x + self._mlp(x))
        if arch == "phi":
            h = self._norm(x)
            return x + self._attention(h, cache)[0] + self._mlp(h)
        x = x + self._attention(self._norm(x), cache)[0]
        return x + self._mlp(self._norm(x))

    def head(self, x: Any) -> Any:
        """Final norm on every position, then LM head and greedy sampling on the last."""
        torch = self.torch
        if self.shape.encoder:
            pooled = torch.tanh(self._linear(x[:, 0], "head"))
            return self._linear(pooled, "cls").argmax(dim=-1)
        last = self._norm(x)[:, -1]
        return self._linear(last, "head").float().argmax(dim=-1)


#: ``--clock`` choices: wall time, or the CPU time of this process (one thread only).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_median(
    run: Callable[[], Any], warmup: int, repeats: int, sync: Callable[[], None], clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median seconds (by ``clock``) of ``run()`` over ``repeats`` timed calls after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        sync()
        times.append(clock() - start)
    return statistics.median(times)


def measure_kinds(
    blocks: Blocks, tokens: Sequence[int], contexts: Sequence[int], warmup: int, repeats: int, clock: str = "wall"
) -> dict[str, KindCosts]:
    """Prefill over ``tokens`` and decode steps over ``contexts`` for embed, layer and head."""
    torch = blocks.torch
    sync = torch.cuda.synchronize if blocks.device.startswith("cuda") else (lambda: None)
    timed = lambda f: sig(time_median(f, warmup, repeats, sync, CLOCKS[clock]))  # noqa: E731
    prefill: dict[str, list[list[float]]] = {"embed": [], "layer": [], "head": []}
    decode: dict[str, list[list[float]]] = {"embed": [], "layer": [], "head": []}
    with torch.inference_mode():
        for n in tokens:
            ids, x = blocks.tokens(n), blocks.hidden(n)
            prefill["embed"].append([n, timed(lambda: blocks.embed(ids))])
            prefill["layer"].append([n, timed(lambda: blocks.layer(x))])
            prefill["head"].append([n, timed(lambda: blocks.head(x))])
        if blocks.shape.encoder:  # no decode: an encoder answers in one pass
            decode = {kind: [[1, 0.0]] for kind in decode}
        for c in [] if blocks.shape.encoder else contexts:
            ids, x, cache = blocks.tokens(1), blocks.hidden(1), blocks.kv_cache(c - 1)
            decode["embed"].append([c, timed(lambda: blocks.embed(ids, c - 1))])
            decode["layer"].append([c, timed(lambda: blocks.layer(x, cache))])
            decode["head"].append([c, timed(lambda: blocks.head(x))])
    return {k: KindCosts(monotone(prefill[k]), monotone(decode[k])) for k in prefill}


CLOCK_NOTES = {
    "wall": "wall-clock time. ",
    "cpu": "timed as the CPU time of the process (--clock cpu; one torch thread): the time other processes held "
    "the core is left out, so on a shared machine it is close to the wall time on an idle one; contention for "
    "caches and memory bandwidth is not left out. ",
}
MONOTONE_NOTE = (
    "Curves made non-decreasing (running maximum of the medians): a longer prompt or context is never cheaper, "
    "and noise must not make the extrapolation fall. "
)


def monotone(points: list[list[float]]) -> Curve:
    """The curve through ``points`` with each y raised to the largest y before it.

    Examples
    --------
    >>> monotone([[1, 2.0], [2, 1.0], [3, 3.0]]).to_points()
    [[1.0, 2.0], [2.0, 2.0], [3.0, 3.0]]
    """
    out, top = [], 0.0
    for x, y in points:
        top = max(top, y)
        out.append([x, top])
    return Curve.from_points(out)


def _cpuinfo() -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty if unreadable)."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (or ``platform.processor()``)."""
    return _cpuinfo().get("model name") or platform.processor() or "unknown CPU"


#: CPU flags that decide which matrix kernels a CPU build of PyTorch can use.
MATRIX_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_description(flags: str | None = None, info: dict[str, str] | None = None) -> str:
    """Model name, family/model numbers and matrix-related flags of the CPU.

    Examples
    --------
    >>> cpu_description("fpu avx2 fma avx512f avx512_bf16", {"model name": "AMD EPYC", "cpu family": "25", "model": "17"})
    'AMD EPYC (family 25, model 17; flags avx2 fma avx512f avx512_bf16; no AMX)'
    """
    info = _cpuinfo() if info is None else info
    have = set((info.get("flags", "") if flags is None else flags).split())
    listed = [f for f in MATRIX_FLAGS if f in have]
    amx = "AMX" if any(f.startswith("amx") for f in have) else "no AMX"
    family = f"family {info['cpu family']}, model {info['model']}; " if "cpu family" in info and "model" in info else ""
    name = info.get("model name") or platform.processor() or "unknown CPU"
    return f"{name} ({family}flags {' '.join(listed) or 'none of ' + ', '.join(MATRIX_FLAGS)}; {amx})"


def device_description(device: str) -> str:
    """Human description of the torch device: the GPU name, or the CPU with its flags and count."""
    torch = _torch()
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    import os

    return f"{cpu_description()}, {os.cpu_count()} logical CPUs"


def _load_average() -> str:
    """The 1-minute load average (other processes disturb CPU timings), or ``"unknown"``."""
    import os

    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def check_grid(values: Sequence[int], option: str, limit: int) -> list[int]:
    """Strictly increasing integers in ``[1, limit]``."""
    grid = list(values)
    if not grid or any(v < 1 or v > limit for v in grid) or any(b <= a for a, b in zip(grid, grid[1:])):
        raise InputError(option, f"must be increasing integers between 1 and {limit}, got {grid}")
    return grid


def measure_profile(
    shape: ModelShape,
    *,
    tokens: Sequence[int],
    contexts: Sequence[int],
    dtype: str = "float32",
    device: str = "cpu",
    name: str = "",
    warmup: int = 1,
    repeats: int = 3,
    command: str = "",
    seed: int = 0,
    threads: int | None = None,
    clock: str = "wall",
) -> Profile:
    """Measure ``shape`` and return its profile (``source`` ``measured``) with provenance."""
    if dtype not in DTYPES:
        raise InputError("--dtype", f"must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if not (device == "cpu" or device.startswith("cuda")):
        raise InputError("--device", f"must be cpu or cuda[:N], got {device!r}")
    if repeats < 1 or warmup < 0:
        raise InputError("--repeats", "repeats must be >= 1 and warmup >= 0")
    torch = _torch()
    if threads is not None and threads < 1:
        raise InputError("--threads", f"must be >= 1, got {threads}")
    if clock not in CLOCKS:
        raise InputError("--clock", f"must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and (device != "cpu" or threads != 1):
        raise InputError("--clock", "cpu time measures one thread's latency only: it needs --device cpu and --threads 1")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device", "CUDA is not available to this PyTorch")
    tokens = check_grid(tokens, "--tokens", shape.max_context)
    contexts = check_grid(contexts, "--contexts", shape.max_context)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        used_threads = torch.get_num_threads()
        load = _load_average()
        start = time.perf_counter()
        kinds = measure_kinds(Blocks(shape, dtype, device, seed), tokens, contexts, warmup, repeats, clock)
        elapsed = time.perf_counter() - start
        load_after = _load_average()
    finally:
        torch.set_num_threads(previous_threads)
    threads_note = f"set by --threads {threads}" if threads is not None else "PyTorch's default"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    provenance = (
        f"Measured by `splitllm profile` on {device_description(device)}, torch threads {used_threads} ({threads_note}), "
        f"PyTorch {torch.__version__}, "
        f"{platform.system()} {platform.machine()}, {when}, in {elapsed:.0f} s, 1-minute load average {load} before and {load_after} after the run (it counts this run too; above the CPU count, other processes competed for the CPUs and the timings are slower than on an idle machine). Model shape {shape.name} "
        f"({shape.arch}: {shape.n_layers} layers, hidden {shape.hidden}, {shape.n_heads} heads, {shape.n_kv_heads} "
        f"KV heads, MLP {shape.ffn}, vocab {shape.vocab}), random weights, {dtype}, batch 1; blocks written in plain "
        "torch (splitllm.instances.profiler) as model code runs them: torch.nn.functional.linear with "
        "(out_features, in_features) weights for the QKV, output, MLP and head projections, F.embedding, "
        "F.scaled_dot_product_attention; embed, one layer, head (final norm on every position, LM head and "
        "greedy sampling on the last; bert: pooler and classifier). Prefill: a whole prompt of n tokens; decode: "
        f"one token against a KV cache of context - 1 tokens. Median of {repeats} runs after {warmup} warm-up, "
        + CLOCK_NOTES[clock]
        + MONOTONE_NOTE
        + ("Encoder: no decode (curves are 0; use output_tokens = 1). " if shape.encoder else "")
        + (f"Command: {command}" if command else "")
    )
    if not all(math.isfinite(p[1]) for c in kinds.values() for p in c.prefill.to_points()):
        raise SplitLLMError("a timing was not finite")
    return Profile(name or f"{device}-{shape.name}", shape.name, dtype, 1, "measured", provenance.strip(), kinds)


def compare_layouts(
    shape: ModelShape,
    *,
    tokens: Sequence[int],
    dtype: str = "float32",
    warmup: int = 2,
    repeats: int = 7,
    threads: int | None = None,
    seed: int = 0,
    clock: str = "wall",
) -> list[tuple[int, float, float]]:
    """Seconds of one layer's projections (QKV, output, MLP up and down) on CPU, two ways.

    For each ``n`` in ``tokens``: ``(n, x @ W with W stored (in, out), F.linear(x, W) with
    W stored (out, in))``, each the median over ``repeats`` rounds of the summed seconds of
    the four projections. The two ways alternate within each round, so both see the same
    load on a shared machine; ``clock="cpu"`` (with ``threads=1``) times process CPU time
    instead of wall time. The same products; only the weight layout and the call differ. The profiler times the second, which is what model code runs.
    """
    torch = _torch()
    F = torch.nn.functional
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)

    timer = CLOCKS[clock]

    def seconds(run: Callable[[], Any]) -> float:
        start = timer()
        run()
        return timer() - start

    try:
        blocks = Blocks(shape, dtype, "cpu", seed)
        out_in = [blocks.w[name] for name in ("qkv", "o", "up", "down")]
        in_out = [w.t().contiguous() for w in out_in]
        rows = []
        with torch.inference_mode():
            for n in tokens:
                xs = [blocks._rand(1, n, w.shape[1]) for w in out_in]
                rounds: list[tuple[float, float]] = []
                for i in range(warmup + repeats):
                    matmul = linear = 0.0
                    for x, a, b in zip(xs, in_out, out_in):
                        matmul += seconds(lambda: x @ a)  # noqa: B023
                        linear += seconds(lambda: F.linear(x, b))  # noqa: B023
                    if i >= warmup:
                        rounds.append((matmul, linear))
                rows.append((n, statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)))
        return rows
    finally:
        torch.set_num_threads(previous)

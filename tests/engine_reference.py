"""An independent reference for the engines' schedules on identical requests, written apart
from the serving simulator: the tests check that the simulator (the package's one model of
the engines, which the fidelity comparison runs) schedules exactly these iterations.

* :func:`trt_schedule`: TensorRT-LLM's ``GUARANTEED_NO_EVICT`` on identical requests: waves.
* :func:`vllm_schedule`: vLLM's scheduler (0.4-era defaults, no chunked prefill), closed form
  of its admission, block growth and preemption on identical requests.
"""

from __future__ import annotations

import bisect

import numpy as np

Iteration = tuple[np.ndarray, np.ndarray]  # (q, context) of the items one iteration schedules


def trt_schedule(batch: int, length: int, capacity_tokens: int) -> list[Iteration]:
    """TensorRT-LLM's default capacity policy (``GUARANTEED_NO_EVICT``) on ``batch`` identical requests.

    A request is admitted only when its whole ``input + output`` tokens can be reserved, so
    ``w = capacity // (2 * length)`` run at once; identical requests finish together, so they
    run in waves of ``w``: one prefill iteration, then ``length - 1`` decode iterations.

    Examples
    --------
    >>> [len(it[0]) for it in trt_schedule(5, 2, 9)][:4]  # two requests of 4 tokens fit in 9
    [2, 2, 2, 2]
    >>> len(trt_schedule(5, 2, 9))  # 3 waves of 2 iterations
    6
    """
    width = max(1, min(batch, capacity_tokens // (2 * length)))
    out: list[Iteration] = []
    left = batch
    while left > 0:
        m = min(width, left)
        out.append((np.full(m, float(length)), np.zeros(m)))
        out += [(np.ones(m), np.full(m, float(length + k))) for k in range(length - 1)]
        left -= m
    return out


def vllm_schedule(
    batch: int, length: int, blocks: int, block: int = 16, max_tokens: int = 4096, max_seqs: int = 256, watermark: float = 0.01,
) -> list[Iteration]:
    """vLLM's scheduler (0.4-era defaults, no chunked prefill) on ``batch`` identical requests.

    Each iteration first admits waiting requests in arrival order while their prompt fits in
    ``max_tokens`` batched tokens, ``max_seqs`` sequences and the free KV blocks less a
    ``watermark`` share; if any is admitted, the iteration is their prefill alone. Otherwise
    every running request decodes one token, in arrival order, while a block is free
    (``can_append_slot``, whether or not it needs one); when none is, it preempts the
    latest-arrived running request (recompute: its blocks are freed and it waits again, to
    prefill its prompt and the tokens it had generated), or itself when it is the last;
    a token that crosses a block boundary takes the free block.

    Examples
    --------
    >>> its = vllm_schedule(2, 4, blocks=100, block=4)
    >>> [(q.tolist(), c.tolist()) for q, c in its]
    [([4.0, 4.0], [0.0, 0.0]), ([1.0, 1.0], [4.0, 4.0]), ([1.0, 1.0], [5.0, 5.0]), ([1.0, 1.0], [6.0, 6.0])]
    >>> its = vllm_schedule(2, 4, blocks=3, block=4, watermark=0.0)  # one request's growth evicts the other
    >>> [len(q) for q, _ in its]
    [2, 1, 1, 1, 1, 1, 1]
    """  # fmt: skip
    gen = [0] * batch  # tokens generated so far
    held = [0] * batch  # KV blocks held
    waiting = list(range(batch))  # arrival order = index
    running: list[int] = []
    free = blocks
    mark = int(watermark * blocks)
    out: list[Iteration] = []
    guard = 0
    while waiting or running:
        guard += 1
        if guard > 50 * batch * (2 * length + 2):
            raise ValueError(f"vLLM schedule does not progress with {blocks} blocks for {2 * length}-token requests")
        admitted: list[int] = []
        tokens = 0
        while waiting:
            i = waiting[0]
            n = length + gen[i]
            need = -(-n // block)
            if tokens + n > max_tokens or len(running) + len(admitted) >= max_seqs or free - need < mark:
                break
            waiting.pop(0)
            free -= need
            held[i] = need
            tokens += n
            admitted.append(i)
        if not admitted and not running and waiting:  # a prompt that can never fit
            raise ValueError(f"{blocks} KV blocks cannot hold one {length + gen[waiting[0]]}-token prompt")
        if admitted:
            out.append((np.array([float(length + gen[i]) for i in admitted]), np.zeros(len(admitted))))
            for i in admitted:
                gen[i] += 1
                if gen[i] >= length:
                    free += held[i]
                    held[i] = 0
                else:
                    bisect.insort(running, i)
            continue
        queue = list(running)
        scheduled: list[int] = []
        while queue:
            i = queue.pop(0)
            need = -(-(length + gen[i]) // block) - held[i]
            while free < 1 and queue:  # can_append_slot: one free block per running sequence
                victim = queue.pop()
                free += held[victim]
                held[victim] = 0
                running.remove(victim)
                bisect.insort(waiting, victim)
            if free < 1:  # nobody left to evict: preempt itself
                free += held[i]
                held[i] = 0
                running.remove(i)
                bisect.insort(waiting, i)
                continue
            free -= need
            held[i] += need
            scheduled.append(i)
        if scheduled:
            out.append((np.ones(len(scheduled)), np.array([float(length + gen[i] - 1) for i in scheduled])))
        for i in scheduled:
            gen[i] += 1
            if gen[i] >= length:
                free += held[i]
                held[i] = 0
                running.remove(i)
    return out

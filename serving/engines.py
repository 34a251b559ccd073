"""Serving engines: which items share an iteration.

* ``vllm`` (vLLM's default scheduler without chunked prefill): prefill first. When a
  prefill is ready, the iteration runs the ready prefills only (whole prompts) and the
  decode steps wait one iteration; otherwise it runs every ready decode step.
* ``tensorrt-llm`` (in-flight batching): every ready item, prefills and decode steps
  together, in one iteration.

With a token budget (``chunk``), both engines run chunked prefill: every ready decode step,
then prefill chunks in arrival order while the iteration holds fewer than ``chunk`` tokens
(a prompt longer than the rest of the budget is cut; its next chunk goes in a later
iteration). Each engine also has its own per-iteration overhead (in its tables).

>>> ENGINES["vllm"].mixes
False
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Engine:
    """Scheduling rules of one engine: ``mixes`` = prefills and decode steps share an iteration."""

    name: str
    mixes: bool
    description: str


ENGINES = {
    "vllm": Engine("vllm", False, "prefill-first iterations (whole prompts); decode steps wait while a prefill runs"),
    "tensorrt-llm": Engine("tensorrt-llm", True, "in-flight batching: prefills and decode steps in the same iteration"),
}

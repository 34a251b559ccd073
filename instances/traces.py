"""Request lengths from real production traces, shipped as a compact sample.

``instances/data/lengths.json`` holds, per trace, a fixed random sample of (prompt tokens,
output tokens) pairs: the joint distribution of real requests, small enough to ship. It
is built by ``splitllm traces import DATA_DIR`` from

* ``azure-conv``, ``azure-code``: Azure LLM inference trace 2023 (Patel et al.,
  "Splitwise", ISCA 2024; github.com/Azure/AzurePublicDataset, CC-BY-4.0),
* ``mooncake``: Mooncake conversation trace (Qin et al., "Mooncake", FAST 2025;
  github.com/kvcache-ai/Mooncake, Apache-2.0),

and the generator draws request lengths from it with replacement.

Examples
--------
>>> sorted(load_lengths())
['azure-code', 'azure-conv', 'mooncake']
>>> len(load_lengths()["azure-conv"]) >= 100
True
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from splitllm.errors import InputError
from splitllm.jsonio import read_json, write_atomic

SAMPLE_SIZE = 512
SAMPLE_SEED = 20240501
SOURCES = {
    "azure-conv": (
        "azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv",
        "Azure LLM inference trace 2023, conversation (19,366 requests, one hour, 2023-11-16); Patel et al., "
        "'Splitwise: Efficient Generative LLM Inference Using Phase Splitting', ISCA 2024; "
        "github.com/Azure/AzurePublicDataset commit b469a113cedca53ddc3bdea71a143dc4b7d8700c; CC-BY-4.0.",
    ),
    "azure-code": (
        "azure-llm-inference-2023/AzureLLMInferenceTrace_code.csv",
        "Azure LLM inference trace 2023, code (8,819 requests, one hour, 2023-11-16); Patel et al., ISCA 2024; "
        "github.com/Azure/AzurePublicDataset commit b469a113cedca53ddc3bdea71a143dc4b7d8700c; CC-BY-4.0.",
    ),
    "mooncake": (
        "mooncake/conversation_trace.jsonl",
        "Mooncake conversation trace (12,031 requests from Kimi, one hour); Qin et al., 'Mooncake: A "
        "KVCache-centric Disaggregated Architecture for LLM Serving', FAST 2025; github.com/kvcache-ai/Mooncake "
        "commit 3b5a594133958449a1feaf1c9e0fc1b553e34a28; Apache-2.0 (the repository's licence).",
    ),
}


def lengths_path() -> Path:
    return Path(str(resources.files("splitllm.instances").joinpath("data/lengths.json")))


def read_trace(data_dir: Path, name: str) -> np.ndarray:
    """All (prompt, output) pairs of one trace as an ``(n, 2)`` integer array."""
    path = Path(data_dir) / SOURCES[name][0]
    if not path.is_file():
        raise InputError(str(path), "no such file")
    with path.open(newline="") as handle:
        if path.suffix == ".jsonl":
            pairs = [(r["input_length"], r["output_length"]) for r in map(json.loads, handle)]
        else:
            pairs = [(int(r["ContextTokens"]), int(r["GeneratedTokens"])) for r in csv.DictReader(handle)]
    return np.array([p for p in pairs if p[0] >= 1 and p[1] >= 1], dtype=np.int64)


def build_lengths(data_dir: Path) -> dict[str, Any]:
    """The shipped JSON object: per trace, ``SAMPLE_SIZE`` pairs drawn without replacement."""
    rng = np.random.default_rng(SAMPLE_SEED)
    traces = {}
    for name, (rel, credit) in SOURCES.items():
        pairs = read_trace(data_dir, name)
        pick = np.sort(rng.choice(len(pairs), size=min(SAMPLE_SIZE, len(pairs)), replace=False))
        traces[name] = {"source": credit, "file": rel, "population": int(len(pairs)), "pairs": pairs[pick].tolist()}
    return {
        "format": "splitllm/lengths",
        "description": f"(prompt_tokens, output_tokens) of {SAMPLE_SIZE} requests per trace, drawn uniformly without "
        f"replacement (numpy default_rng({SAMPLE_SEED})) by `splitllm traces import`.",
        "traces": traces,
    }


def write_lengths(data: dict[str, Any], path: Path) -> None:
    """Compact JSON: one trace's pairs on one line each."""
    lines = ["{", f'  "format": {json.dumps(data["format"])},', f'  "description": {json.dumps(data["description"])},', '  "traces": {']
    names = list(data["traces"])
    for i, name in enumerate(names):
        t = data["traces"][name]
        lines += [
            f"    {json.dumps(name)}: {{",
            f'      "source": {json.dumps(t["source"])},',
            f'      "file": {json.dumps(t["file"])},',
            f'      "population": {t["population"]},',
            f'      "pairs": {json.dumps(t["pairs"], separators=(",", ":"))}',
            "    }" + ("," if i < len(names) - 1 else ""),
        ]
    write_atomic(path, "\n".join(lines + ["  }", "}"]) + "\n")


def load_lengths(path: Path | None = None) -> dict[str, np.ndarray]:
    """Trace name -> ``(n, 2)`` array of (prompt, output) pairs from the shipped sample."""
    data = read_json(path or lengths_path())
    return {name: np.array(t["pairs"], dtype=np.int64) for name, t in data["traces"].items()}

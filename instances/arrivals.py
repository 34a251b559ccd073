"""Real request arrivals: timestamps and lengths of whole traces, shipped compactly.

``instances/data/arrivals.json.gz`` holds, per trace, every request of its hour as
``[milliseconds since the trace's first request, prompt tokens, output tokens]``, in
arrival order (Azure's timestamps rounded to the millisecond; Mooncake's are already in
milliseconds). Built by ``python -m splitllm.instances.arrivals DATA_DIR`` from the same
files as :mod:`splitllm.instances.traces` (sources and licences there and in
``instances/data/arrivals.md``); the build is deterministic (no sampling).

Examples
--------
>>> trace = load_arrivals("azure-conv")
>>> float(trace.times_s[0]), len(trace.times_s) > 19000, bool((trace.lengths >= 1).all())
(0.0, True, True)
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.errors import InputError
from splitllm.instances.traces import SOURCES
from splitllm.jsonio import atomic_path


@dataclass(frozen=True)
class Arrivals:
    """One trace: arrival times (s from its first request) and ``(n, 2)`` (prompt, output) lengths."""

    name: str
    times_s: NDArray[np.float64]
    lengths: NDArray[np.int64]
    source: str

    @property
    def rate(self) -> float:
        """Mean arrival rate, requests per second, over the trace's span."""
        span = float(self.times_s[-1] - self.times_s[0])
        return len(self.times_s) / span if span > 0 else float("inf")


def arrivals_path() -> Path:
    return Path(str(resources.files("splitllm.instances").joinpath("data/arrivals.json.gz")))


def read_arrivals(data_dir: Path, name: str) -> list[list[int]]:
    """``[ms offset, prompt, output]`` of every request of one trace file (lengths >= 1 kept)."""
    path = Path(data_dir) / SOURCES[name][0]
    if not path.is_file():
        raise InputError(str(path), "no such file")
    rows: list[tuple[float, int, int]] = []
    with path.open(newline="") as handle:
        if path.suffix == ".jsonl":
            rows = [(float(r["timestamp"]), int(r["input_length"]), int(r["output_length"])) for r in map(json.loads, handle)]
        else:
            for r in csv.DictReader(handle):
                stamp = datetime.fromisoformat(r["TIMESTAMP"][:26])  # 7 fraction digits -> microseconds
                rows.append((stamp.timestamp() * 1e3, int(r["ContextTokens"]), int(r["GeneratedTokens"])))
    rows = sorted(row for row in rows if row[1] >= 1 and row[2] >= 1)
    t0 = rows[0][0]
    return [[int(round(t - t0)), p, o] for t, p, o in rows]


def build_arrivals(data_dir: Path) -> dict[str, Any]:
    """The shipped object: every trace of :data:`~splitllm.instances.traces.SOURCES`, whole."""
    return {
        "format": "splitllm/arrivals",
        "description": "[ms since the first request, prompt tokens, output tokens] of every request, in arrival order",
        "traces": {name: {"source": credit, "file": rel, "requests": read_arrivals(data_dir, name)} for name, (rel, credit) in SOURCES.items()},
    }


def write_arrivals(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, separators=(",", ":")).encode()
    with atomic_path(path) as tmp:
        with gzip.GzipFile(tmp, "wb", mtime=0) as handle:  # mtime 0: the same data gives the same bytes
            handle.write(text)


def load_arrivals(name: str, path: Path | None = None) -> Arrivals:
    """The shipped trace ``name`` (``azure-conv``, ``azure-code``, ``mooncake``)."""
    with gzip.open(path or arrivals_path(), "rt", encoding="utf-8") as handle:
        traces = json.load(handle)["traces"]
    if name not in traces:
        raise InputError("--trace", f"unknown trace {name!r}; known: {', '.join(traces)}")
    rows = np.array(traces[name]["requests"], dtype=np.int64)
    return Arrivals(name, rows[:, 0] / 1e3, rows[:, 1:], traces[name]["source"])


if __name__ == "__main__":  # python -m splitllm.instances.arrivals DATA_DIR
    write_arrivals(build_arrivals(Path(sys.argv[1])), arrivals_path())

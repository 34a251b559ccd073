"""The instance generator: model + server + client mix + real request lengths -> instance JSON.

Everything random comes from one ``numpy.random.default_rng(seed)``, and the output is
rounded to 6 significant digits, so the same arguments give a byte-identical file.

* **clients**: classes with a device (a bundled profile), memory, uplink, downlink, RTT
  and a share of the requests; each request draws its class by share.
* **lengths**: (prompt, output) pairs drawn from a shipped trace sample
  (:mod:`splitllm.instances.traces`), clipped to the model's context: the output to a
  quarter of it, the prompt to the rest (an encoder answers with one token).
* **SLO**: per metric, an absolute number of seconds (``"2"``) or a factor of the
  request's all-server figure (``"3x"``). An absolute limit below the all-server figure
  is raised to 1.05 x that figure so that every request stays servable.
* **capacity**: seconds or bytes, or a percentage of the all-server total (``"60%"``).

Examples
--------
>>> data = generate_instance(requests=5, seed=3)
>>> data["model"]["name"], len(data["requests"]), data["server"]["device"]
('llama-2-7b', 5, 'a100-80gb')
>>> generate_instance(requests=5, seed=3) == data
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitllm.errors import InputError, InputErrors, SplitLLMError
from splitllm.evaluator import request_metrics
from splitllm.instance import parse_instance
from splitllm.instances.bundled import bundled_json, list_bundled
from splitllm.instances.models import get_shape
from splitllm.instances.roofline import sig
from splitllm.instances.traces import load_lengths
from splitllm.jsonio import write_atomic

GIB, MBIT = 2**30, 1e6 / 8
SLO_RAISE = 1.05


@dataclass(frozen=True)
class ClientClass:
    """One class of client devices and its network link; ``share`` of the requests."""

    name: str
    device: str
    memory_bytes: float
    uplink_bytes_per_s: float
    downlink_bytes_per_s: float
    rtt_s: float
    share: float

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "memory_bytes": sig(self.memory_bytes),
            "uplink_bytes_per_s": sig(self.uplink_bytes_per_s),
            "downlink_bytes_per_s": sig(self.downlink_bytes_per_s),
            "rtt_s": sig(self.rtt_s),
        }


#: Default client mix: (class, device, memory, uplink, downlink, RTT, share). Wi-Fi laptops
#: 50/200 Mbit/s with 30 ms RTT; wired desktops 100/500 Mbit/s with 15 ms. Classes whose
#: device has no bundled profile for the chosen model are left out.
DEFAULT_CLIENTS = (
    ClientClass("laptop-m1-max", "apple-m1-max", 8 * GIB, 50 * MBIT, 200 * MBIT, 0.030, 0.35),
    ClientClass("laptop-m1", "apple-m1-q4", 4 * GIB, 50 * MBIT, 200 * MBIT, 0.030, 0.25),
    ClientClass("desktop-4090", "rtx-4090", 16 * GIB, 100 * MBIT, 500 * MBIT, 0.015, 0.25),
    ClientClass("cpu-box", "cpu-epyc-2core", 8 * GIB, 100 * MBIT, 500 * MBIT, 0.015, 0.15),
)
DEFAULT_SLO = {"ttft_s": "2", "tpot_s": "0.1"}
UNITS = {
    "memory_bytes": {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2**10, "mib": 2**20, "gib": GIB},
    "bandwidth": {"": 1, "bps": 1 / 8, "kbps": 1e3 / 8, "mbps": MBIT, "gbps": 1e9 / 8, "b/s": 1, "mb/s": 1e6},
    "rtt_s": {"": 1, "s": 1, "ms": 1e-3},
}
CLIENT_KEYS = {"mem": "memory_bytes", "up": "bandwidth", "down": "bandwidth", "rtt": "rtt_s", "share": ""}


def _number(text: str, units: dict[str, float], option: str) -> float:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([a-z/]*)\s*", text.lower())
    if not match or match.group(2) not in units:
        raise InputError(option, f"cannot read {text!r}; units: {', '.join(u for u in units if u) or 'none'}")
    return float(match.group(1)) * units[match.group(2)]


def parse_client(spec: str) -> ClientClass:
    """``NAME=DEVICE,mem=8GiB,up=50Mbps,down=200Mbps,rtt=30ms,share=0.4`` -> :class:`ClientClass`.

    Examples
    --------
    >>> parse_client("phone=apple-m1-q4,mem=4GiB,up=20Mbps,down=100Mbps,rtt=40ms,share=1").uplink_bytes_per_s
    2500000.0
    """
    head, _, rest = spec.partition(",")
    name, _, device = head.partition("=")
    if not name or not device:
        raise InputError("--client", f"must start with NAME=DEVICE, got {spec!r}")
    values: dict[str, float] = {}
    for pair in filter(None, rest.split(",")):
        key, _, raw = pair.partition("=")
        if key not in CLIENT_KEYS:
            raise InputError(f"--client {name}", f"unknown key {key!r}; keys: {', '.join(CLIENT_KEYS)}")
        units = UNITS.get(CLIENT_KEYS[key], {"": 1})
        values[key] = _number(raw, units, f"--client {name}.{key}")
    missing = sorted(set(CLIENT_KEYS) - set(values))
    if missing:
        raise InputError(f"--client {name}", f"missing {', '.join(missing)}")
    return ClientClass(name, device, values["mem"], values["up"], values["down"], values["rtt"], values["share"])


def parse_limit(text: str | float, option: str) -> tuple[float, bool]:
    """``"2.5"`` -> ``(2.5, False)`` (absolute); ``"3x"`` -> ``(3.0, True)`` (factor); ``"60%"`` -> ``(0.6, True)``."""
    raw = str(text).strip().lower()
    scale = {"x": 1.0, "%": 0.01}.get(raw[-1:], None) if raw else None
    try:
        value = float(raw[:-1] if scale else raw) * (scale or 1.0)
    except ValueError:
        raise InputError(option, f"must be a number, NUMBERx or NUMBER%, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise InputError(option, f"must be finite and >= 0, got {text!r}")
    return value, scale is not None


def default_clients(model: str) -> list[ClientClass]:
    """The default mix restricted to devices with a bundled profile for ``model``."""
    have = {d for d, m in list_bundled() if m == model}
    chosen = [c for c in DEFAULT_CLIENTS if c.device in have]
    if not chosen:
        raise InputError("--client", f"no default client device has a profile for {model!r}; give --client")
    return chosen


def _check_clients(clients: Sequence[ClientClass]) -> np.ndarray:
    shares = np.array([c.share for c in clients], dtype=float)
    names = [c.name for c in clients]
    if len(set(names)) != len(names):
        raise InputError("--client", f"client names must be unique, got {names}")
    if not np.all(np.isfinite(shares)) or np.any(shares < 0) or shares.sum() <= 0:
        raise InputError("--client", f"shares must be >= 0 and not all 0, got {shares.tolist()}")
    for c in clients:
        if c.uplink_bytes_per_s <= 0 or c.downlink_bytes_per_s <= 0:
            raise InputError(f"--client {c.name}", "bandwidths must be > 0")
    return shares / shares.sum()


def draw_lengths(rng: np.random.Generator, trace: str, n: int, model: str) -> np.ndarray:
    """``n`` (prompt, output) pairs from ``trace``, clipped to the model's context."""
    traces = load_lengths()
    if trace not in traces:
        raise InputError("--trace", f"unknown trace {trace!r}; known: {', '.join(traces)}")
    shape = get_shape(model)
    pairs = traces[trace][rng.integers(0, len(traces[trace]), size=n)].copy()
    if shape.encoder:
        pairs[:, 1] = 1
        pairs[:, 0] = np.minimum(pairs[:, 0], shape.max_context)
    else:
        pairs[:, 1] = np.minimum(pairs[:, 1], shape.max_context // 4)
        pairs[:, 0] = np.minimum(pairs[:, 0], shape.max_context - pairs[:, 1])
    return pairs


def apply_slo(data: dict[str, Any], slo: dict[str, str | float], option: str | None = None) -> None:
    """Set every request's SLO from the policy and its all-server figures (a bad value is
    named by ``option`` and its key, by default by the key's own option, ``--ttft`` ...)."""
    inst = parse_instance(data)
    rows = np.arange(inst.n_requests)
    metrics = request_metrics(inst.arrays, rows, np.ones((inst.n_requests, inst.n_blocks), dtype=bool))
    reference = {"ttft_s": metrics.ttft, "tpot_s": metrics.tpot, "e2e_s": metrics.e2e}
    for key, spec in slo.items():
        if key not in reference:
            raise InputError(option or "--slo", f"unknown SLO {key!r}; known: {', '.join(reference)}")
        named = f"{option} {key}" if option else f"--{key.replace('_s', '')}"
        value, relative = parse_limit(spec, named)
        for request, base in zip(data["requests"], reference[key]):
            if np.isnan(base):  # no TPOT when o = 1
                continue
            limit = value * base if relative else max(value, SLO_RAISE * base)
            if not limit <= MAX_SLO_S:
                raise InputError(named, f"gives request {request['id']!r} a limit of {limit:.3g} s, past the {MAX_SLO_S:g} s an SLO may be")
            request.setdefault("slo", {})[key] = sig(float(limit))


def _apply_capacity(data: dict[str, Any], work: str | float | None, kv: str | float | None) -> None:
    """Server capacities, absolute or as a share of the all-server totals."""
    if work is None and kv is None:
        return
    arrays = parse_instance(data).arrays
    for key, spec, total in (("work_capacity_s", work, arrays.work.sum()), ("kv_capacity_bytes", kv, arrays.kv.sum())):
        if spec is not None:
            option = f"--{key.split('_')[0]}-capacity"
            value, relative = parse_limit(spec, option)
            data["server"][key] = sig(float(value * total if relative else value))
            try:  # the format's range, named by the option that set it
                parse_instance({**data, "requests": data["requests"][:1]})
            except SplitLLMError as exc:
                first = exc.errors[0] if isinstance(exc, InputErrors) else exc
                if isinstance(first, InputError) and first.path == f"server.{key}":
                    raise InputError(option, first.message) from None
                raise


#: Most requests one generated instance holds (its file, about 130 bytes a request, stays
#: far below the largest file the loader reads).
MAX_REQUESTS = 2_000_000
#: Largest SLO in seconds (the instance format's bound on seconds).
MAX_SLO_S = 1e6


def check_seed(seed: int, option: str = "--seed") -> None:
    """Refuse a seed numpy's generators do not take (negative)."""
    if seed < 0:
        raise InputError(option, f"must be an integer >= 0, got {seed}")


def generate_instance(
    *,
    model: str = "llama-2-7b",
    server: str = "a100-80gb",
    clients: Sequence[ClientClass] | None = None,
    requests: int = 50,
    trace: str = "azure-conv",
    slo: dict[str, str | float] | None = None,
    work_capacity: str | float | None = None,
    kv_capacity: str | float | None = None,
    objective: str = "min_server_work",
    seed: int = 0,
    dtype: str = "float16",
    name: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """A valid instance (docs/formats.md) as a dict; see the module docstring for each option.

    The used device profiles are embedded under ``devices``.
    """
    shape = get_shape(model)
    if not 1 <= requests <= MAX_REQUESTS:
        raise InputError("--requests", f"must be an integer from 1 to {MAX_REQUESTS:,}, got {requests}")
    check_seed(seed)
    if objective not in ("min_server_work", "max_admitted"):
        raise InputError("--objective", f"must be min_server_work or max_admitted, got {objective!r}")
    mix = list(clients) if clients else default_clients(shape.name)
    shares = _check_clients(mix)
    devices = {server: bundled_json(server, shape.name, "--server")}
    for c in mix:
        devices.setdefault(c.device, bundled_json(c.device, shape.name, f"--client {c.name}"))
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(mix), size=requests, p=shares)
    lengths = draw_lengths(rng, trace, requests, shape.name)
    data: dict[str, Any] = {
        "format": "splitllm/instance",
        "version": 1,
        "name": name or f"{shape.name}-{server}-{trace}-n{requests}-s{seed}",
        "description": description or f"generated by splitllm.instances.generate (seed {seed})",
        "objective": objective,
        "model": shape.instance_model(dtype),
        "devices": devices,
        "server": {"device": server},
        "clients": {c.name: c.to_json() for c in mix},
        "requests": [
            {"id": f"r{i}", "client": mix[k].name, "prompt_tokens": int(p), "output_tokens": int(o)}
            for i, (k, (p, o)) in enumerate(zip(picks, lengths))
        ],
    }
    apply_slo(data, DEFAULT_SLO if slo is None else slo)
    _apply_capacity(data, work_capacity, kv_capacity)
    parse_instance(data)
    return data


def instance_text(data: dict[str, Any]) -> str:
    """The instance as JSON text, one request per line (compact, diff-friendly, stable)."""
    body = {k: v for k, v in data.items() if k not in ("requests", "devices")}
    text = json.dumps(body, indent=2, allow_nan=False)[:-2]
    devices = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in data["devices"].items())
    reqs = ",\n".join(f"    {json.dumps(r, allow_nan=False)}" for r in data["requests"])
    return f'{text},\n  "devices": {{\n{devices}\n  }},\n  "requests": [\n{reqs}\n  ]\n}}\n'


def write_instance(data: dict[str, Any], path: Path) -> None:
    """Write an instance atomically in the :func:`instance_text` layout."""
    write_atomic(path, instance_text(data))


def generate_suite(out_dir: Path, sizes: Sequence[int] = (10, 100, 1000), seed: int = 0, **options: Any) -> list[Path]:
    """Write one instance per size into ``out_dir`` (``<model>-n<size>-s<seed>.json``); return the paths.

    Every instance gets the seed ``seed + index`` so that sizes do not share a prefix.
    """
    if not sizes or any(int(n) < 1 for n in sizes):
        raise InputError("--sizes", f"must be integers >= 1, got {list(sizes)}")
    paths = []
    model = get_shape(options.get("model", "llama-2-7b")).name
    for index, n in enumerate(sizes):
        path = Path(out_dir) / f"{model}-n{int(n)}-s{seed}.json"
        write_instance(generate_instance(requests=int(n), seed=seed + index, **options), path)
        paths.append(path)
    return paths

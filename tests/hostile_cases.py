"""Generated hostile inputs: kinds of damage x fields, applied to the bundled tiny example.

Each case is JSON *text* (some damage, such as ``1e400``, a repeated key or a bare
``NaN``, exists only as text) plus the JSON path an error about it must name.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from splitllm.instance import example_path
from splitllm.jsonio import json_path

TINY: dict[str, Any] = json.loads(example_path("tiny").read_text())
_HOLE = "@@HOLE@@"
UNKNOWN_KEY = "x_unknown"


def _profile() -> dict[str, Any]:
    curve = {"prefill": [[1, 0.01], [100, 0.1]], "decode": [[1, 0.001], [100, 0.002]]}
    return {"source": "roofline", "batch_size": 1, "kinds": {k: copy.deepcopy(curve) for k in ("embed", "layer", "head")}}


def profiled() -> dict[str, Any]:
    """Tiny with device profiles (and capacities) instead of explicit costs."""
    data = copy.deepcopy(TINY)
    data["devices"] = {"gpu": _profile(), "cpu": _profile()}
    data["server"] = {"device": "gpu"}
    data["clients"]["phone"]["device"] = "cpu"
    for request in data["requests"]:
        del request["costs"]
    return data


def batched_profiled() -> dict[str, Any]:
    """``profiled`` whose server profile carries a batched section (profile version 2)."""
    data = profiled()
    gpu = data["devices"]["gpu"]
    gpu["version"] = 2
    gpu["batched"] = {
        "lin": {"embed": [[1, 0.001]], "layer": [[1, 0.01], [64, 0.02]], "head": [[1, 0.002]]},
        "attention": {"flops_per_s": 1e14, "bytes_per_s": 1e12, "floor_s": 1e-5, "hidden": 64, "kv_dim": 64, "dtype_bytes": 2,
                      "folded_context": 100},
        "engines": {"vllm": {"overhead_s": 0.004, "overhead_per_seq_s": 5e-5, "kernel_scale": 0.9}, "tensorrt-llm": {"overhead_s": 0.003}},
        "memory_bytes": 8e10,
        "weight_bytes": 1.3e10,
        "kv_bytes_per_token": 5e5,
    }
    return data


def decoding_batch(tpot_s: float) -> dict[str, Any]:
    """``batched_profiled`` with every request decoding (>= 2 output tokens) under a TPOT
    SLO of ``tpot_s``: a snapshot the throughput-placement solvers take."""
    data = batched_profiled()
    for request in data["requests"]:
        request["output_tokens"] = max(2, request["output_tokens"])
        request.setdefault("slo", {})["tpot_s"] = tpot_s
    return data


def with_arrivals() -> dict[str, Any]:
    data = copy.deepcopy(TINY)
    data["requests"][0]["arrival_s"] = 1.5
    return data


def with_capacities() -> dict[str, Any]:
    data = copy.deepcopy(TINY)
    data["server"] = {"work_capacity_s": 10.0, "kv_capacity_bytes": 1e6}
    data["requests"][0]["weight"] = 2
    return data


#: Every numeric field of the instance format, at a place in one of the bases. A test
#: checks that this list covers every numeric field the schema defines.
NUMERIC_FIELDS: dict[str, Callable[[], dict[str, Any]]] = {
    "model.activation_bytes_per_token": lambda: TINY,
    "model.token_bytes": lambda: TINY,
    "model.blocks[1].weight_bytes": lambda: TINY,
    "model.blocks[1].kv_bytes_per_token": lambda: TINY,
    "server.work_capacity_s": with_capacities,
    "server.kv_capacity_bytes": with_capacities,
    "clients.phone.memory_bytes": lambda: TINY,
    "clients.phone.uplink_bytes_per_s": lambda: TINY,
    "clients.phone.downlink_bytes_per_s": lambda: TINY,
    "clients.phone.rtt_s": lambda: TINY,
    "requests[0].prompt_tokens": lambda: TINY,
    "requests[0].output_tokens": lambda: TINY,
    "requests[0].weight": with_capacities,
    "requests[0].arrival_s": with_arrivals,
    "requests[0].slo.ttft_s": lambda: TINY,
    "requests[0].slo.tpot_s": lambda: TINY,
    "requests[1].slo.e2e_s": lambda: TINY,
    "requests[0].costs.server_prefill_s[1]": lambda: TINY,
    "requests[0].costs.server_decode_s[1]": lambda: TINY,
    "requests[0].costs.client_prefill_s[1]": lambda: TINY,
    "requests[0].costs.client_decode_s[1]": lambda: TINY,
    "devices.gpu.batch_size": profiled,
    "devices.gpu.kinds.layer.prefill[1][0]": profiled,
    "devices.gpu.kinds.layer.prefill[1][1]": profiled,
    "devices.cpu.kinds.layer.decode[1][0]": profiled,
    "devices.cpu.kinds.layer.decode[1][1]": profiled,
    "devices.gpu.batched.lin.layer[1][1]": batched_profiled,
    "devices.gpu.batched.attention.flops_per_s": batched_profiled,
    "devices.gpu.batched.attention.bytes_per_s": batched_profiled,
    "devices.gpu.batched.attention.floor_s": batched_profiled,
    "devices.gpu.batched.attention.hidden": batched_profiled,
    "devices.gpu.batched.attention.kv_dim": batched_profiled,
    "devices.gpu.batched.attention.dtype_bytes": batched_profiled,
    "devices.gpu.batched.attention.folded_context": batched_profiled,
    "devices.gpu.batched.engines.vllm.overhead_s": batched_profiled,
    "devices.gpu.batched.engines.vllm.overhead_per_seq_s": batched_profiled,
    "devices.gpu.batched.engines.vllm.kernel_scale": batched_profiled,
    "devices.gpu.batched.memory_bytes": batched_profiled,
    "devices.gpu.batched.weight_bytes": batched_profiled,
    "devices.gpu.batched.kv_bytes_per_token": batched_profiled,
}

#: Kinds of damage to one value: the raw JSON text put in its place. ``None`` marks the
#: damages done to the structure around it (see :func:`damage`).
DAMAGES: dict[str, str | None] = {
    "negative": "-1",
    "zero": "0",
    "nan": "NaN",
    "infinity": "Infinity",
    "minus_infinity": "-Infinity",
    "overflow_1e400": "1e400",
    "huge_1e308": "1e308",
    "tiny_1e-308": "1e-308",
    "huge_int_2_62": str(2**62),
    "huge_int_400_digits": "9" * 400,
    "huge_int_5000_digits": "9" * 5000,
    "float_for_int": "5.0",
    "boolean": "true",
    "wrong_type_array": "[1]",
    "wrong_type_object": '{"a": 1}',
    "string": '"1"',
    "empty_string": '""',
    "null": "null",
    "deep_nesting": "[" * 200 + "]" * 200,
    "missing": None,
    "duplicate_key": None,
    "unknown_key": None,
}


@dataclass(frozen=True)
class Case:
    """One damaged file: its text and the path an error about it must name."""

    name: str
    text: str
    path: str


def _parts(path: str) -> list[str | int]:
    return [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]


def _render(data: dict[str, Any], parts: list[str | int], raw: str) -> str:
    """JSON text of ``data`` with the value at ``parts`` replaced by the raw text ``raw``."""
    data = copy.deepcopy(data)
    target: Any = data
    for key in parts[:-1]:
        target = target[key]
    target[parts[-1]] = _HOLE
    return json.dumps(data).replace(json.dumps(_HOLE), raw, 1)


def damage(base: dict[str, Any], path: str, kind: str) -> Case | None:
    """The case ``kind`` of damage at ``path``; None where that damage does not apply."""
    parts = _parts(path)
    raw = DAMAGES[kind]
    parent = json_path(parts[:-1])
    if raw is not None:
        return Case(f"{path}:{kind}", _render(base, parts, raw), path)
    original = json.dumps(_get(base, parts))
    if kind == "missing":
        data = copy.deepcopy(base)
        container = _get(data, parts[:-1])
        del container[parts[-1]]  # an array element: the array gets shorter
        return Case(f"{path}:{kind}", json.dumps(data), path if isinstance(parts[-1], str) else parent)
    if isinstance(parts[-1], int):
        return None  # keys only exist in objects
    key = json.dumps(parts[-1])
    text = _render(base, parts, _HOLE)
    if kind == "duplicate_key":
        return Case(f"{path}:{kind}", text.replace(f"{key}: {_HOLE}", f"{key}: {original}, {key}: {original}"), path)
    return Case(
        f"{path}:{kind}",
        text.replace(f"{key}: {_HOLE}", f"{key}: {original}, {json.dumps(UNKNOWN_KEY)}: 1"),
        json_path([*parts[:-1], UNKNOWN_KEY]),
    )


def _get(data: Any, parts: list[str | int]) -> Any:
    for key in parts:
        data = data[key]
    return data


def instance_cases() -> Iterator[Case]:
    """Every damage at every numeric field, then damage to the whole file."""
    for path, base in NUMERIC_FIELDS.items():
        for kind in DAMAGES:
            case = damage(base(), path, kind)
            if case is not None:
                yield case
    yield from whole_file_cases(json.dumps(TINY))
    yield Case("objective:duplicate_key", json.dumps(TINY).replace('"objective": "min_server_work"', '"objective": "min_server_work", "objective": "max_admitted"'), "objective")
    lone = copy.deepcopy(TINY)
    lone["requests"][0]["id"] = _HOLE
    lone["name"] = "two\nlines\x1b[31m"
    yield Case("requests[0].id:lone_surrogate", json.dumps(lone).replace(json.dumps(_HOLE), '"\\ud800 \\u0007"'), "")


def whole_file_cases(valid: str) -> Iterator[Case]:
    """Damage to a whole JSON file; the error names the file (path ``""``)."""
    for name, text in {
        "empty": "",
        "whitespace": " \n\t ",
        "truncated": valid[: len(valid) // 2],
        "top_level_array": "[]",
        "top_level_number": "1",
        "top_level_null": "null",
        "deep_top_level": "[" * 100_000 + "]" * 100_000,
        "deep_objects": '{"a": ' * 5000 + "1" + "}" * 5000,
        "trailing_garbage": valid + " x",
        "nul_byte": valid[:1] + "\x00" + valid[1:],
    }.items():
        yield Case(f"file:{name}", text, "")


#: Damage to a solution file: (JSON path, raw text for that value, or a damage name).
SOLUTION_FIELDS = (
    "format", "version", "status", "objective", "bound", "gap", "time_s",
    "totals", "totals.admitted_weight", "totals.server_work_s", "totals.server_kv_bytes",
    "requests", "requests[0]", "requests[0].id", "requests[0].admitted", "requests[0].placement",
    "requests[0].ttft_s", "requests[0].tpot_s", "requests[0].e2e_s", "requests[0].server_work_s",
    "requests[0].server_kv_bytes", "requests[0].client_mem_bytes", "requests[1].placement",
)
#: Damages that make any of those fields wrong (null or absent can be legitimate for some).
SOLUTION_DAMAGES = ("negative", "nan", "infinity", "overflow_1e400", "string", "wrong_type_object", "deep_nesting", "duplicate_key", "unknown_key")


def solution_cases(solution: dict[str, Any]) -> Iterator[Case]:
    """Damaged copies of a valid solution of tiny (``splitllm solve --solver dp``)."""
    for path in SOLUTION_FIELDS:
        for kind in SOLUTION_DAMAGES:
            if kind in ("negative",) and path in ("bound", "requests", "requests[0]", "totals"):
                continue  # -1 is a valid (if weak) lower bound; containers are covered by wrong types
            case = damage(solution, path, kind)
            if case is not None:
                yield case
    for path in ("format", "version", "status", "requests", "requests[0]", "requests[0].id", "requests[0].admitted", "requests[0].placement"):
        for kind in ("missing", "null"):
            case = damage(solution, path, kind)
            if case is not None:
                yield case
    yield from whole_file_cases(json.dumps(solution))
    for name, edit in CLAIMS.items():
        data = copy.deepcopy(solution)
        edit(data)
        yield Case(f"claim:{name}", json.dumps(data), "")


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.update(values)


def _request(i: int, **values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["requests"][i].update(values)


#: Claims a solution file can make falsely (all figures otherwise as the solver wrote them).
CLAIMS: dict[str, Callable[[dict[str, Any]], None]] = {
    "gap_0_but_0.5": _set(bound=0.2, gap=0.0),
    "bound_above_objective_min": _set(bound=0.5, gap=0.25),
    "optimal_with_gap": _set(bound=0.2, gap=0.5),
    "optimal_without_bound": _set(bound=None, gap=None),
    "infeasible_with_placements": _set(status="infeasible"),
    "no_solution_with_placements": _set(status="no_solution"),
    "status_error": _set(status="error"),
    "status_unknown": _set(status="unknown"),
    "status_great": _set(status="great"),
    "objective_null_optimal": _set(objective=None, gap=None),
    "objective_misstated": _set(objective=0.3),
    "admitted_string_false": _request(0, admitted="false"),
    "admitted_without_placement": _request(0, placement=None),
    "placement_without_admission": _request(0, admitted=False),
    "placement_too_short": _request(0, placement="CS"),
    "placement_lowercase": _request(0, placement="csc"),
    "figure_misstated": _request(0, ttft_s=0.1),
    "totals_array": _set(totals=[1, 2]),
    "totals_misstated": lambda data: data["totals"].update(server_work_s=0.1),
    "wrong_format": _set(format="splitllm/instance"),
    "version_2": _set(version=2),
    "requests_reordered": lambda data: data["requests"].reverse(),
    "request_dropped": lambda data: data["requests"].pop(),
    "request_added": lambda data: data["requests"].append(copy.deepcopy(data["requests"][0])),
    "id_true": _request(0, id=True),
    "broken_slo": _request(1, placement="CSS", ttft_s=None, e2e_s=None, server_work_s=None, server_kv_bytes=None, client_mem_bytes=None),
}


def max_admitted_claims(solution: dict[str, Any]) -> Iterator[Case]:
    """Under max_admitted a bound is an upper bound: one below the objective is false."""
    data = copy.deepcopy(solution)
    data.update(bound=data["objective"] - 0.5, gap=None)
    yield Case("claim:max_admitted_bound_below", json.dumps(data), "")


# -- the serving simulation, the throughput solvers and the data readers ---------------------
#: Damage to a number given on the command line: the text put in place of a valid value.
OPTION_DAMAGES: dict[str, str] = {
    "negative": "-1", "zero": "0", "nan": "nan", "infinity": "inf", "minus_infinity": "-inf",
    "overflow_1e400": "1e400", "huge_1e308": "1e308", "tiny_1e-308": "1e-308", "huge_int_2_62": str(2**62),
    "float_for_int": "5.0", "string": "abc", "empty": "",
}  # fmt: skip
#: Numeric options of ``splitllm simulate`` (with what else they need to apply).
SIMULATE_OPTIONS: dict[str, list[str]] = {
    "--rate": [], "--chunk": [], "--gpu-memory": [], "--jobs": [], "--seed": ["--poisson", "--rate", "1"],
    "--policy batch-greedy:": [], "--policy batch-greedy:2:": [],
}  # fmt: skip
#: Numeric options of ``splitllm generate``.
GENERATE_OPTIONS = ("--requests", "--seed", "--work-capacity", "--kv-capacity", "--ttft", "--tpot", "--e2e")


def option_cases(options: dict[str, list[str]] | tuple[str, ...]) -> Iterator[tuple[str, list[str], str]]:
    """(case name, arguments, the option an error must name) for every damage of every option;
    an option ending in ``:`` takes the damage glued on (``--policy batch-greedy:-1``)."""
    extras = options if isinstance(options, dict) else {o: [] for o in options}
    for option, extra in extras.items():
        for kind, raw in OPTION_DAMAGES.items():
            flag, _, prefix = option.partition(" ")
            args = [flag, prefix + raw] if prefix else [flag, raw]
            yield f"{option}:{kind}", args + extra, flag


#: Arrival patterns of an instance's requests (``arrival_s`` by request index, n requests).
ARRIVALS: dict[str, Callable[[int], list[float]]] = {
    "all_zero": lambda n: [0.0] * n,
    "all_equal": lambda n: [7.5] * n,
    "reversed": lambda n: [float(n - i) for i in range(n)],
    "duplicated": lambda n: [float(i // 2) for i in range(n)],
    "one_at_the_limit": lambda n: [0.0] * (n - 1) + [1e6],
    "all_at_the_limit": lambda n: [1e6] * n,
    "sub_nanosecond": lambda n: [i * 1e-12 for i in range(n)],
}


def with_arrival_pattern(pattern: str, kv_capacity_bytes: float | None = None) -> dict[str, Any]:
    """``batched_profiled`` with its requests arriving by ``pattern`` (and a KV capacity)."""
    data = batched_profiled()
    for request, t in zip(data["requests"], ARRIVALS[pattern](len(data["requests"]))):
        request["arrival_s"] = t
    if kv_capacity_bytes is not None:
        data["server"]["kv_capacity_bytes"] = kv_capacity_bytes
    return data


#: Damage to a decoding snapshot of the throughput-placement solvers.
SNAPSHOTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "as_is": lambda d: None,
    "zero_weights": lambda d: [r.__setitem__("weight", 0) for r in d["requests"]],
    "kv_of_one_byte": lambda d: d["server"].__setitem__("kv_capacity_bytes", 1),
    "tpot_1e-9": lambda d: [r["slo"].__setitem__("tpot_s", 1e-9) for r in d["requests"]],
    "tpot_1e6": lambda d: [r["slo"].__setitem__("tpot_s", 1e6) for r in d["requests"]],
    "tables_1e6_s": lambda d: _batched_tables(d, 1e6),
    "tables_zero": lambda d: _batched_tables(d, 0.0),
    "forty_copies": lambda d: d.__setitem__("requests", [dict(copy.deepcopy(d["requests"][0]), id=f"q{i}") for i in range(40)]),
}


def _batched_tables(data: dict[str, Any], seconds: float) -> None:
    batched = data["devices"]["gpu"]["batched"]
    batched["lin"] = {kind: [[1, seconds]] for kind in batched["lin"]}
    batched["attention"]["floor_s"] = min(seconds, 1.0)
    batched["engines"]["vllm"].update(overhead_s=seconds, overhead_per_seq_s=min(seconds, 1.0))


def csv_cases(valid: str) -> Iterator[tuple[str, bytes]]:
    """Damage to a whole CSV file: its bytes."""
    lines = valid.splitlines(keepends=True)
    cut = valid[: len(lines[0]) + len(lines[1]) // 2]
    numbers = lines[0] + lines[1].rsplit(",", 1)[0]
    for name, text in {
        "empty": "", "header_only": lines[0], "truncated_mid_row": cut, "garbage_text": "x;y\n\x01\x02,\n",
        "nan_figure": numbers + ",nan\n", "negative_figure": numbers + ",-1\n", "zero_figure": numbers + ",0\n",
        "infinite_figure": numbers + ",inf\n", "word_figure": numbers + ",fast\n",
    }.items():  # fmt: skip
        yield name, text.encode()
    yield "not_utf8", b"\xff\xfe\x00" + valid.encode()[:20]

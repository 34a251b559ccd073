"""What an exported F2/F3 model means: the JSON sidecar written beside an MPS/LP file.

An MPS or LP file holds numbers and names only. The sidecar says, for another solver or a
person reading it: the units (every limit row divided by its limit, every coupling row by
its capacity, the objective in work units of ``work_unit_s`` seconds: see
:mod:`splitllm.formulations.units`), the scale and meaning of every row, the meaning of
every variable name, which request id each request index is, and the objective's phases
(``max_admitted`` is lexicographic: the file holds phase 1; phase 2 adds the row
``weight >= W1`` and minimises work, both written out term by term here).

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> from splitllm.formulations import compact
>>> inst = load_instance(example_path("tiny"))
>>> problem, h = compact.build(inst)
>>> side = describe(inst, problem, h, "compact")
>>> side["variables"]["x_r1_b0"], side["rows"]["ttft_r0"]["scale"], side["requests"][1]["id"]
({'kind': 'x', 'request': 1, 'block': 0}, 0.5, 'classify')
"""

from __future__ import annotations

import re
from typing import Any

import pulp

from splitllm.formulations.request_rows import request_rows
from splitllm.formulations.units import capacity_scale
from splitllm.instance import Instance
from splitllm.resources import COUPLED, REQUEST_LIMITS

SIDECAR_FORMAT = "splitllm/model-sidecar"

#: What each variable name pattern means (``{r}`` request index, ``{b}`` block, ``{k}`` column).
VARIABLE_KINDS = {
    "x": "x_r{r}_b{b}: binary, 1 if block b of request r runs on the server (F2)",
    "a": "a_r{r}: 1 if request r is admitted (fixed to 1 under min_server_work)",
    "u": "u_r{r}_b{b}: in [0, 1], the chain crosses client -> server between blocks b-1 and b",
    "d": "d_r{r}_b{b}: in [0, 1], the chain crosses server -> client between blocks b-1 and b",
    "cu": "cu_r{r}: in [0, 1], the decode cycle head -> embed crosses client -> server",
    "cd": "cd_r{r}: in [0, 1], the decode cycle head -> embed crosses server -> client",
    "z": "z_r{r}_k{k}: binary, 1 if request r takes DP column k (its placement is given) (F3)",
    "y": "y_t{t}_k{k}: integer, how many requests of type t (identical requests) take column k (aggregated F3)",
    "a_t": "a_t{t}: integer, how many requests of type t are admitted (aggregated F3)",
}
_VARIABLE = re.compile(r"^(?P<kind>x|u|d|a|cu|cd|z)_r(?P<r>\d+)(?:_(?P<sub>[bk])(?P<i>\d+))?$")
_TYPE_VARIABLE = re.compile(r"^(?P<kind>y|a)_t(?P<t>\d+)(?:_k(?P<k>\d+))?$")
_LIMITS = {res.key: res for res in REQUEST_LIMITS}
_CAPACITY_ROWS = {f"{res.key}_capacity": res for res in COUPLED}
_STRUCTURE = {
    "up": "u >= x[b] - x[b-1]",
    "down": "d >= x[b-1] - x[b]",
    "cycle_up": "cu >= x[0] - x[B-1]",
    "cycle_down": "cd >= x[B-1] - x[0]",
    "admit": "x[r, b] <= a[r]: a rejected request uses no server block",
    "pick_a": "sum_k z[r, k] = a[r]: an admitted request takes one column",
}
_ROW = re.compile(rf"^(?P<kind>{'|'.join([*_LIMITS, *_STRUCTURE])})_r(?P<r>\d+)(?:_b\d+)?$")


def describe(instance: Instance, problem: pulp.LpProblem, handles: dict[str, Any], formulation: str) -> dict[str, Any]:
    """The sidecar of ``problem`` (built by F2 or F3 for ``instance``) as JSON types."""
    return {
        "format": SIDECAR_FORMAT,
        "version": 1,
        "instance": instance.name,
        "formulation": formulation,
        "objective": instance.objective.value,
        "units": {
            "work_unit_s": handles["work_unit"],
            "limit_rows": "each request's limit row is divided by its limit (its scale), so its right-hand side is 1",
            "coupling_rows": " and ".join(f"{name} ({res.unit})" for name, res in _CAPACITY_ROWS.items()) + " are divided by their capacities",
            "objective": "server work in work units (multiply by work_unit_s for seconds) or admitted weight",
        },
        "variable_kinds": VARIABLE_KINDS,
        "variables": {v.name: _variable(v.name, handles) for v in problem.variables()},
        "rows": {name: _row(instance, name) for name in problem.constraints},
        "requests": [{"index": r, "id": q.id, "client": q.client, "weight": float(instance.arrays.weight[r])} for r, q in enumerate(instance.requests)],
        "phases": _phases(instance, handles),
    }


def _variable(name: str, handles: dict[str, Any]) -> dict[str, Any]:
    match = _VARIABLE.match(name)
    if match is None:
        typed = _TYPE_VARIABLE.match(name)
        if typed is None:
            return {"kind": "unknown", "note": "not a variable splitllm builds"}
        entry = {"kind": "a_t" if typed["kind"] == "a" else "y", "type": int(typed["t"])}
        return entry | ({"column": int(typed["k"])} if typed["k"] else {})
    entry: dict[str, Any] = {"kind": match["kind"], "request": int(match["r"])}
    if match["sub"] == "b":
        entry["block"] = int(match["i"])
    elif match["sub"] == "k":
        entry["column"] = int(match["i"])
        placements = handles["columns"].of_request(entry["request"]).placements if "columns" in handles else None
        if placements is not None:
            entry["placement"] = "".join("S" if s else "C" for s in placements[entry["column"]])
    return entry


def _row(instance: Instance, name: str) -> dict[str, Any]:
    a = instance.arrays
    if name in _CAPACITY_ROWS:
        res = _CAPACITY_ROWS[name]
        return {"meaning": f"{res.limit_field}: total {res.label}", "scale": capacity_scale(float(a.limit(res))), "unit": res.unit}
    match = _ROW.match(name)
    if match is None:
        return {"meaning": "not a row splitllm builds", "scale": None}
    kind, r = match["kind"], int(match["r"])
    if kind in _LIMITS:
        res = _LIMITS[kind]
        row = next(row for row in request_rows(a, r) if row.name == kind)
        return {"meaning": f"request {r}: {res.limit_name} limit", "request": r, "scale": row.scale, "unit": res.unit}
    return {"meaning": _STRUCTURE[kind], "request": r, "scale": 1.0}


def _terms(expression: pulp.LpAffineExpression) -> dict[str, float]:
    return {v.name: float(c) for v, c in expression.items()}


def _phases(instance: Instance, handles: dict[str, Any]) -> list[dict[str, Any]]:
    work = {"sense": "minimize", "objective": "server work in work units", "objective_terms": _terms(handles["work"])}
    if instance.objective.serves_all:
        return [{"phase": 1, **work, "note": "the model file's objective; every a_r is fixed to 1"}]
    weight_row = {
        "name": "lexicographic_weight",
        "terms": _terms(handles["weight"]),
        "sense": ">=",
        "rhs": "W1, the admitted weight of phase 1's solution",
    }
    return [
        {"phase": 1, "sense": "maximize", "objective": "admitted weight", "objective_terms": _terms(handles["weight"]), "note": "the model file's objective"},
        {"phase": 2, "add_row": weight_row, **work, "note": "keep phase 1's weight, then least server work"},
    ]


#: What each variable prefix of the throughput model (F5) means.
THROUGHPUT_VARIABLES = {
    "a": "a_r{r}: request r admitted (binary)",
    "x": "x_r{r}_b{b}: block b of request r on the server (binary)",
    "y": "y_b{b}: block b active on the server (some admitted request runs it; binary)",
    "z": "z_b{b}_k{k}: exactly k admitted requests run block b on the server (binary)",
    "u": "u_r{r}_b{b}: the decode cycle crosses client -> server before block b (b = 0: head -> embed)",
    "d": "d_r{r}_b{b}: the decode cycle crosses server -> client before block b",
    "full": "full_r{r}: request r entirely on the server",
    "v": "v_r{r}_j{j}: request r's decode cycle has j server segments entered from the client",
    "P": "P_r{r}_j{j}: T when v_r{r}_j{j} = 1, else 0 (seconds)",
    "Q": "Q_r{r}: T when full_r{r} = 1, else 0 (seconds)",
    "wrap": "wrap_r{r}: a server segment of request r wraps from the head round to the embedding",
    "W": "W_r{r}: T when wrap_r{r} = 1, else 0 (seconds)",
    "srv": "srv_r{r}: request r runs some block on the server (counts for the per-sequence overhead)",
    "T": "T: the decode iteration time over the admitted requests' server blocks (seconds)",
}


def describe_throughput(instance: Instance, problem: pulp.LpProblem, handles: dict[str, Any], engine: str,
                        ttft: bool = False) -> dict[str, Any]:
    """The sidecar of a throughput model (F5) as JSON types: units, what each variable
    means, request index -> id, whether batch-1 TTFT rows (``ttft_r<r>``) are in, and
    both phases (maximise weight; then keep it and minimise ``T``)."""
    return {
        "format": SIDECAR_FORMAT,
        "version": 1,
        "instance": instance.name,
        "formulation": "throughput",
        "engine": engine,
        "ttft": ttft,
        "units": {
            "T": "seconds; the TPOT rows are divided by each request's TPOT limit, the iteration-time row by t_unit_s",
            "t_unit_s": handles["t_unit"],
            "t_max_s": handles["t_max"],
        },
        "variable_kinds": THROUGHPUT_VARIABLES,
        "requests": [{"index": r, "id": q.id, "weight": float(instance.arrays.weight[r])} for r, q in enumerate(instance.requests)],
        "phases": [
            {"phase": 1, "sense": "maximize", "objective": "admitted weight", "objective_terms": _terms(handles["weight"]),
             "note": "the model file's objective"},
            {"phase": 2, "add_row": {"name": "lexicographic_weight", "terms": _terms(handles["weight"]), "sense": ">=",
                                     "rhs": "W1, the admitted weight of phase 1's solution"},
             "sense": "minimize", "objective": "T / t_unit_s", "objective_terms": {"T": 1.0 / handles["t_unit"]}},
        ],
    }

"""`splitllm check` of throughput-placement (F5) solution files: every claim, every class of damage.

A file written by an F5 solver passes. Then each class of damage is applied to a fresh
copy: a misstated figure (each one the file states), a figure F5 does not price stated
anyway, figures on a rejected request, a changed engine or TTFT flag, a bound or gap or
status that the file does not support, a false `optimal` (re-proved by enumeration on a
small snapshot); each must fail with exit 1 naming the field. Corrupt files (wrong types,
unknown letters, wrong lengths, non-finite numbers, missing keys) are refused with one
line `error: ...` and exit 2.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from click.testing import CliRunner

from batch_cases import batch_data
from f5_oracle import oracle_costs, with_costs
from splitllm import solution
from splitllm.batched import costs as batch_costs
from splitllm.cli import main
from splitllm.batched.evaluator import evaluate_batch
from splitllm.instance import example_path, load_instance
from splitllm.registry import solve
from splitllm.solvers.batch_common import verify
from splitllm.result import SolveResult, Status
from splitllm.solution import to_json

Damage = Callable[[dict[str, Any]], None]


def _admitted(d: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in d["requests"] if e["admitted"])


def _scale(path: tuple[str, ...], factor: float) -> Damage:
    def damage(d: dict[str, Any]) -> None:
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = node[path[-1]] * factor + (1.0 if node[path[-1]] == 0 else 0.0)
    return damage


def _entry(key: str, value: Any) -> Damage:
    def damage(d: dict[str, Any]) -> None:
        entry = _admitted(d)
        entry[key] = value(entry[key]) if callable(value) else value
    return damage


def _set(key: str, value: Any) -> Damage:
    def damage(d: dict[str, Any]) -> None:
        d[key] = value
    return damage


def _totals(key: str, value: Any) -> Damage:
    def damage(d: dict[str, Any]) -> None:
        d["totals"][key] = value
    return damage


def _reject_with_figures(d: dict[str, Any]) -> None:
    entry = _admitted(d)
    entry["admitted"], entry["placement"] = False, None  # figures left in place


def _raise_bound_optimal(d: dict[str, Any]) -> None:
    d["bound"], d["gap"] = d["objective"] * 1.5 + 1, 0.5


#: Misstatements: (damage, the field check must name).
MISSTATED: dict[str, tuple[Damage, str]] = {
    "objective": (_scale(("objective",), 0.5), "objective"),
    "admitted_weight": (_scale(("totals", "admitted_weight"), 2.0), "totals.admitted_weight"),
    "iteration_time": (_scale(("totals", "iteration_time_s"), 1.1), "totals.iteration_time_s"),
    "total_kv": (_scale(("totals", "server_kv_bytes"), 1.1), "totals.server_kv_bytes"),
    "tpot": (_entry("tpot_s", lambda v: v * 0.9), "tpot_s"),
    "request_kv": (_entry("server_kv_bytes", lambda v: v * 0.9 + 1), "server_kv_bytes"),
    "client_mem": (_entry("client_mem_bytes", lambda v: v + 1e9), "client_mem_bytes"),
    "unpriced_e2e": (_entry("e2e_s", 1.0), "e2e_s"),
    "unpriced_work": (_entry("server_work_s", 1.0), "server_work_s"),
    "unheld_ttft": (_entry("ttft_s", 1.0), "ttft_s"),
    "total_work": (_totals("server_work_s", 1.0), "totals.server_work_s"),
    "rejected_with_figures": (_reject_with_figures, "requests["),
    "engine": (_set("engine", "tensorrt-llm"), "iteration_time_s"),
    "bound_below": (_scale(("bound",), 0.5), "bound"),
    "gap": (_set("gap", 0.25), "gap"),
    "optimal_without_bound": (lambda d: d.update(bound=None, gap=None), "bound"),
    "optimal_with_gap": (_raise_bound_optimal, "status"),
    "status_no_solution": (_set("status", "no_solution"), "no_solution"),
    "status_error": (_set("status", "error"), "error"),
}


def _placement(transform: Callable[[str], Any]) -> Damage:
    def damage(d: dict[str, Any]) -> None:
        entry = _admitted(d)
        entry["placement"] = transform(entry["placement"])
    return damage


#: Corrupt files: each is refused with one line naming where.
CORRUPT: dict[str, Damage] = {
    "letter": _placement(lambda p: "X" + p[1:]),
    "short": _placement(lambda p: p[:-1]),
    "placement_type": _placement(lambda p: 7),
    "figure_string": _entry("tpot_s", "fast"),
    "figure_negative": _entry("tpot_s", -1.0),
    "iteration_time_string": _totals("iteration_time_s", "1 ms"),
    "iteration_time_negative": _totals("iteration_time_s", -0.01),
    "engine": _set("engine", "sglang"),
    "ttft_type": _set("ttft", "yes"),
    "status": _set("status", "great"),
    "id": _entry("id", "nobody"),
    "admitted_type": _entry("admitted", "yes"),
    "extra_key": _set("comment", "hello"),
    "requests_type": _set("requests", {}),
    "missing_requests": lambda d: d.pop("requests"),
    "too_few_requests": lambda d: d["requests"].pop(),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("f5check")
    example, out = str(example_path("llama2-7b")), folder / "batch.json"
    solved = CliRunner().invoke(main, ["solve", example, "--solver", "batch-greedy", "--out", str(out)])
    assert solved.exit_code == 0, solved.output
    data = json.loads(out.read_text())
    data["status"], data["bound"], data["gap"] = "optimal", data["objective"], 0.0  # a claim to damage; checked below
    return example, data


def _check(tmp_path: Path, example: str, data: dict[str, Any] | str) -> Any:
    path = tmp_path / "damaged.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return CliRunner().invoke(main, ["check", example, str(path)])


def test_the_written_file_passes(tmp_path: Path, written: tuple[str, dict[str, Any]]) -> None:
    example, data = written
    data = copy.deepcopy(data)
    data["status"], data["bound"], data["gap"] = "feasible", None, None
    checked = _check(tmp_path, example, data)
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize("name", sorted(MISSTATED))
def test_every_misstated_claim_fails_naming_it(tmp_path: Path, written: tuple[str, dict[str, Any]], name: str) -> None:
    example, data = written
    data = copy.deepcopy(data)
    data["status"], data["bound"], data["gap"] = "feasible", data["objective"] * 2 + 1, None
    data["gap"] = abs(data["bound"] - data["objective"]) / abs(data["objective"]) if data["objective"] else None
    if name.startswith(("optimal", "bound_below", "gap")):
        data["status"], data["bound"], data["gap"] = "optimal", data["objective"], 0.0
    damage, field = MISSTATED[name]
    damage(data)
    checked = _check(tmp_path, example, data)
    assert checked.exit_code == 1, (name, checked.output)
    assert field in checked.output and "Traceback" not in checked.output, (name, checked.output)


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_files_are_refused_with_one_line(tmp_path: Path, written: tuple[str, dict[str, Any]], name: str) -> None:
    example, data = written
    data = copy.deepcopy(data)
    CORRUPT[name](data)
    checked = _check(tmp_path, example, data)
    lines = checked.output.strip().splitlines()
    assert checked.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, checked.output)


@pytest.mark.parametrize("text", ["{", '{"format": "splitllm/solution", "version": 1, "status": "optimal", "objective": NaN, "requests": []}', "[]", ""])
def test_unreadable_files_are_refused_with_one_line(tmp_path: Path, written: tuple[str, dict[str, Any]], text: str) -> None:
    checked = _check(tmp_path, written[0], text)
    lines = checked.output.strip().splitlines()
    assert checked.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), checked.output


def test_a_false_optimal_is_found_by_enumeration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On small snapshots `check` re-proves an `optimal` claim: an answer that admits less
    than it could, every figure right and its bound equal to it, fails; so does the same
    answer called `feasible` with that bound (below the optimum)."""
    tables = with_costs({e: oracle_costs(e) for e in ("vllm", "tensorrt-llm")})
    monkeypatch.setattr(batch_costs, "batched_costs", tables)
    monkeypatch.setattr(solution, "server_costs", tables)  # the tables `check` prices T with
    seen = 0
    for seed in range(30):
        inst_path = tmp_path / f"inst{seed}.json"
        inst_path.write_text(json.dumps(batch_data(seed, 3, 4, kv=False)))
        inst = load_instance(inst_path)
        best = solve(inst, "batch-brute")
        if not best.admitted.any():
            continue
        adm = best.admitted.copy()
        adm[np.nonzero(adm)[0][0]] = False  # one fewer: every limit still holds, the weight drops
        t = evaluate_batch(inst, batch_costs.batched_costs(inst), best.placements, adm).iteration_time
        weaker = verify(inst, SolveResult("batch-brute", Status.OPTIMAL, best.placements, adm, None, None, info={"iteration_time_s": t}), {})
        assert weaker.status == Status.OPTIMAL, weaker.message
        weaker.bound = weaker.objective
        for status, named in (("optimal", "status: optimal"), ("feasible", "bound")):
            data = to_json(inst, weaker)
            data["status"] = status
            path = tmp_path / f"weaker{seed}.json"
            path.write_text(json.dumps(data))
            checked = CliRunner().invoke(main, ["check", str(inst_path), str(path)])
            assert checked.exit_code == 1 and named in checked.output, checked.output
        seen += 1
        if seen >= 3:
            break
    assert seen >= 3

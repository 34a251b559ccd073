"""A caller's own model: F2, F3, F4 built, extended and solved through ``splitllm.solve_model``;
``SolveResult.to_dict``/``to_dataframe``; the sidecar that ``splitllm export`` writes."""

from __future__ import annotations

import itertools
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import highspy
import numpy as np
import pytest
from click.testing import CliRunner
from coupled_cases import coupled_instance

import splitllm
from splitllm.solvers.columns import dp_columns
from splitllm.cli.export import export, sidecar_path
from splitllm.errors import OptionError, SplitLLMError
from splitllm.evaluator import feasible_mask, request_metrics
from splitllm.formulations import column, compact, cpsat
from splitllm.instance import Instance, example_path, load_instance
from splitllm.registry import solve
from splitllm.result import Status
from splitllm.solvers.user_model import add_row

FORMULATIONS = ["F2", "F3", "F4", "F4-columns"]
CAP = 2  # the caller's row: at most CAP server blocks per request


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _build(kind: str, inst: Instance) -> tuple[Any, dict[str, Any]]:
    if kind == "F2":
        return compact.build(inst)
    columns = dp_columns(inst)
    if kind == "F3":
        return column.build(inst, columns)
    return cpsat.build(inst) if kind == "F4" else cpsat.build_columns(inst, columns)


def _cap_server_blocks(kind: str, inst: Instance, model: Any, h: dict[str, Any]) -> None:
    """The caller's row, written over ``x`` (F2, F3, F4) or over F4's column counts."""
    if kind == "F4-columns":
        for (t, k), count in h["y"].items():
            if h["columns"].per_type[t].placements[k].sum() > CAP:
                add_row(model, h, [(count, 1.0)], 0, name=f"no_column_t{t}_k{k}")
        return
    for r in range(inst.n_requests):
        add_row(model, h, [(h["x"][r, b], 1.0) for b in range(inst.n_blocks)], CAP, name=f"cap_r{r}")


def _restricted_reference(inst: Instance) -> tuple[float, float]:
    """(admitted weight, least server work at it) with at most CAP server blocks, by enumeration."""
    a, n, B = inst.arrays, inst.n_requests, inst.n_blocks
    every = np.array(list(itertools.product([False, True], repeat=B)))
    every = every[every.sum(axis=1) <= CAP]
    options = []
    for r in range(n):
        rows = np.full(len(every), r)
        ok = every[feasible_mask(a, rows, request_metrics(a, rows, every))]
        options.append([None] + [(float(a.work[r] @ x), float(a.kv[r] @ x), float(a.weight[r])) for x in ok])
    best = (0.0, 0.0)
    for pick in itertools.product(*options):
        chosen = [p for p in pick if p is not None]
        work, kv, weight = (sum(p[i] for p in chosen) for i in range(3))
        if work <= a.work_capacity and kv <= a.kv_capacity and (weight > best[0] or (weight == best[0] and work < best[1])):
            best = (weight, work)
    return best


@pytest.mark.parametrize("kind", FORMULATIONS)
def test_solve_model_does_both_phases_of_max_admitted(kind: str) -> None:
    inst = coupled_instance(1, 4, 5, "max_admitted")
    ref = solve(inst, "brute")
    assert ref.status == Status.OPTIMAL and ref.objective < inst.arrays.weight.sum()  # the capacity binds
    model, h = _build(kind, inst)
    result = splitllm.solve_model(inst, model, h, workers=1)
    assert result.status == Status.OPTIMAL and result.evaluation is not None
    assert result.objective == pytest.approx(ref.objective)
    assert result.evaluation.server_work == pytest.approx(ref.evaluation.server_work, rel=1e-6)  # phase 2
    assert "phase2" in result.info


@pytest.mark.parametrize("kind", FORMULATIONS)
def test_a_callers_row_changes_the_optimum_and_holds(kind: str) -> None:
    inst = coupled_instance(1, 4, 5, "max_admitted")
    free = solve(inst, "brute")
    weight, work = _restricted_reference(inst)
    assert weight < free.objective  # the row binds
    model, h = _build(kind, inst)
    _cap_server_blocks(kind, inst, model, h)
    result = splitllm.solve_model(inst, model, h, workers=1)
    assert result.status.has_solution and result.evaluation is not None
    assert (result.placements[result.admitted].sum(axis=1) <= CAP).all()
    assert result.objective == pytest.approx(weight)
    if kind in ("F2", "F4"):  # exact over x; F3's columns are Pareto without the row (a restriction)
        assert result.evaluation.server_work == pytest.approx(work, rel=1e-6)


def test_the_pulp_model_comes_back_as_it_went_in() -> None:
    inst = coupled_instance(1, 4, 5, "max_admitted")
    model, h = compact.build(inst)
    rows, sense = list(model.constraints), model.sense
    splitllm.solve_model(inst, model, h)
    assert list(model.constraints) == rows and model.sense == sense


def test_cpsat_rows_are_rounded_safely() -> None:
    """A row right at its limit: a CP-SAT-feasible point must meet it as written (in floats)."""
    inst = load_instance(example_path("tiny"))
    model, h = cpsat.build(inst, work_scale=0.4)
    # 0.3 * x[0, 1] <= 0.3 - 1e-7 forces x[0, 1] = 0; rounding to nearest would allow 1 (1e6 <= 1e6)
    add_row(model, h, [(h["x"][0, 1], 0.3)], 0.3 - 1e-7)
    result = splitllm.solve_model(inst, model, h)
    assert result.status == Status.INFEASIBLE  # request 0 needs block 1 on the server


def test_refusals_are_clear() -> None:
    inst = load_instance(example_path("tiny"))
    model, h = column.build(inst, dp_columns(inst), aggregate=True)
    with pytest.raises(SplitLLMError, match="aggregate=False"):
        splitllm.solve_model(inst, model, h)
    model, h = compact.build(inst)
    with pytest.raises(OptionError, match="^backend: expected one of highs, cbc"):
        splitllm.solve_model(inst, model, h, backend="gurobi")
    with pytest.raises(OptionError, match="^time_limit"):
        splitllm.solve_model(inst, model, h, time_limit=-1)
    with pytest.raises(SplitLLMError, match="expected a PuLP or CP-SAT model"):
        splitllm.solve_model(inst, object(), h)  # type: ignore[arg-type]
    cp, hc = cpsat.build(inst)
    with pytest.raises(SplitLLMError, match="term 0: safe rounding needs a CP-SAT variable >= 0"):
        add_row(cp, hc, [(cp.NewIntVar(-5, 5, "free"), 1.0)], 1)


def test_a_broken_row_is_caught_by_the_recheck() -> None:
    """A row the backend never saw (added after solving) is reported, not hidden."""
    from splitllm.solvers.user_model import _pulp_rows_broken

    inst = load_instance(example_path("tiny"))
    model, h = compact.build(inst)
    result = splitllm.solve_model(inst, model, h)
    model += h["x"][0, 1] <= 0, "late_row"
    broken = _pulp_rows_broken(inst, model, h, result.placements, result.admitted)
    assert broken and broken[0].startswith("row late_row")


def test_to_dict_is_json_and_to_dataframe_has_a_row_per_request() -> None:
    inst = coupled_instance(1, 4, 5, "max_admitted")
    result = solve(inst, "decomp")
    ids = [q.id for q in inst.requests]
    data = json.loads(json.dumps(result.to_dict(ids), allow_nan=False))
    assert data["status"] == "optimal" and [q["id"] for q in data["requests"]] == ids
    assert [q["admitted"] for q in data["requests"]] == result.admitted.tolist()
    pd = pytest.importorskip("pandas", reason="pandas is optional; SolveResult.to_dataframe needs it")
    frame = result.to_dataframe(ids)
    assert isinstance(frame, pd.DataFrame) and len(frame) == inst.n_requests
    assert frame["server_work_s"].sum() == pytest.approx(result.evaluation.server_work)


def test_to_dataframe_without_pandas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    result = solve(load_instance(example_path("tiny")), "dp")
    with pytest.raises(ImportError, match="pip install pandas"):
        result.to_dataframe()


def _export(tmp_path: Path, inst: Instance, formulation: str) -> tuple[Path, dict[str, Any]]:
    source, out = tmp_path / "inst.json", tmp_path / "model.mps"
    source.write_text(json.dumps(inst.source))
    done = CliRunner().invoke(export, [str(source), "--formulation", formulation, "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert sidecar_path(out) == tmp_path / "model.mps.json"
    return out, json.loads(sidecar_path(out).read_text())


def _highs(path: Path) -> highspy.Highs:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 1e-9)
    h.readModel(str(path))
    return h


@pytest.mark.parametrize("formulation", ["compact", "column"])
def test_the_sidecar_names_every_variable_and_row_of_the_file(tmp_path: Path, formulation: str) -> None:
    inst = coupled_instance(1, 4, 5, "max_admitted")
    out, side = _export(tmp_path, inst, formulation)
    lp = _highs(out).getLp()
    assert set(side["variables"]) == set(lp.col_names_)
    assert set(side["rows"]) == set(lp.row_names_)
    assert all(v["kind"] != "unknown" for v in side["variables"].values())
    assert all(row["scale"] for row in side["rows"].values())
    assert [q["id"] for q in side["requests"]] == [q.id for q in inst.requests]
    limits = [row for row in side["rows"].values() if row.get("unit") == "s" and "request" in row]
    assert formulation == "column" or limits  # F2 lists its SLO rows with their scales


@pytest.mark.parametrize("formulation", ["compact", "column"])
def test_both_phases_from_the_sidecar_alone_reach_the_optimum(tmp_path: Path, formulation: str) -> None:
    """Another solver, given only the two files, solves max_admitted lexicographically."""
    inst = coupled_instance(1, 4, 5, "max_admitted")
    ref = solve(inst, "brute")
    out, side = _export(tmp_path, inst, formulation)
    phase1, phase2 = side["phases"]
    h = _highs(out)
    h.run()
    w1 = h.getInfo().objective_function_value
    assert w1 == pytest.approx(ref.objective)
    names = list(h.getLp().col_names_)
    row = phase2["add_row"]
    assert row["sense"] == ">=" and phase1["sense"] == "maximize"
    idx = [names.index(n) for n in row["terms"]]
    h.addRow(w1 - 1e-9, highspy.kHighsInf, len(idx), np.array(idx, dtype=np.int32), np.array(list(row["terms"].values())))
    cost = np.zeros(len(names))
    for name, coef in phase2["objective_terms"].items():
        cost[names.index(name)] = coef
    h.changeColsCost(len(names), np.arange(len(names), dtype=np.int32), cost)
    h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    h.run()
    work = h.getInfo().objective_function_value * side["units"]["work_unit_s"]
    assert math.isclose(work, ref.evaluation.server_work, rel_tol=1e-6)

"""Time limits, side effects, numeric safety, determinism and solver logs of the backends."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
from coupled_cases import coupled_data, coupled_instance

from splitllm.deadline import TimeLimitReached, deadline_in
from splitllm.instance import example_path, load_instance, parse_instance
from splitllm.registry import solve
from splitllm.result import Status

PULP_SOLVERS = [("milp", {"backend": "highs"}), ("milp", {"backend": "cbc"}), ("colmilp", {}), ("decomp", {"backend": "cbc"})]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _module_snapshot() -> dict[str, dict[str, int]]:
    """Identity of every attribute of the modules a user's own PuLP / OR-Tools code sees."""
    import ortools.sat.python.cp_model as cp_model
    import pulp

    modules = [pulp, pulp.apis, pulp.apis.coin_api, pulp.apis.highs_api, pulp.apis.core, subprocess, cp_model]
    return {m.__name__: {k: id(v) for k, v in vars(m).items() if not k.startswith("__")} for m in modules}


def test_importing_splitllm_leaves_pulp_alone() -> None:
    code = (
        "import subprocess, pulp\n"
        "before = dict(vars(pulp.apis.coin_api))\n"
        "import splitllm.solvers, splitllm.solvers.pulp_backend\n"
        "assert pulp.apis.coin_api.subprocess is subprocess\n"
        "assert all(vars(pulp.apis.coin_api).get(k) is v for k, v in before.items())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_solving_changes_nothing_in_pulp_or_ortools() -> None:
    import pulp

    inst = coupled_instance(3, 6, 5, "max_admitted")
    before = _module_snapshot()
    for name, options in [("milp", {"backend": "cbc"}), ("milp", {"backend": "highs"}), ("cpsat", {})]:
        assert solve(inst, name, **options).status == Status.OPTIMAL, name
    assert pulp.apis.coin_api.subprocess is subprocess
    assert _module_snapshot() == before


@pytest.mark.parametrize(("name", "options"), PULP_SOLVERS + [("cpsat", {}), ("cpsat", {"formulation": "column"}), ("greedy", {})])
def test_zero_time_limit_gives_no_solution_with_a_message(name: str, options: dict[str, Any]) -> None:
    got = solve(coupled_instance(1, 8, 5, "max_admitted"), name, time_limit=0.0, **options)
    assert got.status == Status.NO_SOLUTION, got.message
    assert "time limit" in got.message


def test_builders_and_writer_stop_at_the_deadline(tmp_path: Any) -> None:
    from splitllm.formulations import column, compact
    from splitllm.formulations import cpsat as f4
    from splitllm.solvers.columns import dp_columns
    from splitllm.solvers.pulp_backend import write_mps

    inst = coupled_instance(2, 4, 5, "max_admitted")
    past = deadline_in(-1.0)
    columns = dp_columns(inst)
    assert columns is not None
    for build in (lambda: compact.build(inst, past), lambda: column.build(inst, columns, deadline=past), lambda: f4.build(inst, deadline=past)):
        with pytest.raises(TimeLimitReached, match="building the model"):
            build()
    problem, _ = compact.build(inst)
    with pytest.raises(TimeLimitReached, match="writing the model"):
        write_mps(problem, str(tmp_path / "m.mps"), past)


@pytest.mark.slow
def test_backend_limit_holds_on_a_model_it_cannot_close() -> None:
    """A limit that ends inside the backend still gives an honest status (and no hang)."""
    import time

    inst = coupled_instance(7, 60, 34, "max_admitted")
    for backend in ("highs", "cbc"):
        start = time.perf_counter()
        got = solve(inst, "milp", time_limit=4.0, backend=backend)
        assert got.status in (Status.FEASIBLE, Status.NO_SOLUTION, Status.OPTIMAL), got.message
        if got.status == Status.OPTIMAL:
            assert got.gap is not None and got.gap <= 1e-6
        assert time.perf_counter() - start < 4.0 + 30.0  # catches hangs only; timings are in bench/


def test_cpsat_handles_a_limit_far_below_its_row() -> None:
    """A limit far below the row's figures: the row is scaled by its largest figure, so its
    integer coefficients stay within CP-SAT's range and the answer is verified."""
    data = coupled_data(0, 3, 5, "max_admitted")
    data["requests"][1]["slo"] = {"ttft_s": 1e-9}
    data["requests"][1]["costs"]["client_prefill_s"][2] = 1e6
    inst = parse_instance(data)
    for formulation in ("compact", "column"):
        got = solve(inst, "cpsat", formulation=formulation)
        assert got.status.has_solution, got.message  # verified by the evaluator
        assert not got.admitted[1]  # no placement meets a TTFT of 1 ns


def test_cpsat_one_worker_with_a_seed_is_reproducible() -> None:
    inst = coupled_instance(5, 25, 8, "max_admitted")
    runs = [solve(inst, "cpsat", workers=1, seed=7) for _ in range(2)]
    assert all(r.status.has_solution for r in runs), [r.message for r in runs]
    assert np.array_equal(runs[0].placements, runs[1].placements)
    assert np.array_equal(runs[0].admitted, runs[1].admitted)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("debug", [True, False])
def test_solver_logs_go_to_the_logger_at_debug_only(debug: bool, capfd: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("splitllm")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        inst = load_instance(example_path("tiny"))
        for name, options in [("milp", {"backend": "highs"}), ("milp", {"backend": "cbc"}), ("cpsat", {})]:
            assert solve(inst, name, **options).status == Status.OPTIMAL
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    text = "\n".join(handler.lines)
    out, _ = capfd.readouterr()
    assert out == ""  # never on stdout
    if debug:
        assert "HiGHS log" in text and "CBC log" in text and "CP-SAT:" in text
        assert "Running HiGHS" in text and "Result - Optimal solution found" in text
    else:
        assert handler.lines == []


def test_highs_killed_without_incumbent_is_no_solution(tmp_path: Any) -> None:
    import pulp

    from splitllm.solvers import pulp_backend

    p = pulp.LpProblem("p", pulp.LpMinimize)
    x = pulp.LpVariable("x", cat=pulp.LpBinary)
    p += x
    got = pulp_backend._highs_stopped(p, [x], str(tmp_path / "out"), "killed", "", 0.5)
    assert (got.status, got.objective) == (Status.NO_SOLUTION, None)
    assert "killed" in got.message
    np.save(tmp_path / "out.incumbent.npy", np.array([1.0]))
    got = pulp_backend._highs_stopped(p, [x], str(tmp_path / "out"), "killed", "", 0.5)
    assert (got.status, got.objective, got.bound) == (Status.FEASIBLE, 1.0, None)




def test_dp_grid_stops_inside_a_request_at_the_deadline() -> None:
    from splitllm.solvers import dp_grid

    inst = load_instance(example_path("tiny"))
    with pytest.raises(TimeLimitReached, match="grid DP"):
        dp_grid.solve_request(inst.arrays, 0, 0.01, True, deadline_in(-1.0))
    got = solve(inst, "dp-grid", time_limit=0.0)
    assert got.status == Status.NO_SOLUTION and "time limit" in got.message


# -- a deadline enforced from outside: a forked child, killed at the deadline -------------
def _reports_then_hangs(report: Any) -> None:
    import time

    report("first")
    report("second")
    while True:  # never looks at the clock: only a kill stops it
        time.sleep(0.01)


def test_a_forked_child_is_killed_at_the_deadline_and_keeps_its_last_report() -> None:
    import time

    from splitllm.deadline import run_forked

    started = time.perf_counter()
    got = run_forked(_reports_then_hangs, deadline_in(0.3), 0.1)
    assert (got.value, got.finished) == ("second", False)
    assert time.perf_counter() - started < 2.0


def test_a_forked_child_stops_at_its_first_look_past_the_deadline() -> None:
    from splitllm.deadline import check, run_forked

    def work(report: Any) -> str:
        report(1)
        check(deadline_in(-1.0), "building the model")  # ends the child at once: no unwinding
        return "not reached"

    got = run_forked(work, deadline_in(5.0), 0.1)
    assert (got.value, got.finished, got.stopped) == (1, False, "time limit reached while building the model")


def test_a_forked_child_returns_and_raises_as_in_process() -> None:
    from splitllm.deadline import run_forked
    from splitllm.errors import SplitLLMError

    assert run_forked(lambda report: 42, deadline_in(5.0), 0.1).value == 42

    def fails(report: Any) -> None:
        raise SplitLLMError("bad input")

    with pytest.raises(SplitLLMError, match="bad input"):
        run_forked(fails, deadline_in(5.0), 0.1)

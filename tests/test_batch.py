"""F5 throughput placement: the evaluator, and every F5 solver against batch-brute."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from batch_cases import batch_instance, toy_costs
from splitllm.batched import costs as batch_costs
from splitllm.batched.evaluator import cycle_factor, evaluate_batch, verify_batch
from splitllm.errors import InputError
from splitllm.formulations.batch_data import build_data
from splitllm.instance import example_path, load_instance
from splitllm.registry import solve
from splitllm.result import Status
from splitllm.solvers.batch_brute import solve_brute
from splitllm.solvers.batch_cpsat import solve_cpsat
from splitllm.solvers.batch_greedy import solve_greedy
from splitllm.solvers.batch_milp import solve_milp


def _check(inst, result, ttft=False):
    return verify_batch(inst, toy_costs(), result, ttft)


def test_cycle_factor_counts_segments_and_waits():
    x = np.array([[1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 1, 0]], dtype=bool)
    assert cycle_factor(x).tolist() == [1, 0, 2, 3, 4]  # "S..CC..S" wraps: one segment


def test_fixed_charge_is_paid_once_per_active_block():
    inst = batch_instance(3, 3, 4)
    c = toy_costs()
    x = np.ones((3, 4), dtype=bool)
    one = evaluate_batch(inst, c, x, np.array([True, False, False])).iteration_time
    three = evaluate_batch(inst, c, x, np.ones(3, bool)).iteration_time
    attn = c.attention.item_s(np.ones(3), (inst.arrays.prompt_tokens + inst.arrays.output_tokens).astype(float))
    lin = sum(c.lin[k].value([3.0])[0] - c.lin[k].value([1.0])[0] for k in ("embed", "layer", "layer", "head"))
    assert three - one == pytest.approx(lin + 2 * (attn[1] + attn[2]), rel=1e-9)
    assert build_data(inst, c).iteration_time(x, np.ones(3, bool)) == pytest.approx(three, rel=1e-12)


def test_evaluator_names_a_broken_tpot_and_kv():
    inst = batch_instance(5, 3, 4, kv=True)
    ev = evaluate_batch(inst, toy_costs(), np.ones((3, 4), bool), np.ones(3, bool))
    assert ev.violations and all("tpot" in v or "kv_capacity" in v for v in ev.violations)


def _agree(inst, ttft=False):
    c = toy_costs()
    data = build_data(inst, c, ttft=ttft)
    ref = _check(inst, solve_brute(data), ttft)
    assert ref.status == Status.OPTIMAL, ref.message
    t_ref = ref.info["iteration_time_s"]
    for result in (solve_milp(data, "highs"), solve_milp(data, "cbc"), solve_cpsat(data, None, workers=1, seed=0, resolution=10**6)):
        result = _check(inst, result, ttft)
        assert result.status.has_solution, result.message
        assert result.objective == pytest.approx(ref.objective, rel=1e-9)
        assert result.bound >= ref.objective - 1e-9
        rel = 1e-6 if result.status == Status.OPTIMAL else 1e-4  # CP-SAT: within its rounding
        assert result.info["iteration_time_s"] == pytest.approx(t_ref, rel=rel)
        if "iteration_time_bound_s" in result.info:
            assert result.info["iteration_time_bound_s"] <= t_ref * (1 + 1e-9)
    greedy = _check(inst, solve_greedy(data), ttft)
    assert greedy.status == Status.FEASIBLE and greedy.objective <= ref.objective + 1e-9
    return ref


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(1, 3), n_blocks=st.integers(3, 4))
def test_exact_solvers_agree_with_brute_tpot_binding(seed, n_requests, n_blocks):
    _agree(batch_instance(seed, n_requests, n_blocks, kv=False))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(2, 3))
def test_exact_solvers_agree_with_brute_kv_binding(seed, n_requests):
    _agree(batch_instance(seed, n_requests, 4, kv=True))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), n_requests=st.integers(1, 3), kv=st.booleans())
@example(seed=1095, n_requests=3, kv=False)  # CBC with probing on called a worse T optimal here
def test_exact_solvers_agree_with_brute_ttft_held(seed, n_requests, kv):
    _agree(batch_instance(seed, n_requests, 4, kv=kv, ttft=True), ttft=True)


def test_ttft_binds_and_is_checked():
    """With TTFT held, some optimum changes (fewer admitted, or another T); the evaluator
    then names a broken batch-1 TTFT of the answer found without it."""
    changed = named = 0
    for s in range(12):
        inst = batch_instance(s, 3, 4, ttft=True)
        free = _check(inst, solve_brute(build_data(inst, toy_costs())))
        held = _agree(inst, ttft=True)
        changed += free.objective != held.objective or free.info["iteration_time_s"] != held.info["iteration_time_s"]
        ev = evaluate_batch(inst, toy_costs(), free.placements, free.admitted, ttft=True)
        named += any("ttft" in v for v in ev.violations)
    assert changed > 0 and named > 0


def test_some_cases_bind_tpot_and_kv():
    """The random families above exercise both limits: TPOT rejects or is within 20%, KV fills up."""
    rejected, kv_full = 0, 0
    for s in range(10):
        for kv in (False, True):
            inst = batch_instance(s, 3, 4, kv)
            ref = _check(inst, solve_brute(build_data(inst, toy_costs())))
            tight = ref.evaluation.metrics.tpot[ref.admitted] >= 0.8 * inst.arrays.tpot_limit[ref.admitted]
            rejected += not kv and (not ref.admitted.all() or bool(tight.any()))
            kv_full += kv and ref.evaluation.totals["kv"] >= 0.5 * inst.arrays.kv_capacity
    assert rejected > 0 and kv_full > 0


def test_registry_solves_through_the_one_table_source(monkeypatch):
    monkeypatch.setattr(batch_costs, "batched_costs", lambda instance, engine="vllm": toy_costs())
    inst = batch_instance(4, 3, 4)
    for name in ("batch-brute", "batch-greedy", "batch-milp", "batch-cpsat"):
        result = solve(inst, name, time_limit=20)
        assert result.status.has_solution, (name, result.message)
        assert result.evaluation is not None and result.evaluation.feasible


def test_time_limit_is_held_without_error(monkeypatch):
    monkeypatch.setattr(batch_costs, "batched_costs", lambda instance, engine="vllm": toy_costs())
    inst = batch_instance(7, 12, 6, kv=True)
    for name in ("batch-milp", "batch-cpsat"):
        result = solve(inst, name, time_limit=0.5)
        assert result.status in (Status.OPTIMAL, Status.FEASIBLE, Status.NO_SOLUTION), (name, result.message)


def test_instance_without_batched_tables_is_refused():
    inst = batch_instance(1)
    with pytest.raises(InputError, match="server.device"):
        solve(inst, "batch-greedy")


def test_bundled_example_is_placed():
    inst = load_instance(example_path("llama2-7b"))
    result = solve(inst, "batch-greedy")
    assert result.status == Status.FEASIBLE and result.evaluation.feasible


def test_check_re_evaluates_a_throughput_solution_file(tmp_path):
    """`splitllm check` prices T with the file's engine: a written answer passes, a
    misstated iteration time or a TPOT promise fails."""
    import json

    from click.testing import CliRunner

    from splitllm.cli import main
    from splitllm.instance import example_path

    example = str(example_path("llama2-7b"))
    out = tmp_path / "batch.json"
    solved = CliRunner().invoke(main, ["solve", example, "--solver", "batch-greedy", "-o", "engine=tensorrt-llm", "--out", str(out)])
    assert solved.exit_code == 0, solved.output
    data = json.loads(out.read_text())
    assert data["engine"] == "tensorrt-llm" and data["totals"]["iteration_time_s"] > 0
    assert CliRunner().invoke(main, ["check", example, str(out)]).exit_code == 0
    for damage in ("iteration_time_s", "tpot_s"):
        bad = json.loads(out.read_text())
        if damage == "iteration_time_s":
            bad["totals"]["iteration_time_s"] *= 0.9
        else:
            first = next(e for e in bad["requests"] if e["admitted"])
            first["tpot_s"] *= 0.9
        path = tmp_path / f"bad-{damage}.json"
        path.write_text(json.dumps(bad))
        checked = CliRunner().invoke(main, ["check", example, str(path)])
        assert checked.exit_code == 1 and damage in checked.output, checked.output


def test_check_holds_ttft_when_the_file_says_so(tmp_path):
    """A file solved with `-o ttft=true` records it and passes `check`; the same claim on an
    answer found without it is refused, naming the broken TTFT."""
    import json

    from click.testing import CliRunner

    from splitllm.cli import main

    example = str(example_path("llama2-7b"))
    held, free = tmp_path / "held.json", tmp_path / "free.json"
    for out, extra in ((held, ["-o", "ttft=true"]), (free, [])):
        solved = CliRunner().invoke(main, ["solve", example, "--solver", "batch-greedy", *extra, "--out", str(out)])
        assert solved.exit_code == 0, solved.output
        assert "decode iteration time T" in solved.output and "nan" not in solved.output
    assert json.loads(held.read_text())["ttft"] is True
    assert CliRunner().invoke(main, ["check", example, str(held)]).exit_code == 0
    data = json.loads(free.read_text())
    assert data["ttft"] is False
    data["ttft"] = True
    free.write_text(json.dumps(data))
    checked = CliRunner().invoke(main, ["check", example, str(free)])
    assert checked.exit_code != 0 and "batch-1 ttft_s" in checked.output

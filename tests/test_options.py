"""Declared solver options: every one through the CLI (good and bad), the Python errors,
``time_limit`` checks, no file for a failed solve, and CP-SAT reproducible with one worker."""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from coupled_cases import coupled_instance

from splitllm import registry
from splitllm.cli import main
from splitllm.errors import OptionError, SplitLLMError
from splitllm.instance import example_path, load_instance
from splitllm.options import Option
from splitllm.result import SolveResult, Status

TINY = str(example_path("tiny"))
SPECS = registry.solvers()
OPTIONS = [(name, option) for name, spec in sorted(SPECS.items()) for option in spec.options]


def _good(option: Option) -> str:
    """A valid CLI string for ``option``: a non-default value where there is one."""
    if option.kind == "boolean":
        return str(not option.default).lower()
    if option.kind == "choice":
        return option.choices[-1]
    if option.default is None:
        return str(int(option.low or 1))
    return str(option.default)


def _bad(option: Option) -> list[str]:
    """Invalid CLI strings for ``option``: a wrong type, and just outside its range."""
    if option.kind == "boolean":
        return ["maybe"]
    if option.kind == "choice":
        return ["nope"]
    bad = ["abc", "nan"] if option.kind == "number" else ["two", "2.5"]
    if option.low is not None:
        bad.append(str(option.low if option.low_open else option.low - 1))
    if option.high is not None:
        bad.append(str(option.high * 2))
    return bad


def _invoke(*args: str):  # noqa: ANN202 - click's Result
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return CliRunner().invoke(main, list(args))


def test_every_solver_declares_the_options_of_its_function() -> None:
    for name, spec in SPECS.items():
        params = inspect.signature(spec.function).parameters
        taken = {p: v.default for p, v in params.items() if v.kind == v.KEYWORD_ONLY and p != "time_limit"}
        assert taken == {o.name: o.default for o in spec.options}, name


def _decode_batch(tmp_path: Path) -> str:
    """Tiny with a batched server profile and every request decoding: what the F5 solvers take."""
    from hostile_cases import decoding_batch

    data = decoding_batch(tpot_s=1.0)
    path = tmp_path / "decode-batch.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(("name", "option"), OPTIONS, ids=[f"{n}-{o.name}" for n, o in OPTIONS])
def test_a_good_option_through_the_cli_solves(name: str, option: Option, tmp_path: Path) -> None:
    instance = _decode_batch(tmp_path) if name.startswith("batch") else TINY
    result = _invoke("solve", instance, "--solver", name, "-o", f"{option.name}={_good(option)}", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] in ("optimal", "feasible")


@pytest.mark.parametrize(("name", "option"), OPTIONS, ids=[f"{n}-{o.name}" for n, o in OPTIONS])
def test_a_bad_option_through_the_cli_is_one_line_and_exit_2(name: str, option: Option) -> None:
    for value in _bad(option):
        result = _invoke("solve", TINY, "--solver", name, "-o", f"{option.name}={value}")
        assert result.exit_code == 2, (value, result.output)
        assert result.stderr == f"error: -o {option.name}: expected {option.expected()}, got {value!r}\n"
        assert "Traceback" not in result.output


@pytest.mark.parametrize("name", sorted(SPECS))
def test_an_unknown_option_names_the_valid_ones(name: str) -> None:
    result = _invoke("solve", TINY, "--solver", name, "-o", "foo=1")
    assert result.exit_code == 2
    valid = ", ".join([o.name for o in SPECS[name].options] + ["time_limit"])
    assert result.stderr == f"error: -o foo: solver {name!r} has no option 'foo'; valid: {valid}\n"


def test_bad_options_of_three_kinds_exit_2_without_traceback() -> None:
    for solver, pair in (("dp", "foo=1"), ("dp-grid", "grid_step=abc"), ("cpsat", "workers=two")):
        result = _invoke("solve", TINY, "--solver", solver, "-o", pair)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "expected a number in (0, 1], got 'abc'" in _invoke("solve", TINY, "--solver", "dp-grid", "-o", "grid_step=abc").stderr


def test_solvers_lists_every_option() -> None:
    listing = _invoke("solvers").stdout
    for _, option in OPTIONS:
        assert f"-o {option.describe()}" in listing


def test_a_misspelled_option_in_python_names_the_valid_ones() -> None:
    inst = load_instance(example_path("tiny"))
    with pytest.raises(OptionError, match=r"^time_limt: solver 'dp' has no option 'time_limt' \(did you mean 'time_limit'\?\); valid: time_limit$"):
        registry.solve(inst, "dp", time_limt=5)
    with pytest.raises(SplitLLMError, match="valid: grid_step, bound, time_limit"):
        registry.solve(inst, "dp-grid", gridstep=0.1)


def test_typed_options_in_python() -> None:
    inst = load_instance(example_path("tiny"))
    assert registry.solve(inst, "dp-grid", grid_step=0.05, bound=False).status == Status.FEASIBLE
    with pytest.raises(OptionError, match="^backend: expected one of highs, cbc, got 'gurobi'$"):
        registry.solve(inst, "milp", backend="gurobi")
    with pytest.raises(OptionError, match="^workers: expected an integer >= 1, got 2.0$"):
        registry.solve(inst, "cpsat", workers=2.0)


@pytest.mark.parametrize("limit", [float("inf"), float("nan"), -1.0, "5", True])
def test_time_limit_is_checked(limit: object) -> None:
    with pytest.raises(OptionError, match="^time_limit: expected a number >= 0"):
        registry.solve(load_instance(example_path("tiny")), "dp", time_limit=limit)


def test_time_limit_through_the_cli() -> None:
    assert _invoke("solve", TINY, "--time-limit", "inf").exit_code == 2
    assert "use --time-limit" in _invoke("solve", TINY, "-o", "time_limit=5").stderr


def _wrong(instance, *, time_limit=None):  # noqa: ANN001, ANN202 - a solver that misstates its answer
    n = instance.n_requests
    return SolveResult("wrong", Status.OPTIMAL, np.ones((n, instance.n_blocks), bool), np.ones(n, bool), objective=-1.0)


def test_a_failed_solve_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTRY, "wrong", registry.SolverSpec("wrong", "test", _wrong))
    out, plot = tmp_path / "sol.json", tmp_path / "p.png"
    result = _invoke("solve", TINY, "--solver", "wrong", "--out", str(out), "--plot", str(plot))
    assert result.exit_code == 1
    assert "not written" in result.stderr and "evaluator finds" in result.stderr
    assert not out.exists() and not plot.exists()


def test_check_rejects_a_solution_whose_status_is_error(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    assert _invoke("solve", TINY, "--out", str(good)).exit_code == 0
    assert _invoke("check", TINY, str(good)).exit_code == 0
    data = json.loads(good.read_text())
    data.update(status="error", message="objective: misstated")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = _invoke("check", TINY, str(bad))
    assert result.exit_code == 1 and "status: error" in result.stderr


@pytest.mark.parametrize("formulation", ["compact", "column"])
def test_cpsat_with_one_worker_and_a_seed_is_reproducible(formulation: str) -> None:
    inst = coupled_instance(3, 6, 6, "max_admitted")
    runs = [registry.solve(inst, "cpsat", workers=1, seed=7, formulation=formulation) for _ in range(3)]
    first = runs[0]
    assert first.status.has_solution
    for again in runs[1:]:
        assert again.status == first.status and again.objective == first.objective and again.bound == first.bound
        assert np.array_equal(again.placements, first.placements) and np.array_equal(again.admitted, first.admitted)


@pytest.mark.parametrize("n_requests", [3, 240])
def test_plot_writes_a_png(tmp_path: Path, n_requests: int) -> None:
    pytest.importorskip("matplotlib", reason="--plot draws with matplotlib")
    inst = coupled_instance(2, n_requests, 6, "max_admitted")
    source, plot = tmp_path / "inst.json", tmp_path / "out" / "placement.png"
    source.write_text(json.dumps(inst.source))
    result = _invoke("solve", str(source), "--solver", "decomp", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in plot.parent.iterdir()] == ["placement.png"]  # no temporary file left


def test_plot_title_says_when_requests_are_subsampled() -> None:
    from splitllm.plot import _title, shown_rows

    inst = coupled_instance(2, 240, 6, "max_admitted")
    result = registry.solve(inst, "decomp")
    assert "showing 200 of 240 requests" in _title(inst, result, shown_rows(240))
    assert "showing" not in _title(inst, result, shown_rows(240, 300))


def test_highs_threads_after_another_highs_run_in_the_same_process() -> None:
    inst = load_instance(example_path("tiny"))
    registry.solve(inst, "milp")
    for threads in (1, 2):
        assert registry.solve(inst, "milp", threads=threads).status == Status.OPTIMAL

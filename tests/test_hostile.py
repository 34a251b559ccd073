"""Hostile input, generated: every case is refused with one line naming its path (exit 2),
or solved by every exact solver alike and confirmed by ``splitllm check`` -- never a
traceback, never a NaN in what is written.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hostile_cases import (
    ARRIVALS,
    GENERATE_OPTIONS,
    NUMERIC_FIELDS,
    SIMULATE_OPTIONS,
    SNAPSHOTS,
    TINY,
    Case,
    batched_profiled,
    csv_cases,
    decoding_batch,
    instance_cases,
    max_admitted_claims,
    option_cases,
    profiled,
    solution_cases,
    with_arrival_pattern,
)
from splitllm import jsonio
from sweeps import thinned
from splitllm.cli import main
from splitllm.instance import example_path, load_instance
from splitllm.registry import solve
from splitllm.solution import to_json
from splitllm.schema_check import instance_schema, solution_schema

EXACT = ("dp", "decomp", "milp", "brute")
INSTANCE_CASES = {case.name: case for case in instance_cases()}

#: Crashes inside the solvers, left for their owners: case name -> cause.


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: {type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.output
    return result


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def assert_refused(result: Result, case: Case, one_line: bool = True) -> None:
    """Exit 2 with one ``error:`` line that names the damaged path (with ``one_line``
    false: several, when damage breaks several fields, the first naming the path)."""
    lines = result.output.splitlines()
    assert result.exit_code == 2 and lines and (len(lines) == 1 or not one_line), result.output
    assert all(line.startswith("error: ") and line.isprintable() for line in lines), result.output
    assert lines[0].startswith("error: ") and lines[0].isprintable(), lines[0]
    assert case.path in lines[0], f"{case.path!r} not named in {lines[0]!r}"


def strict_json(path: Path) -> Any:
    """A written file parsed with NaN and infinities refused."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{path.name} holds {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def solve_and_check(tmp_path: Path, instance: Path, solver: str) -> dict[str, Any]:
    out = tmp_path / f"{solver}.json"
    result = invoke("solve", str(instance), "--solver", solver, "--out", str(out))
    assert result.exit_code in (0, 1), result.output
    assert "nan" not in result.output.lower().replace("infeasible", ""), result.output
    assert all(line.isprintable() for line in result.output.splitlines()), result.output
    solution = strict_json(out)
    check = invoke("check", str(instance), str(out))
    if solution["status"] in ("optimal", "feasible"):
        assert check.exit_code == 0, check.output
    else:
        assert solution["status"] == "infeasible" and check.exit_code == 1, (solution["status"], check.output)
    return solution


@pytest.mark.parametrize("name", thinned(INSTANCE_CASES, 2))
def test_damaged_instance(tmp_path: Path, name: str) -> None:
    case = INSTANCE_CASES[name]
    instance = write(tmp_path, "instance.json", case.text)
    validated = invoke("validate", str(instance))
    if validated.exit_code != 0:
        assert_refused(validated, case)
        out = tmp_path / "never.json"
        assert_refused(invoke("solve", str(instance), "--out", str(out)), case)
        assert not out.exists()
        return
    assert validated.output.count("\n") == 1 and validated.output.rstrip("\n").isprintable(), validated.output
    server = json.loads(case.text)["server"]
    coupled = "work_capacity_s" in server or "kv_capacity_bytes" in server
    solvers = [s for s in EXACT if not (coupled and s == "dp")]  # dp places requests one by one
    solutions = {solver: solve_and_check(tmp_path, instance, solver) for solver in solvers}
    statuses = {solver: s["status"] for solver, s in solutions.items()}
    assert len(set(statuses.values())) == 1, statuses
    objectives = [s["objective"] for s in solutions.values() if s["objective"] is not None]
    assert all(math.isclose(v, objectives[0], rel_tol=1e-6, abs_tol=1e-9) for v in objectives), objectives


def _schema_numeric_keys(node: Any, key: str = "") -> set[str]:
    """Names of every numeric field the schema defines (``$defs`` names stand for themselves)."""
    found: set[str] = set()
    if isinstance(node, dict):
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if "number" in types or "integer" in types or node.get("$ref", "").split("/")[-1] in ("seconds", "bytes", "bandwidth", "tokens", "weight"):
            found.add(key)
        for child_key, child in node.items():
            name = child_key if child_key not in ("properties", "items", "prefixItems", "additionalProperties", "$defs") else key
            found |= _schema_numeric_keys(child, name)
    elif isinstance(node, list):
        for child in node:
            found |= _schema_numeric_keys(child, key)
    return found


def test_generator_covers_every_numeric_field() -> None:
    """Every numeric field of the schema is damaged by the generator."""
    # a field under an object of free keys (e.g. overheads.vllm) is named by that object
    covered = {part.split("[")[0] for path in NUMERIC_FIELDS for part in path.split(".")[-2:]} | {"curve", "costArray"}
    not_numeric = {"seconds", "bytes", "bandwidth", "tokens", "weight", "version", "id"}  # $defs, a constant, a name
    missing = _schema_numeric_keys(instance_schema()) - covered - not_numeric
    assert not missing, f"no hostile cases for {sorted(missing)}"


def _tiny_solution() -> dict[str, Any]:
    """The dp solution of tiny, as ``splitllm solve --out`` writes it."""
    instance = load_instance(example_path("tiny"))
    return json.loads(json.dumps(to_json(instance, solve(instance, "dp"))))


SOLUTION_CASES = {case.name: case for case in solution_cases(_tiny_solution())}


@pytest.mark.parametrize("name", list(SOLUTION_CASES))
def test_damaged_solution(tmp_path: Path, name: str) -> None:
    """Every damaged solution file fails ``check``: exit 2 naming the path, or exit 1."""
    case = SOLUTION_CASES[name]
    instance = write(tmp_path, "tiny.json", json.dumps(TINY))
    result = invoke("check", str(instance), str(write(tmp_path, "solution.json", case.text)))
    lines = result.output.splitlines()
    assert result.exit_code in (1, 2) and lines, result.output
    if result.exit_code == 2:
        assert_refused(result, case, one_line=False)
    else:
        assert all(line.startswith("FAIL ") and line.isprintable() for line in lines), result.output


def test_bound_below_objective_under_max_admitted(tmp_path: Path) -> None:
    data = {**TINY, "objective": "max_admitted"}
    instance = write(tmp_path, "max.json", json.dumps(data))
    solution = solve_and_check(tmp_path, instance, "dp")
    for case in max_admitted_claims(solution):
        result = invoke("check", str(instance), str(write(tmp_path, "s.json", case.text)))
        assert result.exit_code == 1 and "bound:" in result.output, result.output


def test_solution_schema_describes_every_field() -> None:
    for schema in (instance_schema(), solution_schema()):
        assert "DESIGN" not in json.dumps(schema)
        assert not _undescribed(schema), _undescribed(schema)


def _undescribed(node: Any, path: str = "") -> list[str]:
    """Paths of schema properties without a description."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, child in node.get("properties", {}).items():
            if "description" not in child:
                found.append(f"{path}.{key}")
        for key, child in node.items():
            found += _undescribed(child, f"{path}.{key}" if key != "properties" else path)
    return found


def test_special_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading it would block for ever
    for path in (fifo, Path("/dev/zero"), tmp_path):
        result = invoke("validate", str(path))
        assert result.exit_code == 2 and result.output.startswith(f"error: {path}: "), result.output


def test_file_size_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonio, "MAX_FILE_BYTES", 100)
    result = invoke("validate", str(write(tmp_path, "big.json", json.dumps(TINY))))
    assert result.exit_code == 2 and "byte limit" in result.output, result.output


@pytest.mark.parametrize("where", ["directory", "under_a_file", "proc", "device", "the_input"])
def test_out_problems_are_found_before_the_solve(tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = write(tmp_path, "tiny.json", json.dumps(TINY))
    out = {
        "directory": tmp_path,
        "under_a_file": instance / "s.json",
        "proc": Path("/proc/splitllm-solution.json"),
        "device": Path("/dev/null"),
        "the_input": tmp_path / "." / "tiny.json",
    }[where]

    def no_solve(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("solved before the output path was checked")

    monkeypatch.setattr("splitllm.registry.solve", no_solve)
    result = invoke("solve", str(instance), "--out", str(out))
    assert result.exit_code == 2 and result.output.startswith("error: --out: "), result.output
    assert len(result.output.splitlines()) == 1 and instance.read_text() == json.dumps(TINY)


def test_out_in_a_new_folder_is_written(tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder" / "s.json"
    assert invoke("solve", str(example_path("tiny")), "--out", str(out)).exit_code == 0
    assert strict_json(out)["status"] == "optimal"


def test_ctrl_c_during_a_solve_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("splitllm.registry.solve", interrupted)
    result = invoke("solve", str(example_path("tiny")))
    assert (result.exit_code, result.output) == (130, "error: interrupted\n")


def test_unprintable_names_are_escaped(tmp_path: Path) -> None:
    case = INSTANCE_CASES["requests[0].id:lone_surrogate"]
    instance = write(tmp_path, "i.json", case.text)
    out = tmp_path / "s.json"
    result = invoke("solve", str(instance), "--out", str(out))
    assert result.exit_code == 0 and "\\ud800 \\x07" in result.output and "two\\nlines" in result.output
    assert all(line.isprintable() for line in result.output.splitlines())
    assert invoke("check", str(instance), str(out)).exit_code == 0



# -- splitllm simulate ----------------------------------------------------------------------
def assert_one_line_refusal(result: Result, names: str) -> None:
    """Exit 2 with ``error:`` lines only (one per problem), the first naming ``names``."""
    lines = result.output.splitlines()
    assert result.exit_code == 2 and lines, result.output
    assert all(line.startswith("error: ") and line.isprintable() for line in lines), result.output
    assert names in lines[0], (names, lines[0])


def assert_simulated(out: Path, n_requests: int) -> dict[str, Any]:
    """A finished simulation: every request has its row, nothing is NaN, every request is
    served, dropped (its KV never fits) or not sent."""
    summary = strict_json(out / "summary.json")
    rows = (out / "requests.csv").read_text().splitlines()
    assert len(rows) == n_requests + 1 and "nan" not in (out / "requests.csv").read_text().lower()
    assert summary["served"] + summary["dropped_kv"] + (summary["requests"] - summary["sent"]) >= summary["requests"]
    assert 0.0 <= summary["slo_attainment"] <= 1.0
    return summary


SIMULATE_OPTION_CASES = {name: (args, option) for name, args, option in option_cases(SIMULATE_OPTIONS)}


@pytest.mark.parametrize("name", list(SIMULATE_OPTION_CASES))
def test_damaged_simulate_option(tmp_path: Path, name: str) -> None:
    """Every damaged number on the command line: simulated, or refused with one line naming
    the option and no file written."""
    args, option = SIMULATE_OPTION_CASES[name]
    data = with_arrival_pattern("reversed")
    instance = write(tmp_path, "i.json", json.dumps(data))
    out = tmp_path / "out"
    result = invoke("simulate", str(instance), *args, "--out", str(out))
    if result.exit_code == 0:
        assert_simulated(out, len(data["requests"]))
    else:
        assert_one_line_refusal(result, option)
        assert not out.exists()


@pytest.mark.parametrize("engine", ["vllm", pytest.param("tensorrt-llm", marks=pytest.mark.slow)])
@pytest.mark.parametrize("pattern", thinned(ARRIVALS, 2))
def test_arrival_patterns_are_simulated_by_every_kind_of_policy(tmp_path: Path, pattern: str, engine: str) -> None:
    data = with_arrival_pattern(pattern)
    instance = write(tmp_path, "i.json", json.dumps(data))
    policies = ["all-server", "dp", "batch-greedy:2", "batch-online"]
    result = invoke("simulate", str(instance), "--engine", engine, *(a for p in policies for a in ("--policy", p)), "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    for policy in policies:
        summary = assert_simulated(tmp_path / "o" / policy.replace(":", "_"), len(data["requests"]))
        assert summary["served"] == len(data["requests"]), (policy, summary)


@pytest.mark.parametrize("engine", ["vllm", "tensorrt-llm"])
@pytest.mark.parametrize("kv", [1.0, 1e-300, 600.0])
def test_requests_whose_kv_never_fits_are_dropped_and_said(tmp_path: Path, kv: float, engine: str) -> None:
    """A server with (almost) no KV: every request that cannot fit is dropped, the run ends
    and its line says how many (never a hang, never a request waiting for ever)."""
    data = with_arrival_pattern("duplicated", kv_capacity_bytes=kv)
    instance = write(tmp_path, "i.json", json.dumps(data))
    result = invoke("simulate", str(instance), "--engine", engine, "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    summary = assert_simulated(tmp_path / "o", len(data["requests"]))
    assert summary["served"] + summary["dropped_kv"] == summary["requests"]
    if summary["dropped_kv"]:
        assert f"{summary['dropped_kv']} dropped" in result.output


def test_a_server_without_a_batched_section_is_refused(tmp_path: Path) -> None:
    instance = write(tmp_path, "i.json", json.dumps(profiled()))
    assert_one_line_refusal(invoke("simulate", str(instance), "--out", str(tmp_path / "o")), "devices.gpu")
    assert not (tmp_path / "o").exists()


def _batched_solution(tmp_path: Path, solver: str = "dp") -> dict[str, Any]:
    instance = write(tmp_path, "i.json", json.dumps(decoding_batch(0.1)))
    out = tmp_path / f"{solver}.json"
    assert invoke("solve", str(instance), "--solver", solver, "--out", str(out)).exit_code == 0
    return strict_json(out)


@pytest.mark.parametrize("solver", ["dp", "batch"])
def test_per_request_and_throughput_solutions_are_replayed(tmp_path: Path, solver: str) -> None:
    _batched_solution(tmp_path, solver)
    result = invoke("simulate", str(tmp_path / "i.json"), "--policy", f"solution:{tmp_path / f'{solver}.json'}", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert_simulated(tmp_path / "o", len(decoding_batch(0.1)["requests"]))


def _replay_cases() -> dict[str, Case]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        solution = _batched_solution(Path(folder))
    cases = {case.name: case for case in solution_cases(solution)}
    other = copy.deepcopy(solution)
    other["requests"][0]["placement"] = "SS"  # another model's block count
    cases["claim:other_model"] = Case("claim:other_model", json.dumps(other), "")
    return cases


REPLAY_CASES = _replay_cases()


@pytest.mark.parametrize("name", list(REPLAY_CASES))
def test_damaged_solution_replay_is_refused(tmp_path: Path, name: str) -> None:
    """``--policy solution:FILE`` with any damaged file (another instance, wrong ids or block
    counts, false claims, broken limits): refused as ``splitllm check`` refuses it, nothing written."""
    instance = write(tmp_path, "i.json", json.dumps(decoding_batch(0.1)))
    solution = write(tmp_path, "s.json", REPLAY_CASES[name].text)
    result = invoke("simulate", str(instance), "--policy", f"solution:{solution}", "--out", str(tmp_path / "o"))
    assert_one_line_refusal(result, "--policy")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["a_file", "under_a_file", "proc", "device", "the_instance", "stale_summary", "stale_capacity", "stale_policy_folder"])
def test_simulate_out_problems_are_found_before_any_work(tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = write(tmp_path, "i.json", json.dumps(batched_profiled()))
    out = {"a_file": instance, "under_a_file": instance / "o", "proc": Path("/proc/splitllm-out"), "device": Path("/dev/null"),
           "the_instance": instance}.get(where, tmp_path / "o")  # fmt: skip
    if where.startswith("stale"):
        out.mkdir()
        stale = {"stale_summary": "summary.json", "stale_capacity": "capacity.json", "stale_policy_folder": "dp/summary.json"}[where]
        (out / stale).parent.mkdir(exist_ok=True)
        (out / stale).write_text("{}")
    before = sorted(p.name for p in tmp_path.rglob("*"))

    def no_simulation(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("simulated before the output folder was checked")

    monkeypatch.setattr("splitllm.cli.simulate._run_one", no_simulation)
    policies = ["--policy", "all-server"] if where != "stale_summary" else ["--policy", "all-server", "--policy", "dp"]
    assert_one_line_refusal(invoke("simulate", str(instance), *policies, "--out", str(out)), "--out")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_ctrl_c_during_a_simulation_is_one_line_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("splitllm.cli.simulate._run_one", interrupted)
    instance = write(tmp_path, "i.json", json.dumps(batched_profiled()))
    result = invoke("simulate", str(instance), "--out", str(tmp_path / "o"))
    assert (result.exit_code, result.output) == (130, "error: interrupted\n")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_rate_a_hundred_times_the_capacity_finishes_and_says_so(tmp_path: Path) -> None:
    """300 trace requests at 100x what the server sustains: the run ends, every request has
    its row, and the line says how few met their SLOs."""
    result = invoke("simulate", str(example_path("llama2-7b")), "--trace", "azure-conv", "--requests", "300", "--rate", "500",
                    "--out", str(tmp_path / "o"))  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = assert_simulated(tmp_path / "o", 300)
    assert summary["slo_attainment"] < 0.5 and f"{summary['slo_attainment']:.1%}" in result.output


# -- the throughput-placement (F5) solvers ---------------------------------------------------
F5_SOLVERS = ("batch", "batch-greedy", "batch-milp", "batch-cpsat", "batch-brute")


QUICK_SNAPSHOTS = ("as_is", "kv_of_one_byte", "tpot_1e-9")


@pytest.mark.parametrize("damage", [d if d in QUICK_SNAPSHOTS else pytest.param(d, marks=pytest.mark.slow) for d in SNAPSHOTS])
def test_damaged_snapshots_get_honest_statuses_from_every_f5_solver(tmp_path: Path, damage: str) -> None:
    """Each solver answers (or refuses in one line); every answer passes ``splitllm check``;
    the solvers that say ``optimal`` agree on the admitted weight."""
    data = decoding_batch(0.1)
    SNAPSHOTS[damage](data)
    instance = write(tmp_path, "i.json", json.dumps(data))
    optimal: dict[str, float] = {}
    for solver in F5_SOLVERS:
        out = tmp_path / f"{solver}.json"
        result = invoke("solve", str(instance), "--solver", solver, "--time-limit", "20", "--out", str(out))
        if result.exit_code == 2:
            assert_one_line_refusal(result, solver)
            assert not out.exists()
            continue
        solution = strict_json(out)
        check = invoke("check", str(instance), str(out))
        assert check.exit_code == (0 if solution["status"] in ("optimal", "feasible") else 1), (solver, solution["status"], check.output)
        if solution["status"] == "optimal":
            optimal[solver] = solution["objective"]
    assert optimal and all(math.isclose(v, next(iter(optimal.values())), rel_tol=1e-6) for v in optimal.values()), optimal


@pytest.mark.parametrize("limit", ["0", "1e-9", pytest.param("1e9", marks=pytest.mark.slow)])
@pytest.mark.parametrize("solver", F5_SOLVERS)
def test_f5_time_limits_at_the_extremes(tmp_path: Path, solver: str, limit: str) -> None:
    instance = write(tmp_path, "i.json", json.dumps(decoding_batch(0.1)))
    out = tmp_path / "s.json"
    result = invoke("solve", str(instance), "--solver", solver, "--time-limit", limit, "--out", str(out))
    assert result.exit_code in (0, 1), result.output
    solution = strict_json(out)
    assert solution["status"] in ("optimal", "feasible", "no_solution"), solution["status"]
    if solution["status"] != "no_solution":
        assert invoke("check", str(instance), str(out)).exit_code == 0


# -- generate, export, fidelity, profiles import ---------------------------------------------
GENERATE_CASES = {name: (args, option) for name, args, option in option_cases(GENERATE_OPTIONS)}


@pytest.mark.parametrize("name", thinned(GENERATE_CASES, 2))
def test_damaged_generate_option(tmp_path: Path, name: str) -> None:
    args, option = GENERATE_CASES[name]
    if args[0] != "--requests":
        args = [*args, "--requests", "3"]
    out = tmp_path / "g.json"
    result = invoke("generate", *args, "--out", str(out))
    if result.exit_code == 0:
        assert invoke("validate", str(out)).exit_code == 0
        strict_json(out)
    else:
        assert_one_line_refusal(result, option)
        assert not out.exists()


def test_export_throughput_refuses_bad_outputs_and_instances_without_batched_tables(tmp_path: Path) -> None:
    batch = write(tmp_path, "b.json", json.dumps(decoding_batch(0.1)))
    for instance, out, names in ((batch, Path("/proc/m.lp"), "--out"), (batch, batch, "--out"), (write(tmp_path, "t.json", json.dumps(TINY)), tmp_path / "m.lp", "server.device")):
        assert_one_line_refusal(invoke("export", str(instance), "--formulation", "throughput", "--out", str(out)), names)
    assert not (tmp_path / "m.lp").exists()
    assert invoke("export", str(batch), "--formulation", "throughput", "--format", "lp", "--out", str(tmp_path / "m.lp")).exit_code == 0


BENCH_CSV = (
    "Hardware,Num of Hardware,Framework,Model,Input Output Length,Batch Size,Latency,Throughput\n"
    "Nvidia A100 GPU,1,vLLM,meta-llama/Llama-2-7b-hf,128,1,2.5,51.2\n"
)


@pytest.mark.parametrize(("name", "body"), list(csv_cases(BENCH_CSV)))
def test_damaged_bench_csv_is_refused_naming_it(tmp_path: Path, name: str, body: bytes) -> None:
    data = tmp_path / "All_results.csv"
    data.write_bytes(body)
    (tmp_path / "vidur").mkdir()
    result = invoke("fidelity", "--out", str(tmp_path / "o"), "--data", str(data), "--vidur", str(tmp_path / "vidur"))
    assert_one_line_refusal(result, str(data))
    assert not (tmp_path / "o").exists()


SPLITWISE_CSV = "model,hardware,batch_size,prompt_size,tensor_parallel,prompt_time\nllama2-70b,a100-80gb,1,512,2,100\n"


@pytest.mark.parametrize(("name", "body"), [*csv_cases(SPLITWISE_CSV), ("fractional_tp", SPLITWISE_CSV.replace(",2,", ",2.5,").encode())])
def test_damaged_splitwise_csv_is_refused_naming_it(tmp_path: Path, name: str, body: bytes) -> None:
    prefill = tmp_path / "perf_model.csv"
    prefill.write_bytes(body)
    data = write(tmp_path, "All_results.csv", BENCH_CSV)
    (tmp_path / "vidur").mkdir()
    result = invoke("fidelity", "--out", str(tmp_path / "o"), "--data", str(data), "--vidur", str(tmp_path / "vidur"), "--splitwise", str(prefill))
    assert_one_line_refusal(result, str(prefill))
    assert not (tmp_path / "o").exists()


def _mlp_csv() -> str:
    from splitllm.instances.vidur import LAYER_OPS

    columns = [f"time_stats.{op}.median" for op in LAYER_OPS]
    rows = [f"1,{n}," + ",".join(f"{0.01 * (1 + n / 512):.6f}" for _ in columns) for n in (1, 16, 256, 4096)]
    return "\n".join(["num_tensor_parallel_workers,num_tokens," + ",".join(columns), *rows]) + "\n"


@pytest.mark.parametrize(("name", "body"), list(csv_cases(_mlp_csv())))
def test_damaged_vidur_table_is_refused_naming_it(tmp_path: Path, name: str, body: bytes) -> None:
    table = tmp_path / "vidur" / "profiling" / "compute" / "a100" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv"
    table.parent.mkdir(parents=True)
    table.write_bytes(body)
    result = invoke("profiles", "import", "vidur", str(tmp_path / "vidur"), "--out-dir", str(tmp_path / "profiles"))
    assert_one_line_refusal(result, str(table) if name not in ("empty",) else "")
    assert not any((tmp_path / "profiles").glob("*.json"))


@pytest.mark.parametrize(("name", "body"), list(csv_cases("0,0\n250,2\n500,4\n")))
def test_damaged_helix_table_is_refused_naming_it(tmp_path: Path, name: str, body: bytes) -> None:
    folder = tmp_path / "helix" / "llama2_70b" / "a100"
    folder.mkdir(parents=True)
    (folder / "prompt_bs2time.csv").write_bytes(body)
    (folder / "decode_bs2time.csv").write_text("0,0\n1,20\n8,22\n")
    result = invoke("profiles", "import", "helix", str(tmp_path / "helix"), "--out-dir", str(tmp_path / "profiles"))
    assert_one_line_refusal(result, "prompt_bs2time.csv")
    assert not any((tmp_path / "profiles").glob("*.json"))

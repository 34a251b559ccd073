"""Add a per-request limit the way a developer would, then check every consumer sees it.

Run by ``tests/test_new_limit.py`` in a fresh interpreter: the row goes into the resources
table *before* any other splitllm module is imported (the DP's label slots, F1's edge
attributes and the schemas are derived from the table when their modules load), then the
new figure is priced where the table's docstring says (the evaluator's ``FIGURES``, F1's
``EDGE_COSTS``, F2's ``ROW_BUILDERS``). Nothing else is touched: every other consumer
must pick the limit up from the table. The limit is ``client_time``: the client's
compute seconds for the whole request (prefill plus every decode step of its client
blocks), bounded by ``slo.client_time_s``. Prints ``ok`` when every check holds.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np


def load_alone(name: str) -> ModuleType:
    """Module ``splitllm.<name>`` executed without the package's ``__init__`` (which imports
    every consumer), so that the table can change before anything reads it."""
    package = importlib.util.find_spec("splitllm")
    assert package is not None and package.submodule_search_locations
    path = Path(list(package.submodule_search_locations)[0]) / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"splitllm.{name}", path)
    assert spec is not None and spec.loader is not None
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load_alone("tolerances")
table = load_alone("resources")

# 1. The row.
CLIENT_TIME = table.Resource("client_time", "client_time_s", "client time", "s", "slo.client_time_s", "SLO", "request")
table.RESOURCES += (CLIENT_TIME,)
table.REQUEST_LIMITS += (CLIENT_TIME,)
table.EDGE_RESOURCES += (CLIENT_TIME,)
table.SLOT[CLIENT_TIME.key] = len(table.SLOT)
table.BY_KEY[CLIENT_TIME.key] = CLIENT_TIME

# 2. Its pricing: the evaluator's formula, F1's edge cost, F2's row.
from splitllm import evaluator  # noqa: E402
from splitllm.formulations import chain_graph, request_rows  # noqa: E402
from splitllm.instance import Arrays  # noqa: E402


def client_seconds(a: Arrays) -> np.ndarray:
    """Per block (requests x blocks): its client prefill plus every decode step."""
    return a.client_prefill + (a.output_tokens - 1)[:, None] * a.client_decode


evaluator.FIGURES["client_time"] = lambda p: p.by_side(0.0, client_seconds(p.arrays))
chain_graph.EDGE_COSTS["client_time"] = lambda a, r: chain_graph._sides(a, r, None, client_seconds(a))
request_rows.ROW_BUILDERS[CLIENT_TIME] = lambda a, r: request_rows.LinearRow(
    CLIENT_TIME, float(client_seconds(a)[r].sum()), -client_seconds(a)[r], 0.0, 0.0, 0.0, 0.0, float(a.client_time_limit[r]))

# 3. Every consumer, unchanged.
sys.path.insert(0, str(Path(__file__).parent))
from batch_cases import batch_data, toy_costs  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from splitllm.batched.evaluator import evaluate_batch, verify_batch  # noqa: E402
from splitllm.cli.app import format_result  # noqa: E402
from splitllm.evaluator import evaluate, request_metrics  # noqa: E402
from splitllm.formulations import compact, sidecar  # noqa: E402
from splitllm.formulations.batch_data import build_data  # noqa: E402
from splitllm.instance import example_path, parse_instance  # noqa: E402
from splitllm.jsonio import read_json  # noqa: E402
from splitllm.registry import solve  # noqa: E402
from splitllm.result import Status  # noqa: E402
from splitllm.serving.report import slo_met  # noqa: E402
from splitllm.serving.simulator import SimResult  # noqa: E402
from splitllm.solution import check_solution, to_json  # noqa: E402
from splitllm.solvers.batch_brute import solve_brute  # noqa: E402
from splitllm.solvers.batch_cpsat import solve_cpsat  # noqa: E402
from splitllm.solvers.batch_greedy import solve_greedy  # noqa: E402
from splitllm.solvers.batch_milp import solve_milp  # noqa: E402
from splitllm.solvers.brute import all_placements  # noqa: E402

checked: list[str] = []


def check(what: str, condition: bool) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    checked.append(what)


# The instance schema takes the limit and loading compiles it.
data = read_json(example_path("tiny"))
free = parse_instance(data)
best_free = solve(free, "brute")
chat = 0  # limit the first request ("chat") between its least and its unlimited optimum's client time
x = all_placements(free.n_blocks)
times = request_metrics(free.arrays, np.zeros(len(x), dtype=np.int64), x).client_time
unlimited = float(best_free.evaluation.metrics.client_time[chat])
limit = (float(times.min()) + unlimited) / 2
check("the limit would bind", times.min() < limit < unlimited)
data["requests"][chat]["slo"]["client_time_s"] = limit
inst = parse_instance(data)
check("schema accepts slo.client_time_s and loading compiles it",
      inst.arrays.client_time_limit[chat] == limit and np.isinf(inst.arrays.limit(CLIENT_TIME)[1]))

# Every per-request solver holds it and they agree.
results = {name: solve(inst, name) for name in ("brute", "dp", "dp-grid", "milp", "cpsat", "colmilp", "decomp", "greedy")}
for name, result in results.items():
    check(f"{name} answer verified", result.status in (Status.OPTIMAL, Status.FEASIBLE) and result.evaluation is not None)
    check(f"{name} meets client_time", result.evaluation.metrics.client_time[chat] <= limit * (1 + 1e-9))
for name in ("dp", "milp", "cpsat", "colmilp", "decomp"):
    check(f"{name} agrees with brute", abs(results[name].objective - results["brute"].objective) <= 1e-6 * results["brute"].objective)
check("the limit binds", results["brute"].objective > best_free.objective * (1 + 1e-9))

# The evaluator, the diagnosis and the CLI table name it.
broken = evaluate(inst, best_free.placements, np.ones(inst.n_requests, dtype=bool))
check("evaluator names a broken client_time", any("client time" in v for v in broken.violations))
tight = copy.deepcopy(data)
tight["requests"][chat]["slo"] = {"client_time_s": 0.0, "tpot_s": 1e-6}
infeasible = solve(parse_instance(tight), "dp")
check("diagnosis names the limits", infeasible.status == Status.INFEASIBLE and "tpot_s" in infeasible.message)
check("CLI table has a client_time column", "client_time_s/SLO" in format_result(inst, results["dp"]))

# Solution files, their schema and the checker.
solution = to_json(inst, results["dp"])
check("solution file states client_time_s", solution["requests"][chat]["client_time_s"] is not None)
check("solution file passes check", check_solution(inst, solution) == [])
wrong = copy.deepcopy(solution)
wrong["requests"][chat]["client_time_s"] *= 2
check("check catches a misstated client_time_s", any("client_time_s" in p for p in check_solution(inst, wrong)))

# to_dataframe, the F2 sidecar.
check("to_dataframe has client_time_s", "client_time_s" in results["dp"].to_dataframe([q.id for q in inst.requests]).columns)
problem, handles = compact.build(inst)
row = sidecar.describe(inst, problem, handles, "compact")["rows"].get("client_time_r0", {})
check("sidecar describes the client_time row", "client_time_s limit" in row.get("meaning", ""))

# The serving simulation's SLO check.
n = inst.n_requests
sim = SimResult(ttft=np.zeros(n), tpot=np.zeros(n), e2e=np.zeros(n), served=np.ones(n, bool), dropped=np.zeros(n, bool))
all_client, all_server = np.zeros((n, inst.n_blocks), bool), np.ones((n, inst.n_blocks), bool)
check("slo_met fails an all-client chat", not slo_met(inst, sim, all_client)[chat])
check("slo_met passes an all-server chat", bool(slo_met(inst, sim, all_server)[chat]))

# F5: every throughput solver holds it at its batch-1 figure; the F5 evaluator checks it.
snapshot = batch_data(7, 3, 4, kv=False)
f5_free = parse_instance(snapshot)
f5_best = solve_brute(build_data(f5_free, toy_costs()))
spent = request_metrics(f5_free.arrays, np.arange(3), f5_best.placements).client_time
busy = int(np.argmax(np.where(f5_best.admitted, spent, -1.0)))
check("an F5 request spends client time", spent[busy] > 0)
snapshot["requests"][busy].setdefault("slo", {})["client_time_s"] = float(spent[busy]) / 2
f5 = parse_instance(snapshot)
costs = toy_costs()
bad = evaluate_batch(f5, costs, f5_best.placements, f5_best.admitted)
check("F5 evaluator names a broken client_time", any("client time" in v for v in bad.violations))
f5_data = build_data(f5, costs)
for name, answer in (("batch-brute", solve_brute(f5_data)), ("batch-greedy", solve_greedy(f5_data)),
                     ("batch-milp", solve_milp(f5_data, "highs")), ("batch-cpsat", solve_cpsat(f5_data, None, workers=1, seed=0, resolution=10**6))):
    answer = verify_batch(f5, costs, answer)
    check(f"{name} verified", answer.status in (Status.OPTIMAL, Status.FEASIBLE))
    met = not answer.admitted[busy] or request_metrics(f5.arrays, np.array([busy]), answer.placements[[busy]]).client_time[0] <= spent[busy] / 2 * (1 + 1e-9)
    check(f"{name} meets client_time", bool(met))
    if name == "batch-milp":
        check("batch-milp agrees with batch-brute", abs(answer.objective - verify_batch(f5, costs, solve_brute(f5_data)).objective) <= 1e-9)
check("CliRunner importable (CLI loads with the new row)", CliRunner is not None)
print("ok", len(checked))

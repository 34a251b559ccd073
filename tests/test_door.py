"""What a newcomer meets first: the import from any folder, ``python -m splitllm``, one-line
option errors, default time limits, progress, outputs, and the libraries the fits use."""

from __future__ import annotations

import ast
import csv
import dataclasses
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from splitllm import registry
from splitllm.cli import main
from splitllm.bench.fidelity import fit_engine
from splitllm.instance import load_instance
from splitllm.instances.batched_helix import isotonic

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "instances" / "examples" / "llama2-7b.json")
TINY = str(ROOT / "instances" / "examples" / "tiny.json")


def _python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_import_works_in_the_folder_that_holds_a_clone_named_splitllm(tmp_path: Path) -> None:
    """Python puts the working folder first on its path; a clone there named ``splitllm``
    (no ``__init__.py`` at its top) must not hide the installed package."""
    clone = tmp_path / "splitllm"
    if shutil.which("git") and (ROOT / ".git").exists():
        subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(clone)], check=True, timeout=120)
    else:
        clone.mkdir()
    assert not (clone / "__init__.py").exists()
    code = ("from splitllm import load_instance, solve; from splitllm.formulations import compact; "
            f"print(solve(load_instance({TINY!r}), 'dp').status.value)")
    done = _python(tmp_path, "-c", code)
    assert done.returncode == 0 and done.stdout.strip() == "optimal", done.stderr
    assert _python(tmp_path, "-m", "splitllm", "solvers").returncode == 0


def test_python_m_splitllm_is_the_command(tmp_path: Path) -> None:
    done = _python(tmp_path, "-m", "splitllm", "solve", TINY)
    assert done.returncode == 0 and "status optimal" in done.stdout, done.stderr
    command = subprocess.run([str(Path(sys.executable).with_name("splitllm")), "solve", TINY], capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[1:] == command.stdout.splitlines()[1:]  # the first line holds the solve time


@pytest.mark.parametrize("args, line", [
    (["solve", TINY, "--time-limit", "-1"], "error: --time-limit: -1.0 is not in the range x>=0.\n"),
    (["solve", TINY, "--report", "nope"], "error: --report: 'nope' is not one of 'batch-1', 'batched'.\n"),
    (["solve"], "error: INSTANCE: Missing argument 'INSTANCE'.\n"),
    (["simulate", TINY, "--engine", "foo", "--out", "x"], "error: --engine: 'foo' is not one of 'vllm', 'tensorrt-llm'.\n"),
    (["--nope"], "error: --nope: No such option '--nope'.\n"),
    (["profiles", "import", "nope", "x"], "error: SOURCE: 'nope' is not one of 'vidur', 'helix'.\n"),
])
def test_option_misuse_is_one_line_exit_2(args: list[str], line: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and result.stderr == line, result.output


def test_bare_command_still_prints_help() -> None:
    result = CliRunner().invoke(main, [])
    assert "Commands:" in result.output and "error:" not in result.output


@pytest.mark.parametrize("name", ["batch-milp", "batch-cpsat"])
def test_general_purpose_f5_models_get_a_default_time_limit_and_say_so(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.get(name)
    assert spec.default_time_limit == 60.0
    given: list[float | None] = []

    def spy(instance, *, time_limit=None, **options):  # type: ignore[no-untyped-def]
        given.append(time_limit)
        return registry.SolveResult(name, registry.Status.NO_SOLUTION, message="stopped")

    monkeypatch.setitem(registry._REGISTRY, name, dataclasses.replace(spec, function=spy))
    inst = load_instance(EXAMPLE)  # a server with batched tables: the registry's check of F5 answers needs them
    quiet = registry.solve(inst, name, time_limit=5)
    defaulted = registry.solve(inst, name)
    assert given == [5, 60.0]
    assert "default time limit" not in quiet.message
    assert defaulted.message == f"stopped; ran under {name}'s default time limit of 60 s (give a time limit to change it)"
    listing = CliRunner().invoke(main, ["solvers"]).output
    block = listing[listing.index(name):].splitlines()
    assert block[1].strip() == "default time limit 60 s (--time-limit to change)"
    assert registry.get("dp").default_time_limit is None


def test_capacity_search_shows_progress_unless_quiet(tmp_path: Path) -> None:
    args = [EXAMPLE, "--trace", "azure-conv", "--requests", "30", "--slo", "ttft_s=0.5", "--capacity", "--policy", "all-server"]
    shown = subprocess.run([sys.executable, "-m", "splitllm", "simulate", *args, "--out", str(tmp_path / "a")],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "capacity all-server" in shown.stderr and "attainment" in shown.stderr and "sim" in shown.stderr
    quiet = subprocess.run([sys.executable, "-m", "splitllm", "-q", "simulate", *args, "--out", str(tmp_path / "b")],
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_requests_csv_and_the_overlaid_cdf(tmp_path: Path) -> None:
    args = ["-q", "simulate", EXAMPLE, "--trace", "azure-conv", "--requests", "40", "--rate", "20", "--policy", "all-server",
            "--policy", "greedy", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "latency_cdf.png").stat().st_size > 0  # every policy on one figure
    assert "P99 TTFT" in result.output and not any(len(w) > 8 for w in result.output.split() if w[:1].isdigit() and "." in w)
    for policy in ("all-server", "greedy"):
        rows = list(csv.DictReader((tmp_path / policy / "requests.csv").open()))
        assert (tmp_path / policy / "latency_cdf.png").exists()
        for row in rows:
            assert int(row["prompt_tokens"]) >= 1 and int(row["output_tokens"]) >= 1
            assert float(row["completion_s"]) == pytest.approx(float(row["arrival_s"]) + float(row["e2e_s"]), rel=1e-8)
            assert 0 <= float(row["queue_s"]) <= float(row["ttft_s"])
        if policy == "all-server":  # 20 req/s loads the server: some wait for an iteration
            assert max(float(r["queue_s"]) for r in rows) > 0


def test_no_library_module_switches_the_matplotlib_backend() -> None:
    """Plots are drawn on ``matplotlib.figure.Figure``: no ``matplotlib.use`` or pyplot,
    which would change the backend of a program that imports splitllm."""
    offenders = []
    for folder in ("splitllm", "formulations", "solvers", "instances", "bench", "serving"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr == "use" and getattr(node.value, "id", "") == "matplotlib":
                    offenders.append(f"{path.name}: matplotlib.use")
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                    offenders += [f"{path.name}: {n}" for n in names if n.startswith("matplotlib.pyplot")]
    assert not offenders


def _enumerated_fit(measured: np.ndarray, base: np.ndarray, iterations: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The engine fit as it was before ``scipy.optimize.nnls``: every subset of the three
    terms solved by least squares, the best non-negative one kept (the reference)."""
    x = np.stack([base / measured, iterations / measured, items / measured], axis=1)
    y = np.ones_like(measured)
    best = (float(np.sum(y**2)), np.zeros(3))
    for size in (1, 2, 3):
        for cols in itertools.combinations(range(3), size):
            sol = np.linalg.lstsq(x[:, cols], y, rcond=None)[0]
            if np.any(sol < 0):
                continue
            full = np.zeros(3)
            full[list(cols)] = sol
            err = float(np.sum((x @ full - y) ** 2))
            if err < best[0] - 1e-15:
                best = (err, full)
    return best[1]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(4, 12), signs=st.tuples(*[st.sampled_from([-1.0, 0.0, 1.0])] * 3))
def test_nnls_engine_fit_equals_the_enumerated_one(seed: int, n: int, signs: tuple[float, float, float]) -> None:
    """Random rows, each true coefficient positive, zero or negative (so that the bound binds)."""
    rng = np.random.default_rng(seed)
    base, iterations, items = rng.uniform(0.1, 3, n), rng.integers(1, 200, n).astype(float), rng.integers(1, 5000, n).astype(float)
    truth = np.array(signs) * np.array([0.9, 2e-3, 3e-5])
    measured = np.maximum(truth[0] * base + truth[1] * iterations + truth[2] * items, 0) + rng.uniform(0.05, 0.5, n)
    got, want = np.array(fit_engine(measured, base, iterations, items)), _enumerated_fit(measured, base, iterations, items)
    assert got == pytest.approx(want, rel=1e-7, abs=1e-12)


def _pooled(ys: np.ndarray) -> list[float]:
    """Isotonic regression as it was written before scipy's (pool adjacent violators)."""
    blocks: list[list[float]] = []
    for y in ys:
        blocks.append([float(y), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, c1), (m2, c2) = blocks[-2], blocks.pop()
            blocks[-1] = [(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2]
    return [m for m, c in blocks for _ in range(int(c))]


@settings(max_examples=60, deadline=None)
@given(ys=st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=40))
def test_scipy_isotonic_equals_the_pooled_one(ys: list[float]) -> None:
    assert isotonic(ys) == pytest.approx(_pooled(np.array(ys)), rel=1e-12, abs=1e-12)

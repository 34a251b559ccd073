"""Bundled examples: the tiny one's optimum worked out by hand; every example solves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from splitllm.cli import main
from splitllm.instance import example_path, load_instance
from splitllm.registry import solve
from splitllm.result import Status

EXAMPLES = sorted(Path(example_path("tiny")).parent.glob("*.json"))


def test_tiny_optimum_by_hand() -> None:
    """Request "chat" (p=10, o=3, TTFT <= 0.5, TPOT <= 0.1, memory 1500 B).

    CCC: TTFT 0.02+0.5+0.04 = 0.56 > 0.5. SCC/CCS/SCS need a crossing of 10*4 B
    (>= 0.05 s up, 0.03 s down) around a 0.5 s client layer: TTFT >= 0.6. So the layer
    runs on the server. CSC: TTFT 0.02 + 0.05 + 0.25 + 0.03 + 0.04 = 0.39, TPOT 0.002 +
    0.014 + 0.02 + 0.012 + 0.004 = 0.052, memory 100 + 100 = 200 B: feasible, work
    0.25 + 2 * 0.02 = 0.29, the least of the four placements with the layer on the server
    (CSS 0.314, SSC 0.302, SSS 0.326).

    Request "classify" (p=20, o=1, E2E <= 0.23): a client layer costs 0.3 s, so the layer
    is on the server; CSC pays 0.08+0.02 s of crossings: 0.03+0.09+0.1+0.05+0.03 = 0.3;
    CSS: 0.03+0.09+0.1+0.01+0.0105 = 0.2405 > 0.23; SSC: 0.01+0.08+0.1+0.03+0.03 = 0.25?
    No: SSC = prompt up 20/1000+0.01 = 0.03, 0.01 + 0.1 server, down 80/2000+0.01 = 0.05,
    head 0.03 => 0.22 <= 0.23, work 0.11; SSS work 0.12. Optimum SSC, 0.11. Total 0.40.
    """
    result = solve(load_instance(example_path("tiny")), "dp")
    assert result.status == Status.OPTIMAL
    assert result.objective == pytest.approx(0.40, abs=1e-12)
    assert [("".join("S" if s else "C" for s in row)) for row in result.placements] == ["CSC", "SSC"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_validates_and_solves_with_dp(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "solution.json"
    result = CliRunner().invoke(main, ["solve", str(path), "--solver", "dp", "--out", str(out)])
    assert result.exit_code in (0, 1), result.output
    solution = json.loads(out.read_text())
    assert solution["status"] in ("optimal", "infeasible")
    if solution["status"] == "optimal":
        check = CliRunner().invoke(main, ["check", str(path), str(out)])
        assert check.exit_code == 0, check.output

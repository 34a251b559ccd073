"""The scheduler-extension example of docs/formulations.md runs as written."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from coupled_cases import coupled_instance

DOC = Path(__file__).resolve().parents[1] / "docs" / "formulations.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.parametrize("objective", ["min_server_work", "max_admitted"])
def test_docs_example_runs(objective: str, capsys: pytest.CaptureFixture[str]) -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    data = coupled_instance(4, 4, 6, objective).source
    data["clients"]["laptop"]["memory_bytes"] = 1e12  # room for 3-server-block placements
    exec(compile(_example(), str(DOC), "exec"), {"instance_data": data})
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("module", ["chain_graph", "compact", "column", "cpsat"])
def test_each_formulation_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """A scheduler may import one formulation alone (no import cycle through the solvers)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import splitllm.formulations.{module}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

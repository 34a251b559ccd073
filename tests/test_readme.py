"""The README's two opening commands work, and CI runs the same test command."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def opening_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    return blocks[:2]


def test_first_command_installs_and_solves_a_bundled_example() -> None:
    install, _, solve = opening_commands()[0].partition(" && ")
    assert install.startswith("pip install -e ")
    args = shlex.split(solve)
    assert args[0] == "splitllm" and (ROOT / args[2]).is_file()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "status optimal" in proc.stdout and "saved" in proc.stdout


def test_ci_runs_the_readme_test_command() -> None:
    test_command = opening_commands()[1].strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in [line.strip() for line in ci if not line.startswith("#")]


def test_library_example_runs(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## As a library\n\n```python\n(.*?)\n```", text, flags=re.S)
    assert code is not None
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["result"].status.value == "optimal"
    assert namespace["graph"].number_of_nodes() > 0 and namespace["problem"].numVariables() > 0

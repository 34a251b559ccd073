"""``-v`` and ``-q`` on the command line: the "splitllm" logger's level and the progress bars."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from splitllm.cli import main
from splitllm.instance import example_path


def _cli() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


@pytest.mark.parametrize(("flags", "level"), [([], logging.INFO), (["-v"], logging.DEBUG), (["--verbose"], logging.DEBUG),
                                              (["-q"], logging.ERROR), (["--quiet"], logging.ERROR)])
def test_flags_set_the_level(flags: list[str], level: int) -> None:
    result = _cli().invoke(main, [*flags, "solvers"])
    assert result.exit_code == 0, result.output
    logger = logging.getLogger("splitllm")
    assert logger.level == level
    assert logger.isEnabledFor(logging.DEBUG) == (level == logging.DEBUG)


def test_verbose_and_quiet_together_is_an_error() -> None:
    result = _cli().invoke(main, ["-v", "-q", "solvers"])
    assert result.exit_code == 2 and result.stderr == "error: --verbose and --quiet exclude each other\n"


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_hides_the_bench_progress_bar(tmp_path: Path, quiet: bool) -> None:
    args = ["-q"] * quiet + ["bench", str(example_path("tiny")), "--solvers", "dp", "--out", str(tmp_path)]
    result = _cli().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert ("bench: 100%" in result.stderr) != quiet

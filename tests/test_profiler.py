"""The profiler: tiny shapes of every architecture measured on CPU in seconds (needs torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from splitllm.cli import main
from splitllm.instances.models import shape_from_config
from splitllm.profiles import parse_profile

pytestmark = pytest.mark.extras
torch = pytest.importorskip("torch", reason='the profiler needs torch: pip install -e ".[profile]"')

from splitllm.instances.profiler import measure_profile  # noqa: E402

TINY = {"n_layers": 1, "hidden": 32, "n_heads": 4, "ffn": 64, "vocab": 50, "max_context": 64}


@pytest.mark.parametrize("arch", ["llama", "phi", "gpt2", "bert"])
def test_tiny_shape_measures(arch: str) -> None:
    extra = {"learned_positions": 64} if arch in ("gpt2", "bert") else {}
    extra |= {"n_labels": 2} if arch == "bert" else {}
    shape = shape_from_config({"arch": arch, "n_kv_heads": 2 if arch == "llama" else 4, **TINY, **extra}, name=f"tiny-{arch}")
    profile = measure_profile(shape, tokens=[1, 8, 32], contexts=[1, 16, 48], warmup=0, repeats=1, name="cpu-test")
    again = parse_profile(profile.to_json())
    assert sorted(again.kinds) == ["embed", "head", "layer"] and again.source == "measured"
    for kind in again.kinds.values():
        assert list(kind.prefill.xs) == [1, 8, 32] and (kind.prefill.ys > 0).all()
    decode = again.kinds["layer"].decode
    assert list(decode.xs) == ([1] if arch == "bert" else [1, 16, 48])
    assert (decode.ys == 0).all() if arch == "bert" else (decode.ys > 0).all()
    assert "PyTorch" in again.provenance and "Median of 1" in again.provenance


def test_cli_profile_from_json_config(tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"arch": "llama", "n_kv_heads": 4, **TINY}))
    out = tmp_path / "p.json"
    args = ["profile", "--model", str(config), "--tokens", "1,4", "--contexts", "2,8", "--warmup", "0", "--repeats", "1", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    profile = parse_profile(json.loads(out.read_text()))
    assert profile.model == "tiny" and "Command: splitllm profile" in profile.provenance


@pytest.mark.parametrize(
    "args,named",
    [(["--model", "gpt9"], "--model"), (["--device", "tpu"], "--device"), (["--tokens", "4,2"], "--tokens"), (["--threads", "0"], "--threads")],
)
def test_cli_profile_bad_input_exits_2(args: list[str], named: str) -> None:
    result = CliRunner().invoke(main, ["profile", "--model", "gpt2", "--tokens", "1", "--contexts", "2", *args] if args[0] != "--model" else ["profile", *args])
    assert result.exit_code == 2 and named in result.output, result.output

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

from splitllm.instances.profiler import Blocks, compare_layouts, cpu_description, measure_profile  # noqa: E402

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
    [(["--model", "gpt9"], "--model"), (["--device", "tpu"], "--device"), (["--tokens", "4,2"], "--tokens"), (["--threads", "0"], "--threads"), (["--clock", "cpu"], "--clock")],
)
def test_cli_profile_bad_input_exits_2(args: list[str], named: str) -> None:
    result = CliRunner().invoke(main, ["profile", "--model", "gpt2", "--tokens", "1", "--contexts", "2", *args] if args[0] != "--model" else ["profile", *args])
    assert result.exit_code == 2 and named in result.output, result.output


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bert"])
def test_projections_are_f_linear_on_out_in_weights(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every projection is F.linear with an (out, in) weight, as nn.Linear holds it; no ``x @ W``."""
    extra = {"learned_positions": 64} if arch != "llama" else {}
    extra |= {"n_labels": 2} if arch == "bert" else {}
    shape = shape_from_config({"arch": arch, "n_kv_heads": 2 if arch == "llama" else 4, **TINY, **extra}, name="tiny")
    blocks = Blocks(shape, "float32", "cpu")
    h, kv = shape.hidden, shape.kv_dim
    assert blocks.w["qkv"].shape == (h + 2 * kv, h) and blocks.w["down"].shape == (h, shape.ffn)
    assert blocks.w["up"].shape == (shape.ffn * (2 if shape.gated_mlp else 1), h)
    calls: list[tuple[int, int, int]] = []
    real = torch.nn.functional.linear

    def spy(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        calls.append((x.shape[-1], *w.shape))
        return real(x, w, b)

    def no_matmul(*_: object) -> None:
        raise AssertionError("a projection used x @ W")

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    monkeypatch.setattr(torch.Tensor, "__matmul__", no_matmul)
    with torch.inference_mode():
        x = blocks.layer(blocks.hidden(5))
        blocks.head(x)
    assert len(calls) == 4 + (2 if arch == "bert" else 1)
    assert all(in_features == x_in for x_in, _, in_features in calls)


def test_threads_recorded_and_restored() -> None:
    shape = shape_from_config({"arch": "llama", "n_kv_heads": 2, **TINY}, name="tiny")
    before = torch.get_num_threads()
    profile = measure_profile(shape, tokens=[1, 4], contexts=[2], warmup=0, repeats=1, threads=1)
    assert "torch threads 1 (set by --threads 1)" in profile.provenance
    assert "F.linear" in profile.provenance or "functional.linear" in profile.provenance
    assert torch.get_num_threads() == before
    default = measure_profile(shape, tokens=[1], contexts=[2], warmup=0, repeats=1)
    assert f"torch threads {before} (PyTorch's default)" in default.provenance and "wall-clock" in default.provenance
    cpu = measure_profile(shape, tokens=[1], contexts=[2], warmup=0, repeats=1, threads=1, clock="cpu")
    assert "CPU time of the process (--clock cpu" in cpu.provenance


def test_cpu_description_names_avx512_and_amx() -> None:
    info = {"model name": "Some CPU", "cpu family": "6", "model": "143"}
    with_amx = cpu_description("avx2 avx512f amx_tile amx_bf16", info)
    assert "avx512f" in with_amx and "amx_bf16" in with_amx and "no AMX" not in with_amx
    assert cpu_description("sse2", info).endswith("no AMX)")
    assert "AMX" in cpu_description()  # this machine: either way, stated


def test_compare_layouts_times_both() -> None:
    shape = shape_from_config({"arch": "llama", "n_kv_heads": 2, **TINY}, name="tiny")
    rows = compare_layouts(shape, tokens=[1, 8], warmup=0, repeats=1, threads=1)
    assert [n for n, _, _ in rows] == [1, 8] and all(a > 0 and b > 0 for _, a, b in rows)

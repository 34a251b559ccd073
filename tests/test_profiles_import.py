"""Profiles: exact curve sums, the importers against hand-checked CSV numbers, bundled files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from splitllm.cli import main
from splitllm.instances import derived, helix, vidur
from splitllm.instances.bundled import bundled_json, bundled_profile, list_bundled
from splitllm.instances.models import get_shape
from splitllm.profiles import Curve, KindCosts, parse_profile

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"third-party data not found at {DATA} (the public data checkouts beside the repo)")


def loop_sum(curve: Curve, lo: int, hi: int) -> float:
    return sum(float(curve.value(c)) for c in range(lo, hi + 1))


def test_interpolation_clamp_and_extrapolation() -> None:
    c = Curve.from_points([[2, 1.0], [4, 3.0], [8, 4.0]])
    assert [float(v) for v in c.value([0, 2, 3, 4, 6, 8, 12])] == [1.0, 1.0, 2.0, 3.0, 3.5, 4.0, 5.0]


def test_integer_sum_against_loop() -> None:
    c = Curve.from_points([[1.5, 0.5], [4, 2.0], [10, 2.5]])
    for lo, hi in [(0, 0), (1, 3), (2, 9), (3, 20), (11, 15), (5, 4)]:
        assert float(c.integer_sum(lo, hi)) == pytest.approx(loop_sum(c, lo, hi), rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    xs=st.lists(st.integers(0, 300), min_size=1, max_size=6, unique=True),
    ys=st.lists(st.floats(0, 5, allow_nan=False), min_size=6, max_size=6),
    prompt=st.integers(1, 400),
    output=st.integers(1, 120),
)
def test_decode_mean_against_loop(xs: list[int], ys: list[float], prompt: int, output: int) -> None:
    xs = sorted(xs)
    decode = Curve.from_points([[x, y] for x, y in zip(xs, ys)])
    kind = KindCosts(Curve.from_points([[1, 0.0]]), decode)
    steps = output - 1
    expected = loop_sum(decode, prompt + 1, prompt + steps) / steps if steps else 0.0
    assert float(kind.decode_mean(prompt, output)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@needs_data
def test_vidur_table_matches_csv_by_hand() -> None:
    """A100, Llama-2-7b, TP 1, num_tokens 1: medians read from the CSV (and data/README.md)."""
    table = vidur.OpTable.read(vidur.csv_path(DATA / "vidur", "a100", "llama-2-7b"))
    by_hand = {"attn_pre_proj": 0.065, "attn_post_proj": 0.025, "mlp_up_proj": 0.116, "mlp_down_proj": 0.060, "input_layernorm": 0.005}
    for op, ms in by_hand.items():
        assert table.ms(op, 1) == pytest.approx(ms)
    # 4096 tokens appears twice (emb medians 0.234 and 0.235): averaged.
    assert table.ms("emb", 4096) == pytest.approx(0.2345)
    # one layer at one token: 0.005 + 0.065 + 0.005 + 0.025 + 0.005 + 0.116 + 0.007 + 0.060 + 2 * 0.002
    assert table.layer_ms(1) == pytest.approx(0.292)


@needs_data
def test_vidur_profile_by_hand() -> None:
    shape = get_shape("llama-2-7b")
    table = vidur.OpTable.read(vidur.csv_path(DATA / "vidur", "a100", "llama-2-7b"))
    roof = vidur.fit_roofline(table, shape)
    # bytes/s: FP16 weights of the 4 GEMMs (4096*12288 + 4096*4096 + 3*4096*11008) over 0.266 ms
    assert roof.bytes_per_s == pytest.approx(2 * (4096 * 12288 + 4096 * 4096 + 3 * 4096 * 11008) / 0.266e-3)
    p = vidur.vidur_profile(DATA / "vidur", "a100", "llama-2-7b")
    layer = p.kinds["layer"]
    attention_1 = float(layer.decode.value(1)) - 0.292e-3
    assert 0 < attention_1 < 0.01e-3  # one cached token: only the kernel floor and a few bytes
    assert float(layer.prefill.value(1024)) > table.layer_ms(1024) * 1e-3  # measured ops plus attention
    assert float(p.kinds["embed"].prefill.value(4096)) == pytest.approx(0.2345e-3)
    assert "Modelled, not measured: attention" in p.provenance and "MIT" in p.provenance


@needs_data
def test_helix_profile_near_csv() -> None:
    """Llama-2-70B on A100: decode 1.4 ms per layer at batch 2-12; a 1000-token prompt 8 ms."""
    p = helix.helix_profile(DATA / "helix", "llama2_70b", "a100")
    assert float(p.kinds["layer"].decode.value(helix.PROFILED_CONTEXT)) == pytest.approx(1.4e-3, rel=0.05)
    assert float(p.kinds["layer"].prefill.value(1000)) == pytest.approx(8e-3, rel=0.15)
    assert "Apache-2.0" in p.provenance


def test_fit_nonneg_drops_negative_terms() -> None:
    assert helix.fit_nonneg([1, 2, 3, 4], [4, 3, 2, 1], degree=1) == [2.5, 0.0]


@pytest.mark.parametrize(
    "device,model",
    [(d, "llama-3-8b") for d in derived.FIGURES] + [(d, "llama-2-7b") for d in derived.LLAMA2_FIGURES],
)
def test_derived_profile_reproduces_published_speed(device: str, model: str) -> None:
    """L layers + embed + head give back the published tokens/s the profile was derived from."""
    figure = derived.figure_for(device, model)
    bench, n_layers = figure.bench, get_shape(model).n_layers
    assert bench.model == model
    kinds = derived.derived_profile(device, model).kinds
    start, steps = bench.generation_start, bench.decode_steps
    step = n_layers * kinds["layer"].decode_mean(start, steps + 1) + kinds["head"].decode.value(1) + kinds["embed"].decode.value(1)
    p = bench.prompt_tokens
    prompt = n_layers * kinds["layer"].prefill.value(p) + kinds["head"].prefill.value(p) + kinds["embed"].prefill.value(p)
    assert 1 / float(step) == pytest.approx(figure.generation_tok_s, rel=0.01)
    assert p / float(prompt) == pytest.approx(figure.prompt_tok_s, rel=0.02)


def test_llama2_profiles_come_from_llama2_figures() -> None:
    """Bundled Llama-2-7B client profiles use the device's Llama-2-7B figures where the source has them."""
    for device in derived.LLAMA2_FIGURES:
        profile = bundled_profile(device, "llama-2-7b")
        figure = derived.LLAMA2_FIGURES[device]
        assert profile.dtype == figure.dtype and "Llama-2-7B" in profile.provenance
        assert f"generation {figure.generation_tok_s} tokens/s" in profile.provenance
        assert "c79519347c9331cee5b49e0137d7756e4a195f3b" in profile.provenance
    assert "Llama-3-8B" in bundled_profile("apple-m1-q4", "llama-2-7b").provenance  # no Llama-2 figure
    assert "Llama-3-8B" in bundled_profile("rtx-4090", "phi-2").provenance


def test_bundled_cpu_profiles_say_how_they_were_measured() -> None:
    """Measured CPU profiles name the CPU, its AVX-512/AMX flags, the thread count and F.linear."""
    cpu = [(d, m) for d, m in list_bundled() if bundled_profile(d, m).source == "measured" and d.startswith("cpu-")]
    assert {m for _, m in cpu} == {"llama-2-7b", "gpt2", "bert-base"}
    for device, model in cpu:
        text = bundled_profile(device, model).provenance
        assert "torch threads 1 (set by --threads 1)" in text and "torch.nn.functional.linear" in text
        assert "AMX" in text and "avx512" in text and "--threads 1" in text


def test_bundled_derived_profiles_reproducible(tmp_path: Path) -> None:
    """`splitllm profiles derive` rebuilds the committed client curves exactly."""
    result = CliRunner().invoke(main, ["profiles", "derive", "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(path.stem for path in tmp_path.glob("*.json"))
    assert written == sorted(f"{d}_{m}" for d, m in derived.default_pairs())
    for path in tmp_path.glob("*.json"):
        device, model = path.stem.split("_", 1)
        assert json.loads(path.read_text())["kinds"] == bundled_json(device, model)["kinds"], path.name


@pytest.mark.parametrize("device,model", list_bundled())
def test_bundled_profiles_valid(device: str, model: str) -> None:
    p = bundled_profile(device, model)
    assert (p.device, p.model) == (device, model)
    assert {"embed", "layer", "head"} <= set(p.kinds)
    assert len(p.provenance) > 100
    for kind in p.kinds.values():
        assert len(kind.prefill.xs) <= 40 and len(kind.decode.xs) <= 40
        assert np.all(kind.prefill.ys >= 0) and np.all(kind.decode.ys >= 0)


@needs_data
def test_bundled_server_profiles_reproducible(tmp_path: Path) -> None:
    """`splitllm profiles import vidur/helix` rebuilds the committed curves exactly."""
    for source in ("vidur", "helix"):
        result = CliRunner().invoke(main, ["profiles", "import", source, str(DATA / source), "--out-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
    for path in tmp_path.glob("*.json"):
        device, model = path.stem.split("_", 1)
        fresh = json.loads(path.read_text())
        assert fresh["kinds"] == bundled_json(device, model)["kinds"], path.name
        parse_profile(fresh)


def test_import_bad_path_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["profiles", "import", "vidur", str(tmp_path)])
    assert result.exit_code == 2 and "no vidur table" in result.output

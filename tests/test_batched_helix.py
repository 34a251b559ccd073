"""Batched sections of the Helix GPU profiles: built from Helix's per-batch-size layer times."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from splitllm.batched import AttentionModel, all_blocks, costs_from_tables, iteration_time, server_costs
from splitllm.cli import main
from splitllm.instance import parse_instance
from splitllm.instances import batched_helix, helix
from splitllm.instances.bundled import bundled_json
from splitllm.instances.generate import ClientClass, generate_instance
from splitllm.errors import InputError
from splitllm.instances.models import get_shape
from splitllm.profiles import parse_profile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "helix").is_dir(), reason=f"Helix's tables not found at {DATA / 'helix'}")
PAIRS = [(folder, gpu) for folder in helix.MODELS for gpu in helix.GPUS]


def bundled(folder: str, gpu: str) -> dict:  # type: ignore[type-arg]
    return bundled_json(helix.GPUS[gpu][0], helix.MODELS[folder])


def test_isotonic_pools_only_falling_runs() -> None:
    assert batched_helix.isotonic([1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
    assert batched_helix.isotonic([2.5, 2.0, 3.0]) == [2.25, 2.25, 3.0]
    assert batched_helix.isotonic([4.3, 7.0, 4.5, 5.0]) == pytest.approx([4.3, 5.5, 5.5, 5.5])


@needs_data
@pytest.mark.parametrize(("folder", "gpu"), PAIRS)
def test_layer_lin_reproduces_helix_points(folder: str, gpu: str) -> None:
    """lin_layer at every measured batch size is Helix's time there, where Helix's rounded
    values do not fall; where they fall, the run's mean (isotonic least squares)."""
    tables = parse_profile(bundled(folder, gpu)).batched
    assert tables is not None
    batch, raw = batched_helix.layer_points(DATA / "helix", folder, gpu)
    lin = tables.lin["layer"].value(batch)
    assert np.all(np.diff(lin) >= -1e-15)
    assert lin.sum() == pytest.approx(raw.sum(), rel=1e-9)  # pooled runs keep their mean
    untouched = np.array([raw[i] >= raw[:i].max(initial=0) and raw[i] <= raw[i:].min() for i in range(raw.size)])
    assert untouched.mean() > 0.6  # V100 Llama-2-70B's bumpy 35..85 run pools the most
    np.testing.assert_allclose(lin[untouched], raw[untouched], rtol=1e-9)
    # below the first measured batch: flat; above the last: proportional to n
    assert tables.lin["layer"].value(1) == pytest.approx(lin[0])
    assert tables.lin["layer"].value(2 * batch[-1]) == pytest.approx(2 * lin[-1])


@needs_data
def test_a100_70b_by_hand() -> None:
    """Helix's A100 Llama-2-70B: batch 2 1.4 ms; 95, 100, 120 -> 2.3, 2.5, 2 ms (a falling run); 800 11 ms."""
    costs = server_costs_for("a100", "llama2_70b")
    lin = costs.lin["layer"]
    assert float(lin.value(2)) == pytest.approx(1.4e-3)
    for n in (95, 100, 120):
        assert float(lin.value(n)) == pytest.approx((2.3 + 2.5 + 2.0) / 3 * 1e-3)
    assert float(lin.value(90)) == pytest.approx(2.2e-3) and float(lin.value(140)) == pytest.approx(3e-3)
    assert float(lin.value(800)) == pytest.approx(11e-3)
    # one decode iteration of every layer at the profiled context: 80 x the measured layer, nothing added
    kinds = ("layer",) * 80
    t = float(iteration_time(costs, kinds, np.ones((2, 80), bool), q=[1, 1], context=[helix.PROFILED_CONTEXT] * 2))
    att = costs.attention.item_s(1, helix.PROFILED_CONTEXT)
    assert t == pytest.approx(80 * (1.4e-3 + 2 * float(att)))
    assert float(att) < 1e-3 * 1.4e-3  # only the new token's own Q/K/V: the folded context costs nothing more


def server_costs_for(gpu: str, folder: str):  # type: ignore[no-untyped-def]
    tables = parse_profile(bundled(folder, gpu)).batched
    assert tables is not None
    return costs_from_tables(tables, "vllm")


@pytest.mark.parametrize(("folder", "gpu"), PAIRS)
def test_sections_validate_and_say_what_they_are(folder: str, gpu: str) -> None:
    data = bundled(folder, gpu)
    profile = parse_profile(data)  # schema-checked
    assert data["version"] == 2 and profile.batched is not None
    assert profile.to_json() == json.loads(json.dumps(data))
    b = profile.batched
    assert set(b.lin) == {"embed", "layer", "head"}
    assert b.engines == {"vllm": {"overhead_s": 0.0, "overhead_per_seq_s": 0.0, "kernel_scale": 1.0}}
    assert b.attention["folded_context"] == helix.PROFILED_CONTEXT and b.attention["floor_s"] == 0.0
    shape = get_shape(helix.MODELS[folder])
    assert b.weight_bytes == shape.total_params() * 2 and b.memory_bytes == batched_helix.MEMORY[gpu]
    for phrase in ("folded in", "overhead is", "Helix has no embed or head table", "Apache-2.0", "prompt"):
        assert phrase in b.provenance or phrase.replace("overhead is", "per-iteration cost") in b.provenance, phrase
    # head and embed at one token agree with the batch-1 profile (the same roofline)
    one = profile.kinds
    assert float(b.lin["embed"].value(1)) == pytest.approx(float(one["embed"].decode.value(1)), rel=1e-3)
    assert float(b.lin["head"].value(1)) == pytest.approx(float(one["head"].decode.value(1)), rel=0.05)


def test_a_negative_folded_context_is_refused_by_path() -> None:
    data = json.loads(json.dumps(bundled("llama2_70b", "a100")))
    data["batched"]["attention"]["folded_context"] = -1
    with pytest.raises(InputError, match=r"batched\.attention\.folded_context"):
        parse_profile(data)


def test_folded_context_charges_only_the_growth() -> None:
    plain = AttentionModel(1e12, 1e9, 0.0, 64, 16, 2)
    folded = AttentionModel(1e12, 1e9, 0.0, 64, 16, 2, folded_context=500)
    ctx = np.array([0, 300, 500, 900, 4000])
    got = folded.item_s(np.ones(5), ctx)
    np.testing.assert_allclose(got, plain.item_s(np.ones(5), np.maximum(ctx - 500, 0)))
    assert got[0] == got[2] and got[3] > got[2]


def test_server_costs_on_an_instance_served_by_a_helix_gpu() -> None:
    client = ClientClass("t4-box", "t4", 16e9, 12.5e6, 12.5e6, 0.02, 1.0)
    inst = parse_instance(generate_instance(model="llama-2-70b", server="a100-40gb", clients=[client], requests=3))
    costs = server_costs(inst, "vllm")
    assert (costs.device, costs.model, costs.overhead_s) == ("a100-40gb", "llama-2-70b", 0.0)
    with pytest.raises(InputError, match="tensorrt-llm"):
        server_costs(inst, "tensorrt-llm")
    kinds = all_blocks(80)
    needs = np.ones((3, len(kinds)), bool)
    t = float(iteration_time(costs, kinds, needs, q=[1, 1, 1], context=[100, 870, 2000]))
    lin = float(costs.lin["embed"].value(3) + 80 * costs.lin["layer"].value(3) + costs.lin["head"].value(3))
    extra = 80 * float(costs.attention.item_s([1, 1, 1], [100, 870, 2000]).sum())
    assert t == pytest.approx(lin + extra)
    assert 80 * 1.4e-3 < t < 80 * 2e-3  # batch 3 at contexts around Helix's: about 80 measured layers


@needs_data
def test_import_is_reproducible(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["profiles", "import", "helix", str(DATA / "helix"), "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(tmp_path.glob("*.json"))
    assert len(written) == 8
    for path in written:
        device, model = path.stem.split("_", 1)
        fresh, committed = json.loads(path.read_text()), bundled_json(device, model)
        assert fresh["kinds"] == committed["kinds"], path.name  # the batch-1 curves are unchanged
        assert fresh["batched"] == committed["batched"], path.name

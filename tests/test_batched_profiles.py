"""Profile format version 2: the batched section, its round trip, and server_costs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from splitllm.batched import ENGINES, all_blocks, iteration_time, server_costs
from splitllm.errors import InputError
from splitllm.instance import example_path, load_instance, parse_instance
from splitllm.instances.bundled import bundled_json
from splitllm.profiles import parse_profile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("device", ["a100-80gb", "h100-80gb"])
def test_bundled_batched_profiles_round_trip(device: str) -> None:
    data = bundled_json(device, "llama-2-7b")
    profile = parse_profile(data)
    assert data["version"] == 2 and profile.batched is not None
    assert profile.to_json() == json.loads(json.dumps(data))  # nothing lost or invented
    assert set(profile.batched.overheads) == set(ENGINES)


def test_a_version_1_profile_still_loads_and_has_no_batched_costs() -> None:
    profile = parse_profile(bundled_json("a40", "llama-2-7b"))
    assert profile.batched is None and profile.to_json()["version"] == 1


def test_batched_section_needs_version_2() -> None:
    data = copy.deepcopy(bundled_json("a100-80gb", "llama-2-7b"))
    data["version"] = 1
    with pytest.raises(InputError, match="batched"):
        parse_profile(data)


@pytest.mark.parametrize(("field", "value"), [("overheads", {}), ("memory_bytes", -1.0), ("lin", {"layer": []})])
def test_bad_batched_fields_are_refused_by_path(field: str, value: object) -> None:
    data = copy.deepcopy(bundled_json("a100-80gb", "llama-2-7b"))
    data["batched"][field] = value
    with pytest.raises(InputError) as caught:
        parse_profile(data, "devices.a100-80gb")
    assert f"devices.a100-80gb.batched.{field}" in str(caught.value)


def test_server_costs_of_the_example_differ_only_in_engine_overhead() -> None:
    inst = load_instance(example_path("llama2-7b"))
    vllm, trt = server_costs(inst, "vllm"), server_costs(inst, "tensorrt-llm")
    kinds = all_blocks(32)
    needs = np.ones((4, len(kinds)), dtype=bool)
    t_vllm = iteration_time(vllm, kinds, needs, q=[1, 1, 1, 1], context=[100, 200, 300, 400])
    t_trt = iteration_time(trt, kinds, needs, q=[1, 1, 1, 1], context=[100, 200, 300, 400])
    assert float(t_vllm - t_trt) == pytest.approx(vllm.overhead_s - trt.overhead_s)
    # one decode step of 4 requests is far below 4 batch-1 steps: the weights are read once
    one = iteration_time(vllm, kinds, needs[:1], q=[1], context=[100])
    assert float(t_vllm) < 1.5 * float(one)


def test_server_costs_refuse_devices_without_batched_tables() -> None:
    data = json.loads(example_path("llama2-7b").read_text())
    data["devices"]["a100-80gb"] = bundled_json("a40", "llama-2-7b")  # a version-1 profile
    with pytest.raises(InputError, match=r"devices\.a100-80gb"):
        server_costs(parse_instance(data))
    with pytest.raises(InputError, match="--engine"):
        server_costs(load_instance(example_path("llama2-7b")), "sglang")
    with pytest.raises(InputError, match="server.device"):
        server_costs(load_instance(example_path("tiny")))


@pytest.mark.skipif(not (DATA / "vidur").is_dir(), reason="vidur's public tables not found beside the repository")
def test_bundled_tables_are_what_the_vidur_import_builds() -> None:
    from splitllm.instances.batched_profiles import import_vidur_batched

    built = {p.device: p for p in import_vidur_batched(DATA / "vidur") if p.model == "llama-2-7b"}
    for device in ("a100-80gb", "h100-80gb"):
        fresh, bundled = built[device].to_json()["batched"], bundled_json(device, "llama-2-7b")["batched"]
        assert fresh == json.loads(json.dumps(bundled))

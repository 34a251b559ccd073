"""The engine table is the one list of engines: every reader offers exactly its rows."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.resources import files

import click
import pytest

from splitllm.batched import ENGINES as BATCHED_ENGINES
from splitllm.batched import server_costs
from splitllm.batched.engines import CONTEXT_BYTES, ENGINES, ServerMemory, by_label, engine_help, get_engine
from splitllm.bench.fidelity import ENGINE_KEYS, FRAMEWORKS
from splitllm.cli import main
from splitllm.errors import InputError
from splitllm.instance import example_path, load_instance
from splitllm.registry import solvers
from splitllm.serving import SimConfig
from splitllm.solvers.batch_common import ENGINE


def _choices(command: str) -> list[str]:
    cmd = main.commands[command]
    (param,) = [p for p in cmd.params if p.name == "engine"]
    assert isinstance(param.type, click.Choice)
    return list(param.type.choices)


def test_the_schema_lists_the_table() -> None:
    schema = json.loads(files("splitllm").joinpath("schema/solution.schema.json").read_text())
    assert schema["properties"]["engine"]["enum"] == list(ENGINES)


@pytest.mark.parametrize("command", ["solve", "export", "simulate"])
def test_every_command_offers_the_table(command: str) -> None:
    assert _choices(command) == list(ENGINES)


def test_solvers_profiles_and_fidelity_read_the_table() -> None:
    assert ENGINE.choices == tuple(ENGINES) == BATCHED_ENGINES
    priced = [spec for spec in solvers().values() if any(o.name == "engine" for o in spec.options)]
    assert priced and all(ENGINE in spec.options for spec in priced)
    assert FRAMEWORKS == ("vLLM", "TensorRT-LLM") and ENGINE_KEYS == {"vLLM": "vllm", "TensorRT-LLM": "tensorrt-llm"}
    assert all(name in engine_help() for name in ENGINES)


def test_an_unknown_engine_is_refused_everywhere_with_the_choices() -> None:
    inst = load_instance(example_path("llama2-7b"))
    costs = server_costs(inst, "vllm")
    for call in (lambda: get_engine("sglang"), lambda: server_costs(inst, "sglang"), lambda: SimConfig(costs, "sglang")):
        with pytest.raises(InputError, match="vllm, tensorrt-llm"):
            call()
    with pytest.raises(InputError, match="vLLM, TensorRT-LLM"):
        by_label("SGLang")


def test_the_capacity_formulas_by_hand() -> None:
    """80 GB, 13 GB of weights, 0.5 MB of KV and 1 MB of activations per token."""
    server = ServerMemory(80e9, 13e9, 5e5, 1e6, batch=8, length=1000)
    vllm, trt = ENGINES["vllm"], ENGINES["tensorrt-llm"]
    free_vllm = 0.9 * 80e9 - 13e9 - CONTEXT_BYTES - 1e6 * 4096  # profiling pass of 4096 tokens
    assert vllm.kv_tokens(server) == int(free_vllm // (16 * 5e5)) * 16
    free_trt = 80e9 - 13e9 - CONTEXT_BYTES - 1e6 * 8 * 1000  # buffers for batch x length tokens
    assert trt.kv_tokens(server) == int(0.9 * free_trt // 5e5)
    assert trt.kv_capacity_bytes(server) == trt.kv_tokens(server) * 5e5
    assert replace(vllm, block=1).kv_tokens(server) >= vllm.kv_tokens(server)  # whole blocks only lose tokens
    assert vllm.kv_tokens(ServerMemory(1e9, 13e9, 5e5, 1e6)) == 0  # nothing left: no KV, never negative

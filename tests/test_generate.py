"""The instance generator: valid, reproducible byte for byte, options honoured, bad input exits 2."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from splitllm.cli import main
from splitllm.errors import InputError
from splitllm.evaluator import request_metrics
from splitllm.instance import example_path, load_instance, parse_instance
from splitllm.instances.generate import generate_instance, generate_suite, parse_client, parse_limit
from splitllm.instances.traces import load_lengths


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_default_instance_valid_and_byte_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    copies = []
    for _ in range(2):
        code, out = run("generate", "--seed", "3", "--requests", "50", "--out", str(a))
        assert code == 0, out
        copies.append(a.read_bytes())
    assert copies[0] == copies[1]
    inst = load_instance(a)
    assert inst.n_requests == 50 and inst.n_blocks == 34 and inst.model.name == "llama-2-7b"
    assert inst.server.device == "a100-80gb" and len(inst.clients) >= 2
    assert set(inst.profiles) == {inst.server.device} | {c.device for c in inst.clients.values()}
    code, _ = run("generate", "--seed", "4", "--requests", "50", "--out", str(b))
    assert a.read_bytes() != b.read_bytes()


def test_library_matches_cli_and_is_deterministic() -> None:
    assert generate_instance(requests=7, seed=1) == generate_instance(requests=7, seed=1)
    assert generate_instance(requests=7, seed=1) != generate_instance(requests=7, seed=2)


def test_slo_factor_and_capacity_share() -> None:
    data = generate_instance(requests=8, seed=5, slo={"ttft_s": "2x", "tpot_s": "1.5x"}, work_capacity="50%", kv_capacity="80%")
    inst = parse_instance(data)
    all_server = request_metrics(inst.arrays, np.arange(8), np.ones((8, inst.n_blocks), dtype=bool))
    ttft = np.array([r.slo["ttft_s"] for r in inst.requests])
    assert np.allclose(ttft, 2 * all_server.ttft, rtol=1e-5)
    assert inst.server.work_capacity_s == pytest.approx(0.5 * inst.arrays.work.sum(), rel=1e-5)
    assert inst.server.kv_capacity_bytes == pytest.approx(0.8 * inst.arrays.kv.sum(), rel=1e-5)


def test_absolute_slo_never_below_all_server() -> None:
    inst = parse_instance(generate_instance(requests=10, seed=2, slo={"ttft_s": "0.0001"}))
    all_server = request_metrics(inst.arrays, np.arange(10), np.ones((10, inst.n_blocks), dtype=bool))
    assert all(r.slo["ttft_s"] >= t for r, t in zip(inst.requests, all_server.ttft))


def test_phi2_on_h100_with_long_prompts() -> None:
    inst = parse_instance(generate_instance(model="phi-2", server="h100-80gb", requests=4, trace="mooncake"))
    assert all(r.prompt_tokens + r.output_tokens <= 2048 for r in inst.requests)


def test_missing_client_profile_names_the_client() -> None:
    client = parse_client("lab=apple-m2-ultra,mem=64GiB,up=100Mbps,down=500Mbps,rtt=10ms,share=1")
    with pytest.raises(InputError, match="--client lab"):
        generate_instance(model="llama-2-70b", requests=3, clients=[client])


def test_encoder_has_one_output_token() -> None:
    client = "box=cpu-epyc-2core,mem=2GiB,up=100Mbps,down=500Mbps,rtt=10ms,share=1"
    code, out = run("generate", "--model", "bert-base", "--server", "cpu-epyc-2core", "--client", client, "--requests", "4", "--ttft", "2x", "--tpot", "none")
    if "no bundled profile" in out:
        pytest.skip("cpu-epyc-2core bert-base profile not bundled")
    assert code == 0, out
    assert all(r["output_tokens"] == 1 and r["prompt_tokens"] <= 512 for r in json.loads(out)["requests"])


def test_suite(tmp_path: Path) -> None:
    paths = generate_suite(tmp_path, sizes=(3, 5), seed=1)
    assert [load_instance(p).n_requests for p in paths] == [3, 5]
    code, out = run("generate", "--suite", str(tmp_path / "s"), "--sizes", "2,4")
    assert code == 0 and len(list((tmp_path / "s").glob("*.json"))) == 2


@pytest.mark.parametrize(
    "args,named",
    [
        (["--model", "gpt5"], "--model"),
        (["--server", "tpu"], "--server"),
        (["--client", "x=apple-m1-max,mem=1GiB,up=1Mbps,down=1Mbps,rtt=1ms,share=-2"], "share"),
        (["--client", "x=apple-m1-max,mem=1GiB,up=1Mbps,down=1Mbps,rtt=1ms"], "missing share"),
        (["--client", "x=nokia-3310,mem=1GiB,up=1Mbps,down=1Mbps,rtt=1ms,share=1"], "--client x"),
        (["--ttft", "fast"], "--ttft"),
        (["--trace", "nope"], "--trace"),
        (["--requests", "0"], "--requests"),
        (["--work-capacity", "-1"], "--work-capacity"),
    ],
)
def test_bad_input_exits_2(args: list[str], named: str) -> None:
    code, out = run("generate", "--requests", "3", *args)
    assert code == 2 and named in out, out


def test_parse_limit() -> None:
    assert parse_limit("3x", "--ttft") == (3.0, True)
    assert parse_limit("60%", "--work-capacity") == (pytest.approx(0.6), True)
    assert parse_limit(2, "--ttft") == (2.0, False)


def test_length_sample_matches_trace_medians() -> None:
    """data/README.md: Azure conv prompt median 1020, output 129; code output median 13."""
    lengths = load_lengths()
    assert np.median(lengths["azure-conv"][:, 0]) == pytest.approx(1020, rel=0.1)
    assert np.median(lengths["azure-conv"][:, 1]) == pytest.approx(129, rel=0.2)
    assert np.median(lengths["azure-code"][:, 1]) == pytest.approx(13, rel=0.2)


def test_bundled_example_regenerates(tmp_path: Path) -> None:
    path = example_path("llama2-7b")
    data = json.loads(path.read_text())
    args = shlex.split(data["description"].removeprefix("generated by: "))[1:]
    out = args.index("--out")
    args[out + 1] = str(tmp_path / "again.json")
    code, text = run(*args)
    assert code == 0, text
    again = json.loads((tmp_path / "again.json").read_text())
    assert {k: v for k, v in again.items() if k != "description"} == {k: v for k, v in data.items() if k != "description"}
    inst = load_instance(path)
    assert 5 <= inst.n_requests <= 8 and len(inst.clients) == 2 and inst.objective == "min_server_work"


@pytest.mark.parametrize("seed", range(6))
def test_defaults_valid_for_many_seeds(seed: int) -> None:
    for trace in ("azure-conv", "azure-code", "mooncake"):
        parse_instance(generate_instance(requests=30, seed=seed, trace=trace))

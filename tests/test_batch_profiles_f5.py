"""Every bundled server profile with batched tables, under every F5 solver.

A profile whose device memory does not hold the model's weights (Helix's, measured on a
model split over several GPUs) has no KV capacity of its own: an instance on it without
``server.kv_capacity_bytes`` is refused with one line naming the profile's memory field
(exit 2); with the capacity given it is placed. No solver ever tracebacks. The model is
cut to embed, two layers and head so that ``batch-brute`` can enumerate it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from splitllm.batched import server_costs
from splitllm.cli import main
from splitllm.instance import parse_instance
from splitllm.instances.bundled import bundled_profile, list_bundled
from splitllm.instances.generate import generate_instance, parse_client

BATCHED = [(d, m) for d, m in list_bundled() if bundled_profile(d, m).batched is not None]
FAST = ("batch-brute", "batch-greedy")
ALL = FAST + ("batch-milp", "batch-cpsat")


def _instance(tmp_path: Path, device: str, model: str, kv: bool) -> tuple[Path, bool]:
    """A 3-request snapshot on ``device`` (server and client), cut to four blocks; and whether
    the device's memory holds the weights."""
    client = parse_client(f"pc={device},mem=1000GiB,up=50Mbps,down=200Mbps,rtt=30ms,share=1")
    data = generate_instance(model=model, server=device, clients=[client], requests=3, objective="max_admitted", seed=1,
                             slo={"tpot_s": "1.5x"})
    blocks = data["model"]["blocks"]
    data["model"]["blocks"] = [blocks[0], blocks[1], blocks[2], blocks[-1]]
    if kv:
        data["server"]["kv_capacity_bytes"] = 4e9
    path = tmp_path / f"{device}-{model}-{kv}.json"
    path.write_text(json.dumps(data))
    costs = server_costs(parse_instance(data))
    return path, costs.memory_bytes <= 0 or costs.memory_bytes > costs.weight_bytes


def test_some_bundled_profiles_have_no_kv_room():
    assert len(BATCHED) >= 10
    short = [p for p in BATCHED if 0 < bundled_profile(*p).batched.memory_bytes <= bundled_profile(*p).batched.weight_bytes]
    assert len(short) >= 8


def _run(path: Path, solver: str) -> tuple[int, str]:
    out = CliRunner().invoke(main, ["solve", str(path), "--solver", solver, "--time-limit", "30"])
    assert "Traceback" not in out.output and out.exception is None or isinstance(out.exception, SystemExit), out.output
    return out.exit_code, out.output


@pytest.mark.parametrize("device,model", BATCHED)
def test_each_profile_is_placed_or_refused_in_one_line(tmp_path, device, model):
    for kv in (False, True):
        path, room = _instance(tmp_path, device, model, kv)
        for solver in FAST if kv or room else ALL:
            code, output = _run(path, solver)
            if kv or room:
                assert code == 0 and ("status optimal" in output or "status feasible" in output), (solver, output)
            else:
                lines = output.strip().splitlines()
                assert code == 2 and len(lines) == 1, (solver, output)
                assert lines[0].startswith(f"error: devices.{device}.batched.memory_bytes:") and "kv_capacity_bytes" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("device,model", BATCHED)
def test_each_profile_under_every_solver(tmp_path, device, model):
    path, _ = _instance(tmp_path, device, model, kv=True)
    for solver in ALL:
        code, output = _run(path, solver)
        assert code == 0 and ("status optimal" in output or "status feasible" in output), (solver, output)

"""The policy registry: every policy of ``simulate --policy`` is one spec, listed by ``splitllm policies``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from splitllm.cli import main
from splitllm.errors import InputError
from splitllm.instance import example_path, load_instance
from splitllm.registry import solvers
from splitllm.serving import registry
from splitllm.serving.policies import place, run_policy
from splitllm.serving.registry import KINDS, Placement, PolicySpec, Server, get_policy, policies, register_policy
from splitllm.serving.simulator import SimConfig
from tests import serving_cases as hand


def test_every_solver_and_built_in_is_a_policy_of_one_kind() -> None:
    known = policies()
    assert {"all-server", "solution", "batch-online"} <= set(known) and set(solvers()) <= set(known)
    kinds = {name: spec.kind for name, spec in known.items()}
    assert kinds["batch-online"] == "online" and kinds["dp"] == "per-request" and kinds["batch-greedy"] == "windowed"
    assert set(kinds.values()) <= set(KINDS)
    assert [o.name for o in known["batch"].options] == ["N", "S"] and known["solution"].syntax == "solution:FILE"


def test_splitllm_policies_lists_them_all() -> None:
    result = CliRunner().invoke(main, ["policies"])
    assert result.exit_code == 0, result.output
    first_words = [line.split()[0] for line in result.output.splitlines() if not line.startswith(" ")]
    assert sorted(first_words) == sorted(spec.syntax for spec in policies().values())
    assert first_words[0] == "all-server" and "N=32" in result.output


@pytest.mark.parametrize("policy", ["nope", "batch-online:3", "all-server:x"])
def test_an_unknown_policy_is_one_line_exit_2_listing_the_choices(policy: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", str(example_path("tiny")), "--policy", policy, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --policy: unknown policy")
    assert all(s in lines[0] for s in ("all-server", "batch-online", "solution:FILE", "batch[:N[:S]]", "dp"))
    assert not (tmp_path / "o").exists()


def test_a_new_online_policy_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A throwaway online policy, registered as a policy module would: listed, placed, simulated."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    calls: list[list[int]] = []

    class FirstBlockOnClient:
        wall_s = 0.0

        def place(self, now: float, arriving: list[int], in_flight: list[int], placements: np.ndarray) -> np.ndarray:
            calls.append(list(arriving))
            placements[arriving] = True
            placements[arriving, 0] = False
            return np.ones(len(arriving), dtype=bool)

    @register_policy("client-embed", "the embedding on the client, the rest on the server", kind="online")
    def client_embed(inst, policy: str, spec: PolicySpec, server: Server) -> Placement:  # type: ignore[no-untyped-def]
        n, b = inst.n_requests, inst.n_blocks
        return Placement(policy, np.ones((n, b), bool), np.ones(n, bool), 0.0, np.zeros(n), online=FirstBlockOnClient)

    assert get_policy("client-embed").kind == "online"
    assert "client-embed" in CliRunner().invoke(main, ["policies"]).output
    inst = hand.instance([hand.request("a"), hand.request("b", arrival=0.5)])
    placement = place(inst, "client-embed")
    sim, placed = run_policy(inst, placement, SimConfig(hand.costs()), np.array([0.0, 0.5]))
    assert calls == [[0], [1]] and sim.served.all()
    assert placed.placements.tolist() == [[False] + [True] * (inst.n_blocks - 1)] * 2


def test_place_refuses_what_get_policy_refuses() -> None:
    inst = load_instance(example_path("tiny"))
    with pytest.raises(InputError, match="unknown policy 'batch-milps'"):
        place(inst, "batch-milps")
    for bad in ("solution", "solution:"):
        with pytest.raises(InputError, match="expected solution:FILE"):
            place(inst, bad)

"""The evaluator against figures worked out by hand for every crossing case (docs/cost-model.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from splitllm.evaluator import evaluate, feasible_mask, request_metrics
from splitllm.instance import parse_instance

# act 10 B/token, token 2 B; uplink 100 B/s, downlink 200 B/s, rtt 0.2 s (0.1 s per way);
# p = 5, o = 4. Crossing times:
#   prompt up 5*2/100+0.1 = 0.2        first token down 2/200+0.1 = 0.11
#   prefill act up 50/100+0.1 = 0.6    prefill act down 50/200+0.1 = 0.35
#   decode act up 10/100+0.1 = 0.2     decode act down 10/200+0.1 = 0.15
#   cycle token up 2/100+0.1 = 0.12    cycle token down 2/200+0.1 = 0.11


def hand_instance(output_tokens: int = 4) -> dict:
    return {
        "format": "splitllm/instance",
        "version": 1,
        "objective": "min_server_work",
        "model": {
            "activation_bytes_per_token": 10,
            "token_bytes": 2,
            "blocks": [
                {"kind": "embed", "weight_bytes": 100, "kv_bytes_per_token": 0},
                {"kind": "layer", "weight_bytes": 1000, "kv_bytes_per_token": 7},
                {"kind": "head", "weight_bytes": 100, "kv_bytes_per_token": 0},
            ],
        },
        "server": {},
        "clients": {"c": {"memory_bytes": 1e9, "uplink_bytes_per_s": 100, "downlink_bytes_per_s": 200, "rtt_s": 0.2}},
        "requests": [
            {
                "id": 0,
                "client": "c",
                "prompt_tokens": 5,
                "output_tokens": output_tokens,
                "costs": {
                    "server_prefill_s": [1, 2, 3],
                    "client_prefill_s": [10, 20, 30],
                    "server_decode_s": [0.1, 0.2, 0.3],
                    "client_decode_s": [1, 2, 3],
                },
            }
        ],
    }


CASES = {
    # placement: (TTFT, TPOT) by hand
    "SSS": (0.2 + 6 + 0.11, 0.6),  # prompt up, first token down, no crossing in decode
    "CCC": (60, 6),  # nothing crosses
    "SCC": (0.2 + 1 + 0.35 + 20 + 30, 0.1 + 0.15 + 2 + 3 + 0.12),  # cycle: head C -> embed S, token up
    "CCS": (10 + 20 + 0.6 + 3 + 0.11, 1 + 2 + 0.2 + 0.3 + 0.11),  # cycle: head S -> embed C, token down
    "CSC": (10 + 0.6 + 2 + 0.35 + 30, 1 + 0.2 + 0.2 + 0.15 + 3),  # up and down, no cycle crossing
    "SCS": (0.2 + 1 + 0.35 + 20 + 0.6 + 3 + 0.11, 0.1 + 0.15 + 2 + 0.2 + 0.3),  # both ends on server
}


@pytest.mark.parametrize("placement", sorted(CASES))
def test_crossing_cases_match_hand_figures(placement: str) -> None:
    inst = parse_instance(hand_instance())
    x = np.array([[ch == "S" for ch in placement]])
    m = request_metrics(inst.arrays, np.array([0]), x)
    ttft, tpot = CASES[placement]
    assert m.ttft[0] == pytest.approx(ttft, rel=1e-12)
    assert m.tpot[0] == pytest.approx(tpot, rel=1e-12)
    assert m.e2e[0] == pytest.approx(ttft + 3 * tpot, rel=1e-12)


def test_server_work_kv_and_client_memory_by_hand() -> None:
    inst = parse_instance(hand_instance())
    m = request_metrics(inst.arrays, np.array([0]), np.array([[True, False, True]]))
    assert m.work[0] == pytest.approx((1 + 3 * 0.1) + (3 + 3 * 0.3))  # prefill + 3 decode steps
    assert m.kv[0] == 0  # the only KV block runs on the client
    assert m.client_mem[0] == pytest.approx(1000 + 7 * (5 + 4))
    m = request_metrics(inst.arrays, np.array([0]), np.array([[False, True, False]]))
    assert m.kv[0] == pytest.approx(7 * 9)
    assert m.client_mem[0] == pytest.approx(200)


def test_single_pass_request_has_no_tpot_and_e2e_is_ttft() -> None:
    inst = parse_instance(hand_instance(output_tokens=1))
    m = request_metrics(inst.arrays, np.array([0]), np.array([[True, True, True]]))
    assert math.isnan(m.tpot[0])
    assert m.e2e[0] == m.ttft[0] == pytest.approx(6.31)
    assert m.work[0] == pytest.approx(6)  # prefill only


def test_slo_violations_name_request_and_figure() -> None:
    data = hand_instance()
    data["requests"][0]["slo"] = {"ttft_s": 7, "tpot_s": 0.5}
    inst = parse_instance(data)
    ev = evaluate(inst, np.array([[True, True, True]]), np.array([True]))
    assert len(ev.violations) == 1
    assert "requests[0]" in ev.violations[0] and "tpot_s 0.6" in ev.violations[0]
    ev = evaluate(inst, np.array([[True, True, True]]), np.array([False]))
    assert any("not served" in v for v in ev.violations)


def test_capacity_violation_is_reported() -> None:
    data = hand_instance()
    data["server"] = {"work_capacity_s": 1.0}
    ev = evaluate(parse_instance(data), np.array([[True, True, True]]), np.array([True]))
    assert any(v.startswith("server.work_capacity_s") for v in ev.violations)



CROSSINGS = ("prompt_up", "act_up_prefill", "act_down_prefill", "first_token_down",
             "act_up_decode", "act_down_decode", "token_up_decode", "token_down_decode")


def _all_placements(n_blocks: int) -> np.ndarray:
    codes = np.arange(1 << n_blocks)
    return ((codes[:, None] >> np.arange(n_blocks)) & 1).astype(bool)


@pytest.mark.parametrize("field", CROSSINGS)
@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_a_non_finite_crossing_fails_exactly_the_placements_that_use_it(field: str, bad: float) -> None:
    """An unusable link (a crossing time of inf, or NaN) breaks every placement that
    crosses it and no other: inf * 0 never becomes a NaN that passes a limit."""
    import dataclasses

    arrays = parse_instance(hand_instance()).arrays
    generous = {name: np.full(1, 1e6) for name in ("ttft", "tpot", "e2e")}
    arrays = dataclasses.replace(arrays, limits={**arrays.limits, **generous})
    x = _all_placements(arrays.work.shape[1])
    rows = np.zeros(len(x), dtype=np.int64)
    base = request_metrics(arrays, rows, x)
    slower = request_metrics(dataclasses.replace(arrays, **{field: getattr(arrays, field) + 1.0}), rows, x)
    uses = ~np.isclose(base.e2e, slower.e2e)
    assert uses.any() and not uses.all()  # the case tells the two kinds apart
    broken = dataclasses.replace(arrays, **{field: np.full(1, bad)})
    figures = request_metrics(broken, rows, x)
    ok = feasible_mask(broken, rows, figures)
    assert ok.tolist() == (~uses).tolist()
    for name in ("ttft", "e2e", "work", "kv", "client_mem"):  # the others' figures are untouched
        assert getattr(figures, name)[~uses].tolist() == pytest.approx(getattr(base, name)[~uses].tolist()), name
    assert feasible_mask(arrays, rows, base).all()

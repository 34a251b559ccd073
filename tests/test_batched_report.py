"""decode_iteration_report on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from splitllm.batched import AttentionModel, BatchedCosts
from splitllm.batched.report import decode_iteration_report
from splitllm.errors import InputError
from splitllm.profiles import Curve

KINDS = ("embed", "layer", "layer", "head")


def toy(overhead: float = 0.0, per_seq: float = 0.0) -> BatchedCosts:
    lin = {
        "embed": Curve.from_points([[1, 1.0], [11, 2.0]]),
        "layer": Curve.from_points([[1, 10.0], [11, 20.0]]),
        "head": Curve.from_points([[1, 100.0], [11, 200.0]]),
    }
    # attention: 4 * hidden * q * (c + 1) FLOPs at 1 FLOP/s, floor 0.5 per active layer
    att = AttentionModel(flops_per_s=1.0, bytes_per_s=1e30, floor_s=0.5, hidden=1, kv_dim=1, dtype_bytes=2)
    return BatchedCosts("toy", "toy", lin, att, overhead_s=overhead, overhead_per_seq_s=per_seq)


def test_all_server_pair_splits_evenly_and_attention_is_own() -> None:
    rep = decode_iteration_report(toy(overhead=1.0), KINDS, np.ones((2, 4), bool), contexts=[0, 2])
    # lin at 2 tokens: embed 1.1, layers 11 each + floor 0.5, head 110 -> 134.1; attention 2 layers x 4(c+1): 8 and 24
    assert rep["iteration_s"] == pytest.approx(1.0 + 134.1 + 8 + 24)
    assert rep["share_s"] == pytest.approx([134.1 / 2 + 8 + 0.5, 134.1 / 2 + 24 + 0.5])
    assert rep["check_s"] == pytest.approx(rep["iteration_s"])


def test_client_side_blocks_cost_the_server_nothing() -> None:
    mask = [[True, True, True, True], [False, False, False, True]]  # request 1 runs only the head here
    rep = decode_iteration_report(toy(), KINDS, mask, contexts=[0, 5], batch=1)
    # embed 1 + 2 x (10 + 0.5) + attn 2 x 4 for request 0; head at 2 tokens 110, split
    assert rep["share_s"] == pytest.approx([1 + 21 + 8 + 55, 55])
    assert rep["active_blocks"] == 4
    assert rep["iteration_s"] == pytest.approx(sum(rep["share_s"]))


def test_copies_share_the_fixed_charges_and_pay_per_sequence() -> None:
    rep = decode_iteration_report(toy(overhead=2.0, per_seq=0.25), KINDS, [[True, False, False, False]], [0], batch=4)
    # 4 items at embed: lin(4) = 1.3, split 4 ways; overhead 2 / 4 + 0.25 each
    assert rep["share_s"] == pytest.approx([1.3 / 4 + 0.5 + 0.25])
    assert rep["server_items"] == 4
    assert rep["iteration_s"] == pytest.approx(1.3 + 2.0 + 4 * 0.25)
    assert rep["check_s"] == pytest.approx(rep["iteration_s"])


def test_nobody_on_the_server_is_overhead_alone() -> None:
    rep = decode_iteration_report(toy(overhead=0.7), KINDS, np.zeros((2, 4), bool), [0, 0], batch=[3, 1])
    assert rep["iteration_s"] == pytest.approx(0.7)
    assert rep["share_s"] == [0.0, 0.0]
    assert rep["check_s"] == pytest.approx(0.7)


def test_bad_shapes_name_the_field() -> None:
    with pytest.raises(InputError, match="placements_server_mask"):
        decode_iteration_report(toy(), KINDS, np.ones((2, 3), bool), [0, 0])
    with pytest.raises(InputError, match="contexts"):
        decode_iteration_report(toy(), KINDS, np.ones((2, 4), bool), [0])

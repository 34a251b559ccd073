"""The batched iteration model: hand-made cases and the vidur-built tables."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from splitllm.batched import AttentionModel, BatchedCosts, IterationPricer, all_blocks, iteration_time, server_costs
from splitllm.errors import InputError
from splitllm.instance import example_path, load_instance
from splitllm.instances.batched_vidur import batched_from_table
from splitllm.instances.vidur import LAYER_OPS, OpTable
from splitllm.profiles import Curve

KINDS = ("embed", "layer", "layer", "head")


def toy(overhead: float = 0.0) -> BatchedCosts:
    lin = {
        "embed": Curve.from_points([[1, 1.0], [11, 2.0]]),
        "layer": Curve.from_points([[1, 10.0], [11, 20.0]]),
        "head": Curve.from_points([[1, 100.0], [11, 200.0]]),
    }
    att = AttentionModel(flops_per_s=1.0, bytes_per_s=1e30, floor_s=0.5, hidden=1, kv_dim=1, dtype_bytes=2)
    return BatchedCosts("toy", "toy", lin, att, overhead_s=overhead)


def test_block_nobody_needs_costs_nothing() -> None:
    needs = np.array([[True, True, False, False]])
    t = iteration_time(toy(), KINDS, needs, q=[1], context=[0])
    # embed lin(1) + one layer lin(1) + its attention floor + attention FLOPs 4*1*1*(0+1)
    assert t == pytest.approx(1.0 + 10.0 + 0.5 + 4.0)


def test_no_items_costs_only_overhead() -> None:
    t = iteration_time(toy(overhead=0.25), KINDS, np.zeros((1, 4), bool), q=[0], context=[0])
    assert t == pytest.approx(0.25)


def test_shared_block_pays_its_floor_once() -> None:
    needs = np.array([[True, False, False, False], [True, False, False, False]])
    two = iteration_time(toy(), KINDS, needs, q=[1, 1], context=[0, 0])
    assert two == pytest.approx(1.1)  # lin(2) once, not 2 * lin(1)
    assert two < 2 * iteration_time(toy(), KINDS, needs[:1], q=[1], context=[0])


def test_head_counts_one_sampling_token_per_item() -> None:
    needs = np.array([[False, False, False, True]])
    assert iteration_time(toy(), KINDS, needs, q=[5], context=[0]) == pytest.approx(100.0)


def test_attention_is_summed_per_item() -> None:
    needs = np.array([[False, True, False, False], [False, True, False, False]])
    t = iteration_time(toy(), KINDS, needs, q=[1, 3], context=[2, 0])
    # lin(4) + floor + 4*(1*(2+1)) + 4*(3*(0+2))
    assert t == pytest.approx(13.0 + 0.5 + 12.0 + 24.0)


def test_many_iterations_at_once_match_one_by_one() -> None:
    rng = np.random.default_rng(0)
    needs = rng.random((5, 3, 4)) < 0.6
    q = rng.integers(0, 6, size=(5, 3))
    c = rng.integers(0, 50, size=(5, 3))
    batch = iteration_time(toy(0.1), KINDS, needs, q, c)
    one = [iteration_time(toy(0.1), KINDS, needs[i], q[i], c[i]) for i in range(5)]
    np.testing.assert_allclose(batch, one)


def test_unknown_kind_and_bad_shapes_raise() -> None:
    with pytest.raises(InputError, match="kinds"):
        iteration_time(toy(), ("embed", "moe"), np.ones((1, 2), bool), [1], [0])
    with pytest.raises(InputError, match="needs"):
        iteration_time(toy(), KINDS, np.ones((1, 3), bool), [1], [0])


def write_mlp_csv(path: Path) -> None:
    """A small vidur-format table (TP 1 and one TP 2 row that must be ignored)."""
    ops = ["emb", *LAYER_OPS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["num_tokens", "num_tensor_parallel_workers", *[f"time_stats.{op}.median" for op in ops]])
        for n in (1, 2, 4, 8, 2048, 4096):
            w.writerow([n, 1, *[0.001 * (k + 1) * (1 + n / 64) for k in range(len(ops))]])
        w.writerow([1, 2, *[9.0] * len(ops)])


def test_lin_reproduces_the_table_points(tmp_path: Path) -> None:
    path = tmp_path / "mlp.csv"
    write_mlp_csv(path)
    table = OpTable.read(path)
    costs = batched_from_table(table, "a100", "llama-2-7b")
    ns = table.tokens
    np.testing.assert_allclose(costs.lin["embed"].value(ns), table.ops["emb"] * 1e-3)
    np.testing.assert_allclose(costs.lin["layer"].value(ns), [table.layer_ms(n) * 1e-3 for n in ns])
    # above the table: proportional to n
    assert costs.lin["layer"].value([8192])[0] == pytest.approx(2 * table.layer_ms(4096) * 1e-3)


def test_whole_model_decode_grows_with_batch_and_context(tmp_path: Path) -> None:
    path = tmp_path / "mlp.csv"
    write_mlp_csv(path)
    costs = batched_from_table(OpTable.read(path), "h100", "llama-2-7b")
    kinds = all_blocks(32)

    def decode(b: int, c: int) -> float:
        return float(iteration_time(costs, kinds, np.ones((b, 34), bool), np.ones(b), np.full(b, c)))

    assert decode(1, 128) < decode(16, 128) < decode(16, 2048)


def _random_iteration(rng: np.random.Generator, n_blocks: int) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    """Items of one random iteration (runs of blocks, some with q = 0) and their needs mask."""
    items = []
    for _ in range(int(rng.integers(0, 40))):
        lo = int(rng.integers(0, n_blocks))
        hi = int(rng.integers(lo, n_blocks + 1))
        q = int(rng.choice([0, 1, 1, 1, int(rng.integers(2, 5000))]))
        items.append((lo, hi, q, int(rng.integers(0, 8000))))
    needs = np.zeros((len(items), n_blocks), bool)
    for i, (lo, hi, _, _) in enumerate(items):
        needs[i, lo:hi] = True
    return items, needs


@pytest.mark.parametrize("which", ["toy", "a100"])
def test_pricer_agrees_with_iteration_time(which: str) -> None:
    if which == "toy":
        costs, kinds = replace(toy(0.25), overhead_per_seq_s=0.01), KINDS + ("layer", "head", "embed")
    else:
        inst = load_instance(example_path("llama2-7b"))
        base = server_costs(inst, "vllm")
        costs = replace(base, attention=replace(base.attention, folded_context=100.0))
        kinds = tuple(b.kind for b in inst.model.blocks)
    price, rng = IterationPricer(costs, kinds), np.random.default_rng(7)
    for _ in range(300):
        items, needs = _random_iteration(rng, len(kinds))
        q = np.array([it[2] for it in items], dtype=float)
        ctx = np.array([it[3] for it in items], dtype=float)
        want = float(iteration_time(costs, kinds, needs.reshape(len(items), len(kinds)), q, ctx))
        assert price(items) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_pricer_refuses_an_unknown_kind() -> None:
    with pytest.raises(InputError, match="no table"):
        IterationPricer(toy(), ("embed", "mlp"))

"""Tests for genai_lib.distributed and the core's data parallelism: real gloo processes on 127.0.0.1.

Each test that launches processes spawns 2 fresh Python processes (a few seconds each with
OMP_NUM_THREADS=1); they talk over loopback only, which the test-suite's network guard allows.
"""

from __future__ import annotations

import torch
from torch import nn

from genai_lib import distributed as D
from genai_lib.models.gpt import GPTConfig
from genai_lib.recipes.efficiency import ddp_check
from genai_lib.train import fit
from tests._tiny import Tiny, TinyConfig, tiny_data


def test_two_ranks_of_batch_b_equal_one_process_of_batch_2b():
    cfg = GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16)
    gap = ddp_check(cfg, world_size=2, batch_size=4, steps=3)
    assert gap["loss_rel"] < 1e-5 and gap["grad_rel"] < 1e-5 and gap["weight_rel"] < 1e-5, gap
    assert gap["ranks_equal"] == 1.0


def test_the_tensor_parallel_mlp_equals_the_dense_one():
    gap = D.tensor_parallel_check(2, features=16, hidden=32, batch=4)
    assert gap["y"] < 1e-5 * max(1.0, gap["y_scale"]) and gap["grad"] < 1e-5, gap


def test_the_split_layers_hold_slices_of_the_dense_weights():
    dense = nn.Linear(6, 4)
    cols = [D.ColumnParallelLinear(dense, r, 2) for r in range(2)]
    rows = [D.RowParallelLinear(nn.Linear(4, 6), r, 2) for r in range(2)]
    assert torch.equal(torch.cat([c.weight for c in cols]), dense.weight)
    x = torch.randn(3, 6)
    torch.testing.assert_close(torch.cat([c(x) for c in cols], -1), dense(x))  # no communication needed
    assert rows[0].weight.shape == (6, 2)


def test_without_a_process_group_nothing_changes():
    assert not D.is_distributed() and D.rank() == 0 and D.world_size() == 1 and D.is_main()
    x = torch.arange(6.0)
    assert torch.equal(D.shard(x), x)
    assert torch.equal(D.shard(x, 1, 3), torch.tensor([2.0, 3.0]))
    p = nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    D.allreduce_gradients([p])
    assert torch.equal(p.grad, torch.full((2,), 3.0))
    assert not D.init_from_env() or "RANK" in __import__("os").environ
    torch.manual_seed(0)
    model = Tiny(TinyConfig())
    x, y = tiny_data()
    hist = fit(model, [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)], steps=5, progress=False)
    assert len(hist.logs["loss"]) == 5

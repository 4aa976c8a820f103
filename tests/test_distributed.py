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


def _checkpointing_worker(folder: str) -> dict:
    """Each rank trains the same Tiny model on its shard and asks for its own checkpoint file."""
    from pathlib import Path

    torch.manual_seed(0)
    model = Tiny(TinyConfig())
    x, y = tiny_data()
    batches = [(D.shard(x[i : i + 16]), D.shard(y[i : i + 16])) for i in range(0, 64, 16)]
    fit(model, batches, steps=4, checkpoint=Path(folder) / f"rank{D.rank()}.pt", progress=True)
    return {"rank": D.rank(), "world": D.world_size(), "main": D.is_main()}


def test_only_rank_0_writes_checkpoints(tmp_path):
    ranks = D.launch(_checkpointing_worker, 2, (str(tmp_path),))
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 for r in ranks)
    assert [r["main"] for r in ranks] == [True, False]
    assert (tmp_path / "rank0.pt").exists() and not (tmp_path / "rank1.pt").exists()


def test_torchrun_runs_the_ddp_script_on_two_gloo_ranks(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(root / "benchmarks" / "ddp_gpt.py"), "--steps", "3", "--checkpoint", str(tmp_path / "c.pt")]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("ddp_gpt: world=2 steps=3") and "ranks_equal=1" in last, out.stdout
    assert (tmp_path / "c.pt").exists()

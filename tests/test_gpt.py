"""Tests for genai_lib.models.gpt: shapes, causality, KV-cache, attention, optimizer, FLOPs."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from genai_lib.models.attention import CausalSelfAttention, apply_rope, rope_tables
from genai_lib.models.gpt import GPT, GPTConfig, estimate_mfu, flops_per_token
from genai_lib.recipes.language import train_gpt

CFG = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)


def tiny(cfg: GPTConfig = CFG, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(cfg)


def ids(b: int, t: int, seed: int = 0, v: int = 11) -> torch.Tensor:
    return torch.randint(0, v, (b, t), generator=torch.Generator().manual_seed(seed))


def test_forward_shapes_loss_and_gradients():
    model = tiny()
    x, y = ids(3, 16), ids(3, 16, seed=1)
    logits, loss = model(x, y)
    assert logits.shape == (3, 16, 11)
    assert loss.dim() == 0 and bool(torch.isfinite(loss))
    assert loss.item() == pytest.approx(math.log(11), abs=0.1)  # small init: near uniform
    assert model(x)[1] is None
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert model.lm_head.weight is model.wte.weight  # tied


def test_causal_mask_by_perturbation():
    model = tiny().eval()
    x = ids(2, 12)
    t = 7
    x2 = x.clone()
    x2[:, t] = (x2[:, t] + 1) % 11  # change one token
    a, b = model(x)[0], model(x2)[0]
    torch.testing.assert_close(a[:, :t], b[:, :t], rtol=0, atol=0)  # earlier logits: identical
    assert (a[:, t:] - b[:, t:]).abs().amax(dim=-1).min() > 0  # position t and later all change


def test_attention_from_scratch_matches_module():
    torch.manual_seed(0)
    attn = CausalSelfAttention(n_embd=16, n_head=4).eval()
    x = torch.randn(2, 9, 16)
    y_fast = attn(x)
    with torch.no_grad():
        y_explicit, w = attn.forward_with_weights(x)
    # the textbook formula, written out: softmax(Q K^T / sqrt(d_k) + causal mask) V, then c_proj
    q, k, v = attn.c_attn(x).split(16, dim=2)
    q, k, v = (t.view(2, 9, 4, 4).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    scores = q @ k.transpose(-2, -1) / math.sqrt(4)
    scores = scores.masked_fill(torch.triu(torch.ones(9, 9, dtype=torch.bool), 1), float("-inf"))
    manual = attn.c_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 9, 16))
    torch.testing.assert_close(y_fast.detach(), manual.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y_explicit, manual.detach(), rtol=1e-5, atol=1e-6)
    assert w.shape == (2, 4, 9, 9)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 9))
    assert float(w.triu(1).abs().max()) == 0.0  # no weight on the future


def test_attention_maps_shapes():
    model = tiny()
    maps = model.attention_maps(ids(1, 10))
    assert len(maps) == CFG.n_layer
    for m in maps:
        assert m.shape == (1, CFG.n_head, 10, 10)
        torch.testing.assert_close(m.sum(-1), torch.ones(1, CFG.n_head, 10))


@pytest.mark.parametrize("batch", [1, 3])
def test_kv_cache_greedy_equals_full_recomputation(batch):
    model = tiny(seed=batch)
    prompt = ids(batch, 3, seed=batch)
    n_new = CFG.block_size - 3  # fills the context exactly
    fast = model.generate(prompt, n_new, greedy=True, use_cache=True)
    slow = model.generate(prompt, n_new, greedy=True, use_cache=False)
    assert fast.shape == (batch, CFG.block_size)
    assert torch.equal(fast, slow)
    assert torch.equal(fast[:, :3], prompt)
    # and the cached step's logits equal a full forward pass
    logits_full = model(fast[:, :-1])[0][:, -1]
    torch.testing.assert_close(logits_full.argmax(-1), fast[:, -1])


ROPE = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16, pos="rope", tie_weights=False)


def test_rope_variant_is_causal_cached_and_untied():
    model = tiny(ROPE).eval()
    assert not hasattr(model, "wpe") and model.lm_head.weight is not model.wte.weight
    assert "rope_cos" not in model.state_dict()  # fixed tables are rebuilt, not saved
    x = ids(2, 12)
    x2 = x.clone()
    x2[:, 7] = (x2[:, 7] + 1) % 11
    torch.testing.assert_close(model(x)[0][:, :7], model(x2)[0][:, :7], rtol=0, atol=0)
    prompt = ids(2, 3)
    fast = model.generate(prompt, ROPE.block_size - 3, greedy=True)
    assert torch.equal(fast, model.generate(prompt, ROPE.block_size - 3, greedy=True, use_cache=False))
    maps = model.attention_maps(x)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 2, 12))


def test_rope_scores_depend_on_relative_position_only():
    cos, sin = rope_tables(20, 8)
    q, k = torch.randn(8), torch.randn(8)

    def score(t, s):  # rotated q at position t dotted with rotated k at position s
        qt = apply_rope(q.view(1, 1, 1, 8), cos[t : t + 1], sin[t : t + 1])
        ks = apply_rope(k.view(1, 1, 1, 8), cos[s : s + 1], sin[s : s + 1])
        return float((qt * ks).sum())

    assert score(5, 2) == pytest.approx(score(15, 12), abs=1e-5)
    assert score(3, 3) == pytest.approx(float(q @ k), abs=1e-5)  # same position: no net rotation
    assert abs(score(5, 2) - score(5, 4)) > 1e-3


def test_generation_beyond_block_size_and_long_prompt():
    model = tiny()
    out = model.generate(ids(2, 4), 40, greedy=True)  # 44 > block_size 16: the cache is rebuilt
    slow = model.generate(ids(2, 4), 40, greedy=True, use_cache=False)
    assert out.shape == slow.shape == (2, 44)
    assert torch.equal(out[:, :16], slow[:, :16])  # identical while the context fits
    long_prompt = ids(1, 30)  # longer than block_size: conditioned on its last 16 tokens
    out = model.generate(long_prompt, 5, greedy=True)
    assert out.shape == (1, 35) and torch.equal(out[:, :30], long_prompt)
    torch.testing.assert_close(out[:, 30:], model.generate(long_prompt[:, -16:], 5, greedy=True)[:, 16:])


def test_sampling_determinism():
    model = tiny()
    a = model.sample(20, prompt=torch.tensor([1, 2]), generator=torch.Generator().manual_seed(0), top_k=5)
    b = model.sample(20, prompt=torch.tensor([1, 2]), generator=torch.Generator().manual_seed(0), top_k=5)
    c = model.sample(20, prompt=torch.tensor([1, 2]), generator=torch.Generator().manual_seed(1), top_k=5)
    assert a.shape == (22,) and torch.equal(a, b) and not torch.equal(a, c)
    assert model.sample(4).shape == (5,)  # default prompt: the single token 0
    assert model.training  # generate restores the mode


def test_overfit_one_batch():
    model = tiny()
    x = ids(4, 16)
    y = torch.roll(x, -1, dims=1)
    opt = model.configure_optimizers(weight_decay=0.0, lr=1e-2)
    first = model(x, y)[1].item()
    for _ in range(40):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert loss.item() < first / 2


def test_configure_optimizers_groups():
    model = tiny(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, bias=True))
    opt = model.configure_optimizers(weight_decay=0.1, lr=1e-3)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_params()
    assert opt.defaults.get("fused") is True  # CPU and CUDA: one fused kernel


@pytest.mark.parametrize("bias", [False, True])
def test_flops_per_token_formula(bias):
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=3, n_head=2, n_embd=8, bias=bias)
    model = GPT(cfg)
    n = model.num_params(non_embedding=True)
    assert n == model.num_params() - 8 * 8  # minus the position table
    assert flops_per_token(cfg) == 6 * n + 12 * 3 * 8 * 8
    # pinned by hand: L (12 C^2 + 2C) + C + V C with C = 8, L = 3, V = 11, no bias
    if not bias:
        assert n == 3 * (12 * 64 + 16) + 8 + 88
    assert estimate_mfu(cfg, 1000.0, 1e9) == pytest.approx(flops_per_token(cfg) * 1000 / 1e9)


def test_train_gpt_learns_a_tiny_corpus():
    stream = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 30)
    model = tiny()
    hist = train_gpt(
        model,
        stream,
        steps=80,
        batch_size=8,
        lr=1e-2,
        min_lr=1e-3,
        warmup=5,
        val_ids=stream,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    assert hist.logs["loss"][-1] < hist.logs["loss"][0] / 3
    assert hist.val["loss"][-1] < 0.5
    out = model.generate(torch.tensor([[3, 4]]), 6, greedy=True)
    assert out[0].tolist() == [3, 4, 5, 6, 7, 8, 9, 0]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_embd": 10, "n_head": 3}, ValueError, "divisible by n_head"),
        ({"block_size": 0}, ValueError, "block_size must be > 0"),
        ({"vocab_size": -1}, ValueError, "vocab_size must be > 0"),
        ({"n_layer": 2.0}, TypeError, "n_layer must be an int"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
        ({"bias": "yes"}, TypeError, "bias must be a bool"),
        ({"pos": "sinusoid"}, ValueError, "pos must be 'learned' or 'rope'"),
        ({"pos": "rope", "n_embd": 6, "n_head": 2}, ValueError, "even head size"),
        ({"tie_weights": 1}, TypeError, "tie_weights must be a bool"),
    ],
)
def test_bad_configs(kwargs, exc, match):
    base = {"vocab_size": 11, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8}
    with pytest.raises(exc, match=match):
        GPTConfig(**{**base, **kwargs})


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m: m(ids(1, 17)), ValueError, "exceeds block_size=16"),
        (lambda m: m(torch.tensor([[0, 11]])), ValueError, r"outside the vocabulary \[0, 10\]"),
        (lambda m: m(torch.tensor([[-1, 2]])), ValueError, "outside the vocabulary"),
        (lambda m: m(torch.zeros(1, 4)), TypeError, "integer"),
        (lambda m: m(torch.zeros(4, dtype=torch.long)), ValueError, "2 dimensions"),
        (lambda m: m(ids(1, 4), ids(1, 5)), ValueError, "targets must have the shape"),
        (lambda m: m.generate(ids(1, 2), 3, temperature=0.0), ValueError, "temperature"),
        (lambda m: m.generate(ids(1, 2), 3, top_p=1.5), ValueError, "top_p"),
        (lambda m: m.generate(ids(1, 2), 3, top_k=0), ValueError, "top_k"),
        (lambda m: m.generate(ids(1, 2), -1), ValueError, "max_new_tokens"),
        (lambda m: m.generate(torch.tensor([[0, 99]]), 3), ValueError, "outside the vocabulary"),
        (lambda m: m.sample(3, prompt=torch.tensor([], dtype=torch.long)), ValueError, "empty"),
        (lambda m: m.loss(ids(1, 4)), TypeError, r"batch \(x, y\)"),
        (lambda m: GPT(object()), TypeError, "GPTConfig"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call(tiny())


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_compiles_to_one_graph(pos):
    """What torch.compile captures on CUDA: forward + loss in one graph, no breaks (no .item(),
    no data-dependent Python). Dynamo's tracing is the same on the CPU, so this runs everywhere."""
    torch._dynamo.reset()
    model = tiny(dataclasses.replace(CFG, pos=pos))
    x = ids(2, 16)
    explained = torch._dynamo.explain(model)(x, torch.roll(x, -1, 1))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_bf16_autocast_and_cache_on_cpu():
    """The CUDA path's dtype logic under CPU autocast: bf16 logits, a bf16 KV-cache, and cached
    generation equal to recomputation, greedy and sampled with the same generator."""
    model = tiny(seed=4).eval()
    x = ids(2, 8, seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(x, torch.roll(x, -1, 1))
        runs = [
            [model.generate(x[:, :4], 12, use_cache=c, greedy=True) for c in (True, False)],
            [model.generate(x[:, :4], 12, use_cache=c, generator=torch.Generator().manual_seed(0)) for c in (1, 0)],
        ]
    assert logits.dtype == torch.bfloat16 and bool(torch.isfinite(loss))
    for cached, full in runs:
        assert cached.shape == (2, 16) and torch.equal(cached[:, :4], x[:, :4])
        assert torch.equal(cached, full)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
def test_bf16_autocast_and_cache_on_cuda():
    model = tiny().cuda()
    x = ids(2, 16).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, loss = model(x, torch.roll(x, -1, 1))
        loss.backward()
        out = model.generate(x[:, :4], 8, greedy=True)
    assert logits.dtype == torch.bfloat16 and bool(torch.isfinite(loss))
    assert out.shape == (2, 12)


@pytest.mark.gpu
@cuda
def test_compiled_training_on_cuda():
    stream = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 30).cuda()
    model = tiny().cuda()
    hist = train_gpt(model, stream, steps=30, batch_size=8, lr=3e-3, warmup=5, compile=True, progress=False)
    assert hist.logs["loss"][-1] < hist.logs["loss"][0]

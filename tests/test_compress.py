"""Tests for genai_lib.compress: quantisation error bounds, pruning masks, the distillation loss,
activation checkpointing, and chapter 18's recipes on tiny GPTs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genai_lib import compress as C
from genai_lib.models.gpt import GPT, GPTConfig
from genai_lib.phases import Phase
from genai_lib.train import fit

CFG = GPTConfig(vocab_size=12, block_size=8, n_layer=2, n_head=2, n_embd=16)


def tiny_gpt(seed: int = 0, cfg: GPTConfig = CFG) -> GPT:
    torch.manual_seed(seed)
    return GPT(cfg)


def batches(n: int = 8, b: int = 4, seed: int = 0, cfg: GPTConfig = CFG) -> list:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(cfg.vocab_size, (n, b, cfg.block_size + 1), generator=g)
    return [(x[:, :-1], x[:, 1:]) for x in ids]


# --------------------------------------------------------------------------- quantisation


@pytest.mark.parametrize("bits, group", [(8, 4), (8, 16), (4, 4), (4, 8)])
def test_groupwise_error_is_at_most_half_a_step_per_group(bits, group):
    w = torch.randn(6, 32, generator=torch.Generator().manual_seed(1)) * torch.logspace(-2, 1, 32)
    q, scale = C.quantize_groupwise(w, bits, group)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == torch.int8 and int(q.abs().max()) <= qmax
    assert scale.shape == (6, 32 // group)
    err = (w - C.dequantize_groupwise(q, scale)).abs().reshape(6, -1, group)
    bound = scale[..., None] / 2  # round to nearest: half a step of that group's grid
    assert bool((err <= bound * (1 + 1e-6)).all())
    # each group's largest weight is on the grid's end: its own scale, not a shared one
    groups = w.reshape(6, -1, group).abs().amax(-1)
    torch.testing.assert_close(scale, groups / qmax)
    # a per-tensor scale would be worse for the small-valued groups
    q1, s1 = C.quantize_groupwise(w, bits, 32)
    assert (w - C.dequantize_groupwise(q1, s1))[:, :4].abs().max() > err[:, 0].max()


def test_int4_packs_two_values_per_byte_and_unpacks_exactly():
    q = torch.randint(-8, 8, (3, 10), dtype=torch.int8, generator=torch.Generator().manual_seed(0))
    packed = C.pack_int4(q)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 5)
    assert torch.equal(C.unpack_int4(packed), q)
    with pytest.raises(ValueError, match="even"):
        C.pack_int4(q[:, :3])


def test_an_all_zero_group_quantises_to_zero():
    w = torch.zeros(2, 8)
    w[1, 4:] = 1.0
    q, scale = C.quantize_groupwise(w, 8, 4)
    assert torch.equal(C.dequantize_groupwise(q, scale), w)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantised_gpt_keeps_its_tied_matrix_shared_and_its_outputs_close(bits):
    model = tiny_gpt()
    qm = C.quantize_weights(model, bits, group_size=8)
    assert qm.lm_head.weight_q is qm.wte.weight_q  # one stored matrix, as in the float model
    assert isinstance(qm.blocks[0].mlp.c_fc, C.QuantLinear)
    x = batches(1)[0][0]
    ref, out = model(x)[0], qm(x)[0]
    assert (out - ref).abs().max() < (0.02 if bits == 8 else 0.2) * ref.abs().max()
    # the layer computes exactly with the dequantised weights
    lin = qm.blocks[0].mlp.c_fc
    h = torch.randn(3, 16)
    torch.testing.assert_close(lin(h), h @ lin.weight_q().T)
    # smaller on disk even at this size, where each tensor's file overhead is a big share
    assert C.serialized_bytes(qm) < C.serialized_bytes(model)


def test_serialized_size_of_a_big_layer_follows_the_bits():
    lin = nn.Sequential(nn.Linear(256, 256, bias=False))
    fp32 = C.serialized_bytes(lin)
    q8, q4 = C.quantize_weights(lin, 8, 64), C.quantize_weights(lin, 4, 64)
    assert fp32 / C.serialized_bytes(q8) > 3.5  # 1 byte + a float scale per 64 weights
    assert fp32 / C.serialized_bytes(q4) > 6.5  # half a byte + the scales
    assert C.serialized_bytes(q4) < C.serialized_bytes(q8) < fp32


def test_dynamic_int8_quantises_the_linear_layers_and_stays_close():
    model = tiny_gpt()
    qm = C.dynamic_int8(model)
    assert "quantized" in type(qm.blocks[0].mlp.c_fc).__module__
    x = batches(1)[0][0]
    ref, out = model(x)[0], qm(x)[0]
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    assert 0 < C.linear_fraction(model) < 1
    assert next(model.parameters()).requires_grad  # the original is untouched


# --------------------------------------------------------------------------- pruning


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("structured", [False, True])
def test_masks_hit_the_requested_sparsity(sparsity, structured):
    model = tiny_gpt()
    masks = C.magnitude_masks(model, sparsity, structured=structured)
    assert set(masks) == set(C.prunable_weights(model)) and "lm_head.weight" not in masks  # tied: kept
    for name, m in masks.items():
        w = C.prunable_weights(model)[name]
        n = w.shape[0] if structured else w.numel()
        assert int((~m).sum()) == round(sparsity * n) * (w.shape[1] if structured else 1), name
        if structured:
            assert bool((m.all(1) | (~m).all(1)).all())  # whole rows
        kept, dropped = w.detach()[m].abs(), w.detach()[~m].abs()
        if structured:
            norms = w.detach().norm(dim=1)
            kept, dropped = norms[m[:, 0]], norms[~m[:, 0]]
        if dropped.numel() and kept.numel():
            assert dropped.max() <= kept.min()  # the smallest went
    C.apply_masks_(model, masks)
    total = sum(m.numel() for m in masks.values())
    zeros = sum(int((~m).sum()) for m in masks.values())
    assert C.weight_sparsity(model) == pytest.approx(zeros / total)
    assert abs(C.weight_sparsity(model) - sparsity) < 0.05


def test_masks_survive_fine_tuning_and_a_checkpoint_round_trip(tmp_path):
    model = tiny_gpt()
    masks = C.magnitude_masks(model, 0.5)
    data = batches(6)
    path = tmp_path / "run.pt"
    fit(model, data, steps=3, hooks=[C.MaskHook(model, masks)], checkpoint=path, progress=False)
    assert C.weight_sparsity(model) == pytest.approx(0.5, abs=0.01)  # Adam would refill them otherwise
    # a fresh model and a hook with other masks resume from the checkpoint: its masks come back
    again = tiny_gpt(seed=1)
    hook = C.MaskHook(again, C.magnitude_masks(again, 0.0))
    fit(again, data, steps=6, hooks=[hook], checkpoint=path, progress=False)
    assert all(torch.equal(hook.masks[k], masks[k]) for k in masks)
    params = dict(again.named_parameters())
    assert all(bool((params[k][~m] == 0).all()) for k, m in masks.items())
    # without the hook, fine-tuning refills the pruned weights: the hook is what holds the mask
    free = tiny_gpt()
    C.apply_masks_(free, masks)
    fit(free, data, steps=3, progress=False)
    assert C.weight_sparsity(free) < 0.1


# --------------------------------------------------------------------------- distillation


def test_distillation_loss_matches_its_closed_form():
    rng = np.random.default_rng(0)
    zs, zt = rng.normal(size=(5, 7)), rng.normal(size=(5, 7)) * 2
    y = rng.integers(7, size=5)
    T, alpha = 3.0, 0.7

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(zt / T), softmax(zs / T)
    kl = (p * (np.log(p) - np.log(q))).sum(-1).mean()
    ce = -np.log(softmax(zs)[np.arange(5), y]).mean()
    want = alpha * T**2 * kl + (1 - alpha) * ce
    s = torch.tensor(zs, requires_grad=True)
    got = C.distillation_loss(s, torch.tensor(zt), torch.tensor(y), temperature=T, alpha=alpha)
    assert float(got.detach()) == pytest.approx(want, rel=1e-9)
    # Hinton et al.: d(T^2 KL)/dz_s = T (q - p), per position (the mean over 5 positions divides by 5)
    soft = C.distillation_loss(s, torch.tensor(zt), temperature=T)
    (grad,) = torch.autograd.grad(soft, s)
    np.testing.assert_allclose(grad.numpy(), T * (q - p) / 5, rtol=1e-9, atol=1e-12)
    # a student that already matches its teacher has nothing left to learn from it
    assert float(C.distillation_loss(torch.tensor(zt), torch.tensor(zt), temperature=T)) == pytest.approx(0, abs=1e-9)
    # alpha = 0 is the plain cross-entropy
    hard = C.distillation_loss(s, torch.tensor(zt), torch.tensor(y), temperature=T, alpha=0.0)
    assert float(hard.detach()) == pytest.approx(float(F.cross_entropy(s, torch.tensor(y)).detach()))


def test_kd_loss_trains_the_student_only():
    teacher, student = tiny_gpt(0), tiny_gpt(1)
    before = [p.clone() for p in teacher.parameters()]
    loss_fn = C.KDLoss(student, teacher, temperature=2.0, alpha=0.5)
    loss, logs = loss_fn(batches(1)[0])
    loss.backward()
    assert math.isfinite(float(loss.detach())) and set(logs) == {"soft", "hard"}
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    fit(teacher, batches(8), steps=40, lr=1e-2, progress=False)  # a teacher with something to teach
    before = [p.clone() for p in teacher.parameters()]
    soft_only = C.KDLoss(student, teacher, temperature=2.0, alpha=1.0)
    phase = Phase("loss", soft_only, list(student.parameters()), lr=3e-3)
    hist = fit(student, batches(8), steps=30, phases=[phase], progress=False)
    assert hist.logs["soft"][-1] < 0.5 * hist.logs["soft"][0]  # the student moves toward the teacher
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))


# --------------------------------------------------------------------------- memory


def test_activation_checkpointing_saves_memory_and_keeps_the_gradients():
    cfg = GPTConfig(vocab_size=12, block_size=32, n_layer=3, n_head=2, n_embd=32)
    model = tiny_gpt(cfg=cfg)
    x, y = batches(1, b=8, cfg=cfg)[0]

    def run():
        model.zero_grad()
        nbytes, loss = C.saved_tensor_bytes(lambda: model.loss((x, y))[0], model.parameters())
        loss.backward()
        return nbytes, [p.grad.clone() for p in model.parameters()]

    plain, g_plain = run()
    with C.checkpoint_blocks(model.blocks):
        ckpt, g_ckpt = run()
    assert ckpt < 0.6 * plain  # each block keeps only its input
    for a, b in zip(g_plain, g_ckpt, strict=True):
        torch.testing.assert_close(a, b)
    assert "forward" not in vars(model.blocks[0])  # the blocks are back to normal afterwards


def test_forward_tokens_per_s_counts_tokens():
    model = tiny_gpt()
    x = batches(1)[0][0]
    assert C.forward_tokens_per_s(model, x, reps=2) > 0


# --------------------------------------------------------------------------- chapter 18's recipes


def test_prune_and_student_recipes_train_once_then_load(monkeypatch, tmp_path):
    from genai_lib.recipes import efficiency as E

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    cfg = GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=16)
    teacher = tiny_gpt(cfg=cfg)
    ids = torch.randint(12, (2000,), generator=torch.Generator().manual_seed(0))
    pruned, hist = E.prune_finetune(teacher, ids, 0.5, steps=5, fast=True)
    assert not hist.from_cache and C.weight_sparsity(pruned) == pytest.approx(0.5, abs=0.01)
    again, hist2 = E.prune_finetune(teacher, ids, 0.5, steps=5, fast=True)
    assert hist2.from_cache and all(
        torch.equal(a, b) for a, b in zip(pruned.parameters(), again.parameters(), strict=True)
    )
    assert C.weight_sparsity(again) == pytest.approx(0.5, abs=0.01)
    raw, none = E.prune_finetune(teacher, ids, 0.3, steps=0)
    assert none is None and C.weight_sparsity(raw) == pytest.approx(0.3, abs=0.01)
    student, sh = E.train_student(teacher, ids, distill=True, fast=True)
    assert student.cfg.n_embd == 8 and not sh.from_cache and "soft" in sh.logs
    assert E.train_student(teacher, ids, distill=True, fast=True)[1].from_cache
    other = E.train_student(teacher, ids, distill=True, fast=True, temperature=4.0)[1]
    assert not other.from_cache  # an exercise's temperature has its own entry...
    assert E.train_student(teacher, ids, distill=True, fast=True)[1].from_cache  # ...the shared one stays
    assert len(sh.logs["loss"]) == E.budget(True).steps


def test_the_benchmark_calls_the_shared_recipes():
    import importlib.util
    from pathlib import Path

    from genai_lib.recipes import efficiency, language

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "compress_gpt.py"
    spec = importlib.util.spec_from_file_location("bench_compress_gpt", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.train_char_gpt is language.train_char_gpt
    assert bench.prune_finetune is efficiency.prune_finetune and bench.train_student is efficiency.train_student
    assert bench.ddp_check is efficiency.ddp_check

"""Chapter 8.3: instruction data, the chat template, the SFT mask, Bradley-Terry and DPO."""

from __future__ import annotations

import math
import random

import pytest
import torch

from genai_lib.instruct import (
    FACTS,
    TASKS,
    ChatTemplate,
    Instruction,
    corrupt,
    exact_match,
    make_instructions,
    pad_batch,
    preference_pairs,
)
from genai_lib.models.gpt import GPT, GPTConfig, extend_vocab
from genai_lib.models.preference import (
    DPOLoss,
    RewardModel,
    SFTLoss,
    bradley_terry_loss,
    dpo_loss,
    masked_nll,
    response_logprobs,
)
from genai_lib.tokenizer import CharTokenizer

ALPHABET = "".join(chr(i) for i in range(32, 127))


@pytest.fixture(scope="module")
def template():
    return ChatTemplate(CharTokenizer(list(ALPHABET)))


def tiny_gpt(vocab: int, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab, block_size=48, n_layer=1, n_head=2, n_embd=16))


def test_instructions_are_seeded_checkable_and_split():
    train = make_instructions(200, seed=3)
    assert train == make_instructions(200, seed=3)
    assert train != make_instructions(200, seed=4)
    test = make_instructions(100, split="test", seed=3)
    assert not {i.prompt for i in train} & {i.prompt for i in test}
    assert {i.task for i in train} == set(TASKS)
    for ins in train + test:  # every answer is checkable from the prompt
        if ins.task == "add":
            a, b = (int(w.strip(".")) for w in ins.prompt.split()[1::2])
            assert ins.answer == str(a + b)
        elif ins.task == "upper":
            assert ins.answer == ins.prompt.split(": ")[1].upper()
        elif ins.task == "reverse":
            assert ins.answer == ins.prompt.split(": ")[1][::-1]
        elif ins.task == "fact":
            assert any(c in ins.prompt and ins.answer in v for c, v in FACTS.items())
    # held-out fact questions ask about facts seen in training under another phrasing
    seen = {(c, ins.answer) for ins in train if ins.task == "fact" for c in FACTS if c in ins.prompt}
    for ins in make_instructions(5, split="test", tasks=("fact",)):
        assert any(c in ins.prompt and (c, ins.answer) in seen for c in FACTS)
    with pytest.raises(ValueError, match="cannot draw 60 distinct test"):
        make_instructions(60, split="test", tasks=("fact",))  # the fact table is small


def test_chat_template_round_trip(template):
    for ins in make_instructions(50, seed=1):
        ids, mask = template.encode(ins.prompt, ins.answer)
        assert template.parse(ids) == (ins.prompt, ins.answer)
        assert ids[: len(template.encode_prompt(ins.prompt))] == template.encode_prompt(ins.prompt)
        assert template.render(ids) == f"<|user|>{ins.prompt}<|assistant|>{ins.answer}<|end|>"
    # ordinary text keeps its ids; specials cannot be smuggled in as text
    assert template.tokenizer.encode("abc") == template.base.encode("abc")
    with pytest.raises(ValueError, match="special or out-of-vocabulary"):
        template.encode("hi" + ChatTemplate.SPECIALS["<|end|>"], "x")
    with pytest.raises(ValueError, match="not a <|user|>"):
        template.parse(template.encode_prompt("hi"))
    assert template.response(template.tokenizer.encode("42") + [template.end_id, 5]) == "42"
    assert template.response(template.tokenizer.encode("42")) is None  # never closed


def test_loss_mask_covers_the_response_only(template):
    ids, mask = template.encode("Add 1 and 2.", "3")
    n_prompt = len(template.encode_prompt("Add 1 and 2."))
    assert mask == [0] * n_prompt + [1, 1]  # "3" and <|end|>
    batch = pad_batch([ids, ids[:-2] + [template.end_id]], [mask, mask[:-2] + [1]], pad_id=0)
    assert batch[0].shape == batch[1].shape == (2, len(ids))
    assert batch[1][1, -1] == 0  # padding is never a target
    # the masked loss ignores every prompt token: changing them changes the loss only through
    # the context, never as a target; with a model that ignores context it is unchanged
    model = tiny_gpt(template.vocab_size)
    x, m = batch
    loss = masked_nll(model, x, m)
    logp = torch.log_softmax(model(x[:, :-1])[0], -1).gather(-1, x[:, 1:, None])[..., 0]
    w = m[:, 1:].float()
    torch.testing.assert_close(loss, -(logp * w).sum() / w.sum())
    torch.testing.assert_close(response_logprobs(model, x, m), (logp * w).sum(1))
    # gradients flow only from response positions: perturbing a prompt target leaves the loss
    x2 = x.clone()
    x2[:, 1] = (x2[:, 1] + 1) % template.vocab_size  # a prompt token as target of position 0
    logp2 = torch.log_softmax(model(x2[:, :1])[0], -1)
    assert torch.isfinite(logp2).all()
    sft, _ = SFTLoss(model)(batch)
    torch.testing.assert_close(sft, loss)


def test_bradley_terry_closed_form():
    rc, rr = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    expected = (math.log1p(math.exp(-2.0)) + math.log(2.0) + math.log1p(math.exp(2.0))) / 3
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(expected, rel=1e-6)
    assert bradley_terry_loss(rc + 5, rr + 5).item() == pytest.approx(expected, rel=1e-6)  # shift-invariant


def test_dpo_closed_forms():
    pc, pr = torch.tensor([-3.0, -5.0], dtype=torch.float64), torch.tensor([-6.0, -4.0], dtype=torch.float64)
    rc, rr = torch.tensor([-4.0, -5.5], dtype=torch.float64), torch.tensor([-5.0, -4.5], dtype=torch.float64)
    beta = 0.5
    loss, r_c, r_r = dpo_loss(pc, pr, rc, rr, beta)
    z = beta * ((pc - rc) - (pr - rr))
    assert loss.item() == pytest.approx(float(torch.log1p(torch.exp(-z)).mean()), rel=1e-6)
    # DPO is Bradley-Terry on the implied reward beta * log(pi / pi_ref)
    torch.testing.assert_close(loss, bradley_terry_loss(beta * (pc - rc), beta * (pr - rr)))
    torch.testing.assert_close(r_c, beta * (pc - rc))
    # identical policy and reference: every implied reward is 0, the loss is log 2
    same, _, _ = dpo_loss(pc, pr, pc, pr, beta)
    assert same.item() == pytest.approx(math.log(2.0), rel=1e-7)
    # beta -> 0: the loss tends to log 2 and its slope to -mean(margin) / 2
    for b in (1e-3, 1e-5):
        small, _, _ = dpo_loss(pc, pr, rc, rr, b)
        margin = ((pc - rc) - (pr - rr)).mean().item()
        assert small.item() == pytest.approx(math.log(2.0) - b * margin / 2, abs=b * b * 10)


def test_dpo_gradient_raises_chosen_lowers_rejected(template):
    policy, reference = tiny_gpt(template.vocab_size), tiny_gpt(template.vocab_size)
    reference.load_state_dict(policy.state_dict())
    c = pad_batch(*zip(*[template.encode("Add 1 and 2.", "3")], strict=True), pad_id=0)
    r = pad_batch(*zip(*[template.encode("Add 1 and 2.", "4")], strict=True), pad_id=0)
    loss, logs = DPOLoss(policy, reference, beta=0.1)((*c, *r))
    assert loss.item() == pytest.approx(math.log(2.0), rel=1e-5)  # policy == reference
    opt = torch.optim.SGD(policy.parameters(), lr=1.0)
    loss.backward()
    opt.step()
    with torch.no_grad():
        after, _ = DPOLoss(policy, reference, beta=0.1)((*c, *r))
        assert after < loss
        assert response_logprobs(policy, *c) - response_logprobs(reference, *c) > 0


def test_reward_model_reads_the_end_token_and_learns(template):
    torch.manual_seed(0)
    rm = RewardModel(GPTConfig(template.vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=16))
    pairs = preference_pairs(make_instructions(32, seed=0, tasks=("upper",)), seed=0, format_fraction=0.0)
    c = pad_batch(*zip(*[template.encode(i.prompt, ch) for i, ch, _ in pairs], strict=True), pad_id=0)
    r = pad_batch(*zip(*[template.encode(i.prompt, rj) for i, _, rj in pairs], strict=True), pad_id=0)
    loss0, _ = rm.loss((*c, *r))
    assert loss0.item() == pytest.approx(math.log(2.0))  # zero head: indifferent
    # padding after the last response token does not change a reward
    longer = torch.cat([c[0], torch.zeros(len(pairs), 3, dtype=torch.long)], 1)
    mask = torch.cat([c[1], torch.zeros(len(pairs), 3, dtype=torch.long)], 1)
    torch.nn.init.normal_(rm.head.weight)
    torch.testing.assert_close(rm(longer, mask), rm(*c))
    opt = torch.optim.Adam(rm.parameters(), lr=3e-3)
    for _ in range(60):
        loss, logs = rm.loss((*c, *r))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 and logs["acc"] > 0.9


def test_preference_pairs_are_checkably_better():
    rng = random.Random(0)
    for ins in make_instructions(200, seed=2):
        for kind in ("wrong", "format"):
            bad = corrupt(ins, rng, kind)
            assert bad != ins.answer
            if kind == "format":
                assert ins.answer in bad
    ins = Instruction("Add 1 and 2.", "3", "add")
    own = preference_pairs([ins], candidates=[["4", "3", None]])
    assert own == [(ins, "3", "4")]  # the model's own wrong sample is preferred as the rejected
    assert exact_match([ins, ins], ["3", "3 "]) == 0.5


def test_extend_vocab_keeps_old_predictions():
    model = tiny_gpt(20)
    big = extend_vocab(model, 23, like=19, noise=0.0, generator=torch.Generator().manual_seed(0))
    x = torch.randint(0, 20, (2, 10))
    torch.testing.assert_close(big(x)[0][..., :20], model(x)[0])
    torch.testing.assert_close(big.wte.weight[20:], model.wte.weight[19].expand(3, -1))


def test_dpo_nll_term_and_mean_pooled_reward(template):
    policy, reference = tiny_gpt(template.vocab_size), tiny_gpt(template.vocab_size)
    reference.load_state_dict(policy.state_dict())
    c = pad_batch(*zip(*[template.encode("Add 1 and 2.", "3")], strict=True), pad_id=0)
    r = pad_batch(*zip(*[template.encode("Add 1 and 2.", "45")], strict=True), pad_id=0)
    pure, logs = DPOLoss(policy, reference, beta=0.1)((*c, *r))
    mixed, logs2 = DPOLoss(policy, reference, beta=0.1, nll_weight=0.5)((*c, *r))
    torch.testing.assert_close(mixed, pure + 0.5 * masked_nll(policy, *c))  # DPO + 0.5 x SFT loss on chosen
    torch.testing.assert_close(logs2["dpo"], pure.detach())
    torch.manual_seed(0)
    rm = RewardModel(GPTConfig(template.vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=16), pool="mean")
    torch.nn.init.normal_(rm.head.weight)
    h = rm.trunk._hidden(c[0])
    per_token = rm.head(h)[0, :, 0]
    w = c[1][0].float()
    torch.testing.assert_close(rm(*c)[0], (per_token * w).sum() / w.sum())


def test_likelihood_reward_is_the_mean_response_logprob(template):
    torch.manual_seed(0)
    cfg = GPTConfig(template.vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=16)
    rm = RewardModel(cfg, loglik=True)
    c = pad_batch(*zip(*[template.encode("Add 1 and 2.", "3"), template.encode("Add 10 and 20.", "30")], strict=True),
                  pad_id=0)  # fmt: skip
    n_tokens = c[1][:, 1:].sum(1)
    # zero head, scale 1: the reward is the trunk's mean log-probability per response token
    torch.testing.assert_close(rm(*c), response_logprobs(rm.trunk, *c) / n_tokens)
    torch.nn.init.normal_(rm.head.weight)
    with torch.no_grad():
        rm.scale.fill_(2.0)
    plain = RewardModel(cfg)
    plain.load_state_dict({k: v for k, v in rm.state_dict().items() if k != "scale"})
    torch.testing.assert_close(rm(*c), plain(*c) + 2.0 * response_logprobs(rm.trunk, *c) / n_tokens)
    # the scale and the trunk get gradients through the likelihood term
    r = pad_batch(*zip(*[template.encode("Add 1 and 2.", "4"), template.encode("Add 10 and 20.", "31")], strict=True),
                  pad_id=0)  # fmt: skip
    loss, _ = rm.loss((*c, *r))
    loss.backward()
    assert rm.scale.grad is not None and rm.scale.grad.abs() > 0
    assert rm.trunk.lm_head.weight.grad.abs().sum() > 0

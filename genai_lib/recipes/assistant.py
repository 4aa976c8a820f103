"""Chapter 8.3's assistant: the pre-trained character GPT, instruction-tuned, a reward model, DPO.

The pipeline (each stage through :func:`genai_lib.train.fit`, cached with
:func:`genai_lib.train_cache.load_or_train`, weights seeded inside ``torch.random.fork_rng``):

1. :func:`chat_base`: chapter 7's character GPT (``recipes.language.train_char_gpt``) with its
   vocabulary extended by the chat template's three special tokens (:func:`~genai_lib.models.gpt.extend_vocab`).
2. :func:`train_sft`: supervised fine-tuning on generated instructions, loss on the response only.
3. :func:`preference_data`: the SFT model's own samples on training prompts, judged by the
   checker; pairs (right answer, a wrong sample or a corruption).
4. :func:`train_reward_model`: SFT trunk + scalar head (+ the trunk's own mean log-likelihood of
   the response, ``rm_loglik``), Bradley-Terry loss; :func:`likelihood_reward` is where it starts.
5. :func:`train_dpo`: DPO from the SFT model, the SFT model as the frozen reference.

Evaluation lives in :mod:`genai_lib.recipes.assistant_eval` (exact match, best-of-n, KL).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch

from genai_lib.data import TensorLoader
from genai_lib.history import History
from genai_lib.instruct import ChatTemplate, Instruction, make_instructions, pad_batch, preference_pairs
from genai_lib.models.gpt import GPT, extend_vocab
from genai_lib.models.preference import DPOLoss, RewardModel, SFTLoss
from genai_lib.phases import Phase
from genai_lib.recipes.language import train_char_gpt
from genai_lib.text import load_corpus
from genai_lib.tokenizer import CharTokenizer
from genai_lib.train import cosine_schedule
from genai_lib.train_cache import load_or_train
from genai_lib.utils import fast_mode, model_device

__all__ = [
    "AssistantRecipe",
    "ASSISTANT",
    "ChatBase",
    "chat_base",
    "fits",
    "chat_tensors",
    "pair_tensors",
    "train_sft",
    "preference_data",
    "train_reward_model",
    "likelihood_reward",
    "train_dpo",
    "instruction_splits",
]


@dataclass(frozen=True)
class AssistantRecipe:
    """Data sizes and the budget of each stage (see ``ASSISTANT``)."""

    n_train: int  # training instructions (SFT)
    n_test: int  # held-out instructions (exact match)
    sft_steps: int
    sft_lr: float
    n_pair_prompts: int  # unseen training-split prompts the SFT model answers to make preference pairs
    n_pair_from_sft: int  # ... and SFT training prompts answered too (where the SFT model still errs)
    samples: int  # SFT samples per prompt (temperature 1)
    rm_steps: int
    rm_lr: float
    dpo_steps: int
    dpo_lr: float
    beta: float  # DPO's KL weight
    batch_size: int = 32
    dpo_nll: float = 0.0  # weight of the SFT loss on the chosen responses added to DPO (0: pure DPO)
    rm_pool: str = "last"  # where the reward head reads: "last" response token or "mean" over the response
    rm_loglik: bool = False  # add the trunk's mean log-probability of the response to the reward (SimPO-style)
    max_new: int = 10  # tokens generated per answer (the longest answer is 8 characters + <|end|>)


ASSISTANT: dict[str, AssistantRecipe] = {
    "full": AssistantRecipe(
        n_train=6000,
        n_test=500,
        sft_steps=1500,
        sft_lr=1e-3,
        n_pair_prompts=2000,
        n_pair_from_sft=4000,
        samples=4,
        rm_steps=200,
        rm_lr=1e-5,
        dpo_steps=200,
        dpo_lr=1e-5,
        beta=0.5,
        rm_loglik=True,
    ),  # fmt: skip
    "fast": AssistantRecipe(
        n_train=600,
        n_test=60,
        sft_steps=120,
        sft_lr=3e-3,
        n_pair_prompts=96,
        n_pair_from_sft=96,
        samples=2,
        rm_steps=40,
        rm_lr=1e-4,
        dpo_steps=20,
        dpo_lr=1e-4,
        beta=0.5,
        batch_size=16,
        rm_loglik=True,
    ),  # fmt: skip
}


class ChatBase(NamedTuple):
    """What every stage starts from."""

    recipe: AssistantRecipe
    template: ChatTemplate
    base: GPT  # the pre-trained GPT, vocabulary extended: the "before" model
    pretrain_history: History
    pretrain_val_ids: torch.Tensor  # English held-out text, for the alignment tax


def chat_base(*, fast: bool | None = None, device: Any = None) -> ChatBase:
    """The pre-trained character GPT of chapter 7 (cached), its tokenizer with the chat template's
    special tokens, and its copy with three more vocabulary rows (started as the unknown character)."""
    fast = fast_mode() if fast is None else fast
    train_text, val_text = load_corpus("english", "train"), load_corpus("english", "val")
    tok = CharTokenizer.from_text(train_text)
    pre, hist = train_char_gpt(tok.encode(train_text, as_tensor=True), tok.vocab_size, fast=fast, device=device)
    template = ChatTemplate(tok)
    g = torch.Generator().manual_seed(0)
    base = extend_vocab(pre, template.vocab_size, like=tok.unk_id, generator=g)
    val_ids = tok.encode(val_text, as_tensor=True)
    return ChatBase(ASSISTANT["fast" if fast else "full"], template, base, hist, val_ids)


def fits(template: ChatTemplate, instructions: list[Instruction], block_size: int, max_new: int) -> list[Instruction]:
    """The instructions whose exchange fits the model's context (prompt + ``max_new`` tokens)."""
    return [
        ins
        for ins in instructions
        if len(template.encode_prompt(ins.prompt)) + max(max_new, len(ins.answer) + 1) <= block_size
    ]


def chat_tensors(template: ChatTemplate, examples: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ``(ids, mask)`` of (prompt, response) exchanges."""
    seqs, masks = zip(*(template.encode(p, r) for p, r in examples), strict=True)
    return pad_batch(seqs, masks, pad_id=template.end_id)


def pair_tensors(template: ChatTemplate, pairs: list[tuple[Instruction, str, str]]) -> tuple[torch.Tensor, ...]:
    """``(chosen ids, chosen mask, rejected ids, rejected mask)``, all padded to one length."""
    c = [template.encode(i.prompt, ch) for i, ch, _ in pairs]
    r = [template.encode(i.prompt, rj) for i, _, rj in pairs]
    ids, mask = pad_batch(*zip(*(c + r), strict=True), pad_id=template.end_id)
    n = len(pairs)
    return ids[:n], mask[:n], ids[n:], mask[n:]


def _fit(model, tensors, phase: Phase, steps: int, batch_size: int, name: str | None, key: Any, progress: bool):
    loader = TensorLoader(*tensors, batch_size=batch_size, drop_last=True, generator=torch.Generator().manual_seed(1))
    run = {
        "steps": steps,
        "phases": [phase],
        "lr_schedule": cosine_schedule(max(1, steps // 10), steps),
        "log_every": 10,
        "progress": progress,
    }
    key = {**key, "data": list(tensors), "schedule": f"cosine({max(1, steps // 10)}, {steps}, 0.1)", "lr": phase.lr}
    if name is None:
        from genai_lib.train import fit

        return fit(model, loader, **run)
    return load_or_train(model, loader, name=name, key=key, **run)


def _fields(r: AssistantRecipe, prefix: str) -> dict[str, Any]:
    """The recipe fields of one stage (so changing another stage's budget keeps its cache entry)."""
    return {k: v for k, v in asdict(r).items() if k.startswith(prefix) or k == "batch_size"}


def _digest(model: torch.nn.Module) -> list[float]:
    """A cheap fingerprint of a model's weights: the sum and the sum of squares of every tensor."""
    with torch.no_grad():
        return [round(float(v.double().sum()), 6) for v in model.state_dict().values()][:8] + [
            round(float(sum(v.double().pow(2).sum() for v in model.state_dict().values())), 6)
        ]


def _copy(model: torch.nn.Module) -> Any:
    with torch.random.fork_rng(devices=[]):
        return copy.deepcopy(model)


def train_sft(
    cb: ChatBase, train: list[Instruction], *, name: str | None = "ch8_sft", progress: bool = False
) -> tuple[GPT, History]:
    """Supervised fine-tuning of a copy of ``cb.base`` on ``train`` (masked next-token loss, AdamW)."""
    r = cb.recipe
    model = _copy(cb.base)
    tensors = chat_tensors(cb.template, [(i.prompt, i.answer) for i in train])
    params = [p for p in model.parameters() if p.requires_grad]
    phase = Phase("loss", SFTLoss(model), params, optimizer="adamw", lr=r.sft_lr, weight_decay=0.1, grad_clip=1.0)
    key = {"recipe": _fields(r, "sft_"), "base": cb.pretrain_history.logs["loss"][-1]}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hist = _fit(model, tensors, phase, r.sft_steps, r.batch_size, name, key, progress)
    return model, hist


def preference_data(
    cb: ChatBase, sft: GPT, instructions: list[Instruction], *, seed: int = 0
) -> list[tuple[Instruction, str, str]]:
    """Pairs (right answer, rejected) for ``instructions``: the rejected one is a wrong answer the
    SFT model sampled (temperature 1, ``recipe.samples`` tries), else a checkable corruption."""
    from genai_lib.recipes.assistant_eval import generate_responses

    g = torch.Generator(device=model_device(sft)).manual_seed(seed)
    samples = generate_responses(sft, cb.template, instructions, n=cb.recipe.samples, max_new=cb.recipe.max_new,
                                 greedy=False, generator=g)  # fmt: skip
    ok = set(cb.template.base.itos) - {cb.template.base.unk}
    clean = [[s for s in cands if s and set(s) <= ok] for cands in samples]
    return preference_pairs(instructions, seed=seed, candidates=clean)


def train_reward_model(
    cb: ChatBase, sft: GPT, pairs: list, *, name: str | None = "ch8_reward", progress: bool = False
) -> tuple[RewardModel, History]:
    """A reward model (the SFT trunk, a zero-initialised scalar head and, with ``recipe.rm_loglik``,
    the trunk's mean log-probability of the response) fitted to ``pairs`` with the Bradley-Terry
    loss."""
    r = cb.recipe
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        rm = RewardModel(sft.cfg, pool=r.rm_pool, loglik=r.rm_loglik).to(model_device(sft))
    rm.trunk.load_state_dict(sft.state_dict())
    phase = Phase("loss", rm.loss, list(rm.parameters()), optimizer="adamw", lr=r.rm_lr, grad_clip=1.0)
    key = {"recipe": _fields(r, "rm_"), "sft": _digest(sft)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hist = _fit(rm, pair_tensors(cb.template, pairs), phase, r.rm_steps, r.batch_size, name, key, progress)
    return rm, hist


def likelihood_reward(sft: GPT) -> RewardModel:
    """The reward model before any preference training: the SFT trunk, a zero head and the
    likelihood term (``loglik=True``), so its reward is the SFT model's mean log-probability per
    response token. What the Bradley-Terry training of :func:`train_reward_model` starts from."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        rm = RewardModel(sft.cfg, loglik=True).to(model_device(sft))
    rm.trunk.load_state_dict(sft.state_dict())
    return rm.eval()


def train_dpo(
    cb: ChatBase, sft: GPT, pairs: list, *, beta: float | None = None, nll_weight: float | None = None,
    name: str | None = "ch8_dpo", progress: bool = False,
) -> tuple[GPT, History]:  # fmt: skip
    """DPO from a copy of ``sft``, with ``sft`` itself (frozen, unchanged) as the reference;
    ``beta`` and ``nll_weight`` (the SFT term on the chosen responses) default to the recipe's."""
    r = cb.recipe
    beta = r.beta if beta is None else beta
    nll = r.dpo_nll if nll_weight is None else nll_weight
    policy, reference = _copy(sft), _copy(sft)
    params = [p for p in policy.parameters() if p.requires_grad]
    loss = DPOLoss(policy, reference, beta=beta, nll_weight=nll)
    phase = Phase("loss", loss, params, optimizer="adamw", lr=r.dpo_lr, grad_clip=1.0)
    key = {"recipe": _fields(r, "dpo_"), "beta": beta, "nll_weight": nll, "sft": _digest(sft)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hist = _fit(policy, pair_tensors(cb.template, pairs), phase, r.dpo_steps, r.batch_size, name, key, progress)
    return policy, hist


def instruction_splits(cb: ChatBase) -> tuple[list[Instruction], list[Instruction], list[Instruction]]:
    """(SFT training instructions, preference-pair prompts, held-out test instructions), all fitting
    the model's context; the pair prompts are ``n_pair_prompts`` training-split prompts the SFT
    model did not see and the first ``n_pair_from_sft`` SFT prompts (never a held-out one)."""
    r, block = cb.recipe, cb.base.cfg.block_size
    train = fits(cb.template, make_instructions(r.n_train + r.n_pair_prompts, seed=0), block, r.max_new)
    test = fits(cb.template, make_instructions(r.n_test, split="test", seed=1), block, r.max_new)
    return train[: r.n_train], train[r.n_train :] + train[: r.n_pair_from_sft], test

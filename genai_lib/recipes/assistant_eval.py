"""Measuring chapter 8.3's assistants: answers, exact match, rewards, best-of-n and the KL to SFT.

- :func:`generate_responses`: ``n`` answers per instruction (greedy or sampled), prompts of one
  length batched together (the GPT has no padding mask, so a batch shares its prompt length).
- :func:`exact_match_accuracy`: greedy answers scored by :func:`genai_lib.instruct.exact_match`.
- :func:`reward_scores` / :func:`pairwise_accuracy`: a reward model's scores, and how often it
  ranks the preferred response of a held-out pair above the rejected one.
- :func:`best_of_n`: sample n answers, keep the one the reward model scores highest.
- :func:`kl_to_reference`: a Monte Carlo estimate of KL(pi || pi_ref) over whole responses.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from genai_lib._checks import check_positive
from genai_lib.instruct import ChatTemplate, Instruction, exact_match, pad_batch
from genai_lib.models.gpt import GPT
from genai_lib.models.preference import RewardModel, response_logprobs
from genai_lib.utils import eval_mode, model_device

__all__ = [
    "generate_responses",
    "exact_match_accuracy",
    "reward_scores",
    "pairwise_accuracy",
    "best_of_n",
    "kl_to_reference",
]


def _by_prompt_length(template: ChatTemplate, instructions: list[Instruction]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, ins in enumerate(instructions):
        groups[len(template.encode_prompt(ins.prompt))].append(i)
    return groups


@torch.no_grad()
def _sample_ids(
    model: GPT, template: ChatTemplate, instructions: list[Instruction], n: int, max_new: int, **sampling: Any
) -> list[list[list[int]]]:
    """Generated ids (after the prompt), ``n`` per instruction."""
    check_positive("n", n)
    check_positive("max_new", max_new)
    device = model_device(model)
    out: list[list[list[int]]] = [[] for _ in instructions]
    for _, idx in sorted(_by_prompt_length(template, instructions).items()):
        prompts = torch.tensor([template.encode_prompt(instructions[i].prompt) for i in idx], device=device)
        full = model.generate(prompts.repeat_interleave(n, dim=0), max_new, **sampling)
        new = full[:, prompts.shape[1] :].cpu().tolist()
        for j, i in enumerate(idx):
            out[i] = new[j * n : (j + 1) * n]
    return out


def generate_responses(
    model: GPT,
    template: ChatTemplate,
    instructions: list[Instruction],
    *,
    n: int = 1,
    max_new: int = 10,
    greedy: bool = True,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[list[str | None]]:
    """``n`` responses per instruction (None where the model did not close its answer)."""
    ids = _sample_ids(model, template, instructions, n, max_new, greedy=greedy, temperature=temperature,
                      generator=generator)  # fmt: skip
    return [[template.response(s) for s in per] for per in ids]


def exact_match_accuracy(
    model: GPT, template: ChatTemplate, instructions: list[Instruction], *, max_new: int = 10
) -> tuple[float, list[str | None]]:
    """Greedy-decoding exact match on ``instructions`` and the responses."""
    responses = [r[0] for r in generate_responses(model, template, instructions, max_new=max_new)]
    return exact_match(instructions, responses), responses


@torch.no_grad()
def reward_scores(
    rm: RewardModel, template: ChatTemplate, prompts: list[str], responses: list[str | None], batch_size: int = 256
) -> torch.Tensor:
    """The reward of each (prompt, response); an unclosed or unreadable response gets -inf."""
    if len(prompts) != len(responses):
        raise ValueError(f"got {len(prompts)} prompts and {len(responses)} responses")
    scores = torch.full((len(prompts),), float("-inf"))
    ok = [i for i, r in enumerate(responses) if r is not None and template.base.unk not in r]
    with eval_mode(rm):
        for s in range(0, len(ok), batch_size):
            chunk = ok[s : s + batch_size]
            ids, mask = pad_batch(*zip(*(template.encode(prompts[i], responses[i]) for i in chunk), strict=True),
                                  pad_id=template.end_id)  # fmt: skip
            scores[chunk] = rm(ids.to(model_device(rm)), mask.to(model_device(rm))).float().cpu()
    return scores


def pairwise_accuracy(rm: RewardModel, template: ChatTemplate, pairs: list[tuple[Instruction, str, str]]) -> float:
    """How often the reward model scores the chosen response of a pair above the rejected one."""
    if not pairs:
        raise ValueError("pairwise_accuracy needs at least one pair")
    prompts = [i.prompt for i, _, _ in pairs]
    chosen = reward_scores(rm, template, prompts, [c for _, c, _ in pairs])
    rejected = reward_scores(rm, template, prompts, [r for _, _, r in pairs])
    return float((chosen > rejected).float().mean())


def best_of_n(
    policy: GPT,
    rm: RewardModel,
    template: ChatTemplate,
    instructions: list[Instruction],
    *,
    n: int,
    max_new: int = 10,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[float, list[str | None]]:
    """Exact match when each answer is the best of ``n`` samples by the reward model."""
    cands = generate_responses(policy, template, instructions, n=n, max_new=max_new, greedy=False,
                               temperature=temperature, generator=generator)  # fmt: skip
    flat_p = [ins.prompt for ins in instructions for _ in range(n)]
    scores = reward_scores(rm, template, flat_p, [c for per in cands for c in per]).view(len(instructions), n)
    picks = [per[int(k)] for per, k in zip(cands, scores.argmax(dim=1), strict=True)]
    return exact_match(instructions, picks), picks


@torch.no_grad()
def kl_to_reference(
    policy: GPT,
    reference: GPT,
    template: ChatTemplate,
    instructions: list[Instruction],
    *,
    n: int = 4,
    max_new: int = 10,
    generator: torch.Generator | None = None,
) -> float:
    """Monte Carlo KL(pi || pi_ref) in nats per response: responses y ~ pi (temperature 1, up to and
    including ``<|end|>``, or ``max_new`` tokens), averaged ``log pi(y|x) - log pi_ref(y|x)``."""
    ids = _sample_ids(policy, template, instructions, n, max_new, generator=generator)
    seqs, masks = [], []
    for ins, per in zip(instructions, ids, strict=True):
        head = template.encode_prompt(ins.prompt)
        for s in per:
            s = s[: s.index(template.end_id) + 1] if template.end_id in s else s
            seqs.append(head + s)
            masks.append([0] * len(head) + [1] * len(s))
    x, m = pad_batch(seqs, masks, pad_id=template.end_id)
    dev = model_device(policy)
    diffs = []
    with eval_mode(policy), eval_mode(reference):
        for s in range(0, len(seqs), 256):
            xb, mb = x[s : s + 256].to(dev), m[s : s + 256].to(dev)
            diffs.append((response_logprobs(policy, xb, mb) - response_logprobs(reference, xb, mb)).cpu())
    return float(torch.cat(diffs).double().mean())

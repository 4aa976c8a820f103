"""From a language model to an assistant: SFT, reward models and DPO (chapter 8.3).

Batches are right-padded token ids with a response mask (``genai_lib.instruct.ChatTemplate``):
``ids`` (B, L) and ``mask`` (B, L), ``mask[b, t] = 1`` when token t is part of the response (the
tokens the model is trained to write). A language model predicts token t from tokens < t, so
the losses read the logits at positions 0..L-2 and the targets ``ids[:, 1:]`` weighted by
``mask[:, 1:]``.

- **SFT** (supervised fine-tuning; Ouyang et al. 2022, step 1): the next-token cross-entropy on
  the response tokens only, :func:`masked_nll` / :class:`SFTLoss`.
- **Reward model** (Christiano et al. 2017; Stiennon et al. 2020): a GPT trunk and a scalar head
  read at the last response token, trained on pairs with the **Bradley-Terry** loss
  (Bradley & Terry 1952): ``P(chosen > rejected) = sigmoid(r_c - r_r)``, loss
  ``-log sigmoid(r_c - r_r)`` (:func:`bradley_terry_loss`, :class:`RewardModel`); with
  ``loglik=True`` the reward adds the trunk's mean log-probability of the response (SimPO's
  length-normalised implicit reward, Meng et al. 2024).
- **DPO** (Rafailov et al. 2023): the KL-regularised objective
  ``max_pi E[r] - beta KL(pi || pi_ref)`` has the optimum ``pi*(y|x) = pi_ref(y|x) exp(r/beta) / Z(x)``,
  so ``r = beta log(pi*/pi_ref) + beta log Z(x)``; put into Bradley-Terry, ``Z`` cancels:
  ``loss = -log sigmoid(beta [(log pi(y_c) - log pi_ref(y_c)) - (log pi(y_r) - log pi_ref(y_r))])``
  (:func:`dpo_loss`, :class:`DPOLoss`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_finite_number
from genai_lib.models.gpt import GPT, GPTConfig

__all__ = [
    "masked_nll",
    "response_logprobs",
    "SFTLoss",
    "bradley_terry_loss",
    "dpo_loss",
    "RewardModel",
    "DPOLoss",
]


def _check_batch(ids: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
    for name, t in (("ids", ids), ("mask", mask)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.is_floating_point():
            raise TypeError(f"{name} must be a (B, L) integer tensor, got {getattr(t, 'shape', type(t).__name__)}")
    if ids.shape != mask.shape or ids.shape[1] < 2:
        raise ValueError(f"ids and mask must have one (B, L >= 2) shape, got {tuple(ids.shape)}, {tuple(mask.shape)}")
    if not bool(mask[:, 1:].any(dim=1).all()):
        raise ValueError("every sequence needs at least one response token (mask[:, 1:] all zero in a row)")
    return ids, mask


def _token_logprobs(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids[:, t] | ids[:, <t]) for t = 1..L-1 -> (B, L-1)."""
    logits, _ = model(ids[:, :-1])
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]


def masked_nll(model: GPT, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token negative log-likelihood (nats) over the response tokens of the batch."""
    ids, mask = _check_batch(ids, mask)
    w = mask[:, 1:].float()
    return -(_token_logprobs(model, ids) * w).sum() / w.sum()


def response_logprobs(model: GPT, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log pi(y | x) of each sequence's response: the sum over its response tokens -> (B,)."""
    ids, mask = _check_batch(ids, mask)
    return (_token_logprobs(model, ids) * mask[:, 1:].float()).sum(dim=1)


class SFTLoss:
    """``batch = (ids, mask) -> (masked_nll, logs)``: supervised fine-tuning of ``model``."""

    def __init__(self, model: GPT) -> None:
        if not isinstance(model, GPT):
            raise TypeError(f"SFTLoss needs a GPT, got {type(model).__name__}")
        self.model = model

    def __call__(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        ids, mask = batch
        return masked_nll(self.model, ids, mask), {}


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean ``-log sigmoid(r_chosen - r_rejected)``: the negative log-likelihood of the
    preferences under the Bradley-Terry model P(chosen preferred) = sigmoid(r_c - r_r)."""
    if not isinstance(r_chosen, torch.Tensor) or not isinstance(r_rejected, torch.Tensor):
        raise TypeError("rewards must be tensors")
    if r_chosen.shape != r_rejected.shape or r_chosen.dim() != 1:
        raise ValueError(f"rewards must be two (B,) tensors, got {tuple(r_chosen.shape)}, {tuple(r_rejected.shape)}")
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO loss from sequence log-probabilities (B,) of the policy and the reference.

    Returns ``(loss, reward_chosen, reward_rejected)``; the implied rewards are
    ``beta * (log pi - log pi_ref)``, so the loss is :func:`bradley_terry_loss` of them.
    """
    beta = check_finite_number("beta", beta, positive=True, allow_zero=False)
    r_c = beta * (policy_chosen - ref_chosen)
    r_r = beta * (policy_rejected - ref_rejected)
    return bradley_terry_loss(r_c, r_r), r_c.detach(), r_r.detach()


class RewardModel(nn.Module):
    """A GPT trunk and a linear head: the scalar reward of a sequence. ``forward(ids, mask) -> (B,)``.

    ``pool="last"`` reads the head at the last response token (the ``<|end|>`` of a chat
    exchange), as InstructGPT does; ``pool="mean"`` averages the head over the response tokens,
    so each token's score can check that token against its context.

    ``loglik=True`` keeps the trunk's language-model head and adds ``scale`` times the mean
    log-probability per response token the trunk gives the response,
    ``scale * log pi(y|x) / |y|`` (``scale`` learnt, starting at 1): the length-normalised
    implicit reward of SimPO (Meng et al. 2024), a policy's likelihood used as a reward as in
    DPO's "your language model is secretly a reward model" (Rafailov et al. 2023). Started from
    the SFT model, the reward then begins as "how likely the SFT model finds this response" and
    the Bradley-Terry loss trains the head, the scale and the trunk together.
    """

    def __init__(self, cfg: GPTConfig, pool: str = "last", loglik: bool = False) -> None:
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"RewardModel needs a GPTConfig, got {type(cfg).__name__}")
        if pool not in ("last", "mean"):
            raise ValueError(f"pool must be 'last' or 'mean', got {pool!r}")
        if not isinstance(loglik, bool):
            raise TypeError(f"loglik must be a bool, got {type(loglik).__name__}")
        self.cfg, self.pool, self.loglik = cfg, pool, loglik
        self.trunk = GPT(cfg)
        self.head = nn.Linear(cfg.n_embd, 1)
        nn.init.zeros_(self.head.weight)  # start indifferent: every reward 0
        nn.init.zeros_(self.head.bias)
        if loglik:
            self.scale = nn.Parameter(torch.ones(()))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, mask = _check_batch(ids, mask)
        ids = self.trunk._check_idx(ids)
        if ids.shape[1] > self.cfg.block_size:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds block_size={self.cfg.block_size}")
        h = self.trunk._hidden(ids)  # (B, L, C)
        if self.pool == "mean":
            w = mask.to(h.dtype)
            r = ((self.head(h.float())[..., 0] * w).sum(1) / w.sum(1)).float()
        else:
            positions = torch.arange(ids.shape[1], device=ids.device)
            last = (mask.bool() * positions).argmax(dim=1)  # index of the last response token
            r = self.head(h[torch.arange(ids.shape[0], device=ids.device), last].float())[:, 0]
        if not self.loglik:
            return r
        logp = torch.log_softmax(self.trunk.lm_head(h[:, :-1]).float(), dim=-1)
        logp = logp.gather(-1, ids[:, 1:, None])[..., 0]  # log p(token t | tokens < t)
        w = mask[:, 1:].float()
        return r + self.scale * (logp * w).sum(1) / w.sum(1)

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """batch = (chosen ids, chosen mask, rejected ids, rejected mask): the Bradley-Terry loss;
        logs the pairwise accuracy (how often the chosen response gets the higher reward)."""
        if not (isinstance(batch, (tuple, list)) and len(batch) == 4):
            raise TypeError("RewardModel.loss expects a batch (chosen_ids, chosen_mask, rejected_ids, rejected_mask)")
        r_c, r_r = self(batch[0], batch[1]), self(batch[2], batch[3])
        return bradley_terry_loss(r_c, r_r), {"acc": (r_c > r_r).float().mean()}


class DPOLoss:
    """``batch = (chosen ids, chosen mask, rejected ids, rejected mask) -> (DPO loss, logs)`` for
    ``policy`` against a frozen ``reference`` (its log-probabilities computed without gradients).

    ``nll_weight`` > 0 adds that multiple of the SFT loss (:func:`masked_nll`) on the chosen
    responses, the "DPO + NLL" regulariser of Pang et al. 2024 (RPO): pure DPO can raise the
    margin by lowering the probability of *both* responses, and the NLL term keeps the chosen
    one likely. The logs hold the pure DPO loss as ``dpo``.
    """

    def __init__(self, policy: GPT, reference: GPT, beta: float = 0.1, nll_weight: float = 0.0) -> None:
        if not isinstance(policy, GPT) or not isinstance(reference, GPT):
            raise TypeError("DPOLoss needs a GPT policy and a GPT reference")
        if policy is reference:
            raise ValueError("the reference must be a separate, frozen copy of the policy")
        self.beta = check_finite_number("beta", beta, positive=True, allow_zero=False)
        self.nll_weight = check_finite_number("nll_weight", nll_weight, positive=True)
        self.policy, self.reference = policy, reference.eval().requires_grad_(False)

    def __call__(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        c_ids, c_mask, r_ids, r_mask = batch
        with torch.no_grad():
            ref_c, ref_r = (
                response_logprobs(self.reference, c_ids, c_mask),
                response_logprobs(self.reference, r_ids, r_mask),
            )
        pol_c, pol_r = response_logprobs(self.policy, c_ids, c_mask), response_logprobs(self.policy, r_ids, r_mask)
        loss, rc, rr = dpo_loss(pol_c, pol_r, ref_c, ref_r, self.beta)
        logs = {"dpo": loss.detach(), "margin": (rc - rr).mean(), "acc": (rc > rr).float().mean()}
        if self.nll_weight:
            n_tokens = c_mask[:, 1:].sum(dim=1).clamp(min=1)
            loss = loss + self.nll_weight * (-pol_c / n_tokens).mean()  # mean NLL per chosen token
        return loss, logs

"""CycleGAN with CyCADA's semantic-consistency loss (Hoffman et al. 2018, eq. 3; chapter 4).

A plain CycleGAN (:mod:`genai_lib.models.cyclegan`) learns that a translation must look like the
target domain and come back to its input; nothing in its objective says that a 1 must stay a 1.
CyCADA adds that: a frozen classifier ``f`` labels each source image ``x`` (its own prediction,
``p(f, x) = argmax f(x)``, no ground truth) and the translation must be read the same way,

    L_sem(G, F) = CE(f_A(G(a)), p(f_A, a)) + CE(f_B(F(b)), p(f_B, b))

where ``f_A`` is a classifier of domain A (read on A -> B translations) and ``f_B`` one of domain
B (read on B -> A translations): each direction is held to the label that its *source* domain's
classifier gives (``readers="source"``). The generator objective becomes
``L(G, F) + lambda_sem L_sem(G, F)``; the discriminators, the image pools and every other term are
the plain CycleGAN's.

A source classifier reading a translation forgives what the translation failed to change: the
UCI classifier reads a UCI-style 1 (a base and a flag) as a 1 whether or not ``F`` made it an
MNIST 1. With ``readers="target"`` the label still comes from the source classifier, but the
translation is read by a classifier of the domain it lands in (``r_B`` for ``G(a)``, ``r_A``
for ``F(b)``), as the task loss on translated images in CyCADA's adaptation step:

    L_sem(G, F) = CE(r_B(G(a)), p(f_A, a)) + CE(r_A(F(b)), p(f_B, b)).

Chapter 4 scores direction A -> B with its B classifier and B -> A with its A classifier. So
that no translation is trained towards its own judge's decision boundary, the source readers
are the *other* direction's judges, and the target readers are separately trained networks
(another seed and width), never the judges themselves.

Shapes: as :mod:`genai_lib.models.cyclegan`; classifiers map (B, 1, 28, 28) to logits (B, K).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_finite_number
from genai_lib.models.cyclegan import CycleGAN, CycleGANConfig

__all__ = ["SemanticCycleGANConfig", "SemanticCycleGAN", "semantic_loss", "READERS"]

READERS = ("source", "target")


@dataclass(frozen=True)
class SemanticCycleGANConfig(CycleGANConfig):
    """A :class:`CycleGANConfig` plus the weight of the semantic-consistency loss."""

    semantic_weight: float = 1.0  # lambda_sem (CyCADA's semantic term); 0 = the plain CycleGAN
    readers: str = "source"  # who reads a translation: its source's classifier or the target's

    def __post_init__(self) -> None:
        super().__post_init__()
        check_finite_number("semantic_weight", self.semantic_weight, positive=True)
        if self.readers not in READERS:
            raise ValueError(f"readers must be one of {READERS}, got {self.readers!r}")


def semantic_loss(
    x: torch.Tensor, translated: torch.Tensor, clf: nn.Module, reader: nn.Module | None = None
) -> torch.Tensor:
    """CyCADA eq. 3 for one direction: ``CE(reader(translated), argmax clf(x))``, the label the
    frozen source classifier ``clf`` gives ``x`` (no gradient) kept by its translation (gradient),
    as read by ``reader`` (default: ``clf`` itself)."""
    if x.shape != translated.shape:
        raise ValueError(f"translated must have the shape of x {tuple(x.shape)}, got {tuple(translated.shape)}")
    with torch.no_grad():
        target = clf(x).argmax(1)
    return F.cross_entropy((clf if reader is None else reader)(translated), target)


def _frozen(name: str, clf: nn.Module) -> nn.Module:
    if not isinstance(clf, nn.Module):
        raise TypeError(f"{name} must be a classifier nn.Module, got {type(clf).__name__}")
    for p in clf.parameters():
        p.requires_grad_(False)
    return clf.eval()


class SemanticCycleGAN(CycleGAN):
    """A :class:`CycleGAN` whose generators also keep the frozen source classifiers' labels.

    ``clf_a`` is a classifier of domain A (it labels ``a``), ``clf_b`` one of domain B (it labels
    ``b``); with ``cfg.readers == "source"`` they also read ``G(a)`` and ``F(b)``, with
    ``"target"`` the ``readers`` pair ``(r_a, r_b)`` does: ``r_a`` (domain A) reads ``F(b)``,
    ``r_b`` (domain B) reads ``G(a)``. All are frozen and stay in eval mode (no dropout, no
    augmentation) whatever mode the model is in; they are submodules, so they move with the model
    and are saved with it, but no phase trains them."""

    def __init__(
        self,
        cfg: SemanticCycleGANConfig,
        clf_a: nn.Module,
        clf_b: nn.Module,
        readers: tuple[nn.Module, nn.Module] | None = None,
    ) -> None:
        if not isinstance(cfg, SemanticCycleGANConfig):
            raise TypeError(f"cfg must be a SemanticCycleGANConfig, got {type(cfg).__name__}")
        if (readers is not None) != (cfg.readers == "target"):
            raise ValueError(
                f"readers=(r_a, r_b) must be given exactly when cfg.readers is 'target', got {cfg.readers!r}"
            )
        if readers is not None and not (isinstance(readers, (tuple, list)) and len(readers) == 2):
            raise TypeError(f"readers must be a pair (r_a, r_b) of classifiers, got {type(readers).__name__}")
        super().__init__(cfg)
        self.clf_a = _frozen("clf_a", clf_a)
        self.clf_b = _frozen("clf_b", clf_b)
        self.readers = (
            None if readers is None else nn.ModuleList([_frozen("r_a", readers[0]), _frozen("r_b", readers[1])])
        )

    def train(self, mode: bool = True) -> SemanticCycleGAN:
        super().train(mode)
        for m in (self.clf_a, self.clf_b, self.readers):
            if m is not None:
                m.eval()
        return self

    def _extra_g_terms(
        self, x_a: torch.Tensor, x_b: torch.Tensor, fake_b: torch.Tensor, fake_a: torch.Tensor
    ) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        if not self.cfg.semantic_weight:
            return 0.0, {}
        r_a, r_b = (None, None) if self.readers is None else tuple(self.readers)
        sem_ab = semantic_loss(x_a, fake_b, self.clf_a, r_b)  # A -> B: labelled by A's classifier
        sem_ba = semantic_loss(x_b, fake_a, self.clf_b, r_a)  # B -> A: labelled by B's classifier
        logs = {"semantic_ab": sem_ab.detach(), "semantic_ba": sem_ba.detach()}
        return self.cfg.semantic_weight * (sem_ab + sem_ba), logs

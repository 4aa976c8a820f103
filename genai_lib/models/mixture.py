"""Gaussian mixture density: the first generative model of the course (chapter 1).

A mixture of K Gaussians in D dimensions,

    p(x) = sum_k pi_k N(x | mu_k, Sigma_k),    Sigma_k = L_k L_k^T,

has an exact, closed-form log-likelihood, so it can be trained two ways the chapter compares:
gradient ascent on the log-likelihood (``genai_lib.train.fit`` on :meth:`GaussianMixture.loss`)
and the expectation-maximisation algorithm of Dempster, Laird & Rubin (1977) (:func:`fit_em`),
whose closed-form updates follow Bishop, *Pattern Recognition and Machine Learning* (2006),
section 9.2.2, eqs. (9.23)-(9.27).

Parameters are unconstrained tensors: mixing weights as ``logits`` (pi = softmax(logits)),
covariances as Cholesky factors ``L_k`` whose diagonal is ``softplus(raw) + min_std`` (so it
stays positive and Sigma_k stays positive definite during gradient steps).

Shape legend: N points, K components, D dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_generator, check_positive, check_size, check_tensor, plain_fields
from genai_lib.history import History
from genai_lib.utils import split_batch

__all__ = ["COVARIANCE_KINDS", "MixtureConfig", "GaussianMixture", "kmeans_plus_plus", "fit_em"]

COVARIANCE_KINDS = ("full", "diag", "spherical")


@dataclass(frozen=True)
class MixtureConfig:
    """Configuration of a :class:`GaussianMixture`."""

    n_components: int = 3  # K, number of Gaussian components
    dim: int = 2  # D, dimension of a data point
    covariance: str = "full"  # "full" (any ellipse), "diag" (axis-aligned), "spherical" (circles)
    min_std: float = 1e-3  # floor on every Cholesky diagonal entry: stops a component collapsing

    def __post_init__(self) -> None:
        plain_fields(self)
        check_positive("n_components", self.n_components)
        check_positive("dim", self.dim)
        if not isinstance(self.covariance, str):
            raise TypeError(
                f"covariance must be a string, one of {COVARIANCE_KINDS}, got {type(self.covariance).__name__}"
            )
        if self.covariance not in COVARIANCE_KINDS:
            raise ValueError(f"covariance must be one of {COVARIANCE_KINDS}, got {self.covariance!r}")
        check_positive("min_std", self.min_std, integer=False)
        check_size("MixtureConfig", self.n_components * self.dim * (self.dim + 2))


def _softplus_inverse(y: torch.Tensor) -> torch.Tensor:
    """x with softplus(x) = y, for y > 0 (stable for small and large y)."""
    return y + torch.log(-torch.expm1(-y))


class GaussianMixture(nn.Module):
    """A mixture of Gaussians with learnable weights, means and Cholesky factors.

    ``forward(x)`` and :meth:`log_prob` give log p(x) (N,); :meth:`loss` is the mean negative
    log-likelihood, so ``genai_lib.train.fit`` maximises the likelihood. Parameters start at
    random means (global RNG, like any layer's weights), equal weights and unit covariances;
    :meth:`init_from_data` gives a much better start.
    """

    def __init__(self, cfg: MixtureConfig) -> None:
        super().__init__()
        if not isinstance(cfg, MixtureConfig):
            raise TypeError(f"cfg must be a MixtureConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        k, d = cfg.n_components, cfg.dim
        n_diag = 1 if cfg.covariance == "spherical" else d
        self.logits = nn.Parameter(torch.zeros(k))  # (K,) pi = softmax(logits)
        self.means = nn.Parameter(torch.randn(k, d))  # (K, D)
        # (K, D) or (K, 1): diag(L_k) = softplus(raw) + min_std, starting at 1.
        self.raw_diag = nn.Parameter(_softplus_inverse(torch.full((k, n_diag), 1.0 - cfg.min_std)))
        if cfg.covariance == "full":
            self.raw_tril = nn.Parameter(torch.zeros(k, d, d))  # (K, D, D); only the strict lower part is used
        self.register_buffer("_strict_lower", torch.tril(torch.ones(d, d), diagonal=-1), persistent=False)

    # ------------------------------------------------------------------ parameters in usable form

    def weights(self) -> torch.Tensor:
        """Mixing weights pi (K,), positive and summing to 1."""
        return torch.softmax(self.logits, dim=0)

    def scale_tril(self) -> torch.Tensor:
        """Cholesky factors L (K, D, D), lower triangular with a positive diagonal."""
        d = self.cfg.dim
        diag = F.softplus(self.raw_diag) + self.cfg.min_std  # (K, D) or (K, 1)
        diag = diag.expand(-1, d)
        scale = torch.diag_embed(diag)
        if self.cfg.covariance == "full":
            scale = scale + self.raw_tril * self._strict_lower
        return scale

    def covariances(self) -> torch.Tensor:
        """Covariance matrices Sigma = L L^T (K, D, D)."""
        scale = self.scale_tril()
        return scale @ scale.transpose(-1, -2)

    def num_free_parameters(self) -> int:
        """Free parameters: K-1 weights, K*D means, and K * (D(D+1)/2, D or 1) covariance entries."""
        k, d = self.cfg.n_components, self.cfg.dim
        per_cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[self.cfg.covariance]
        return (k - 1) + k * d + k * per_cov

    # ------------------------------------------------------------------ densities

    def _points(self, x: Any, name: str = "x") -> torch.Tensor:
        check_tensor(name, x, shape=(None, self.cfg.dim), floating=True, finite=True)
        return x.to(self.means.device, self.means.dtype)

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x_n | mu_k, Sigma_k) for every point and component: (N, D) -> (N, K)."""
        x = self._points(x)
        scale = self.scale_tril()  # (K, D, D)
        diff = (x[:, None, :] - self.means[None]).permute(1, 2, 0)  # (K, D, N)
        # Solve L_k y = x - mu_k; then (x-mu)^T Sigma^-1 (x-mu) = |y|^2.
        y = torch.linalg.solve_triangular(scale, diff, upper=False)  # (K, D, N)
        maha = y.pow(2).sum(dim=1)  # (K, N)
        log_det = torch.diagonal(scale, dim1=-2, dim2=-1).log().sum(-1)  # (K,) = 0.5 log|Sigma_k|
        out = -0.5 * maha - log_det[:, None] - 0.5 * self.cfg.dim * math.log(2 * math.pi)
        return out.transpose(0, 1)  # (N, K)

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log pi_k + log N(x_n | mu_k, Sigma_k): (N, D) -> (N, K)."""
        return self.component_log_prob(x) + torch.log_softmax(self.logits, dim=0)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density log p(x) = logsumexp_k (log pi_k + log N(x | mu_k, Sigma_k)): (N, D) -> (N,)."""
        return torch.logsumexp(self.log_joint(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The log-density of each point: (N, D) -> (N,)."""
        return self.log_prob(x)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior p(component k | x_n) (N, K): each row sums to 1 (Bishop eq. 9.23)."""
        return torch.softmax(self.log_joint(x), dim=1)

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean negative log-likelihood of a batch of points (N, D) or (points, labels).

        Logs ``log_likelihood``, the mean log p(x) in nats per point (the quantity that rises).
        """
        x = self._points(split_batch(batch)[0], "batch points")
        nll = -self.log_prob(x).mean()
        return nll, {"log_likelihood": -nll.detach()}

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, return_components: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` points (n, D) on the CPU: pick component k ~ pi (ancestral sampling), then
        x = mu_k + L_k eps. With ``return_components=True`` also returns the component ids (n,) int64.
        """
        check_positive("n", n)
        check_generator("generator", generator)
        check_size(f"GaussianMixture.sample({n})", n * self.cfg.dim * (self.cfg.dim + 2), unit="values")
        device = self.means.device
        draw_on = generator.device if generator is not None else device
        comp = torch.multinomial(self.weights().to(draw_on), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.cfg.dim, generator=generator, device=draw_on, dtype=self.means.dtype)
        comp, eps = comp.to(device), eps.to(device)
        x = (self.means[comp] + torch.einsum("nij,nj->ni", self.scale_tril()[comp], eps)).cpu()
        return (x, comp.cpu()) if return_components else x

    # ------------------------------------------------------------------ initialisation and EM

    @torch.no_grad()
    def set_parameters(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor) -> GaussianMixture:
        """Set pi (K,), mu (K, D) and Sigma (K, D, D) (for "diag"/"spherical" only the diagonal is used)."""
        k, d = self.cfg.n_components, self.cfg.dim
        check_tensor("weights", weights, shape=(k,), floating=True, finite=True)
        check_tensor("means", means, shape=(k, d), floating=True, finite=True)
        check_tensor("covariances", covariances, shape=(k, d, d), floating=True, finite=True)
        if bool((weights <= 0).any()):
            raise ValueError("weights must all be > 0")
        dev, dt = self.means.device, self.means.dtype
        self.logits.copy_(torch.log(weights / weights.sum()).to(dev, dt))
        self.means.copy_(means.to(dev, dt))
        cov = covariances.to(dev, torch.float64)
        if self.cfg.covariance == "full":
            scale, info = torch.linalg.cholesky_ex(cov)
            if bool((info != 0).any()):
                raise ValueError("covariances must be symmetric positive definite (the Cholesky factorisation failed)")
            self.raw_tril.copy_(scale.to(dt) * self._strict_lower)
            diag = torch.diagonal(scale, dim1=-2, dim2=-1)
        else:
            var = torch.diagonal(cov, dim1=-2, dim2=-1)  # (K, D)
            if bool((var <= 0).any()):
                raise ValueError("covariances must have a positive diagonal")
            if self.cfg.covariance == "spherical":
                var = var.mean(dim=1, keepdim=True)
            diag = var.sqrt()
        # Keep the diagonal a hair above the floor so the softplus inverse stays finite.
        floor = self.cfg.min_std
        raw = _softplus_inverse((diag - floor).clamp_min(1e-6 * max(floor, 1.0)))
        self.raw_diag.copy_(raw.to(dt))
        return self

    @torch.no_grad()
    def init_from_data(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None, method: str = "kmeans++"
    ) -> GaussianMixture:
        """Means at K data points (k-means++ seeding or uniformly random), equal weights, and
        every covariance equal to the data covariance. Returns ``self``."""
        x = self._points(x)
        check_generator("generator", generator)
        k = self.cfg.n_components
        if method == "kmeans++":
            idx = kmeans_plus_plus(x, k, generator=generator)
        elif method == "random":
            if k > x.shape[0]:
                raise ValueError(f"need at least n_components={k} points, got {x.shape[0]}")
            idx = torch.randperm(x.shape[0], generator=generator, device=generator.device if generator else "cpu")[:k]
        else:
            raise ValueError(f"method must be 'kmeans++' or 'random', got {method!r}")
        xd = x.double()
        centred = xd - xd.mean(0)
        cov = centred.T @ centred / max(x.shape[0] - 1, 1) + 1e-6 * torch.eye(
            self.cfg.dim, dtype=xd.dtype, device=xd.device
        )
        return self.set_parameters(torch.full((k,), 1.0 / k), xd[idx.to(x.device)], cov.expand(k, -1, -1).clone())


def kmeans_plus_plus(x: torch.Tensor, k: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices (k,) of k-means++ seeds (Arthur & Vassilvitskii, 2007): the first point uniformly,
    each next one with probability proportional to its squared distance to the nearest seed."""
    check_tensor("x", x, shape=(None, None), floating=True, finite=True)
    check_positive("k", k)
    check_generator("generator", generator)
    if k > x.shape[0]:
        raise ValueError(f"need at least k={k} points, got {x.shape[0]}")
    draw_on = generator.device if generator is not None else torch.device("cpu")
    pts = x.detach().to(draw_on, torch.float64)
    first = torch.randint(0, pts.shape[0], (1,), generator=generator, device=draw_on)
    chosen = [int(first)]
    dist2 = (pts - pts[chosen[0]]).pow(2).sum(1)
    for _ in range(1, k):
        if float(dist2.sum()) <= 0:  # every point already coincides with a seed: pick uniformly
            probs = torch.ones_like(dist2)
            probs[chosen] = 0
        else:
            probs = dist2
        nxt = int(torch.multinomial(probs, 1, generator=generator))
        chosen.append(nxt)
        dist2 = torch.minimum(dist2, (pts - pts[nxt]).pow(2).sum(1))
    return torch.tensor(chosen, dtype=torch.long)


@torch.no_grad()
def fit_em(
    model_or_cfg: GaussianMixture | MixtureConfig,
    x: torch.Tensor,
    *,
    steps: int = 100,
    generator: torch.Generator | None = None,
    tol: float | None = None,
    reg: float = 1e-6,
):
    """Fit a mixture by expectation-maximisation (Dempster et al., 1977; Bishop 2006, sec. 9.2.2).

    A ``MixtureConfig`` builds a new model initialised with :meth:`GaussianMixture.init_from_data`
    (k-means++ seeds from ``generator``); a model starts from its current parameters. Each step:

    - E step: responsibilities r_nk = p(k | x_n) under the current parameters (eq. 9.23);
    - M step: N_k = sum_n r_nk, pi_k = N_k / N, mu_k = sum_n r_nk x_n / N_k,
      Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg I (eqs. 9.24-9.27).

    The mean log-likelihood never decreases from one step to the next (up to rounding and the
    tiny ``reg``). Stops early when it improves by less than ``tol``. Returns ``(model, history)``:
    a :class:`genai_lib.history.History` whose ``logs["log_likelihood"][t]`` is the mean log p(x) after
    t steps (t = 0 is the starting point), drawn by ``plotting.training_curves`` as for ``fit``.
    """
    check_generator("generator", generator)
    if isinstance(model_or_cfg, MixtureConfig):
        model = GaussianMixture(model_or_cfg)
        if isinstance(x, torch.Tensor):
            model = model.to(x.device)  # a new model lives where the data are
        model.init_from_data(x, generator=generator)
    elif isinstance(model_or_cfg, GaussianMixture):
        model = model_or_cfg
    else:
        raise TypeError(f"model_or_cfg must be a GaussianMixture or MixtureConfig, got {type(model_or_cfg).__name__}")
    check_positive("steps", steps)
    check_positive("reg", reg, integer=False, allow_zero=True)
    if tol is not None:
        check_positive("tol", tol, integer=False, allow_zero=True)
    x = model._points(x)
    n, d = x.shape
    if n < model.cfg.n_components:
        raise ValueError(f"EM needs at least n_components={model.cfg.n_components} points, got {n}")
    history = History()
    xd = x.double()
    eye = torch.eye(d, dtype=xd.dtype, device=xd.device)
    for t in range(steps + 1):
        log_joint = model.log_joint(x).double()  # (N, K)
        ll = float(torch.logsumexp(log_joint, dim=1).mean())
        history.step.append(t)
        history.logs.setdefault("log_likelihood", []).append(ll)
        if t == steps or (tol is not None and t > 0 and ll - history.logs["log_likelihood"][-2] < tol):
            break
        resp = torch.softmax(log_joint, dim=1)  # E step, (N, K)
        nk = resp.sum(0) + 1e-12  # (K,)
        means = resp.T @ xd / nk[:, None]  # (K, D)
        diff = xd[None] - means[:, None]  # (K, N, D)
        cov = torch.einsum("nk,kni,knj->kij", resp, diff, diff) / nk[:, None, None] + reg * eye
        model.set_parameters(nk / n, means, cov)
    return model, history

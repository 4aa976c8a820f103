"""Message passing on graphs (chapter 11): GCN, GAT, a node classifier, and the graph autoencoders.

- GCN (Kipf & Welling 2017, eq. 2): ``H' = D^-1/2 (A + I) D^-1/2 H W + b`` with one shared W, D the
  degree matrix of A + I. No sqrt(d) factor multiplies the sum (the seed article's formula is wrong).
- GAT (Velickovic et al. 2018, eqs. 1-4): per head, ``e_ij = LeakyReLU_0.2(a_dst . W h_i + a_src .
  W h_j)`` over j in N(i) plus i itself, ``alpha_ij = softmax_j(e_ij)``, ``h'_i = sum_j alpha_ij W
  h_j``; heads concatenated (or averaged in a last layer). No sqrt(d) scaling in the softmax.
- GAE/VGAE (Kipf & Welling 2016): a two-layer GCN encoder, an inner-product decoder
  ``p(A_uv = 1) = sigmoid(z_u . z_v)``; the VGAE's encoder gives a Gaussian per node and the loss
  adds KL(q(z|X, A) || N(0, I)) / n to the reconstruction term on edges and sampled non-edges.

Both layers are written with edge-index gathers and ``index_add_`` / ``scatter_reduce`` (no
sparse library), so they run the same on CPU and CUDA and on a batch of many small graphs (a
block-diagonal :class:`genai_lib.graphs.Graph`). Their parameters are laid out like PyTorch
Geometric's ``GCNConv`` / ``GATConv`` (tests copy weights across and compare outputs).

Shapes: n nodes, E directed edges (each undirected edge twice), F features, H heads, C channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_positive, check_probability, plain_fields

__all__ = [
    "gcn_norm",
    "edge_softmax",
    "GCNLayer",
    "GATLayer",
    "NodeClassifierConfig",
    "NodeClassifier",
    "GAEConfig",
    "GAE",
    "gaussian_kl_nodes",
    "negative_edges",
]


def _add_self_loops(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    loops = torch.arange(n, device=edge_index.device).expand(2, n)
    return torch.cat([edge_index, loops], 1)


def _check_graph_input(x: Any, edge_index: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a (n, F) tensor of node features, got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[0] == 0:
        raise ValueError("the graph is empty: x has 0 nodes")
    if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be a (2, E) tensor, got {getattr(edge_index, 'shape', edge_index)!r}")
    if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
        raise TypeError(f"edge_index must be an integer tensor, got dtype {edge_index.dtype}")
    n = x.shape[0]
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        raise ValueError(
            f"edge_index holds node ids in [{int(edge_index.min())}, {int(edge_index.max())}], outside [0, {n - 1}]"
        )
    if bool((edge_index[0] == edge_index[1]).any()):
        raise ValueError("edge_index has a self-loop; the layers add their own self-loops, so self-loops are forbidden")
    return x, edge_index.long()


def gcn_norm(edge_index: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges of A + I and their weights ``1 / sqrt(d_src d_dst)``, d the degree in A + I."""
    ei = _add_self_loops(edge_index, n)
    deg = torch.zeros(n, device=ei.device).index_add_(0, ei[1], torch.ones(ei.shape[1], device=ei.device))
    inv = deg.rsqrt()
    return ei, inv[ei[0]] * inv[ei[1]]


def edge_softmax(scores: torch.Tensor, dst: torch.Tensor, n: int) -> torch.Tensor:
    """Softmax of edge ``scores`` (E, H) over the edges that share a destination node."""
    h = scores.shape[1]
    idx = dst.unsqueeze(1).expand(-1, h)
    top = torch.full((n, h), -torch.inf, device=scores.device, dtype=scores.dtype)
    top = top.scatter_reduce(0, idx, scores, reduce="amax", include_self=True)
    w = (scores - top[dst]).exp()
    total = torch.zeros(n, h, device=scores.device, dtype=scores.dtype).index_add_(0, dst, w)
    return w / total[dst]


class GCNLayer(nn.Module):
    """One graph convolution, ``D^-1/2 (A + I) D^-1/2 X W + b`` (Kipf & Welling 2017, eq. 2)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        check_positive("in_dim", in_dim)
        check_positive("out_dim", out_dim)
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_uniform_(self.lin.weight)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x, edge_index = _check_graph_input(x, edge_index)
        n = x.shape[0]
        ei, w = gcn_norm(edge_index, n)
        h = self.lin(x)
        out = torch.zeros_like(h).index_add_(0, ei[1], h[ei[0]] * w.unsqueeze(1).to(h.dtype))
        return out + self.bias


class GATLayer(nn.Module):
    """Graph attention with ``heads`` heads of ``out_dim`` channels (Velickovic et al. 2018)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        heads: int = 1,
        concat: bool = True,
        dropout: float = 0.0,
        slope: float = 0.2,
    ) -> None:
        super().__init__()
        for name, v in (("in_dim", in_dim), ("out_dim", out_dim), ("heads", heads)):
            check_positive(name, v)
        check_probability("dropout", dropout, open_high=True)
        self.heads, self.out_dim, self.concat, self.dropout, self.slope = heads, out_dim, concat, dropout, slope
        self.lin = nn.Linear(in_dim, heads * out_dim, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_dim))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_dim))
        self.bias = nn.Parameter(torch.zeros(heads * out_dim if concat else out_dim))
        for p in (self.lin.weight, self.att_src, self.att_dst):
            nn.init.xavier_uniform_(p)

    def attention(self, x: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(edges of A + I (2, E + n), alpha (E + n, H), W x (n, H, C)); alpha sums to 1 per destination."""
        x, edge_index = _check_graph_input(x, edge_index)
        n = x.shape[0]
        h = self.lin(x).view(n, self.heads, self.out_dim)
        ei = _add_self_loops(edge_index, n)
        src, dst = ei
        e = (h * self.att_src).sum(-1)[src] + (h * self.att_dst).sum(-1)[dst]  # eq. 3: a^T [W h_i || W h_j]
        alpha = edge_softmax(F.leaky_relu(e, self.slope), dst, n)
        return ei, alpha, h

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        ei, alpha, h = self.attention(x, edge_index)
        alpha = F.dropout(alpha, self.dropout, self.training)
        out = torch.zeros_like(h).index_add_(0, ei[1], h[ei[0]] * alpha.unsqueeze(-1).to(h.dtype))
        out = out.reshape(h.shape[0], -1) if self.concat else out.mean(1)
        return out + self.bias


# --------------------------------------------------------------------------- node classification


@dataclass(frozen=True)
class NodeClassifierConfig:
    in_dim: int  # node feature size F
    n_classes: int  # labels 0..n_classes-1
    kind: str = "gcn"  # "gcn", "gat" or "mlp" (the feature-only baseline: no edges used)
    hidden: int = 16  # hidden channels (per head for GAT)
    heads: int = 4  # GAT heads in the hidden layer
    dropout: float = 0.5  # on features (and on attention for GAT)

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("in_dim", "n_classes", "hidden", "heads"):
            check_positive(name, getattr(self, name))
        if self.kind not in ("gcn", "gat", "mlp"):
            raise ValueError(f"kind must be 'gcn', 'gat' or 'mlp', got {self.kind!r}")
        check_probability("dropout", self.dropout, open_high=True)


class NodeClassifier(nn.Module):
    """Two layers (GCN, GAT or plain linear) for semi-supervised node classification.

    ``forward(graph) -> (n, n_classes)`` logits; ``loss((graph, mask))`` is the cross-entropy
    on the labelled nodes ``mask`` (n,) bool only."""

    def __init__(self, cfg: NodeClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg
        if c.kind == "gcn":
            self.l1, self.l2 = GCNLayer(c.in_dim, c.hidden), GCNLayer(c.hidden, c.n_classes)
        elif c.kind == "gat":
            self.l1 = GATLayer(c.in_dim, c.hidden, heads=c.heads, dropout=c.dropout)
            self.l2 = GATLayer(c.hidden * c.heads, c.n_classes, heads=1, concat=False, dropout=c.dropout)
        else:
            self.l1, self.l2 = nn.Linear(c.in_dim, c.hidden), nn.Linear(c.hidden, c.n_classes)

    def _layer(self, layer: nn.Module, x: torch.Tensor, ei: torch.Tensor) -> torch.Tensor:
        return layer(x) if self.cfg.kind == "mlp" else layer(x, ei)

    def forward(self, graph: Any) -> torch.Tensor:
        x, ei = _check_graph_input(graph.x, graph.edge_index)
        if x.shape[1] != self.cfg.in_dim:
            raise ValueError(f"graph.x must have {self.cfg.in_dim} features, got {x.shape[1]}")
        h = F.dropout(x, self.cfg.dropout, self.training)
        h = F.elu(self._layer(self.l1, h, ei)) if self.cfg.kind == "gat" else F.relu(self._layer(self.l1, h, ei))
        h = F.dropout(h, self.cfg.dropout, self.training)
        return self._layer(self.l2, h, ei)

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError("NodeClassifier.loss needs a batch (graph, mask) with mask the labelled nodes")
        graph, mask = batch
        if graph.y is None:
            raise ValueError("graph.y is None: node classification needs labels")
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (graph.num_nodes,):
            raise ValueError(f"mask must be a bool tensor of shape ({graph.num_nodes},)")
        if not bool(mask.any()):
            raise ValueError("mask selects no node: at least one labelled node is needed")
        logits = self(graph)
        loss = F.cross_entropy(logits[mask], graph.y[mask])
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def accuracy(self, graph: Any, mask: torch.Tensor) -> float:
        was = self.training
        self.eval()
        pred = self(graph).argmax(1)
        self.train(was)
        return float((pred[mask] == graph.y[mask]).float().mean())


# --------------------------------------------------------------------------- graph autoencoders


@dataclass(frozen=True)
class GAEConfig:
    in_dim: int  # node feature size F
    hidden: int = 32  # first GCN layer
    latent: int = 16  # embedding size of each node
    variational: bool = True  # VGAE (Gaussian q(z|X, A), KL term) or GAE (deterministic)

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("in_dim", "hidden", "latent"):
            check_positive(name, getattr(self, name))
        if not isinstance(self.variational, bool):
            raise TypeError(f"variational must be a bool, got {self.variational!r}")


def gaussian_kl_nodes(mu: torch.Tensor, logstd: torch.Tensor) -> torch.Tensor:
    """Mean over nodes of KL(N(mu, diag(exp(2 logstd))) || N(0, I)): 1/2 sum(mu^2 + s^2 - 1 - 2 log s)."""
    return 0.5 * (mu.pow(2) + (2 * logstd).exp() - 1 - 2 * logstd).sum(1).mean()


def negative_edges(n: int, k: int, *, generator: torch.Generator | None = None, device: Any = None) -> torch.Tensor:
    """``k`` node pairs drawn uniformly with u != v (Kipf & Welling's training negatives; a pair
    that happens to be an edge is kept, as in their code: at this density it is rare)."""
    check_positive("n", n)
    if n < 2:
        raise ValueError(f"need at least 2 nodes to draw node pairs, got n={n}")
    u = torch.randint(0, n, (k,), generator=generator)
    v = (u + torch.randint(1, n, (k,), generator=generator)) % n
    return torch.stack([u, v]).to(device or "cpu")


class GAE(nn.Module):
    """GAE/VGAE: GCN encoder, inner-product decoder. ``loss((graph,))`` reconstructs the graph's
    edges against as many sampled node pairs (plus KL / n for the VGAE)."""

    def __init__(self, cfg: GAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.l1 = GCNLayer(cfg.in_dim, cfg.hidden)
        self.mu = GCNLayer(cfg.hidden, cfg.latent)
        self.logstd = GCNLayer(cfg.hidden, cfg.latent) if cfg.variational else None

    def encode(self, graph: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, ei = _check_graph_input(graph.x, graph.edge_index)
        if x.shape[1] != self.cfg.in_dim:
            raise ValueError(f"graph.x must have {self.cfg.in_dim} features, got {x.shape[1]}")
        h = F.relu(self.l1(x, ei))
        mu = self.mu(h, ei)
        logstd = None if self.logstd is None else self.logstd(h, ei).clamp(max=10)
        return mu, logstd

    @staticmethod
    def edge_logits(z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``z_u . z_v`` for each column (u, v) of ``pairs`` (2, k)."""
        return (z[pairs[0]] * z[pairs[1]]).sum(-1)

    def loss(self, batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        graph = batch[0] if isinstance(batch, (tuple, list)) else batch
        mu, logstd = self.encode(graph)
        z = mu
        if logstd is not None and self.training:
            eps = torch.randn(mu.shape, generator=generator).to(mu.device)
            z = mu + eps * logstd.exp()
        pos = graph.edge_index[:, graph.edge_index[0] < graph.edge_index[1]]
        if pos.shape[1] == 0:
            raise ValueError("the graph has no edges to reconstruct")
        neg = negative_edges(graph.num_nodes, pos.shape[1], generator=generator, device=mu.device)
        lp, ln = self.edge_logits(z, pos), self.edge_logits(z, neg)
        recon = F.binary_cross_entropy_with_logits(lp, torch.ones_like(lp)) + F.binary_cross_entropy_with_logits(
            ln, torch.zeros_like(ln)
        )
        kl = gaussian_kl_nodes(mu, logstd) / graph.num_nodes if logstd is not None else torch.zeros(())
        loss = recon + kl
        return loss, {"loss": float(loss.detach()), "recon": float(recon.detach()), "kl": float(kl.detach())}

    @torch.no_grad()
    def score(self, graph: Any, pairs: torch.Tensor) -> torch.Tensor:
        """p(edge) for each column of ``pairs`` from the mean embeddings (no sampling)."""
        was = self.training
        self.eval()
        mu, _ = self.encode(graph)
        self.train(was)
        return torch.sigmoid(self.edge_logits(mu, pairs.to(mu.device)))

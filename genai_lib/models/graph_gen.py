"""Graph generators (chapter 11): an autoregressive GraphRNN-style model and a one-shot GraphVAE-style one.

- :class:`GraphRNN` (You et al. 2018, the "GraphRNN-S" variant): nodes arrive one at a time in a
  random BFS order; a GRU over nodes reads the previous node's type and its row of the adjacency
  matrix (its bonds to the M nodes before it, nearest first) and emits the next node's type (or
  end-of-graph) and, given that type, a categorical edge type towards each of the M previous
  nodes, independently. Typed nodes and edges make it a molecule generator; one node type and
  one edge type make it a plain graph generator. Sampling can enforce valences (the bond
  orders that still fit on both atoms), as molecular graph generators do; a node with no edge
  GraphRNN marks the end of a graph by an all-zero row; here an explicit end-of-graph type does,
  and a node that is not the end must join an earlier one: if its sampled row is all zero, one
  edge is drawn from the row's distribution conditioned on having exactly one edge (the BFS
  order guarantees every true node but the first such an edge), so graphs come out connected.
- :class:`GraphVAE` (Simonovsky & Komodakis 2018, simplified): a dense two-layer GCN encoder on the
  padded adjacency matrix, a Gaussian latent per graph, an MLP that decodes every node's
  existence and every edge's probability at once. GraphVAE matches the output to the input
  graph by approximate graph matching; here the target is one random BFS ordering per epoch
  (no matching), which is cheaper and blurs the decoder: the chapter shows the cost.

Shapes: b graphs, L = max_nodes, M = L - 1 previous nodes, K node types, B edge types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genai_lib._checks import check_generator, check_positive, plain_fields

__all__ = ["GraphRNNConfig", "GraphRNN", "graph_to_sequence", "encode_graph", "GraphVAEConfig", "GraphVAE", "IGNORE"]

IGNORE = -100  # label of padded positions (cross-entropy's ignore_index)


@dataclass(frozen=True)
class GraphRNNConfig:
    max_nodes: int = 20  # L: the most nodes a graph may have
    node_types: int = 1  # K (atoms: C, N, O, ...); the model adds an end-of-graph type
    edge_types: int = 1  # B (bonds: single, double, triple); class 0 is "no edge"
    hidden: int = 128  # GRU state
    emb: int = 64  # size of the embedded inputs

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("max_nodes", "node_types", "edge_types", "hidden", "emb"):
            check_positive(name, getattr(self, name))
        if self.max_nodes < 2:
            raise ValueError(f"max_nodes must be >= 2, got {self.max_nodes}")


def graph_to_sequence(
    types: torch.Tensor, adj: torch.Tensor, max_nodes: int, end: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A graph (already in the order to learn) as GraphRNN targets.

    ``types`` (n,) in [0, K), ``adj`` (n, n) symmetric edge types in [0, B] (0 = none), zero
    diagonal. Returns ``t`` (L + 1,): the types, then ``end`` (K), then IGNORE; and ``rows`` (L, M):
    ``rows[i, j]`` = edge type between node i and node i - 1 - j for j < i < n, else IGNORE."""
    n = int(types.shape[0])
    if n == 0:
        raise ValueError("the graph is empty: it has no nodes")
    if n > max_nodes:
        raise ValueError(f"the graph has {n} nodes, more than max_nodes={max_nodes}")
    if adj.shape != (n, n):
        raise ValueError(f"adj must have shape ({n}, {n}), got {tuple(adj.shape)}")
    if not torch.equal(adj, adj.T) or bool(adj.diagonal().any()):
        raise ValueError("adj must be symmetric with a zero diagonal (no self-loops)")
    t = torch.full((max_nodes + 1,), IGNORE, dtype=torch.long)
    t[:n] = types
    t[n] = end
    rows = torch.full((max_nodes, max_nodes - 1), IGNORE, dtype=torch.long)
    for i in range(1, n):
        rows[i, :i] = adj[i, :i].flip(0)
    return t, rows


def encode_graph(cfg: GraphRNNConfig, types: torch.Tensor, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`graph_to_sequence` with ``cfg``'s end type, after checking the value ranges."""
    c = cfg
    if types.numel() and (int(types.min()) < 0 or int(types.max()) >= c.node_types):
        raise ValueError(f"types must be in [0, {c.node_types - 1}], got [{int(types.min())}, {int(types.max())}]")
    if adj.numel() and (int(adj.min()) < 0 or int(adj.max()) > c.edge_types):
        raise ValueError(f"adj must hold edge types in [0, {c.edge_types}], got max {int(adj.max())}")
    return graph_to_sequence(types, adj, c.max_nodes, c.node_types)


class GraphRNN(nn.Module):
    """GraphRNN-S with typed nodes and edges. ``loss((t, rows))``; ``sample(n, generator=...)``."""

    def __init__(self, cfg: GraphRNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg
        self.m = c.max_nodes - 1
        self.type_in = nn.Embedding(c.node_types + 2, c.emb)  # K types, end, start
        self.row_in = nn.Linear(self.m * (c.edge_types + 1), c.emb)
        self.gru = nn.GRU(2 * c.emb, c.hidden, batch_first=True)
        self.type_out = nn.Sequential(nn.Linear(c.hidden, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.node_types + 1))
        self.type_cond = nn.Embedding(c.node_types + 1, c.emb)
        self.edge_out = nn.Sequential(
            nn.Linear(c.hidden + c.emb, c.hidden), nn.ReLU(), nn.Linear(c.hidden, self.m * (c.edge_types + 1))
        )

    def encode(self, types: torch.Tensor, adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`encode_graph` for this model's config."""
        return encode_graph(self.cfg, types, adj)

    def _inputs(self, prev_t: torch.Tensor, prev_rows: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(prev_rows.clamp(min=0), self.cfg.edge_types + 1).float()
        onehot = onehot * (prev_rows >= 0).unsqueeze(-1)  # padded entries read as nothing
        return torch.cat([self.type_in(prev_t), self.row_in(onehot.flatten(-2))], -1)

    def forward(self, t: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits: types (b, L + 1, K + 1) and edges (b, L, M, B + 1)."""
        b, c = t.shape[0], self.cfg
        start = torch.full((b, 1), c.node_types + 1, dtype=torch.long, device=t.device)
        prev_t = torch.cat([start, t[:, :-1].clamp(min=0)], 1)
        empty = torch.full((b, 1, self.m), IGNORE, dtype=torch.long, device=t.device)
        prev_rows = torch.cat([empty, rows], 1)  # (b, L + 1, M)
        h, _ = self.gru(self._inputs(prev_t, prev_rows))
        type_logits = self.type_out(h)
        cond = self.type_cond(t[:, : c.max_nodes].clamp(min=0))
        edge_logits = self.edge_out(torch.cat([h[:, : c.max_nodes], cond], -1))
        return type_logits, edge_logits.view(b, c.max_nodes, self.m, c.edge_types + 1)

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TypeError("GraphRNN.loss needs a batch (t, rows) from GraphRNN.encode")
        t, rows = batch[0], batch[1]
        tl, el = self(t, rows)
        n_graphs = t.shape[0]
        lt = F.cross_entropy(tl.flatten(0, 1), t.flatten(), ignore_index=IGNORE, reduction="sum") / n_graphs
        le = F.cross_entropy(el.flatten(0, 2), rows.flatten(), ignore_index=IGNORE, reduction="sum") / n_graphs
        loss = (lt + le) / self.cfg.max_nodes
        return loss, {"loss": float(loss.detach()), "nll_types": float(lt.detach()), "nll_edges": float(le.detach())}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        valence: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` graphs as (types (k,), adj (k, k)) on the CPU. ``valence`` (K,): the most bond
        order each node type takes (edge type e has order e); then no sample exceeds it."""
        check_positive("n", n)
        check_generator("generator", generator)
        c, dev = self.cfg, next(self.parameters()).device
        was = self.training
        self.eval()
        gumbel = lambda shape: -torch.log(-torch.log(torch.rand(shape, generator=generator).clamp_(1e-10, 1 - 1e-7)))  # noqa: E731
        types = torch.full((n, c.max_nodes), -1, dtype=torch.long)
        adj = torch.zeros(n, c.max_nodes, c.max_nodes, dtype=torch.long)
        alive = torch.ones(n, dtype=torch.bool)
        prev_t = torch.full((n, 1), c.node_types + 1, dtype=torch.long, device=dev)
        prev_rows = torch.full((n, 1, self.m), IGNORE, dtype=torch.long, device=dev)
        h = None
        orders = torch.arange(c.edge_types + 1)
        for i in range(c.max_nodes):
            out, h = self.gru(self._inputs(prev_t, prev_rows), h)
            tl = self.type_out(out[:, 0]).cpu() / temperature
            if i == 0:
                tl[:, c.node_types] = -torch.inf  # a graph has at least one node
            ti = (tl + gumbel(tl.shape)).argmax(1)
            alive &= ti != c.node_types
            el = self.edge_out(torch.cat([out[:, 0], self.type_cond(ti.to(dev).unsqueeze(1))[:, 0]], -1))
            el = el.view(n, self.m, c.edge_types + 1).cpu() / temperature
            row = torch.full((n, self.m), IGNORE, dtype=torch.long)
            allowed = torch.ones(n, max(i, 1), c.edge_types + 1, dtype=torch.bool)
            if valence is not None:
                room_new = valence[ti.clamp(max=c.node_types - 1)].clone()
            for j in range(i):
                logits = el[:, j].clone()
                if valence is not None:
                    other = i - 1 - j
                    used = (adj[:, other, :]).sum(1)
                    room = torch.minimum(room_new, valence[types[:, other].clamp(min=0)] - used)
                    allowed[:, j] = orders.unsqueeze(0) <= room.unsqueeze(1)
                    logits[~allowed[:, j]] = -torch.inf
                e = (logits + gumbel(logits.shape)).argmax(1)
                row[:, j] = e
                if valence is not None:
                    room_new = room_new - e
            if i > 0:
                lonely = (row[:, :i] <= 0).all(1) & alive
                if bool(lonely.any()):  # exactly one edge, drawn from p(row | one edge)
                    odds = el[:, :i, 1:] - el[:, :i, :1]  # log p(e) / p(none) per earlier node
                    odds = odds.masked_fill(~allowed[:, :i, 1:], -torch.inf).flatten(1)
                    pick = (odds + gumbel(odds.shape)).argmax(1)
                    ok = torch.isfinite(odds.max(1).values)
                    fix = lonely & ok
                    row[fix, pick[fix] // c.edge_types] = pick[fix] % c.edge_types + 1
                    alive &= ~lonely | ok  # no room left anywhere: the graph ends
            types[alive, i] = ti[alive]
            for j in range(i):
                adj[alive, i, i - 1 - j] = adj[alive, i - 1 - j, i] = row[alive, j]
            if not bool(alive.any()):
                break
            prev_t, prev_rows = ti.clamp(max=c.node_types).to(dev).unsqueeze(1), row.to(dev).unsqueeze(1)
        self.train(was)
        out_graphs = []
        for g in range(n):
            k = int((types[g] >= 0).sum())
            out_graphs.append((types[g, :k].clone(), adj[g, :k, :k].clone()))
        return out_graphs


# --------------------------------------------------------------------------- one-shot


@dataclass(frozen=True)
class GraphVAEConfig:
    max_nodes: int = 20  # N: graphs are padded to N nodes
    hidden: int = 128  # encoder and decoder width
    latent: int = 16  # z per graph
    beta: float = 1.0  # weight of the KL term

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("max_nodes", "hidden", "latent"):
            check_positive(name, getattr(self, name))
        check_positive("beta", self.beta, integer=False, allow_zero=True)


class GraphVAE(nn.Module):
    """One-shot graph VAE on padded adjacency matrices. ``loss((adj, mask))``, adj (b, N, N)
    0/1 float, mask (b, N) the existing nodes; ``sample(n) -> list of (N', N') 0/1 adjacencies``."""

    def __init__(self, cfg: GraphVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg
        self.g1, self.g2 = nn.Linear(2, c.hidden), nn.Linear(c.hidden, c.hidden)
        self.to_stats = nn.Linear(c.hidden, 2 * c.latent)
        n_pairs = c.max_nodes * (c.max_nodes - 1) // 2
        self.decoder = nn.Sequential(
            nn.Linear(c.latent, c.hidden), nn.ReLU(), nn.Linear(c.hidden, 2 * c.hidden), nn.ReLU(),
            nn.Linear(2 * c.hidden, n_pairs + c.max_nodes),
        )  # fmt: skip
        self.register_buffer("iu", torch.triu_indices(c.max_nodes, c.max_nodes, 1), persistent=False)

    def encode(self, adj: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = adj + torch.diag_embed(mask)  # A + I on the existing nodes
        d = a.sum(-1).clamp(min=1).rsqrt()
        a_hat = d.unsqueeze(-1) * a * d.unsqueeze(-2)  # the GCN normalisation, dense
        x = torch.stack([mask, adj.sum(-1) / self.cfg.max_nodes], -1)
        h = F.relu(a_hat @ self.g1(x))
        h = F.relu(a_hat @ self.g2(h))
        pooled = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        mu, logvar = self.to_stats(pooled).chunk(2, -1)
        return mu, logvar.clamp(-10, 10)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Edge logits (b, N (N - 1) / 2) of the upper triangle, node logits (b, N)."""
        out = self.decoder(z)
        return out[:, : -self.cfg.max_nodes], out[:, -self.cfg.max_nodes :]

    def loss(self, batch: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TypeError("GraphVAE.loss needs a batch (adj, mask)")
        adj, mask = batch[0], batch[1]
        mu, logvar = self.encode(adj, mask)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device)
        z = mu + eps * (0.5 * logvar).exp()
        el, nl = self.decode(z)
        target = adj[:, self.iu[0], self.iu[1]]
        recon = F.binary_cross_entropy_with_logits(el, target, reduction="sum") + F.binary_cross_entropy_with_logits(
            nl, mask, reduction="sum"
        )
        recon = recon / adj.shape[0]
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        loss = recon + self.cfg.beta * kl
        return loss, {"loss": float(loss.detach()), "recon": float(recon.detach()), "kl": float(kl.detach())}

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        check_positive("n", n)
        check_generator("generator", generator)
        c, dev = self.cfg, next(self.parameters()).device
        z = torch.randn(n, c.latent, generator=generator).to(dev)
        el, nl = self.decode(z)
        edges = torch.rand(el.shape, generator=generator) < torch.sigmoid(el.cpu())
        nodes = torch.rand(nl.shape, generator=generator) < torch.sigmoid(nl.cpu())
        out = []
        for g in range(n):
            a = torch.zeros(c.max_nodes, c.max_nodes)
            a[self.iu[0].cpu(), self.iu[1].cpu()] = edges[g].float()
            a = a + a.T
            keep = nodes[g].nonzero().flatten()
            if keep.numel() == 0:
                keep = torch.tensor([0])
            out.append(a[keep][:, keep])
        return out

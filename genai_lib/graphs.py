"""Graphs as tensors, and the offline graph datasets of chapter 11.

A graph is a :class:`Graph`: node features ``x`` (n, F), an ``edge_index`` (2, E) of long node ids
that lists every undirected edge in both directions and holds no self-loop, optional node labels
``y`` (n,) and, for several small graphs batched into one block-diagonal graph, ``batch`` (n,), the
graph each node belongs to (the layout PyTorch Geometric uses, so its layers read our graphs).

Datasets, all built here with no download: Zachary's karate club and the Les Miserables
co-appearance graph (real, shipped by networkx); a stochastic block model with node features
(generated); community-small and grid, the generated benchmark sets of GraphRNN (You et al. 2018).
Ego-small is cut from the Citeseer citation graph, which needs a download: it is left out.
Random BFS orderings of a graph (GraphRNN's trick to shorten adjacency rows) are
:func:`bfs_order`; held-out edges with sampled non-edges for link prediction are :func:`split_edges`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import torch

from genai_lib._checks import check_generator, check_positive, check_probability

__all__ = [
    "Graph",
    "check_edge_index",
    "make_graph",
    "from_networkx",
    "to_networkx",
    "dense_adjacency",
    "batch_graphs",
    "karate_club",
    "les_miserables",
    "sbm_graph",
    "split_edges",
    "community_small",
    "grid_graphs",
    "bfs_order",
]


@dataclass(frozen=True)
class Graph:
    """Node features, both directions of every edge, optional labels and batch vector."""

    x: torch.Tensor  # (n, F) float node features
    edge_index: torch.Tensor  # (2, E) long, each undirected edge twice, no self-loops
    y: torch.Tensor | None = None  # (n,) long node labels
    batch: torch.Tensor | None = None  # (n,) long graph id of each node (batched graphs)

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        """Undirected edges (half the columns of ``edge_index``)."""
        return int(self.edge_index.shape[1]) // 2

    def to(self, device: Any) -> Graph:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Graph(self.x.to(device), self.edge_index.to(device), move(self.y), move(self.batch))


def check_edge_index(edge_index: Any, num_nodes: int, *, allow_self_loops: bool = False) -> torch.Tensor:
    """Raise unless ``edge_index`` is a (2, E) integer tensor of node ids in [0, num_nodes)."""
    check_positive("num_nodes", num_nodes)
    if not isinstance(edge_index, torch.Tensor):
        raise TypeError(f"edge_index must be a torch.Tensor of node ids, got {type(edge_index).__name__}")
    if edge_index.dtype.is_floating_point or edge_index.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise TypeError(f"edge_index must be an integer tensor, got dtype {edge_index.dtype}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        lo, hi = int(edge_index.min()), int(edge_index.max())
        raise ValueError(f"edge_index holds node ids in [{lo}, {hi}], outside [0, {num_nodes - 1}] ({num_nodes} nodes)")
    if not allow_self_loops and bool((edge_index[0] == edge_index[1]).any()):
        node = int(edge_index[0][edge_index[0] == edge_index[1]][0])
        raise ValueError(f"edge_index has a self-loop at node {node}; self-loops are forbidden here")
    return edge_index.long()


def _undirected(edge_index: torch.Tensor) -> torch.Tensor:
    """Both directions of each edge, each once, sorted."""
    both = torch.cat([edge_index, edge_index.flip(0)], 1)
    return torch.unique(both, dim=1) if both.numel() else both


def make_graph(edge_index: Any, num_nodes: int, *, x: Any = None, y: Any = None) -> Graph:
    """A checked :class:`Graph` (edges made undirected; ``x`` defaults to one-hot node ids)."""
    ei = _undirected(check_edge_index(edge_index, num_nodes))
    if x is None:
        x = torch.eye(num_nodes)
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != num_nodes or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a float tensor of shape ({num_nodes}, F), got {got}")
    if y is not None and (not isinstance(y, torch.Tensor) or y.shape != (num_nodes,)):
        raise ValueError(f"y must be a tensor of shape ({num_nodes},), got {getattr(y, 'shape', y)!r}")
    return Graph(x, ei, None if y is None else y.long())


def from_networkx(g: nx.Graph, *, x: Any = None, y: Any = None) -> Graph:
    """Nodes renumbered 0..n-1 in ``g``'s node order."""
    if g.number_of_nodes() == 0:
        raise ValueError("the graph is empty: it has no nodes")
    index = {v: i for i, v in enumerate(g.nodes)}
    pairs = [(index[a], index[b]) for a, b in g.edges if a != b]
    ei = torch.tensor(pairs, dtype=torch.long).T if pairs else torch.zeros(2, 0, dtype=torch.long)
    return make_graph(ei, g.number_of_nodes(), x=x, y=y)


def to_networkx(graph: Graph) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(range(graph.num_nodes))
    g.add_edges_from(graph.edge_index.T.tolist())
    return g


def dense_adjacency(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """(n, n) float 0/1 adjacency matrix of ``edge_index`` (self-loops allowed here)."""
    ei = check_edge_index(edge_index, num_nodes, allow_self_loops=True)
    a = torch.zeros(num_nodes, num_nodes, device=ei.device)
    a[ei[0], ei[1]] = 1.0
    return a


def batch_graphs(graphs: Sequence[Graph]) -> Graph:
    """Many small graphs as one block-diagonal graph, with ``batch`` naming each node's graph."""
    if len(graphs) == 0:
        raise ValueError("graphs is empty: need at least one graph to batch")
    offsets = np.cumsum([0] + [g.num_nodes for g in graphs[:-1]])
    x = torch.cat([g.x for g in graphs])
    ei = torch.cat([g.edge_index + int(o) for g, o in zip(graphs, offsets, strict=True)], 1)
    batch = torch.cat([torch.full((g.num_nodes,), i, dtype=torch.long) for i, g in enumerate(graphs)])
    ys = [g.y for g in graphs]
    y = torch.cat(ys) if all(t is not None for t in ys) else None
    return Graph(x, ei, y, batch)


# --------------------------------------------------------------------------- node classification


def karate_club() -> Graph:
    """Zachary's karate club: 34 members, 78 friendships, y = the faction each joined after the
    split (0: Mr. Hi, 1: the Officer); features are one-hot ids (the graph is all there is)."""
    g = nx.karate_club_graph()
    y = torch.tensor([0 if g.nodes[v]["club"] == "Mr. Hi" else 1 for v in g.nodes])
    return from_networkx(g, y=y)


def les_miserables() -> Graph:
    """Co-appearance of the 77 characters of Les Miserables (254 edges, Knuth 1993), one-hot ids."""
    return from_networkx(nx.les_miserables_graph())


def sbm_graph(
    *,
    blocks: int = 5,
    block_size: int = 600,
    p_in: float = 0.02,
    p_out: float = 0.0005,
    features: int = 32,
    noise: float = 2.0,
    generator: torch.Generator | None = None,
) -> Graph:
    """A stochastic block model: edge (u, v) with probability ``p_in`` inside a block, ``p_out``
    across; y = the block; features = the block's random unit-scale centroid plus N(0, noise^2)
    per coordinate (so features alone classify poorly, the graph well)."""
    for name, v in (("blocks", blocks), ("block_size", block_size), ("features", features)):
        check_positive(name, v)
    check_probability("p_in", p_in)
    check_probability("p_out", p_out)
    check_generator("generator", generator)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    n = blocks * block_size
    y = torch.arange(n) // block_size
    iu = torch.triu_indices(n, n, 1)
    same = y[iu[0]] == y[iu[1]]
    p = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    keep = torch.rand(p.shape, generator=gen) < p
    centroids = torch.randn(blocks, features, generator=gen)
    x = centroids[y] + noise * torch.randn(n, features, generator=gen)
    return make_graph(iu[:, keep], n, x=x, y=y)


def split_edges(
    graph: Graph, *, val: float = 0.05, test: float = 0.10, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Kipf & Welling (2016)'s link-prediction split: ``val`` and ``test`` fractions of the edges
    are held out (removed from the training graph) and matched by as many sampled non-edges.

    Returns ``train`` (2, 2 E_train) both directions, ``val_pos``, ``val_neg``, ``test_pos``,
    ``test_neg`` (2, k) one direction each."""
    check_probability("val", val)
    check_probability("test", test)
    if val + test >= 1:
        raise ValueError(f"val + test must be < 1 (some edges must train), got {val} + {test}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    n = graph.num_nodes
    ei = graph.edge_index[:, graph.edge_index[0] < graph.edge_index[1]].cpu()
    m = ei.shape[1]
    n_val, n_test = int(m * val), int(m * test)
    if m - n_val - n_test < 1 or n_test < 1:
        raise ValueError(f"the graph has {m} edges: too few to hold out test={test} of them")
    perm = ei[:, torch.randperm(m, generator=gen)]
    test_pos, val_pos, train = perm[:, :n_test], perm[:, n_test : n_test + n_val], perm[:, n_test + n_val :]
    existing = set((ei[0] * n + ei[1]).tolist())
    neg: list[int] = []
    while len(neg) < n_val + n_test:  # rejection sampling of non-edges, u < v, no repeats
        cand = torch.randint(0, n, (2, 2 * (n_val + n_test) + 16), generator=gen)
        u, v = cand.min(0).values, cand.max(0).values
        for code in (u * n + v)[u < v].tolist():
            if code not in existing:
                existing.add(code)
                neg.append(code)
    codes = torch.tensor(neg[: n_val + n_test])
    negs = torch.stack([codes // n, codes % n])
    return {
        "train": _undirected(train),
        "val_pos": val_pos,
        "val_neg": negs[:, n_test:],
        "test_pos": test_pos,
        "test_neg": negs[:, :n_test],
    }


# --------------------------------------------------------------------------- graph generation sets


def community_small(n_graphs: int = 100, *, p: float = 0.7, generator: torch.Generator | None = None) -> list[nx.Graph]:
    """GraphRNN's community-small: 12 <= |V| <= 20 (even), two Erdos-Renyi(|V|/2, ``p``)
    communities joined by 0.05 |V| inter-community edges (at least one) drawn uniformly.

    ``p = 0.7`` is the value of GraphRNN's released generator; the paper's text says 0.3, with
    which most communities of 6-10 nodes fall apart. A disconnected draw is drawn again (GraphRNN
    learns connected graphs)."""
    check_positive("n_graphs", n_graphs)
    check_probability("p", p, open_low=True)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    out: list[nx.Graph] = []
    while len(out) < n_graphs:
        half = int(torch.randint(6, 11, (1,), generator=gen))
        n = 2 * half
        g = nx.Graph()
        g.add_nodes_from(range(n))
        for c in range(2):
            iu = torch.triu_indices(half, half, 1)
            keep = torch.rand(iu.shape[1], generator=gen) < p
            g.add_edges_from((iu[:, keep] + c * half).T.tolist())
        k = max(1, round(0.05 * n))
        a = torch.randint(0, half, (k,), generator=gen)
        b = torch.randint(half, n, (k,), generator=gen)
        g.add_edges_from(zip(a.tolist(), b.tolist(), strict=True))
        if nx.is_connected(g):
            out.append(g)
    return out


def grid_graphs(min_side: int = 10, max_side: int = 20) -> list[nx.Graph]:
    """GraphRNN's grid set: every 2-D grid with sides in [min_side, max_side) (100 graphs by default)."""
    check_positive("min_side", min_side)
    if max_side <= min_side:
        raise ValueError(f"max_side must be > min_side, got {max_side} <= {min_side}")
    sides = range(min_side, max_side)
    return [nx.convert_node_labels_to_integers(nx.grid_2d_graph(i, j)) for i in sides for j in sides]


def bfs_order(g: nx.Graph, *, generator: torch.Generator | None = None) -> list[int]:
    """A random breadth-first ordering (random start node, neighbours in random order), as
    GraphRNN trains on. Every node but the first has a neighbour earlier in the order when the
    graph is connected; a disconnected graph is ordered component by component."""
    if g.number_of_nodes() == 0:
        raise ValueError("the graph is empty: it has no nodes")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    nodes = list(g.nodes)
    todo = [nodes[i] for i in torch.randperm(len(nodes), generator=gen).tolist()]
    seen: set = set()
    order: list = []
    for start in todo:
        if start in seen:
            continue
        seen.add(start)
        queue = [start]
        while queue:
            v = queue.pop(0)
            order.append(v)
            nbrs = [u for u in g.neighbors(v) if u not in seen]
            for i in torch.randperm(len(nbrs), generator=gen).tolist():
                seen.add(nbrs[i])
                queue.append(nbrs[i])
    return order

"""How good are generated graphs and molecules (chapter 11)?

GraphRNN's protocol (You et al. 2018): for each graph compute a statistic (its degree histogram,
its histogram of clustering coefficients over 100 bins of [0, 1], its 4-node orbit counts
averaged over nodes), then the squared maximum mean discrepancy between the generated and the
held-out sets,

    MMD^2(X, Y) = mean_{x, x'} k(x, x') + mean_{y, y'} k(y, y') - 2 mean_{x, y} k(x, y)

(the biased estimator over all pairs, as in their code, so it is exactly 0 for identical sets)
with ``k(p, q) = exp(-EMD(p, q)^2 / (2 sigma^2))`` on normalised histograms (sigma 1 for degrees,
0.1 for clustering, the EMD measured in units of a bin for degrees and of [0, 1] for clustering)
and a Gaussian kernel on the orbit vectors (sigma 30). For 1-D histograms the earth mover's
distance is the L1 distance between the cumulative sums.

Orbit counts: GraphRNN runs the ORCA program; here they are counted directly, by enumerating
every connected 2-, 3- and 4-node induced subgraph and reading each node's orbit from its degree
inside the subgraph (the 15 orbits of Przulj 2007, orbit 0 = degree). That is exact and fast for
the small graphs it is used on (at most 60 nodes: it enumerates all 4-node subsets).

Molecules: validity (RDKit sanitises the graph), uniqueness among the valid, novelty (not in the
training set), QED (Bickerton et al. 2012) and ring sizes. Link prediction: ROC AUC and AP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import networkx as nx
import numpy as np
from scipy.spatial.distance import cdist

from genai_lib._checks import check_positive

__all__ = [
    "degree_histogram",
    "clustering_histogram",
    "orbit_counts",
    "mmd2",
    "graph_mmd",
    "molecule_metrics",
    "qed_values",
    "ring_sizes",
    "link_auc_ap",
]

MAX_ORBIT_NODES = 60


def _check_graphs(name: str, graphs: Any) -> list[nx.Graph]:
    graphs = list(graphs) if not isinstance(graphs, nx.Graph) else [graphs]
    if not graphs:
        raise ValueError(f"{name} is empty: need at least one graph")
    for g in graphs:
        if not isinstance(g, nx.Graph):
            raise TypeError(f"{name} must hold networkx graphs, got {type(g).__name__}")
    return graphs


def degree_histogram(g: nx.Graph) -> np.ndarray:
    """Counts of nodes with degree 0, 1, 2, ..."""
    return np.asarray(nx.degree_histogram(g), dtype=float)


def clustering_histogram(g: nx.Graph, bins: int = 100) -> np.ndarray:
    """Histogram of the nodes' clustering coefficients over ``bins`` equal bins of [0, 1]."""
    values = list(nx.clustering(g).values())
    return np.histogram(values, bins=bins, range=(0.0, 1.0))[0].astype(float)


def _subsets(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.array(list(combinations(range(a.shape[0]), k)), dtype=np.int64).reshape(-1, k)
    sub = a[idx[:, :, None], idx[:, None, :]]  # (S, k, k)
    return idx, sub


def orbit_counts(g: nx.Graph) -> np.ndarray:
    """(n, 15) counts of how often each node takes each of the 15 orbits of the 2- to 4-node
    graphlets (Przulj 2007's numbering, ORCA's output), counted by enumeration."""
    n = g.number_of_nodes()
    if n > MAX_ORBIT_NODES:
        raise ValueError(f"orbit_counts enumerates 4-node subsets: at most {MAX_ORBIT_NODES} nodes, got {n}")
    a = nx.to_numpy_array(g, nodelist=list(g.nodes), dtype=np.int64)
    np.fill_diagonal(a, 0)
    out = np.zeros((n, 15), dtype=np.int64)
    out[:, 0] = a.sum(1)
    if n >= 3:
        idx, sub = _subsets(a, 3)
        e, d = sub.sum((1, 2)) // 2, sub.sum(2)
        path, tri = e == 2, e == 3
        np.add.at(out[:, 1], idx[path][d[path] == 1], 1)  # ends of a 3-path
        np.add.at(out[:, 2], idx[path][d[path] == 2], 1)  # its middle
        np.add.at(out[:, 3], idx[tri].ravel(), 1)  # triangle
    if n >= 4:
        idx, sub = _subsets(a, 4)
        e, d = sub.sum((1, 2)) // 2, sub.sum(2)
        dmax, dmin = d.max(1), d.min(1)
        kinds = {  # graphlet -> (which subsets, {degree inside it: orbit})
            "path": ((e == 3) & (dmax == 2), {1: 4, 2: 5}),
            "star": ((e == 3) & (dmax == 3), {1: 6, 3: 7}),
            "cycle": ((e == 4) & (dmin == 2) & (dmax == 2), {2: 8}),
            "paw": ((e == 4) & (dmax == 3), {1: 9, 2: 10, 3: 11}),
            "diamond": (e == 5, {2: 12, 3: 13}),
            "clique": (e == 6, {3: 14}),
        }
        for mask, orbit_of in kinds.values():
            for deg, orbit in orbit_of.items():
                np.add.at(out[:, orbit], idx[mask][d[mask] == deg], 1)
    return out


def _emd_kernel(hists: Sequence[np.ndarray], others: Sequence[np.ndarray], sigma: float, scale: float) -> np.ndarray:
    length = max(max(len(h) for h in hists), max(len(h) for h in others))

    def cdf(hs: Sequence[np.ndarray]) -> np.ndarray:
        m = np.zeros((len(hs), length))
        for i, h in enumerate(hs):
            m[i, : len(h)] = h / max(h.sum(), 1e-12)
        return np.cumsum(m, 1)

    emd = cdist(cdf(hists), cdf(others), "cityblock") / scale
    return np.exp(-(emd**2) / (2 * sigma**2))


def mmd2(x: Sequence[np.ndarray], y: Sequence[np.ndarray], kernel: Callable[[Any, Any], np.ndarray]) -> float:
    """Biased squared MMD between two sets of statistics under ``kernel(set, set) -> matrix``."""
    if len(x) == 0 or len(y) == 0:
        raise ValueError(f"both sets need at least one element, got {len(x)} and {len(y)}")
    return float(kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean())


def graph_mmd(reference: Any, generated: Any, stat: str) -> float:
    """GraphRNN's MMD^2 of ``stat`` ("degree", "clustering" or "orbit") between two graph sets."""
    ref, gen = _check_graphs("reference", reference), _check_graphs("generated", generated)
    if stat == "degree":
        return mmd2([degree_histogram(g) for g in ref], [degree_histogram(g) for g in gen],
                    lambda a, b: _emd_kernel(a, b, 1.0, 1.0))  # fmt: skip
    if stat == "clustering":
        return mmd2([clustering_histogram(g) for g in ref], [clustering_histogram(g) for g in gen],
                    lambda a, b: _emd_kernel(a, b, 0.1, 100.0))  # fmt: skip

    if stat == "orbit":

        def mean_orbits(g: nx.Graph) -> np.ndarray:
            return orbit_counts(g).sum(0) / max(g.number_of_nodes(), 1)

        def gauss(a: Any, b: Any) -> np.ndarray:
            return np.exp(-cdist(np.stack(a), np.stack(b), "sqeuclidean") / (2 * 30.0**2))

        return mmd2([mean_orbits(g) for g in ref], [mean_orbits(g) for g in gen], gauss)
    raise ValueError(f"stat must be 'degree', 'clustering' or 'orbit', got {stat!r}")


# --------------------------------------------------------------------------- molecules


def molecule_metrics(generated: Sequence[str | None], training: Sequence[str]) -> dict[str, float]:
    """``valid`` fraction (non-None SMILES), ``unique`` fraction of distinct among the valid,
    ``novel`` fraction of the distinct valid ones not in ``training`` (canonical SMILES)."""
    if len(generated) == 0:
        raise ValueError("generated is empty: need at least one sample")
    valid = [s for s in generated if s is not None]
    distinct = set(valid)
    train = set(training)
    return {
        "valid": len(valid) / len(generated),
        "unique": len(distinct) / max(len(valid), 1),
        "novel": len(distinct - train) / max(len(distinct), 1),
    }


def qed_values(smiles: Sequence[str]) -> np.ndarray:
    """QED drug-likeness in [0, 1] of each molecule (RDKit's implementation)."""
    from rdkit import Chem
    from rdkit.Chem import QED

    mols = [Chem.MolFromSmiles(s) for s in smiles]
    bad = [s for s, m in zip(smiles, mols, strict=True) if m is None]
    if bad:
        raise ValueError(f"not valid SMILES: {bad[:3]!r}")
    return np.array([QED.qed(m) for m in mols])


def ring_sizes(smiles: Sequence[str]) -> np.ndarray:
    """Every ring's size (RDKit's smallest set of smallest rings), over all molecules."""
    from rdkit import Chem

    sizes: list[int] = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)  # keep the molecule alive while its ring info is read
        if mol is None:
            raise ValueError(f"not a valid SMILES: {s!r}")
        sizes.extend(len(r) for r in mol.GetRingInfo().AtomRings())
    return np.array(sizes, dtype=int)


def link_auc_ap(pos: Any, neg: Any) -> tuple[float, float]:
    """ROC AUC and average precision of scores on held-out edges ``pos`` vs non-edges ``neg``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    pos, neg = np.asarray(pos, dtype=float).ravel(), np.asarray(neg, dtype=float).ravel()
    check_positive("len(pos)", len(pos))
    check_positive("len(neg)", len(neg))
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    s = np.r_[pos, neg]
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))

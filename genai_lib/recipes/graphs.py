"""Chapter 11's trained graph models: which data, which config, how long, which cache entry.

- ``node_classifiers()``: GCN, GAT and the feature-only MLP on Zachary's karate club (one
  labelled member per faction) and on a stochastic block model with noisy node features (20
  labelled nodes per block). Cached as ``gnn_<graph>_<kind>``.
- ``link_prediction()``: GAE and VGAE on held-out edges of the block model and of Les
  Miserables, beside a spectral embedding. Cached as ``gae_<graph>_<kind>``.
- ``graph_generators()``: GraphRNN-S and the one-shot GraphVAE on community-small (80 / 20
  split as in GraphRNN), with Erdos-Renyi and Barabasi-Albert baselines fitted to the training
  graphs, all scored by MMD^2 of degree, clustering and orbit statistics against the test graphs.
- ``train_molecule_generator()`` / ``sample_molecules(model, n, generator=...)``: the typed
  GraphRNN on the NCI molecules with at most 20 heavy atoms (valences enforced when sampling),
  the API chapter 14 steers towards higher QED. Cached as ``graphrnn_nci``.

Fast mode (``GENAI_FAST=1``): smaller graphs, fewer molecules and steps; the same code.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import torch

from genai_lib.data import make_loader
from genai_lib.graph_metrics import graph_mmd, link_auc_ap, molecule_metrics
from genai_lib.graphs import Graph, bfs_order, community_small, karate_club, les_miserables, sbm_graph, split_edges
from genai_lib.models.gnn import GAE, GAEConfig, NodeClassifier, NodeClassifierConfig
from genai_lib.models.graph_gen import GraphRNN, GraphRNNConfig, GraphVAE, GraphVAEConfig, encode_graph
from genai_lib.molecules import MAX_VALENCE, graph_to_smiles, load_nci, mol_to_graph
from genai_lib.train_cache import cached, load_or_train
from genai_lib.utils import fast_mode

__all__ = [
    "SBM", "sbm", "node_classifiers", "link_prediction", "spectral_scores", "graph_generators",
    "graphs_to_sequences", "molecule_data", "molecule_batch", "train_molecule_generator", "sample_molecules",
    "molecule_scores",
    "MOL_CFG", "MOL_CFG_FAST",
]  # fmt: skip

SBM = {  # the larger node-classification and link-prediction graph
    "full": {"blocks": 10, "block_size": 300, "p_in": 0.03, "p_out": 0.0002, "features": 16, "noise": 3.0},
    "fast": {"blocks": 3, "block_size": 80, "p_in": 0.08, "p_out": 0.002, "features": 16, "noise": 3.0},
}
NODE_STEPS = {"full": 300, "fast": 40}
GAE_STEPS = {"full": 400, "fast": 50}
GEN = {  # GraphRNN / GraphVAE on community-small: steps, batch, BFS orderings per graph, GRU width
    "full": {"steps": 2000, "batch": 64, "orders": 32, "hidden": 128},
    "fast": {"steps": 60, "batch": 32, "orders": 2, "hidden": 64},
}
MOL = {  # the molecule generator: steps, batch, BFS orderings per molecule, NCI lines read
    "full": {"steps": 2500, "batch": 64, "orders": 8, "limit": None},
    "fast": {"steps": 60, "batch": 32, "orders": 1, "limit": 400},
}
MOL_CFG = GraphRNNConfig(max_nodes=20, node_types=11, edge_types=3, hidden=128, emb=64)
MOL_CFG_FAST = GraphRNNConfig(max_nodes=20, node_types=11, edge_types=3, hidden=64, emb=32)


def _mode(fast: bool | None) -> str:
    return "fast" if (fast_mode() if fast is None else fast) else "full"


def _train(*args: Any, trainer: Any = load_or_train, **kwargs: Any) -> Any:
    """Train (or load) with the global RNG seeded and restored: dropout draws from it, so a run
    gives the same model whatever ran before it in the process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return trainer(*args, **kwargs)


def _built(cls: Any, cfg: Any, device: Any) -> Any:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return cls(cfg).to(device or "cpu")


def sbm(fast: bool | None = None) -> Graph:
    """The block-model graph (seed 0): y = block, features = noisy block centroids."""
    return sbm_graph(**SBM[_mode(fast)], generator=torch.Generator().manual_seed(0))


def _labelled(graph: Graph, per_class: int) -> torch.Tensor:
    """The first ``per_class`` nodes of each class (a fixed, reproducible labelled set)."""
    mask = torch.zeros(graph.num_nodes, dtype=torch.bool)
    for c in graph.y.unique():
        mask[(graph.y == c).nonzero().flatten()[:per_class]] = True
    return mask


def node_classifiers(*, fast: bool | None = None, device: Any = None, progress: bool = False) -> dict[str, Any]:
    """Test accuracy on the unlabelled nodes: ``{"karate": {kind: acc}, "sbm": {kind: acc}}``,
    plus ``curves`` (training loss per model) and the ``models``."""
    mode = _mode(fast)
    steps = NODE_STEPS[mode]
    graphs = {"karate": (karate_club(), None), "sbm": (sbm(mode == "fast"), 20)}
    out: dict[str, Any] = {"karate": {}, "sbm": {}, "curves": {}, "models": {}}
    for name, (g, per_class) in graphs.items():
        mask = torch.zeros(g.num_nodes, dtype=torch.bool)
        if per_class is None:
            mask[[0, 33]] = True  # Mr. Hi and the Officer, one labelled member per faction
        else:
            mask = _labelled(g, per_class)
        for kind in ("gcn", "gat", "mlp"):
            cfg = NodeClassifierConfig(in_dim=g.x.shape[1], n_classes=int(g.y.max()) + 1, kind=kind)
            model = _built(NodeClassifier, cfg, device)
            h = _train(model, [(g, mask)], name=f"gnn_{name}_{kind}_{mode}", key={"v": 2, "n": g.num_nodes},
                              steps=steps, lr=0.01, weight_decay=5e-4, progress=progress, log_every=10)  # fmt: skip
            model.eval()
            out[name][kind] = model.accuracy(g.to(next(model.parameters()).device), ~mask.to(g.x.device))
            out["curves"][f"{name}_{kind}"] = list(h.logs["loss"])
            out["models"][f"{name}_{kind}"] = model
    return out


def spectral_scores(train_edges: torch.Tensor, n: int, pairs: torch.Tensor, k: int) -> torch.Tensor:
    """The spectral baseline: embed nodes by the ``k`` leading eigenvectors of D^-1/2 A D^-1/2
    (scaled by their eigenvalues' square roots) and score a pair by the dot product."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import eigsh

    a = coo_matrix((np.ones(train_edges.shape[1]), train_edges.numpy()), shape=(n, n)).tocsr()
    d = np.asarray(a.sum(1)).ravel()
    inv = 1 / np.sqrt(np.maximum(d, 1))
    norm = a.multiply(inv[:, None]).multiply(inv[None, :]).tocsr()
    vals, vecs = eigsh(norm, k=min(k, n - 2), which="LA", v0=np.ones(n) / np.sqrt(n))
    emb = torch.tensor(vecs * np.sqrt(np.maximum(vals, 0)), dtype=torch.float32)
    return (emb[pairs[0]] * emb[pairs[1]]).sum(1)


def link_prediction(*, fast: bool | None = None, device: Any = None, progress: bool = False) -> dict[str, Any]:
    """Held-out-edge AUC and AP per graph (``sbm``, ``lesmis``) and method (``gae``, ``vgae``,
    ``spectral``): ``{"sbm": {"vgae": (auc, ap), ...}, ...}``, plus ``curves``."""
    mode = _mode(fast)
    out: dict[str, Any] = {"curves": {}}
    for name, g, k in (("sbm", sbm(mode == "fast"), 16), ("lesmis", les_miserables(), 8)):
        split = split_edges(g, generator=torch.Generator().manual_seed(0))
        train = Graph(g.x, split["train"])
        res: dict[str, tuple[float, float]] = {}
        for kind in ("gae", "vgae"):
            model = _built(GAE, GAEConfig(in_dim=g.x.shape[1], variational=kind == "vgae"), device)
            h = _train(model, [(train,)], name=f"gae_{name}_{kind}_{mode}", key={"v": 2, "n": g.num_nodes},
                              steps=GAE_STEPS[mode], lr=0.01, generator=torch.Generator().manual_seed(0),
                              progress=progress, log_every=10)  # fmt: skip
            dev = next(model.parameters()).device
            pos, neg = model.score(train.to(dev), split["test_pos"]), model.score(train.to(dev), split["test_neg"])
            res[kind] = link_auc_ap(pos.cpu(), neg.cpu())
            out["curves"][f"{name}_{kind}"] = list(h.logs["loss"])
        n = g.num_nodes
        res["spectral"] = link_auc_ap(spectral_scores(split["train"], n, split["test_pos"], k),
                                      spectral_scores(split["train"], n, split["test_neg"], k))  # fmt: skip
        out[name] = res
    return out


# --------------------------------------------------------------------------- graph generation


def graphs_to_sequences(
    graphs: list[nx.Graph], model: GraphRNN, orders: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """GraphRNN targets of ``orders`` random BFS orderings of each untyped graph."""
    gen = torch.Generator().manual_seed(seed)
    ts, rows = [], []
    for g in graphs:
        for _ in range(orders):
            order = bfs_order(g, generator=gen)
            adj = torch.tensor(nx.to_numpy_array(g, nodelist=order), dtype=torch.long)
            t, r = model.encode(torch.zeros(len(order), dtype=torch.long), adj)
            ts.append(t)
            rows.append(r)
    return torch.stack(ts), torch.stack(rows)


def _padded(graphs: list[nx.Graph], n_max: int, orders: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    adjs, masks = [], []
    for g in graphs:
        for _ in range(orders):
            order = bfs_order(g, generator=gen)
            a = torch.zeros(n_max, n_max)
            a[: len(order), : len(order)] = torch.tensor(nx.to_numpy_array(g, nodelist=order), dtype=torch.float32)
            m = torch.zeros(n_max)
            m[: len(order)] = 1
            adjs.append(a)
            masks.append(m)
    return torch.stack(adjs), torch.stack(masks)


def _to_nx(adj: torch.Tensor) -> nx.Graph:
    g = nx.from_numpy_array(adj.numpy())
    g.remove_edges_from(nx.selfloop_edges(g))
    return g


def graph_generators(
    *, fast: bool | None = None, device: Any = None, progress: bool = False, n_samples: int | None = None
) -> dict[str, Any]:
    """MMD^2 (degree, clustering, orbit) to the community-small test graphs of GraphRNN-S,
    GraphVAE, fitted Erdos-Renyi and Barabasi-Albert, and of the training graphs themselves."""
    mode = _mode(fast)
    graphs = community_small(100 if mode == "full" else 40, generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(graphs))
    train, test = graphs[:cut], graphs[cut:]
    n_samples = n_samples or (256 if mode == "full" else 40)
    r = GEN[mode]
    orders, steps = r["orders"], r["steps"]
    rnn = _built(GraphRNN, GraphRNNConfig(max_nodes=20, hidden=r["hidden"], emb=r["hidden"] // 2), device)
    t, rows = graphs_to_sequences(train, rnn, orders)
    h_rnn = _train(rnn, make_loader(t, rows, batch_size=r["batch"], generator=torch.Generator().manual_seed(0)),
                          name=f"graphrnn_comm_{mode}", key={"v": 2, "n": len(t)}, steps=steps, lr=3e-3,
                          lr_schedule="cosine", progress=progress, log_every=20)  # fmt: skip
    vae = _built(GraphVAE, GraphVAEConfig(max_nodes=20, hidden=r["hidden"]), device)
    adj, mask = _padded(train, 20, orders)
    vae_loader = make_loader(adj, mask, batch_size=r["batch"], generator=torch.Generator().manual_seed(0))
    h_vae = _train(vae, vae_loader,
                          name=f"graphvae_comm_{mode}", key={"v": 2, "n": len(adj)}, steps=steps, lr=1e-3,
                          generator=torch.Generator().manual_seed(0), progress=progress, log_every=20)  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    samples = {
        "graphrnn": [_to_nx(a.clamp(max=1).float()) for _, a in rnn.sample(n_samples, generator=gen)],
        "graphvae": [_to_nx(a) for a in vae.sample(n_samples, generator=gen)],
    }
    rng = np.random.default_rng(0)
    sizes = [g.number_of_nodes() for g in train]
    density = np.mean([nx.density(g) for g in train])
    m_ba = max(1, round(np.mean([g.number_of_edges() / g.number_of_nodes() for g in train])))
    picks = rng.choice(sizes, n_samples)
    samples["er"] = [nx.gnp_random_graph(int(k), density, seed=int(rng.integers(1 << 30))) for k in picks]
    samples["ba"] = [nx.barabasi_albert_graph(int(k), m_ba, seed=int(rng.integers(1 << 30))) for k in picks]
    samples["train"] = train
    mmd = {k: {s: graph_mmd(test, v, s) for s in ("degree", "clustering", "orbit")} for k, v in samples.items()}
    return {"mmd": mmd, "samples": samples, "test": test, "train": train, "models": {"graphrnn": rnn, "graphvae": vae},
            "curves": {"graphrnn": list(h_rnn.logs["loss"]), "graphvae": list(h_vae.logs["loss"])}}  # fmt: skip


# --------------------------------------------------------------------------- molecules


def molecule_data(*, fast: bool | None = None) -> dict[str, list[str]]:
    """NCI molecules (<= 20 heavy atoms) split 90 / 10 into ``train`` and ``test`` (cached)."""
    mode = _mode(fast)
    limit = MOL[mode]["limit"]
    value = cached(f"nci_smiles_{mode}", {"v": 1, "limit": limit}, lambda: {"smiles": load_nci(20, limit=limit)})
    smiles = list(value["smiles"])
    perm = torch.randperm(len(smiles), generator=torch.Generator().manual_seed(0)).tolist()
    cut = int(0.9 * len(smiles))
    return {"train": [smiles[i] for i in perm[:cut]], "test": [smiles[i] for i in perm[cut:]]}


def molecule_batch(smiles: list[str], *, orders: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """GraphRNN targets (t, rows) of ``orders`` random BFS orderings of each molecule, for
    :data:`MOL_CFG` (fine-tune a generator on a chosen set of molecules with these)."""
    gen = torch.Generator().manual_seed(seed)
    ts, rows = [], []
    for s in smiles:
        got = mol_to_graph(s)
        if got is None:
            raise ValueError(f"molecule {s!r} cannot be represented (see genai_lib.molecules.ATOMS)")
        types, bonds = got
        for _ in range(orders):
            order = bfs_order(nx.from_numpy_array(bonds.numpy()), generator=gen)
            t, r = encode_graph(MOL_CFG, types[order], bonds[order][:, order])
            ts.append(t)
            rows.append(r)
    return torch.stack(ts), torch.stack(rows)


def train_molecule_generator(
    *, fast: bool | None = None, device: Any = None, progress: bool = False, cache: bool = True
) -> tuple[GraphRNN, dict[str, Any]]:
    """The typed GraphRNN trained on the NCI training molecules; returns (model, info) with
    ``info["loss"]`` the training curve and ``info["train"]`` / ``info["test"]`` the SMILES."""
    mode = _mode(fast)
    data = molecule_data(fast=mode == "fast")
    r, cfg = MOL[mode], (MOL_CFG if mode == "full" else MOL_CFG_FAST)
    t, rows = molecule_batch(data["train"], orders=r["orders"])
    model = _built(GraphRNN, cfg, device)
    loader = make_loader(t, rows, batch_size=r["batch"], generator=torch.Generator().manual_seed(0))
    kw = {"steps": r["steps"], "lr": 2e-3, "lr_schedule": "cosine", "progress": progress, "log_every": 20}
    if cache:
        h = _train(model, loader, name=f"graphrnn_nci_{mode}", key={"v": 2, "n": len(t)}, **kw)
    else:
        from genai_lib.train import fit

        h = _train(model, loader, trainer=fit, **kw)
    model.eval()
    return model, {"loss": list(h.logs["loss"]), "train": data["train"], "test": data["test"]}


def sample_molecules(
    model: GraphRNN, n: int, *, generator: torch.Generator | None = None, temperature: float = 1.0
) -> list[str | None]:
    """``n`` sampled molecules as canonical SMILES (None where RDKit rejects the graph)."""
    graphs = model.sample(n, generator=generator, valence=MAX_VALENCE, temperature=temperature)
    return [graph_to_smiles(types, bonds) for types, bonds in graphs]


def molecule_scores(model: GraphRNN, train: list[str], n: int = 1000, seed: int = 1) -> dict[str, Any]:
    """Validity, uniqueness, novelty of ``n`` samples, and the samples."""
    smiles = sample_molecules(model, n, generator=torch.Generator().manual_seed(seed))
    return {**molecule_metrics(smiles, train), "samples": smiles}

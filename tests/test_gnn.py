"""Chapter 11: message passing, graph autoencoders, graph generators, graph metrics (issue 13)."""

import math

import networkx as nx
import numpy as np
import pytest
import torch

from genai_lib.graph_metrics import graph_mmd, link_auc_ap, mmd2, molecule_metrics, orbit_counts
from genai_lib.graphs import (
    Graph,
    batch_graphs,
    bfs_order,
    community_small,
    dense_adjacency,
    from_networkx,
    karate_club,
    make_graph,
    sbm_graph,
    split_edges,
)
from genai_lib.models.gnn import (
    GAE,
    GAEConfig,
    GATLayer,
    GCNLayer,
    NodeClassifier,
    NodeClassifierConfig,
    gaussian_kl_nodes,
)
from genai_lib.models.graph_gen import IGNORE, GraphRNN, GraphRNNConfig, GraphVAE, GraphVAEConfig
from genai_lib.train import fit

# a hand-made graph: a triangle 0-1-2 with a tail 2-3 and an isolated pair 4-5
EDGES = torch.tensor([[0, 1, 0, 2, 2, 4], [1, 2, 2, 3, 3, 5]])


def hand_graph(features: int = 3, seed: int = 0) -> Graph:
    x = torch.randn(6, features, generator=torch.Generator().manual_seed(seed))
    return make_graph(EDGES, 6, x=x)


def test_gcn_matches_dense_closed_form():
    g = hand_graph()
    layer = GCNLayer(3, 2)
    torch.nn.init.normal_(layer.bias)
    a = dense_adjacency(g.edge_index, 6) + torch.eye(6)
    d = torch.diag(a.sum(1).rsqrt())
    expected = d @ a @ d @ g.x @ layer.lin.weight.T + layer.bias  # Kipf & Welling eq. 2
    torch.testing.assert_close(layer(g.x, g.edge_index), expected)
    # degree of node 2 in A + I is 4 (three neighbours and itself): the weight of edge 2 -> 3
    assert math.isclose(float(d[2, 2] * d[3, 3]), 1 / math.sqrt(4 * 2), rel_tol=1e-6)


def test_gat_attention_sums_to_one_and_masks_non_edges():
    g = hand_graph()
    layer = GATLayer(3, 4, heads=3)
    ei, alpha, _ = layer.attention(g.x, g.edge_index)
    dense = torch.zeros(3, 6, 6)
    dense[:, ei[1], ei[0]] = alpha.T  # dense[h, i, j] = attention of node i on node j
    torch.testing.assert_close(dense.sum(-1), torch.ones(3, 6))
    allowed = (dense_adjacency(g.edge_index, 6) + torch.eye(6)) > 0
    assert bool((dense[:, ~allowed] == 0).all()) and bool((dense[:, allowed] > 0).all())


def _permuted(g: Graph, perm: torch.Tensor) -> Graph:
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    return Graph(g.x[perm], inv[g.edge_index], None if g.y is None else g.y[perm])


@pytest.mark.parametrize("kind", ["gcn", "gat", "node_gcn", "node_gat", "gae"])
def test_permutation_equivariance(kind):
    torch.manual_seed(0)
    g = hand_graph(4)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    nets = {
        "gcn": GCNLayer(4, 5),
        "gat": GATLayer(4, 5, heads=2),
        "node_gcn": NodeClassifier(NodeClassifierConfig(4, 3, kind="gcn")).eval(),
        "node_gat": NodeClassifier(NodeClassifierConfig(4, 3, kind="gat")).eval(),
        "gae": GAE(GAEConfig(4)),
    }
    net = nets[kind]

    def run(graph):
        if kind in ("gcn", "gat"):
            return net(graph.x, graph.edge_index)
        return net.encode(graph)[0] if kind == "gae" else net(graph)

    torch.testing.assert_close(run(_permuted(g, perm)), run(g)[perm])


def test_batching_small_graphs_equals_one_by_one():
    gs = [from_networkx(h, x=torch.randn(h.number_of_nodes(), 3)) for h in community_small(4)]
    batch = batch_graphs(gs)
    assert batch.batch.tolist() == sum(([i] * g.num_nodes for i, g in enumerate(gs)), [])
    for layer in (GCNLayer(3, 4), GATLayer(3, 2, heads=2)):
        torch.testing.assert_close(layer(batch.x, batch.edge_index), torch.cat([layer(g.x, g.edge_index) for g in gs]))


def test_vgae_on_two_node_graph_kl_and_reconstruction():
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logstd = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # KL per node = 1/2 sum(mu^2 + s^2 - 1 - 2 log s): node 0: (1 + 0 + 4 - 1 - 2 log 2) / 2, node 1: 4 / 2
    expected = ((1 + 4 - 1 - 2 * math.log(2)) / 2 + 2) / 2
    assert math.isclose(float(gaussian_kl_nodes(mu, logstd)), expected, rel_tol=1e-6)
    g = make_graph(torch.tensor([[0], [1]]), 2, x=torch.eye(2))
    model = GAE(GAEConfig(2, hidden=4, latent=2)).eval()  # eval: z = mu, the loss is deterministic
    z, _ = model.encode(g)
    loss, logs = model.loss((g,), generator=torch.Generator().manual_seed(0))
    neg = torch.tensor([[0, 1], [1, 0]])  # with 2 nodes the only non-self pairs are the edge itself
    logit = float((z[0] * z[1]).sum().detach())
    recon = math.log1p(math.exp(-logit)) + math.log1p(math.exp(logit))  # -log s(l) - log(1 - s(l))
    assert math.isclose(logs["recon"], recon, rel_tol=1e-5), (logs, recon, neg)
    mu, logstd = model.encode(g)
    assert math.isclose(logs["kl"], float(gaussian_kl_nodes(mu, logstd).detach()) / 2, rel_tol=1e-5)
    assert math.isclose(float(loss.detach()), logs["recon"] + logs["kl"], rel_tol=1e-6)


def test_mmd_zero_for_identical_sets_and_hand_value():
    gs = community_small(6)
    for stat in ("degree", "clustering", "orbit"):
        assert abs(graph_mmd(gs, gs, stat)) < 1e-12
    # two one-element sets of degree histograms: p = [0, 1] (all degree 1), q = [0, 0, 1]
    # EMD = 1 (one unit of mass moves one bin): MMD^2 = 1 + 1 - 2 exp(-1/2)
    a, b = nx.Graph([(0, 1)]), nx.cycle_graph(3)
    assert math.isclose(graph_mmd([a], [b], "degree"), 2 - 2 * math.exp(-0.5), rel_tol=1e-9)
    k = lambda x, y: np.exp(-(np.subtract.outer(np.ravel(x), np.ravel(y)) ** 2))  # noqa: E731
    x, y = [np.array(0.0), np.array(1.0)], [np.array(3.0)]
    hand = (2 + 2 * math.exp(-1)) / 4 + 1 - 2 * (math.exp(-9) + math.exp(-4)) / 2
    assert math.isclose(mmd2(x, y, k), hand, rel_tol=1e-9)


def test_orbit_counts_on_known_graphlets():
    assert orbit_counts(nx.complete_graph(4))[:, 14].tolist() == [1, 1, 1, 1]
    assert orbit_counts(nx.complete_graph(4))[:, 3].tolist() == [3, 3, 3, 3]
    path = orbit_counts(nx.path_graph(4))
    assert path[:, 4].tolist() == [1, 0, 0, 1] and path[:, 5].tolist() == [0, 1, 1, 0]
    assert orbit_counts(nx.star_graph(3))[:, 7].tolist() == [1, 0, 0, 0]
    assert orbit_counts(nx.cycle_graph(4))[:, 8].tolist() == [1, 1, 1, 1]
    paw = nx.Graph([(0, 1), (1, 2), (0, 2), (2, 3)])
    assert orbit_counts(paw)[:, 9:12].tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]
    diamond = nx.Graph([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)])
    assert orbit_counts(diamond)[:, 12:14].tolist() == [[0, 1], [1, 0], [0, 1], [1, 0]]
    g = nx.gnp_random_graph(15, 0.4, seed=1)
    o = orbit_counts(g)
    assert o[:, 3].tolist() == [nx.triangles(g)[v] for v in g.nodes]
    assert o[:, 0].tolist() == [d for _, d in g.degree]


def test_split_edges_holds_out_edges_and_true_non_edges():
    g = sbm_graph(blocks=2, block_size=40, p_in=0.3, p_out=0.02, features=4)
    s = split_edges(g, generator=torch.Generator().manual_seed(0))
    edges = {tuple(e) for e in g.edge_index.T.tolist()}
    train = {tuple(e) for e in s["train"].T.tolist()}
    assert all(tuple(e) in edges and tuple(e) not in train for e in s["test_pos"].T.tolist())
    assert all(tuple(e) not in edges for e in torch.cat([s["test_neg"], s["val_neg"]], 1).T.tolist())
    assert s["test_neg"].shape == s["test_pos"].shape and len(train) + 2 * (
        s["test_pos"].shape[1] + s["val_pos"].shape[1]
    ) == len(edges)
    assert link_auc_ap([0.9, 0.8], [0.1, 0.85]) == (0.75, pytest.approx((1 + 2 / 3) / 2))


def test_node_classifier_shapes_grads_overfit_and_determinism():
    g = karate_club()
    mask = torch.zeros(34, dtype=torch.bool)
    mask[[0, 33]] = True
    for kind in ("gcn", "gat", "mlp"):
        torch.manual_seed(0)
        model = NodeClassifier(NodeClassifierConfig(34, 2, kind=kind, dropout=0.0))
        assert model(g).shape == (34, 2)
        loss, _ = model.loss((g, mask))
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        h = fit(model, [(g, mask)], steps=40, lr=0.05, progress=False)
        assert h.logs["loss"][-1] < 0.05 * h.logs["loss"][0]
    a, b = (NodeClassifier(NodeClassifierConfig(34, 2)) for _ in range(2))
    b.load_state_dict(a.state_dict())
    a.train(), b.train()
    torch.manual_seed(1)
    out_a = a(g)
    torch.manual_seed(1)
    torch.testing.assert_close(b(g), out_a)  # dropout from the same seed


def test_gcn_beats_mlp_on_karate_with_two_labels():
    g = karate_club()
    mask = torch.zeros(34, dtype=torch.bool)
    mask[[0, 33]] = True
    acc = {}
    for kind in ("gcn", "mlp"):
        torch.manual_seed(0)
        model = NodeClassifier(NodeClassifierConfig(34, 2, kind=kind))
        fit(model, [(g, mask)], steps=60, lr=0.01, weight_decay=5e-4, progress=False)
        acc[kind] = model.accuracy(g, ~mask)
    assert acc["gcn"] > 0.8 and acc["mlp"] < 0.7, acc


def _community_batch(model, n_graphs=8):
    gs = community_small(n_graphs, generator=torch.Generator().manual_seed(0))
    ts, rows = [], []
    for g in gs:
        order = bfs_order(g, generator=torch.Generator().manual_seed(0))
        adj = torch.tensor(nx.to_numpy_array(g, nodelist=order), dtype=torch.long)
        t, r = model.encode(torch.zeros(len(order), dtype=torch.long), adj)
        ts.append(t)
        rows.append(r)
    return torch.stack(ts), torch.stack(rows)


def test_graph_sequence_encoding():
    model = GraphRNN(GraphRNNConfig(max_nodes=5, node_types=2, edge_types=2))
    adj = torch.tensor([[0, 1, 2], [1, 0, 0], [2, 0, 0]])
    t, rows = model.encode(torch.tensor([0, 1, 1]), adj)
    assert t.tolist() == [0, 1, 1, 2, IGNORE, IGNORE]  # types, then end (= node_types), then padding
    assert rows[1].tolist() == [1, IGNORE, IGNORE, IGNORE] and rows[2].tolist() == [0, 2, IGNORE, IGNORE]
    assert bool((rows[0] == IGNORE).all()) and bool((rows[3:] == IGNORE).all())


def test_graphrnn_overfits_and_samples_connected_reproducible_graphs():
    torch.manual_seed(0)
    model = GraphRNN(GraphRNNConfig(max_nodes=20, hidden=32, emb=16))
    t, rows = _community_batch(model, 4)
    loss, _ = model.loss((t, rows))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    h = fit(model, [(t, rows)], steps=150, lr=1e-2, progress=False)
    assert h.logs["loss"][-1] < 0.5 * h.logs["loss"][0]
    a = model.sample(6, generator=torch.Generator().manual_seed(0))
    b = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    for _, adj in a:
        assert torch.equal(adj, adj.T) and nx.is_connected(nx.from_numpy_array(adj.numpy()))


def test_graphrnn_respects_valences_when_sampling():
    torch.manual_seed(0)
    model = GraphRNN(GraphRNNConfig(max_nodes=12, node_types=3, edge_types=3, hidden=16, emb=8))
    valence = torch.tensor([4, 1, 2])
    for types, bonds in model.sample(20, generator=torch.Generator().manual_seed(0), valence=valence):
        assert bool((bonds.sum(1) <= valence[types]).all())


def test_graphvae_loss_grads_and_samples():
    torch.manual_seed(0)
    model = GraphVAE(GraphVAEConfig(max_nodes=6, hidden=16, latent=4))
    adj = torch.zeros(2, 6, 6)
    adj[0, :4, :4] = dense_adjacency(EDGES[:, :4], 4)
    mask = torch.tensor([[1.0] * 4 + [0.0] * 2, [1.0] * 6])
    loss, logs = model.loss((adj, mask), generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    h = fit(model, [(adj, mask)], steps=100, lr=1e-2, generator=torch.Generator().manual_seed(0), progress=False)
    assert h.logs["recon"][-1] < 0.5 * h.logs["recon"][0]
    s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert all(a.shape[0] == a.shape[1] and torch.equal(a, a.T) for a in s)


def test_molecules_round_trip_and_metrics():
    pytest.importorskip("rdkit", reason="RDKit is not installed (pip install rdkit==2026.9.1)")
    from genai_lib.molecules import graph_to_smiles, mol_to_graph

    for smi in ("CC(=O)Oc1ccccc1C(=O)O", "O=[N+]([O-])c1ccccc1", "C#N", "OS(=O)(=O)O"):
        types, bonds = mol_to_graph(smi)
        assert graph_to_smiles(types, bonds) == graph_to_smiles(*mol_to_graph(graph_to_smiles(types, bonds)))
    assert graph_to_smiles(torch.tensor([1]), torch.zeros(1, 1, dtype=torch.long)) == "N"
    five = torch.tensor([[0, 2, 2, 1], [2, 0, 0, 0], [2, 0, 0, 0], [1, 0, 0, 0]])
    assert graph_to_smiles(torch.tensor([0, 2, 2, 0]), five) is None  # C with 5 bonds: invalid
    # RDKit's sanitisation rewrites a pentavalent nitro N(=O)=O as [N+](=O)[O-]: valid
    assert graph_to_smiles(torch.tensor([1, 2, 2, 0]), five) == "C[N+](=O)[O-]"
    m = molecule_metrics(["CCO", "CCO", None, "CCN"], training=["CCO"])
    assert m == {"valid": 0.75, "unique": 2 / 3, "novel": 0.5}


def test_molecule_generator_api_in_fast_mode(monkeypatch, tmp_path):
    pytest.importorskip("rdkit", reason="RDKit is not installed (pip install rdkit==2026.9.1)")
    from genai_lib.recipes.graphs import sample_molecules, train_molecule_generator

    monkeypatch.setenv("GENAI_CACHE_DIR", str(tmp_path))
    model, info = train_molecule_generator(fast=True)
    assert info["loss"][-1] < info["loss"][0] and len(info["train"]) > len(info["test"]) > 0
    smiles = sample_molecules(model, 16, generator=torch.Generator().manual_seed(0))
    assert len(smiles) == 16 and sum(s is not None for s in smiles) >= 14
    assert smiles == sample_molecules(model, 16, generator=torch.Generator().manual_seed(0))
    assert sorted(p.name for p in (tmp_path / "fast").glob("*.pt")) == ["graphrnn_nci_fast.pt", "nci_smiles_fast.pt"]
    again, _ = train_molecule_generator(fast=True)  # trained once, then loaded
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))


def test_layers_equal_pytorch_geometric_with_copied_weights():
    pyg = pytest.importorskip(
        "torch_geometric.nn", reason="PyTorch Geometric is not installed (pip install torch_geometric==2.8.1)"
    )
    torch.manual_seed(0)
    g = karate_club()
    x = torch.randn(34, 5)
    ours, theirs = GCNLayer(5, 3), pyg.GCNConv(5, 3)
    torch.nn.init.normal_(ours.bias)
    theirs.lin.weight.data.copy_(ours.lin.weight)
    theirs.bias.data.copy_(ours.bias)
    torch.testing.assert_close(ours(x, g.edge_index), theirs(x, g.edge_index))
    for concat in (True, False):
        ours, theirs = GATLayer(5, 3, heads=4, concat=concat), pyg.GATConv(5, 3, heads=4, concat=concat)
        torch.nn.init.normal_(ours.bias)
        for name in ("att_src", "att_dst", "bias"):
            getattr(theirs, name).data.copy_(getattr(ours, name))
        theirs.lin.weight.data.copy_(ours.lin.weight)
        torch.testing.assert_close(ours(x, g.edge_index), theirs(x, g.edge_index))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_layers_on_cuda_match_cpu():
    g = hand_graph(4)
    for layer in (GCNLayer(4, 3), GATLayer(4, 3, heads=2)):
        cpu = layer(g.x, g.edge_index)
        gpu = layer.cuda()(g.x.cuda(), g.edge_index.cuda())
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)

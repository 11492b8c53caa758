"""FREEDOM's defining properties: a frozen item–item graph and a degree-sensitive pruned user–item
graph that keeps the requested share of edges (learning on scientific: test_learning.py)."""
import numpy as np
import pytest
import torch

from src.common.nn import graph, losses
from src.common.data.sampler import BPRSampler
from src.common.trainer import Trainer

from tests.conftest import checkerboard, config_for

knn_graph = graph.knn_graph
TINY = dict(embedding_size=16, train_batch_size=64, knn_k=4, reg_weight=1e-3)


def test_freedom_item_graph_is_frozen_and_is_the_weighted_mix_of_modality_knn_graphs():
    ds = checkerboard()
    trainer = Trainer(config_for("FREEDOM", dropout=0.5, mm_image_weight=0.3, **TINY), ds)
    model = trainer.model
    expected = (0.3 * graph.sym_norm(graph.knn_graph(ds.features["image"], 4))
                + 0.7 * graph.sym_norm(graph.knn_graph(ds.features["text"], 4))).toarray()
    before = model.mm_adj.to_dense().clone()
    np.testing.assert_allclose(before.numpy(), expected, rtol=1e-6)
    assert not model.mm_adj.requires_grad
    assert all(p.shape != before.shape for p in model.parameters())   # not something the optimizer sees
    item_before = model.item_emb().detach().clone()
    for epoch in range(3):
        trainer.train_epoch(epoch)
    assert not torch.allclose(model.item_emb(), item_before)          # training did happen
    torch.testing.assert_close(model.mm_adj.to_dense(), before)       # the item graph did not move


@pytest.mark.parametrize("modality", ["image", "text"])
def test_freedom_with_one_modality_uses_that_modality_graph(modality):
    ds = checkerboard(modalities=(modality,))
    model = Trainer(config_for("FREEDOM", dropout=0.8, **TINY), ds).model
    expected = graph.sym_norm(graph.knn_graph(ds.features[modality], 4)).toarray()
    np.testing.assert_allclose(model.mm_adj.to_dense().numpy(), expected, rtol=1e-6)
    assert list(model.projections) == [modality]


def test_freedom_pruned_graph_keeps_the_requested_share_each_epoch_and_evaluation_uses_all_edges():
    ds = checkerboard()
    model = Trainer(config_for("FREEDOM", dropout=0.8, **TINY), ds).model
    n_edges = len(ds.train)
    samples = []
    for epoch in range(3):
        model.pre_epoch(epoch)
        adj = graph.to_scipy(model.adj_pruned)
        assert adj.nnz == 2 * int(n_edges * (1 - 0.8))        # both directions of each kept edge
        users, items = adj[: ds.n_users].nonzero()
        kept = set(zip(users.tolist(), (items - ds.n_users).tolist()))
        assert kept <= set(zip(ds.train.users.tolist(), ds.train.items.tolist()))
        # re-normalised on the kept edges: D^-1/2 A D^-1/2 of the pruned graph
        np.testing.assert_allclose(adj.toarray(), graph.sym_norm((adj > 0).astype(np.float32)).toarray(),
                                   rtol=1e-6)
        samples.append(kept)
    assert samples[0] != samples[1]                             # a fresh sample every epoch
    model.eval()
    users_eval, items_eval = model.forward()
    u0, i0 = graph.lightgcn(model.adj_sym, model.user_emb.weight, model.item_emb(), model.n_ui_layers)
    torch.testing.assert_close(users_eval, u0)


@pytest.mark.parametrize("batch_size", [64, 20])   # more triples than items (30), and fewer
def test_freedom_projection_loss_is_bpr_on_the_projected_features(batch_size):
    ds = checkerboard()
    model = Trainer(config_for("FREEDOM", dropout=0.0, **TINY), ds).model
    batch = next(iter(BPRSampler(ds.train.users, ds.train.items, ds.n_items, batch_size, seed=0)))
    parts = model.calculate_loss(batch)
    users, _ = model.forward()
    for m in ("image", "text"):
        projected = model.projections[m](ds.features[m]) + 0.7     # any bias cancels
        expected = 1e-3 * losses.bpr(users[batch.users], projected[batch.pos], projected[batch.neg])
        torch.testing.assert_close(parts[f"bpr_{m}"], expected)


def test_freedom_item_graph_is_cached_on_disk_by_feature_content_and_k(tmp_path, monkeypatch):
    first = Trainer(config_for("FREEDOM", cache_dir=str(tmp_path), **TINY), checkerboard()).model
    built = []
    monkeypatch.setattr(graph, "knn_graph", lambda *a, **kw: built.append(1) or knn_graph(*a, **kw))
    again = Trainer(config_for("FREEDOM", cache_dir=str(tmp_path), **TINY), checkerboard()).model
    assert not built                                           # a fresh dataset, same features: from disk
    torch.testing.assert_close(again.mm_adj.to_dense(), first.mm_adj.to_dense())
    Trainer(config_for("FREEDOM", cache_dir=str(tmp_path), **{**TINY, "knn_k": 3}), checkerboard())
    assert len(built) == 2                                     # another k: both modalities rebuilt

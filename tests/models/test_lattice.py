"""LATTICE's defining properties: the learned item graph keeps k neighbours per item, lambda_coeff
mixes it with the initial graph as specified, it is rebuilt (with gradient) once per epoch and once
per evaluation (learning on scientific: test_learning.py)."""
import numpy as np
import pytest
import torch

from src.common.nn import graph
from src.common.data.sampler import BPRSampler
from src.common.trainer import Trainer

from tests.conftest import checkerboard, config_for

TINY = dict(embedding_size=16, train_batch_size=64, knn_k=4, feat_embed_dim=8)


def item_graph(model) -> np.ndarray:
    rows, cols, values = model.latent_item_graph()
    return graph.edges_to_csr(rows, cols, values, model.n_items, model.n_items).to_dense().numpy()


def build(ds, **overrides):
    cfg = config_for("LATTICE", reg_weight=0.0, learning_rate=1e-3, **{**TINY, **overrides})
    return Trainer(cfg, ds).model


@pytest.mark.parametrize("modalities", [("image",), ("text",), ("image", "text")])
def test_lattice_learned_graph_keeps_k_neighbours_per_item(modalities):
    ds = checkerboard(modalities=modalities)
    model = build(ds, lambda_coeff=0.0)          # A is the learned graph alone
    with torch.no_grad():
        a = item_graph(model)
    per_row = (a != 0).sum(1)
    if len(modalities) == 1:
        assert (per_row == 4).all()
    else:                                         # the union of the two modalities' k neighbours
        assert ((per_row >= 4) & (per_row <= 8)).all()
    with torch.no_grad():                         # the learned graph follows the projections
        proj = model.projections[modalities[0]](model.features[modalities[0]])
    _, idx = graph.cosine_topk(proj, 4)
    assert all(set(idx[i].tolist()) <= set(np.flatnonzero(a[i]).tolist()) for i in range(ds.n_items))


def test_lattice_lambda_coeff_mixes_learned_and_initial_graphs():
    ds = checkerboard()
    with torch.no_grad():
        learned, initial, mixed = (item_graph(build(ds, lambda_coeff=lam)) for lam in (0.0, 1.0, 0.3))
    np.testing.assert_allclose(mixed, 0.7 * learned + 0.3 * initial, atol=1e-6)
    # lambda = 1: the initial graphs of the raw features (cosine-weighted kNN), equal modality weights
    expected = sum(0.5 * graph.sym_norm(graph.knn_graph(ds.features[m], 4, weighted=True)).toarray()
                   for m in ("image", "text"))
    np.testing.assert_allclose(initial, expected, atol=1e-6)


def test_lattice_graph_learns_on_the_first_step_of_an_epoch_only():
    ds = checkerboard()
    model = build(ds)
    batches = iter(BPRSampler(ds.train.users, ds.train.items, ds.n_items, 64, seed=0))
    model.train()
    model.pre_epoch(0)
    grads = []
    for _ in range(2):
        model.zero_grad(set_to_none=True)
        sum(model.calculate_loss(next(batches)).values()).backward()
        grads.append((model.projections["image"].weight.grad, model.modal_weight.grad))
    assert all(g is not None and g.abs().sum() > 0 for g in grads[0])   # the rebuild step
    assert all(g is None for g in grads[1])                             # later steps: A detached


def test_lattice_builds_the_item_graph_once_per_evaluation(monkeypatch):
    ds = checkerboard()
    model = build(ds)
    calls = []
    original = model.latent_item_graph
    monkeypatch.setattr(model, "latent_item_graph", lambda: calls.append(1) or original())
    model.eval()
    with torch.no_grad():
        for users in (torch.arange(0, 20), torch.arange(20, 40)):
            model.full_sort_predict(users)
    assert len(calls) == 1


def test_lattice_learning_rate_follows_its_schedule():
    ds = checkerboard()
    trainer = Trainer(config_for("LATTICE", reg_weight=0.0, learning_rate=1e-3, **TINY), ds)
    trainer.train_epoch(50)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.96)

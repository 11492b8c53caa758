"""Graph primitives: entries worked out by hand, the fast backward, batched kNN."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from src.common import graph


def test_sym_norm_bipartite_two_users_three_items_entry_by_entry():
    # user 0 - items 0, 1; user 1 - item 1. Degrees: u0 2, u1 1, i0 1, i1 2, i2 0.
    adj = graph.sym_norm_bipartite(np.array([0, 0, 1]), np.array([0, 1, 1]), 2, 3).toarray()
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[0, 2] = expected[2, 0] = 1 / np.sqrt(2 * 1)
    expected[0, 3] = expected[3, 0] = 1 / np.sqrt(2 * 2)
    expected[1, 3] = expected[3, 1] = 1 / np.sqrt(1 * 2)
    np.testing.assert_allclose(adj, expected, rtol=1e-6)
    assert not adj[4].any()  # item 2 has no edge: a zero row, not NaN


def test_spmm_backward_matches_dense_autograd():
    a = sp.random(12, 12, density=0.3, random_state=1, dtype=np.float32)
    sym = graph.sym_norm((a + a.T).tocsr())
    x = torch.randn(12, 4, requires_grad=True)
    w = torch.randn(12, 4)
    (graph.spmm_sym(graph.to_torch_csr(sym), x) * w).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    (torch.from_numpy(sym.toarray()) @ x2 * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    # a non-symmetric matrix with its transpose given explicitly
    x3 = x.detach().clone().requires_grad_(True)
    a_csr = sp.csr_matrix(a)
    (graph.spmm(graph.to_torch_csr(a_csr), x3, graph.to_torch_csr(a_csr.T)) * w).sum().backward()
    x4 = x.detach().clone().requires_grad_(True)
    (torch.from_numpy(a_csr.toarray()) @ x4 * w).sum().backward()
    torch.testing.assert_close(x3.grad, x4.grad)


def test_lightgcn_zero_layers_is_identity_and_layers_average():
    adj = graph.to_torch_csr(graph.sym_norm_bipartite(np.array([0, 1]), np.array([1, 0]), 2, 2))
    u, i = torch.randn(2, 3), torch.randn(2, 3)
    u0, i0 = graph.lightgcn(adj, u, i, 0)
    torch.testing.assert_close(u0, u)
    u1, i1 = graph.lightgcn(adj, u, i, 1)
    # one layer: each user's neighbour is exactly one item with weight 1 -> mean of self and neighbour
    torch.testing.assert_close(u1[0], (u[0] + i[1]) / 2)


def test_knn_graph_keeps_k_per_row_and_batches_agree():
    torch.manual_seed(0)
    f = torch.randn(50, 8)
    g1 = graph.knn_graph(f, 5, batch_size=7)
    g2 = graph.knn_graph(f, 5, batch_size=1000)
    assert (np.diff(g1.indptr) == 5).all()
    assert (g1 != g2).nnz == 0
    # the most similar item of each item is itself (cosine 1)
    assert all(i in g1[i].indices for i in range(50))


def test_cosine_topk_can_exclude_self():
    f = torch.eye(4) + 0.1
    _, idx = graph.cosine_topk(f, 2, exclude_self=True)
    assert not (idx == torch.arange(4)[:, None]).any()


def test_to_scipy_round_trip():
    m = sp.random(6, 5, density=0.4, random_state=0, format="csr", dtype=np.float32)
    back = graph.to_scipy(graph.to_torch_csr(m))
    np.testing.assert_allclose(back.toarray(), m.toarray())
    coo = graph.to_torch_csr(m).to_sparse_coo()
    np.testing.assert_allclose(graph.to_scipy(coo).toarray(), m.toarray())


def test_row_norm_averages_neighbours_and_keeps_empty_rows_zero():
    a = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 0], [0, 2, 2]], dtype=np.float32))
    expected = np.array([[0.5, 0.5, 0], [0, 0, 0], [0, 0.5, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(graph.row_norm(a).toarray(), expected)


def test_hyperedge_embeddings_match_the_layer_by_layer_recursion():
    torch.manual_seed(0)
    item_hyper = torch.softmax(torch.randn(9, 3), dim=1)   # 9 items, 3 hyperedges
    x = torch.randn(9, 5)
    edges_1 = graph.hyperedge_embeddings(item_hyper, x, 1)
    torch.testing.assert_close(edges_1, item_hyper.T @ x)
    # two rounds: E_hyper^(1) = A^T (A E_hyper^(0))
    torch.testing.assert_close(graph.hyperedge_embeddings(item_hyper, x, 2), item_hyper.T @ (item_hyper @ edges_1))
    assert edges_1.shape == (3, 5)
    with pytest.raises(ValueError, match="n_layers"):
        graph.hyperedge_embeddings(item_hyper, x, 0)

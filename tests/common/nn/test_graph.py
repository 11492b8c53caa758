"""Graph primitives: entries worked out by hand, the fast backward, batched kNN."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from src.common.nn import graph


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


def test_sparse_mm_gives_bitwise_the_values_of_torch_sparse_mm():
    a = graph.to_torch_csr(sp.random(300, 200, density=0.05, random_state=2, dtype=np.float32))
    x = torch.randn(200, 24)
    assert torch.equal(graph.sparse_mm(a, x), torch.sparse.mm(a, x))
    assert torch.equal(graph.sparse_mm(a, x[:, ::2]), torch.sparse.mm(a, x[:, ::2]))     # strided columns
    coo = a.to_sparse_coo()
    torch.testing.assert_close(graph.sparse_mm(coo, x), torch.sparse.mm(a, x))


@pytest.mark.parametrize("n_layers", [0, 1, 3])
@pytest.mark.parametrize("used", ["both", "users", "items"])
def test_lightgcn_node_equals_the_unrolled_autograd_graph_bitwise(n_layers, used):
    """The one-node LightGCN gives the values and gradients autograd gives through the unrolled layers,
    also when only the user or only the item outputs reach the loss, and with a given transpose."""
    rng = np.random.default_rng(0)
    adj_sp = graph.sym_norm_bipartite(rng.integers(0, 50, 400), rng.integers(0, 30, 400), 50, 30)
    adj = graph.to_torch_csr(adj_sp)
    rw = graph.rw_norm(adj_sp + sp.eye(80))
    for a, a_t in ((adj, None), (graph.to_torch_csr(rw), graph.to_torch_csr(rw.T))):
        w_u, w_i = torch.randn(50, 8), torch.randn(30, 8)
        results = []
        for fast in (True, False):
            u = torch.randn(50, 8, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
            i = torch.randn(30, 8, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
            if fast:
                out_u, out_i = graph.lightgcn(a, u, i, n_layers, adj_t=a_t)
            else:
                x = total = torch.cat([u, i])
                for _ in range(n_layers):
                    x = graph.spmm(a, x, a if a_t is None else a_t)      # one autograd node per layer
                    total = total + x
                out = total / (n_layers + 1)
                out_u, out_i = out[:50], out[50:]
            loss = {"both": (out_u * w_u).sum() + (out_i * w_i).sum(), "users": (out_u * w_u).sum(),
                    "items": (out_i * w_i).sum()}[used]
            loss.backward()
            results.append((out_u.detach(), out_i.detach(), u.grad, i.grad))
        for fast, slow in zip(*results):
            assert torch.equal(fast, slow)


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


def test_rw_norm_rows_sum_to_one_and_empty_rows_stay_zero():
    a = sp.csr_matrix(np.array([[0, 2, 2], [1, 0, 0], [0, 0, 0]], dtype=np.float32))
    rw = graph.rw_norm(a).toarray()
    np.testing.assert_allclose(rw, [[0, 0.5, 0.5], [1, 0, 0], [0, 0, 0]])


def test_cosine_knn_edges_match_knn_graph_in_any_batch_size_and_carry_gradients():
    torch.manual_seed(0)
    f = torch.randn(40, 6, requires_grad=True)
    rows, cols, values = graph.cosine_knn_edges(f, 4, batch_size=7)
    assert (torch.bincount(rows, minlength=40) == 4).all()   # k neighbours per row
    dense = np.zeros((40, 40), np.float32)
    dense[rows.numpy(), cols.numpy()] = values.detach().numpy()
    np.testing.assert_allclose(dense, graph.knn_graph(f.detach(), 4, weighted=True).toarray(), atol=1e-6)
    rows2, cols2, _ = graph.cosine_knn_edges(f, 4, batch_size=1000)
    assert torch.equal(rows, rows2) and torch.equal(cols, cols2)
    values.sum().backward()
    assert f.grad is not None and f.grad.abs().sum() > 0


def test_sym_norm_edges_matches_scipy_sym_norm_with_duplicate_edges():
    rows = torch.tensor([0, 0, 1, 2, 2, 0])
    cols = torch.tensor([1, 2, 0, 2, 1, 1])      # (0, 1) twice: the entries add up
    values = torch.tensor([1.0, 2.0, 3.0, 0.5, 1.5, 1.0])
    normed = graph.sym_norm_edges(rows, cols, values, 4)
    a = sp.csr_matrix((values.numpy(), (rows.numpy(), cols.numpy())), shape=(4, 4))
    got = sp.csr_matrix((normed.numpy(), (rows.numpy(), cols.numpy())), shape=(4, 4)).toarray()
    np.testing.assert_allclose(got, graph.sym_norm(a).toarray(), rtol=1e-6)


def test_edge_spmm_and_edges_to_csr_match_dense_products():
    rows, cols = torch.tensor([0, 1, 1, 2, 0]), torch.tensor([2, 0, 1, 2, 2])
    values = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0], requires_grad=True)
    x = torch.randn(3, 4)
    dense = torch.zeros(3, 3).index_put((rows, cols), values, accumulate=True)
    torch.testing.assert_close(graph.edge_spmm(rows, cols, values, x, 3), dense @ x)
    torch.testing.assert_close(graph.edges_to_csr(rows, cols, values, 3, 3).to_dense(), dense.detach())
    graph.edge_spmm(rows, cols, values, x, 3).sum().backward()
    assert values.grad is not None and values.grad.abs().sum() > 0


def test_sample_edges_inverse_degree_keeps_n_and_draws_proportionally_to_inverse_sqrt_degrees():
    # user 0 has 4 items, user 1 one; item 0 is shared by both users
    users = np.array([0, 0, 0, 0, 1])
    items = np.array([0, 1, 2, 3, 0])
    rng = np.random.default_rng(0)
    keep = graph.sample_edges_inverse_degree(users, items, 3, rng)
    assert len(keep) == 3 == len(set(keep.tolist()))
    # a single draw picks edge e with probability w_e / sum w, w = 1/sqrt(d_u d_i)
    w = 1 / np.sqrt(np.array([4 * 2, 4 * 1, 4 * 1, 4 * 1, 1 * 2]))
    counts = np.bincount([graph.sample_edges_inverse_degree(users, items, 1, rng)[0] for _ in range(8000)],
                         minlength=5)
    np.testing.assert_allclose(counts / 8000, w / w.sum(), atol=0.02)


def test_row_difference_equals_gathered_difference_including_equal_pairs():
    x = torch.randn(9, 5)
    a, b = torch.tensor([0, 3, 8, 2, 5]), torch.tensor([4, 3, 1, 7, 0])
    torch.testing.assert_close(graph.row_difference(x, a, b), x[a] - x[b], rtol=0, atol=0)


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


@pytest.mark.parametrize("n_layers", [0, 1, 2, 3])
@pytest.mark.parametrize("width,n_both", [(8, 0), (8, 3), (8, 8), (192, 64)])
def test_lightgcn_blocks_equals_lightgcn_on_the_whole_adjacency(n_layers, width, n_both):
    """Users on every column and items on the first n_both: the values and gradients of lightgcn on
    the (U+I) x (U+I) matrix, the skipped item outputs not reaching the loss. Bitwise at 64-column
    blocks (MoToRec's channels); the CPU kernel's rounding can depend on the column count, so other
    splits agree to float rounding."""
    rng = np.random.default_rng(3)
    adj = graph.to_torch_csr(graph.sym_norm_bipartite(rng.integers(0, 50, 400), rng.integers(0, 30, 400), 50, 30))
    r, r_t = graph.bipartite_blocks(adj, 50)
    assert r.shape == (50, 30) and r_t.shape == (30, 50)
    w_u, w_i = torch.randn(50, width), torch.randn(30, n_both)
    results = []
    for blocks in (True, False):
        u = torch.randn(50, width, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        i = torch.randn(30, width, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
        if blocks:
            out_u, out_i = graph.lightgcn_blocks(r, r_t, u, i, n_layers, n_both)
        else:
            out_u, out_i = graph.lightgcn(adj, u, i, n_layers)
            out_i = out_i[:, :n_both]
        assert out_i.shape == (30, n_both)
        ((out_u * w_u).sum() + (out_i * w_i).sum()).backward()
        results.append((out_u.detach(), out_i.detach(), u.grad, i.grad))
    for fast, slow in zip(*results):
        if width == 192:
            assert torch.equal(fast, slow)
        torch.testing.assert_close(fast, slow, rtol=1e-6, atol=1e-6)
    with torch.no_grad():    # the inference path: the same values as the training one
        u = torch.randn(50, width, generator=torch.Generator().manual_seed(1))
        i = torch.randn(30, width, generator=torch.Generator().manual_seed(2))
        out_u, out_i = graph.lightgcn_blocks(r, r_t, u, i, n_layers, n_both)
        assert torch.equal(out_u, results[0][0]) and torch.equal(out_i, results[0][1])


def test_select_rows_gives_the_rows_and_their_transpose():
    rng = np.random.default_rng(5)
    a = graph.sym_norm_bipartite(rng.integers(0, 40, 300), rng.integers(0, 25, 300), 40, 25)[:40, 40:]
    t = graph.to_torch_csr(a)
    rows = torch.tensor([3, 0, 17, 17, 39, 8])          # any order, repeats allowed
    sub, sub_t = graph.select_rows(t, rows)
    dense = torch.from_numpy(a.toarray())
    assert torch.equal(sub.to_dense(), dense[rows]) and torch.equal(sub_t.to_dense(), dense[rows].T)
    alone, none = graph.select_rows(t, rows, transpose=False)
    assert none is None and torch.equal(alone.to_dense(), dense[rows])
    empty, empty_t = graph.select_rows(t, torch.tensor([], dtype=torch.long))
    assert empty.shape == (0, 25) and empty_t.shape == (25, 0) and empty_t.to_dense().abs().sum() == 0


@pytest.mark.parametrize("n_layers", [0, 1, 2, 3])
@pytest.mark.parametrize("width,n_both", [(8, 0), (8, 3), (8, 8), (192, 64)])
def test_lightgcn_rows_are_the_whole_outputs_rows_with_their_gradients(n_layers, width, n_both):
    """A training step's rows (users on every column, items on the first n_both; repeated and
    unsorted rows, nodes without edges among them): lightgcn's values at those rows and the
    gradients of a loss on them, to float rounding; a loss on other rows changes nothing."""
    rng = np.random.default_rng(3)
    adj = graph.to_torch_csr(graph.sym_norm_bipartite(rng.integers(0, 48, 400), rng.integers(0, 28, 400), 50, 30))
    r, r_t = graph.bipartite_blocks(adj, 50)
    user_rows, item_rows = torch.tensor([7, 49, 0, 7, 23, 48]), torch.tensor([29, 3, 11, 3, 28])
    w_u, w_i = torch.randn(len(user_rows), width), torch.randn(len(item_rows), n_both)
    results = []
    for rows in (True, False):
        u = torch.randn(50, width, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        i = torch.randn(30, width, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
        if rows:
            out_u, out_i = graph.lightgcn_rows(r, r_t, u, i, n_layers, user_rows, item_rows, n_both)
        else:
            out_u, out_i = graph.lightgcn(adj, u, i, n_layers)
            out_u, out_i = out_u[user_rows], out_i[item_rows, :n_both]
        assert out_u.shape == (6, width) and out_i.shape == (5, n_both)
        ((out_u * w_u).sum() + (out_i * w_i).sum()).backward()
        results.append((out_u.detach(), out_i.detach(), u.grad, i.grad))
    for fast, slow in zip(*results):
        torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="n_both"):
        graph.lightgcn_rows(r, r_t, torch.zeros(50, 4), torch.zeros(30, 4), 2, user_rows, item_rows, 5)


def test_gather_sum_is_the_sum_of_the_indexed_rows_with_its_gradient():
    table = torch.randn(12, 5, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    index = torch.tensor([[3, 0, 11], [7, 7, 2], [11, 4, 9], [0, 1, 2]])     # repeats and unsorted rows
    w = torch.randn(4, 5)
    out = graph.gather_sum(table, index)
    (out * w).sum().backward()
    ref_table = table.detach().clone().requires_grad_(True)
    ref = ref_table[index].sum(1)
    (ref * w).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(table.grad, ref_table.grad)
    with torch.no_grad():
        torch.testing.assert_close(graph.gather_sum(table, index), ref)

"""Graph primitives shared by every model: one function per thing computed.

- :func:`sym_norm_bipartite`   D^-1/2 A D^-1/2 of the user–item graph, (U+I) x (U+I) sparse CSR
- :func:`sym_norm`             D^-1/2 A D^-1/2 of any square sparse matrix
- :func:`rw_norm`              D^-1 A (random-walk normalisation) of any square sparse matrix
- :func:`sample_edges_inverse_degree`   degree-sensitive edge sampling, p(u, i) ∝ 1/sqrt(d_u d_i)
- :func:`sparse_mm`            A @ X for a constant sparse A (CSR: addmm into an uninitialised output)
- :func:`spmm` / :func:`spmm_sym`   A @ X with a backward that reuses a precomputed A^T (or A)
- :func:`lightgcn`             LightGCN propagation: mean of the layer outputs (He et al. 2020, Eq. 8)
- :func:`lightgcn_rows`        the same at a training batch's rows only (:func:`select_rows`)
- :func:`gather_sum`           sum_j X[index[:, j]] as a sparse incidence product (token embeddings)
- :func:`hyperedge_embeddings`  message passing through learnable soft hyperedges (LGMRec)
- :func:`knn_graph`            top-k cosine kNN item–item graph from features, built in row batches
- :func:`cosine_knn_edges`     the same kNN as an edge list whose weights carry gradients
- :func:`sym_norm_edges` / :func:`edge_spmm` / :func:`edges_to_csr`   differentiable edge-list ops
- :func:`row_difference`       X[a] - X[b] in one pass, as a product with a sparse +-1 selection
- :func:`to_torch_csr` / :func:`to_scipy`   conversions
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


# ----------------------------------------------------------------------------- conversions
def to_torch_csr(m: sp.spmatrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch sparse CSR tensor (fastest spmm on CPU)."""
    m = sp.csr_matrix(m, dtype=np.float32)
    m.sort_indices()
    return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                   torch.from_numpy(m.indices.astype(np.int64)),
                                   torch.from_numpy(m.data), size=m.shape, device=device,
                                   check_invariants=False)


def to_scipy(t: torch.Tensor) -> sp.csr_matrix:
    """A torch sparse (COO or CSR) tensor as a scipy CSR matrix, on the CPU."""
    t = t.detach().cpu()
    if t.layout == torch.sparse_coo:
        t = t.coalesce()
        idx = t.indices().numpy()
        return sp.csr_matrix((t.values().numpy(), (idx[0], idx[1])), shape=tuple(t.shape))
    return sp.csr_matrix((t.values().numpy(), t.col_indices().numpy(), t.crow_indices().numpy()),
                         shape=tuple(t.shape))


# ----------------------------------------------------------------------------- normalisation
def sym_norm(a: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 with D the row sums of A; rows/cols with zero degree stay zero."""
    a = sp.csr_matrix(a, dtype=np.float32)
    deg = np.asarray(a.sum(1)).ravel()
    inv_sqrt = np.zeros_like(deg)
    np.power(deg, -0.5, out=inv_sqrt, where=deg > 0)
    d = sp.diags(inv_sqrt)
    return sp.csr_matrix(d @ a @ d, dtype=np.float32)


def rw_norm(a: sp.spmatrix) -> sp.csr_matrix:
    """D^-1 A with D the row sums of A (each row sums to 1); rows with zero degree stay zero."""
    a = sp.csr_matrix(a, dtype=np.float32)
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.zeros_like(deg)
    np.divide(1.0, deg, out=inv, where=deg > 0)
    return sp.csr_matrix(sp.diags(inv) @ a, dtype=np.float32)


def bipartite(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
              weights: np.ndarray | None = None) -> sp.csr_matrix:
    """The symmetric (U+I) x (U+I) adjacency [[0, R], [R^T, 0]] of user–item pairs."""
    w = np.ones(len(users), dtype=np.float32) if weights is None else np.asarray(weights, np.float32)
    rows = np.concatenate([users, items + n_users])
    cols = np.concatenate([items + n_users, users])
    n = n_users + n_items
    return sp.csr_matrix((np.concatenate([w, w]), (rows, cols)), shape=(n, n))


def sym_norm_bipartite(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                       weights: np.ndarray | None = None) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 of the user–item graph (LightGCN's Eq. 7 matrix); users first, then items."""
    return sym_norm(bipartite(users, items, n_users, n_items, weights))


# ----------------------------------------------------------------------------- propagation
def sparse_mm(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A @ X for a constant sparse A, not differentiable. For CSR: ``addmm`` with beta = 0 into an
    uninitialised output, bitwise the same values as ``torch.sparse.mm`` (which writes into a zeroed
    output and adds): on the CPU about 1.8x faster (sports' graph, 1 thread: 6.3 -> 3.4 ms at 64
    columns, 29 -> 17 ms at 192; ``bench --only-hotpaths``)."""
    if a.layout != torch.sparse_csr:
        return torch.sparse.mm(a, x)
    out = torch.empty(a.shape[0], x.shape[1], dtype=x.dtype, device=x.device)
    return torch.addmm(out, a, x, beta=0, out=out)


class _SpMM(torch.autograd.Function):
    """Y = A X with a precomputed A^T for the backward (dL/dX = A^T dL/dY). Letting autograd
    transpose a sparse CSR matrix on every step is what makes torch.sparse.mm slow on the CPU
    (~10x here); a symmetric A is its own transpose."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.a_t = a_t
        return sparse_mm(a, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, sparse_mm(ctx.a_t, grad.contiguous())


def spmm(a: torch.Tensor, x: torch.Tensor, a_t: torch.Tensor | None = None) -> torch.Tensor:
    """A @ X for a sparse A, differentiable in X. Pass ``a_t`` (A^T, precomputed once) to make the
    backward fast; without it autograd transposes A at every step."""
    if not x.requires_grad:
        return sparse_mm(a, x)
    if a_t is None:
        return torch.sparse.mm(a, x)
    return _SpMM.apply(a, a_t, x)


def spmm_sym(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A @ X for a *symmetric* sparse A (e.g. D^-1/2 A D^-1/2 of an undirected graph)."""
    return spmm(a, x, a)


class _LightGCN(torch.autograd.Function):
    """(users, items) = split(mean_{l=0..L} Â^l [U; I]) as one autograd node. The layer mean is linear,
    so its backward is the same sum with Â^T: g_0 = h + Â^T(h + Â^T(h + ...)), h = g / (L + 1), in
    the order autograd evaluates the unrolled graph (bitwise the same values). One node instead of
    ~3L + 3 saves the unrolled graph's full-size temporaries: the zero-filled tensors the two output
    slices' backwards write into, the mean's division and the layer sums' gradients (LightGCN's step,
    Baby and sports' shapes: see README, Benchmark)."""

    @staticmethod
    def forward(ctx, adj, adj_t, n_layers: int, user_emb, item_emb):
        ctx.adj_t, ctx.n_layers = adj_t, n_layers
        ctx.shapes = (user_emb.shape, item_emb.shape)
        return _layer_mean(adj, n_layers, user_emb, item_emb)

    @staticmethod
    def backward(ctx, grad_users, grad_items):
        (users_shape, items_shape), like = ctx.shapes, (grad_users if grad_users is not None else grad_items)
        grad_users = like.new_zeros(users_shape) if grad_users is None else grad_users    # one side unused
        grad_items = like.new_zeros(items_shape) if grad_items is None else grad_items
        h = torch.cat([grad_users, grad_items], 0) / (ctx.n_layers + 1)
        acc = h
        for _ in range(ctx.n_layers):
            acc = h + sparse_mm(ctx.adj_t, acc.contiguous())
        n_users = users_shape[0]
        return (None, None, None, acc[:n_users] if ctx.needs_input_grad[3] else None,
                acc[n_users:] if ctx.needs_input_grad[4] else None)


def _layer_mean(adj, n_layers: int, user_emb, item_emb) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat([user_emb, item_emb], 0)
    total = x
    for _ in range(n_layers):
        x = sparse_mm(adj, x)
        total = total + x
    out = total / (n_layers + 1)
    return out[: user_emb.shape[0]], out[user_emb.shape[0]:]


def lightgcn(adj_sym: torch.Tensor, user_emb: torch.Tensor, item_emb: torch.Tensor,
             n_layers: int, adj_t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """LightGCN: E^(l+1) = Â E^(l), output = mean_{l=0..L} E^(l) (He et al. 2020, Eq. 7-8).

    adj_sym: (U+I, U+I) normalised adjacency, symmetric unless its transpose ``adj_t`` is given
    (e.g. a random-walk normalised D^-1 (A + I)); user_emb (U, d); item_emb (I, d).
    Returns the (U, d) user and (I, d) item outputs (one autograd node, :class:`_LightGCN`).
    """
    if (user_emb.requires_grad or item_emb.requires_grad) and torch.is_grad_enabled():
        return _LightGCN.apply(adj_sym, adj_sym if adj_t is None else adj_t, n_layers, user_emb, item_emb)
    return _layer_mean(adj_sym, n_layers, user_emb, item_emb)


def bipartite_blocks(adj_sym: torch.Tensor, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The off-diagonal blocks R (U x I) and R^T (I x U) of a symmetric bipartite (U+I) x (U+I)
    adjacency [[0, R], [R^T, 0]], as CSR on its device (for :func:`lightgcn_blocks`)."""
    a = to_scipy(adj_sym)
    return to_torch_csr(a[:n_users, n_users:], adj_sym.device), to_torch_csr(a[n_users:, :n_users], adj_sym.device)


class _LightGCNBlocks(torch.autograd.Function):
    """:func:`lightgcn_blocks` as one autograd node. With the graph's blocks a layer is two half
    products, users' rows R I^(l) and items' rows R^T U^(l), so the columns whose item outputs are
    not needed skip the products only those outputs depend on: forward 2L - 1 half products instead
    of 2L, backward L instead of 2L (its item-side gradient is zero, so every other layer of the
    backward recursion repeats the one before). Same summation order as :func:`lightgcn` on the
    whole adjacency: the same values and gradients, bitwise at MoToRec's 64-column blocks; the CPU
    kernel's rounding can depend on the number of columns, so other splits agree to float rounding
    (a test checks both)."""

    @staticmethod
    def forward(ctx, r, r_t, n_layers: int, n_both: int, user_emb, item_emb):
        ctx.r, ctx.r_t, ctx.n_layers, ctx.n_both, ctx.width = r, r_t, n_layers, n_both, user_emb.shape[1]
        return _block_mean(r, r_t, n_layers, n_both, user_emb, item_emb)

    @staticmethod
    def backward(ctx, grad_users, grad_items):
        r, r_t, n_layers, k = ctx.r, ctx.r_t, ctx.n_layers, ctx.n_both
        n_users, n_items = r.shape
        if grad_users is None:                        # one side unused
            grad_users = grad_items.new_zeros(n_users, ctx.width)
        if grad_items is None:
            grad_items = grad_users.new_zeros(n_items, k)
        # columns with both outputs: acc = h + Â acc, L times, in halves (h = g / (L + 1))
        hu, hi = grad_users[:, :k] / (n_layers + 1), grad_items / (n_layers + 1)
        au, ai = hu, hi
        for _ in range(n_layers):
            au, ai = hu + sparse_mm(r, ai.contiguous()), hi + sparse_mm(r_t, au.contiguous())
        # users-only columns: h = [g_u / (L + 1); 0]; the item part of acc changes at odd layers only
        # and the user part at even ones (acc_1 = [h_u; R^T h_u], acc_2 = [h_u + R R^T h_u; R^T h_u], ...)
        hu2 = grad_users[:, k:] / (n_layers + 1)
        bu, bi = hu2, None
        for layer in range(1, n_layers + 1):
            if layer % 2:
                bi = sparse_mm(r_t, bu.contiguous())
            else:
                bu = hu2 + sparse_mm(r, bi)
        if bi is None:
            bi = hu2.new_zeros(n_items, hu2.shape[1])
        return None, None, None, None, torch.cat([au, bu], 1), torch.cat([ai, bi], 1)


def _block_mean(r, r_t, n_layers: int, k: int, user_emb, item_emb) -> tuple[torch.Tensor, torch.Tensor]:
    # columns [:k]: LightGCN for users and items, layer by layer
    u, i = user_emb[:, :k].contiguous(), item_emb[:, :k].contiguous()
    total_u, total_i = u, i
    for _ in range(n_layers):
        u, i = sparse_mm(r, i), sparse_mm(r_t, u)
        total_u, total_i = total_u + u, total_i + i
    # columns [k:]: users only; user layer l + 1 = R (item layer l), item layer l + 1 = R^T (user layer l)
    u2, i2 = user_emb[:, k:].contiguous(), item_emb[:, k:].contiguous()
    total_u2 = u2
    for layer in range(n_layers):
        u2, i2 = sparse_mm(r, i2), (sparse_mm(r_t, u2) if layer < n_layers - 1 else None)
        total_u2 = total_u2 + u2
    return torch.cat([total_u, total_u2], 1) / (n_layers + 1), total_i / (n_layers + 1)


def lightgcn_blocks(r: torch.Tensor, r_t: torch.Tensor, user_emb: torch.Tensor, item_emb: torch.Tensor,
                    n_layers: int, n_both: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LightGCN on a symmetric normalised bipartite adjacency given by its blocks R (U x I) and R^T
    (:func:`bipartite_blocks`), where the items' outputs are needed for the first ``n_both`` columns
    only: returns users (U, d) for every column and items (I, n_both). The values (and gradients)
    are :func:`lightgcn`'s on the whole adjacency (see :class:`_LightGCNBlocks`); the columns past ``n_both`` cost
    3 half products instead of 4 forward and 2 instead of 4 backward at L = 2 (e.g. MoToRec's content
    channels, whose items are scored at layer 0 while users are propagated)."""
    if not 0 <= n_both <= user_emb.shape[1] or user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"n_both={n_both} must lie in [0, d] for d={user_emb.shape[1]} columns on both sides")
    if (user_emb.requires_grad or item_emb.requires_grad) and torch.is_grad_enabled():
        return _LightGCNBlocks.apply(r, r_t, n_layers, n_both, user_emb, item_emb)
    return _block_mean(r, r_t, n_layers, n_both, user_emb, item_emb)


def select_rows(a: torch.Tensor, rows: torch.Tensor,
                transpose: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rows ``rows`` of a sparse CSR matrix A (n x m) as CSR (len(rows) x m), and that block's
    transpose (m x len(rows)), for :func:`spmm`'s backward (None with ``transpose=False``, e.g. for a
    constant right-hand side). Costs O(entries of those rows) (plus a length-m count and, for the
    transpose, a sort of the entries), so a training batch's rows of a graph are cheap to take every step."""
    crow, col, val = a.crow_indices(), a.col_indices(), a.values()
    start, count = crow[rows], crow[rows + 1] - crow[rows]
    crow_sub = torch.cat([count.new_zeros(1), count.cumsum(0)])
    first = torch.repeat_interleave(start - crow_sub[:-1], count)        # per entry: its row's offset shift
    pos = first + torch.arange(len(first), device=a.device)
    cols, vals = col[pos], val[pos]
    sub = torch.sparse_csr_tensor(crow_sub, cols, vals, size=(len(rows), a.shape[1]), check_invariants=False)
    if not transpose:
        return sub, None
    local = torch.repeat_interleave(torch.arange(len(rows), device=a.device), count)
    return sub, _transposed_csr(local, cols, vals, len(rows), a.shape[1])


def _transposed_csr(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, n_rows: int, n_cols: int) -> torch.Tensor:
    """The (n_cols x n_rows) CSR transpose of the entries (rows, cols, vals) of a row-major CSR
    matrix: a stable sort by column keeps each new row's columns (the old rows) ascending."""
    order = torch.argsort(cols, stable=True)
    crow = torch.cat([cols.new_zeros(1), torch.bincount(cols, minlength=n_cols).cumsum(0)])
    return torch.sparse_csr_tensor(crow, rows[order], vals[order], size=(n_cols, n_rows), check_invariants=False)


def gather_sum(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """sum_j table[index[:, j]] for index (n, m): each row's m table rows summed (e.g. an item's token
    embeddings over its code levels), as the product of the (n x rows) 0/1 incidence matrix with the
    table, whose backward is the transpose's product (one stable sort to build it). On the CPU much
    faster than an embedding lookup's sum, whose backward accumulates row by row into a dense table."""
    n, m = index.shape
    if m > 1 and bool((index[:, 1:] < index[:, :-1]).any()):   # CSR: ascending columns within a row
        index = index.sort(1).values
    cols = index.reshape(-1)
    vals = torch.ones(n * m, dtype=table.dtype, device=table.device)
    a = torch.sparse_csr_tensor(torch.arange(0, n * m + 1, m, device=index.device), cols, vals,
                                size=(n, table.shape[0]), check_invariants=False)
    if not (table.requires_grad and torch.is_grad_enabled()):
        return sparse_mm(a, table)
    a_t = _transposed_csr(torch.arange(n, device=index.device).repeat_interleave(m), cols, vals, n, table.shape[0])
    return spmm(a, table, a_t)


class _LightGCNRows(torch.autograd.Function):
    """:func:`lightgcn_rows` as one autograd node: its backward accumulates into one full-size
    gradient per side instead of autograd's zero-filled tensors for each gather and column slice
    of the (users x d) table. With h = g / (L + 1) at the rows, A = R_B^T h_u (I x d) and
    B = R^T_B'^T h_i (U x n_both) (B, B': the user and item rows), the full layers' gradients run
    G_i^(l-1) = A + R^T G_u^(l), G_u^(l-1) = [B, 0] + R G_i^(l) from G_i^(L-1) = A, G_u^(L-1) = B,
    and the rows' own layer 0 adds h."""

    @staticmethod
    def forward(ctx, r, r_t, n_layers: int, n_both: int, user_rows, item_rows, user_emb, item_emb):
        u_rows, u_rows_t = select_rows(r, user_rows)
        i_rows, i_rows_t = select_rows(r_t, item_rows)
        ctx.r, ctx.r_t, ctx.u_rows_t, ctx.i_rows_t = r, r_t, u_rows_t, i_rows_t
        ctx.n_layers, ctx.k, ctx.shapes = n_layers, n_both, (user_emb.shape, item_emb.shape)
        ctx.save_for_backward(user_rows, item_rows)
        k = n_both
        u, i = user_emb, item_emb                  # full layer l - 1 (users: [:k] only at l - 1 = L - 1)
        total_u, total_i = user_emb[user_rows], item_emb[item_rows, :k]
        for layer in range(1, n_layers + 1):
            total_u = total_u + sparse_mm(u_rows, i)                             # users' rows of layer l
            total_i = total_i + sparse_mm(i_rows, u[:, :k].contiguous())         # items' rows of layer l
            if layer < n_layers:                                                 # full layer l, where l + 1 needs it
                u, i = sparse_mm(r, i if layer < n_layers - 1 else i[:, :k].contiguous()), sparse_mm(r_t, u)
        return total_u / (n_layers + 1), total_i / (n_layers + 1)

    @staticmethod
    def backward(ctx, grad_users, grad_items):
        user_rows, item_rows = ctx.saved_tensors
        (users_shape, items_shape), n_layers, k = ctx.shapes, ctx.n_layers, ctx.k
        like = grad_users if grad_users is not None else grad_items
        hu = (like.new_zeros(len(user_rows), users_shape[1]) if grad_users is None else grad_users) / (n_layers + 1)
        hi = (like.new_zeros(len(item_rows), k) if grad_items is None else grad_items) / (n_layers + 1)
        if n_layers == 0:
            g_u, g_i = like.new_zeros(users_shape), like.new_zeros(items_shape)
        else:
            a = sparse_mm(ctx.u_rows_t, hu.contiguous())      # (I, d): every layer's users' rows
            b = sparse_mm(ctx.i_rows_t, hi.contiguous())      # (U, k): every layer's items' rows
            g_u, g_i = b, a                                   # layer L - 1
            for _ in range(n_layers - 1):                     # layer l -> l - 1
                back_i = sparse_mm(ctx.r_t, g_u.contiguous())   # g_u: every column, or [:k] at layer L - 1
                if back_i.shape[1] == a.shape[1]:
                    new_i = a + back_i
                else:
                    new_i = a.clone()
                    new_i[:, :back_i.shape[1]] += back_i
                g_u = sparse_mm(ctx.r, g_i)
                g_u[:, :k] += b
                g_i = new_i
            if g_u.shape[1] < users_shape[1]:                 # L = 1: the users' layer 0 gets [B, 0]
                g_u = torch.cat([g_u, g_u.new_zeros(users_shape[0], users_shape[1] - k)], 1)
        g_u.index_add_(0, user_rows, hu)
        g_i[:, :k].index_add_(0, item_rows, hi)
        return None, None, None, None, None, None, g_u, g_i


def lightgcn_rows(r: torch.Tensor, r_t: torch.Tensor, user_emb: torch.Tensor, item_emb: torch.Tensor,
                  n_layers: int, user_rows: torch.Tensor, item_rows: torch.Tensor,
                  n_both: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lightgcn_blocks`'s outputs at the rows a training step scores only: users (len(user_rows),
    d) over every column, items (len(item_rows), n_both). Layers 1..L-1 are computed in full, where a
    later layer needs them (items' rows R^T U^(l) for every column, users' R I^(l) for the first
    ``n_both`` and, below L - 1, all), the last layer and every layer's output rows only for the given
    rows (:func:`select_rows`). At L = 2 that is one full half product over every column and one over
    the first ``n_both`` forward, the same backward, against 4 + 4 (3 + 2 for the users-only columns)
    for the whole outputs: the same values, to float rounding (other summation order), and the same
    gradients (a test checks both against :func:`lightgcn`; one autograd node, :class:`_LightGCNRows`)."""
    if not 0 <= n_both <= user_emb.shape[1] or user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"n_both={n_both} must lie in [0, d] for d={user_emb.shape[1]} columns on both sides")
    return _LightGCNRows.apply(r, r_t, n_layers, n_both, user_rows, item_rows, user_emb, item_emb)


def propagate(adj: torch.Tensor, x: torch.Tensor, n_layers: int, mean: bool = True,
              adj_t: torch.Tensor | None = None) -> torch.Tensor:
    """n_layers rounds of x <- A x on a square graph (e.g. an item–item kNN graph).

    Returns the mean of all layers including x itself (``mean=True``) or the last layer.
    ``adj_t`` (A^T, or A itself when symmetric) speeds up the backward.
    """
    total = x
    for _ in range(n_layers):
        x = spmm(adj, x, adj_t)
        total = total + x
    return total / (n_layers + 1) if mean else x


def hyperedge_embeddings(item_hyper: torch.Tensor, item_emb: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Hyperedge embeddings after K = n_layers >= 1 rounds of message passing through H soft
    hyperedges (LGMRec, Guo et al. AAAI 2024, global hypergraph embedding):

        E_hyper^(k) = A_I^T E_I^(k),     E_I^(k+1) = A_I E_hyper^(k)      (k = 0..K-1)

    item_hyper A_I: (n_items, H) item–hyperedge dependencies (dense: H is small); item_emb
    E_I^(0): (n_items, d). Returns E_hyper^(K-1), (H, d); the nodes' global embeddings are then
    A_I E_hyper (items) and A_U E_hyper (users, with their own dependencies A_U), of rank <= H.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    edges = item_hyper.T @ item_emb
    if n_layers > 1:
        gram = item_hyper.T @ item_hyper   # A_I^T A_I, (H, H): no (n_items, d) intermediate
        for _ in range(n_layers - 1):
            edges = gram @ edges
    return edges


# ----------------------------------------------------------------------------- kNN item graphs
def cosine_topk(features: torch.Tensor, k: int, batch_size: int = 1024,
                exclude_self: bool = False, reference: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k cosine neighbours of every row among the rows of ``reference`` (default: ``features``
    itself), computed ``batch_size`` rows at a time.

    Memory is bounded by batch_size x n (never n x n). Returns (values, indices), both (n, k).
    """
    x = torch.nn.functional.normalize(features.float(), dim=1)
    ref = x if reference is None else torch.nn.functional.normalize(reference.float(), dim=1)
    n = ref.shape[0]
    k = min(k, n - 1 if exclude_self else n)
    values, indices = [], []
    for start in range(0, x.shape[0], batch_size):
        sim = x[start:start + batch_size] @ ref.T
        if exclude_self:
            rows = torch.arange(sim.shape[0], device=sim.device)
            sim[rows, rows + start] = -float("inf")
        v, i = torch.topk(sim, k, dim=1)
        values.append(v)
        indices.append(i)
    return torch.cat(values), torch.cat(indices)


def knn_graph(features: torch.Tensor, k: int, batch_size: int = 1024,
              weighted: bool = False) -> sp.csr_matrix:
    """The kNN item–item graph (n x n, k entries per row) of cosine similarity between features.

    As in LATTICE/FREEDOM, each item's top-k neighbours (itself included, as the most similar)
    get weight 1 (or the similarity when ``weighted``). Normalise it with :func:`sym_norm`.
    """
    values, indices = cosine_topk(features, k, batch_size)
    n = features.shape[0]
    rows = np.repeat(np.arange(n), indices.shape[1])
    data = values.cpu().numpy().ravel() if weighted else np.ones(rows.size, np.float32)
    return sp.csr_matrix((data.astype(np.float32), (rows, indices.cpu().numpy().ravel())), shape=(n, n))


def cosine_knn_edges(features: torch.Tensor, k: int, batch_size: int = 1024
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The top-k cosine kNN graph of the rows of ``features`` as an edge list with differentiable
    weights: for every row i, N_k(i) = the k rows j with the largest cos(x_i, x_j) (i included),
    and edge (i, j) for j in N_k(i) weighs cos(x_i, x_j).

    The neighbours are searched without gradient, ``batch_size`` rows at a time (memory
    batch_size x n, never n x n); the weights are then recomputed from the k chosen pairs
    (memory n x k x d), so they carry gradients to ``features`` (the choice itself, a top-k, is
    piecewise constant). Returns rows, cols and values, each (n * k,), rows in order.
    """
    with torch.no_grad():
        _, idx = cosine_topk(features.detach(), k, batch_size)
    x = torch.nn.functional.normalize(features, dim=1)
    n, k = idx.shape
    values = (x.unsqueeze(1) * x[idx]).sum(-1)                       # (n, k) cosines
    rows = torch.arange(n, device=idx.device).repeat_interleave(k)
    return rows, idx.reshape(-1), values.reshape(-1)


def sym_norm_edges(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """The values of D^-1/2 A D^-1/2 for a square n x n matrix A given as an edge list, D the row
    sums of A (duplicate edges add up): a_ij / sqrt(d_i d_j); zero where a degree is <= 0.
    Differentiable w.r.t. ``values``."""
    deg = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, rows, values)
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(torch.finfo(deg.dtype).tiny).rsqrt(),
                           torch.zeros_like(deg))
    return inv_sqrt[rows] * values * inv_sqrt[cols]


def edge_spmm(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
              n_rows: int) -> torch.Tensor:
    """A @ X for A given as an edge list: out_i = sum_{e: rows_e = i} values_e x_{cols_e}.
    Differentiable w.r.t. both ``values`` and ``x`` (use :func:`spmm` when A is constant)."""
    out = torch.zeros(n_rows, x.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add(0, rows, values.unsqueeze(1) * x[cols])


def edges_to_csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_rows: int,
                 n_cols: int) -> torch.Tensor:
    """An edge list as a constant (detached) torch sparse CSR matrix on the same device;
    duplicate edges add up."""
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values.detach().float(), (n_rows, n_cols),
                                  check_invariants=False)
    return coo.coalesce().to_sparse_csr()


def row_difference(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """X[a] - X[b], (len(a), d), as S X with S the sparse (len(a), n) matrix holding +1 at
    (r, a_r) and -1 at (r, b_r): one pass over the chosen rows of a wide X, without the two
    gathered copies. Differentiable w.r.t. nothing (X is data)."""
    n = len(a)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)                  # sorted columns per row
    sign = torch.where(a <= b, 1.0, -1.0).to(x.dtype)
    sign = torch.where(a == b, 0.0, sign).to(x.dtype)                 # x_a - x_a = 0
    s = torch.sparse_csr_tensor(torch.arange(0, 2 * n + 1, 2, device=x.device),
                                torch.stack([lo, hi], 1).reshape(-1),
                                torch.stack([sign, -sign], 1).reshape(-1), (n, x.shape[0]),
                                check_invariants=False)
    return sparse_mm(s, x.detach())


# ----------------------------------------------------------------------------- edge sampling
def sample_edges_inverse_degree(users: np.ndarray, items: np.ndarray, n_keep: int,
                                rng: np.random.Generator) -> np.ndarray:
    """Degree-sensitive edge sampling (FREEDOM, Zhou & Shen 2023, Sec. 3.2): ``n_keep`` of the
    user–item edges drawn without replacement, each draw picking edge (u, i) among those left
    with probability proportional to w_ui = 1 / sqrt(d_u d_i) (degrees in the full edge list),
    so edges between popular nodes are the first to go.

    Vectorised with exponential keys (Efraimidis & Spirakis 2006): key_e = Exp(1) / w_e, keep the
    ``n_keep`` smallest — the same distribution as sequential weighted sampling. Returns the sorted
    indices of the kept edges.
    """
    users, items = np.asarray(users), np.asarray(items)
    n_keep = int(min(max(n_keep, 0), len(users)))
    d_u = np.bincount(users)[users].astype(np.float64)
    d_i = np.bincount(items)[items].astype(np.float64)
    keys = rng.exponential(size=len(users)) * np.sqrt(d_u * d_i)     # Exp(1) / w
    if n_keep == len(users):
        return np.arange(len(users))
    return np.sort(np.argpartition(keys, n_keep)[:n_keep])

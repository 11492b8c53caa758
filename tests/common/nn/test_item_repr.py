"""MOTOR's item representation: PQ tokens (nearest centroids, cached by content and settings),
token tables that learn, the Token Cross Network's shapes, and clear errors."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from src.common.nn import item_repr
from src.common.config import ConfigError
from src.common.data.dataset import DataError
from src.common.nn.item_repr import MotorRepresentation, build_item_representation, item_tokens, pq_tokens

from tests.conftest import checkerboard, config_for


def motor_config(tmp_path, **extra):
    extra = {"item_representation": "motor", "pq_subspaces": 4, "pq_codebook_size": 4,
             "cache_dir": str(tmp_path), "embedding_size": 8, **extra}
    return config_for("BPR", **extra)


def test_pq_tokens_are_each_subvectors_nearest_centroid(tmp_path):
    x = torch.randn(120, 12, generator=torch.Generator().manual_seed(0))
    entry = pq_tokens(x, subspaces=3, codebook_size=8, cache_dir=str(tmp_path), name="x")
    codes, centroids = entry["codes"], entry["centroids"]
    assert codes.shape == (120, 3) and centroids.shape == (8, 12)
    assert codes.min() >= 0 and codes.max() < 8
    for j in range(3):
        brute = torch.cdist(x[:, 4 * j:4 * j + 4], centroids[:, 4 * j:4 * j + 4]).argmin(1)
        assert torch.equal(codes[:, j], brute)


def test_items_with_identical_features_get_identical_tokens_and_vectors(tmp_path):
    ds = checkerboard()
    features = {m: ds.features[m].clone() for m in ds.modalities}
    for f in features.values():
        f[7] = f[3]
    ds.features = features
    cfg = motor_config(tmp_path)
    tokens = item_tokens(cfg, ds)
    for codes in tokens.values():
        assert torch.equal(codes[7], codes[3])
    rep = build_item_representation(cfg, ds, 8)
    out = rep()
    torch.testing.assert_close(out[7], out[3])
    assert not torch.allclose(out[7], out[4])


def test_tokenisation_is_cached_on_disk_and_keyed_by_features_and_settings(tmp_path, monkeypatch):
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    first = pq_tokens(x, 2, 4, cache_dir=str(tmp_path), name="f")
    files = list((tmp_path / "motor_pq").glob("f-*.pt"))
    assert len(files) == 1

    def no_fit(*args, **kwargs):
        raise AssertionError("k-means ran although the tokens are cached")
    monkeypatch.setattr(item_repr.ProductQuantizer, "fit", no_fit)
    again = pq_tokens(x, 2, 4, cache_dir=str(tmp_path), name="f")
    assert torch.equal(again["codes"], first["codes"])
    monkeypatch.undo()

    changed = x.clone()
    changed[0, 0] += 1.0
    pq_tokens(changed, 2, 4, cache_dir=str(tmp_path), name="f")       # other features
    pq_tokens(x, 2, 4, seed=1, cache_dir=str(tmp_path), name="f")     # other seed
    pq_tokens(x, 4, 4, cache_dir=str(tmp_path), name="f")             # other subspaces
    assert len(list((tmp_path / "motor_pq").glob("f-*.pt"))) == 4


def test_token_tables_and_cross_network_receive_gradients(tmp_path):
    ds = checkerboard()
    rep = build_item_representation(motor_config(tmp_path), ds, 8)
    rep(torch.tensor([0, 1, 1, 5])).pow(2).sum().backward()
    for m, table in rep.token_emb.items():
        assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0, m
    assert all(p.grad is not None for p in rep.cross.parameters())


def test_rows_from_the_remembered_all_items_output_match_a_fresh_encoding(tmp_path):
    ds = checkerboard()
    rep = build_item_representation(motor_config(tmp_path), ds, 8)
    items = torch.tensor([2, 9, 2, 0])
    everything = rep()
    torch.testing.assert_close(rep(items), everything[items])
    torch.testing.assert_close(rep(items), rep.encode(items))
    # two backward passes without an optimiser step in between: the freed graph is never reused
    rep(items).sum().backward()
    rep(items).sum().backward()
    with torch.no_grad():
        rep.token_emb["image"].weight.add_(1.0)
    assert not torch.allclose(rep(items), everything[items])


def test_modal_specific_fusion_and_no_cross_layers_shapes(tmp_path):
    tokens = {"image": torch.randint(0, 4, (10, 3)), "text": torch.randint(0, 4, (10, 2))}
    for fusion in ("agnostic", "specific"):
        for layers in (0, 2):
            rep = MotorRepresentation(tokens, 4, 6, fusion=fusion, layers=layers)
            assert rep().shape == (10, 6) and rep(torch.tensor([1, 1])).shape == (2, 6)


def test_motor_defaults_keep_the_item_side_below_an_id_table_at_sports_scale():
    # sports: 18,357 items, one 384-d text modality; the default PQ settings and a 64-d embedding
    cfg = config_for("BPR", item_representation="motor")
    n_items, dim = 18357, 64
    assert cfg.pq_subspaces == 0                      # auto: one modality gets all the tokens
    codes = torch.randint(0, cfg.pq_codebook_size, (n_items, item_repr.auto_subspaces(1)),
                          generator=torch.Generator().manual_seed(0))
    rep = MotorRepresentation({"text": codes, "collision": torch.zeros(n_items, 1, dtype=torch.int64)},
                              cfg.pq_codebook_size, dim, layers=cfg.motor_layers)
    n_motor = sum(p.numel() for p in rep.parameters())
    assert item_repr.auto_subspaces(1) * cfg.pq_codebook_size * dim < n_motor < n_items * dim / 2
    # 16 graph tokens (motor_graph_tokens: 16, the sports measurement) keep it below the ID table
    graph = torch.randint(0, cfg.pq_codebook_size, (n_items, 16), generator=torch.Generator().manual_seed(1))
    with_graph = MotorRepresentation({"text": codes, "graph": graph}, cfg.pq_codebook_size, dim,
                                     layers=cfg.motor_layers)
    assert n_motor < sum(p.numel() for p in with_graph.parameters()) < n_items * dim * 0.7
    # and MOTOR's count does not grow with the catalogue
    bigger = MotorRepresentation({"text": torch.cat([codes, codes])}, cfg.pq_codebook_size, dim,
                                 layers=cfg.motor_layers)
    assert sum(p.numel() for p in bigger.parameters()) <= n_motor


def test_subspaces_need_not_divide_the_feature_dimension_but_cannot_exceed_it(tmp_path):
    tokens = item_tokens(motor_config(tmp_path, pq_subspaces=3), checkerboard())   # 16 = 6 + 5 + 5
    assert tokens["image"].shape == (30, 3)
    with pytest.raises(ConfigError, match="pq_subspaces=17 exceeds the image feature dimension 16"):
        item_tokens(motor_config(tmp_path, pq_subspaces=17), checkerboard())


def test_motor_on_an_id_only_dataset_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="MOTOR .* needs item features"):
        item_tokens(motor_config(tmp_path), checkerboard(modalities=()))


def test_single_modality_dataset_gets_one_token_table(tmp_path):
    rep = build_item_representation(motor_config(tmp_path), checkerboard(modalities=("text",)), 8)
    assert list(rep.token_emb) == ["text"] and rep().shape == (30, 8)
    assert np.isfinite(rep().detach().numpy()).all()


@pytest.mark.parametrize("key,value", [("pq_subspaces", -1), ("pq_codebook_size", 1), ("motor_layers", -1),
                                       ("motor_dropout", 1.0), ("motor_reg_weight", -0.1),
                                       ("motor_graph_tokens", -1), ("motor_graph_tokens", 65)])
def test_invalid_motor_settings_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        config_for("BPR", item_representation="motor", **{key: value})


def test_fitting_tokens_leaves_the_global_rng_alone(tmp_path):
    """Regression: the first build (PQ fit) and later ones (cache hit) must initialise alike."""
    torch.manual_seed(0)
    pq_tokens(torch.randn(40, 8), 2, 4, cache_dir=str(tmp_path), name="rng")
    after_fit = torch.rand(1)
    torch.manual_seed(0)
    pq_tokens(torch.randn(40, 8), 2, 4, cache_dir=str(tmp_path), name="rng")   # cache hit
    assert torch.equal(torch.rand(1), after_fit)


# ----------------------------------------------------------------------------- collisions (issue 15)
def test_collision_ranks_separate_near_identical_items_but_not_identical_ones():
    codes = torch.tensor([[1, 2], [1, 2], [1, 2], [1, 2], [3, 4], [3, 4]])
    features = torch.tensor([[0.0], [0.0], [1e-6], [2.0], [5.0], [5.0]])
    ranks = item_repr.collision_ranks(codes, features)
    assert ranks[0] == ranks[1]                                     # identical features: one vector
    assert len({int(ranks[0]), int(ranks[2]), int(ranks[3])}) == 3  # near-identical: told apart
    assert ranks[4] == ranks[5] == 0
    assert ranks.min() == 0 and ranks.max() == 2
    with_rank = torch.cat([codes, ranks[:, None]], 1)
    assert item_repr.colliding_items(codes) == 6
    assert item_repr.colliding_items(with_rank) == 4                # items 0,1 and 4,5: identical features


def test_near_identical_items_get_different_vectors_identical_ones_the_same(tmp_path, caplog):
    ds = checkerboard()
    features = {m: ds.features[m].clone() for m in ds.modalities}
    for f in features.values():
        f[7] = f[3]
        f[9] = f[3] + 1e-4                                           # same PQ tokens, other features
    ds.features = features
    with caplog.at_level("INFO", logger="src.common.nn.item_repr"):
        rep = build_item_representation(motor_config(tmp_path), ds, 8)
    assert "colliding items" in caplog.text and "item-side parameters" in caplog.text
    pq_rows = torch.cat([getattr(rep, f"rows_{m}") for m in rep.modalities], 1)
    assert torch.equal(pq_rows[9], pq_rows[3])
    assert rep.rows_collision[9] != rep.rows_collision[3] and rep.rows_collision[7] == rep.rows_collision[3]
    out = rep()
    torch.testing.assert_close(out[7], out[3])
    assert not torch.allclose(out[9], out[3])
    off = build_item_representation(motor_config(tmp_path, pq_collision_token=False), ds, 8)
    torch.testing.assert_close(off()[9], off()[3])                 # without the token they merge


def test_collisions_on_scientific_come_down_to_the_raw_duplicates(scientific, tmp_path):
    cfg = config_for("BPR", item_representation="motor", cache_dir=str(tmp_path))
    tokens = item_tokens(cfg, scientific)
    raw = torch.cat([scientific.features[m].float() for m in scientific.modalities], 1)
    pq_only = torch.cat([tokens[m] for m in scientific.modalities], 1)
    n_raw = item_repr.colliding_items(raw)
    assert item_repr.colliding_items(pq_only) > 5 * n_raw            # 8 x 64 PQ merges items (204 vs 12)
    assert item_repr.colliding_items(torch.cat(list(tokens.values()), 1)) == n_raw


# ----------------------------------------------------------------------------- neutral start (issue 15)
def pairwise_cosine(x):
    n = torch.nn.functional.normalize(x, dim=1)
    c = n @ n.T
    return float(c[~torch.eye(len(c), dtype=torch.bool)].mean())


def test_initial_output_has_the_scale_and_diversity_of_an_id_table(scientific, tmp_path):
    cfg = config_for("BPR", item_representation="motor", cache_dir=str(tmp_path))
    torch.manual_seed(0)
    motor = build_item_representation(cfg, scientific, 64)().detach()
    ids = build_item_representation(cfg.replace(item_representation="id"), scientific, 64)().detach()
    ratio = float(motor.pow(2).mean().sqrt() / ids.pow(2).mean().sqrt())
    assert 0.8 < ratio < 1.25, ratio                                # was 1.78 / 0.28 ~ 6.4
    assert pairwise_cosine(motor) < 0.1                             # was 0.27


def test_cross_network_starts_as_the_mean_of_token_embeddings_and_its_variants_differ(tmp_path):
    tokens = {"image": torch.randint(0, 4, (10, 3)), "text": torch.randint(0, 4, (10, 2))}
    torch.manual_seed(0)
    pooled = MotorRepresentation(tokens, 4, 6, layers=2, channel_cross="pooled")
    per_token = MotorRepresentation(tokens, 4, 6, layers=2, channel_cross="token")
    per_token.load_state_dict(pooled.state_dict())
    mean = torch.cat(list(pooled.token_embeddings().values()), 0).mean(0)
    torch.testing.assert_close(pooled(), mean)
    torch.testing.assert_close(per_token(), mean)
    with torch.no_grad():                              # once the channel MLP is non-zero they differ:
        for rep in (pooled, per_token):                # mean_t g(x_t) != g(mean_t x_t)
            torch.manual_seed(1)
            for p in rep.cross.parameters():
                p.add_(0.5 * torch.randn_like(p))
    assert not torch.allclose(pooled(), per_token(), atol=1e-4)


def test_token_major_block_equals_the_token_axis_mlp_on_batch_major_tokens():
    """The block's token-major product form computes X + MLP_T(LN(X)^T)^T of the batch-major form."""
    torch.manual_seed(0)
    block = item_repr.TokenCrossBlock(n_tokens=5, dim=6)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p))          # the zero-initialised last layer would hide errors
    x = torch.randn(7, 5, 6)                      # (B, T, d)
    reference = x + block.token_mlp(block.norm(x).transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(block(x.transpose(0, 1).contiguous()).transpose(0, 1), reference)


def test_pooled_network_equals_blocks_then_mean_in_values_and_gradients():
    """The network's shortcut (the last block's mean taken without forming its output) is exact:
    values and every parameter's gradient match blocks -> mean over tokens -> channel MLP."""
    torch.manual_seed(0)
    net = item_repr.TokenCrossNetwork(n_tokens=5, dim=6, layers=2)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p))          # the zero-initialised last layers would hide errors
    x = torch.randn(5, 7, 6, requires_grad=True)  # (T, B, d)

    def plain(x):
        pooled = net.blocks(x).mean(0)
        return pooled + net.channel(pooled)

    weights = torch.randn(7, 6)
    outputs, grads = [], []
    for f in (net, plain):
        net.zero_grad()
        x.grad = None
        out = f(x)
        (out * weights).sum().backward()
        outputs.append(out.detach())
        grads.append([x.grad.clone()] + [p.grad.clone() for p in net.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1])
    for shortcut, reference in zip(*grads):
        torch.testing.assert_close(shortcut, reference)


# ----------------------------------------------------------------------------- memo (issue 15)
def test_memo_is_dropped_after_a_fused_optimizer_step(tmp_path):
    """A host that reads item vectors after an optimizer step whose loss did not backpropagate
    through the remembered output: the explicit notification makes the memo fresh."""
    from src.common.trainer import adam
    rep = build_item_representation(motor_config(tmp_path), checkerboard(), 8)
    rep.train()
    items = torch.arange(20)
    stale = rep()                                        # remembered, never backpropagated
    optimizer = adam(rep.parameters(), lr=0.1, weight_decay=0.0)
    rep.encode(torch.tensor([0, 1, 2])).pow(2).sum().backward()   # loss around the memo
    versions = [p._version for p in rep.parameters()]
    optimizer.step()
    if [p._version for p in rep.parameters()] == versions:          # fused Adam: counters unchanged,
        assert torch.equal(rep(items), stale[items])                # so the version check alone is stale
    rep.parameters_changed()
    fresh = rep(items)
    torch.testing.assert_close(fresh, rep.encode(items))
    assert not torch.allclose(fresh, stale[items])


def test_trainer_notifies_the_model_after_every_optimizer_step(tmp_path, monkeypatch):
    from src.common.trainer import Trainer
    ds = checkerboard()
    cfg = motor_config(tmp_path, train_batch_size=64)
    trainer = Trainer(cfg, ds)
    rep = next(m for m in trainer.model.modules() if isinstance(m, MotorRepresentation))
    calls = []
    monkeypatch.setattr(rep, "parameters_changed", lambda: calls.append(1))
    trainer.train_epoch(0)
    assert len(calls) == len(list(trainer.sampler)) > 0


def test_motor_reg_weight_adds_the_l2_of_the_batch_item_vectors_to_the_loss(tmp_path):
    """The trainer adds ``motor_reg`` = weight * L2 of the batch's MOTOR item vectors to any host's
    own terms; with weight 0 (the paper) or ID tables there is no such term."""
    from src.common.nn.losses import emb_reg
    from src.common.trainer import Trainer
    ds = checkerboard()
    trainer = Trainer(motor_config(tmp_path, train_batch_size=64, motor_reg_weight=0.5), ds)
    model = trainer.model
    rep = next(m for m in model.modules() if isinstance(m, MotorRepresentation))
    batch = next(iter(trainer.sampler))
    term = model.representation_losses(batch)["motor_reg"]
    torch.testing.assert_close(term, 0.5 * emb_reg(rep.encode(batch.pos), rep.encode(batch.neg)))
    assert term.requires_grad and float(term.detach()) > 0
    assert "motor_reg" in trainer.train_epoch(0)
    for cfg in (motor_config(tmp_path, train_batch_size=64), config_for("BPR", motor_reg_weight=0.5)):
        quiet = Trainer(cfg, ds)
        assert quiet.model.representation_losses(batch) == {} and "motor_reg" not in quiet.train_epoch(0)


def test_motor_reg_weight_shrinks_the_item_vectors(tmp_path):
    """Trained alike but for the weight, the penalised token network ends with smaller item vectors."""
    from src.common.trainer import Trainer
    norms = []
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        trainer = Trainer(motor_config(tmp_path, train_batch_size=64, learning_rate=0.05, motor_reg_weight=weight),
                          checkerboard())
        for epoch in range(5):
            trainer.train_epoch(epoch)
        rep = next(m for m in trainer.model.modules() if isinstance(m, MotorRepresentation))
        with torch.no_grad():
            norms.append(float(rep.encode().norm(dim=1).mean()))
    assert norms[1] < 0.8 * norms[0]


def test_auto_subspaces_split_a_fixed_token_budget_over_the_modalities(tmp_path):
    cfg = motor_config(tmp_path, pq_subspaces=0, pq_codebook_size=4)
    per_modality = item_repr.AUTO_TOKENS_PER_ITEM // 2
    both = item_tokens(cfg, checkerboard(dims=40))
    assert both["image"].shape == both["text"].shape == (30, per_modality)
    text_only = item_tokens(cfg, checkerboard(dims=40, modalities=("text",)))
    assert text_only["text"].shape == (30, item_repr.AUTO_TOKENS_PER_ITEM)
    narrow = item_tokens(cfg, checkerboard(dims=10, modalities=("text",)))   # never more than the dimension
    assert narrow["text"].shape == (30, 10)


# ----------------------------------------------------------------------------- graph tokens
def test_graph_factors_are_the_truncated_svd_of_the_normalised_interactions():
    rng = np.random.default_rng(0)
    dense = (rng.random((40, 25)) < 0.2).astype(np.float64)
    dense[:, 7] = 0                                                  # an item nobody trained on
    factors = item_repr.graph_factors(sp.csr_matrix(dense), rank=6)
    assert factors.shape == (25, 6) and factors.dtype == torch.float32
    assert torch.count_nonzero(factors[7]) == 0
    du, di = dense.sum(1), dense.sum(0)
    norm = dense / np.sqrt(np.maximum(du, 1))[:, None] / np.sqrt(np.maximum(di, 1))[None, :]
    _, s, vt = np.linalg.svd(norm)
    expected = vt[:6].T @ np.diag(s[:6]) @ vt[:6]                   # V S V^T: free of the sign of each vector
    np.testing.assert_allclose((factors @ factors.T).numpy(), expected, atol=1e-5)
    torch.testing.assert_close(item_repr.graph_factors(sp.csr_matrix(dense), rank=6), factors, rtol=0, atol=0)


def test_graph_tokens_tell_apart_items_with_equal_features_and_different_audiences(tmp_path, caplog):
    ds = checkerboard()                      # even users buy even items, odd users odd ones
    features = {m: ds.features[m].clone() for m in ds.modalities}
    for f in features.values():
        f[3] = f[2]                          # item 3 (odd audience) looks exactly like item 2 (even)
    ds.features = features
    plain = build_item_representation(motor_config(tmp_path), ds, 8)
    torch.testing.assert_close(plain()[3], plain()[2])               # content alone cannot tell them apart
    with caplog.at_level("INFO", logger="src.common.nn.item_repr"):
        rep = build_item_representation(motor_config(tmp_path, motor_graph_tokens=2), ds, 8)
    assert "image+text+graph x 4/4/2 tokens" in caplog.text
    assert rep.rows_graph.shape == (30, 2)
    assert not torch.equal(rep.rows_graph[3], rep.rows_graph[2])
    assert not torch.allclose(rep()[3], rep()[2])
    # the first graph sub-space holds the top factors, which split the two audiences: no even item
    # shares its first graph token with an odd one
    first = rep.rows_graph[:, 0]
    assert not set(first[0::2].tolist()) & set(first[1::2].tolist())


def test_graph_tokens_refuse_a_feature_modality_named_graph(tmp_path):
    with pytest.raises(ConfigError, match="modality named 'graph'"):
        item_tokens(motor_config(tmp_path, motor_graph_tokens=2), checkerboard(modalities=("graph",)))


def test_graph_factors_map_starts_neutral_and_learns_to_tell_apart_equal_features(tmp_path, caplog):
    """``motor_graph_factors``: item vector + A g_i. A starts at zero (the paper's output); after
    training, items with identical features and different audiences differ; the item side grows by
    only r x d. (A never-trained item's factors are zero: the truncated-SVD test above.)"""
    from src.common.trainer import Trainer
    ds = checkerboard()
    features = {m: ds.features[m].clone() for m in ds.modalities}
    for f in features.values():
        f[3] = f[2]
    ds.features = features
    torch.manual_seed(0)
    plain = build_item_representation(motor_config(tmp_path), ds, 8)
    torch.manual_seed(0)
    with caplog.at_level("INFO", logger="src.common.nn.item_repr"):
        rep = build_item_representation(motor_config(tmp_path, motor_graph_factors=True), ds, 8)
    rank = rep.graph.shape[1]
    assert f"+ a linear map of {rank} graph factors" in caplog.text
    assert rep.graph.shape[0] == 30 and 1 <= rank <= item_repr.GRAPH_RANK
    assert float(rep.graph.pow(2).mean()) == pytest.approx(1.0, rel=1e-4)      # unit RMS
    assert sum(p.numel() for p in rep.parameters()) == sum(p.numel() for p in plain.parameters()) + rank * 8
    with torch.no_grad():
        torch.testing.assert_close(rep(), plain())                              # neutral at the start
    torch.manual_seed(0)
    trainer = Trainer(motor_config(tmp_path, train_batch_size=64, learning_rate=0.05, motor_graph_factors=True), ds)
    for epoch in range(5):
        trainer.train_epoch(epoch)
    trained = next(m for m in trainer.model.modules() if isinstance(m, MotorRepresentation))
    assert trained.graph_map.weight.abs().sum() > 0
    with torch.no_grad():
        vectors = trained()
    assert not torch.allclose(vectors[3], vectors[2], atol=1e-4)


def test_graph_rank_sets_the_factors_per_item_and_enters_the_run_id_only_off_its_default(tmp_path):
    """``motor_graph_rank`` r: the SVD's rank, so r factors per item (r x d more parameters for the
    map) and at most r graph tokens; at its default (64, the rank before the key existed) a run
    keeps its run id, and without graph tokens or factors it changes nothing, so it is left out."""
    ds = checkerboard()
    reps = {r: build_item_representation(motor_config(tmp_path, motor_graph_factors=True, motor_graph_rank=r), ds, 8)
            for r in (3, 6)}
    assert reps[3].graph.shape == (30, 3) and reps[6].graph.shape == (30, 6)
    assert sum(p.numel() for p in reps[6].parameters()) - sum(p.numel() for p in reps[3].parameters()) == 3 * 8
    default = motor_config(tmp_path, motor_graph_factors=True).identity()
    assert motor_config(tmp_path, motor_graph_factors=True, motor_graph_rank=64).identity() == default
    assert motor_config(tmp_path, motor_graph_factors=True, motor_graph_rank=128).identity() != default
    assert motor_config(tmp_path, motor_graph_rank=128).identity() == motor_config(tmp_path).identity()
    with pytest.raises(ConfigError, match="motor_graph_tokens"):
        motor_config(tmp_path, motor_graph_tokens=9, motor_graph_rank=8)
    with pytest.raises(ConfigError, match="motor_graph_rank"):
        motor_config(tmp_path, motor_graph_rank=0)


def test_graph_factors_are_cached_on_disk_per_train_matrix_and_rank(tmp_path, caplog):
    """With a cache_dir the SVD runs once per (train matrix, rank): a fresh dataset object loads the
    same factors from disk; another rank or other train interactions compute their own."""
    fresh = item_repr.item_graph_factors(checkerboard(), 5)                   # no disk cache
    with caplog.at_level("INFO", logger="src.common.nn.item_repr"):
        first = item_repr.item_graph_factors(checkerboard(), 5, str(tmp_path))
        again = item_repr.item_graph_factors(checkerboard(), 5, str(tmp_path))
    assert "loaded from" in caplog.text and len(list((tmp_path / "motor_graph").iterdir())) == 1
    torch.testing.assert_close(first, fresh, rtol=0, atol=0)
    torch.testing.assert_close(again, fresh, rtol=0, atol=0)
    item_repr.item_graph_factors(checkerboard(), 4, str(tmp_path))
    other = checkerboard()
    other.train_matrix = other.train_matrix[::-1]                              # other users' rows
    item_repr.item_graph_factors(other, 5, str(tmp_path))
    assert len(list((tmp_path / "motor_graph").iterdir())) == 3


def test_factor_dropout_drops_whole_rows_in_training_only(tmp_path, caplog):
    """``motor_factor_dropout`` p: in training each item's factor term is either gone (the item is
    its tokens alone) or scaled by 1 / (1 - p); in evaluation every item has its full factors."""
    ds = checkerboard()
    with caplog.at_level("INFO", logger="src.common.nn.item_repr"):
        rep = build_item_representation(
            motor_config(tmp_path, motor_graph_factors=True, motor_factor_dropout=0.5), ds, 8)
    assert "dropped in training with p = 0.5" in caplog.text
    torch.manual_seed(0)
    with torch.no_grad():
        rep.graph_map.weight.normal_()
        full = rep.graph_map(rep.graph)
        rep.eval()
        tokens_only = rep() - full
        torch.testing.assert_close(rep(), tokens_only + full)          # evaluation: deterministic, full
        rep.train()
        dropped = kept = 0
        for _ in range(20):
            extra = rep() - tokens_only
            gone = extra.abs().amax(1) < 1e-5
            torch.testing.assert_close(extra[~gone], 2 * full[~gone], rtol=1e-4, atol=1e-5)
            dropped, kept = dropped + int(gone.sum()), kept + int((~gone).sum())
    assert 0.35 < dropped / (dropped + kept) < 0.65
    with pytest.raises(ConfigError, match="motor_factor_dropout"):
        motor_config(tmp_path, motor_factor_dropout=1.0)

"""BM3's defining property: it learns without negative samples."""
import torch

from src.common.eval.evaluator import Evaluator, popularity_scores
from src.common.data.sampler import Batch, BPRSampler
from src.common.trainer import build_model, Trainer

from tests.conftest import checkerboard, config_for


def loss_and_grads(model, batch, seed=0):
    torch.manual_seed(seed)   # the same dropout masks for both calls
    model.zero_grad()
    parts = model.calculate_loss(batch)
    sum(parts.values()).backward()
    return parts, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_bm3_loss_and_gradients_do_not_depend_on_the_negatives():
    ds = checkerboard()
    model = build_model(config_for("BM3", embedding_size=16), ds)
    model.train()
    batch = next(iter(BPRSampler(ds.train.users, ds.train.items, ds.n_items, 64, seed=0)))
    parts, grads = loss_and_grads(model, batch)
    # other negatives, and negatives that would fail if they were ever used as an index
    for neg in ((batch.neg + 1) % ds.n_items, torch.full_like(batch.neg, 10 ** 9)):
        parts_2, grads_2 = loss_and_grads(model, Batch(batch.users, batch.pos, neg))
        assert parts_2.keys() == parts.keys() == {"reconstruct", "align", "mask", "reg"}
        for k in parts:
            torch.testing.assert_close(parts_2[k], parts[k], rtol=0, atol=0)
        assert grads_2.keys() == grads.keys()
        for n in grads:
            torch.testing.assert_close(grads_2[n], grads[n], rtol=0, atol=0)


def test_bm3_learns_the_checkerboard_without_negatives():
    ds = checkerboard(n_users=40, n_items=30, seed=1)
    cfg = config_for("BM3", n_layers=1, reg_weight=0.01, dropout=0.3, learning_rate=0.01,
                     train_batch_size=64, embedding_size=16)
    trainer = Trainer(cfg, ds)
    for epoch in range(40):
        trainer.train_epoch(epoch)
    trainer.model.eval()
    with torch.no_grad():
        scores = trainer.model.full_sort_predict(torch.arange(ds.n_users))
    scores[torch.as_tensor(ds.train_matrix.toarray(), dtype=torch.bool)] = -float("inf")
    same_parity = (scores.argmax(1) % 2 == torch.arange(ds.n_users) % 2).float().mean()
    assert same_parity > 0.9


def test_bm3_learns_on_scientific(scientific):
    result = Trainer(config_for("BM3", epochs=30, stopping_step=100), scientific).fit()
    assert result.history[-1]["reconstruct"] < result.history[0]["reconstruct"]
    popular = Evaluator(scientific, ["recall"], [20]).evaluate(popularity_scores(scientific), "test")
    assert result.test["recall@20"] > 1.2 * popular["recall@20"]


def _mean_item_cosine(model):
    model.eval()
    with torch.no_grad():
        _, h = model.encode()
    n = torch.nn.functional.normalize(h, dim=1)
    c = n @ n.T
    return float(c[~torch.eye(len(c), dtype=torch.bool)].mean())


def test_bm3_with_motor_keeps_item_vectors_spread_with_the_spread_term(tmp_path):
    """Issue 15: MOTOR-BM3 collapsed (all item vectors one direction: no negatives, and a shared
    Token Cross Network can map every item to one vector). The spread term keeps them apart."""
    ds = checkerboard(n_users=60, n_items=40, seed=1)

    def trained(spread_weight):
        cfg = config_for("BM3", item_representation="motor", pq_subspaces=4, pq_codebook_size=4,
                         cache_dir=str(tmp_path), n_layers=1, reg_weight=0.1, dropout=0.3, learning_rate=0.001,
                         train_batch_size=64, embedding_size=16, spread_weight=spread_weight)
        trainer = Trainer(cfg, ds)
        for epoch in range(20):
            trainer.train_epoch(epoch)
        return trainer.model

    assert _mean_item_cosine(trained(0.0)) > 0.9       # the collapse reproduces without the term
    assert _mean_item_cosine(trained(1.0)) < 0.2


def test_bm3_collapse_warning_only_where_it_applies(tmp_path, caplog):
    """The warning names the collapse of BM3 with MOTOR's Token Cross Network: not with IDs, not with
    mean-pooled tokens (motor_layers 0, the MOTOR suite's setting), not with the spread term."""
    ds = checkerboard(n_users=20, n_items=12, seed=1)
    base = {"pq_subspaces": 4, "pq_codebook_size": 4, "cache_dir": str(tmp_path), "embedding_size": 8}
    cases = [({"item_representation": "motor", **base}, True),
             ({"item_representation": "motor", "motor_layers": 0, **base}, False),
             ({"item_representation": "motor", "spread_weight": 1.0, **base}, False),
             ({}, False)]
    for overrides, warns in cases:
        caplog.clear()
        build_model(config_for("BM3", **overrides), ds)
        assert ("collapsed on scientific" in caplog.text) == warns, overrides

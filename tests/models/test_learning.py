"""Models must learn: on a known-answer toy and on the real scientific data."""
import numpy as np
import pytest
import torch

from src.common.eval.evaluator import Evaluator, popularity_scores
from src.common.trainer import Trainer

from tests.conftest import checkerboard, config_for


def test_checkerboard_known_answer_lightgcn_ranks_same_parity_first():
    ds = checkerboard(n_users=40, n_items=30, seed=1)
    cfg = config_for("LightGCN", n_layers=2, reg_weight=1e-4, learning_rate=0.01, epochs=60,
                     train_batch_size=64, embedding_size=16, stopping_step=100)
    trainer = Trainer(cfg, ds)
    first = trainer.train_epoch(0)
    for epoch in range(1, 60):
        last = trainer.train_epoch(epoch)
    assert last["bpr"] < first["bpr"] * 0.7
    trainer.model.eval()
    with torch.no_grad():
        scores = trainer.model.full_sort_predict(torch.arange(ds.n_users))
    scores[torch.as_tensor(ds.train_matrix.toarray(), dtype=torch.bool)] = -np.inf
    top = scores.argmax(1)
    same_parity = (top % 2 == torch.arange(ds.n_users) % 2).float().mean()
    assert same_parity > 0.9


@pytest.mark.parametrize("model,overrides", [
    ("LightGCN", {"n_layers": 2, "reg_weight": 1e-4}),
    ("VBPR", {"reg_weight": 1e-2}),
    ("BPR", {"reg_weight": 1e-2, "learning_rate": 0.01}),
    ("LATTICE", {"reg_weight": 0.0, "learning_rate": 1e-3}),
    ("FREEDOM", {"dropout": 0.8, "reg_weight": 1e-4}),
])
def test_short_run_on_scientific_beats_most_popular(scientific, model, overrides):
    cfg = config_for(model, epochs=25, stopping_step=100, **overrides)
    trainer = Trainer(cfg, scientific)
    result = trainer.fit()
    losses = [h["bpr"] for h in result.history]
    assert losses[-1] < losses[0]
    pop = Evaluator(scientific, ["recall"], [20]).evaluate(popularity_scores(scientific), "test")
    assert result.test["recall@20"] > pop["recall@20"] * 1.2, (result.test["recall@20"], pop["recall@20"])

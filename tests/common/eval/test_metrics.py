"""Metrics against values worked out by hand, and the evaluator's masking and views."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from src.common.data.dataset import Dataset
from src.common.eval.evaluator import Evaluator, degree_buckets, popularity_scores
from src.common.eval.metrics import METRICS, parse_metric_name


def test_metrics_on_a_hand_worked_top3_table():
    # 4 users, top-3 lists; 1 = relevant. n_rel = number of relevant items of each user.
    hits = torch.tensor([[1, 0, 1],    # 2 relevant in all, both found
                         [0, 0, 0],    # 1 relevant, missed
                         [0, 1, 0],    # 3 relevant, one at rank 2
                         [1, 1, 1]], dtype=torch.float)  # 5 relevant, top 3 all hits
    n_rel = torch.tensor([2.0, 1.0, 3.0, 5.0])
    k = 3
    recall = METRICS["recall"](hits, n_rel, k)
    assert recall.tolist() == pytest.approx([1.0, 0.0, 1 / 3, 3 / 5])
    precision = METRICS["precision"](hits, n_rel, k)
    assert precision.tolist() == pytest.approx([2 / 3, 0.0, 1 / 3, 1.0])
    hit = METRICS["hit"](hits, n_rel, k)
    assert hit.tolist() == [1.0, 0.0, 1.0, 1.0]
    d = [1 / math.log2(r + 1) for r in (1, 2, 3)]
    ndcg = METRICS["ndcg"](hits, n_rel, k)
    assert ndcg.tolist() == pytest.approx([(d[0] + d[2]) / (d[0] + d[1]), 0.0, d[1] / sum(d), 1.0])
    ap = METRICS["map"](hits, n_rel, k)
    # user 0: (1/1 + 2/3) / min(3, 2); user 2: (1/2) / 3; user 3: (1 + 1 + 1) / 3
    assert ap.tolist() == pytest.approx([(1 + 2 / 3) / 2, 0.0, 0.5 / 3, 1.0])


def test_cutoff_smaller_than_list_uses_prefix():
    hits = torch.tensor([[0.0, 1.0, 1.0]])
    assert METRICS["recall"](hits, torch.tensor([2.0]), 1).item() == 0.0
    assert METRICS["recall"](hits, torch.tensor([2.0]), 2).item() == 0.5


def test_parse_metric_name():
    assert parse_metric_name("Recall@20") == ("recall", 20)
    assert parse_metric_name("cold/ndcg@10") == ("ndcg", 10)
    with pytest.raises(ValueError, match="bad metric name"):
        parse_metric_name("auc@20")


def _tiny_eval_dataset():
    # user 0: train {0}, valid {1}, test {2}; user 1: train {0, 3}, valid {2}, test {4}
    rows = [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, 0), (1, 3, 0), (1, 2, 1), (1, 4, 2)]
    df = pd.DataFrame(rows, columns=["userID", "itemID", "x_label"])
    return Dataset.from_frame("t", df, cold_threshold=2)


def test_train_items_masked_for_valid_and_train_plus_valid_for_test():
    ds = _tiny_eval_dataset()
    ev = Evaluator(ds, ["recall", "hit"], [1], device="cpu")
    # scores put train and valid items on top; masking must push the target to rank 1
    base = torch.tensor([[9.0, 8.0, 7.0, 0.0, 0.0],
                         [9.0, 0.0, 8.0, 9.5, 7.0]])
    score = lambda users: base[users]
    valid = ev.evaluate(score, "valid")
    assert valid["recall@1"] == 1.0          # user 0: item 0 masked -> item 1 first; user 1: 0, 3 masked -> 2
    test = ev.evaluate(score, "test")
    assert test["recall@1"] == 1.0           # user 0: 0 and 1 masked -> 2; user 1: 0, 3, 2 masked -> 4


def test_cold_view_counts_only_cold_relevant_items():
    ds = _tiny_eval_dataset()   # train degrees: item0 = 2, item3 = 1, others 0; threshold 2
    ev = Evaluator(ds, ["recall"], [1], device="cpu")
    assert "zero" in ev.views   # items 2 and 4 have no train interaction
    score = lambda users: torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])[users]
    test = ev.evaluate(score, "test")
    assert test["cold/n_users"] == 2 and test["cold/recall@1"] == 0.5
    assert test["zero/recall@1"] == 0.5


def test_evaluator_rejects_wrong_score_shape():
    ds = _tiny_eval_dataset()
    ev = Evaluator(ds, ["recall"], [1])
    with pytest.raises(ValueError, match="expected"):
        ev.evaluate(lambda users: torch.zeros(len(users), 3), "test")


def test_batched_evaluation_equals_one_batch(tiny):
    torch.manual_seed(0)
    table = torch.randn(tiny.n_users, tiny.n_items)
    one = Evaluator(tiny, ["recall", "ndcg", "map"], [5, 10], batch_size=10_000).evaluate(lambda u: table[u])
    many = Evaluator(tiny, ["recall", "ndcg", "map"], [5, 10], batch_size=7).evaluate(lambda u: table[u])
    assert one == pytest.approx(many)


def test_popularity_ranks_by_train_degree():
    ds = _tiny_eval_dataset()
    scores = popularity_scores(ds)(torch.tensor([0, 1]))
    assert scores[0].argmax().item() == 0 and scores.shape == (2, 5)


def test_degree_buckets_partition_items():
    deg = np.array([0, 1, 4, 5, 9, 10, 19, 20, 300])
    views = degree_buckets(deg)
    assert list(views) == ["deg0", "deg1-4", "deg5-9", "deg10-19", "deg20+"]
    assert np.stack(list(views.values())).sum(0).tolist() == [1] * len(deg)

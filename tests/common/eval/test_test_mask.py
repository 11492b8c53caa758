"""test_mask: with `train` (MMRec's protocol) a user's valid items stay ranked candidates at test time."""
import pandas as pd
import pytest
import torch

from src.common.config import ConfigError
from src.common.data.dataset import Dataset
from src.common.eval.evaluator import Evaluator
from src.common.experiment.results import run_id_for
from src.common.recommender import resolve


def two_users():
    # each user: train item u, valid item 2 + u, test item 4 + u (6 items)
    rows = [(u, i, label) for u in (0, 1) for i, label in ((u, 0), (2 + u, 1), (4 + u, 2))]
    return Dataset.from_frame("mask", pd.DataFrame(rows, columns=["userID", "itemID", "x_label"]))


def scores(users):
    """Every user: its valid item first, its test item second, its train item third."""
    out = torch.zeros(len(users), 6)
    for row, u in enumerate(users.tolist()):
        out[row, 2 + u], out[row, 4 + u], out[row, u] = 3.0, 2.0, 1.0
    return out


def test_the_valid_item_is_a_candidate_only_under_the_train_mask():
    ds = two_users()
    masked = Evaluator(ds, ["recall"], [1], views={}).evaluate(scores, "test")
    candidate = Evaluator(ds, ["recall"], [1], views={}, test_mask="train").evaluate(scores, "test")
    assert masked["recall@1"] == 1.0       # valid item masked: the test item is ranked first
    assert candidate["recall@1"] == 0.0    # valid item still ranked (first), pushing the test item to 2
    # the valid split masks train items under both protocols
    for mask in ("train", "train+valid"):
        assert Evaluator(ds, ["recall"], [1], views={}, test_mask=mask).evaluate(scores, "valid")["recall@1"] == 1.0
    with pytest.raises(ValueError, match="test_mask"):
        Evaluator(ds, ["recall"], [1], test_mask="valid")


def test_test_mask_is_a_validated_key_and_part_of_the_run_id():
    default = resolve("BPR", "scientific", {}).first()
    assert default.test_mask == "train+valid"
    explicit = resolve("BPR", "scientific", {"test_mask": "train+valid"}).first()
    mmrec = resolve("BPR", "scientific", {"test_mask": "train"}).first()
    assert run_id_for(default, "fp") == run_id_for(explicit, "fp") != run_id_for(mmrec, "fp")
    with pytest.raises(ConfigError, match="test_mask"):
        resolve("BPR", "scientific", {"test_mask": "valid"}).first()

"""per_user.npz: written by every run with a folder, loaded back user by user, means = result.json."""
import numpy as np
import pytest

from src.common.eval.per_user import FILENAME, load_per_user
from src.common.experiment.results import ResultsStore
from src.common.experiment.search import run_search
from src.common.recommender import resolve

from tests.conftest import checkerboard


def test_stored_per_user_means_are_the_recorded_test_metrics(tmp_path):
    ds = checkerboard(n_users=60, n_items=120, per_user=6)   # sparse: cold and unseen items
    space = resolve("BPR", "scientific", {"results_dir": str(tmp_path), "show_progress": False, "epochs": 2,
                                          "embedding_size": 8, "train_batch_size": 64, "threads": 1,
                                          "topk": [5, 10, 20], "metrics": ["recall", "ndcg", "precision"]})
    run_search(space, ds)
    run_dir, record = ResultsStore(tmp_path, "scientific").entries()[0]
    assert (run_dir / FILENAME).exists()
    per_user = load_per_user(run_dir)
    test = record["test"]
    # every averaged metric, overall and in each view (cold, degree buckets), has its per-user values
    averaged = {k for k in test if not k.endswith("n_users")}
    assert set(per_user) == averaged, averaged ^ set(per_user)
    assert "cold/recall@10" in averaged and "deg1-4/ndcg@20" in averaged, sorted(averaged)
    for key, (users, values) in per_user.items():
        view = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        assert users.dtype == np.int32 and values.dtype == np.float32
        assert len(users) == len(values) == test[f"{view}n_users"]
        assert np.all(np.diff(users) > 0)                       # ascending, no duplicates
        assert values.mean() == pytest.approx(test[key], abs=1e-6), key
    # the cold users are the test users with a cold test item
    all_users = per_user["recall@20"][0]
    cold_users = per_user["cold/recall@20"][0]
    assert set(cold_users) <= set(all_users)
    expected = {u for u, i in zip(ds.test.users, ds.test.items) if ds.cold_items[i]}
    assert set(cold_users.tolist()) == expected


def test_a_run_without_the_file_loads_as_none(tmp_path):
    assert load_per_user(tmp_path) is None

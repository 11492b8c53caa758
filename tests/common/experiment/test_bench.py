"""The benchmark runs (times are not asserted: machines are noisy)."""
import math

from src.common.experiment.bench import measure, measure_in_subprocess, replicate

from tests.conftest import checkerboard


def test_replicate_multiplies_users_items_and_edges_and_keeps_features_aligned():
    ds = checkerboard()
    big = replicate(ds, 3, rewire=0.2, seed=0)
    assert (big.n_users, big.n_items) == (3 * ds.n_users, 3 * ds.n_items)
    assert len(big.train) + len(big.valid) + len(big.test) <= 3 * (len(ds.train) + len(ds.valid) + len(ds.test))
    assert len(big.train) >= 3 * len(ds.train) * 0.95   # rewiring may create a few duplicates
    assert big.features["image"].shape == (3 * ds.n_items, ds.features["image"].shape[1])


def test_measure_in_process_and_in_a_fresh_process():
    m = measure("BPR", "scientific", epochs=1, warmup=0, threads=1, overrides={"reg_weight": 0.1})
    assert m.s_per_epoch > 0 and m.eval_s > 0 and m.params > 0 and not m.synthetic_features
    sub = measure_in_subprocess("LightGCN", "scientific", 1, 1, 0, 1,
                                {"n_layers": 1, "reg_weight": 1e-4}, timeout=300)
    assert sub.error == "" and sub.peak_rss_mib > 0 and not math.isnan(sub.s_per_epoch)
    bad = measure_in_subprocess("LightGCN", "scientific", 1, 1, 0, 1, {"no_such_key": 1}, timeout=300)
    assert "no_such_key" in bad.error

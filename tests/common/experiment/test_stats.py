"""Statistics on constructed cases whose answer is known."""
import math

import numpy as np
import pytest

from src.common.experiment.stats import holm, paired_difference, seed_average, seed_summary, tie_marks


def zero_inflated(n, rng, p_hit=0.2):
    """Per-user recall-like values: mostly 0, else a fraction in (0, 1]."""
    hits = rng.random(n) < p_hit
    return np.where(hits, rng.integers(1, 5, n) / 4, 0.0)


def test_seed_summary_is_the_t_interval():
    s = seed_summary([0.10, 0.12, 0.14])
    assert s.mean == pytest.approx(0.12) and s.std == pytest.approx(0.02)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)              # t_{0.975, 2}
    assert (s.ci_low, s.ci_high) == pytest.approx((0.12 - half, 0.12 + half))
    one = seed_summary([0.3])
    assert one.mean == 0.3 and math.isnan(one.std) and math.isnan(one.ci_low)


def test_identical_runs_are_never_significant():
    rng = np.random.default_rng(0)
    users = np.arange(500)
    v = zero_inflated(500, rng)
    r = paired_difference((users, v), (users, v.copy()))
    assert r.diff == 0 and r.p == 1.0 and (r.ci_low, r.ci_high) == (0, 0)
    marks = tie_marks((users, v), {"copy": (users, v.copy()), "again": (users, v.copy())})
    assert marks == {"copy": (True, 1.0), "again": (True, 1.0)}


def test_a_clearly_shifted_copy_is_significant_and_a_noisy_equal_one_is_not():
    rng = np.random.default_rng(1)
    users = np.arange(2000)
    a = zero_inflated(2000, rng)
    better = np.minimum(1.0, a + (rng.random(2000) < 0.15) * 0.25)  # some users gain a hit
    r = paired_difference((users, a), (users, better))
    assert r.p < 1e-6 and 0 < r.ci_low < r.diff < r.ci_high
    assert r.diff == pytest.approx(better.mean() - a.mean())
    # the same distribution, independently drawn per user: a null case (p is large for this seed)
    same = zero_inflated(2000, rng)
    assert paired_difference((users, a), (users, same)).p > 0.05
    marks = tie_marks((users, better), {"a": (users, a), "old": None})
    assert marks["a"][0] is False and marks["old"][0] is None and math.isnan(marks["old"][1])


def test_users_are_aligned_by_id_not_by_position():
    a = (np.array([1, 2, 3, 4]), np.array([0.0, 0.5, 1.0, 0.0]))
    b = (np.array([0, 2, 3, 4]), np.array([9.0, 0.5, 1.0, 0.0]))   # user 0 only in b; 2-4 equal
    r = paired_difference(a, b)
    assert r.n_users == 3 and r.diff == 0 and r.p == 1.0


def test_seed_average_averages_each_user_over_seeds():
    users, values = seed_average([(np.array([0, 1, 2]), np.array([0.0, 1.0, 0.5])),
                                  (np.array([0, 1, 2]), np.array([1.0, 1.0, 0.0]))])
    assert users.tolist() == [0, 1, 2] and values.tolist() == [0.5, 1.0, 0.25]


def test_holm_matches_the_step_down_rule():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(2)
    raw = rng.random(20) ** 3
    adj = holm(raw)
    order = np.argsort(raw)
    assert np.all(np.diff(adj[order]) >= 0)            # monotone in the raw p order
    assert np.all(adj >= raw) and np.all(adj <= 1)
    assert holm([0.5]).tolist() == [0.5] and holm([0.9, 0.8]).tolist() == [1.0, 1.0] and holm([0.2, 0.01]).tolist() == [0.2, 0.02]


def test_holm_keeps_a_result_that_bonferroni_would_lose():
    adj = holm([0.012, 0.02, 0.03])          # Bonferroni: 0.036, 0.06, 0.09
    assert (adj < 0.05).tolist() == [True, True, True]

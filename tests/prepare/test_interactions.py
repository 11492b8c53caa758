"""k-core, remapping and the splits, on hand-made and random interaction sets."""
import numpy as np
import pandas as pd
import pytest

from src.prepare.interactions import TEST, TRAIN, VALID, deduplicate, k_core, remap, split_labels


def naive_k_core(pairs, k):
    """Reference: remove under-k users/items one by one until none is left."""
    pairs = set(pairs)
    while True:
        users = pd.Series([u for u, _ in pairs]).value_counts()
        items = pd.Series([i for _, i in pairs]).value_counts()
        bad = {("u", u) for u, n in users.items() if n < k} | {("i", i) for i, n in items.items() if n < k}
        if not bad:
            return pairs
        pairs = {(u, i) for u, i in pairs if ("u", u) not in bad and ("i", i) not in bad}


def test_k_core_iterates_to_the_fixed_point():
    # u3 drops (1 interaction) -> item 2 falls to 1 -> drops -> u2 falls to 1 -> drops
    users = np.array([0, 0, 1, 1, 2, 2, 3])
    items = np.array([0, 1, 0, 1, 0, 2, 2])
    keep, rounds = k_core(users, items, 2, 2)
    assert keep.tolist() == [True, True, True, True, False, False, False]
    assert len(rounds) == 3 and sum(r.interactions for r in rounds) == 3


def test_k_core_matches_a_naive_reference_on_random_data():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 60, 700), rng.zipf(1.6, 700) % 80
    pairs = sorted(set(zip(users.tolist(), items.tolist())))
    u, i = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    keep, rounds = k_core(u, i, 4, 4)
    assert len(rounds) >= 2
    assert {p for p, kept in zip(pairs, keep) if kept} == naive_k_core(pairs, 4)


def test_remap_is_zero_based_in_sorted_raw_order():
    ids, raw = remap(pd.Series(["b", "a", "c", "a"]))
    assert ids.tolist() == [1, 0, 2, 0] and raw.tolist() == ["a", "b", "c"]


def test_deduplicate_keeps_the_earliest():
    df = pd.DataFrame({"user": ["a", "a", "a"], "item": ["x", "x", "y"], "timestamp": [5.0, 2.0, 1.0],
                       "line": [2, 3, 4], "rating": [1.0, 2.0, 3.0]})
    kept, dropped = deduplicate(df)
    assert dropped == 1 and kept["rating"].tolist() == [2.0, 3.0]


def random_interactions(seed=0, n_users=40, n_items=30):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), rng.integers(3, 12, n_users))
    items = rng.integers(0, n_items, len(users))
    time = rng.permutation(len(users))
    return users, items, time


def assert_no_leakage(users, labels):
    train_users = set(users[labels == TRAIN].tolist())
    assert set(users[labels != TRAIN].tolist()) <= train_users


def test_chrono_split_takes_each_users_latest_for_valid_and_test():
    users, items, time = random_interactions()
    labels, held = split_labels(users, time, "chrono", (0.8, 0.1, 0.1))
    assert len(held) == 0
    assert_no_leakage(users, labels)
    for u in np.unique(users):
        mine = users == u
        t, lab = time[mine], labels[mine]
        n = mine.sum()
        expect_test = max(1, int(np.floor(n * 0.1 + 0.5)))
        assert (lab == TEST).sum() == expect_test and (lab == VALID).sum() >= 1
        assert t[lab == TRAIN].max() < t[lab == VALID].min() <= t[lab == VALID].max() < t[lab == TEST].min()


def test_loo_holds_out_exactly_the_last_two():
    users, items, time = random_interactions(1)
    labels, _ = split_labels(users, time, "loo")
    for u in np.unique(users):
        mine = users == u
        order = np.argsort(time[mine])
        assert labels[mine][order][-2:].tolist() == [VALID, TEST]
        assert (labels[mine][order][:-2] == TRAIN).all()


def test_random_split_is_seeded_and_leak_free():
    users, items, time = random_interactions(2)
    a, _ = split_labels(users, time, "random", seed=3)
    b, _ = split_labels(users, time, "random", seed=3)
    c, _ = split_labels(users, time, "random", seed=4)
    assert (a == b).all() and (a != c).any()
    assert_no_leakage(users, a)


def test_users_with_fewer_than_three_interactions_stay_in_train():
    labels, _ = split_labels(np.array([0, 0, 1, 1, 1]), np.arange(5), "chrono")
    assert labels.tolist() == [TRAIN, TRAIN, TRAIN, VALID, TEST]


def test_cold_split_keeps_held_out_items_out_of_training():
    users, items, time = random_interactions(3, n_users=80, n_items=40)
    labels, held = split_labels(users, time, "cold", (0.8, 0.1, 0.1), items=items, cold_item_share=0.25, seed=0)
    assert len(held) == 10
    is_held = np.isin(items, held)
    assert (labels[is_held] != TRAIN).all()                         # strict: never trained on
    assert set(items[labels == TRAIN].tolist()).isdisjoint(held.tolist())
    valid_items = set(items[is_held & (labels == VALID)].tolist())
    test_items = set(items[is_held & (labels == TEST)].tolist())
    assert valid_items and test_items and valid_items.isdisjoint(test_items)
    warm = ~is_held                                                 # the rest is split per user in time
    assert_no_leakage(users[warm], labels[warm])


def test_cold_split_needs_two_held_out_items():
    with pytest.raises(ValueError, match="needs at least 2"):
        split_labels(np.array([0, 0, 0]), np.arange(3), "cold", items=np.array([0, 1, 2]), cold_item_share=0.1)

"""BPR triples: negatives are never the user's train items; ``negatives: trained`` keeps items
without train interactions (new at test time) out of them."""
import numpy as np
import pytest

from src.common.data.sampler import BPRSampler


def triples(negatives: str, seed: int = 0):
    rng = np.random.default_rng(1)
    users = rng.integers(0, 30, 600)
    items = rng.integers(0, 40, 600)          # items 40..49 never in training
    sampler = BPRSampler(users, items, 50, 128, seed=seed, negatives=negatives)
    batches = [b for _ in range(5) for b in sampler]
    cat = lambda f: np.concatenate([getattr(b, f).numpy() for b in batches])
    return users, items, cat("users"), cat("pos"), cat("neg")


@pytest.mark.parametrize("negatives", ["all", "trained"])
def test_negatives_are_not_the_users_train_items(negatives):
    users, items, u, p, n = triples(negatives)
    train = set(zip(users.tolist(), items.tolist()))
    assert not any((a, b) in train for a, b in zip(u.tolist(), n.tolist()))
    assert set(zip(u.tolist(), p.tolist())) <= train


def test_trained_negatives_leave_items_without_train_interactions_out():
    *_, n_all = triples("all")
    *_, n_trained = triples("trained")
    assert (n_all >= 40).any()                       # every item: the untrained ones are drawn too
    assert (n_trained < 40).all()                    # trained: never
    assert len(np.unique(n_trained)) == 40           # but every trained item still is
    assert np.array_equal(triples("trained", seed=3)[4], triples("trained", seed=3)[4])   # reproducible


def test_unknown_negatives_setting_is_an_error():
    with pytest.raises(ValueError, match="negatives must be all or trained"):
        BPRSampler(np.array([0]), np.array([0]), 2, 1, seed=0, negatives="popular")


def test_popularity_negatives_follow_the_train_degree():
    """``popularity`` 1: negatives in proportion to the train degree (items never trained are never
    drawn, a popular item much more often than a rare one); 0: the uniform stream, draw for draw."""
    rng = np.random.default_rng(0)
    users = rng.integers(0, 300, 400)
    items = np.where(np.arange(400) < 300, np.arange(400) % 3, 3 + np.arange(400) % 47)   # items 0-2: 100 each
    draws = lambda pop, seed=0: np.concatenate(
        [b.neg.numpy() for _ in range(20) for b in BPRSampler(users, items, 60, 64, seed=seed, popularity=pop)])
    popular, uniform = draws(1.0), draws(0.0)
    assert (popular < 50).all() and (uniform >= 50).any()           # items 50-59 have no train interaction
    share = lambda n: np.isin(n, [0, 1, 2]).mean()
    assert share(popular) > 0.5 and share(uniform) < 0.1             # 3 items with 75% of the interactions
    plain = np.concatenate([b.neg.numpy() for _ in range(20) for b in BPRSampler(users, items, 60, 64, seed=0)])
    assert np.array_equal(uniform, plain) and np.array_equal(draws(0.5, seed=4), draws(0.5, seed=4))
    with pytest.raises(ValueError, match="popularity"):
        BPRSampler(users, items, 60, 64, seed=0, popularity=1.5)

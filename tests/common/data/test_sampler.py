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

"""LGMRec's defining properties: hyper_num learnable hyperedges per modality, Gumbel noise and
dropout only in training (deterministic evaluation), the contrastive term needs two modalities."""
import torch

from src.common.nn import losses
from src.common.eval.evaluator import Evaluator, popularity_scores
from src.common.data.sampler import BPRSampler
from src.common.trainer import build_model, Trainer

from tests.conftest import checkerboard, config_for


def lgmrec(ds, **overrides):
    cfg = config_for("LGMRec", embedding_size=16, hyper_num=7, n_hyper_layer=2, keep_rate=0.5,
                     alpha=0.3, **overrides)
    return build_model(cfg, ds)


def test_lgmrec_hypergraph_has_hyper_num_hyperedges_per_modality():
    ds = checkerboard()
    model = lgmrec(ds).eval()
    with torch.no_grad():
        users, items, hyper = model.forward()
    assert list(hyper) == ["image", "text"]
    for user_dep, item_dep, edges in hyper.values():
        assert user_dep.shape == (ds.n_users, 7) and item_dep.shape == (ds.n_items, 7)
        assert edges.shape == (7, 16)
        # in eval, each node's dependencies are a distribution over the hyperedges
        torch.testing.assert_close(user_dep.sum(1), torch.ones(ds.n_users))
        torch.testing.assert_close(item_dep.sum(1), torch.ones(ds.n_items))
    assert users.shape == (ds.n_users, 16) and items.shape == (ds.n_items, 16)


def test_lgmrec_scores_are_deterministic_in_eval_and_noisy_in_training():
    ds = checkerboard()
    model = lgmrec(ds)
    everyone = torch.arange(ds.n_users)
    model.eval()
    with torch.no_grad():
        first = model.full_sort_predict(everyone)
    model.train()                       # drops the cached scores
    with torch.no_grad():
        noisy_1, noisy_2 = model.forward()[0], model.forward()[0]
    assert not torch.equal(noisy_1, noisy_2), "training draws Gumbel noise and dropout"
    model.eval()
    torch.manual_seed(123)              # a different RNG state changes nothing in eval
    with torch.no_grad():
        again = model.full_sort_predict(everyone)
    torch.testing.assert_close(again, first, rtol=0, atol=0)


def test_lgmrec_contrasts_modalities_only_when_there_are_two():
    ds = checkerboard()
    batch = next(iter(BPRSampler(ds.train.users, ds.train.items, ds.n_items, 64, seed=0)))
    both = lgmrec(ds).train().calculate_loss(batch)
    assert set(both) == {"bpr", "hcl", "reg"} and both["hcl"] > 0
    image_only = lgmrec(checkerboard(modalities=("image",))).train().calculate_loss(batch)
    assert set(image_only) == {"bpr", "reg"}


def test_lgmrec_learns_on_scientific(scientific):
    result = Trainer(config_for("LGMRec", epochs=5, stopping_step=100), scientific).fit()
    assert result.history[-1]["bpr"] < result.history[0]["bpr"]
    popular = Evaluator(scientific, ["recall"], [20]).evaluate(popularity_scores(scientific), "test")
    assert result.test["recall@20"] > 1.2 * popular["recall@20"]


def test_lgmrec_contrastive_term_counts_a_repeated_node_once_per_interaction():
    model = lgmrec(checkerboard()).eval()
    with torch.no_grad():
        (dep_a, _, edges_a), (dep_b, _, edges_b) = model.forward()[2].values()
        nodes = torch.tensor([3, 1, 3, 3, 0])
        every_row = losses.info_nce_candidates(dep_a[nodes] @ edges_a, dep_b @ edges_b, nodes, model.tau,
                                               reduction="sum")
        torch.testing.assert_close(model.hcl(nodes, dep_a, edges_a, dep_b, edges_b), every_row)

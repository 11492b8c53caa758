"""VBPR's batch step computes Eq. 2 as written: projecting each distinct item once and gathering
its features with index_select give the plain formula's loss and gradients (up to float rounding
of the differently shaped matmul), and the gathered rows are the indexed rows exactly."""
import torch

from src.common.data.sampler import BPRSampler
from src.common.nn import losses
from src.common.trainer import build_model

from tests.conftest import checkerboard, config_for


def plain_loss(model, batch):
    """Eq. 2 and the loss with plain indexing, every positive and negative projected separately."""
    def item(i):
        return torch.cat([model.item_emb(i), model.projection(model.features[i])], dim=1)   # [gamma_i; E f_i]

    u, pos, neg = model.user_emb(batch.users), item(batch.pos), item(batch.neg)
    return {"bpr": losses.bpr(u, pos, neg), "reg": model.reg_weight * losses.emb_reg(u, pos, neg)}


def loss_and_grads(model, loss_fn, batch):
    model.zero_grad()
    parts = loss_fn(batch)
    sum(parts.values()).backward()
    return parts, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_batch_loss_and_gradients_equal_the_plain_formula():
    ds = checkerboard(dims=64)
    model = build_model(config_for("VBPR", embedding_size=8, reg_weight=0.1), ds)
    batch = next(iter(BPRSampler(ds.train.users, ds.train.items, ds.n_items, 64, seed=0)))
    assert len(torch.unique(torch.cat([batch.pos, batch.neg]))) < 2 * len(batch.pos)   # items repeat
    fast, fast_grads = loss_and_grads(model, model.calculate_loss, batch)
    plain, plain_grads = loss_and_grads(model, lambda b: plain_loss(model, b), batch)
    assert fast.keys() == plain.keys() == {"bpr", "reg"}
    for k in fast:
        torch.testing.assert_close(fast[k], plain[k], rtol=1e-6, atol=0)
    for name, g in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], g, rtol=1e-5, atol=1e-8)
    items = torch.tensor([5, 0, 5, 29])
    assert torch.equal(model.item_vectors(items)[:, 8:], model.projection(model.features[items]))

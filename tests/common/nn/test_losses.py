"""Loss functions against their formulas, computed here by hand."""
import math

import pytest
import torch

from src.common.nn import losses


def test_norm_reg_is_unsquared_frobenius_over_rows_of_the_last():
    a = torch.tensor([[3.0, 4.0]])                 # ||a|| = 5
    b = torch.tensor([[1.0, 0.0], [0.0, 0.0]])     # ||b|| = 1, 2 rows
    assert losses.norm_reg(a, b).item() == pytest.approx((5 + 1) / 2)


def test_info_nce_candidates_by_hand():
    anchor = torch.tensor([[1.0, 0.0]])
    candidates = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])   # cosines 1, 0, -1
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + math.exp(0) + math.exp(-1 / t)))
    got = losses.info_nce_candidates(anchor, candidates, torch.tensor([0]), t)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_candidates_factored_equals_dense_in_value_and_gradient():
    torch.manual_seed(0)
    anchor = torch.randn(6, 8)
    left, right = torch.randn(20, 3, requires_grad=True), torch.randn(3, 8, requires_grad=True)
    targets = torch.randint(0, 20, (6,))
    dense = losses.info_nce_candidates(anchor, left @ right, targets, 0.2, "sum")
    grads_dense = torch.autograd.grad(dense, (left, right))
    factored = losses.info_nce_candidates(anchor, (left, right), targets, 0.2, "sum")
    grads_factored = torch.autograd.grad(factored, (left, right))
    torch.testing.assert_close(factored, dense)
    for g1, g2 in zip(grads_factored, grads_dense):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)
    # "sum" is B times "mean", and the sum of "none"
    mean = losses.info_nce_candidates(anchor, left @ right, targets, 0.2)
    torch.testing.assert_close(mean * 6, dense)
    per_row = losses.info_nce_candidates(anchor, left @ right, targets, 0.2, "none")
    assert per_row.shape == (6,)
    torch.testing.assert_close(per_row.sum(), dense)


def test_align_cosine_is_zero_for_parallel_vectors():
    a = torch.randn(4, 3)
    assert losses.align_cosine(a, 2 * a).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.align_cosine(a, -a).item() == pytest.approx(2.0, abs=1e-6)


def test_logsumexp_scores_matches_torch_and_has_the_right_gradient_in_blocks():
    torch.manual_seed(0)
    q = torch.randn(13, 3, dtype=torch.double, requires_grad=True)
    k = torch.randn(7, 3, dtype=torch.double, requires_grad=True)
    # block=2 -> 2 * 3 / 7 -> one query per block: the blocking is exercised
    torch.testing.assert_close(losses.logsumexp_scores(q, k, block=2), torch.logsumexp(q @ k.T, 1))
    assert torch.autograd.gradcheck(lambda q, k: losses.logsumexp_scores(q, k, block=2), (q, k))

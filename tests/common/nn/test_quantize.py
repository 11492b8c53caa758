"""Invariants of k-means, the codebook primitive and the residual / product quantisers."""
import math

import torch

from src.common.nn.quantize import Codebook, ProductQuantizer, ResidualQuantizer, kmeans, nearest


def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centers])
    found, assign = kmeans(x, 3, generator=g)
    assert torch.cdist(centers, found).min(1).values.max() < 0.2
    assert len(set(assign[:50].tolist())) == 1 and len(set(assign.tolist())) == 3


def test_codebook_initialises_on_first_training_batch_and_codes_in_range():
    book = Codebook(8, 4)
    assert not bool(book.is_initialised)
    q = book(torch.randn(64, 4))
    assert bool(book.is_initialised)
    assert q.codes.min() >= 0 and q.codes.max() < 8
    state = book.state_dict()
    assert "is_initialised" in state and "usage" in state


def test_commitment_is_zero_when_input_equals_a_code():
    book = Codebook(4, 3, kmeans_init=False)
    book.eval()
    q = book(book.embeddings.detach()[[2, 0, 2]])
    assert q.codes.tolist() == [2, 0, 2]
    assert q.commitment.item() < 1e-12 and q.codebook.item() < 1e-12


def test_unused_code_gets_replaced():
    book = Codebook(4, 2, kmeans_init=False, ema_decay=0.5, dead_threshold=0.5)
    with torch.no_grad():
        book.embeddings.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [100.0, 100.0]]))
    book.train()
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]).repeat(10, 1)
    for _ in range(5):
        book(x)
    assert book.replaced >= 1
    assert book.embeddings[3].abs().max() < 10   # the far-away code now sits among the data


def test_straight_through_gradient_reaches_input_and_codes():
    book = Codebook(4, 3)
    z = torch.randn(16, 3, requires_grad=True)
    book.train()
    q = book(z)
    (q.quantized.sum() + q.codebook + q.commitment).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert book.embeddings.grad is not None and book.embeddings.grad.abs().sum() > 0


def test_residual_quantisation_is_exact_when_codebooks_hold_the_residuals():
    rq = ResidualQuantizer(levels=3, size=4, dim=2, kmeans_init=False)
    level_codes = [torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, 0.0], [0.0, -4.0]]),
                   torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]),
                   torch.tensor([[0.25, 0.0], [0.0, 0.25], [-0.25, 0.0], [0.0, -0.25]])]
    with torch.no_grad():
        for book, c in zip(rq.levels, level_codes):
            book.embeddings.copy_(c)
    codes = torch.tensor([[0, 1, 2], [3, 3, 0], [1, 0, 1]])
    x = rq.decode(codes)
    rq.eval()
    assert torch.equal(rq.encode(x), codes)
    q = rq(x)
    torch.testing.assert_close(q.quantized, x)
    torch.testing.assert_close(rq.decode(rq.encode(x)), q.quantized)


def test_product_quantiser_assigns_each_subvector_its_nearest_centroid():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 8, generator=g)
    pq = ProductQuantizer(subspaces=4, size=16, dim=8).fit(x, seed=0)
    codes = pq.encode(x)
    assert codes.shape == (200, 4) and codes.max() < 16
    for m, book in enumerate(pq.books):
        part = x[:, 2 * m:2 * m + 2]
        brute = torch.cdist(part, book.embeddings).argmin(1)
        assert torch.equal(codes[:, m], brute)
        assert torch.equal(nearest(part, book.embeddings, batch_size=7), brute)
    same = torch.cat([x[:1], x[:1]])
    assert torch.equal(pq.encode(same)[0], pq.encode(same)[1])


def test_product_quantiser_splits_an_indivisible_dimension_into_near_equal_parts():
    import pytest
    g = torch.Generator().manual_seed(2)
    x = torch.randn(60, 10, generator=g)
    pq = ProductQuantizer(subspaces=4, size=8, dim=10).fit(x, seed=0)
    assert [book.embeddings.shape[1] for book in pq.books] == [3, 3, 2, 2]
    codes = pq.encode(x)
    for m, (lo, hi) in enumerate([(0, 3), (3, 6), (6, 8), (8, 10)]):
        assert torch.equal(codes[:, m], torch.cdist(x[:, lo:hi], pq.books[m].embeddings).argmin(1))
    assert pq.decode(codes).shape == (60, 10)
    with pytest.raises(ValueError, match="pq_subspaces=11 must lie in"):
        ProductQuantizer(subspaces=11, size=4, dim=10)


# ----------------------------------------------------------------------------- sparsity KL and the RQ-VAE
def test_sparsity_kl_is_zero_at_target_usage_and_positive_elsewhere():
    from src.common.nn.quantize import sparsity_kl
    rho = 0.25
    assert sparsity_kl(torch.full((4,), rho), rho).abs().item() < 1e-7
    for other in ([0.1, 0.4, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1], [0.0, 0.5, 0.5, 0.0]):
        assert sparsity_kl(torch.tensor(other), rho).item() > 1e-4
    # hand value for one code: 0.25 log(0.25/0.5) + 0.75 log(0.75/0.5)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert abs(sparsity_kl(torch.tensor([0.5]), rho).item() - expected) < 1e-6


def test_soft_code_usage_sums_to_one_and_follows_the_nearest_code():
    from src.common.nn.quantize import soft_code_usage
    dist = torch.tensor([[0.0, 100.0, 100.0], [0.0, 100.0, 100.0], [100.0, 0.0, 100.0]])
    usage = soft_code_usage(dist, temperature=1.0)
    torch.testing.assert_close(usage.sum(), torch.tensor(1.0))
    torch.testing.assert_close(usage, torch.tensor([2 / 3, 1 / 3, 0.0]), atol=1e-6, rtol=0)


def test_rqvae_gradients_reach_encoder_decoder_and_codebooks():
    from src.common.nn.quantize import RQVAE, soft_code_usage, sparsity_kl
    torch.manual_seed(0)
    x = torch.randn(64, 12)
    vae = RQVAE(12, 4, 16, levels=2, size=8)
    vae.set_input_stats(x)
    vae.train()
    out = vae(x)
    assert out.codes.shape == (64, 2) and out.recon.shape == (64,) and len(out.distances) == 2
    (out.recon + out.codebook + 0.25 * out.commitment).mean().backward()
    for name, p in [("encoder", vae.encoder[0].weight), ("decoder", vae.decoder[-1].weight)]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for book in vae.quantizer.levels:
        assert book.embeddings.grad.abs().sum() > 0
    # the sparsity term alone also trains the encoder and the codebooks (through soft assignments)
    vae.zero_grad()
    out = vae(x)
    sum(sparsity_kl(soft_code_usage(d), 0.05) for d in out.distances).backward()
    assert vae.encoder[0].weight.grad.abs().sum() > 0
    assert vae.quantizer.levels[0].embeddings.grad.abs().sum() > 0


def test_rqvae_decode_of_encode_equals_the_quantised_latent_in_eval():
    from src.common.nn.quantize import RQVAE
    torch.manual_seed(1)
    x = torch.randn(50, 6)
    vae = RQVAE(6, 3, 8, levels=3, size=4)
    vae.set_input_stats(x)
    vae.train()
    vae(x)                      # k-means initialisation on this batch
    vae.eval()
    codes = vae.encode(x)
    assert codes.min() >= 0 and codes.max() < 4
    torch.testing.assert_close(vae.decode_codes(codes), vae(x).quantized)

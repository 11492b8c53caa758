"""MoToRec: rarity weights, the ablation switches, codebook health and scoring brand-new items."""
import math

import numpy as np
import pytest
import torch

from src.cli.coldstart import without_items
from src.common.recommender import resolve
from src.common.data.sampler import BPRSampler
from src.common.trainer import Trainer, build_model
from src.models.motorec import rarity_weights

from tests.conftest import checkerboard

SMALL = {"embedding_size": 16, "hidden_dim": 32, "codebook_size": 8, "num_levels": 2, "rq_batch_size": 16,
         "n_layers": 2, "score_scale": 2.0, "train_batch_size": 64, "show_progress": False, "threads": 1}


def small_config(**extra):
    return resolve("MoToRec", "scientific", {**SMALL, **extra}).first()


def loss_parts(cfg, ds=None):
    ds = ds or checkerboard()
    model = build_model(cfg, ds)
    model.train()
    batch = next(iter(BPRSampler(ds.train.users, ds.train.items, ds.n_items, 64, seed=0)))
    return model, model.calculate_loss(batch)


def test_rarity_weights_hand_example():
    w = rarity_weights(np.array([0, 1, 2, 9, 10, 50]), threshold=10)
    expected = [1.0, 1 / math.log2(3), 0.5, 1 / math.log2(11), 1.0, 1.0]
    torch.testing.assert_close(w, torch.tensor(expected))


def test_ara_switch_sets_the_item_weights():
    on = build_model(small_config(cold_threshold=100), checkerboard())
    off = build_model(small_config(cold_threshold=100, use_ara=False), checkerboard())
    assert (on.ara_weight < 1).all()          # every item has 0 < degree < 100
    assert torch.equal(off.ara_weight, torch.ones_like(off.ara_weight))


def test_loss_terms_follow_the_switches():
    _, full = loss_parts(small_config())
    assert {"bpr", "cl", "recon", "commit", "sparsity", "reg"} <= set(full)
    assert full["sparsity"] > 0 and full["cl"] > 0
    _, no_sparsity = loss_parts(small_config(use_sparsity=False))
    assert "sparsity" not in no_sparsity and "recon" in no_sparsity
    _, no_cl = loss_parts(small_config(use_cl=False))
    assert "cl" not in no_cl
    _, no_rq = loss_parts(small_config(use_rqvae=False))
    assert not {"recon", "commit", "sparsity"} & set(no_rq)


def test_without_rqvae_items_come_from_continuous_features_not_codes():
    model, _ = loss_parts(small_config(use_rqvae=False))
    model.eval()
    before = model.full_sort_predict(torch.arange(4))
    model.codes_image.random_(0, 8)           # codes are not used at all
    model._cached_output = None
    torch.testing.assert_close(model.full_sort_predict(torch.arange(4)), before)
    assert model.code_table() == {}
    coded, _ = loss_parts(small_config())
    coded.eval()
    before = coded.full_sort_predict(torch.arange(4))
    coded.codes_image.copy_((coded.codes_image + 1) % 8)
    coded._cached_output = None
    assert not torch.allclose(coded.full_sort_predict(torch.arange(4)), before)


@pytest.mark.parametrize("fusion,has_concat,has_attn", [("hybrid", True, True), ("concat", True, False),
                                                        ("attention", False, True)])
def test_fusion_switch_selects_the_branches(fusion, has_concat, has_attn):
    model = build_model(small_config(fusion=fusion), checkerboard())
    assert (model.fusion.concat is not None) == has_concat
    assert (model.fusion.attn is not None) == has_attn


def test_single_modality_fuses_one_channel():
    model, parts = loss_parts(small_config(), checkerboard(modalities=("text",)))
    assert model.modalities == ["text"] and model.user_emb.weight.shape[1] == 2 * 16
    assert all(torch.isfinite(v) for v in parts.values())


def test_codebooks_start_from_kmeans_and_report_health():
    model, _ = loss_parts(small_config())
    for tok in model.tokenizers.values():
        assert all(bool(book.is_initialised) for book in tok.quantizer.levels)
    rows = model.codebook_health()
    assert len(rows) == 2 * 2 and all(0 < r["used"] <= 1 and r["perplexity"] >= 1 for r in rows)
    assert model.epoch_report().startswith("codes i1 used")


def test_new_items_are_scored_from_features_alone():
    full = checkerboard(n_users=40, n_items=32, per_user=8, seed=3)
    held = np.array([30, 31])
    ds, kept = without_items(full, held)
    assert ds.n_items == 30 and np.array_equal(kept, np.arange(30)) and ds.n_users == full.n_users
    new_features = {m: f[held] for m, f in full.features.items()}
    parities = held % 2
    cfg = small_config(learning_rate=0.01, epochs=40, stopping_step=100)
    trainer = Trainer(cfg, ds)
    for epoch in range(40):
        trainer.train_epoch(epoch)
    model = trainer.model
    model.eval()
    codes, vectors = model.new_item_vectors(new_features)
    assert codes["image"].shape == (2, 2) and vectors.shape == (2, 16)
    users, _ = model.cached_forward()
    top = torch.topk(vectors @ users.T, 10, dim=1).indices
    for row, parity in zip(top, parities):
        assert (row % 2 == parity).float().mean() >= 0.8, (row, parity)
    with pytest.raises(ValueError, match="new items need features"):
        model.new_item_vectors({"image": new_features["image"]})

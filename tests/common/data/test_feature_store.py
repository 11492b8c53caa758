"""The LMDB feature store: round trip with the .npy path, batch reads, and identical training."""
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from src.common.recommender import resolve
from src.common.data.dataset import DataError, load_dataset
from src.common.data.feature_store import StoreError, open_lmdb, write_lmdb
from src.common.trainer import Trainer
from tests.conftest import checkerboard


def write_folder(root, name="toy", ds=None):
    """A dataset folder (``.inter`` + ``.npy`` features) from an in-memory Dataset."""
    ds = ds or checkerboard(n_users=30, n_items=24, dims=6)
    folder = root / name
    folder.mkdir(parents=True)
    rows = [f"{u}\t{i}\t{label}" for label, part in enumerate((ds.train, ds.valid, ds.test))
            for u, i in zip(part.users.tolist(), part.items.tolist())]
    (folder / f"{name}.inter").write_text("userID\titemID\tx_label\n" + "\n".join(rows) + "\n")
    for m in ds.modalities:
        np.save(folder / f"{m}_feat.npy", ds.features[m].numpy())
    return folder


def config(root, name="toy", model=None, **over):
    return resolve(model, name, {"data_path": str(root), "show_progress": False, "threads": 1, **over}).first()


def test_rows_batches_and_tensor_equal_the_arrays(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(50, 7)).astype(np.float32)
    text = rng.normal(size=(50, 3)).astype(np.float32)
    write_lmdb(tmp_path / "s.lmdb", {"image": image, "text": text}, batch_rows=16)
    stores = open_lmdb(tmp_path / "s.lmdb")
    assert set(stores) == {"image", "text"} and stores["image"].shape == (50, 7)
    assert torch.equal(stores["image"].tensor(batch_rows=9), torch.from_numpy(image))
    index = np.array([49, 0, 7, 7, 3])                                   # any order, repeats allowed
    assert torch.equal(stores["text"].rows(index), torch.from_numpy(text[index]))
    assert torch.equal(stores["text"].rows(torch.tensor([2])), torch.from_numpy(text[[2]]))
    starts = [start for start, block in stores["image"].batches(20)]
    assert starts == [0, 20, 40]
    with pytest.raises(IndexError, match="item id 50 out of range"):
        stores["image"].rows([50])
    clone = pickle.loads(pickle.dumps(stores["text"]))                   # worker processes get stores too
    assert torch.equal(clone.rows([1, 2]), torch.from_numpy(text[[1, 2]]))


def test_item_codes_can_be_added_beside_the_features(tmp_path):
    write_lmdb(tmp_path / "s.lmdb", {"text": np.ones((4, 2), np.float32)})
    codes = np.array([[1, 2], [3, 4], [5, 6], [7, 8]], dtype=np.int64)
    write_lmdb(tmp_path / "s.lmdb", {"codes": codes}, role="codes", add=True)
    assert set(open_lmdb(tmp_path / "s.lmdb", role="feature")) == {"text"}
    assert torch.equal(open_lmdb(tmp_path / "s.lmdb", role="codes")["codes"].rows([3, 0]),
                       torch.from_numpy(codes[[3, 0]]))
    with pytest.raises(StoreError, match="already holds text"):
        write_lmdb(tmp_path / "s.lmdb", {"text": np.ones((4, 2), np.float32)}, add=True)


def test_non_finite_rows_are_refused_with_their_item(tmp_path):
    bad = np.ones((5, 2), np.float32)
    bad[3, 1] = np.inf
    with pytest.raises(StoreError, match=r"row 3 \(itemID 3\) holds NaN or inf"):
        write_lmdb(tmp_path / "s.lmdb", {"image": bad})
    assert not (tmp_path / "s.lmdb").exists()                            # nothing half-written is left
    with pytest.raises(StoreError, match="no manifest.json"):
        open_lmdb(tmp_path / "s.lmdb")


def test_lmdb_dataset_round_trips_the_npy_dataset(tmp_path, monkeypatch):
    folder = write_folder(tmp_path)
    from src.cli import convert
    assert convert.run(SimpleNamespace(dataset="toy", out=None, overrides=[f"data_path={tmp_path}"])) == 0
    from_npy = load_dataset(config(tmp_path))
    from_lmdb = load_dataset(config(tmp_path, feature_store="lmdb", feature_batch_rows=5))
    assert from_lmdb.modalities == from_npy.modalities == ["image", "text"]
    assert from_lmdb.stats() == from_npy.stats()
    for m in from_npy.modalities:
        assert torch.equal(from_lmdb.features[m], from_npy.features[m])
        assert torch.equal(from_lmdb.feature_stores[m].rows([3, 1]), from_npy.feature_stores[m].rows([3, 1]))
    assert from_lmdb.fingerprint != from_npy.fingerprint                 # results of the two are kept apart
    (folder / "image_feat.npy").unlink()                                 # the store no longer needs them
    assert load_dataset(config(tmp_path, feature_store="lmdb")).modalities == ["image", "text"]


def test_lmdb_store_must_exist_and_match_the_items(tmp_path):
    write_folder(tmp_path)
    with pytest.raises(DataError, match=r"no LMDB feature store at .*features.lmdb.*python main.py convert -d toy"):
        load_dataset(config(tmp_path, feature_store="lmdb"))
    write_lmdb(tmp_path / "toy" / "features.lmdb", {"text": np.zeros((5, 2), np.float32)})
    with pytest.raises(DataError, match="text has 5 rows but the dataset has 24 items"):
        load_dataset(config(tmp_path, feature_store="lmdb"))


def test_model_trained_from_lmdb_gets_the_npy_metrics(tmp_path):
    write_folder(tmp_path)
    write_lmdb(tmp_path / "toy" / "features.lmdb",
               {m: np.load(tmp_path / "toy" / f"{m}_feat.npy") for m in ("image", "text")})
    results = []
    for store in ("npy", "lmdb"):
        cfg = config(tmp_path, model="VBPR", feature_store=store, epochs=4, stopping_step=10, reg_weight=1e-3,
                     train_batch_size=64, embedding_size=8, feature_batch_rows=7)
        results.append(Trainer(cfg, load_dataset(cfg)).fit())
    assert results[0].valid == results[1].valid and results[0].test == results[1].test
    assert [h["bpr"] for h in results[0].history] == [h["bpr"] for h in results[1].history]


def test_assigning_dataset_features_replaces_the_stores():
    ds = checkerboard(n_users=10, n_items=8, dims=3)
    ds.features = {"text": torch.ones(8, 2)}                  # as the benchmark does for featureless data
    assert ds.modalities == ["text"] and ds.feature_stores["text"].shape == (8, 2)
    assert torch.equal(ds.features["text"], torch.ones(8, 2))

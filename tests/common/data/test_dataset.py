"""Dataset validation: every bad input gets a clear error naming the file, line or key."""
import numpy as np
import pandas as pd
import pytest

from src.common.recommender import resolve
from src.common.data.dataset import DataError, Dataset, load_dataset


def write_dataset(root, name="toy", rows=None, header="userID\titemID\tx_label", features=None):
    folder = root / name
    folder.mkdir(parents=True)
    rows = rows if rows is not None else ["0\t0\t0", "0\t1\t0", "0\t2\t1", "0\t3\t2",
                                           "1\t1\t0", "1\t2\t0", "1\t0\t1", "1\t3\t2"]
    (folder / f"{name}.inter").write_text("\n".join([header, *rows]) + "\n")
    for m, arr in (features or {}).items():
        np.save(folder / f"{m}_feat.npy", arr)
    return folder


def load(root, name="toy", **over):
    return load_dataset(resolve(None, name, {"data_path": str(root), **over}).first())


@pytest.fixture(autouse=True)
def _allow_tmp_datasets(monkeypatch, tmp_path):
    # datasets under tmp_path are "known" through data_path, not through src/configs/dataset
    import src.common.config as config
    monkeypatch.setattr(config, "known_datasets", lambda: ["toy"])


def test_loads_splits_features_and_degrees(tmp_path):
    write_dataset(tmp_path, features={"image": np.ones((4, 3), np.float32)})
    ds = load(tmp_path)
    assert (ds.n_users, ds.n_items) == (2, 4)
    assert len(ds.train) == 4 and len(ds.valid) == 2 and len(ds.test) == 2
    assert ds.modalities == ["image"] and ds.features["image"].shape == (4, 3)
    assert ds.item_degree.tolist() == [1, 2, 1, 0]


def test_missing_interaction_file(tmp_path):
    (tmp_path / "toy").mkdir()
    with pytest.raises(DataError, match=r"interaction file not found: .*toy.inter"):
        load(tmp_path)


def test_missing_column_names_file_and_columns(tmp_path):
    write_dataset(tmp_path, header="userID\titem\tx_label")
    with pytest.raises(DataError, match=r"toy.inter: missing column\(s\) \['itemID'\]"):
        load(tmp_path)


def test_non_integer_id_names_the_line(tmp_path):
    write_dataset(tmp_path, rows=["0\t0\t0", "0\tabc\t1", "0\t2\t2"])
    with pytest.raises(DataError, match=r"toy.inter, line 3: column 'itemID' must be a non-negative integer"):
        load(tmp_path)


def test_negative_id_names_the_line(tmp_path):
    write_dataset(tmp_path, rows=["0\t0\t0", "-1\t1\t1", "0\t2\t2"])
    with pytest.raises(DataError, match=r"line 3: column 'userID'"):
        load(tmp_path)


def test_bad_split_label(tmp_path):
    write_dataset(tmp_path, rows=["0\t0\t0", "0\t1\t3", "0\t2\t2"])
    with pytest.raises(DataError, match=r"line 3: x_label must be 0 \(train\), 1 \(valid\) or 2 \(test\)"):
        load(tmp_path)


def test_empty_split(tmp_path):
    write_dataset(tmp_path, rows=["0\t0\t0", "0\t1\t0", "0\t2\t2"])
    with pytest.raises(DataError, match=r"the valid split \(x_label=1\) has no interactions"):
        load(tmp_path)


def test_feature_rows_must_match_items(tmp_path):
    write_dataset(tmp_path, features={"text": np.ones((3, 5), np.float32)})
    with pytest.raises(DataError, match=r"text_feat.npy: has 3 rows but the dataset has 4 items"):
        load(tmp_path)


def test_nan_features_name_the_row(tmp_path):
    f = np.ones((4, 2), np.float32)
    f[2, 1] = np.nan
    write_dataset(tmp_path, features={"image": f})
    with pytest.raises(DataError, match=r"image_feat.npy: row 2 \(itemID 2\) holds NaN or inf"):
        load(tmp_path)


def test_item_id_out_of_declared_range(tmp_path):
    write_dataset(tmp_path)
    with pytest.raises(DataError, match=r"item id 3 is out of range for n_items=3"):
        load(tmp_path, n_items=3)


def test_duplicates_are_reported_and_dropped_keeping_train(tmp_path, caplog):
    write_dataset(tmp_path, rows=["0\t0\t0", "0\t1\t0", "0\t2\t1", "0\t1\t2", "0\t3\t2"])
    ds = load(tmp_path)
    assert "dropped 1 duplicate" in caplog.text
    assert ds.test.items.tolist() == [3] and 1 in ds.train.items.tolist()


def test_missing_feature_file_lets_id_models_run_but_names_file_for_multimodal(tmp_path):
    write_dataset(tmp_path)
    ds = load(tmp_path, feature_files={"image": "image_feat.npy"}, feature_help="Get it from X.")
    assert ds.modalities == []
    with pytest.raises(DataError, match=r"VBPR needs item features \(image\).*image_feat.npy.*Get it from X"):
        ds.require_features("VBPR")


def test_baby_runs_id_only_and_explains_missing_features():
    ds = load_dataset(resolve(None, "baby").first())
    assert (ds.n_users, ds.n_items) == (19445, 7050) and ds.modalities == []
    with pytest.raises(DataError, match="image_feat.npy.*MMRec"):
        ds.require_features("VBPR")


def test_splits_partition_the_interactions(scientific):
    pairs = [set(zip(s.users.tolist(), s.items.tolist())) for s in (scientific.train, scientific.valid, scientific.test)]
    assert not (pairs[0] & pairs[1]) and not (pairs[0] & pairs[2]) and not (pairs[1] & pairs[2])
    assert sum(map(len, pairs)) == len(scientific.train) + len(scientific.valid) + len(scientific.test)


def test_from_frame_validates_in_memory_input():
    df = pd.DataFrame({"userID": [0, 0, 0], "itemID": [0, 1, 2], "x_label": [0, 1, 2]})
    with pytest.raises(DataError, match="holds NaN or inf"):
        Dataset.from_frame("m", df, {"image": np.array([[1.0], [np.inf], [0.0]])})


_HUGE_ID_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a regression fails here, not the machine
import src.common.config as config
config.known_datasets = lambda: ["toy"]
from src.common.recommender import resolve
from src.common.data.dataset import DataError, load_dataset
try:
    load_dataset(resolve(None, "toy", {"data_path": sys.argv[1]}).first())
except DataError as e:
    print(e)
"""


def test_a_huge_user_id_is_an_error_naming_the_line_not_a_20_gb_allocation(tmp_path):
    import subprocess
    import sys
    from src.common.paths import ROOT
    rows = ["0\t0\t0", "0\t1\t0", "0\t2\t1", "0\t3\t2", "2000000000\t1\t0", "1\t2\t0", "1\t0\t1", "1\t3\t2"]
    write_dataset(tmp_path, rows=rows)
    out = subprocess.run([sys.executable, "-c", _HUGE_ID_SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert "toy.inter, line 6: userID 2000000000 is far beyond the 3 distinct userID values" in out.stdout, out.stderr


def test_ids_with_gaps_within_their_count_still_load(tmp_path):
    write_dataset(tmp_path, rows=["0\t0\t0", "0\t1\t0", "0\t2\t1", "0\t3\t2", "5\t1\t0", "5\t2\t0", "5\t0\t1", "5\t3\t2"])
    assert load(tmp_path).n_users == 6


def test_an_id_beyond_int64_is_an_error_naming_the_line(tmp_path):
    write_dataset(tmp_path, rows=["0\t0\t0", "0\t99999999999999999999999\t0", "0\t2\t1", "0\t3\t2"])
    with pytest.raises(DataError, match=r"toy.inter, line 3: column 'itemID' value '9+' is too large"):
        load(tmp_path)


def test_binary_inter_file_names_the_first_bad_line(tmp_path):
    folder = write_dataset(tmp_path)
    (folder / "toy.inter").write_bytes(b"userID\titemID\tx_label\n0\t1\t0\n\xff\xfe\x00\x01\x89PNG\n")
    with pytest.raises(DataError, match=r"toy.inter, line 3: not UTF-8 text"):
        load(tmp_path)


def test_feature_file_with_zero_columns_is_rejected(tmp_path):
    write_dataset(tmp_path, features={"image": np.zeros((4, 0), dtype=np.float32)})
    with pytest.raises(DataError, match=r"image_feat.npy: image features have 0 columns"):
        load(tmp_path)


def test_id_mapping_file_gives_source_ids_and_a_bad_line_is_named(tmp_path):
    folder = write_dataset(tmp_path)
    (folder / "i_id_mapping.csv").write_text("asin\titemID\nB1\t0\nB2\t1\nB3\t3\n")
    assert load(tmp_path).original_ids("item") == ["B1", "B2", "", "B3"]
    (folder / "i_id_mapping.csv").write_text("asin\titemID\nB1\t0\nB9\t9\n")
    with pytest.raises(DataError, match=r"i_id_mapping.csv, line 3: itemID '9' is not an id in 0..3"):
        load(tmp_path).original_ids("item")

"""The input surface: each bad input ends in one line naming the file, line or key, with exit
status 2, and nothing already written is lost."""
from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

import src.common.storage as storage
from src.cli import main
from src.cli.coldstart import read_features
from src.common.config import ConfigError, load_yaml
from src.common.data.feature_store import open_lmdb, write_lmdb
from src.common.errors import DataError
from src.prepare.raw import json_records, read_interactions


def write_tiny(root, name="tiny", n_users=12, n_items=9):
    folder = root / "data" / name
    folder.mkdir(parents=True)
    lines = ["userID\titemID\tx_label"]
    for u in range(n_users):
        for j in range(5):
            lines.append(f"{u}\t{(u + 2 * j) % n_items}\t{2 if j == 4 else 1 if j == 3 else 0}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return folder


def one_line_error(capsys) -> str:
    """The one ``error:`` line on stderr (log lines before it are fine; a traceback is not)."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_disk_or_read_only_results_folder_is_one_line_and_keeps_finished_runs(tmp_path, capsys,
                                                                                     monkeypatch, code):
    write_tiny(tmp_path)
    common = ["-m", "BPR", "-d", "tiny", "--set", f"data_path={tmp_path / 'data'}", f"results_dir={tmp_path / 'saved'}",
              "epochs=1", "threads=1", "show_progress=false"]
    assert main([*common, "reg_weight=0.1"]) == 0
    finished = list((tmp_path / "saved").rglob("result.json"))
    assert len(finished) == 1
    before = finished[0].read_text()
    capsys.readouterr()

    def failing_fsync(fd):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(storage.os, "fsync", failing_fsync)
    assert main([*common, "reg_weight=0.01"]) == 2
    line = one_line_error(capsys)
    assert os.strerror(code) in line and str(tmp_path / "saved") in line and "run the same command again" in line
    assert finished[0].read_text() == before, "the finished run's record is intact"
    assert not list((tmp_path / "saved").rglob("*.tmp")), "no half-written temporary files are left"


def test_a_binary_inter_file_is_one_line_with_status_2(tmp_path, capsys):
    folder = write_tiny(tmp_path)
    (folder / "tiny.inter").write_bytes(b"userID\titemID\tx_label\n0\t1\t0\n\x89PNG\r\n\x1a\n\xff\x00")
    assert main(["-m", "BPR", "-d", "tiny", "--set", f"data_path={tmp_path / 'data'}",
                 f"results_dir={tmp_path / 'saved'}"]) == 2
    assert "tiny.inter, line 3: not UTF-8 text" in one_line_error(capsys)


def test_a_negative_learning_rate_stops_before_any_run(tmp_path, capsys):
    write_tiny(tmp_path)
    assert main(["-m", "BPR", "-d", "tiny", "--set", f"data_path={tmp_path / 'data'}",
                 f"results_dir={tmp_path / 'saved'}", "learning_rate=-0.001"]) == 2
    assert "learning_rate must be positive, got -0.001 (learning_rate from --set)" in one_line_error(capsys)
    assert not (tmp_path / "saved").exists()


def test_yaml_that_is_not_utf8_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"learning_rate: 0.1\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="bad.yaml: not UTF-8 text"):
        load_yaml(bad)


@pytest.mark.parametrize("args, message", [
    (["-k", "0"], "-k 0: must be >= 1"),
    (["--users", "9-3"], "range 9-3 is empty"),
])
def test_recommend_arguments_are_checked_before_loading_a_run(capsys, args, message):
    argv = ["recommend", "--run", "no-such-run", "--users", "1", *args]
    assert main(argv) == 2
    assert message in one_line_error(capsys)


def test_keys_of_an_unknown_model(capsys):
    assert main(["keys", "-m", "NoSuchModel"]) == 2
    assert "unknown model 'NoSuchModel'" in one_line_error(capsys)


def test_coldstart_feature_files_of_strings_or_no_rows_are_rejected(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"]]))
    with pytest.raises(DataError, match="s.npy: text features must be numbers"):
        read_features([f"text={tmp_path / 's.npy'}"], {"text": 2})
    np.save(tmp_path / "e.npy", np.zeros((0, 2), dtype=np.float32))
    with pytest.raises(DataError, match=r"e.npy: text features must be \(n_new, 2\) with n_new >= 1"):
        read_features([f"text={tmp_path / 'e.npy'}"], {"text": 2})


def test_prepare_readers_name_the_line_of_binary_or_truncated_input(tmp_path):
    raw = tmp_path / "reviews.jsonl"
    raw.write_bytes(b'{"user": "a", "item": "x"}\n\xff\xfe binary\n')
    with pytest.raises(DataError, match="reviews.jsonl, line 2: not UTF-8 text"):
        list(json_records(raw))
    table = tmp_path / "ratings.csv"
    table.write_bytes(b"user,item,rating\na,x,5\n\xff,y,4\n")
    with pytest.raises(DataError, match="ratings.csv, line 3: not UTF-8 text"):
        read_interactions(table)
    gz = tmp_path / "reviews.jsonl.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00 truncated")
    with pytest.raises(DataError, match="reviews.jsonl.gz, after line 0: cannot read"):
        list(json_records(gz))


def test_an_lmdb_manifest_with_a_malformed_entry_names_it(tmp_path):
    store = tmp_path / "f.lmdb"
    write_lmdb(store, {"text": np.ones((3, 2), dtype=np.float32)})
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["arrays"]["text"]["dim"] = "two"
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="manifest.json: array 'text' needs n_rows >= 0, dim >= 1"):
        open_lmdb(store)


def test_item_text_tables_name_the_bad_line(tmp_path):
    from src.common.nn.tokens import read_item_text
    table = tmp_path / "item_text.tsv"
    table.write_text("itemID\ttext\n0\tred shoe\nx1\tblue hat\n")
    with pytest.raises(DataError, match=r"item_text.tsv, line 3: itemID 'x1' is not an integer"):
        read_item_text(table)
    table.write_bytes(b"itemID\ttext\n0\t\xff\xfe\n")
    with pytest.raises(DataError, match=r"item_text.tsv, line 2: not UTF-8 text"):
        read_item_text(table)


@pytest.mark.parametrize("args, expected", [
    (["--variant", "X"], "--variant needs LABEL MODEL"),
    ([], "name the variants with -m"),
    (["-m", "BPR", "--variant", "BPR", "BPR", "reg_weight=0.1"], "variant labels must differ"),
    (["-m", "BPR", "--rounds", "0"], "--rounds must be >= 1"),
    (["--variant", "a", "BPR", "no_such_key=1"], "no_such_key"),
])
def test_bench_steps_rejects_bad_variants_in_one_line(capsys, tmp_path, args, expected):
    assert main(["bench", "--steps", "-d", "scientific", "--out", str(tmp_path), *args]) == 2
    assert expected in one_line_error(capsys)


@pytest.mark.parametrize("args, expected", [
    (["--variant", "X"], "--variant needs LABEL MODEL"),
    (["-m", "BPR", "--variant", "BPR", "BPR", "reg_weight=0.1"], "variant labels must differ"),
    (["--variant", "a", "BPR", "no_such_key=1"], "no_such_key"),
])
def test_bench_epochs_rejects_bad_variants_before_measuring(capsys, tmp_path, args, expected):
    assert main(["bench", "-d", "scientific", "--epochs", "1", "--warmup", "0", "--out", str(tmp_path), *args]) == 2
    assert expected in one_line_error(capsys) and not list(tmp_path.iterdir())   # nothing measured or written

"""The degree-bucket report: ID vs MOTOR of one host, as a table and a PNG."""
from src.cli import build_parser
from src.common.experiment.results import bucket_table

def main(argv):
    """A command in this process, without main()'s logging setup (pytest owns the handlers)."""
    args = build_parser().parse_args(argv)
    return args.run(args)


BUCKETS = ["deg0", "deg1-4", "deg5-9", "deg10-19", "deg20+"]


def record(label, model, valid, test, run_id):
    return {"label": label, "model": model, "run_id": run_id, "swept": {},
            "config": {"valid_metric": "recall@20", "x": run_id}, "valid": {"recall@20": valid}, "test": test}


def test_bucket_table_takes_each_labels_best_valid_run_and_skips_runs_without_buckets():
    with_buckets = {f"{b}/recall@20": 0.1 * i for i, b in enumerate(BUCKETS)} | {"recall@20": 0.5, "n_users": 9}
    records = [record("LightGCN", "LightGCN", 0.2, dict(with_buckets), "a"),
               record("LightGCN", "LightGCN", 0.1, {k: 0.0 for k in with_buckets}, "b"),
               record("MOTOR-LightGCN", "LightGCN", 0.3, {"recall@20": 0.6}, "c"),   # an old record
               record("BPR", "BPR", 0.9, dict(with_buckets), "d")]
    table, labels = bucket_table(records, BUCKETS, ["recall@20"], models=["LightGCN"])
    assert labels == ["LightGCN"]
    assert table["bucket"].tolist() == [*BUCKETS, "all"]
    assert table["LightGCN recall@20"].tolist() == [0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5]


def test_buckets_command_compares_id_and_motor(tmp_path, capsys):
    common = ["--set", f"results_dir={tmp_path}", f"cache_dir={tmp_path}", "threads=1", "epochs=1",
              "reg_weight=0.1", "show_progress=false"]
    assert main(["train", "-m", "BPR", "-d", "scientific", *common]) == 0
    assert main(["train", "-m", "BPR", "-d", "scientific", *common, "item_representation=motor", "pq_codebook_size=16"]) == 0
    capsys.readouterr()
    assert main(["buckets", "-d", "scientific", "-m", "BPR", "--set", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| bucket |"))
    assert "| BPR recall@20 |" in header and "| MOTOR-BPR recall@20 |" in header
    assert "| deg1-4 |" in out and "| all |" in out
    png = tmp_path / "scientific" / "buckets-BPR.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "scientific" / "buckets-BPR.csv").exists()
    assert main(["leaderboard", "-d", "scientific", "--set", f"results_dir={tmp_path}"]) == 0
    board = capsys.readouterr().out
    assert "| BPR |" in board and "| MOTOR-BPR |" in board
    # both runs had epochs=1 (and MOTOR-BPR a codebook of 16): the commands say so; --current keeps none
    assert "- BPR: epochs=1 (today 1000)" in board and "- MOTOR-BPR: epochs=1 (today 1000), pq_codebook_size=16" in board
    assert main(["buckets", "-d", "scientific", "-m", "BPR", "--set", f"results_dir={tmp_path}"]) == 0
    assert "BPR's chosen config is not what today's defaults would train" in capsys.readouterr().out
    assert main(["buckets", "-d", "scientific", "-m", "BPR", "--current", "--set", f"results_dir={tmp_path}"]) == 1
    assert main(["buckets", "-d", "scientific", "-m", "BPR", "--current", "--set", f"results_dir={tmp_path}",
                 "epochs=1", "reg_weight=0.1"]) == 0
    out = capsys.readouterr().out
    assert "| BPR recall@20 |" in out and "MOTOR-BPR" not in out      # MOTOR-BPR's codebook is not today's

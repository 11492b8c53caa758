"""The commands a user types, run end to end on the shipped data."""
import json
import re
import subprocess
import sys

from src.common.paths import ROOT


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_train_prints_table_and_leaderboard_lists_models(tmp_path):
    common = ["--set", f"results_dir={tmp_path}", "threads=1", "epochs=3", "n_layers=1", "reg_weight=1e-4", "--no-progress"]
    out = run("-m", "LightGCN", "-d", "scientific", *common)
    assert "| recall@20 |" in out.stdout and "test cold" in out.stdout
    run_dirs = list((tmp_path / "scientific" / "LightGCN").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "run.log").read_text().count("epoch") >= 3
    again = run("-m", "LightGCN", "-d", "scientific", *common)
    assert "1 skipped" in again.stderr
    run("-m", "BPR", "-d", "scientific", "--set", f"results_dir={tmp_path}", "epochs=2",
        "reg_weight=0.1", "--no-progress")
    board = run("leaderboard", "-d", "scientific", "--set", f"results_dir={tmp_path}")
    assert "| LightGCN |" in board.stdout and "| BPR |" in board.stdout
    assert "cold/recall@20" in board.stdout
    assert "Holm" in board.stdout and re.search(r"\d\* \|", board.stdout)  # a column's best row is marked
    assert (tmp_path / "scientific" / "leaderboard.csv").exists()
    # the store keeps runs of other settings: the leaderboard names what differs, --current leaves them out
    assert "- LightGCN: epochs=3 (today 1000)" in board.stdout and "- BPR: epochs=2 (today 1000)" in board.stdout
    assert run("leaderboard", "-d", "scientific", "--current", "--set", f"results_dir={tmp_path}",
               check=False).returncode == 1                  # no run at today's defaults
    # a multi-model command's table ranks the runs it covers, not better-on-valid ones of other settings
    for path in (tmp_path / "scientific").glob("*/*/result.json"):
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "valid": {**record["valid"], "recall@20": 1.0}}))
    out = run("-m", "BPR,LightGCN", "-d", "scientific", "--set", f"results_dir={tmp_path}", "threads=1", "epochs=1",
              "n_layers=1", "reg_weight=0.1", "--no-progress").stdout
    rows = [line for line in out.splitlines() if line.startswith(("| BPR |", "| LightGCN |"))]
    assert len(rows) == 2 and not any("| 1.0000 |" in row for row in rows)


def test_unknown_key_is_a_one_line_error_listing_valid_keys():
    out = run("-m", "VBPR", "-d", "scientific", "--set", "learning_rat=0.1", check=False)
    assert out.returncode == 2
    assert out.stderr.startswith("error: --set: unknown config key 'learning_rat'")
    assert "learning_rate" in out.stderr and "Traceback" not in out.stderr


def test_multimodal_model_on_baby_names_the_missing_file(tmp_path):
    out = run("-m", "VBPR", "-d", "baby", "--set", "epochs=1", f"results_dir={tmp_path}", check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "image_feat.npy" in out.stderr and "MMRec" in out.stderr
    assert not (tmp_path / "baby").exists(), "no run folder for a run that cannot start"


def test_bench_epochs_of_a_model_and_a_labelled_variant(tmp_path):
    # one fresh process per row; the variant's overrides reach its config (BPR's reg_weight) and the table
    # (shown as the config read them: YAML's 1e-1 is the float 0.1)
    out = run("bench", "-d", "scientific", "-m", "BPR", "--variant", "BPR strong L2", "BPR", "reg_weight=1e-1",
              "--epochs", "1", "--warmup", "0", "--threads", "1", "--out", str(tmp_path))
    table = (tmp_path / "bench_scientific.csv").read_text().splitlines()
    assert table[1].startswith("variant,model,overrides,s_per_epoch")
    assert table[2].startswith("BPR,BPR,,") and table[3].startswith("BPR strong L2,BPR,reg_weight=0.1,")
    assert "| BPR strong L2 | BPR | reg_weight=0.1 |" in out.stdout
    s_per_epoch = [float(row.split(",")[3]) for row in table[2:]]
    assert all(s > 0 for s in s_per_epoch)

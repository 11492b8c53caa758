"""`runs` and `recommend` as a user types them, on a short real run of `scientific`."""
import pandas as pd

from tests.cli.test_cli import run


def test_train_list_recommend_and_export(tmp_path):
    store = f"results_dir={tmp_path}"
    run("-m", "LightGCN", "-d", "scientific", "--save-topk", "20", "--no-progress",
        "--set", store, "threads=1", "epochs=2", "n_layers=1", "reg_weight=1e-4")
    run_dir = next((tmp_path / "scientific" / "LightGCN").iterdir())
    assert (run_dir / "test_top20.tsv").exists()

    listing = run("runs", "-d", "scientific", "--set", store).stdout
    assert f"| {run_dir.name} | LightGCN | n_layers=1, reg_weight=0.0001 |" in listing
    assert "| yes | current |" in listing

    prefix = run_dir.name[:13]
    out = run("recommend", "--run", prefix, "--users", "3,17", "-k", "5", "--set", store, "threads=1").stdout
    user3 = out.split("user 3:")[1].split("user 17:")[0]
    rows = [line.split() for line in user3.splitlines()[2:] if line.strip()]
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert "Industrial & Scientific" in user3  # titles from item_text.tsv

    path = tmp_path / "topk.tsv"
    out = run("recommend", "--run", prefix, "--users", "all", "--out", str(path), "-k", "50",
              "--set", store, "threads=1", "show_progress=false").stdout
    top = pd.read_csv(path, sep="\t")
    assert list(top.columns) == ["userID", "rank", "itemID", "score"]
    assert top.userID.nunique() == 2928 and top.groupby("userID").size().max() == 50
    assert "wrote 146400 rows" in out

    bad = run("recommend", "--run", "LightGCN-0000", "--users", "1", "--set", store, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown run id 'LightGCN-0000'")
    assert len(bad.stderr.strip().splitlines()) == 1
    bad = run("recommend", "--run", prefix, "--users", "1,5000", "--set", store, "threads=1", check=False)
    assert bad.returncode == 2 and "error: unknown user id(s) 5000: user ids run from 0 to 2927" in bad.stderr
    assert "Traceback" not in bad.stderr

"""MoToRec's commands end to end on the shipped data: inspect, coldstart, ablation."""
import numpy as np

from src.common.paths import ROOT
from tests.cli.test_cli import run

FAST = ["threads=1", "epochs=2", "codebook_size=16", "num_levels=2", "n_layers=1", "score_scale=2.0",
        "hidden_dim=32", "gamma=0.05", "tokenizer_epochs=1", "lambda_cl=0.01"]


def test_inspect_coldstart_and_ablation_commands(tmp_path):
    common = ["--set", f"results_dir={tmp_path}", *FAST]
    run("-m", "MoToRec", "-d", "scientific", *common, "--no-progress")
    log = next((tmp_path / "scientific" / "MoToRec").glob("*/run.log")).read_text()
    assert "codes i1 used" in log and "dead" in log and "churn" in log   # codebook health, code churn per epoch

    out = run("inspect", "-d", "scientific", "--code", "v:3", "--code", "t:*-5", "--item", "0",
              "--set", f"results_dir={tmp_path}", "threads=1").stdout
    assert "## code v:3 (image" in out and "most frequent words:" in out
    assert "## item 0" in out and "items sharing most codes" in out
    codes = next((tmp_path / "scientific" / "MoToRec").glob("*/codes.tsv")).read_text().splitlines()
    assert codes[0] == "itemID\tcodes" and len(codes) == 1586 and codes[1].startswith("0\tv:")

    feats = {m: np.load(ROOT / "data" / "scientific" / f"{m}_feat.npy")[:3] for m in ("image", "text")}
    paths = []
    for m, f in feats.items():
        np.save(tmp_path / f"new_{m}.npy", f)
        paths.append(f"{m}={tmp_path / f'new_{m}.npy'}")
    out = run("coldstart", "-d", "scientific", "--features", *paths, "--top", "5",
              "--set", f"results_dir={tmp_path}", "threads=1").stdout
    assert out.count("new item ") == 3 and "top users (score)" in out and "codes v:" in out
    bad = run("coldstart", "-d", "scientific", "--features", paths[0], "--set", f"results_dir={tmp_path}",
              check=False)
    assert bad.returncode == 2 and "also needs ['text']" in bad.stderr

    out = run("ablation", "-d", "scientific", "--only", "MoToRec,MoToRec w/o CL", "--no-progress",
              "--set", f"results_dir={tmp_path}", *FAST, "seed=[999,1]").stdout
    assert "| MoToRec |" in out and "| MoToRec w/o CL |" in out and "cold N@20" in out and " ± " in out
    assert "ΔR@20 (p)" in out and "Δcold N@20 (p)" in out   # the variant tested against the full model


def test_ablation_marks_a_variant_only_when_it_differs_from_the_full_model():
    from src.cli.ablation import versus_full
    rng = np.random.default_rng(0)
    users = np.arange(500)
    base = rng.random(500)

    def runs(values):   # two seeds with the same per-user values
        return [{"recall@20": (users, values), "cold/ndcg@20": (users, values)} for _ in range(2)]

    out = versus_full({"MoToRec": runs(base), "same": runs(base.copy()),
                       "worse": runs(base - 0.05 + rng.normal(0, 0.01, 500)), "missing": None})
    assert out["same"]["ΔR@20 (p)"] == "+0.0000 (1.000)"                 # identical: never significant
    assert out["worse"]["ΔR@20 (p)"].startswith("-0.05") and out["worse"]["ΔR@20 (p)"].endswith("*")
    assert out["missing"] == {}                                          # no per-user file: not tested
    assert versus_full({"MoToRec": None, "worse": runs(base)}) == {"worse": {}}


def test_ablation_shows_and_tests_zero_shot_columns_only_where_never_trained_items_were_hit():
    from src.cli.ablation import COLUMNS, TESTED, ZERO, table_columns
    warm = [{"test": {"recall@20": 0.2, "zero/ndcg@20": 0.0}}]
    cold = [{"test": {"recall@20": 0.1, "zero/ndcg@20": 0.03}}]
    assert table_columns({"MoToRec": warm, "w/o CL": None}) == (COLUMNS, TESTED)
    shown, tested = table_columns({"MoToRec": warm, "w/o CL": cold})
    assert shown == {**COLUMNS, **ZERO} and tested == {**TESTED, **ZERO}
    assert table_columns({"MoToRec": [{"test": {"recall@20": 0.2}}]}) == (COLUMNS, TESTED)   # older runs

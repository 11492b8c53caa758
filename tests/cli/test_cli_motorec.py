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


def test_the_ablation_base_is_the_best_run_among_the_points_todays_random_search_draws(tmp_path):
    """A better-on-valid run at a grid point today's random search does not draw (e.g. an earlier
    draw of a smaller grid) is not the full model the search chose, so it is not the ablation's base;
    it is when the search's budget covers the whole grid."""
    import json
    from types import SimpleNamespace
    from src.cli.ablation import base_point
    from src.common.experiment.strategies import random_points
    from src.common.recommender import resolve
    over = {"results_dir": str(tmp_path)}
    space = resolve("MoToRec", "scientific", over)
    first = space.first()
    assert first.search == "random" and first.n_trials < space.n_points
    drawn = random_points(space, first.n_trials, space.seeds[0])
    undrawn = next(p for p in space.points() if p not in drawn)
    fingerprint = "0123abcd"

    def store(name, point, valid):
        folder = tmp_path / "scientific" / "MoToRec" / name
        folder.mkdir(parents=True)
        config = space.config_at(point, space.seeds[0]).to_dict()
        (folder / "result.json").write_text(json.dumps(
            {"run_id": name, "model": "MoToRec", "label": "MoToRec", "status": "finished", "seed": config["seed"],
             "fingerprint": fingerprint, "config": config, "swept": dict(point), "valid": {"recall@20": valid}}))

    store("drawn", drawn[1], 0.20)
    store("undrawn", undrawn, 0.30)
    dataset = SimpleNamespace(name="scientific", fingerprint=fingerprint)
    assert base_point(dataset, over) == {k: drawn[1][k] for k in space.grid}
    # ``--set seed=...`` gives the variants other seeds; the draw stays the config's
    assert base_point(dataset, {**over, "seed": [5, 6]}) == {k: drawn[1][k] for k in space.grid}
    assert base_point(dataset, {**over, "n_trials": space.n_points}) == {k: undrawn[k] for k in space.grid}

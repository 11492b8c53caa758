"""The benchmark suite end to end on a tiny dataset written in the test: both phases, the equal
budget, the report files, resume after the fact, and the strict item cold-start variant."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from src.common.config import ConfigError
from src.common.experiment import benchmark as bm
from src.common.experiment.results import ResultsStore, run_id_for
from tests.cli.test_cli import run


def write_world(root, name="tiny", n_users=30, n_items=24, per_user=8, dims=8, seed=0):
    """Even users like even items, odd users odd items (as ``checkerboard``), written as files;
    the features encode the item's parity plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(np.arange(u % 2, n_items, 2), size=per_user, replace=False)
        rows += [(u, int(i), 2 if j == per_user - 1 else 1 if j == per_user - 2 else 0, j)
                 for j, i in enumerate(items)]
    folder = root / name
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=["userID", "itemID", "x_label", "timestamp"]).to_csv(
        folder / f"{name}.inter", sep="\t", index=False)
    parity = (np.arange(n_items) % 2).astype(np.float32)
    for k, m in enumerate(("image", "text")):
        f = rng.normal(0, 0.3, size=(n_items, dims)).astype(np.float32)
        f[:, k] += 2 * parity - 1
        np.save(folder / f"{m}_feat.npy", f)
    (folder / f"{name}.yaml").write_text("feature_files: {image: image_feat.npy, text: text_feat.npy}\n")
    return folder


def write_suite(path, trials=2, seeds=(1, 2)):
    path.write_text(
        "datasets:\n  tiny:\n    models: [BPR, LightGCN]\n"
        f"    trials: {trials}\n    seeds: {list(seeds)}\n"
        "    set: {epochs: 3, embedding_size: 8, eval_batch_size: 64, train_batch_size: 64}\n")
    return path


@pytest.fixture
def world(tmp_path):
    write_world(tmp_path / "data")
    suite = write_suite(tmp_path / "suite.yaml")
    common = ["--suite", str(suite), "--no-progress", "--out", str(tmp_path / "report"), "--set",
              f"data_path={tmp_path / 'data'}", f"results_dir={tmp_path / 'saved'}", "threads=1",
              f"cache_dir={tmp_path / 'cache'}"]
    return tmp_path, common


def test_suite_runs_both_phases_writes_the_report_and_resumes(world):
    tmp, common = world
    out = run("benchmark", *common)
    assert out.returncode == 0, out.stderr[-3000:]
    phases = json.loads((tmp / "report" / "phases.json").read_text())
    search = {p["model"]: p for p in phases if p["phase"] == "search"}
    seeds = {p["model"]: p for p in phases if p["phase"] == "seeds"}
    # the same budget: 2 configs on the first seed; then the best one on seed 2 (seed 1 reused)
    assert search["BPR"]["finished"] == search["LightGCN"]["finished"] == 2
    assert seeds["BPR"]["finished"] == seeds["LightGCN"]["finished"] == 1
    assert seeds["BPR"]["skipped"] == 1
    table = pd.read_csv(tmp / "report" / "tiny.csv")
    assert sorted(table["model"]) == ["BPR", "LightGCN"] and (table["seeds"] == 2).all()
    assert (table["recall@20"] > 0).all() and table["time to best s"].notna().all()
    # each seed's best valid epoch (of 3), and the rows whose every seed peaked at the last epoch
    best = [[int(e) for e in str(v).split(", ")] for v in table["best epochs"]]
    assert all(len(b) == 2 and all(1 <= e <= 3 for e in b) for b in best)
    assert list(table["seeds at cap"]) == [sum(e == 3 for e in b) for b in best]
    capped = [m for m, b in zip(table["model"], best) if all(e == 3 for e in b)]
    index = (tmp / "report" / "index.md").read_text()
    assert (bm.capped_line(capped) in index) if capped else "At the epoch cap" not in index
    # every row has per-user files, so every metric column carries a significance mark and an interval
    assert table["ndcg@20 mark"].notna().all() and table["ndcg@20 mark"].any()
    assert (table["ndcg@20 ci_low"] <= table["ndcg@20"]).all()
    for f in ("index.md", "tiny.md", "tiny.png"):
        assert (tmp / "report" / f).stat().st_size > 0
    assert "tiny.md" in (tmp / "report" / "index.md").read_text()
    # a second run trains nothing: every run is in the store
    again = run("benchmark", *common)
    assert again.returncode == 0, again.stderr[-3000:]
    phases = json.loads((tmp / "report" / "phases.json").read_text())
    assert sum(p["finished"] for p in phases) == 0 and sum(p["skipped"] for p in phases) == 8
    # -m narrows what is trained, not the report: the suite's other models stay in it
    one = run("benchmark", *common, "-m", "BPR")
    assert one.returncode == 0, one.stderr[-3000:]
    assert sorted(pd.read_csv(tmp / "report" / "tiny.csv")["model"]) == ["BPR", "LightGCN"]
    # ... and phases.json keeps what earlier commands ran for the others (and --report-only all of it)
    for args in ((), ("--report-only",)):
        assert not args or run("benchmark", *common, *args).returncode == 0
        kept = json.loads((tmp / "report" / "phases.json").read_text())
        assert sorted((p["model"], p["phase"]) for p in kept) == sorted(
            (m, ph) for m in ("BPR", "LightGCN") for ph in ("search", "seeds")), args
    # the report of a cold variant that has not run says so instead of an empty table
    only = run("benchmark", *common, "--report-only", "--cold")
    assert only.returncode == 0, only.stderr[-3000:]
    index = (tmp / "report" / "index.md").read_text()
    assert "tiny.md" in index and f"Not run yet: `python main.py benchmark --suite {tmp / 'suite.yaml'} -d tiny --cold`" in index
    assert not (tmp / "report" / "tiny_cold.md").exists()
    # runs of an earlier budget stay out of the report of a changed one (here another epoch cap)
    write_suite(tmp / "suite.yaml").write_text((tmp / "suite.yaml").read_text().replace("epochs: 3", "epochs: 2"))
    only = run("benchmark", *common, "--report-only")
    assert only.returncode == 0, only.stderr[-3000:]
    assert f"Not run yet: `python main.py benchmark --suite {tmp / 'suite.yaml'} -d tiny`" in (tmp / "report" / "index.md").read_text()


def test_cold_variant_holds_items_out_of_training(world):
    tmp, common = world
    out = run("benchmark", *common, "-m", "LightGCN", "--cold", "0.25", "--trials", "1", "--seeds", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    inter = pd.read_csv(tmp / "data" / "tiny_cold" / "tiny_cold.inter", sep="\t")
    train_items = set(inter.loc[inter.x_label == 0, "itemID"])
    held = set(inter.itemID) - train_items
    assert len(held) == 6   # 25% of 24 items, none of them in train
    assert set(inter.loc[inter.itemID.isin(held), "x_label"]) <= {1, 2}
    table = pd.read_csv(tmp / "report" / "tiny_cold.csv")
    assert "zero/recall@20" in table   # the held-out items' own view
    # new at test time, so never drawn as BPR negatives either (the variant's own dataset layer)
    assert yaml.safe_load((tmp / "data" / "tiny_cold" / "tiny_cold.yaml").read_text())["negatives"] == "trained"
    records = ResultsStore(tmp / "saved", "tiny_cold").records()
    assert records and all(r["config"]["negatives"] == "trained" for r in records)


def test_suite_file_errors_name_the_key(tmp_path):
    bad = tmp_path / "suite.yaml"
    bad.write_text("datasets:\n  tiny:\n    models: [BPR]\n    trails: 3\n")
    with pytest.raises(ConfigError, match=r"datasets.tiny: unknown key\(s\) \['trails'\]"):
        bm.load_suite(bad)
    bad.write_text("datasets:\n  tiny:\n    models: [NoSuchModel]\n")
    with pytest.raises(ConfigError, match="unknown model"):
        bm.load_suite(bad)
    suite = bm.load_suite(write_suite(tmp_path / "ok.yaml"), models=["all"], n_seeds=3, trials=5)
    entry = suite.datasets["tiny"]
    assert entry.seeds == [1, 2, 3] and entry.trials == 5 and "MoToRec" in entry.models
    # the cold variants' own budget; --trials sets both
    with_cold = tmp_path / "cold.yaml"
    with_cold.write_text("cold_trials: 1\n" + (tmp_path / "ok.yaml").read_text())
    suite = bm.load_suite(with_cold)
    assert suite.cold_entry(suite.datasets["tiny"]).trials == 1 and suite.datasets["tiny"].trials == 2
    both = bm.load_suite(with_cold, trials=3)
    assert both.cold_entry(both.datasets["tiny"]).trials == 3
    with_cold.write_text("cold_trials: 0\n" + (tmp_path / "ok.yaml").read_text())
    with pytest.raises(ConfigError, match="cold_trials must be >= 1"):
        bm.load_suite(with_cold)


def test_readme_section_is_regenerated_from_the_report(tmp_path):
    report = tmp_path / "saved" / "benchmark"
    report.mkdir(parents=True)
    (report / "index.md").write_text("# Benchmark report\n\nSuite: x\n\n## tiny\n\n[table](tiny.md) · "
                                     "[figure](tiny.png)\n\n| model | recall@20 |\n|---|---|\n| BPR | 0.5 |\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bm.BEGIN}\nold numbers\n{bm.END}\nafter\n")
    assert bm.update_readme(readme, report / "index.md")
    text = readme.read_text()
    assert "old numbers" not in text and "| BPR | 0.5 |" in text and "### tiny" in text
    assert "(saved/benchmark/tiny.md)" in text and text.startswith("intro\n") and text.endswith("after\n")
    readme.write_text("no markers\n")
    assert not bm.update_readme(readme, report / "index.md")
    # another suite file's report has its own markers, so both can live in one README
    begin, end = bm.readme_markers("benchmark_motor")
    readme.write_text(f"{bm.BEGIN}\nmain\n{bm.END}\n{begin}\nold\n{end}\n")
    assert bm.update_readme(readme, report / "index.md", "benchmark_motor")
    text = readme.read_text()
    assert "main" in text and "old" not in text and "| BPR | 0.5 |" in text


def test_motor_hosts_run_under_the_same_budget_and_get_a_pair_table(world):
    """A suite model MOTOR-<host> is the host with MOTOR's item tokens (its own label and run ids,
    the host's grid and budget, per_model overrides); the report pairs it with its host."""
    tmp, common = world
    suite = tmp / "motor.yaml"
    suite.write_text(
        "datasets:\n  tiny:\n    models: [LightGCN, motor-lightgcn]\n    trials: 1\n    seeds: [1, 2]\n"
        "    set: {epochs: 3, embedding_size: 8, eval_batch_size: 64, train_batch_size: 64,"
        " pq_subspaces: 2, pq_codebook_size: 4}\n"
        "    per_model: {MOTOR-LightGCN: {motor_layers: 0}}\n")
    out = run("benchmark", *common, "--suite", str(suite))
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp / "saved" / "tiny").glob("*/*/result.json")]
    motor = [r for r in records if r["label"] == "MOTOR-LightGCN"]
    assert len(motor) == 2 and all(r["model"] == "LightGCN" for r in motor)
    assert all(r["config"]["item_representation"] == "motor" and r["config"]["motor_layers"] == 0 for r in motor)
    assert {r["run_id"] for r in motor}.isdisjoint(r["run_id"] for r in records if r["label"] == "LightGCN")
    pairs = pd.read_csv(tmp / "report" / "tiny_motor.csv")
    assert list(pairs["host"]) == ["LightGCN"] and pairs["recall@20 p"].between(0, 1).all()
    host = pd.read_csv(tmp / "report" / "tiny.csv").set_index("model")
    assert pairs.loc[0, "recall@20 share"] == pytest.approx(host.loc["MOTOR-LightGCN", "recall@20"]
                                                            / host.loc["LightGCN", "recall@20"])
    assert "MOTOR against its host" in (tmp / "report" / "index.md").read_text()
    # a MOTOR entry of an unknown host, or per_model of a model not in the registry, names the key
    suite.write_text("datasets:\n  tiny:\n    models: [MOTOR-NoSuchModel]\n")
    with pytest.raises(ConfigError, match=r"datasets.tiny.models: unknown model\(s\) \['MOTOR-NoSuchModel'\]"):
        bm.load_suite(suite)
    suite.write_text("datasets:\n  tiny:\n    models: [BPR]\n    per_model: {Nope: {reg_weight: 0.1}}\n")
    with pytest.raises(ConfigError, match=r"datasets.tiny.per_model: unknown model\(s\) \['Nope'\]"):
        bm.load_suite(suite)


def test_motor_table_shows_shares_to_a_tenth_of_a_percent():
    """A share just under a threshold must not print as the threshold: 0.1757 / 0.1799 is "97.7%", not "98%"."""
    row = {"host": "LATTICE", "seeds": "3 / 3"}
    for m in bm.MOTOR_METRICS:
        row.update({f"{m} host": 0.1799, f"{m} MOTOR": 0.1757, f"{m} share": 0.1757 / 0.1799,
                    f"{m} diff": 0.1757 - 0.1799, f"{m} p": 0.454})
    table = bm.motor_markdown(pd.DataFrame([row]))
    assert "0.1799 → 0.1757 (97.7%)" in table and "(98%)" not in table and "-0.0042 (0.454) |" in table


def test_report_index_keeps_the_sections_of_datasets_the_command_did_not_cover():
    from src.common.experiment.benchmark import merge_sections
    old = "# Benchmark report\n\nSuite: old.\n\n## a\n\nold a\n\n## b\n\nold b\n\nNot run yet: X.\n"
    new = "# Benchmark report\n\nSuite: new.\n\n## a\n\nnew a\n\n## c\n\nnew c\n"
    assert merge_sections(old, new) == ("# Benchmark report\n\nSuite: new.\n\n## a\n\nnew a\n\n"
                                        "## b\n\nold b\n\nNot run yet: X.\n\n## c\n\nnew c\n")
    assert merge_sections(new, new) == new


CONFIGS = Path(__file__).resolve().parents[2] / "src" / "configs"


@pytest.mark.parametrize("suite", sorted(p.name for p in CONFIGS.glob("benchmark*.yaml")))
def test_every_shipped_suite_resolves_every_model_it_names(suite):
    """A typo in a shipped suite's per_model or set (e.g. a MOTOR key) fails here, not hours into a run:
    every model of every dataset resolves to a valid search space with the suite's overrides."""
    entries = bm.load_suite(CONFIGS / suite).datasets
    assert entries
    for name, entry in entries.items():
        for model in entry.models:
            space = bm.resolve_label(model, name, bm.search_overrides(entry, {}, model))
            first = space.first()
            own = {**bm.split_label(model)[1], **entry.per_model.get(model, {})}
            for key, value in own.items():
                if key == "hyper_parameters":            # a model's own grid keys (e.g. a rate search)
                    assert list(space.grid) == value, (suite, name, model)
                elif isinstance(value, list) and key in own.get("hyper_parameters", []):
                    assert space.grid[key] == value, (suite, name, model, key)
                else:
                    assert getattr(first, key) == value, (suite, name, model, key)


def test_a_run_whose_best_epoch_is_the_last_of_its_budget_is_at_the_cap():
    def record(best, ran, cap=15):
        return {"best_epoch": best, "epochs_run": ran, "config": {"epochs": cap}}
    assert bm.at_epoch_cap(record(14, 15))          # still improving when the cap stopped it
    assert not bm.at_epoch_cap(record(9, 15))       # peaked earlier
    assert not bm.at_epoch_cap(record(9, 10))       # early stopping ended it before the cap
    assert not bm.at_epoch_cap({"best_epoch": 2, "epochs_run": 3, "config": {}})
    assert "A, B" in bm.capped_line(["A", "B"])


def test_models_still_improving_at_the_epoch_cap_are_named_in_the_report(world):
    """With a one-epoch cap every run's best epoch is its last: the report says so for each model."""
    tmp, common = world
    suite = tmp / "capped.yaml"
    suite.write_text("datasets:\n  tiny:\n    models: [BPR, LightGCN]\n    trials: 1\n    seeds: [1]\n"
                     "    set: {epochs: 1, embedding_size: 8, eval_batch_size: 64, train_batch_size: 64}\n")
    out = run("benchmark", *common, "--suite", str(suite))
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(tmp / "report" / "tiny.csv")
    assert list(table["best epochs"].astype(str)) == ["1", "1"] and list(table["seeds at cap"]) == [1, 1]
    line = bm.capped_line(list(table["model"]))
    assert line in (tmp / "report" / "index.md").read_text() and line in (tmp / "report" / "tiny.md").read_text()


def test_a_per_model_search_reports_in_the_suites_terms_whatever_trained_its_runs(world):
    """A suite may pin a model's config and search other keys (``per_model`` with its own
    ``hyper_parameters``, e.g. a learning rate). A run trained before by ``main.py -m`` with the same
    config counts as the suite's (same run id), and the report describes every run by the suite's
    keys: each searched rate is counted and the chosen one is in the config column."""
    tmp, common = world
    suite = tmp / "rates.yaml"
    suite.write_text("datasets:\n  tiny:\n    models: [BPR]\n    trials: 2\n    seeds: [1]\n"
                     "    set: {epochs: 2, embedding_size: 8, eval_batch_size: 64, train_batch_size: 64}\n"
                     "    per_model: {BPR: {reg_weight: 0.001, learning_rate: [0.001, 0.01],"
                     " hyper_parameters: [learning_rate]}}\n")
    data, store = common[common.index("--set") + 1], common[common.index("--set") + 2]
    run("-m", "BPR", "-d", "tiny", "--no-progress", "--set", data, store, "threads=1", "seed=1", "epochs=2",
        "embedding_size=8", "eval_batch_size=64", "train_batch_size=64", "reg_weight=0.001", "learning_rate=0.01")
    out = run("benchmark", *common, "--suite", str(suite))
    phases = json.loads((tmp / "report" / "phases.json").read_text())
    search = next(p for p in phases if p["phase"] == "search")
    assert (search["finished"], search["skipped"]) == (1, 1), out.stdout[-2000:]
    row = pd.read_csv(tmp / "report" / "tiny.csv").iloc[0]
    assert row["searched"] == 2
    assert row["config"].startswith("learning_rate=0.0") and "reg_weight=0.001" in row["config"]
    assert "2 of 2 configs (learning_rate)" in row["budget"]
    assert "the suite's `per_model` one" in (tmp / "report" / "index.md").read_text()
    assert not bm.under_settings({"config": {"learning_rate": 0.1}},
                                 {"learning_rate": [0.001, 0.01], "hyper_parameters": ["learning_rate"]})


def test_runs_of_an_earlier_default_stay_out_of_the_report(world):
    """A store outlives a change of a model's defaults: runs of another default (here BPR's chosen
    config with another ``negative_popularity``, made better on valid) are not the suite's, which
    trains the current default's configs only, and must not be reported as its."""
    tmp, common = world
    assert run("benchmark", *common).returncode == 0
    before = pd.read_csv(tmp / "report" / "tiny.csv").set_index("model")
    store = ResultsStore(tmp / "saved", "tiny")
    other = {"data_path": str(tmp / "data"), "epochs": 3, "embedding_size": 8, "eval_batch_size": 64,
             "train_batch_size": 64, "negative_popularity": 0.5}
    space = bm.resolve_label("BPR", "tiny", other)
    chosen = {r["seed"]: (p, r) for p, r in store.entries() if r["label"] == "BPR" and
              ", ".join(f"{k}={r['config'][k]}" for k in space.grid) == before.loc["BPR", "config"]}
    assert set(chosen) == {1, 2}
    for seed, (path, record) in chosen.items():
        config = space.config_at({k: record["config"][k] for k in space.grid}, seed)
        stale = path.parent / run_id_for(config, record["fingerprint"])
        shutil.copytree(path, stale)
        (stale / "result.json").write_text(json.dumps(
            {**record, "run_id": stale.name, "best_epoch": 98, "valid": {**record["valid"], "recall@20": 1.0},
             "config": {**record["config"], "negative_popularity": 0.5}}))
    assert len([r for r in store.records() if r["label"] == "BPR"]) == 5   # 2 configs, 1 more seed, 2 stale
    only = run("benchmark", *common, "--report-only")
    assert only.returncode == 0, only.stderr[-2000:]
    after = pd.read_csv(tmp / "report" / "tiny.csv").set_index("model")
    assert after.loc["BPR", "best epochs"] == before.loc["BPR", "best epochs"] != "99, 99"
    assert after.loc["BPR", "searched"] == before.loc["BPR", "searched"] == 2
    # with that default (on the command line) those runs are the suite's, and valid prefers them
    only = run("benchmark", *common, "negative_popularity=0.5", "--report-only")
    assert only.returncode == 0, only.stderr[-2000:]
    assert pd.read_csv(tmp / "report" / "tiny.csv").set_index("model").loc["BPR", "best epochs"] == "99, 99"

    # leaderboard and compare choose over the whole store: they name what departs from today's
    # defaults in the config they picked, and with --current choose among today's runs only
    today = [f"data_path={tmp / 'data'}", f"results_dir={tmp / 'saved'}", "epochs=3", "embedding_size=8",
             "eval_batch_size=64", "train_batch_size=64"]
    for path, record in store.entries():    # the tiny world saturates valid: make the stale runs the best
        if record["label"] == "BPR" and record["config"].get("negative_popularity", 0.0) == 0.0:
            (path / "result.json").write_text(json.dumps({**record, "valid": {**record["valid"], "recall@20": 0.5}}))
    board = run("leaderboard", "-d", "tiny", "--out", str(tmp / "lb.csv"), "--set", *today)
    assert board.returncode == 0, board.stderr[-2000:]
    notes = [line for line in board.stdout.splitlines() if line.startswith("- ")]
    assert notes == ["- BPR: negative_popularity=0.5 (today 0.0)"], board.stdout[-3000:] + board.stderr[-2000:]
    assert pd.read_csv(tmp / "lb.csv").set_index("model").loc["BPR", "valid recall@20"] == 1.0
    board = run("leaderboard", "-d", "tiny", "--current", "--out", str(tmp / "lb.csv"), "--set", *today)
    assert board.returncode == 0 and "- BPR" not in board.stdout
    assert pd.read_csv(tmp / "lb.csv").set_index("model").loc["BPR", "valid recall@20"] == 0.5
    pair = run("compare", "-d", "tiny", "--label", "LightGCN", "--label", "BPR", "--set", *today[:2])
    assert pair.returncode == 0, pair.stderr[-2000:]
    notes = {line[0]: line for line in pair.stdout.splitlines() if "config is not what today's" in line}
    # without the suite's settings on the command line both differ in them, B also in its negatives
    assert "epochs=3 (today 1000)" in notes["A"] and "negative_popularity" not in notes["A"]
    assert "epochs=3 (today 1000)" in notes["B"] and "negative_popularity=0.5 (today 0.0)" in notes["B"]
    pair = run("compare", "-d", "tiny", "--label", "LightGCN", "--label", "BPR", "--current", "--set", *today)
    assert pair.returncode == 0 and "config is not what" not in pair.stdout
    bad = run("compare", "-d", "tiny", "--label", "LightGCN", "--label", "BPR", "--set", *today, check=False)
    assert bad.returncode == 2 and "with --current" in bad.stderr


def test_a_grid_point_the_suites_random_search_does_not_draw_stays_out_of_the_report(world):
    """A grid that grows (a value added to a key) changes the points the suite's random search
    draws; runs of points an earlier draw visited are still in the grid and in the store, but
    counting them would give that model more trials than the suite's budget."""
    from src.common.experiment.strategies import random_points
    tmp, common = world
    assert run("benchmark", *common).returncode == 0
    before = pd.read_csv(tmp / "report" / "tiny.csv").set_index("model")
    settings = {"data_path": str(tmp / "data"), "epochs": 3, "embedding_size": 8, "eval_batch_size": 64,
                "train_batch_size": 64}
    space = bm.resolve_label("BPR", "tiny", {**settings, "search": "random", "n_trials": 2, "seed": 1})
    drawn = random_points(space, 2, 1)
    assert len(drawn) == 2 < space.n_points
    undrawn = next(p for p in space.points() if p not in drawn)
    store = ResultsStore(tmp / "saved", "tiny")
    entries = [(p, r) for p, r in store.entries() if r["label"] == "BPR"]
    assert len({json.dumps({k: r["config"][k] for k in space.grid}) for _, r in entries}) == 2
    for seed in (1, 2):          # a complete, better-on-valid config at a point the search never drew
        path, record = next((p, r) for p, r in entries if r["seed"] == seed)
        config = space.config_at(undrawn, seed)
        other = path.parent / run_id_for(config, record["fingerprint"])
        shutil.copytree(path, other)
        (other / "result.json").write_text(json.dumps(
            {**record, "run_id": other.name, "best_epoch": 98, "valid": {**record["valid"], "recall@20": 1.0},
             "config": {**record["config"], **undrawn}}))
    only = run("benchmark", *common, "--report-only")
    assert only.returncode == 0, only.stderr[-2000:]
    after = pd.read_csv(tmp / "report" / "tiny.csv").set_index("model")
    assert after.loc["BPR", "best epochs"] == before.loc["BPR", "best epochs"] != "99, 99"
    assert after.loc["BPR", "searched"] == 2 and after.loc["BPR", "config"] == before.loc["BPR", "config"]
    # the same runs are the suite's when its budget covers the whole grid (valid saturates in this
    # tiny world, so which config wins a tie is not the point: that the point is counted is)
    only = run("benchmark", *common, "--trials", str(space.n_points), "--report-only")
    assert only.returncode == 0, only.stderr[-2000:]
    assert pd.read_csv(tmp / "report" / "tiny.csv").set_index("model").loc["BPR", "searched"] == 3

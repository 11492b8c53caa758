"""Grid search: records written atomically as runs finish, resume skips them, selection by valid."""
import json

import pytest

from src.common.experiment import search as search_mod
from src.common.config import ConfigError
from src.common.recommender import resolve
from src.common.experiment.results import ResultsStore, best_per_label, leaderboard, markdown_table
from src.common.experiment.search import run_search

from tests.conftest import checkerboard


def space(tmp_path, **extra):
    over = {"results_dir": str(tmp_path), "show_progress": False, "epochs": 2, "embedding_size": 8,
            "train_batch_size": 64, "reg_weight": [0.0, 0.1], "learning_rate": [0.01, 0.001], **extra}
    return resolve("BPR", "scientific", over, extra_layers=[("test", {"hyper_parameters": ["reg_weight", "learning_rate"]})])


def test_grid_writes_one_record_per_point_and_resume_skips_them(tmp_path):
    ds = checkerboard()
    s1 = run_search(space(tmp_path), ds)
    assert (s1.finished, s1.skipped) == (4, 0)
    store = ResultsStore(tmp_path, "scientific")
    records = store.records(ds.fingerprint)
    assert len(records) == 4
    assert {(r["config"]["reg_weight"], r["config"]["learning_rate"]) for r in records} == \
        {(0.0, 0.01), (0.0, 0.001), (0.1, 0.01), (0.1, 0.001)}
    for r in records:
        assert set(r) >= {"valid", "test", "seed", "config", "best_epoch", "seconds_per_epoch",
                          "n_parameters", "versions", "host", "fingerprint"}
        assert set(r["versions"]) >= {"python", "torch", "numpy", "code"}   # code: the git commit
    s2 = run_search(space(tmp_path), ds)
    assert (s2.finished, s2.skipped) == (0, 4)


def test_interrupted_search_resumes_where_it_stopped(tmp_path, monkeypatch):
    ds = checkerboard()
    real = search_mod.train_one
    calls = []

    def dies_on_third(config, dataset, run_dir, **kw):
        calls.append(run_dir.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(config, dataset, run_dir, **kw)

    monkeypatch.setattr(search_mod, "train_one", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_search(space(tmp_path), ds)
    assert len(ResultsStore(tmp_path, "scientific").records()) == 2
    monkeypatch.setattr(search_mod, "train_one", real)
    s = run_search(space(tmp_path), ds)
    assert (s.finished, s.skipped) == (2, 2)


def test_failing_trial_is_recorded_and_search_goes_on(tmp_path, monkeypatch):
    ds = checkerboard()
    real = search_mod.train_one

    def fails_for_reg(config, dataset, run_dir, **kw):
        if config.reg_weight == 0.1 and config.learning_rate == 0.01:
            raise RuntimeError("boom")
        return real(config, dataset, run_dir, **kw)

    monkeypatch.setattr(search_mod, "train_one", fails_for_reg)
    s = run_search(space(tmp_path), ds)
    assert (s.finished, s.failed) == (3, 1)
    failed = ResultsStore(tmp_path, "scientific").records(status="failed")
    assert len(failed) == 1 and "boom" in failed[0]["error"]


def record(label, valid, test, seed=0, **cfg):
    return {"label": label, "model": label, "run_id": f"{label}-{valid}-{seed}", "seed": seed,
            "swept": cfg, "config": {"valid_metric": "recall@20", "seed": seed, **cfg},
            "valid": {"recall@20": valid}, "test": {"recall@20": test, "cold/recall@20": test / 2},
            "n_parameters": 10, "seconds_per_epoch": 0.1, "best_epoch": 3, "status": "finished"}


def test_best_config_is_chosen_by_valid_never_by_test():
    records = [record("M", valid=0.30, test=0.10, lr=1), record("M", valid=0.20, test=0.90, lr=2)]
    best = best_per_label(records)["M"]
    assert best[0]["swept"] == {"lr": 1}


def test_seeds_are_averaged_and_the_best_mean_wins():
    records = [record("M", 0.30, 0.1, seed=0, lr=1), record("M", 0.10, 0.1, seed=1, lr=1),
               record("M", 0.22, 0.2, seed=0, lr=2), record("M", 0.21, 0.2, seed=1, lr=2)]
    table = leaderboard(records, ["recall@20"])
    assert table.loc[0, "config"] == "lr=2" and table.loc[0, "seeds"] == 2
    assert "±" in markdown_table(table)


def test_configs_are_compared_on_the_seeds_they_share():
    # the search ran lr=1 and lr=2 on seed 0, then lr=1 (best there) on seeds 1 and 2 too, whose
    # valid values happen to be lower: lr=2's single seed must not win against lr=1's three-seed mean
    records = [record("M", 0.25, 0.1, seed=0, lr=1), record("M", 0.23, 0.1, seed=1, lr=1),
               record("M", 0.23, 0.1, seed=2, lr=1), record("M", 0.24, 0.2, seed=0, lr=2)]
    best = best_per_label(records)["M"]
    assert best[0]["swept"] == {"lr": 1} and len(best) == 3
    # no seed in common: each config's mean over its own seeds
    records = [record("M", 0.25, 0.1, seed=0, lr=1), record("M", 0.21, 0.1, seed=1, lr=1),
               record("M", 0.24, 0.2, seed=2, lr=2)]
    assert best_per_label(records)["M"][0]["swept"] == {"lr": 2}


def test_dataset_keys_cannot_be_swept(tmp_path):
    s = resolve("BPR", "scientific", {"cold_threshold": [5, 10], "reg_weight": 0.1},
                extra_layers=[("t", {"hyper_parameters": ["cold_threshold"]})])
    with pytest.raises(ConfigError, match="cannot be swept"):
        run_search(s, checkerboard())


def test_records_are_complete_json_files(tmp_path):
    ds = checkerboard()
    run_search(space(tmp_path, reg_weight=0.0, learning_rate=0.01), ds)
    paths = list((tmp_path / "scientific" / "BPR").glob("*/result.json"))
    assert len(paths) == 1
    json.loads(paths[0].read_text())
    assert not list((tmp_path / "scientific" / "BPR").glob("*/.*.tmp"))
    assert (paths[0].parent / "model.pt").exists() and (paths[0].parent / "run.log").exists()

"""Random and TPE search, the ASHA stopping rule, the trainer's stop hook, and the optional extras."""
import logging
import subprocess
import sys

import pytest

from src.common.experiment import search as search_mod
from src.common.config import ConfigError
from src.common.recommender import resolve
from src.common.extras import MissingExtra
from src.common.paths import ROOT
from src.common.experiment.results import ResultsStore
from src.common.experiment.search import run_search
from src.common.experiment.strategies import Asha
from src.common.trainer import Trainer, TrainResult

from tests.conftest import checkerboard


def space(tmp_path, **extra):
    """A 3 x 2 grid of a tiny BPR (6 points)."""
    over = {"results_dir": str(tmp_path), "show_progress": False, "threads": 1, "epochs": 2,
            "embedding_size": 8, "train_batch_size": 64, "reg_weight": [0.0, 0.01, 0.1],
            "learning_rate": [0.01, 0.001], **extra}
    return resolve("BPR", "scientific", over,
                   extra_layers=[("test", {"hyper_parameters": ["reg_weight", "learning_rate"]})])


def swept(summary):
    return sorted((r["config"]["reg_weight"], r["config"]["learning_rate"]) for r in summary.records)


def test_random_search_runs_n_distinct_configs_reproducibly(tmp_path):
    ds = checkerboard()
    s = run_search(space(tmp_path, search="random", n_trials=3), ds)
    assert s.finished == 3 and len(set(swept(s))) == 3
    again = run_search(space(tmp_path, search="random", n_trials=3), ds)   # same seed: same draw
    assert (again.finished, again.skipped) == (0, 3) and swept(again) == swept(s)
    other = run_search(space(tmp_path / "o", search="random", n_trials=3, seed=5), ds)
    assert len(set(swept(other))) == 3


def test_random_search_repeats_each_config_per_seed(tmp_path):
    s = run_search(space(tmp_path, search="random", n_trials=2, seed=[1, 2]), checkerboard())
    assert s.finished == 4 and len(set(swept(s))) == 2
    assert sorted(r["seed"] for r in s.records) == [1, 1, 2, 2]


def test_tpe_runs_distinct_configs_and_a_resumed_search_proposes_the_same(tmp_path):
    pytest.importorskip("optuna")
    ds = checkerboard()
    s = run_search(space(tmp_path, search="tpe", n_trials=4, tpe_batch=2), ds)
    assert s.finished == 4 and len(set(swept(s))) == 4
    again = run_search(space(tmp_path, search="tpe", n_trials=4, tpe_batch=2), ds)
    assert (again.finished, again.skipped) == (0, 4) and swept(again) == swept(s)


def test_search_keys_are_validated():
    with pytest.raises(ConfigError, match="search: random needs n_trials"):
        resolve("BPR", "scientific", {"search": "random"})
    with pytest.raises(ConfigError, match="expected one of"):
        resolve("BPR", "scientific", {"search": "bayes", "n_trials": 3})
    with pytest.raises(ConfigError, match="ray_address must be auto, ray://host:port"):
        resolve("BPR", "scientific", {"ray_address": "myhost"})


def test_execution_keys_do_not_change_the_run_id(tmp_path):
    ds = checkerboard()
    run_search(space(tmp_path, reg_weight=0.0, learning_rate=0.01), ds)
    s = run_search(space(tmp_path, reg_weight=0.0, learning_rate=0.01, cpus_per_trial=2, max_retries=3,
                         threads=2, scheduler="asha"), ds)
    assert (s.finished, s.skipped) == (0, 1)


def test_asha_stops_runs_below_the_rung_quantile():
    asha = Asha(grace=2, reduction=2)
    assert [n for n in range(1, 20) if asha.is_rung(n)] == [2, 4, 8, 16]
    assert not asha.should_stop("a", 1, 0.0)          # not a rung
    assert not asha.should_stop("a", 2, 0.5)          # alone at the rung: too few to judge
    assert asha.should_stop("b", 2, 0.1)              # below the median of {0.5, 0.1}
    assert not asha.should_stop("c", 2, 0.9)
    assert not asha.should_stop("b", 2, 0.7)          # a retried run replaces its own score


def test_trainer_stop_hook_ends_the_run_from_its_best_state(tiny):
    cfg = resolve("BPR", "scientific", {"epochs": 10, "embedding_size": 8, "threads": 1,
                                        "show_progress": False}).first()
    asked = []
    result = Trainer(cfg, tiny, should_stop=lambda n, best: asked.append((n, best)) or n >= 3).fit()
    assert result.pruned and result.epochs_run == 3 and [n for n, _ in asked] == [1, 2, 3]
    assert result.test and result.host


def test_scheduler_stops_trailing_runs_and_resume_keeps_them_stopped(tmp_path, monkeypatch):
    ds = checkerboard()
    scores = {0.0: 0.9, 0.01: 0.1, 0.1: 0.5}  # by reg_weight

    def fake_train(config, dataset, run_dir, should_stop=None):
        score = scores[config.reg_weight]
        pruned = should_stop is not None and should_stop(1, score)
        return TrainResult(valid={"recall@20": score}, test={"recall@20": score}, best_epoch=0,
                           epochs_run=1, seconds_per_epoch=0.0, eval_seconds=0.0, train_seconds=0.0,
                           n_parameters=1, peak_rss_mib=0.0, pruned=pruned)

    monkeypatch.setattr(search_mod, "train_one", fake_train)
    asha = {"scheduler": "asha", "asha_grace": 1, "asha_reduction": 2, "learning_rate": 0.01}
    s = run_search(space(tmp_path, **asha), ds)   # 0.9 alone; 0.1 < median(0.9, 0.1): stopped; 0.5 < 0.5? no
    assert (s.finished, s.pruned) == (2, 1)
    pruned = ResultsStore(tmp_path, "scientific").records(status="pruned")
    assert [r["config"]["reg_weight"] for r in pruned] == [0.01]
    assert run_search(space(tmp_path, **asha), ds).skipped == 3        # decided: not re-run
    rerun = run_search(space(tmp_path, learning_rate=0.01), ds)       # without the scheduler it runs
    assert (rerun.finished, rerun.skipped) == (1, 2)


def test_default_search_imports_neither_ray_nor_optuna(tmp_path):
    code = ("import sys; from tests.common.experiment.test_strategies import space; from tests.conftest import checkerboard; "
            "import src.cli.train; from src.common.experiment.search import run_search; "
            f"s = run_search(space({str(tmp_path)!r}, reg_weight=0.0, learning_rate=0.01, search='random', "
            "n_trials=1), checkerboard()); assert s.finished == 1; "
            "print(sorted(m for m in ('ray', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.fixture
def keep_logging():
    """``main()`` replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_missing_extras_stop_with_one_line_naming_the_package(monkeypatch, capsys, keep_logging):
    from src.cli import main
    from src.common.experiment.executors import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)     # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(MissingExtra, match="--workers needs the 'ray' package.*pip install"):
        RayExecutor(workers=2)
    assert main(["-m", "BPR", "-d", "scientific", "--workers", "2", "--set", "epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'ray'" in err and "requirements-distributed.txt" in err
    assert main(["-m", "BPR", "-d", "scientific", "--set", "search=tpe", "n_trials=2", "epochs=1"]) == 2
    assert "search: tpe needs the 'optuna' package" in capsys.readouterr().err

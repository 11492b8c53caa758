"""Trials on a local Ray instance (num_cpus=2): same results as in-process, resume, faults."""
import os

import pytest

from src.common.config import ConfigError
from src.common.eval.per_user import load_per_user
from src.common.experiment.results import ResultsStore
from src.common.experiment.search import run_search, train_one
from src.common.experiment.strategies import Asha

from tests.common.experiment.test_search import space
from tests.conftest import checkerboard

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def executor():
    """One small local Ray for this module, shut down after it."""
    from src.common.experiment.executors import RayExecutor

    ex = RayExecutor(workers=2, cpus_per_trial=1, max_retries=1)
    yield ex
    ex.close()
    assert not ray.is_initialized()


def with_train(executor, train):
    """The same Ray instance, running ``train`` instead of train_one on the workers."""
    from src.common.experiment.executors import RayExecutor

    ex = RayExecutor(workers=2, cpus_per_trial=1, max_retries=1, train=train)
    assert not ex._started  # reuses the module's instance
    return ex


def by_run(records):
    return {r["run_id"]: r for r in records}


def test_ray_grid_writes_the_same_results_as_in_process(tmp_path, executor):
    ds = checkerboard()
    local = run_search(space(tmp_path / "local", threads=1), ds)
    remote = run_search(space(tmp_path / "ray"), ds, executor=executor)
    assert (remote.finished, remote.failed) == (4, 0)
    stored = by_run(ResultsStore(tmp_path / "ray", "scientific").records())
    assert len(stored) == 4 and stored.keys() == by_run(local.records).keys()
    for run_id, r in by_run(local.records).items():
        assert stored[run_id]["valid"] == r["valid"] and stored[run_id]["test"] == r["test"]
        assert stored[run_id]["best_epoch"] == r["best_epoch"] and stored[run_id]["config"]["threads"] == 1
        run_dir = tmp_path / "ray" / "scientific" / "BPR" / run_id
        assert (run_dir / "model.pt").stat().st_size > 0 and "best epoch" in (run_dir / "run.log").read_text()
        users, values = load_per_user(run_dir)["recall@20"]   # shipped back from the worker too
        assert len(users) == r["test"]["n_users"] and values.mean() == pytest.approx(r["test"]["recall@20"], abs=1e-6)


def test_interrupted_ray_search_resumes_without_repeating(tmp_path, executor):
    ds = checkerboard()
    seen = []

    def interrupt_after_two(record):
        seen.append(record["run_id"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(space(tmp_path), ds, executor=executor, on_record=interrupt_after_two)
    assert len(ResultsStore(tmp_path, "scientific").records()) == 2
    rerun = []
    again = run_search(space(tmp_path), ds, executor=executor, on_record=lambda r: rerun.append(r["run_id"]))
    assert (again.finished, again.skipped) == (2, 2)
    assert len(rerun) == 2 and not set(rerun) & set(seen)   # only the runs not recorded before
    assert len(ResultsStore(tmp_path, "scientific").records()) == 4


def test_failing_trial_is_recorded_and_the_others_finish(tmp_path, executor):
    def fails_for_one(config, dataset, run_dir, **kw):
        if config.reg_weight == 0.1 and config.learning_rate == 0.01:
            raise RuntimeError("boom")
        return train_one(config, dataset, run_dir, **kw)

    s = run_search(space(tmp_path), checkerboard(), executor=with_train(executor, fails_for_one))
    assert (s.finished, s.failed) == (3, 1)
    failed = ResultsStore(tmp_path, "scientific").records(status="failed")
    assert len(failed) == 1 and failed[0]["error"] == "RuntimeError: boom"


def test_config_error_on_a_worker_stops_the_search(tmp_path, executor):
    def bad_config(config, dataset, run_dir, **kw):
        raise ConfigError("bad key")

    with pytest.raises(ConfigError, match="bad key"):
        run_search(space(tmp_path), checkerboard(), executor=with_train(executor, bad_config))


def test_dead_worker_is_retried_then_recorded_as_failed(tmp_path, executor):
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def dies(config, dataset, run_dir, **kw):
        if config.learning_rate == 0.01 and config.reg_weight == 0.1:
            (attempts / str(len(list(attempts.iterdir())))).touch()
            os._exit(1)              # the worker process dies, on every attempt
        return train_one(config, dataset, run_dir, **kw)

    s = run_search(space(tmp_path), checkerboard(), executor=with_train(executor, dies))
    assert (s.finished, s.failed) == (3, 1)
    assert len(list(attempts.iterdir())) == 2   # max_retries=1: run twice, then recorded failed
    failed = ResultsStore(tmp_path, "scientific").records(status="failed")
    assert failed[0]["config"]["reg_weight"] == 0.1 and "died 2 time(s)" in failed[0]["error"]


def test_shared_scheduler_is_one_object_for_all_workers(executor):
    asha = executor.shared(Asha(grace=1, reduction=2))
    assert not asha.should_stop("a", 1, 0.9)
    assert asha.should_stop("b", 1, 0.1)


def test_resources_the_cluster_lacks_are_an_error_not_a_hang(executor):
    from src.common.experiment.executors import RayExecutor

    with pytest.raises(ConfigError, match="cpus_per_trial=3.*only 2 CPU"):
        RayExecutor(workers=1, cpus_per_trial=3)
    with pytest.raises(ConfigError, match="gpus_per_trial=1.*0 GPU"):
        RayExecutor(workers=1, gpus_per_trial=1)
    assert ray.is_initialized()  # the module's instance, which it did not start, keeps running

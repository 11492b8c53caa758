"""A search on a two-node Ray cluster on this machine (Ray's ``cluster_utils``: a head and a second
node, 1 CPU each): the same results as in-process through ``ray_address``, and a node lost
mid-search costs only the attempt that was running on it."""
import threading
import time

import pytest

from src.common.experiment.results import ResultsStore
from src.common.experiment.search import run_search, train_one
from src.common.recommender import resolve

from tests.common.experiment.test_search import space as bpr_space
from tests.conftest import checkerboard

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node of 1 CPU each; the test process is the driver.

    Ray's own start-up has fixed timeouts (a raylet waits for its agent process, the driver for
    the raylet): on a badly overloaded machine it can fail; it is tried twice, then the module is
    skipped with Ray's error (that is the machine, not the code under test)."""
    assert not ray.is_initialized()
    for attempt in (1, 2):
        c = cluster_utils.Cluster()
        try:
            c.add_node(num_cpus=1, include_dashboard=False)   # the head
            c.second = c.add_node(num_cpus=1)
            c.wait_for_nodes()
            break
        except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception on a start-up timeout
            c.shutdown()
            if attempt == 2:
                pytest.skip(f"Ray could not start a two-node cluster on this machine: {e}")
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def connected(cluster, tmp_path_factory):
    """This process connected to the cluster as ``--ray-address`` does (the code uploaded with the
    job), once for the module: worker processes start once per node."""
    from src.common.experiment.executors import executor_for

    config = small_space(tmp_path_factory.mktemp("unused"), "BPR", ray_address=cluster.address).first()
    with executor_for(config) as executor:
        assert executor._started and ray.is_initialized()
        yield executor
    assert not ray.is_initialized()   # disconnected; the cluster runs on until the module ends


def small_space(tmp_path, model, **extra):
    """Two tiny configs of ``model`` (L2 weight 0 and 0.1), 2 epochs."""
    over = {"results_dir": str(tmp_path), "show_progress": False, "epochs": 2, "embedding_size": 8,
            "train_batch_size": 64, "reg_weight": [0.0, 0.1], **extra}
    if model == "LightGCN":
        over["n_layers"] = 2
    return resolve(model, "scientific", over, extra_layers=[("test", {"hyper_parameters": ["reg_weight"]})])


def by_run(records):
    return {r["run_id"]: r for r in records}


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_ray_address_on_two_nodes_gives_the_in_process_results(tmp_path, cluster, connected):
    ds = checkerboard()
    assert connected.parallelism == 2 and len([n for n in ray.nodes() if n["Alive"]]) == 2
    for model in ("BPR", "LightGCN"):
        local = run_search(small_space(tmp_path / "local", model, threads=1), ds)
        remote = run_search(small_space(tmp_path / "ray", model, ray_address=cluster.address), ds,
                            executor=connected)
        assert (remote.finished, remote.failed, remote.retried) == (2, 0, 0) and remote.faults() == ""
        stored = by_run(r for r in ResultsStore(tmp_path / "ray", "scientific").records() if r["model"] == model)
        assert stored.keys() == by_run(local.records).keys() and len(stored) == 2
        for run_id, r in by_run(local.records).items():
            assert stored[run_id]["valid"] == r["valid"] and stored[run_id]["test"] == r["test"]
            assert stored[run_id]["best_epoch"] == r["best_epoch"] and stored[run_id]["config"]["threads"] == 1


def test_node_lost_mid_search_reruns_its_trial_and_loses_nothing_finished(tmp_path, cluster, connected):
    from src.common.experiment.executors import RayExecutor

    ds = checkerboard()
    started = tmp_path / "started"   # a trial running on the second node leaves its run id here
    started.mkdir()
    doomed = cluster.second.node_id

    def hangs_on_the_second_node(config, dataset, run_dir, **kw):
        import ray as worker_ray

        if worker_ray.get_runtime_context().get_node_id() == doomed:
            (started / run_dir.name).touch()
            time.sleep(120)   # the node is removed while this runs; the test fails if it is not
            raise RuntimeError("the second node was not removed")
        # on the head: hold its only CPU until a trial runs on the second node, so that Ray has to
        # place one there (a checkerboard trial is so short that otherwise the head may run them all)
        deadline = time.monotonic() + 60
        while not any(started.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return train_one(config, dataset, run_dir, **kw)

    ex = RayExecutor(address=cluster.address, cpus_per_trial=1, max_retries=1, train=hangs_on_the_second_node)
    assert not ex._started and ex.parallelism == 2   # the module's connection
    try:
        assert ray.get_runtime_context().get_node_id() != doomed   # the driver's node stays up
        removed = threading.Event()

        def remove_the_second_node_once_a_trial_runs_there():
            if wait_for(lambda: any(started.iterdir()), timeout=120):
                cluster.remove_node(cluster.second, allow_graceful=False)
                removed.set()

        remover = threading.Thread(target=remove_the_second_node_once_a_trial_runs_there, daemon=True)
        remover.start()
        summary = run_search(bpr_space(tmp_path / "ray"), ds, executor=ex)
        remover.join(timeout=60)
    finally:
        ex.close()
    assert removed.is_set()
    lost_runs = sorted(p.name for p in started.iterdir())
    assert len(lost_runs) == 1   # the two first trials went one to each node; the rest ran on the head
    assert (summary.finished, summary.failed, summary.lost) == (4, 0, 0)
    assert (summary.retried, summary.lost_attempts) == (1, {"node lost": 1})
    assert summary.faults() == "1 run(s) re-run after a lost attempt (lost attempts: 1x node lost)"

    entries = ResultsStore(tmp_path / "ray", "scientific").entries(status="")
    run_ids = [record["run_id"] for _, record in entries]
    assert len(run_ids) == 4 and len(set(run_ids)) == 4   # every run recorded, each exactly once
    assert all(record["status"] == "finished" and path.name == record["run_id"] for path, record in entries)
    rerun = by_run(record for _, record in entries)[lost_runs[0]]
    assert rerun["lost_attempts"] == ["node lost"]
    assert all("lost_attempts" not in record for _, record in entries if record["run_id"] != lost_runs[0])
    local = by_run(run_search(bpr_space(tmp_path / "local", threads=1), ds).records)
    assert rerun["valid"] == local[lost_runs[0]]["valid"] and rerun["test"] == local[lost_runs[0]]["test"]

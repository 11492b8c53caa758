"""``compare``: paired B - A over users, by run ids or by labels; bad ids are one line and exit 2."""
import numpy as np

from src.common.eval.per_user import write_per_user
from src.common.experiment.results import ResultsStore
from src.common.storage import atomic_write_text

from tests.cli.test_cli import run

N = 2000


def add_run(store, label, seed, values, with_file=True):
    users = np.arange(N)
    run_id = f"{label}-{seed:03d}c0ffee42"
    run_dir = store.root / label / run_id
    cold = users[::4]
    if with_file:
        write_per_user(run_dir, {"users": users, "recall@20": values, "ndcg@20": values / 2,
                                 "cold/users": cold, "cold/recall@20": values[::4], "cold/ndcg@20": values[::4] / 2})
    atomic_write_text(run_dir / "config.yaml", f"model: {label}\ndataset: toy\nseed: {seed}\n")
    store.write(run_dir, {"label": label, "model": label, "run_id": run_id, "seed": seed, "swept": {},
                          "dataset": "toy", "config": {"valid_metric": "recall@20", "seed": seed},
                          "valid": {"recall@20": 0.1}, "test": {"recall@20": float(values.mean())},
                          "status": "finished"})
    return run_id


def test_compare_runs_and_labels(tmp_path):
    store = ResultsStore(tmp_path, "toy")
    rng = np.random.default_rng(0)
    base = np.where(rng.random(N) < 0.3, 0.5, 0.0)
    a = [add_run(store, "A", s, base) for s in (1, 2)]
    better = np.minimum(1, base + np.where(rng.random(N) < 0.2, 0.5, 0.0))
    b = [add_run(store, "B", s, better) for s in (1, 2)]
    old = add_run(store, "Old", 1, base, with_file=False)
    common = ["--set", f"results_dir={tmp_path}"]

    out = run("compare", "--run", a[0], "--run", b[0][:5], *common).stdout   # a unique prefix is enough
    row = next(line for line in out.splitlines() if line.startswith("| all | recall@20"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == str(N) and float(cells[5]) == round(better.mean() - base.mean(), 4)
    assert cells[7] == "<1e-4" and cells[6].startswith("[+")
    assert "| cold | ndcg@20 | 500 |" in out

    same = run("compare", "-d", "toy", "--label", "A", "--label", "a", *common).stdout
    row = next(line for line in same.splitlines() if line.startswith("| all | recall@20"))
    assert "| 0.0000 | [+0.0000, +0.0000] | 1.0000 |" in row and "2 seed(s)" in same

    bad = run("compare", "--run", "nope-123", "--run", b[0], *common, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown run id 'nope-123'")
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    no_file = run("compare", "--run", old, "--run", b[0], *common, check=False)
    assert no_file.returncode == 2 and "no per_user.npz" in no_file.stderr and "Traceback" not in no_file.stderr
    one = run("compare", "--run", a[0], *common, check=False)
    assert one.returncode == 2 and "exactly two" in one.stderr

"""The leaderboard's significance marks on a constructed store: ties, clear losers, old runs."""
import numpy as np
import pytest

from src.common.eval.per_user import write_per_user
from src.common.experiment.results import ResultsStore, significance_markdown, significance_table

N = 3000


def add_run(store, label, seed, values, with_file=True):
    """A finished record whose test metrics are the means of the given per-user values."""
    users = np.arange(N)
    cold = users[::3]
    run_id = f"{label}-{seed}"
    run_dir = store.root / label / run_id
    flat = {"users": users, "recall@20": values, "cold/users": cold, "cold/recall@20": values[::3]}
    if with_file:
        write_per_user(run_dir, flat)
    record = {"label": label, "model": label, "run_id": run_id, "seed": seed, "swept": {},
              "config": {"valid_metric": "recall@20", "seed": seed}, "valid": {"recall@20": 0.1},
              "test": {"recall@20": float(np.float32(values).mean()),
                       "cold/recall@20": float(np.float32(values[::3]).mean())},
              "n_parameters": 10, "seconds_per_epoch": 0.1, "best_epoch": 3, "status": "finished"}
    store.write(run_dir, record)


@pytest.fixture
def store(tmp_path):
    store = ResultsStore(tmp_path, "toy")
    rng = np.random.default_rng(0)
    base = np.where(rng.random(N) < 0.3, rng.integers(1, 5, N) / 4, 0.0)
    for seed in (0, 1):
        jitter = np.where(rng.random(N) < 0.02, 0.25, 0.0)          # seeds differ a little
        add_run(store, "Best", seed, np.minimum(1, base + jitter))
        add_run(store, "Twin", seed, np.minimum(1, base + jitter[::-1]))  # same mean, other users
        add_run(store, "Worse", seed, base * 0.6)                   # clearly lower, same users
        add_run(store, "Old", seed, base * 0.99, with_file=False)   # trained before per_user.npz
    return store


def test_ties_are_marked_losers_are_not_and_old_runs_get_a_note(store):
    df = significance_table(store.records(), store, ["recall@20"])
    row = {r["model"]: r for _, r in df.iterrows()}
    assert set(row) == {"Best", "Twin", "Worse", "Old"} and row["Best"]["seeds"] == 2
    assert row["Best"]["recall@20 mark"] == True and np.isnan(row["Best"]["recall@20 p"])  # noqa: E712
    assert row["Twin"]["recall@20 mark"] == True and row["Twin"]["recall@20 p"] >= 0.05  # noqa: E712
    assert row["Worse"]["recall@20 mark"] == False and row["Worse"]["recall@20 p"] < 1e-6  # noqa: E712
    assert row["Old"]["recall@20 mark"] is None
    assert row["Best"]["recall@20 ci_low"] < row["Best"]["recall@20"] < row["Best"]["recall@20 ci_high"]
    assert "cold/recall@20 mark" in df and row["Worse"]["cold/recall@20 mark"] == False  # noqa: E712
    text = significance_markdown(df.drop(columns=["run_id"]))
    assert "Holm" in text and "note: Old: no significance mark" in text
    best_line = next(line for line in text.splitlines() if line.startswith("| Best"))
    worse_line = next(line for line in text.splitlines() if line.startswith("| Worse"))
    assert "]*" in best_line and "]*" not in worse_line and " ± " in worse_line


def test_a_store_of_only_old_runs_has_no_marks_and_does_not_crash(tmp_path):
    store = ResultsStore(tmp_path, "toy")
    add_run(store, "A", 0, np.full(N, 0.2), with_file=False)
    add_run(store, "B", 0, np.full(N, 0.1), with_file=False)
    df = significance_table(store.records(), store, ["recall@20"])
    assert df["recall@20 mark"].isna().all() and "*" not in significance_markdown(df).split("\n\n")[0]

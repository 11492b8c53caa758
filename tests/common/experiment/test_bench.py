"""The benchmark runs (times are not asserted: machines are noisy)."""
import math

import pytest

from src.common.experiment.bench import (Variant, interleaved_steps, measure, measure_in_subprocess, replicate,
                                        stored_time_to_best, time_to_best)

from tests.conftest import checkerboard


def test_replicate_multiplies_users_items_and_edges_and_keeps_features_aligned():
    ds = checkerboard()
    big = replicate(ds, 3, rewire=0.2, seed=0)
    assert (big.n_users, big.n_items) == (3 * ds.n_users, 3 * ds.n_items)
    assert len(big.train) + len(big.valid) + len(big.test) <= 3 * (len(ds.train) + len(ds.valid) + len(ds.test))
    assert len(big.train) >= 3 * len(ds.train) * 0.95   # rewiring may create a few duplicates
    assert big.features["image"].shape == (3 * ds.n_items, ds.features["image"].shape[1])


def test_measure_in_process_and_in_a_fresh_process():
    m = measure("BPR", "scientific", epochs=1, warmup=0, threads=1, overrides={"reg_weight": 0.1})
    assert m.s_per_epoch > 0 and m.eval_s > 0 and m.params > 0 and not m.synthetic_features
    sub = measure_in_subprocess("LightGCN", "scientific", 1, 1, 0, 1,
                                {"n_layers": 1, "reg_weight": 1e-4}, timeout=300)
    assert sub.error == "" and sub.peak_rss_mib > 0 and not math.isnan(sub.s_per_epoch)
    bad = measure_in_subprocess("LightGCN", "scientific", 1, 1, 0, 1, {"no_such_key": 1}, timeout=300)
    assert "no_such_key" in bad.error


def test_time_to_best_sums_the_recorded_epochs_and_validations_up_to_the_best_one():
    history = [{"epoch": e, "seconds": 2.0, **({"valid": {}} if e % 2 else {})} for e in range(6)]
    record = {"best_epoch": 3, "history": history, "eval_seconds": 0.5, "seconds_per_epoch": 9.0}
    assert time_to_best(record) == 4 * 2.0 + 2 * 0.5          # epochs 0-3, evaluations after 1 and 3
    assert time_to_best({"best_epoch": 3, "seconds_per_epoch": 1.5}) == 6.0   # no history recorded
    assert math.isnan(time_to_best({"best_epoch": -1, "history": []}))        # never evaluated


def test_stored_time_to_best_takes_the_best_config_by_valid_mean_over_its_seeds(tmp_path):
    from src.common.experiment.results import ResultsStore

    assert math.isnan(stored_time_to_best(tmp_path, "sports", "VBPR"))   # empty store: '-' in the table
    store = ResultsStore(tmp_path, "sports")
    runs = [("a", 0.1, 0, 0.30, 1.0), ("b", 0.1, 1, 0.32, 3.0),          # the best config, two seeds
            ("c", 1.0, 0, 0.20, 0.1), ("d", 0.1, 0, 0.99, 0.1)]          # worse config; another label
    for run_id, reg, seed, recall, s_per_epoch in runs:
        label = "MOTOR-VBPR" if run_id == "d" else "VBPR"
        store.write(tmp_path / "sports" / "VBPR" / run_id, {
            "run_id": run_id, "status": "finished", "model": "VBPR", "label": label, "seed": seed,
            "config": {"reg_weight": reg, "seed": seed, "valid_metric": "recall@20"},
            "valid": {"recall@20": recall}, "best_epoch": 1, "seconds_per_epoch": s_per_epoch})
    assert stored_time_to_best(tmp_path, "sports", "VBPR") == (2 * 1.0 + 2 * 3.0) / 2
    assert math.isnan(stored_time_to_best(tmp_path, "sports", "BPR"))


def test_real_runs_record_what_time_to_best_needs(tmp_path):
    from src.common.experiment.search import run_search
    from tests.common.experiment.test_search import space

    summary = run_search(space(tmp_path, learning_rate=0.01, reg_weight=0.0), checkerboard())
    (record,) = summary.records
    assert len(record["history"]) == 2 and all("seconds" in h and "valid" in h for h in record["history"])
    upto = record["history"][:record["best_epoch"] + 1]
    expected = sum(h["seconds"] for h in upto) + len(upto) * record["eval_seconds"]
    assert stored_time_to_best(tmp_path, "scientific", "BPR") == expected > 0


def test_interleaved_steps_times_every_variant_in_rounds_across_epoch_ends(monkeypatch):
    from src.common.trainer import Trainer

    calls = []
    step = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self, batch, where="": calls.append(self) or step(self, batch, where))
    variants = [Variant("BPR", "BPR", {}), Variant("BPR, strong L2", "BPR", {"reg_weight": 0.5})]
    # scientific's train split is 7 batches of 2048: 3 warm-up + 5 timed steps run into a second epoch
    table = interleaved_steps(variants, "scientific", steps=5, rounds=2, warmup=3, threads=1, common={"reg_weight": 0.1})
    assert list(table.variant) == ["BPR", "BPR, strong L2"] and list(table.overrides) == ["", "reg_weight=0.5"]
    assert (table.min_ms <= table.ms_per_step).all() and (table.ms_per_step <= table.max_ms).all()
    assert (table.min_ms > 0).all() and table.x_first[0] == 1.0
    trainers = list(dict.fromkeys(calls))
    assert len(trainers) == 2 and [t.config.reg_weight for t in trainers] == [0.1, 0.5]   # common, then own
    assert [calls.count(t) for t in trainers] == [3 + 2 * 5] * 2
    # rounds alternate: each round times one variant's 5 steps, then the other's
    assert calls[6:] == ([trainers[0]] * 5 + [trainers[1]] * 5) * 2
    with pytest.raises(ValueError, match="at least one variant"):
        interleaved_steps([], "scientific")

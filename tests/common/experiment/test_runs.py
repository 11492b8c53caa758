"""Saved runs: a loaded run scores exactly as at the end of training, the dataset check names what
changed, run ids resolve by prefix, and the test-time top-K lets pandas recompute the metrics."""
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from src.common.data.dataset import DataError, load_dataset
from src.common.eval.evaluator import Evaluator
from src.common.recommender import RecommendError, resolve
from src.common.experiment.results import ResultsStore, make_record, run_id_for
from src.common.experiment.runs import RunError, ensure_test_topk, find_run, load_run, saved_runs
from src.common.experiment.search import run_search
from src.common.eval.topk import run_topk_path
from src.common.trainer import Trainer, build_model

from tests.conftest import checkerboard


def write_tiny_data(root, duplicates=True):
    """The checkerboard world as ``<root>/scientific/scientific.inter`` (IDs only), plus duplicate
    (user, item) pairs the loader drops: a train pair repeated in test, a valid pair repeated."""
    ds = checkerboard()
    frames = [pd.DataFrame({"userID": s.users, "itemID": s.items, "x_label": label})
              for label, s in enumerate((ds.train, ds.valid, ds.test))]
    inter = pd.concat(frames, ignore_index=True)
    if duplicates:
        first_train = inter[inter.x_label == 0].iloc[[0, 5]]
        first_valid = inter[inter.x_label == 1].iloc[[3]]
        inter = pd.concat([inter, first_train.assign(x_label=2), first_valid.assign(x_label=2)],
                          ignore_index=True)
    folder = root / "scientific"
    folder.mkdir(parents=True, exist_ok=True)
    inter.sample(frac=1.0, random_state=0).to_csv(folder / "scientific.inter", sep="\t", index=False)
    return folder / "scientific.inter"


def tiny_space(tmp_path, **extra):
    over = {"data_path": str(tmp_path / "data"), "results_dir": str(tmp_path / "saved"), "show_progress": False,
            "threads": 1, "epochs": 6, "embedding_size": 8, "train_batch_size": 64, "learning_rate": 0.01,
            "n_layers": 1, "reg_weight": 1e-4, "topk": [10, 20], "eval_batch_size": 16, **extra}
    return resolve("LightGCN", "scientific", over)


@pytest.fixture
def trained(tmp_path):
    """A finished LightGCN run on the tiny data, with its test top-20 saved."""
    inter_path = write_tiny_data(tmp_path / "data")
    space = tiny_space(tmp_path, save_topk=20)
    summary = run_search(space)
    record = summary.records[0]
    return tmp_path, inter_path, record


def test_loaded_run_scores_exactly_as_at_the_end_of_training(tmp_path):
    write_tiny_data(tmp_path / "data")
    config = tiny_space(tmp_path).first()
    dataset = load_dataset(config)
    store = ResultsStore(config.results_dir, config.dataset)
    run_dir = store.run_dir(config, dataset.fingerprint)
    trainer = Trainer(config, dataset, run_dir=run_dir)
    result = trainer.fit()
    store.write_config(run_dir, config)
    store.write(run_dir, make_record(config, dataset.fingerprint, run_dir.name, result, dataset=dataset))

    model, loaded_ds, loaded_cfg, record = load_run(run_dir.name, config.results_dir)
    assert loaded_cfg.identity() == config.identity() and record["run_id"] == run_dir.name
    assert loaded_cfg.show_progress and not config.show_progress  # display follows today's config
    users = torch.arange(dataset.n_users)
    with torch.no_grad():
        assert torch.equal(model.full_sort_predict(users), trainer.model.full_sort_predict(users))
    evaluator = Evaluator(loaded_ds, loaded_cfg.metrics, loaded_cfg.topk, loaded_cfg.eval_batch_size)
    with torch.no_grad():
        again = evaluator.evaluate(model.full_sort_predict, "test")
    assert again == {k: result.test[k] for k in again}   # the record also has the degree-bucket views


def test_recommend_excludes_train_items_and_ranks_by_score():
    ds = checkerboard()
    model = build_model(resolve("LightGCN", "scientific", {"embedding_size": 8, "threads": 1}).first(), ds)
    train = ds.train_matrix.toarray().astype(bool)
    k = ds.n_items - int(ds.user_degree.max())
    top = model.recommend(np.arange(ds.n_users), k)
    assert top.items.shape == (ds.n_users, k) and (top.items >= 0).all()
    assert not np.take_along_axis(train, top.items.numpy(), 1).any()
    assert (top.scores[:, :-1] >= top.scores[:, 1:]).all()
    with torch.no_grad():
        scores = model.full_sort_predict(torch.arange(ds.n_users)).masked_fill(torch.from_numpy(train), -torch.inf)
    assert torch.equal(top.scores, torch.sort(scores, dim=1, descending=True).values[:, :k])

    # asking for the whole catalogue: each user's train items are left out as -1 / -inf slots
    full = model.recommend([0, 1], ds.n_items)
    assert ((full.items == -1).sum(1).numpy() == ds.user_degree[[0, 1]]).all()
    assert torch.isneginf(full.scores[full.items == -1]).all()
    # without exclusion the train items come back; a model in training stays in training
    model.train()
    assert set(model.recommend([0], ds.n_items, exclude=None).items[0].tolist()) == set(range(ds.n_items))
    assert model.training


def test_bad_requests_are_one_line_errors(trained):
    root, _, record = trained
    model = load_run(record["run_id"], root / "saved").model
    with pytest.raises(RecommendError, match=r"unknown user id\(s\) 40, 99: user ids run from 0 to 39"):
        model.recommend([3, 40, 99], 5)
    with pytest.raises(RecommendError, match=r"k=31 is larger than the catalogue \(30 items\)"):
        model.recommend([3], 31)
    with pytest.raises(RecommendError, match="k must be a positive integer"):
        model.recommend([3], 0)
    with pytest.raises(RunError, match="unknown run id 'LightGCN-ffff'.*python main.py runs"):
        load_run("LightGCN-ffff", root / "saved")


def test_run_ids_resolve_by_unique_prefix(trained):
    root, _, record = trained
    run_id = record["run_id"]
    saved = root / "saved"
    assert find_run(run_id, saved).name == run_id
    assert find_run(run_id[:12].lower(), saved).name == run_id          # LightGCN-<3 hex>
    assert find_run(run_id.split("-")[1][:4], saved).name == run_id     # the hex part alone
    assert find_run(find_run(run_id, saved)).name == run_id             # a folder path
    other = run_search(tiny_space(root, n_layers=2)).records[0]["run_id"]
    with pytest.raises(RunError, match="ambiguous.*give more characters"):
        find_run("LightGCN", saved)
    assert {r.run_id for r in saved_runs(saved)} == {run_id, other}


def test_changed_data_is_refused_naming_what_changed(trained, caplog):
    root, inter_path, record = trained
    inter = pd.read_csv(inter_path, sep="\t")
    # same users and items, one train interaction moved to another item of the same user's parity
    row = inter.index[(inter.x_label == 0)][0]
    user = inter.at[row, "userID"]
    taken = set(inter.itemID[inter.userID == user])
    inter.at[row, "itemID"] = next(i for i in range(user % 2, 30, 2) if i not in taken)
    inter.to_csv(inter_path, sep="\t", index=False)
    with pytest.raises(DataError, match=r"trained on other data.*scientific.inter changed.*check_data=False"):
        load_run(record["run_id"], root / "saved")
    with caplog.at_level(logging.WARNING):
        model = load_run(record["run_id"], root / "saved", check_data=False).model
    assert "loading anyway" in caplog.text and model.n_users == 40

    # one more user: counts differ too, and the checkpoint cannot fit
    pd.concat([inter, pd.DataFrame({"userID": [40] * 3, "itemID": [0, 2, 4], "x_label": [0, 1, 2]})]
              ).to_csv(inter_path, sep="\t", index=False)
    with pytest.raises(DataError, match=r"users 40 -> 41.*train \d+ -> \d+"):
        load_run(record["run_id"], root / "saved")
    with pytest.raises(DataError, match="model.pt does not fit LightGCN"):
        load_run(record["run_id"], root / "saved", check_data=False)


def test_unfinished_and_checkpointless_runs_say_why(tmp_path):
    write_tiny_data(tmp_path / "data")
    record = run_search(tiny_space(tmp_path, save_checkpoint=False, epochs=1)).records[0]
    with pytest.raises(RunError, match="has no checkpoint.*save_checkpoint: false"):
        load_run(record["run_id"], tmp_path / "saved")
    run_dir = find_run(record["run_id"], tmp_path / "saved")
    (run_dir / "result.json").unlink()
    with pytest.raises(RunError, match="has not finished"):
        load_run(record["run_id"], tmp_path / "saved")


def test_topk_file_recomputes_the_evaluator_metrics_with_pandas(trained):
    root, inter_path, record = trained
    top = pd.read_csv(run_topk_path(root / "saved" / "scientific" / "LightGCN" / record["run_id"], 20), sep="\t")

    # the evaluator's protocol, independently: one copy of each (user, item) pair (the earliest
    # split's), test = x_label 2, train + valid items are never ranked
    inter = pd.read_csv(inter_path, sep="\t").sort_values("x_label", kind="stable")
    inter = inter.drop_duplicates(["userID", "itemID"])
    seen = inter[inter.x_label < 2].merge(top, on=["userID", "itemID"])
    assert seen.empty
    test = inter[inter.x_label == 2][["userID", "itemID"]]
    n_rel = test.groupby("userID").size()
    assert set(top.userID) == set(n_rel.index)
    hits = top.merge(test.assign(hit=1.0), on=["userID", "itemID"], how="left").fillna({"hit": 0.0})
    for k in (10, 20):
        h = hits[hits["rank"] <= k]
        recall = h.groupby("userID").hit.sum() / n_rel
        dcg = (h.hit / np.log2(h["rank"] + 1)).groupby(h.userID).sum()
        idcg = n_rel.clip(upper=k).map(lambda n: (1 / np.log2(np.arange(2, n + 2))).sum())
        assert recall.mean() == pytest.approx(record["test"][f"recall@{k}"], abs=1e-6)
        assert (dcg / idcg).mean() == pytest.approx(record["test"][f"ndcg@{k}"], abs=1e-6)
    assert record["test"]["recall@20"] > 0  # the comparison is not between zeros


def test_save_topk_on_a_finished_run_comes_from_its_checkpoint(trained):
    root, _, record = trained
    run_dir = find_run(record["run_id"], root / "saved")
    at_training = run_topk_path(run_dir, 20).read_text()
    run_topk_path(run_dir, 20).unlink()
    path = ensure_test_topk(record["run_id"], 20, root / "saved", threads=1)
    assert path.read_text() == at_training


def test_record_keeps_counts_and_a_hash_per_file(trained):
    root, _, record = trained
    data = json.loads((find_run(record["run_id"], root / "saved") / "result.json").read_text())["data"]
    assert (data["users"], data["items"]) == (40, 30)
    assert set(data["files"]) == {"scientific.inter"} and data["fingerprint"] == record["fingerprint"]
    assert record["run_id"] == run_id_for(tiny_space(root, save_topk=20).first(), record["fingerprint"])


def test_a_run_from_before_a_later_key_loads_with_the_value_it_was_trained_with(tmp_path):
    """Keys added since a run was made take their current defaults when it is loaded, except the
    LATER_KEYS: those take the value that computes what the run computed (MoToRec's defaults
    changed to degree_form floor and a learned temperature; its older runs used bias, fixed)."""
    import yaml
    from src.common.config import LATER_KEYS
    from src.common.experiment.runs import run_config
    for model, dropped in (("MoToRec", ("degree_form", "learn_score_scale")), ("LightGCN", ())):
        config = resolve(model, "scientific", {}).first().to_dict()
        run_dir = tmp_path / model
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text(yaml.safe_dump({k: v for k, v in config.items() if k not in dropped}))
        loaded = run_config(run_dir).to_dict()
        for key in dropped:
            assert config[key] != LATER_KEYS[key] and loaded[key] == LATER_KEYS[key]
        assert not set(loaded) - set(config)     # no key of another model creeps in
        assert {k: v for k, v in loaded.items() if k not in dropped} == {k: v for k, v in config.items()
                                                                         if k not in dropped}

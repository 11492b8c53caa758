"""Seeds of one config are grouped even when some records carry keys that do not change the run
(MOTOR's settings in an ID run, recorded or not by the code version that trained it)."""
import src.common.nn.item_repr  # noqa: F401 - registers the MOTOR section and its inactive keys
from src.common.experiment.results import group_by_config


def record(seed, label="LightGCN", **config):
    return {"label": label, "seed": seed, "config": {"model": "LightGCN", "reg_weight": 0.01, "seed": seed,
                                                      "item_representation": "id", **config}}


def test_inactive_keys_do_not_split_the_seeds_of_one_config():
    runs = [record(999), record(1, pq_collision_token=True), record(2, pq_collision_token=False)]
    assert [len(g) for g in group_by_config(runs).values()] == [3]


def test_active_keys_still_split():
    runs = [record(999, reg_weight=0.1), record(1), record(2, item_representation="motor", pq_collision_token=True)]
    assert sorted(len(g) for g in group_by_config(runs).values()) == [1, 1, 1]

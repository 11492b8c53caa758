"""``departures``: what in a stored run's config today's defaults (YAML, grid, overrides) would not train."""
from src.common.experiment.results import departures, describe_departures
from src.common.recommender import resolve


def record_at(space, **changes):
    point = {k: v[0] for k, v in space.grid.items()}
    return {"config": {**space.config_at(point, 999).to_dict(), **changes}}


def test_departures_name_what_today_would_not_train():
    space = resolve("LightGCN", "scientific", {})
    assert departures(record_at(space), space) == {}
    assert departures(record_at(space, negative_popularity=0.5), space) == {"negative_popularity": (0.5, 0.0)}
    key, values = next(iter(space.grid.items()))
    assert departures(record_at(space, **{key: values[-1]}), space) == {}        # another grid point: today's too
    assert departures(record_at(space, **{key: 12345}), space) == {key: (12345, values)}
    # where and how a run executes, its seed, and MOTOR's keys under ID embeddings change nothing
    assert departures(record_at(space, threads=7, seed=3, motor_layers=5, results_dir="elsewhere"), space) == {}
    assert describe_departures({"negative_popularity": (0.5, 0.0), key: (12345, values)}) == \
        f"{key}=12345 (today's grid {values}), negative_popularity=0.5 (today 0.0)"


def test_runs_from_before_a_key_count_at_the_value_they_used():
    """MoToRec's negative_popularity became 0.25; runs recorded before the key existed drew uniform
    negatives (LATER_KEYS: 0.0), so they depart from today's MoToRec and not from today's LightGCN."""
    motorec = resolve("MoToRec", "scientific", {})
    old = record_at(motorec)
    del old["config"]["negative_popularity"]
    assert departures(old, motorec) == {"negative_popularity": (0.0, 0.25)}
    assert departures(old, resolve("MoToRec", "scientific", {"negative_popularity": 0.0})) == {}
    lightgcn = resolve("LightGCN", "scientific", {})
    old = record_at(lightgcn)
    del old["config"]["negative_popularity"]
    assert departures(old, lightgcn) == {}

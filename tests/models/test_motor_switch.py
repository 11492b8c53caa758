"""``item_representation: motor`` on every registered model: models that take their item vectors
from ``item_representation`` keep their scoring interface (one finite step, (B, n_items) scores,
same seed same scores, state_dict round trip) and hold MOTOR's tokens instead of an ID table; models that
do not use one refuse the switch with a clear error instead of silently ignoring it."""
import pytest

from src.common.config import ConfigError
from src.common.nn.item_repr import IDEmbedding, MotorRepresentation
from src.common.recommender import model_names
from src.common.trainer import build_model

from tests.conftest import checkerboard
from tests.models.test_contract import assert_scoring_contract, tiny_config


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def motor(name, cache, **extra):
    return tiny_config(name, item_representation="motor", pq_subspaces=2, pq_codebook_size=4,
                       cache_dir=cache, **extra)


@pytest.mark.parametrize("name", model_names())
def test_motor_switch_keeps_the_scoring_interface(name, cache):
    ds = checkerboard()
    cfg = motor(name, cache)
    try:
        model = build_model(cfg, ds)
    except ConfigError as e:
        assert f"does not apply to {name}" in str(e)
        assert not build_model(cfg.replace(item_representation="id"), ds).uses_item_representation
        return
    kinds = {type(m) for m in model.modules()}
    assert MotorRepresentation in kinds and IDEmbedding not in kinds, "the ID table is replaced"
    assert_scoring_contract(model, cfg, ds)   # first: it compares against a fresh build's RNG stream
    assert model.n_parameters() != build_model(cfg.replace(item_representation="id"), ds).n_parameters()

"""Config layering, typing, validation and grid expansion."""
import pytest

from src.common.config import ConfigError, load_yaml, parse_override
from src.common.recommender import resolve


def test_layers_overall_dataset_model_and_command_line():
    space = resolve("LightGCN", "scientific", {"learning_rate": 0.005})
    cfg = space.first()
    assert cfg.learning_rate == 0.005                  # --set wins
    assert cfg.feature_files["image"] == "image_feat.npy"   # dataset layer
    assert cfg.hyper_parameters == ["n_layers", "reg_weight"]  # model layer
    assert cfg.stopping_step == 20                     # overall layer


def test_grid_is_cartesian_product_and_seed_lists_repeat_points():
    space = resolve("LightGCN", "scientific", {"seed": [1, 2]})
    assert len(space) == 3 * 3 * 2
    points = {(c.n_layers, c.reg_weight, c.seed) for c in space}
    assert len(points) == 18


def test_scalar_override_pins_a_swept_key():
    space = resolve("LightGCN", "scientific", {"n_layers": 2})
    assert {c.n_layers for c in space} == {2} and len(space) == 3


def test_unknown_key_is_an_error_listing_valid_ones():
    with pytest.raises(ConfigError, match=r"--set: unknown config key 'n_layer'.*Did you mean 'n_layers'"):
        resolve("LightGCN", "scientific", {"n_layer": 3})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="--set: learning_rate: expected float"):
        resolve("BPR", "scientific", {"learning_rate": "fast"})


def test_list_under_a_key_not_in_hyper_parameters_is_an_error():
    with pytest.raises(ConfigError, match="add 'learning_rate' to hyper_parameters"):
        resolve("BPR", "scientific", {"learning_rate": [0.1, 0.01]})


def test_yaml_scientific_notation_strings_are_read_as_floats():
    cfg = resolve("BPR", "scientific", {"reg_weight": "1e-4"}).first()
    assert cfg.reg_weight == 1e-4 and isinstance(cfg.reg_weight, float)


def test_yaml_booleans_are_read_as_the_choice_they_spell():
    """YAML 1.1 reads ``off`` as false: ``--set feature_residual=off`` (or ``feature_residual: off``
    in a YAML layer) is the choice ``off``; a boolean that names no choice is still an error."""
    cfg = resolve("MoToRec", "scientific", dict([parse_override("feature_residual=off")])).first()
    assert cfg.feature_residual == "off"
    with pytest.raises(ConfigError, match="feature_residual: expected one of"):
        resolve("MoToRec", "scientific", {"feature_residual": True})
    with pytest.raises(ConfigError, match="fusion: expected one of"):
        resolve("MoToRec", "scientific", {"fusion": False})


def test_reading_an_undeclared_key_raises_instead_of_returning_none():
    cfg = resolve("BPR", "scientific").first()
    with pytest.raises(KeyError, match="not declared"):
        cfg.n_layers
    with pytest.raises(ConfigError, match="Did you mean 'reg_weight'"):
        cfg.reg_wieght


def test_cross_key_check_rejects_valid_metric_outside_topk():
    with pytest.raises(ConfigError, match="valid_metric"):
        resolve("BPR", "scientific", {"valid_metric": "recall@30"})


def test_unknown_model_and_dataset():
    with pytest.raises(KeyError, match="unknown model 'LightGNC'.*LightGCN"):
        resolve("LightGNC", "scientific")
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        resolve("BPR", "nope")


def test_malformed_yaml_names_file_and_line(tmp_path):
    from src.common.config import load_yaml
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: malformed YAML"):
        load_yaml(bad)


def test_parse_override_reads_yaml_values():
    assert parse_override("lr=0.5") == ("lr", 0.5)
    assert parse_override("topk=[5, 10]") == ("topk", [5, 10])
    assert parse_override("flag=true") == ("flag", True)
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_config_is_read_only_and_identity_ignores_bookkeeping():
    cfg = resolve("BPR", "scientific").first()
    with pytest.raises(AttributeError):
        cfg.seed = 3
    assert cfg.replace(show_progress=False).identity() == cfg.identity()
    assert cfg.replace(seed=1).identity() != cfg.identity()


def test_motor_settings_stay_out_of_an_id_runs_identity():
    cfg = resolve("LightGCN", "scientific").first()
    assert cfg.item_representation == "id"
    assert cfg.replace(pq_codebook_size=cfg.pq_codebook_size * 2).identity() == cfg.identity()
    motor = cfg.replace(item_representation="motor")
    assert motor.replace(pq_codebook_size=cfg.pq_codebook_size * 2).identity() != motor.identity()


def test_a_later_key_at_its_old_value_keeps_the_run_ids_and_groups_of_runs_from_before_it():
    from src.common.config import Config
    from src.common.experiment.results import group_by_config
    cfg = resolve("MoToRec", "scientific", {"degree_bias": True, "degree_form": "bias"}).first()
    before = Config({k: v for k, v in cfg.to_dict().items() if k not in ("degree_form", "test_mask")})
    assert before.identity() == cfg.identity()
    assert cfg.replace(degree_form="scale").identity() != cfg.identity()
    # today's default (floor) is not what runs from before the key computed: a run id of its own
    assert resolve("MoToRec", "scientific", {"degree_bias": True}).first().identity() != cfg.identity()
    configs = (before, cfg, cfg.replace(degree_form="scale"), cfg.replace(test_mask="train"))
    records = [{"label": "MoToRec", "seed": 1, "config": c.to_dict()} for c in configs]
    assert sorted(len(g) for g in group_by_config(records).values()) == [1, 1, 2]


@pytest.mark.parametrize("key, value, message", [
    ("learning_rate", -0.001, "learning_rate must be positive, got -0.001 (learning_rate from --set)"),
    ("learning_rate", 0, "learning_rate must be positive"),
    ("weight_decay", -1, "weight_decay must be >= 0"),
    ("train_batch_size", 0, "train_batch_size must be positive"),
    ("cold_threshold", -1, "cold_threshold must be >= 0"),
    ("n_items", -5, "n_items must be >= 0"),
])
def test_run_key_ranges_are_checked_when_the_config_is_read(key, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve("BPR", "scientific", {key: value})


def test_a_negative_rate_in_a_grid_fails_before_any_point_runs():
    with pytest.raises(ConfigError, match="learning_rate must be positive, got -0.01"):
        resolve("BPR", "scientific", {"hyper_parameters": ["reg_weight", "learning_rate"], "learning_rate": [0.01, -0.01]})


@pytest.mark.parametrize("model, key, value", [
    ("BPR", "reg_weight", -1.0), ("LightGCN", "n_layers", -1), ("VBPR", "reg_weight", -0.1),
    ("FREEDOM", "reg_weight", -1e-4), ("LATTICE", "weight_size", []), ("BM3", "cl_weight", -2.0),
])
def test_model_key_ranges_are_checked_when_the_config_is_read(model, key, value):
    with pytest.raises(ConfigError, match=f"invalid model {model} settings: .*{key}"):
        resolve(model, "scientific", {key: value})


def test_a_key_given_twice_in_one_yaml_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("reg_weight: 0.1\nn_layers: 2\nreg_weight: 0.2\n")
    with pytest.raises(ConfigError, match=r"m.yaml:3: malformed YAML: key 'reg_weight' is given twice"):
        load_yaml(path)

"""MMRec's files work as they are: its overall, dataset and model YAMLs and its data folder layout.

The YAMLs and the data folder are written here in MMRec's form (its key names and file names), into
a temporary config folder that stands in for ``src/configs``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import src.common.config as config_module
from src.cli import main
from src.cli.train import overrides_per_model
from src.common.config import ConfigError
from src.common.data.dataset import load_dataset
from src.common.experiment.search import train_one
from src.common.recommender import resolve

MMREC_OVERALL = """\
# general
gpu_id: 0
use_gpu: True
seed: [999]
data_path: '../data/'
inter_splitting_label: 'x_label'
filter_out_cod_start_users: True
is_multimodal_model: True
checkpoint_dir: 'saved'
save_recommended_topk: True
recommend_topk: 'recommend_topk/'
embedding_size: 64
weight_decay: 0.0
req_training: True
epochs: 1000
stopping_step: 20
train_batch_size: 2048
learner: adam
learning_rate: 0.001
learning_rate_scheduler: [1.0, 50]
eval_step: 1
training_neg_sample_num: 1
use_neg_sampling: True
use_full_sampling: False
NEG_PREFIX: neg__
USER_ID_FIELD: user_id:token
ITEM_ID_FIELD: item_id:token
TIME_FIELD: timestamp:float
field_separator: "\\t"
metrics: ["Recall", "NDCG", "Precision", "MAP"]
topk: [5, 10, 20, 50]
valid_metric: Recall@20
eval_batch_size: 4096
use_raw_features: False
max_txt_len: 32
max_img_size: 256
vocab_size: 30522
type_vocab_size: 2
hidden_size: 4
pad_token_id: 0
max_position_embeddings: 512
layer_norm_eps: 1e-12
hidden_dropout_prob: 0.1
end2end: False
hyper_parameters: ["seed"]
"""

MMREC_DATASET = """\
USER_ID_FIELD: userID
ITEM_ID_FIELD: itemID
TIME_FIELD: timestamp
filter_out_cod_start_users: True
inter_file_name: 'mmsports.inter'
vision_feature_file: 'image_feat.npy'
text_feature_file: 'text_feat.npy'
user_graph_dict_file: 'user_graph_dict.npy'
field_separator: "\\t"
"""

MMREC_MODELS = {
    "FREEDOM": """embedding_size: 64
feat_embed_dim: 64
weight_size: [64, 64]
lambda_coeff: 0.9
reg_weight: [0.0, 1e-05, 1e-04, 1e-03]
n_mm_layers: 1
n_ui_layers: 2
knn_k: 10
mm_image_weight: 0.1
dropout: [0.8, 0.9]
hyper_parameters: ["dropout", "reg_weight"]
""",
    "LightGCN": """embedding_size: 64
is_multimodal_model: False
n_layers: [1, 2, 3, 4]
reg_weight: [1e-02, 1e-03, 1e-04, 1e-05, 1e-06]
hyper_parameters: ["n_layers", "reg_weight"]
""",
    "VBPR": """embedding_size: 64
reg_weight: [2.0, 1.0, 1e-01]
hyper_parameters: ["reg_weight"]
""",
    "LATTICE": """embedding_size: 64
feat_embed_dim: 64
weight_size: [64, 64]
learning_rate_scheduler: [0.96, 50]
lambda_coeff: 0.9
reg_weight: [0.0, 1e-05]
cf_model: lightgcn
mess_dropout: [0.1, 0.1]
n_layers: 1
knn_k: 10
learning_rate: [0.0001, 0.001]
hyper_parameters: ["reg_weight", "learning_rate"]
""",
    "BM3": """embedding_size: 64
feat_embed_dim: 64
n_layers: [1, 2]
dropout: [0.3, 0.5]
reg_weight: [0.1, 0.01]
cl_weight: 2.0
use_neg_sampling: False
hyper_parameters: ["n_layers", "reg_weight", "dropout"]
""",
    "LGMRec": """embedding_size: 64
feat_embed_dim: 64
cf_model: lightgcn
n_ui_layers: [2]
n_mm_layers: [2]
n_hyper_layer: [1]
hyper_num: [4]
keep_rate: [0.5]
alpha: [0.3]
cl_weight : [1e-04]
reg_weight: [1e-06]
hyper_parameters: ["n_ui_layers", "n_mm_layers", "n_hyper_layer", "hyper_num", "keep_rate",  "alpha", "cl_weight", "reg_weight"]
""",
}


@pytest.fixture
def mmrec(tmp_path, monkeypatch):
    """An MMRec config folder (overall, dataset ``mmsports``, the six models) standing in for
    ``src/configs``, and an MMRec data folder; returns the --set values that keep runs in tmp_path."""
    configs = tmp_path / "configs"
    (configs / "dataset").mkdir(parents=True)
    (configs / "model").mkdir()
    (configs / "overall.yaml").write_text(MMREC_OVERALL)
    (configs / "dataset" / "mmsports.yaml").write_text(MMREC_DATASET)
    for name, text in MMREC_MODELS.items():
        (configs / "model" / f"{name}.yaml").write_text(text)
    monkeypatch.setattr(config_module, "CONFIG_DIR", configs)

    folder = tmp_path / "data" / "mmsports"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n_users, n_items = 24, 16
    lines = ["userID\titemID\trating\ttimestamp\tx_label"]
    for u in range(n_users):
        items = rng.choice(n_items, size=6, replace=False)
        for j, i in enumerate(items):
            lines.append(f"{u}\t{i}\t5.0\t{1000 + j}\t{2 if j == 5 else 1 if j == 4 else 0}")
    (folder / "mmsports.inter").write_text("\n".join(lines) + "\n")
    np.save(folder / "image_feat.npy", rng.normal(size=(n_items, 12)).astype(np.float32))
    np.save(folder / "text_feat.npy", rng.normal(size=(n_items, 8)).astype(np.float32))
    np.save(folder / "user_graph_dict.npy", {0: [[1], [1]]}, allow_pickle=True)
    (folder / "i_id_mapping.csv").write_text("asin\titemID\n" + "".join(f"B00{i:04d}\t{i}\n" for i in range(n_items)))
    (folder / "u_id_mapping.csv").write_text("user_id\tuserID\n" + "".join(f"A{u:05d}\t{u}\n" for u in range(n_users)))
    return {"data_path": str(tmp_path / "data"), "results_dir": str(tmp_path / "saved"),
            "cache_dir": str(tmp_path / "cache"), "show_progress": False, "threads": 1}


@pytest.mark.parametrize("model", list(MMREC_MODELS))
def test_mmrec_yamls_load_and_train_one_epoch(mmrec, model):
    space = resolve(model, "mmsports", mmrec)
    cfg = space.first()
    assert (cfg.user_field, cfg.item_field, cfg.split_field) == ("userID", "itemID", "x_label")
    assert cfg.inter_file == "mmsports.inter"
    assert cfg.feature_files == {"image": "image_feat.npy", "text": "text_feat.npy"}
    assert cfg.device == "auto" and cfg.metrics == ["recall", "ndcg", "precision", "map"]
    assert cfg.valid_metric == "recall@20" and cfg.topk == [5, 10, 20, 50] and space.seeds == [999]
    ignored = " ".join(space.mmrec["ignored"])
    assert "is_multimodal_model" in ignored and "user_graph_dict_file" in ignored and "learner" in ignored
    assert any("filter_out_cod_start_users" in u for u in space.mmrec["unsupported"])

    dataset = load_dataset(cfg)
    assert (dataset.n_users, dataset.n_items) == (24, 16) and dataset.modalities == ["image", "text"]
    result = train_one(cfg.replace(epochs=1, embedding_size=16, train_batch_size=64), dataset, None)
    assert result.epochs_run == 1 and np.isfinite(result.test["recall@20"])


def test_mmrec_folder_ids_reach_recommend(mmrec, capsys):
    overrides = [f"{k}={v}" for k, v in mmrec.items()]
    assert main(["-m", "VBPR", "-d", "mmsports", "--set", "reg_weight=1.0", "epochs=1", *overrides]) == 0
    run_dir = next(d for d in (Path(mmrec["results_dir"]) / "mmsports" / "VBPR").iterdir() if d.is_dir())
    capsys.readouterr()
    assert main(["recommend", "--run", run_dir.name, "--users", "3", "-k", "4",
                 "--set", f"results_dir={mmrec['results_dir']}", "threads=1"]) == 0
    out = capsys.readouterr().out
    assert "user 3 (A00003)" in out and "source id" in out and "B00" in out


def test_an_mmrec_value_we_do_not_support_is_an_error(mmrec):
    with pytest.raises(ConfigError, match="learner: 'sgd' is not supported here: only Adam"):
        resolve("BPR", "mmsports", {**mmrec, "learner": "sgd"})
    with pytest.raises(ConfigError, match="feat_embed_dim: 32 is not supported: FREEDOM here projects"):
        resolve("FREEDOM", "mmsports", {**mmrec, "feat_embed_dim": 32})
    with pytest.raises(ConfigError, match="field_separator"):
        resolve("BPR", "mmsports", {**mmrec, "field_separator": ","})


def test_a_key_neither_ours_nor_mmrecs_lists_the_layers_keys_and_the_keys_command(mmrec):
    (config_module.CONFIG_DIR / "model" / "FREEDOM.yaml").write_text(MMREC_MODELS["FREEDOM"] + "knn_kk: 5\n")
    with pytest.raises(ConfigError) as e:
        resolve("FREEDOM", "mmsports", mmrec)
    message = str(e.value)
    assert "FREEDOM.yaml: unknown config key 'knn_kk'. Did you mean 'knn_k'" in message
    assert "FREEDOM's keys: dropout, knn_k" in message and "python main.py keys -m FREEDOM" in message
    assert "pq_subspaces" not in message  # not every key of every layer


def test_keys_command_lists_type_default_and_meaning(capsys):
    assert main(["keys", "-m", "FREEDOM"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("knn_k "))
    assert "int" in line and "10" in line and "neighbours" in line
    assert main(["keys", "--mmrec"]) == 0
    assert "inter_file_name" in capsys.readouterr().out


def test_multi_model_set_goes_to_the_models_that_declare_the_key(mmrec, caplog, capsys):
    caplog.set_level("INFO")
    per_model = overrides_per_model(["BPR", "LightGCN"], {"n_layers": 1, "learning_rate": 0.01})
    assert per_model["BPR"] == {"learning_rate": 0.01}
    assert per_model["LightGCN"] == {"n_layers": 1, "learning_rate": 0.01}
    assert "--set n_layers applies to LightGCN; not applicable to BPR" in caplog.text
    # a key no model and no section declares is still an error, before anything trains
    overrides = [f"{k}={v}" for k, v in mmrec.items()]
    assert main(["-m", "BPR,LightGCN", "-d", "mmsports", "--set", "n_layres=1", *overrides]) == 2
    assert "unknown config key 'n_layres': none of BPR, LightGCN and no layer declares it. Did you mean " \
           "'n_layers'" in capsys.readouterr().err


def test_mmrec_device_and_renamed_keys_translate_one_layer():
    from src.common.mmrec import MMRecValueError, translate
    ours = {"device": None, "user_field": None, "feature_files": None}
    assert translate({"use_gpu": False, "gpu_id": 0}, ours).values == {"device": "cpu"}
    assert translate({"use_gpu": True, "gpu_id": 1}, ours).values == {"device": "cuda:1"}
    assert translate({"USER_ID_FIELD": "user_id:token"}, ours).values == {"user_field": "user_id"}
    assert translate({"vision_feature_file": "v.npy", "text_feature_file": "t.npy"}, ours).values == {
        "feature_files": {"image": "v.npy", "text": "t.npy"}}
    with pytest.raises(MMRecValueError, match="both USER_ID_FIELD .* and user_field are set"):
        translate({"USER_ID_FIELD": "u", "user_field": "v"}, ours)
    kept = translate({"knn_kk": 3}, ours)  # neither ours nor MMRec's: left for the unknown-key error
    assert kept.values == {"knn_kk": 3} and not kept.ignored

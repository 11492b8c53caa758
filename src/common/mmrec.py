"""MMRec's config keys, read as ours: users bring MMRec's ``overall.yaml``, dataset and model YAMLs.

Each key MMRec declares (in its overall, dataset and model YAMLs of the models we have) is one of:

- **renamed**: it means the same as one of ours (``inter_file_name`` -> ``inter_file``,
  ``USER_ID_FIELD`` -> ``user_field``, ``vision_feature_file`` -> ``feature_files: {image: ..}``,
  ``use_gpu``/``gpu_id`` -> ``device``, ...);
- **ignored**: it has no effect here (``is_multimodal_model``, ``NEG_PREFIX``, ...), or holds the
  value that matches what we do (``learner: adam``, ``training_neg_sample_num: 1``); such keys are
  reported once, in one line;
- **unsupported**: its value asks for something we do not do. When that would change the training
  (``learner: sgd``, ``use_full_sampling: true``, a ``field_separator`` other than a tab) it is an
  error; when it only changes bookkeeping or the evaluated users it is reported with what we do
  instead (``save_recommended_topk``, ``filter_out_cod_start_users``).

A key a schema section declares is always ours, even when MMRec uses the same name. A key that is
neither ours nor MMRec's stays an unknown-key error (see :meth:`config.Schema.check_known`).
``python main.py keys --mmrec`` prints this table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


class MMRecValueError(ValueError):
    """An MMRec key whose value asks for behaviour we do not support (the message says what)."""


@dataclass
class Translated:
    """One layer's values with MMRec's keys turned into ours."""

    values: dict[str, Any]
    ignored: list[str] = field(default_factory=list)      # keys without effect here
    unsupported: list[str] = field(default_factory=list)  # "key=value (what we do instead)"


def _field_name(value: Any) -> str:
    """RecBole-style ``user_id:token`` -> ``user_id``."""
    return str(value).split(":", 1)[0]


def _is_false(value) -> bool:
    return value is False or str(value).strip().lower() in ("false", "0")


#: MMRec key -> (our key, value transform)
RENAMED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "USER_ID_FIELD": ("user_field", _field_name),
    "ITEM_ID_FIELD": ("item_field", _field_name),
    "inter_splitting_label": ("split_field", str),
    "inter_file_name": ("inter_file", str),
    "checkpoint_dir": ("results_dir", str),
}
#: MMRec key -> modality of our ``feature_files``
FEATURE_FILES = {"vision_feature_file": "image", "text_feature_file": "text"}
#: keys that only make sense together: turned into ``device``
DEVICE_KEYS = ("use_gpu", "gpu_id")

#: MMRec keys without effect here, with the reason (shown by ``keys --mmrec``)
IGNORED: dict[str, str] = {
    "is_multimodal_model": "the model class knows whether it uses features",
    "req_training": "every model here trains",
    "NEG_PREFIX": "negatives are not columns here",
    "TIME_FIELD": "splits come from x_label, not timestamps",
    "user_graph_dict_file": "no model here reads a user-user graph (DualGNN/DRAGON do)",
    "recommend_topk": "folder of save_recommended_topk (see save_topk)",
    "use_neg_sampling": "the model decides (BM3 uses no negatives, the others one per positive)",
    "degree_ratio": "not read by the FREEDOM here",
    "mess_dropout": "only MMRec's NGCF backbone of LATTICE reads it (cf_model: ngcf is not offered)",
    "weight_size": "read by LATTICE only (MMRec's FREEDOM.yaml carries it unread)",
    "lambda_coeff": "read by LATTICE only (MMRec's FREEDOM.yaml carries it unread)",
    "cf_model": "read by LATTICE and LGMRec only (MMRec's FREEDOM reads it without effect)",
    **{k: "raw-feature (end-to-end) encoders are not part of this project" for k in (
        "max_txt_len", "max_img_size", "vocab_size", "type_vocab_size", "hidden_size", "pad_token_id",
        "max_position_embeddings", "layer_norm_eps", "hidden_dropout_prob")},
}

def _no_decay(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and float(value[0]) == 1.0


#: MMRec keys accepted only at the value that matches what we do: key -> (accepted?, what we support)
CHECKED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learner": (lambda v: str(v).lower() == "adam", "only Adam (learner: adam)"),
    "training_neg_sample_num": (lambda v: str(v) == "1", "one negative per positive (training_neg_sample_num: 1)"),
    "use_full_sampling": (_is_false, "sampled negatives only (use_full_sampling: false)"),
    "use_raw_features": (_is_false, ".npy features only (use_raw_features: false)"),
    "end2end": (_is_false, "no end-to-end feature encoders (end2end: false)"),
    "field_separator": (lambda v: v == "\t", "tab-separated .inter files only (field_separator: \"\\t\")"),
    "learning_rate_scheduler": (_no_decay, "a learning-rate decay only for LATTICE, which declares "
                                "it; [1.0, step] (no decay) for the others"),
}

#: MMRec keys whose value changes something we do differently: reported, not applied
NOT_APPLIED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "filter_out_cod_start_users": (
        lambda v: not _is_false(v),
        "valid/test users without train interactions are kept and evaluated; MMRec's 5-core data has none"),
    "save_recommended_topk": (
        lambda v: not _is_false(v),
        "use save_topk: K to write every test user's top-K to the run folder"),
}


def is_mmrec_key(name: str) -> bool:
    return (name in RENAMED or name in FEATURE_FILES or name in DEVICE_KEYS or name in IGNORED
            or name in CHECKED or name in NOT_APPLIED or name == "feat_embed_dim")


def translate(values: Mapping[str, Any], declared: set[str] | Mapping[str, Any]) -> Translated:
    """One layer's ``values`` with MMRec's keys turned into ours; ``declared`` are our keys (never
    translated). Raises :class:`MMRecValueError` (``"key: why"``) for an unsupported value.
    ``feat_embed_dim`` passes through as is: :func:`check_feat_embed_dim` needs the merged layers."""
    out = Translated({})
    for key, value in values.items():
        if key == "data_path" and str(value).rstrip("/") == "../data":  # MMRec runs from its src/
            out.values[key] = "data"
        elif key in declared or not is_mmrec_key(key):
            out.values[key] = value
        elif key in RENAMED:
            ours, convert = RENAMED[key]
            _put(out, key, ours, convert(value), values)
        elif key in FEATURE_FILES:
            files = dict(out.values.get("feature_files") or values.get("feature_files") or {})
            files[FEATURE_FILES[key]] = str(value)
            out.values["feature_files"] = files
        elif key in DEVICE_KEYS:
            if key == "use_gpu" or "use_gpu" not in values:  # the pair gives one device
                _put(out, key, "device", _device(values.get("use_gpu", True), values.get("gpu_id", 0)), values)
        elif key in CHECKED:
            accepted, supported = CHECKED[key]
            try:
                ok = accepted(value)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise MMRecValueError(f"MMRec key {key}: {value!r} is not supported here: {supported}")
            out.ignored.append(key)
        elif key in NOT_APPLIED:
            applies, instead = NOT_APPLIED[key]
            if applies(value):
                out.unsupported.append(f"{key}={value} ({instead})")
            else:
                out.ignored.append(key)
        elif key == "feat_embed_dim":
            out.values[key] = value
        else:
            out.ignored.append(key)
    return out


def _put(out: Translated, mmrec_key: str, ours: str, value: Any, values: Mapping[str, Any]) -> None:
    if ours in values:
        raise MMRecValueError(f"both {mmrec_key} (MMRec's name) and {ours} are set; keep one")
    out.values[ours] = value


def _device(use_gpu: Any, gpu_id: Any) -> str:
    """MMRec's ``use_gpu``/``gpu_id`` as our ``device``: no GPU -> cpu; GPU 0 -> auto (CUDA when
    present, as MMRec falls back to the CPU); GPU N -> cuda:N."""
    if _is_false(use_gpu):
        return "cpu"
    try:
        index = int(gpu_id)
    except (TypeError, ValueError):
        raise MMRecValueError(f"gpu_id: expected a GPU number, got {gpu_id!r}") from None
    return "auto" if index == 0 else f"cuda:{index}"


def check_feat_embed_dim(model: str, merged: Mapping[str, Any]) -> str | None:
    """MMRec's ``feat_embed_dim`` for a model here that projects features to ``embedding_size``
    (FREEDOM, LGMRec; BM3 in MMRec already uses embedding_size). Returns the key to report as
    ignored, None when absent; raises when it asks for a different projection size."""
    if "feat_embed_dim" not in merged:
        return None
    dim, size = merged["feat_embed_dim"], merged.get("embedding_size")
    if isinstance(dim, list) or isinstance(size, list):
        values = {str(v) for v in (dim if isinstance(dim, list) else [dim])}
        sizes = {str(v) for v in (size if isinstance(size, list) else [size])}
        same = values == sizes and len(values) == 1
    else:
        same = str(dim) == str(size)
    if not same:
        raise MMRecValueError(f"feat_embed_dim: {dim!r} is not supported: {model} here projects features "
                              f"to embedding_size ({size!r}); set embedding_size instead")
    return "feat_embed_dim"


def table() -> list[tuple[str, str]]:
    """``(MMRec key, what it becomes here)`` for every MMRec key we know, for ``keys --mmrec``."""
    rows = [(k, f"-> {ours}") for k, (ours, _) in RENAMED.items()]
    rows += [(k, f"-> feature_files: {{{m}: <file>}}") for k, m in FEATURE_FILES.items()]
    rows += [("use_gpu, gpu_id", "-> device: cpu (use_gpu false) | auto (GPU 0) | cuda:N")]
    rows += [("data_path", "MMRec's '../data/' (relative to its src/) -> data")]
    rows += [(k, f"accepted when it matches what we do: {supported}") for k, (_, supported) in CHECKED.items()]
    rows += [(k, f"reported, not applied: {instead}") for k, (_, instead) in NOT_APPLIED.items()]
    rows += [("feat_embed_dim", "ours for LATTICE; elsewhere accepted when equal to embedding_size")]
    rows += [(k, f"ignored: {why}") for k, why in IGNORED.items()]
    return rows

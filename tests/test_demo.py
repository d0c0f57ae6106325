"""Tests for ``python -m m3restore.demo`` with a tiny random bundle and a two-image examples folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from m3restore import demo
from m3restore.models.m3unet import M3UNet, M3UNetConfig
from m3restore.weights import save_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    config = M3UNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=384, cond_dim=16)
    folder = tmp_path_factory.mktemp("weights") / "tiny"
    text = {"name": "all-MiniLM-L6-v2", "dim": 384, "max_tokens": 77}
    return save_bundle(folder, {"predictor": M3UNet(config)}, text_encoder=text)


@pytest.fixture
def examples(tmp_path):
    """Two small image pairs; empty prompts, so the text model is never loaded."""
    folder = tmp_path / "examples"
    (folder / "ground_truth").mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries = []
    for name, (h, w) in {"a": (40, 56), "b": (33, 47)}.items():
        clean = np.linspace(0, 255, h * w * 3).reshape(h, w, 3).astype(np.uint8)
        noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(folder / "ground_truth" / f"{name}.png")
        Image.fromarray(noisy).save(folder / f"{name}.png")
        entries.append({"file": f"{name}.png", "ground_truth": f"ground_truth/{name}.png", "prompt": ""})
    (folder / "examples.json").write_text(json.dumps(entries))
    return folder


def test_demo_writes_results_and_comparisons(bundle, examples, tmp_path, capsys):
    out = tmp_path / "out"
    code = demo.main(["--weights", str(bundle), "--examples", str(examples), "--out", str(out), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean gain" in printed
    for name in ("a", "b"):
        src = Image.open(examples / f"{name}.png")
        restored = Image.open(out / f"{name}_restored.png")
        sheet = Image.open(out / f"{name}_compare.png")
        assert restored.size == src.size
        assert sheet.width == 3 * src.width
        assert sheet.height == src.height + demo.CAPTION
        assert name in printed


def test_missing_bundle_is_one_line_and_exit_1(examples, tmp_path, capsys):
    code = demo.main(
        [
            "--weights",
            str(tmp_path / "no-such-bundle"),
            "--examples",
            str(examples),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    assert code == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no-such-bundle" in lines[0]
    assert captured.out == ""
    assert not (tmp_path / "out").exists()


def test_missing_examples_is_one_line_and_exit_1(bundle, tmp_path, capsys):
    code = demo.main(["--weights", str(bundle), "--examples", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "examples.json" in lines[0]

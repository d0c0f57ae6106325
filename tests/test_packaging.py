"""A plain (non-editable) install must carry the shipped bundles inside the package."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build")
def test_wheel_ships_every_bundle(tmp_path):
    bundles = sorted(p.parent.name for p in (ROOT / "weights").glob("*/model_index.json"))
    assert bundles, "the repository ships no bundle"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("m3restore-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for bundle in bundles:
        for rel in ("model_index.json", "predictor/config.json", "predictor/model.safetensors"):
            assert f"m3restore/bundles/{bundle}/{rel}" in names
    assert "m3restore/cli.py" in names
    assert "m3restore/pipeline/step_order.json" in names  # the planner's measured order
    index = json.loads((ROOT / "weights" / "m3restore-base" / "model_index.json").read_text())
    for component in index["components"]:  # refiner, analyzer, text vectors too
        assert f"m3restore/bundles/m3restore-base/{component}/model.safetensors" in names


def test_search_path_covers_installed_and_source_layouts():
    from m3restore.weights import search_path

    paths = search_path()
    package = Path(__file__).resolve().parent.parent / "m3restore"
    assert package / "bundles" in paths  # non-editable install: weights/ is packaged as m3restore/bundles
    assert ROOT / "weights" in paths  # source checkout / editable install

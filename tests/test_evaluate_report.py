"""The evaluation's report.html: self-contained, small, and rendered by headless Chromium."""

from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from m3restore.cli import app
from m3restore.evaluation.report import read_results
from m3restore.io import Image, read_image, write_image
from m3restore.models.m3unet import M3UNet, M3UNetConfig
from m3restore.weights import save_bundle

CHROMIUM = Path("/usr/bin/chromium")
TINY32 = dict(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=32, cond_dim=16)


@pytest.fixture(scope="module")
def run_dir(tiny_bert_folder, tmp_path_factory):
    """An evaluation of 3 noisy images: input, OpenCV NLM and a tiny M3-UNet bundle."""
    os.environ.setdefault("M3RESTORE_CACHE", str(tmp_path_factory.mktemp("cache")))
    root = tmp_path_factory.mktemp("report")
    torch.manual_seed(0)
    bundle = save_bundle(
        root / "tiny", {"predictor": M3UNet(M3UNetConfig(**TINY32))}, text_encoder={"name": str(tiny_bert_folder)}
    )
    rng = np.random.default_rng(0)
    for i in range(3):
        base = np.kron(rng.random((4, 6, 3)), np.ones((16, 16, 1))).astype(np.float32)
        write_image(root / "clean" / f"photo {i}.png", Image(base))  # a space: paths must be URL-quoted
    out = root / "run"
    args = ["eval", "--dataset", "synthetic", "--root", str(root / "clean"), "--degrade", "noise:25",
            "--weights", str(bundle), "--baseline", "input", "--baseline", "opencv-nlm", "--out", str(out),
            "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_report_is_self_contained_and_small(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert len(html.encode()) < 100_000
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and "<link" not in html and "<script src" not in html
    rows = read_results(run_dir / "results.csv")
    assert len(rows) == 9
    body = html.split('id="results"')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == len(rows)
    assert 'class="sortable" id="summary"' in html and 'class="sortable" id="results"' in html
    assert html.count('class="card"') == 3 and 'type="range"' in html
    for src in re.findall(r'src="([^"]+)"', html):
        assert (run_dir / src.replace("%20", " ")).is_file(), src
    with open(run_dir / "results.csv", newline="", encoding="utf-8") as handle:
        assert {r["method"] for r in csv.DictReader(handle)} == {"input", "opencv-nlm", "tiny"}


def _chromium(*args, tmp: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
        "--window-size=1200,900",
    ]  # fmt: skip
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package chromium)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    url = (run_dir / "report.html").resolve().as_uri()
    shot = tmp_path / "report.png"
    done = _chromium(f"--screenshot={shot}", url, tmp=tmp_path)
    assert shot.is_file(), done.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    pixels = read_image(shot).rgb()
    assert pixels.shape[:2] == (900, 1200) and pixels.std() > 0.05  # not a blank page
    print(f"report screenshot: {shot}")
    dom = _chromium("--dump-dom", url, tmp=tmp_path).stdout
    results = dom.split('id="results"')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert results.count("<tr>") == 9
    assert dom.count("<img") == 3 * 5
    # The page's script ran: the restored panels point at the chosen method's images.
    restored = re.findall(r'<img[^>]*class="restored"[^>]*>', dom)
    assert len(restored) == 6 and all('src="images/tiny/photo%20' in tag for tag in restored)
    assert "tiny: PSNR" in dom

"""The degradation analyzer: inputs, outputs, labels from degradation records, training entry point."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from m3restore.caption.degradation import (
    LABELS,
    N_STATS,
    Analysis,
    AnalyzerConfig,
    DegradationAnalyzer,
    Finding,
    analyze,
    crop_statistics,
    prepare_inputs,
)
from m3restore.data.degrade import Applied
from m3restore.io import Image, write_image
from m3restore.training import analyzer as ta
from m3restore.weights import extend_bundle, open_bundle


def textured(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.5 + 0.3 * np.sin(x / (3 + c)) * np.cos(y / (4 + c)) for c in range(3)], axis=-1)
    img += rng.random((h, w, 3), dtype=np.float32) * 0.05
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DegradationAnalyzer(AnalyzerConfig(width=8, hidden=16)).eval()


@pytest.mark.parametrize("shape", [(40, 56), (128, 128), (300, 517)])
def test_inputs_for_any_size(model, shape):
    local, thumbs, stats = prepare_inputs(textured(*shape), model.config)
    n = local.shape[0]
    assert local.shape[1:] == (3, 128, 128) and thumbs.shape == (n, 3, 96, 96) and stats.shape == (n, N_STATS)
    assert 1 <= n <= model.config.max_crops
    assert torch.isfinite(stats).all()
    logits, strength = model(local, thumbs, stats)
    assert logits.shape == (n, len(LABELS)) and ((strength >= 0) & (strength <= 1)).all()


def test_statistics_react_to_blocks_noise_and_colour():
    img = textured(128, 128)
    clean = crop_statistics(img)
    noisy = crop_statistics(np.clip(img + np.random.default_rng(1).normal(0, 0.1, img.shape), 0, 1).astype(np.float32))
    grey = crop_statistics(np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2))
    blocks = np.repeat(np.repeat(img[::8, ::8], 8, axis=0), 8, axis=1)
    assert noisy[2] > clean[2] + 1  # noise estimate (log)
    assert crop_statistics(blocks)[6] > clean[6] + 1  # 8x8 blockiness
    assert grey[11] == 0 and clean[11] > 0.5  # share of coloured pixels


def test_resampling_statistics_tell_upscaling_from_blur():
    """An x4 upscale leaves its sample grid (phase contrast) and a spectral cliff a Gaussian blur lacks."""
    import cv2

    from m3restore.data.degrade import degrade

    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.random((256, 256, 3), dtype=np.float32), (0, 0), 1.0)
    img = (img - img.min()) / (img.max() - img.min())
    small = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (256, 256), interpolation=cv2.INTER_CUBIC)[:128, :128]
    blurred = degrade(img, "gaussian-blur:2", np.random.default_rng(0))[0][:128, :128]
    s_up, s_blur, s_clean = crop_statistics(up), crop_statistics(blurred), crop_statistics(img[:128, :128])
    assert s_up[15] > s_blur[15] + 0.5  # period-4 phase contrast
    white = crop_statistics(np.random.default_rng(2).random((128, 128, 3), dtype=np.float32))
    assert np.abs(white[16:]).max() < 0.2  # white noise: flat spectrum
    assert s_blur[-1] < s_clean[-1] - 1  # blur empties the top band
    assert s_up[-1] > s_blur[-1] + 1  # the upscaler's floor: a cliff, not a roll-off


def test_widening_keeps_an_old_analyzer_exact():
    torch.manual_seed(0)
    old = DegradationAnalyzer(AnalyzerConfig(width=8, hidden=16, stats=14)).eval()
    wide = ta.widen_statistics(old).eval()
    assert wide.config.stats == N_STATS and ta.widen_statistics(wide) is wide
    local, thumbs, stats = prepare_inputs(textured(150, 170), wide.config)
    with torch.no_grad():
        a = old(local, thumbs, stats[:, :14])
        b = wide(local, thumbs, stats)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])
    # and an old bundle still reads its own 14 statistics
    assert prepare_inputs(textured(150, 170), old.config)[2].shape[1] == 14


def test_analyze_gives_every_label_and_a_canonical_sentence(model):
    result = analyze(model, textured(64, 80))
    assert [f.name for f in result.findings] == list(LABELS)
    assert all(0 <= f.probability <= 1 for f in result.findings)
    sentence = Analysis(
        [Finding("motion-blur", 0.93, 0.8, True), Finding("noise", 0.71, 0.1, True), Finding("jpeg", 0.2, 0.5, False)]
    )
    assert sentence.sentence == "mild noise, strong motion blur"
    assert sentence.summary() == "strong motion blur (0.93), mild noise (0.71)"
    assert Finding("greyscale", 0.9, 1.0, True).phrase == "greyscale"


def test_targets_fold_and_mask():
    record = [Applied("gaussian-blur", 0.5), Applied("poisson", 0.05), Applied("jpeg", 0.9)]
    present, strength, pmask, smask = ta.targets(record)
    i = {n: LABELS.index(n) for n in LABELS}
    assert present[i["defocus"]] == 1 and strength[i["defocus"]] == 0.5
    assert present[i["noise"]] == 1 and pmask[i["noise"]] == 0  # too weak to see: presence not trained
    assert present[i["jpeg"]] == 1 and smask[i["jpeg"]] == 1
    # light noise shows where other damage of the same strength does not
    light = ta.targets([Applied("noise", 0.1), Applied("jpeg", 0.1)])[2]
    assert light[i["noise"]] == 1 and light[i["jpeg"]] == 0
    assert present[i["motion-blur"]] == 0 and pmask[i["motion-blur"]] == 1 and smask[i["motion-blur"]] == 0
    grey = ta.targets([], grey=True)[0]
    assert grey[i["greyscale"]] == 1
    real = ta.targets([], real_blur=True)
    assert real[0][i["motion-blur"]] == 1 and real[3][i["motion-blur"]] == 1
    # mild: what the predictor restores real blur best with
    assert real[1][i["motion-blur"]] == ta.REAL_BLUR_STRENGTH < 0.33


def test_draws_follow_physical_order_with_distinct_labels():
    from m3restore.caption.degradation import FOLD

    rng = np.random.default_rng(0)
    for _ in range(200):
        names = ta.draw_degradations(rng)
        assert names == [n for n in ta.PHYSICAL_ORDER if n in names]
        labels = [FOLD.get(n, n) for n in names]
        assert len(set(labels)) == len(labels) <= 3
        assert sum(label in ta.DETAIL_LOSSES for label in labels) <= 1


def test_samples_are_seeded_and_shaped():
    clean = [textured(200, 260, s) for s in range(2)]
    maker = ta.SampleMaker(clean, [textured(220, 300, 9)])
    a, b = maker(np.random.default_rng(5)), maker(np.random.default_rng(5))
    assert np.array_equal(a.local, b.local) and np.array_equal(a.present, b.present)
    assert a.local.shape == (128, 128, 3) and a.thumb.shape == (96, 96, 3) and a.stats.shape == (N_STATS,)
    batch = ta.batch([maker(np.random.default_rng(s)) for s in range(3)])
    loss = ta.loss_fn(DegradationAnalyzer(AnalyzerConfig(width=8, hidden=16)), batch)
    assert torch.isfinite(loss)


def test_text_scenes_paste_signs_plates_and_documents_into_a_photo():
    photo = textured(400, 500, 3)
    a = ta.text_scene(photo, np.random.default_rng(1), size=256)
    b = ta.text_scene(photo, np.random.default_rng(1), size=256)
    assert a.shape == (256, 256, 3) and a.dtype == np.float32 and np.array_equal(a, b)
    region = ta._random_region(photo, 256, np.random.default_rng(1))
    assert np.mean(np.abs(a - region).max(axis=2) > 0.05) > 0.05  # text pictures cover part of it
    maker = ta.SampleMaker([photo], None, text_fraction=1.0)
    sample = maker(np.random.default_rng(2))
    assert sample.local.shape == (128, 128, 3) and np.isfinite(sample.stats).all()


def test_text_pictures_fill_the_frame_at_their_rendered_size_or_smaller(monkeypatch):
    from m3restore.data.text_images import text_image

    rng = np.random.default_rng(4)
    pictures = [ta.text_picture(rng) for _ in range(6)]
    assert all(p.dtype == np.float32 and p.ndim == 3 for p in pictures)
    rendered = [text_image(i, 11).image.shape[:2] for i in range(3)]  # a sign, a plate, a document line
    assert all(any(p.shape[0] <= h and p.shape[1] <= w for h, w in rendered) for p in pictures)  # never enlarged
    assert np.array_equal(ta.text_picture(np.random.default_rng(4)), pictures[0])  # seeded
    # a picture smaller than the training region is padded by reflection, as the analysis pads it
    small = pictures[0][:40, :150]
    region = ta._random_region(small, ta.REGION, np.random.default_rng(0))
    assert region.shape == (ta.REGION, ta.REGION, 3) and np.array_equal(region[:40, :150], small)
    assert np.array_equal(region[40:79, :150], small[-2::-1])  # mirrored without repeating the edge row
    # with TEXT_ALONE a text sample is a picture alone: no pixel of the photo is left in it
    photo = np.zeros((300, 300, 3), np.float32)
    monkeypatch.setattr(ta, "TEXT_ALONE", 1.0)
    sample = ta.SampleMaker([photo], None, text_fraction=1.0)(np.random.default_rng(3))
    assert sample.local.shape == (128, 128, 3) and sample.thumb.min() > 0.0 and np.isfinite(sample.stats).all()


def test_held_out_split_is_by_name():
    assert ta.is_held_out("a/set14/baboon.png") == ta.is_held_out("b/classic5/baboon.png")
    assert ta.is_held_out("x/bird_GT.png") == ta.is_held_out("y/bird.png")


def test_summary_balanced_accuracy():
    k = len(LABELS)
    rows = [
        {
            "present": [1] + [0] * (k - 1),
            "strength": [0.9] + [0] * (k - 1),
            "detected": [True] + [False] * (k - 1),
            "predicted_strength": [0.8] + [0] * (k - 1),
        },
        {
            "present": [0] * k,
            "strength": [0] * k,
            "detected": [True] + [False] * (k - 1),
            "predicted_strength": [0] * k,
        },
        {
            "present": [1] + [0] * (k - 1),
            "strength": [0.1] + [0] * (k - 1),
            "detected": [False] * k,
            "predicted_strength": [0] * k,
        },  # mild: not counted
    ]
    motion = ta.summarise(rows)["labels"]["motion-blur"]
    assert motion["positives"] == 1 and motion["negatives"] == 1
    assert motion["balanced_accuracy"] == pytest.approx(0.5) and motion["severity_accuracy"] == 1.0


def test_bundle_round_trip_and_extend(model, tiny_bundle, tmp_path):
    target = tmp_path / "b"
    shutil.copytree(tiny_bundle, target)
    predictor = json.loads((target / "model_index.json").read_text())["components"]["predictor"]
    extend_bundle(target, {"analyzer": model})
    bundle = open_bundle(target)
    assert bundle.index["components"]["predictor"] == predictor
    loaded = bundle.load("analyzer")
    img = textured(70, 90)
    a, b = analyze(model, img), analyze(loaded, img)
    assert [f.probability for f in a.findings] == pytest.approx([f.probability for f in b.findings], abs=1e-6)


def test_cli_stage_analyzer(tmp_path, tiny_bundle, monkeypatch):
    from typer.testing import CliRunner

    from m3restore.cli import app

    # A smoke run: calibration and held-out evaluation on a handful of samples.
    real_eval, real_cal = ta.evaluate_synthetic, ta.calibrate_thresholds
    monkeypatch.setattr(ta, "evaluate_synthetic", lambda m, photos, per_photo=1: real_eval(m, photos[:1], per_photo=2))
    monkeypatch.setattr(
        ta, "calibrate_thresholds", lambda m, photos, samples=0, seed=0, **kw: real_cal(m, photos, 4, seed, **kw)
    )

    clean, blur = tmp_path / "clean", tmp_path / "blur"
    for i in range(6):
        write_image(clean / f"photo{i}.png", Image(textured(200, 210, i)))
    write_image(blur / "frame.png", Image(textured(200, 220, 7)))
    target = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, target)
    args = [
        "train",
        "--stage",
        "analyzer",
        "--out",
        str(tmp_path / "run"),
        "--root",
        str(clean),
        "--input",
        str(blur),
        "--iterations",
        "2",
        "--batch-size",
        "2",
        "--add-to",
        str(target),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "analyzer.json").read_text())
    assert report["iterations"] == 2
    assert open_bundle(target).has("analyzer")
    assert open_bundle(target).index["analyzer_training"]["legs"][0]["note"].startswith("from scratch")
    # A warm-started leg carries the legs before it, and the totals add up.
    leg2 = ["train", "--stage", "analyzer", "--out", str(tmp_path / "run2"), "--root", str(clean)]
    leg2 += ["--input", str(blur), "--iterations", "3", "--batch-size", "2", "--init", str(target), "--seed", "5"]
    result = CliRunner().invoke(app, leg2)
    assert result.exit_code == 0, result.output
    training = open_bundle(tmp_path / "run2" / "bundle").index["analyzer_training"]
    assert [leg["iterations"] for leg in training["legs"]] == [2, 3] and training["iterations"] == 5
    assert "warm start" in training["legs"][1]["note"] and "seed 5" in training["legs"][1]["note"]
    assert training["legs"][1]["text_fraction"] == ta.TEXT_FRACTION  # each leg records its text share
    assert set(training["thresholds"]) == set(LABELS)
    ta.add_analyzer(tmp_path / "run2" / "bundle", target)
    assert open_bundle(target).index["analyzer_training"]["iterations"] == 5
    assert open_bundle(target).index["components"]["predictor"]  # the rest of the bundle stays
    missing = CliRunner().invoke(app, ["train", "--stage", "analyzer", "--out", str(tmp_path / "r2")])
    assert missing.exit_code == 2 and "--root" in missing.output


def test_noise_floor_counts_photos_called_noisy(monkeypatch):
    seen = []

    def fake(model, image):  # "noisy" when the image is far from the clean one
        seen.append(image.dtype)
        noisy = float(np.abs(image - photo).mean()) > 4 / 255
        return Analysis([Finding(n, float(noisy), 0.1, noisy and n == "noise") for n in LABELS])

    photo = np.full((16, 16, 3), 0.5, np.float32)
    monkeypatch.setattr(ta, "analyze", fake)
    rates = ta.evaluate_noise_floor(None, [photo, photo], sigmas=(0, 2, 12))
    assert rates == {"0": 0.0, "2": 0.0, "12": 1.0}
    assert set(seen) == {np.dtype(np.float32)} and len(seen) == 6

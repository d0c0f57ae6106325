"""Direct checks of a restoration step, and the planner judging a step by them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from m3restore.caption.degradation import Analysis, Finding
from m3restore.pipeline.checks import (
    blockiness,
    brightness,
    check_steps,
    colourfulness,
    noise_sigma,
    sharpness,
)
from m3restore.pipeline.planner import Candidate, Planner, Pool


def scene(seed: int = 0, size: int = 192) -> np.ndarray:
    """A colour picture with edges and texture (rectangles over a gradient, fine grain on top)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float32)
    img += np.linspace(0.2, 0.6, size, dtype=np.float32)[None, :, None]
    for _ in range(12):
        y, x = rng.integers(0, size - 32, 2)
        h, w = rng.integers(12, 60, 2)
        img[y : y + h, x : x + w] = rng.uniform(0.05, 0.95, 3)
    grain = cv2.GaussianBlur(rng.normal(0, 0.15, img.shape).astype(np.float32), (7, 7), 0)
    return np.clip(img + grain, 0, 1)


def blurred(img, k=7):
    return cv2.GaussianBlur(img, (k, k), 0)


def noisy(img, sigma, seed=1):
    return np.clip(img + np.random.default_rng(seed).normal(0, sigma / 255, img.shape), 0, 1).astype(np.float32)


def jpeg(img, quality=15):
    ok, data = cv2.imencode(".jpg", np.round(img * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255


def test_measures_read_what_they_name():
    clean = scene()
    assert sharpness(clean) > sharpness(blurred(clean))
    assert sharpness(clean * 0.3) == pytest.approx(sharpness(clean), rel=0.05)  # contrast does not count
    assert noise_sigma(clean) < 3 and noise_sigma(noisy(clean, 25)) == pytest.approx(25, rel=0.2)
    assert blockiness(jpeg(clean)) > blockiness(clean) + 0.1
    assert brightness(clean * 0.3) < brightness(clean)
    assert colourfulness(np.repeat(clean.mean(2, keepdims=True), 3, 2)) == 0 < colourfulness(clean)


def test_a_step_passes_when_its_own_measure_improves():
    clean = scene()
    assert [c.passed for c in check_steps(["deblur"], blurred(clean), clean)] == [True]
    assert [c.passed for c in check_steps(["deblur"], clean, blurred(clean))] == [False]
    assert [c.passed for c in check_steps(["deblur"], clean, clean)] == [False]  # no change is no fix
    assert [c.passed for c in check_steps(["denoise"], noisy(clean, 20), clean)] == [True]
    assert [c.passed for c in check_steps(["dejpeg"], jpeg(clean), clean)] == [True]
    result = check_steps(["brighten"], clean * 0.3, clean)[0]
    assert result.passed and result.measure == "brightness" and result.after > result.before


def test_a_measure_the_pass_moves_by_design_is_left_out():
    clean = scene()
    # Denoising lowers sharpness; in a joint deblur + denoise pass only the noise is checked.
    results = check_steps(["deblur", "denoise"], noisy(blurred(clean), 20), clean)
    assert [(c.step, c.passed) for c in results] == [("denoise", True)]
    assert check_steps(["denoise", "brighten"], noisy(clean, 10) * 0.3, clean)[0].step == "brighten"
    assert check_steps(["inpaint"], clean, clean) == []


def still_blurred(img: np.ndarray) -> Analysis:
    """An analyzer that reads every picture as blurred, as the real one reads smooth network output."""
    return Analysis([Finding("motion-blur", 0.99, 0.3, True), Finding("noise", 0.02, 0.1, False)])


class NoPipe:
    analyzer = None
    bundle = None


def test_planner_keeps_a_real_deblur_the_analyzer_cannot_see_and_rolls_back_a_blurring_one():
    clean = scene()
    pool = Pool(
        [
            Candidate("smearer", ("deblur",), "network", lambda img, step, prompt: blurred(img), priority=10),
            Candidate("sharpener", ("deblur",), "network", lambda img, step, prompt: clean, priority=20),
        ]
    )
    result = Planner(NoPipe(), pool, analyze=still_blurred).run(blurred(clean), "auto")
    records = result.report.records
    assert [(r.model.split(" ")[0], r.kept) for r in records] == [("smearer", False), ("sharpener", True)]
    assert records[1].damage_after >= records[1].damage_before  # the analyzer saw no improvement
    assert records[1].checks[0]["measure"] == "sharpness" and records[1].checks[0]["passed"]
    assert np.array_equal(result.image, clean)


def test_planner_rolls_back_a_step_that_adds_damage_the_analyzer_sees():
    clean = scene()

    def analyzer(img):  # sees noise on anything noisier than the clean scene
        n = noise_sigma(img) > 5
        return Analysis([Finding("motion-blur", 0.9, 0.5, True), Finding("noise", 0.9 if n else 0.02, 0.6, n)])

    sharpen_and_add_noise = Candidate("grainy", ("deblur",), "network", lambda img, s, p: noisy(clean, 20))
    result = Planner(NoPipe(), Pool([sharpen_and_add_noise]), analyze=analyzer).run(blurred(clean), "auto")
    (record,) = result.report.records
    assert record.checks[0]["passed"] and not record.kept  # sharper, but noise is new damage


@pytest.mark.parametrize("input_jpeg", [False, True])
def test_a_deblur_read_as_jpeg_is_new_damage_only_where_the_input_showed_jpeg(input_jpeg):
    """The analyzer reads sharp edges as JPEG (rendered text); where the input shows JPEG, a
    sharper output may be sharper blocks, and the rise counts as new damage."""
    clean = scene()

    def analyzer(img):
        sharp = sharpness(img) > sharpness(blurred(clean)) * 1.05
        found = input_jpeg or sharp
        reading = Finding("jpeg", 0.95 if found else 0.02, 0.4 if sharp else 0.05, found)
        return Analysis([Finding("motion-blur", 0.9, 0.5, True), reading])

    sharpener = Candidate("sharpener", ("deblur",), "network", lambda img, s, p: clean)
    result = Planner(NoPipe(), Pool([sharpener]), analyze=analyzer).run(blurred(clean), ["deblur"])
    (record,) = result.report.records
    assert record.checks[0]["passed"] and record.damage_after > record.damage_before
    assert record.kept is (not input_jpeg)


@pytest.mark.parametrize("input_noisy", [False, True])
def test_noise_a_brighten_shows_is_new_damage_only_where_the_input_showed_noise(input_noisy):
    """The dark hides sensor noise; brightening shows it. Where the input already reads noisy,
    more noise after the pass still counts as new damage."""
    clean = noisy(scene(), 12)

    def analyzer(img):
        dark = brightness(img) < 0.5 * brightness(clean)
        visible = noise_sigma(img) > 5
        shows = input_noisy or visible
        return Analysis(
            [
                Finding("low-light", 0.99 if dark else 0.02, 0.2, dark),
                Finding("noise", 0.9 if shows else 0.02, 0.6 if visible else 0.3, shows),
            ]
        )

    brightener = Candidate("brightener", ("brighten",), "network", lambda img, s, p: clean)
    result = Planner(NoPipe(), Pool([brightener]), analyze=analyzer).run(clean * 0.2, ["brighten"])
    (record,) = result.report.records
    assert record.checks[0]["measure"] == "brightness" and record.checks[0]["passed"]
    assert record.damage_after > record.damage_before  # the analyzer alone would roll it back
    assert record.kept is (not input_noisy)

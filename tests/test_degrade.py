import json

import cv2
import numpy as np
import pytest

from m3restore.data import degrade as degrade_module
from m3restore.data.degrade import (
    DEGRADATIONS,
    Applied,
    DegradationSpec,
    Step,
    degrade,
    describe,
    disk_kernel,
    motion_blur_kernel,
    parse_spec,
)
from m3restore.errors import ConfigError, DataError

NAMES = [
    "motion-blur",
    "defocus",
    "gaussian-blur",
    "noise",
    "poisson",
    "jpeg",
    "low-light",
    "low-resolution",
    "missing-regions",
    "greyscale",
]


def image(h=48, w=64, seed=0):
    """A smooth colourful test image with some edges, float32 in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx / 5) * np.cos(yy / 7)], axis=2)
    img[h // 3 : h // 2, w // 4 : w // 2] = 0.9
    return np.clip(img, 0, 1).astype(np.float32)


def test_registry_names():
    assert list(DEGRADATIONS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_degradation_runs(name):
    img = image()
    before = img.copy()
    out, record = degrade(img, name, np.random.default_rng(1))
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(img, before), "input must not be modified"
    assert len(record) == 1
    applied = record[0]
    assert applied.name == name
    assert 0.0 <= applied.strength <= 1.0
    assert applied.severity in ("mild", "moderate", "strong")
    json.dumps(applied.to_dict())  # params are JSON-serialisable
    assert all(not isinstance(v, np.ndarray) for v in applied.params.values())
    assert not np.array_equal(out, img)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name):
    img = image()
    a, ra = degrade(img, name, np.random.default_rng(7))
    b, rb = degrade(img, name, np.random.default_rng(7))
    assert np.array_equal(a, b) and ra == rb
    if name != "greyscale":  # greyscale has no randomness
        # low-resolution has only four outcomes, so look at a few other seeds
        others = [degrade(img, name, np.random.default_rng(s))[0] for s in range(8, 14)]
        assert any(not np.array_equal(a, c) for c in others)


def test_chain_deterministic_and_varied():
    img = image()
    spec = "motion-blur,noise:0-50,jpeg:10-90"
    a, ra = degrade(img, spec, np.random.default_rng(3))
    b, rb = degrade(img, spec, np.random.default_rng(3))
    assert np.array_equal(a, b) and ra == rb
    assert sorted(x.name for x in ra) == ["jpeg", "motion-blur", "noise"]
    orders = {tuple(x.name for x in degrade(img, spec, np.random.default_rng(s))[1]) for s in range(30)}
    assert len(orders) > 1, "steps should be applied in random order"


def test_ordered_prefix_keeps_order():
    img = image()
    spec = parse_spec("ordered:jpeg,noise,greyscale")
    assert not spec.shuffle
    for s in range(5):
        _, record = degrade(img, spec, np.random.default_rng(s))
        assert [x.name for x in record] == ["jpeg", "noise", "greyscale"]


def test_fixed_values_and_ranges():
    img = image()
    _, rec = degrade(img, "noise:25", np.random.default_rng(0))
    assert rec[0].params["sigma"] == 25.0 and rec[0].strength == 0.5 and rec[0].severity == "moderate"
    _, rec = degrade(img, "jpeg:20", np.random.default_rng(0))
    assert rec[0].params["quality"] == 20
    _, rec = degrade(img, "jpeg:90", np.random.default_rng(0))
    assert rec[0].strength == 0.0
    _, rec = degrade(img, "jpeg:10", np.random.default_rng(0))
    assert rec[0].strength == 1.0
    _, rec = degrade(img, "noise:100", np.random.default_rng(0))
    assert rec[0].strength == 1.0  # beyond the default range clamps to 1
    for s in range(20):
        _, rec = degrade(img, "motion-blur:9-13", np.random.default_rng(s))
        assert 9 <= rec[0].params["length"] <= 13
        assert rec[0].params["kind"] in ("linear", "trajectory")
        _, rec = degrade(img, "low-resolution", np.random.default_rng(s))
        assert rec[0].params["scale"] in (2, 4)


def test_probability():
    img = image(16, 16)
    assert degrade(img, "noise@0", np.random.default_rng(0))[1] == []
    out, rec = degrade(img, "noise@0", np.random.default_rng(0))
    assert rec == [] and np.array_equal(out, img)
    applied = sum(len(degrade(img, "noise@0.5", np.random.default_rng(s))[1]) for s in range(200))
    assert 70 < applied < 130


def test_empty_spec_object_returns_copy():
    img = image()
    out, rec = degrade(img, DegradationSpec(()), np.random.default_rng(0))
    assert rec == [] and np.array_equal(out, img) and out is not img


def test_noise_sigma_statistics():
    img = np.full((128, 128, 3), 0.5, np.float32)
    out, rec = degrade(img, "noise:25", np.random.default_rng(0), clip=False)
    diff = out - img
    assert abs(diff.std() - 25 / 255) < 0.02 * 25 / 255
    assert abs(diff.mean()) < 0.002
    assert rec[0].params == {"sigma": 25.0}


def test_clip_option():
    img = np.full((32, 32, 3), 0.98, np.float32)
    out, _ = degrade(img, "noise:50", np.random.default_rng(0), clip=False)
    assert out.max() > 1.0
    out, _ = degrade(img, "noise:50", np.random.default_rng(0))
    assert out.max() <= 1.0


def test_low_resolution_keeps_size():
    for h, w in ((48, 64), (37, 53), (5, 7)):
        img = image(h, w)
        for s in range(4):
            out, rec = degrade(img, "low-resolution:2-4", np.random.default_rng(s))
            assert out.shape == img.shape
    out, rec = degrade(image(), "low-resolution:4", np.random.default_rng(0))
    assert rec[0].params["scale"] == 4 and rec[0].strength == 1.0


def test_greyscale_equal_channels():
    out, rec = degrade(image(), "greyscale", np.random.default_rng(0))
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert rec[0].strength == 1.0


def test_missing_regions_params_are_small():
    out, rec = degrade(image(64, 64), "missing-regions:0.2", np.random.default_rng(2))
    params = rec[0].params
    assert len(json.dumps(params)) < 200
    assert params["actual"] >= 0.2 - 1e-6 or params["shapes"] == 200
    assert params["fill"] in ("zero", "noise")


@pytest.mark.parametrize("kind", ["trajectory", "linear"])
@pytest.mark.parametrize("length", [1, 2, 5, 17, 41])
def test_motion_blur_kernel(kind, length):
    k = motion_blur_kernel(np.random.default_rng(length), length, kind)
    assert k.dtype == np.float32 and k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert abs(float(k.sum()) - 1.0) < 1e-5 and k.min() >= 0
    c = k.shape[0] // 2
    yy, xx = np.mgrid[-c : c + 1, -c : c + 1]
    assert abs(float((k * xx).sum())) < 1e-3 and abs(float((k * yy).sum())) < 1e-3  # centred
    if length > 2:
        assert k.shape[0] >= length - 1


def test_linear_kernel_angle_zero_is_a_row():
    k = motion_blur_kernel(np.random.default_rng(0), 9, "linear", angle=0.0)
    c = k.shape[0] // 2
    assert np.count_nonzero(k[c]) == 9 and np.isclose(k[c].sum(), 1.0)


def test_motion_blur_kernel_reproducible():
    a = motion_blur_kernel(np.random.default_rng(5), 31)
    b = motion_blur_kernel(np.random.default_rng(5), 31)
    assert np.array_equal(a, b)
    with pytest.raises(ConfigError):
        motion_blur_kernel(np.random.default_rng(0), 9, "zigzag")


def test_disk_kernel():
    for r in (0, 1, 2.5, 8):
        k = disk_kernel(r)
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert abs(float(k.sum()) - 1) < 1e-5
        assert np.allclose(k, k.T) and np.allclose(k, k[::-1])


def test_large_kernel_filter_matches_filter2d():
    img = np.random.default_rng(0).random((40, 50, 3), dtype=np.float32)
    k = motion_blur_kernel(np.random.default_rng(1), 25)
    assert k.shape[0] > 11  # takes the FFT path
    ref = cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)
    assert np.abs(degrade_module._filter(img, k) - ref).max() < 1e-5


@pytest.mark.parametrize(
    "text",
    [
        "motion-blur,noise:0-50,jpeg:10-90",
        "noise:25",
        "jpeg:20",
        "noise:0-50@0.5",
        "ordered:greyscale,defocus:1.5-3@0.25",
        "poisson:10-1000,low-light:0.1-0.3,low-resolution:4,missing-regions,gaussian-blur",
    ],
)
def test_parse_spec_round_trip(text):
    spec = parse_spec(text)
    assert str(spec) == text
    assert parse_spec(str(spec)) == spec


def test_parse_spec_details():
    spec = parse_spec(" Motion_Blur , noise : 0 - 50 @0.5, grayscale")
    assert [s.name for s in spec.steps] == ["motion-blur", "noise", "greyscale"]
    assert spec.steps[1] == Step("noise", 0.0, 50.0, 0.5)
    assert spec.steps[0] == Step("motion-blur")
    assert parse_spec("noise:25").steps[0] == Step("noise", 25.0, 25.0)
    assert spec.shuffle


@pytest.mark.parametrize(
    "text, words",
    [
        ("blurr", ["unknown degradation", "blurr", "motion-blur", "greyscale"]),
        ("noise,fog:3", ["unknown degradation 'fog'", "valid: motion-blur", "jpeg"]),
        ("noise:abc", ["noise:abc"]),
        ("noise:50-10", ["noise:50-10", "above"]),
        ("jpeg:0-200", ["jpeg:0-200", "between 1 and 100"]),
        ("noise@1.5", ["noise@1.5", "probability"]),
        ("greyscale:3", ["greyscale:3", "takes no value"]),
        ("noise,,jpeg", ["empty item"]),
        ("", ["empty"]),
        ("ordered:", ["empty"]),
        ("noise:-5", ["noise:-5"]),
    ],
)
def test_parse_spec_errors(text, words):
    with pytest.raises(ConfigError) as info:
        parse_spec(text)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_step_validation():
    with pytest.raises(ConfigError, match="unknown degradation .sharpen.; valid: motion-blur"):
        Step("sharpen")
    with pytest.raises(ConfigError):
        Step("noise", 10, 5)
    with pytest.raises(ConfigError):
        degrade(image(), 42, np.random.default_rng(0))  # not a spec


def test_degrade_rejects_bad_images():
    with pytest.raises(DataError):
        degrade(np.zeros((8, 8, 3), np.uint8), "noise", np.random.default_rng(0))
    with pytest.raises(DataError):
        degrade(np.zeros((8, 8), np.float32), "noise", np.random.default_rng(0))


def test_describe_words():
    assert describe([]) == ""
    record = [Applied("motion-blur", 0.9, {}), Applied("noise", 0.1, {})]
    assert describe(record) == "strong motion blur, mild noise"
    phrases = {
        "motion-blur": "motion blur",
        "defocus": "defocus blur",
        "gaussian-blur": "gaussian blur",
        "noise": "noise",
        "poisson": "sensor noise",
        "jpeg": "jpeg compression artifacts",
        "low-light": "low light",
        "low-resolution": "low resolution",
        "missing-regions": "missing regions",
    }
    for name, phrase in phrases.items():
        assert describe([Applied(name, 0.5, {})]) == f"moderate {phrase}"
    assert describe([Applied("greyscale", 1.0, {})]) == "greyscale"
    assert describe([Applied("noise", 0.2, {}), Applied("noise", 0.7, {})]) == "strong noise"
    assert describe(record, min_strength=0.2) == "strong motion blur"


def test_severity_thresholds():
    assert Applied("noise", 0.0, {}).severity == "mild"
    assert Applied("noise", 0.329, {}).severity == "mild"
    assert Applied("noise", 0.33, {}).severity == "moderate"
    assert Applied("noise", 0.659, {}).severity == "moderate"
    assert Applied("noise", 0.66, {}).severity == "strong"


def test_describe_from_degrade():
    _, record = degrade(image(), "ordered:noise:50,jpeg:90", np.random.default_rng(0))
    assert describe(record) == "strong noise, mild jpeg compression artifacts"


@pytest.mark.parametrize("shape", [(1, 1), (5, 7)])
def test_tiny_images(shape):
    img = np.random.default_rng(0).random((*shape, 3), dtype=np.float32)
    for name in NAMES:
        out, _ = degrade(img, name, np.random.default_rng(0))
        assert out.shape == img.shape
    out, _ = degrade(img, "motion-blur:41", np.random.default_rng(0))
    assert out.shape == img.shape and np.isfinite(out).all()

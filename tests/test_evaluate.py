"""Evaluation: datasets, baselines, LPIPS/FID/OCR metrics, the driver (resume, Ctrl-C) and `m3restore eval`."""

from __future__ import annotations

import csv
import json
import math
import warnings

import numpy as np
import pytest
import torch
from cli_helpers import one_error_line, run

from m3restore.data.degrade import degrade
from m3restore.errors import ConfigError, DataError, WeightsError
from m3restore.evaluation import baselines as bl
from m3restore.evaluation import open_dataset, wrong_prompt
from m3restore.evaluation.fid import FeatureNetwork, fid_from_features, frechet_distance
from m3restore.evaluation.lpips import LPIPS, load_lpips
from m3restore.evaluation.ocr import cer, levenshtein, normalise_text, tesseract_availability
from m3restore.io import Image, write_image
from m3restore.metrics.quality import psnr
from m3restore.models.m3unet import M3UNet, M3UNetConfig
from m3restore.weights import save_bundle

TINY32 = dict(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=32, cond_dim=16)
HAVE_TESSERACT = tesseract_availability().available


def rows_of(out):
    with open(out / "results.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def texture(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w, y / h, 0.5 + 0.3 * np.sin(x / 3) * np.cos(y / 4)], -1)
    blocks = np.kron(rng.random((-(-h // 8), -(-w // 8), 3)), np.ones((8, 8, 1)))[:h, :w]
    img += blocks.astype(np.float32) * 0.3
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path_factory, monkeypatch):
    """Never look at the user's real ~/.cache/m3restore."""
    monkeypatch.setenv("M3RESTORE_CACHE", str(tmp_path_factory.mktemp("cache")))


def _bundle(folder, text_dir, seed):
    torch.manual_seed(seed)
    net = M3UNet(M3UNetConfig(**TINY32))
    return save_bundle(folder, {"predictor": net}, text_encoder={"name": str(text_dir), "dim": 32, "max_tokens": 77})


@pytest.fixture(scope="module")
def bundles(tiny_bert_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return _bundle(root / "dil-a", tiny_bert_folder, 0), _bundle(root / "dil-b", tiny_bert_folder, 1)


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    for i in range(3):
        write_image(folder / f"img{i}.png", Image(texture(seed=i)))
    return folder


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    """Random AlexNet-LPIPS weights in the public layout (with its duplicate `lins.*` entries)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = LPIPS("alex")
    for k in range(5):
        getattr(model, f"lin{k}").model[1].weight.data.uniform_(0.0, 1.0)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state.update({k.replace("lin", "lins.", 1): v.clone() for k, v in state.items() if k.startswith("lin")})
    state["scaling_layer.shift"] = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    path = tmp_path_factory.mktemp("lpips") / "lpips-alex.safetensors"
    save_file(state, str(path))
    return path


class _Features(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4)

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1)  # (N, 8, 1, 1)


@pytest.fixture(scope="module")
def fid_file(tmp_path_factory):
    """A tiny random feature network as TorchScript (the older of the two accepted formats)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fid") / "features.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(_Features()).save(str(path))
    return path


# ------------------------------------------------------------------------------------------
# OCR
# ------------------------------------------------------------------------------------------


def test_levenshtein_and_cer():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0
    assert cer("QUEEN AVE", "QUEEN AVE") == 0.0
    assert cer("QUEEN  AVE\n", " QUEEN AVE") == 0.0  # whitespace is normalised
    assert cer("queen ave", "QUEEN AVE") == pytest.approx(8 / 9)
    assert cer("queen ave", "QUEEN AVE", ignore_case=True) == 0.0
    assert cer("XZN 3B29", "XZN 3829") == pytest.approx(1 / 8)
    assert cer("", "ABCD") == 1.0 and cer("ABCDEFGH", "AB") == 3.0  # can exceed 1
    assert cer("", "") == 0.0 and cer("x", "") == 1.0
    assert normalise_text(" a \t b ", ignore_case=True) == "A B"


def test_ocr_unavailable_line(monkeypatch):
    import m3restore.evaluation.ocr as ocr

    monkeypatch.setattr(ocr.shutil, "which", lambda cmd: None)
    state = ocr.tesseract_availability()
    assert not state.available
    assert state.message.startswith("OCR: unavailable (") and "tesseract" in state.message


@pytest.mark.skipif(not HAVE_TESSERACT, reason="tesseract is not installed")
def test_tesseract_reads_a_clean_rendered_sign():
    from m3restore.data.text_images import text_image
    from m3restore.evaluation.ocr import TesseractReader

    sign = text_image(0, seed=0)
    assert cer(TesseractReader()(sign.image), sign.text, ignore_case=True) <= 0.2


# ------------------------------------------------------------------------------------------
# FID
# ------------------------------------------------------------------------------------------


def test_frechet_distance_closed_forms():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, 1.0])
    a, b = np.diag([4.0, 1.0]), np.diag([1.0, 9.0])
    # Diagonal covariances: |mu1-mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    assert frechet_distance(mu1, a, mu2, b) == pytest.approx(4.0 + (2 - 1) ** 2 + (1 - 3) ** 2)
    assert frechet_distance(mu1, a, mu1, a) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((50, 4))
    assert fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-6)
    shifted = fid_from_features(feats, feats + np.array([3.0, 0, 0, 0]))
    assert shifted == pytest.approx(9.0, rel=1e-6)
    # Fewer images than dimensions: singular covariances still give a finite number.
    assert math.isfinite(fid_from_features(rng.standard_normal((3, 8)), rng.standard_normal((3, 8))))
    with pytest.raises(DataError):
        fid_from_features(feats[:1], feats[:1])


def test_fid_feature_networks(fid_file, tmp_path):
    images = [texture(seed=i) for i in range(3)]
    f = FeatureNetwork(fid_file).features(images)
    assert f.shape == (3, 8) and f.dtype == np.float64
    torch.manual_seed(0)
    program = torch.export.export(_Features(), (torch.rand(1, 3, 299, 299),))
    torch.export.save(program, str(tmp_path / "features.pt2"))
    assert np.allclose(FeatureNetwork(tmp_path / "features.pt2").features(images), f, atol=1e-6)
    (tmp_path / "junk.pt").write_bytes(b"not a network")
    with pytest.raises(WeightsError, match="TorchScript"):
        FeatureNetwork(tmp_path / "junk.pt")


# ------------------------------------------------------------------------------------------
# LPIPS
# ------------------------------------------------------------------------------------------


def test_lpips_layouts_match_the_public_weights():
    alex = set(LPIPS("alex").state_dict())
    convs = {"net.slice1.0", "net.slice2.3", "net.slice3.6", "net.slice4.8", "net.slice5.10"}
    assert alex == {f"{c}.{p}" for c in convs for p in ("weight", "bias")} | {
        f"lin{k}.model.1.weight" for k in range(5)
    }
    vgg = {k.rsplit(".", 1)[0] for k in LPIPS("vgg").state_dict() if k.startswith("net.")}
    assert vgg == {f"net.slice{s}.{i}" for s, ids in enumerate(
        [(0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)], 1) for i in ids}  # fmt: skip
    shapes = {k: tuple(v.shape) for k, v in LPIPS("vgg").state_dict().items()}
    assert shapes["lin4.model.1.weight"] == (1, 512, 1, 1) and shapes["net.slice5.28.weight"] == (512, 512, 3, 3)


def test_lpips_loads_weights_and_follows_its_definition(lpips_file, tmp_path):
    model = load_lpips(lpips_file)
    assert model.backbone == "alex"
    a, b = texture(64, 64, 0), texture(64, 64, 1)
    assert model.distance(a, a) == pytest.approx(0.0, abs=1e-7)
    d = model.distance(a, b)
    assert d > 0 and model.distance(b, a) == pytest.approx(d, rel=1e-5)
    # The definition, spelled out: unit-normalise each tap over channels, weight the squared
    # differences per channel, average over positions, add the layers.
    ta, tb = (torch.from_numpy(x.transpose(2, 0, 1).copy())[None] for x in (a, b))
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    with torch.no_grad():
        fa, fb = (model.net((t * 2 - 1 - shift) / scale) for t in (ta, tb))
        total = 0.0
        for k, (x, y) in enumerate(zip(fa, fb)):
            x = x / (x.norm(dim=1, keepdim=True) + 1e-10)
            y = y / (y.norm(dim=1, keepdim=True) + 1e-10)
            w = getattr(model, f"lin{k}").model[1].weight.view(1, -1, 1, 1)
            total += float(((x - y) ** 2 * w).sum(dim=1).mean())
    assert d == pytest.approx(total, rel=1e-5)
    # A .pth state dict is read with weights_only=True; a linear-layers-only file is explained.
    torch.save({k: v for k, v in model.state_dict().items()}, tmp_path / "lpips.pth")
    assert load_lpips(tmp_path / "lpips.pth").distance(a, b) == pytest.approx(d, rel=1e-6)
    torch.save({f"lin{k}.model.1.weight": torch.ones(1, 8, 1, 1) for k in range(5)}, tmp_path / "lin.pth")
    with pytest.raises(WeightsError, match="backbone"):
        load_lpips(tmp_path / "lin.pth")


# ------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------


def test_noise_estimate_and_nlm():
    y, x = np.mgrid[0:96, 0:96].astype(np.float32)
    patches = np.kron(np.random.default_rng(0).random((6, 6, 3)), np.ones((16, 16, 1))) * 0.3
    clean = np.clip(np.stack([x / 96, y / 96, 0.5 + 0 * x], -1) + patches, 0, 1).astype(np.float32)
    noisy, _ = degrade(clean, "noise:20", np.random.default_rng(0))
    assert bl.estimate_noise_sigma(noisy) == pytest.approx(20, abs=3)
    assert bl.estimate_noise_sigma(clean) < 1
    assert psnr(bl.nlm_denoise(noisy), clean) > psnr(noisy, clean) + 3


def test_deconvolution_baselines_sharpen_a_gaussian_blur():
    import cv2

    clean = texture(64, 64)
    blurred = cv2.GaussianBlur(clean, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT)
    for fn in (bl.richardson_lucy_deblur, bl.wiener_deblur):
        out = fn(blurred)
        assert out.shape == clean.shape and out.dtype == np.float32
        assert psnr(out, clean) > psnr(blurred, clean)


def test_baseline_registry(monkeypatch):
    with pytest.raises(ConfigError, match="unknown baseline 'magic'; valid: input, bicubic, opencv-nlm"):
        bl.get_baseline("magic")
    assert bl.get_baseline("NLM").name == "opencv-nlm"
    small = texture(16, 24)
    big = bl.get_baseline("bicubic")(small, (32, 48))
    assert big.shape == (32, 48, 3)
    assert np.array_equal(bl.get_baseline("input")(small, (32, 48))[::2, ::2], small)
    assert np.array_equal(bl.get_baseline("bicubic")(small), small)  # identity at equal size
    missing = bl.Baseline("bm3d", "x", lambda i, s: i, requires=("no_such_module_m3r",), install="pip install bm3d")
    state = missing.availability()
    assert not state.available and "not installed" in state.message


# ------------------------------------------------------------------------------------------
# Datasets
# ------------------------------------------------------------------------------------------


def test_dataset_errors(tmp_path, clean_dir):
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'; valid: gopro"):
        open_dataset("imagenet")
    with pytest.raises(ConfigError, match="--root"):
        open_dataset("gopro")
    with pytest.raises(ConfigError, match="unknown degradation 'sparkles'; valid: motion-blur"):
        open_dataset("synthetic", root=clean_dir, degrade_spec="sparkles:3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        open_dataset("synthetic", root=tmp_path / "empty", degrade_spec="noise:10")


def test_synthetic_is_seeded_and_limit_is_a_prefix(clean_dir):
    a = open_dataset("synthetic", root=clean_dir, degrade_spec="noise:10-40", seed=3)
    b = open_dataset("synthetic", root=clean_dir, degrade_spec="noise:10-40", seed=3, limit=2)
    assert len(a) == 3 and len(b) == 2
    assert np.array_equal(a.load(1).input, b.load(1).input)
    assert a.load(1).prompt.endswith("noise")
    c = open_dataset("synthetic", root=clean_dir, degrade_spec="noise:10-40", seed=4)
    assert not np.array_equal(a.load(1).input, c.load(1).input)


def test_known_layouts(tmp_path):
    img = Image(texture(32, 32))
    for split in ("test",):
        for seq in ("GOPR0001_00", "GOPR0002_00"):
            for sub in ("blur", "sharp"):
                write_image(tmp_path / "GOPRO_Large" / split / seq / sub / "000001.png", img)
    gopro = open_dataset("gopro", root=tmp_path)
    assert gopro.names == ["GOPR0001_00/000001", "GOPR0002_00/000001"]
    assert gopro.load(0).prompt == "motion blur"
    rb = tmp_path / "RealBlur"
    write_image(rb / "RealBlur-J_ECC_IMCORR_centroid_itensity_ref" / "scene1" / "gt" / "gt_1.png", img)
    write_image(rb / "RealBlur-J_ECC_IMCORR_centroid_itensity_ref" / "scene1" / "blur" / "blur_1.png", img)
    (rb / "RealBlur_J_test_list.txt").write_text(
        "RealBlur-J_ECC_IMCORR_centroid_itensity_ref/scene1/gt/gt_1.png "
        "RealBlur-J_ECC_IMCORR_centroid_itensity_ref/scene1/blur/blur_1.png\n"
    )
    assert len(open_dataset("realblur-j", root=rb)) == 1
    with pytest.raises(DataError, match="RealBlur_R_test_list.txt"):
        open_dataset("realblur-r", root=rb)
    hide = tmp_path / "HIDE_dataset"
    write_image(hide / "test" / "test-close-ups" / "a.png", img)
    write_image(hide / "GT" / "other.png", img)
    with pytest.raises(DataError, match=r"GT/a\.png: no such file \(the ground truth of"):
        open_dataset("hide", root=tmp_path)
    write_image(hide / "GT" / "a.png", img)
    assert open_dataset("hide", root=tmp_path).names == ["test-close-ups/a"]


def test_pair_sizes(tmp_path):
    write_image(tmp_path / "in" / "a.png", Image(texture(40, 56)))
    write_image(tmp_path / "gt" / "a.png", Image(texture(48, 64)))
    data = open_dataset("pairs", input=tmp_path / "in", target=tmp_path / "gt")
    with pytest.raises(DataError, match=r"a\.png is 56x40 but .*a\.png is 64x48.*--crop-to-match"):
        data.load(0)
    item = open_dataset("pairs", input=tmp_path / "in", target=tmp_path / "gt", crop_to_match=True).load(0)
    assert item.input.shape == item.target.shape == (40, 56, 3) and "cropped" in item.notes[0]
    write_image(tmp_path / "lr" / "a.png", Image(texture(24, 32)))
    item = open_dataset("pairs", input=tmp_path / "lr", target=tmp_path / "gt").load(0)
    assert item.model_input.shape == (48, 64, 3) and "x2" in item.notes[0]


def test_prompts():
    assert wrong_prompt("strong motion blur") == "noise"
    assert wrong_prompt("moderate defocus blur, mild noise") == "noise"
    assert wrong_prompt("moderate noise") == "motion blur"
    assert wrong_prompt("strong jpeg compression artifacts") == "motion blur"


# ------------------------------------------------------------------------------------------
# Rendered text
# ------------------------------------------------------------------------------------------


def test_text_images_are_seeded_with_their_strings(monkeypatch):
    import m3restore.data.text_images as ti

    a, b = ti.text_images(3, seed=5), ti.text_images(3, seed=5)
    assert [t.kind for t in a] == ["sign", "plate", "document"]
    for x, y in zip(a, b):
        assert x.text == y.text and x.text.strip() and np.array_equal(x.image, y.image)
        assert x.image.dtype == np.float32 and x.image.ndim == 3 and 0 <= x.image.min() <= x.image.max() <= 1
    assert [t.text for t in ti.text_images(3, seed=6)] != [t.text for t in a]
    monkeypatch.setattr(ti, "find_font", lambda role="sign": None)  # no DejaVu: Pillow's own font
    fallback = ti.text_image(1, seed=5)
    assert fallback.font.startswith("pillow") and fallback.text == a[1].text


# ------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------


def test_eval_synthetic_baselines_ablation_and_bundles(bundles, clean_dir, tmp_path):
    out = tmp_path / "run"
    code, text = run(
        "eval", "--dataset", "synthetic", "--root", clean_dir, "--degrade", "noise:25", "--seed", 0,
        "--weights", bundles[0], "--weights", bundles[1], "--ablate", "text",
        "--baseline", "input", "--baseline", "opencv-nlm", "--out", out, "--device", "cpu",
    )  # fmt: skip
    assert code == 0, text
    assert "LPIPS: unavailable (no weights at" in text and "FID: unavailable" in text
    rows = rows_of(out)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    assert methods == [
        "input", "opencv-nlm",
        "dil-a+correct-prompt", "dil-a+empty-prompt", "dil-a+wrong-prompt",
        "dil-b+correct-prompt", "dil-b+empty-prompt", "dil-b+wrong-prompt",
    ]  # fmt: skip
    assert len(rows) == 3 * 8
    by = {(r["image"], r["method"]): r for r in rows}
    assert by[("img0", "dil-a+correct-prompt")]["prompt"] == "moderate noise"
    assert by[("img0", "dil-a+empty-prompt")]["prompt"] == ""
    assert by[("img0", "dil-a+wrong-prompt")]["prompt"] == "motion blur"
    assert all(r["lpips"] == "" and float(r["psnr"]) > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["images"] == {"total": 3, "scored": 3} and summary["seed"] == 0
    assert summary["dataset"]["degrade"] == "noise:25"
    assert summary["methods"]["input"]["means"]["psnr"] == pytest.approx(
        np.mean([float(r["psnr"]) for r in rows if r["method"] == "input"])
    )
    assert summary["methods"]["input"]["means"]["lpips"] is None and summary["methods"]["input"]["fid"] is None
    assert summary["metrics"]["lpips"]["available"] is False
    shas = {w["label"]: w["predictor_sha256"] for w in summary["weights"]}
    assert set(shas) == {"dil-a", "dil-b"} and len(set(shas.values())) == 2
    assert {"m3restore", "torch", "numpy"} <= set(summary["versions"]) and summary["wall_time_s"] > 0
    for m in methods:
        assert (out / "images" / m / "img2.png").is_file()
    assert (out / "images" / "_degraded" / "img0.png").is_file() and (out / "images" / "_target" / "img0.png").is_file()
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script src" not in html
    # The input row equals the seeded degradation of the clean image.
    again = open_dataset("synthetic", root=clean_dir, degrade_spec="noise:25", seed=0).load(0)
    from m3restore.metrics.quality import quantize

    assert float(by[("img0", "input")]["psnr"]) == pytest.approx(
        psnr(quantize(again.input), quantize(again.target)), abs=1e-4
    )


def test_eval_with_lpips_and_fid_weights(bundles, clean_dir, lpips_file, fid_file, tmp_path):
    out = tmp_path / "run"
    code, text = run(
        "eval", "--dataset", "synthetic", "--root", clean_dir, "--degrade", "motion-blur:5-9",
        "--weights", bundles[0], "--baseline", "input", "--lpips-weights", lpips_file, "--fid-weights", fid_file,
        "--out", out, "--device", "cpu",
    )  # fmt: skip
    assert code == 0, text
    assert "unavailable" not in text.split("report:")[0].split("┘")[-1]
    rows = rows_of(out)
    assert all(float(r["lpips"]) >= 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    for m in ("input", "dil-a"):
        assert summary["methods"][m]["means"]["lpips"] > 0
        assert math.isfinite(summary["methods"][m]["fid"]) and summary["methods"][m]["fid"] >= 0
    assert summary["metrics"]["lpips"]["sha256"] and summary["metrics"]["fid"]["path"] == str(fid_file)


def test_eval_self_ensemble_row(bundles, clean_dir, tmp_path):
    out = tmp_path / "run"
    args = ["eval", "--dataset", "synthetic", "--root", clean_dir, "--degrade", "noise:25", "--seed", 0,
            "--weights", bundles[0], "--device", "cpu", "--limit", 1]  # fmt: skip
    code, text = run(*args, "--ensemble", 2, "--out", out)
    assert code == 0, text
    code, text = run(*args, "--out", tmp_path / "plain")
    assert code == 0, text
    input_row, row = rows_of(out)  # the degraded input is scored by default, as the gain's zero
    (_, plain) = rows_of(tmp_path / "plain")
    assert input_row["method"] == "input"
    assert row["method"] == "dil-a-x2" and plain["method"] == "dil-a"
    assert row["psnr"] != plain["psnr"]
    code, text = run(*args[:9], "--no-model", "--ensemble", 2, "--out", tmp_path / "x")
    assert code != 0 and one_error_line(text) and "--ensemble" in text


def test_resume_and_interrupt(bundles, clean_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    base = ["eval", "--dataset", "synthetic", "--root", clean_dir, "--degrade", "noise:10", "--no-model",
            "--baseline", "input", "--baseline", "bicubic", "--out", out]  # fmt: skip
    code, text = run(*base, "--limit", 1)
    assert code == 0, text
    first = rows_of(out)
    assert len(first) == 2
    code, text = run(*base)
    assert code == 1 and one_error_line(text) and "--resume" in text
    # Ctrl-C while restoring the third image: a valid partial report, exit 130, one line.
    calls = {"n": 0}

    def flaky(image, size):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return image

    monkeypatch.setitem(bl.BASELINES, "bicubic", bl.Baseline("bicubic", "test", flaky))
    code, text = run(*base, "--resume")
    assert code == 130 and one_error_line(text) and "interrupted after 2 of 3 images" in text
    rows = rows_of(out)
    assert rows[:2] == first and len(rows) == 5  # img1 both methods, img2 only "input"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["images"]["scored"] == 2
    assert "Partial results" in (out / "report.html").read_text()
    monkeypatch.undo()
    code, text = run(*base, "--resume")
    assert code == 0, text
    rows = rows_of(out)
    assert len(rows) == 6 and len({(r["image"], r["method"]) for r in rows}) == 6
    assert json.loads((out / "summary.json").read_text())["complete"] is True
    code, text = run(*base[:6], "noise:30", *base[7:], "--resume")
    assert code == 1 and one_error_line(text) and "degrade" in text


def test_eval_errors(tmp_path, clean_dir):
    def err(*args):
        code, text = run("eval", *args)
        assert code != 0 and one_error_line(text), text
        return text

    text = err("--dataset", "text", "--count", 1, "--no-model", "--baseline", "nope", "--out", tmp_path / "a")
    assert "unknown baseline 'nope'; valid: input" in text
    text = err("--dataset", "synthetic", "--root", clean_dir, "--degrade", "fog", "--out", tmp_path / "b")
    assert "unknown degradation 'fog'; valid: motion-blur" in text
    (tmp_path / "empty").mkdir()
    assert "no images" in err("--dataset", "synthetic", "--root", tmp_path / "empty", "--degrade", "noise",
                              "--out", tmp_path / "c")  # fmt: skip
    (tmp_path / "file").write_text("x")
    assert "cannot create" in err("--dataset", "text", "--count", 1, "--no-model", "--out", tmp_path / "file" / "o")
    text = err("--dataset", "text", "--ablate", "dilation", "--out", tmp_path / "d")
    assert "unknown --ablate value 'dilation'; valid: text" in text
    write_image(tmp_path / "in" / "a.png", Image(texture(40, 56)))
    write_image(tmp_path / "gt" / "a.png", Image(texture(48, 60)))
    text = err("--input", tmp_path / "in", "--target", tmp_path / "gt", "--no-model", "--out", tmp_path / "e")
    assert "size mismatch for a" in text and "--crop-to-match" in text
    write_image(tmp_path / "in" / "b.png", Image(texture(40, 56)))
    assert "no target for 1 input(s): b.png" in err(
        "--input", tmp_path / "in", "--target", tmp_path / "gt", "--no-model", "--out", tmp_path / "f"
    )


def test_uninstalled_baseline_is_skipped_with_a_line(tmp_path, monkeypatch):
    monkeypatch.setitem(
        bl.BASELINES, "bm3d", bl.Baseline("bm3d", "x", lambda i, s: i, ("no_such_module_m3r",), "pip install bm3d")
    )
    write_image(tmp_path / "in" / "a.png", Image(texture()))
    write_image(tmp_path / "gt" / "a.png", Image(texture()))
    code, text = run("eval", "--input", tmp_path / "in", "--target", tmp_path / "gt", "--no-model",
                     "--baseline", "input", "--baseline", "bm3d", "--out", tmp_path / "o")  # fmt: skip
    assert code == 0, text
    assert "bm3d: unavailable (no_such_module_m3r not installed; pip install bm3d): row skipped" in text
    rows = rows_of(tmp_path / "o")
    assert [r["method"] for r in rows] == ["input"] and rows[0]["psnr"] == "inf"  # identical images


def test_eval_text_dataset_with_ocr(tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["eval", "--dataset", "text", "--count", 2, "--seed", 1, "--no-model", "--out", out]
    if not HAVE_TESSERACT:
        code, text = run(*args)
        assert code == 0 and "OCR: unavailable (" in text
        return
    code, text = run(*args)
    assert code == 0, text
    rows = rows_of(out)
    assert [r["method"] for r in rows] == ["input", "ground-truth"] * 2
    assert all(r["truth_text"] and r["ocr_cer"] != "" for r in rows)
    assert json.loads((out / "summary.json").read_text())["dataset"]["degrade"] == "motion-blur:9-21"
    import m3restore.evaluation.ocr as ocr

    monkeypatch.setattr(ocr.shutil, "which", lambda cmd: None)
    code, text = run(*args, "--overwrite")
    assert code == 0 and "OCR: unavailable (tesseract not installed" in text
    assert all(r["ocr_cer"] == "" for r in rows_of(out))


def test_eval_without_out_writes_a_fresh_dated_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = run("eval", "--dataset", "text", "--count", 1, "--no-model")
    assert code == 0, out
    (folder,) = (tmp_path / "runs" / "eval").glob("text-*")
    assert (folder / "report.html").is_file() and (folder / "results.csv").is_file()
    assert str(folder.relative_to(tmp_path)) in out

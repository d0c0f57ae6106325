from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from m3restore.data.datasets import (
    EvalDataset,
    MixedDataset,
    Pair,
    PairedCropDataset,
    SyntheticDataset,
    _load_rgb,
    clean_images,
    folder_pairs,
    gopro_pairs,
    hide_pairs,
    realblur_pairs,
)
from m3restore.errors import ConfigError, DataError


def pattern(h, w, seed=0):
    """A uint8 RGB image with structure in every direction (so rotations/flips are visible)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), img)
    return path


def dihedral(img):
    """All 8 rotations/flips of an HxWxC array."""
    out = []
    for k in range(4):
        r = np.rot90(img, k, axes=(0, 1))
        out += [r, r[:, ::-1]]
    return out


# ---------------------------------------------------------------------------- loading


def test_load_rgb_variants(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    img = _load_rgb(write(tmp_path / "red.png", rgb))
    assert img.dtype == np.float32 and img.shape == (4, 5, 3)
    assert np.allclose(img[..., 0], 1) and np.allclose(img[..., 1:], 0)

    grey = _load_rgb(write(tmp_path / "grey.png", np.full((3, 3), 128, np.uint8)))
    assert grey.shape == (3, 3, 3) and np.allclose(grey, 128 / 255)

    deep = np.full((2, 2, 3), 65535, np.uint16)
    assert np.allclose(_load_rgb(write(tmp_path / "deep.png", deep)), 1.0)

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 2] = 255  # blue in BGRA order
    assert cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    img = _load_rgb(tmp_path / "alpha.png")
    assert img.shape == (2, 2, 3) and np.allclose(img[..., 0], 1)


def test_load_rgb_errors(tmp_path):
    with pytest.raises(DataError, match="missing.png"):
        _load_rgb(tmp_path / "missing.png")
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="corrupt.png"):
        _load_rgb(bad)


# ---------------------------------------------------------------------------- discovery


def test_folder_pairs(tmp_path):
    for stem in ("b", "a", "c"):
        write(tmp_path / "in" / f"{stem}.png", pattern(8, 8))
        write(tmp_path / "gt" / f"{stem}.jpg", pattern(8, 8))
    write(tmp_path / "gt" / "extra.png", pattern(8, 8))  # targets without inputs are ignored
    (tmp_path / "in" / "notes.txt").write_text("ignored")
    pairs = folder_pairs(tmp_path / "in", tmp_path / "gt")
    assert [p.name for p in pairs] == ["a", "b", "c"]
    assert pairs[0].input == tmp_path / "in" / "a.png" and pairs[0].target == tmp_path / "gt" / "a.jpg"
    assert all(p.target is None for p in folder_pairs(tmp_path / "in", None))


def test_folder_pairs_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        folder_pairs(tmp_path / "nope", tmp_path)
    for i in range(7):
        write(tmp_path / "in" / f"img{i}.png", pattern(4, 4))
    write(tmp_path / "gt" / "img0.png", pattern(4, 4))
    with pytest.raises(DataError) as info:
        folder_pairs(tmp_path / "in", tmp_path / "gt")
    msg = str(info.value)
    assert "6 input(s)" in msg and "img1.png" in msg and "img5.png" in msg and "img6.png" not in msg
    assert "and 1 more" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        folder_pairs(tmp_path / "empty", tmp_path / "gt")
    write(tmp_path / "gt" / "img0.jpg", pattern(4, 4))
    with pytest.raises(DataError, match="same name stem"):
        folder_pairs(tmp_path / "gt", tmp_path / "gt")


def make_gopro(root: Path, split="train", seqs=("GOPR0384_11_00", "GOPR0372_07_00"), frames=2):
    for seq in seqs:
        for f in range(1, frames + 1):
            for folder in ("blur", "blur_gamma", "sharp"):
                write(root / "GOPRO_Large" / split / seq / folder / f"{f:06d}.png", pattern(6, 8, f))


def test_gopro_pairs(tmp_path):
    make_gopro(tmp_path)
    pairs = gopro_pairs(tmp_path / "GOPRO_Large", "train")
    assert [p.name for p in pairs] == [
        "GOPR0372_07_00/000001",
        "GOPR0372_07_00/000002",
        "GOPR0384_11_00/000001",
        "GOPR0384_11_00/000002",
    ]
    assert pairs[0].input.parent.name == "blur" and pairs[0].target.parent.name == "sharp"
    assert gopro_pairs(tmp_path, "train") == pairs  # the parent folder works too
    gamma = gopro_pairs(tmp_path, "train", blur_folder="blur_gamma")
    assert gamma[0].input.parent.name == "blur_gamma"


def test_gopro_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        gopro_pairs(tmp_path / "GOPRO_Large")
    make_gopro(tmp_path)
    with pytest.raises(DataError, match="test: no such folder"):
        gopro_pairs(tmp_path, "test")
    (tmp_path / "GOPRO_Large" / "train" / "GOPR0384_11_00" / "sharp" / "000002.png").unlink()
    with pytest.raises(DataError, match="000002.png"):
        gopro_pairs(tmp_path, "train")
    with pytest.raises(ConfigError):
        gopro_pairs(tmp_path, "val")
    (tmp_path / "GOPRO_Large" / "empty" / "SEQ" / "blur").mkdir(parents=True)
    (tmp_path / "GOPRO_Large" / "empty" / "SEQ" / "sharp").mkdir()
    with pytest.raises(ConfigError):
        gopro_pairs(tmp_path, "empty")


def test_gopro_no_pairs(tmp_path):
    (tmp_path / "GOPRO_Large" / "test" / "SEQ" / "blur").mkdir(parents=True)
    (tmp_path / "GOPRO_Large" / "test" / "SEQ" / "sharp").mkdir()
    with pytest.raises(DataError, match="no image pairs"):
        gopro_pairs(tmp_path, "test")


def make_realblur(root: Path, variant="J", split="test", scenes=(230, 231)):
    top = f"RealBlur-{variant}_ECC_IMCORR_centroid_itensity_ref"
    lines = []
    for s in scenes:
        for i in (1, 2):
            gt = f"{top}/scene{s}/gt/gt_{i}.png"
            blur = f"{top}/scene{s}/blur/blur_{i}.png"
            write(root / gt, pattern(6, 6, i))
            write(root / blur, pattern(6, 6, i))
            lines.append(f"{gt} {blur}")
    (root / f"RealBlur_{variant}_{split}_list.txt").write_text("\n".join(lines) + "\n\n")
    return lines


def test_realblur_pairs(tmp_path):
    make_realblur(tmp_path, "J", "test")
    make_realblur(tmp_path, "R", "train", scenes=(5,))
    pairs = realblur_pairs(tmp_path, "J", "test")
    assert len(pairs) == 4
    assert pairs[0].name == "scene230/blur/blur_1"
    assert pairs[0].input.name == "blur_1.png" and pairs[0].target.name == "gt_1.png"
    assert len(realblur_pairs(tmp_path, "r", "train")) == 2
    with pytest.raises(DataError, match="RealBlur_R_test_list.txt: no such file"):
        realblur_pairs(tmp_path, "R", "test")
    with pytest.raises(ConfigError):
        realblur_pairs(tmp_path, "X")
    with pytest.raises(DataError, match="no such folder"):
        realblur_pairs(tmp_path / "missing")


def test_realblur_missing_partner(tmp_path):
    lines = make_realblur(tmp_path)
    gt = tmp_path / lines[2].split()[0]
    gt.unlink()
    with pytest.raises(DataError) as info:
        realblur_pairs(tmp_path)
    assert str(gt) in str(info.value) and "line 3" in str(info.value)


def make_hide(root: Path):
    base = root / "HIDE_dataset"
    for sub, names in (("test-close-ups", ["1fromGOPR0950", "2fromGOPR0950"]), ("test-long-shot", ["3fromX"])):
        for n in names:
            write(base / "test" / sub / f"{n}.png", pattern(6, 6))
            write(base / "GT" / f"{n}.png", pattern(6, 6))
    for n in ("10fromA", "11fromA"):
        write(base / "train" / f"{n}.png", pattern(6, 6))
        write(base / "GT" / f"{n}.png", pattern(6, 6))
    return base


def test_hide_pairs(tmp_path):
    base = make_hide(tmp_path)
    pairs = hide_pairs(base, "test")
    assert [p.name for p in pairs] == [
        "test-close-ups/1fromGOPR0950",
        "test-close-ups/2fromGOPR0950",
        "test-long-shot/3fromX",
    ]
    assert pairs[0].target == base / "GT" / "1fromGOPR0950.png"
    assert [p.name for p in hide_pairs(tmp_path, "train")] == ["10fromA", "11fromA"]
    (base / "GT" / "3fromX.png").unlink()
    with pytest.raises(DataError, match="3fromX.png"):
        hide_pairs(base, "test")
    with pytest.raises(DataError, match="no such folder"):
        hide_pairs(tmp_path / "nothing")


def test_hide_flat_test_folder(tmp_path):
    write(tmp_path / "test" / "a.png", pattern(6, 6))
    write(tmp_path / "GT" / "a.png", pattern(6, 6))
    assert [p.name for p in hide_pairs(tmp_path)] == ["a"]


def test_clean_images(tmp_path):
    write(tmp_path / "x" / "b.png", pattern(4, 4))
    write(tmp_path / "x" / "sub" / "a.jpg", pattern(4, 4))
    (tmp_path / "x" / "readme.md").write_text("no")
    assert [p.name for p in clean_images(tmp_path / "x")] == ["b.png", "a.jpg"]
    assert [p.name for p in clean_images(tmp_path / "x", recursive=False)] == ["b.png"]
    assert clean_images(tmp_path / "x" / "b.png") == [tmp_path / "x" / "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        clean_images(tmp_path / "empty")
    with pytest.raises(DataError, match="no such folder"):
        clean_images(tmp_path / "missing")


# ---------------------------------------------------------------------------- PairedCropDataset


def same_pairs(tmp_path, n=2, h=24, w=20):
    """Pairs whose input and target are the same image."""
    pairs = []
    for i in range(n):
        p = write(tmp_path / f"img{i}.png", pattern(h, w, i))
        pairs.append(Pair(p, p, f"img{i}"))
    return pairs


def test_paired_crop_alternative_prompts(tmp_path):
    pairs = same_pairs(tmp_path)
    alt = {"img0": "mild motion blur", "img1": "strong motion blur"}
    plain = PairedCropDataset(pairs, crop=16, length=40, seed=3)
    always = PairedCropDataset(pairs, crop=16, length=40, seed=3, alt_prompts=alt, alt_rate=1.0)
    half = [PairedCropDataset(pairs, crop=16, length=40, seed=3, alt_prompts=alt, alt_rate=0.5) for _ in range(2)]
    for i in range(40):
        a, b, h = plain[i], always[i], half[0][i]
        assert a["prompt"] == "motion blur" and b["prompt"] == alt[a["name"]]
        assert h["prompt"] in ("motion blur", alt[a["name"]]) and h["prompt"] == half[1][i]["prompt"]
        # the prompt is drawn after the crop, augmentation and noise, so the pixels do not change
        assert torch.equal(a["input"], b["input"]) and torch.equal(a["input"], h["input"])
    assert 5 < sum(half[0][i]["prompt"] != "motion blur" for i in range(40)) < 35
    with pytest.raises(ConfigError, match="no alternative prompt for pair img1"):
        PairedCropDataset(pairs, crop=16, alt_prompts={"img0": "x"}, alt_rate=0.5)
    with pytest.raises(ConfigError, match="alt_rate must be between 0 and 1"):
        PairedCropDataset(pairs, crop=16, alt_prompts=alt, alt_rate=1.5)


def test_paired_crop_shapes_and_keys(tmp_path):
    ds = PairedCropDataset(same_pairs(tmp_path), crop=16, length=10)
    assert len(ds) == 10
    item = ds[9]
    assert set(item) == {"input", "target", "prompt", "name"}
    assert item["input"].shape == (3, 16, 16) and item["target"].shape == (3, 16, 16)
    assert item["input"].dtype == torch.float32
    assert item["prompt"] == "motion blur" and item["name"] == "img1"
    assert 0 <= float(item["input"].min()) and float(item["input"].max()) <= 1
    with pytest.raises(IndexError):
        ds[10]
    rect = PairedCropDataset(same_pairs(tmp_path), crop=(8, 12))
    assert all(rect[i]["input"].shape == (3, 8, 12) for i in range(2))


def test_paired_small_images_are_padded(tmp_path):
    ds = PairedCropDataset(same_pairs(tmp_path, h=10, w=12), crop=16, augment=False)
    item = ds[0]
    assert item["input"].shape == (3, 16, 16)
    assert torch.equal(item["input"], item["target"])


def test_paired_augmentation_same_op(tmp_path):
    pairs = same_pairs(tmp_path, n=1, h=12, w=12)
    original = _load_rgb(pairs[0].input)
    ds = PairedCropDataset(pairs, crop=None, noise_sigma=0.0, length=40)
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        assert torch.equal(item["input"], item["target"])  # same geometric op on both
        got = item["input"].numpy().transpose(1, 2, 0)
        matches = [k for k, t in enumerate(dihedral(original)) if np.array_equal(got, t)]
        assert matches, "output must be a rotation/flip of the image"
        seen.add(matches[0])
    assert len(seen) >= 4, "augmentation should produce several different rotations/flips"


def test_paired_noise_on_input_only(tmp_path):
    ds = PairedCropDataset(same_pairs(tmp_path), crop=16, noise_sigma=1e-4)
    item = ds[0]
    diff = (item["input"] - item["target"]).abs()
    assert 0 < float(diff.max()) < 1e-3


def test_paired_determinism_and_epochs(tmp_path):
    pairs = [Pair(write(tmp_path / "in.png", pattern(40, 40, 1)), write(tmp_path / "gt.png", pattern(40, 40, 2)), "x")]
    a = PairedCropDataset(pairs, crop=16, seed=1, length=4)
    b = PairedCropDataset(pairs, crop=16, seed=1, length=4, cache=False)
    c = PairedCropDataset(pairs, crop=16, seed=2, length=4)
    for i in range(4):
        assert torch.equal(a[i]["input"], b[i]["input"]) and torch.equal(a[i]["target"], b[i]["target"])
    assert any(not torch.equal(a[i]["input"], c[i]["input"]) for i in range(4))
    first = [a[i]["input"] for i in range(4)]
    a.set_epoch(1)
    assert any(not torch.equal(first[i], a[i]["input"]) for i in range(4))
    a.set_epoch(0)
    assert all(torch.equal(first[i], a[i]["input"]) for i in range(4))
    assert not torch.equal(a[0]["input"], a[1]["input"])  # indices differ within an epoch


def test_paired_size_mismatch(tmp_path):
    pair = Pair(write(tmp_path / "in.png", pattern(10, 12)), write(tmp_path / "gt.png", pattern(10, 14)), "x")
    ds = PairedCropDataset([pair], crop=8)
    with pytest.raises(DataError) as info:
        ds[0]
    msg = str(info.value)
    assert "in.png" in msg and "gt.png" in msg and "12x10" in msg and "14x10" in msg


def test_paired_errors(tmp_path):
    with pytest.raises(DataError):
        PairedCropDataset([])
    with pytest.raises(DataError):
        PairedCropDataset([Pair(tmp_path / "a.png", None, "a")])
    with pytest.raises(ConfigError):
        PairedCropDataset(same_pairs(tmp_path), crop=0)


def test_paired_dataloader_workers_match(tmp_path):
    ds = PairedCropDataset(same_pairs(tmp_path), crop=8, length=6, prompt=lambda p: f"blur {p.name}")
    direct = [ds[i] for i in range(6)]
    batches = list(DataLoader(ds, batch_size=3, num_workers=2))
    got = torch.cat([b["input"] for b in batches])
    assert torch.equal(got, torch.stack([d["input"] for d in direct]))
    assert batches[0]["prompt"] == ["blur img0", "blur img1", "blur img0"]


# ---------------------------------------------------------------------------- SyntheticDataset


def clean_folder(tmp_path, n=3, h=20, w=24):
    return [write(tmp_path / "clean" / f"c{i}.png", pattern(h, w, 10 + i)) for i in range(n)]


def test_synthetic_items(tmp_path):
    images = clean_folder(tmp_path)
    ds = SyntheticDataset(images, "noise:25", crop=16, prompt_dropout=0.0, length=7)
    assert len(ds) == 7
    item = ds[4]
    assert item["input"].shape == (3, 16, 16) and item["target"].shape == (3, 16, 16)
    assert item["prompt"] == "moderate noise"
    assert item["name"] == "c1"
    diff = (item["input"] - item["target"]).numpy()
    assert 0.05 < diff.std() < 0.15
    raw = ds.load(4)
    assert raw["record"][0].name == "noise" and raw["input"].dtype == np.float32


def test_synthetic_determinism(tmp_path):
    images = clean_folder(tmp_path)
    spec = "motion-blur,noise:0-50,jpeg:10-90"
    a = SyntheticDataset(images, spec, crop=16, seed=3)
    b = SyntheticDataset(images, spec, crop=16, seed=3, cache=False)
    c = SyntheticDataset(images, spec, crop=16, seed=4)
    for i in range(3):
        x, y = a[i], b[i]
        assert torch.equal(x["input"], y["input"]) and x["prompt"] == y["prompt"]
    assert any(not torch.equal(a[i]["input"], c[i]["input"]) for i in range(3))
    before = a[0]["input"]
    a.set_epoch(5)
    assert not torch.equal(before, a[0]["input"])


def test_synthetic_prompt_dropout_and_content(tmp_path):
    images = clean_folder(tmp_path)
    always = SyntheticDataset(images, "noise:25", crop=8, prompt_dropout=1.0)
    assert all(always[i]["prompt"] == "" for i in range(3))
    words = SyntheticDataset(
        tmp_path / "clean", "greyscale", crop=8, prompt_dropout=0.0, content_words={"c0": "a red car"}
    )
    assert words[0]["prompt"] == "a red car, greyscale"
    assert words[1]["prompt"] == "greyscale"
    some = SyntheticDataset(images, "noise:25", crop=8, prompt_dropout=0.5, length=60)
    empty = sum(some[i]["prompt"] == "" for i in range(60))
    assert 10 < empty < 50
    with pytest.raises(ConfigError):
        SyntheticDataset(images, "noise", prompt_dropout=2)
    with pytest.raises(ConfigError, match="unknown degradation 'sparkle'; valid: motion-blur"):
        SyntheticDataset(images, "sparkle")


def test_synthetic_augment_and_batch(tmp_path):
    images = clean_folder(tmp_path, n=2, h=8, w=8)
    ds = SyntheticDataset(images, "greyscale", crop=None, prompt_dropout=0.0, length=20)
    clean = [_load_rgb(p) for p in images]
    seen = set()
    for i in range(20):
        target = ds[i]["target"].numpy().transpose(1, 2, 0)
        matches = [k for k, t in enumerate(dihedral(clean[i % 2])) if np.array_equal(target, t)]
        assert matches
        seen.add(matches[0])
    assert len(seen) >= 3
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["input"].shape == (4, 3, 8, 8) and len(batch["prompt"]) == 4


def test_synthetic_scale_shows_a_larger_window_shrunk(tmp_path):
    # Columns alternate black and white: a crop at scale 1 keeps the stripes, a crop at scale 0.5
    # averages each black-white couple to grey.
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255
    images = [write(tmp_path / "stripes.png", stripes)]
    plain = SyntheticDataset(images, "greyscale", crop=16, augment=False, length=4)
    half = SyntheticDataset(images, "greyscale", crop=16, augment=False, length=4, scale=(0.5, 0.5))
    for i in range(4):
        assert plain[i]["target"].std() > 0.4
        target = half[i]["target"]
        assert target.shape == (3, 16, 16) and abs(float(target.mean()) - 0.5) < 0.01 and target.std() < 0.01
    # A photo too small for the window is shown at the smallest scale it allows, never mirrored.
    small = SyntheticDataset(images, "greyscale", crop=48, augment=False, length=2, scale=(0.25, 0.25))
    assert small[0]["target"].shape == (3, 48, 48)
    with pytest.raises(ConfigError, match="scale"):
        SyntheticDataset(images, "greyscale", scale=(0.5, 1.5))


def test_synthetic_shuffle_channels_keeps_the_values(tmp_path):
    flat = np.empty((16, 16, 3), np.uint8)
    flat[...] = (30, 120, 230)
    images = [write(tmp_path / "flat.png", flat)]
    ds = SyntheticDataset(images, "greyscale", crop=8, length=24, shuffle_channels=True)
    orders = {tuple(np.round(ds.load(i)["target"][0, 0] * 255).astype(int)) for i in range(24)}
    assert all(sorted(order) == [30, 120, 230] for order in orders)
    assert len(orders) >= 4
    off = SyntheticDataset(images, "greyscale", crop=8, length=4)
    assert {tuple(np.round(off.load(i)["target"][0, 0] * 255).astype(int)) for i in range(4)} == {(30, 120, 230)}


def test_scale_and_shuffle_are_options_of_clean_sources():
    from m3restore.training.config import SourceConfig

    assert SourceConfig(kind="clean", scale=(0.5, 1.0), shuffle_channels=True).scale == (0.5, 1.0)
    with pytest.raises(ValueError, match="clean sources"):
        SourceConfig(kind="gopro", shuffle_channels=True)


# ---------------------------------------------------------------------------- EvalDataset


def test_eval_pairs_whole_images(tmp_path):
    pairs = [
        Pair(write(tmp_path / "i0.png", pattern(10, 14)), write(tmp_path / "t0.png", pattern(10, 14, 1)), "p0"),
        Pair(write(tmp_path / "i1.png", pattern(7, 9)), write(tmp_path / "t1.png", pattern(7, 9, 1)), "p1"),
    ]
    ds = EvalDataset(pairs)
    assert len(ds) == 2
    assert ds[0]["input"].shape == (3, 10, 14) and ds[1]["target"].shape == (3, 7, 9)
    assert ds[0]["prompt"] == "motion blur" and ds[1]["name"] == "p1"
    assert np.allclose(ds[0]["input"].numpy().transpose(1, 2, 0), _load_rgb(pairs[0].input))
    assert EvalDataset(pairs, prompt="defocus")[0]["prompt"] == "defocus"
    with pytest.raises(ConfigError):
        EvalDataset(pairs, "noise")


def test_eval_synthetic_determinism(tmp_path):
    images = clean_folder(tmp_path)
    spec = "motion-blur,noise:0-50,jpeg:10-90"
    a, b = EvalDataset(images, spec, seed=0), EvalDataset(tmp_path / "clean", spec, seed=0)
    c = EvalDataset(images, spec, seed=1)
    for i in range(3):
        x, y = a[i], b[i]
        assert torch.equal(x["input"], y["input"]) and x["prompt"] == y["prompt"] and x["name"] == y["name"]
        assert x["input"].shape == (3, 20, 24)
        assert x["prompt"] and "motion blur" in x["prompt"]
    assert any(not torch.equal(a[i]["input"], c[i]["input"]) for i in range(3))
    assert not torch.equal(a[0]["input"], a[1]["input"])
    assert [r.name for r in a.load(2)["record"]] == [r.name for r in b.load(2)["record"]]
    with pytest.raises(ConfigError):
        EvalDataset(images)


# ---------------------------------------------------------------------------- MixedDataset


class Numbers(torch.utils.data.Dataset):
    def __init__(self, tag, n):
        self.tag, self.n, self.epoch = tag, n, 0

    def __len__(self):
        return self.n

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        return (self.tag, i)


def test_mixed_dataset():
    real, synth = Numbers("real", 50), Numbers("synth", 500)
    mixed = MixedDataset([real, synth], [0.3, 0.7], length=1000, seed=0)
    assert len(mixed) == 1000
    items = [mixed[i] for i in range(1000)]
    share = sum(tag == "real" for tag, _ in items) / 1000
    assert 0.25 < share < 0.35
    synth_items = [i for tag, i in items if tag == "synth"]
    assert len(set(synth_items)) == len(synth_items) or len(synth_items) > 500  # no repeats within its share
    again = MixedDataset([real, synth], [0.3, 0.7], length=1000, seed=0)
    assert [again[i] for i in range(1000)] == items
    mixed.set_epoch(1)
    assert real.epoch == 1 and synth.epoch == 1
    assert [mixed[i] for i in range(1000)] != items
    assert MixedDataset([real, synth]).weights.tolist() == [0.5, 0.5]
    assert len(MixedDataset([real, synth])) == 550


def test_persistent_workers_follow_the_epoch_through_epoch_keys():
    from m3restore.data.datasets import EpochKeyed, EpochSampler

    def mixture():
        return MixedDataset([Numbers("real", 5), Numbers("synth", 50)], [0.3, 0.7], length=40, seed=0)

    sampler = EpochSampler(40, seed=1)
    loader = DataLoader(EpochKeyed(mixture()), batch_size=4, sampler=sampler, num_workers=2, persistent_workers=True)
    offsets = {0: 0, 1: 0, 2: 8}  # epoch 2 resumes after two batches
    seen = {}
    for epoch, offset in offsets.items():
        sampler.set_epoch(epoch, offset)
        seen[epoch] = [(tag, int(i)) for batch in loader for tag, i in zip(*batch)]
    reference = mixture()
    for epoch, offset in offsets.items():
        reference.set_epoch(epoch)
        sampler.set_epoch(epoch, offset)
        assert seen[epoch] == [reference[i] for _, i in sampler]
    assert len(seen[2]) == 32 and seen[0] != seen[1]


def test_mixed_errors():
    with pytest.raises(ConfigError):
        MixedDataset([Numbers("a", 3)], [0.5, 0.5])
    with pytest.raises(ConfigError):
        MixedDataset([Numbers("a", 3), Numbers("b", 3)], [-1, 2])
    with pytest.raises(ConfigError):
        MixedDataset([])
    with pytest.raises(IndexError):
        MixedDataset([Numbers("a", 3)])[3]


def test_rendered_text_prompts_sometimes_name_the_content():
    from m3restore.data.datasets import TEXT_CONTENT, RenderedTextDataset

    data = RenderedTextDataset("motion-blur", crop=64, seed=3, length=40, prompt_dropout=0.0, content_rate=0.5)
    items = [data.load(i) for i in range(40)]
    assert all(it["input"].shape == (64, 64, 3) == it["target"].shape for it in items)
    named = [it for it in items if any(it["prompt"].startswith(c) for c in TEXT_CONTENT.values())]
    assert 5 < len(named) < 35 and all("motion blur" in it["prompt"] for it in items)
    again = RenderedTextDataset("motion-blur", crop=64, seed=3, length=40, prompt_dropout=0.0)
    assert np.array_equal(again.load(7)["input"], items[7]["input"])  # seeded

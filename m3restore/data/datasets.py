"""Torch datasets for training and evaluation.

Pair discovery (:func:`gopro_pairs`, :func:`realblur_pairs`, :func:`hide_pairs`,
:func:`folder_pairs`, :func:`clean_images`) turns a dataset folder into a list of files; the
dataset classes turn those into items

``{"input": FloatTensor 3xHxW, "target": FloatTensor 3xHxW, "prompt": str, "name": str}``

with values in ``[0, 1]``.

Randomness: every item draws from ``np.random.default_rng([seed, epoch, index])``, so an item
depends only on those three numbers — never on global RNG state, on which DataLoader worker
loads it, or on what was loaded before. Call ``set_epoch(epoch)`` before each epoch to get new
crops. DataLoader workers hold their own copies of the dataset, so with
``persistent_workers=True`` a ``set_epoch`` in the main process does not reach them: wrap the
dataset in :class:`EpochKeyed` and draw ``(epoch, index)`` keys with :class:`EpochSampler`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from m3restore.data.degrade import Applied, DegradationSpec, degrade, describe, gaussian_noise, parse_spec
from m3restore.errors import ConfigError, DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "EvalDataset",
    "MixedDataset",
    "Pair",
    "PairedCropDataset",
    "SyntheticDataset",
    "clean_images",
    "folder_pairs",
    "gopro_pairs",
    "hide_pairs",
    "realblur_pairs",
]

#: File name endings (lower case) treated as images when scanning folders.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

#: Prompt for real motion-blur pairs (GoPro, RealBlur, HIDE).
DEFAULT_PAIR_PROMPT = "motion blur"


# --------------------------------------------------------------------------------------------
# Pairs and discovery
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One evaluation/training pair of files; ``name`` is a stable id like ``"GOPR0384_11_00/000001"``."""

    input: Path
    target: Path | None
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        if self.target is not None:
            object.__setattr__(self, "target", Path(self.target))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _images_in(folder: Path, recursive: bool = False) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if _is_image(p))


def _need_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: no such folder")
    return path


def _need_file(path: Path, what: str = "") -> Path:
    if not path.is_file():
        raise DataError(f"{path}: no such file{what}")
    return path


def _dataset_root(root: str | os.PathLike, child: str) -> Path:
    """``root`` itself, or ``root/child`` when the user pointed at the parent folder."""
    root = Path(root)
    _need_dir(root)
    nested = root / child
    return nested if nested.is_dir() else root


def _check_split(split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise ConfigError(f"split must be one of {', '.join(allowed)}, not {split!r}")


def gopro_pairs(root: str | os.PathLike, split: str = "train", blur_folder: str = "blur") -> list[Pair]:
    """GoPro pairs: ``GOPRO_Large/{train,test}/<sequence>/{blur,blur_gamma,sharp}/NNNNNN.png``.

    ``root`` is the ``GOPRO_Large`` folder or its parent. ``blur_folder`` picks ``blur`` or
    ``blur_gamma`` inputs; targets always come from ``sharp``. Names are
    ``"<sequence>/<stem>"``.
    """
    _check_split(split, ("train", "test"))
    base = _need_dir(_dataset_root(root, "GOPRO_Large") / split)
    pairs: list[Pair] = []
    sequences = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    for seq in sequences:
        blur_dir = _need_dir(seq / blur_folder)
        sharp_dir = _need_dir(seq / "sharp")
        for blur in _images_in(blur_dir):
            sharp = _need_file(sharp_dir / blur.name, f" (the sharp partner of {blur})")
            pairs.append(Pair(blur, sharp, f"{seq.name}/{blur.stem}"))
    if not pairs:
        raise DataError(
            f"{base}: no image pairs found (expected <sequence>/{blur_folder}/*.png and <sequence>/sharp/*.png)"
        )
    return pairs


def realblur_pairs(root: str | os.PathLike, variant: str = "J", split: str = "test") -> list[Pair]:
    """RealBlur pairs from ``root/RealBlur_{J,R}_{train,test}_list.txt``.

    Each list line is ``"gt_path blur_path"`` relative to ``root``. Names are the blur path
    without its first folder and extension, e.g. ``"scene230/blur/blur_1"``.
    """
    _check_split(split, ("train", "test"))
    v = str(variant).upper().removeprefix("REALBLUR-").removeprefix("REALBLUR_")
    if v not in ("J", "R"):
        raise ConfigError(f"RealBlur variant must be 'J' or 'R', not {variant!r}")
    root = _need_dir(Path(root))
    listing = _need_file(root / f"RealBlur_{v}_{split}_list.txt")
    pairs: list[Pair] = []
    for lineno, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DataError(f"{listing} line {lineno}: expected 'gt_path blur_path', got {line.strip()!r}")
        gt, blur = root / fields[0], root / fields[1]
        where = f" (listed in {listing.name} line {lineno})"
        _need_file(blur, where)
        _need_file(gt, where)
        rel = Path(fields[1]).with_suffix("")
        name = "/".join(rel.parts[1:]) if len(rel.parts) > 1 else rel.as_posix()
        pairs.append(Pair(blur, gt, name))
    if not pairs:
        raise DataError(f"{listing}: lists no image pairs")
    return pairs


def hide_pairs(root: str | os.PathLike, split: str = "test") -> list[Pair]:
    """HIDE pairs: blurred ``test/{test-close-ups,test-long-shot}/*.png`` (or ``test/*.png``) or
    ``train/*.png``, each with its ground truth at ``GT/<same file name>``.

    ``root`` is the ``HIDE_dataset`` folder or its parent. Names are
    ``"test-close-ups/<stem>"``, ``"test-long-shot/<stem>"`` or ``"<stem>"``.
    """
    _check_split(split, ("train", "test"))
    base = _dataset_root(root, "HIDE_dataset")
    split_dir = _need_dir(base / split)
    gt_dir = _need_dir(base / "GT")
    found: list[tuple[Path, str]] = [(p, p.stem) for p in _images_in(split_dir)]
    for sub in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += [(p, f"{sub.name}/{p.stem}") for p in _images_in(sub)]
    pairs = [Pair(blur, _need_file(gt_dir / blur.name, f" (the ground truth of {blur})"), name) for blur, name in found]
    if not pairs:
        raise DataError(f"{split_dir}: no blurred images found")
    return pairs


def _by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in _images_in(folder):
        if p.stem in out:
            raise DataError(f"{out[p.stem]} and {p.name} have the same name stem; keep only one")
        out[p.stem] = p
    return out


def folder_pairs(input_dir: str | os.PathLike, target_dir: str | os.PathLike | None) -> list[Pair]:
    """Pairs of images with the same file stem in two flat folders (``a.png`` with ``a.jpg``).

    Every input needs a target (else :class:`DataError` naming up to five of the orphans);
    targets without an input are ignored. With ``target_dir=None`` every pair has
    ``target=None`` (inference inputs). Names are the stems.
    """
    inputs = _by_stem(_need_dir(Path(input_dir)))
    if not inputs:
        raise DataError(f"{input_dir}: no images found")
    if target_dir is None:
        return [Pair(p, None, stem) for stem, p in inputs.items()]
    targets = _by_stem(_need_dir(Path(target_dir)))
    missing = [p.name for stem, p in inputs.items() if stem not in targets]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(f"{target_dir}: no target for {len(missing)} input(s): {', '.join(missing[:5])}{more}")
    return [Pair(p, targets[stem], stem) for stem, p in inputs.items()]


def clean_images(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """All images under a folder (sorted; recursive by default), or ``[root]`` for one image file."""
    root = Path(root)
    if root.is_file() and _is_image(root):
        return [root]
    images = _images_in(_need_dir(root), recursive)
    if not images:
        raise DataError(f"{root}: no images found")
    return images


# --------------------------------------------------------------------------------------------
# Image loading and caching
# --------------------------------------------------------------------------------------------


def _load_raw(path: Path) -> np.ndarray:
    """Decode to an ``HxWx3`` RGB array in the file's own dtype (uint8, uint16 or float32)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        if not Path(path).is_file():
            raise DataError(f"{path}: no such file")
        raise DataError(f"{path}: cannot decode image (corrupt or unsupported format)")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 1:
        img = cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.dtype not in (np.uint8, np.uint16):
        if np.issubdtype(img.dtype, np.integer):
            img = img.astype(np.float32) / np.float32(np.iinfo(img.dtype).max)
        img = np.clip(img.astype(np.float32, copy=False), 0.0, 1.0)
    return img


def _to_float(raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) * np.float32(1.0 / 255.0)
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) * np.float32(1.0 / 65535.0)
    return raw.astype(np.float32, copy=True)


def _load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 ``HxWx3`` RGB in ``[0, 1]``; :class:`DataError` names the file."""
    return _to_float(_load_raw(Path(path)))


class _Cache:
    """Decoded images in their file dtype (uint8 for 8-bit PNG/JPEG), optionally LRU-bounded."""

    def __init__(self, cache: bool | int) -> None:
        if isinstance(cache, bool):
            self.limit: int | None = None if cache else 0
        else:
            if int(cache) < 0:
                raise ConfigError(f"cache must be True, False or a number of images >= 0, not {cache}")
            self.limit = int(cache)
        self.items: OrderedDict[Path, np.ndarray] = OrderedDict()

    def get(self, path: Path) -> np.ndarray:
        hit = self.items.get(path)
        if hit is not None:
            self.items.move_to_end(path)
            return hit
        img = _load_raw(path)
        if self.limit is None or self.limit > 0:
            self.items[path] = img
            if self.limit is not None and len(self.items) > self.limit:
                self.items.popitem(last=False)
        return img


# --------------------------------------------------------------------------------------------
# Crops and augmentation
# --------------------------------------------------------------------------------------------


def _crop_size(crop: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if crop is None:
        return None
    ch, cw = (crop, crop) if isinstance(crop, (int, np.integer)) else tuple(crop)
    if int(ch) < 1 or int(cw) < 1:
        raise ConfigError(f"crop size must be positive, not {crop}")
    return int(ch), int(cw)


def _pad_to(img: np.ndarray, ch: int, cw: int) -> np.ndarray:
    """Reflect-pad (split evenly on both sides) up to at least ``ch x cw``."""
    h, w = img.shape[:2]
    ph, pw = max(0, ch - h), max(0, cw - w)
    if ph == 0 and pw == 0:
        return img
    return np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="reflect")


def _random_crops(
    images: Sequence[np.ndarray], size: tuple[int, int] | None, rng: np.random.Generator
) -> list[np.ndarray]:
    """The same random window from each (equal-sized) image, reflect-padding small ones."""
    if size is None:
        return list(images)
    ch, cw = size
    padded = [_pad_to(img, ch, cw) for img in images]
    h, w = padded[0].shape[:2]
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return [p[y : y + ch, x : x + cw] for p in padded]


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` brought to ``size`` (``h, w``) by area averaging: a window of a photo as a
    camera with fewer pixels would have seen it."""
    if image.shape[:2] == tuple(size):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _augment(images: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The paper's geometric augmentation, identical for every image: a rotation by 0/90/180/270
    degrees (only 0/180 for non-square images so shapes stay fixed) and random horizontal and
    vertical flips."""
    h, w = images[0].shape[:2]
    k = int(rng.integers(4)) if h == w else 2 * int(rng.integers(2))
    hflip = bool(rng.random() < 0.5)
    vflip = bool(rng.random() < 0.5)
    out = []
    for img in images:
        if k:
            img = np.rot90(img, k, axes=(0, 1))
        if hflip:
            img = img[:, ::-1]
        if vflip:
            img = img[::-1]
        out.append(img)
    return out


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


def _as_tensors(item: dict[str, Any]) -> dict[str, Any]:
    """A loaded item as a DataLoader sample: CHW tensors, prompt and name (the record stays out)."""
    return {
        "input": _tensor(item["input"]),
        "target": _tensor(item["target"]),
        "prompt": item["prompt"],
        "name": item["name"],
    }


def _check_same_size(a: np.ndarray, b: np.ndarray, pa: Path, pb: Path) -> None:
    if a.shape[:2] != b.shape[:2]:
        raise DataError(f"pair size mismatch: {pa} is {a.shape[1]}x{a.shape[0]} but {pb} is {b.shape[1]}x{b.shape[0]}")


def _names_for(images: Sequence[Path]) -> list[str]:
    """Stable ids: paths relative to the images' common folder, without extension."""
    if not images:
        return []
    try:
        common = Path(os.path.commonpath([str(p.parent) for p in images]))
    except ValueError:  # different drives
        return [p.stem for p in images]
    return [p.relative_to(common).with_suffix("").as_posix() for p in images]


def _as_spec(spec: DegradationSpec | str) -> DegradationSpec:
    return parse_spec(spec) if isinstance(spec, str) else spec


def _as_images(images: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    if isinstance(images, (str, os.PathLike)):
        return clean_images(images)
    out = [Path(p) for p in images]
    if not out:
        raise DataError("no clean images given")
    return out


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


class _SeededDataset(Dataset):
    """Common machinery: epoch length, ``set_epoch`` and per-item generators."""

    def __init__(self, count: int, seed: int, length: int | None) -> None:
        if length is not None and int(length) < 1:
            raise ConfigError(f"dataset length must be at least 1, not {length}")
        self.seed = int(seed)
        self.epoch = 0
        self.count = count
        self.length = count if length is None else int(length)

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops/degradations ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def _check_index(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        return index

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _as_tensors(self.load(index))

    def load(self, index: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class PairedCropDataset(_SeededDataset):
    """Random crops of real pairs (GoPro/RealBlur/HIDE/folder) with the paper's augmentation.

    Item ``i`` of an epoch uses pair ``i % len(pairs)``; ``length`` (default ``len(pairs)``)
    sets the number of items per epoch. The crop window is the same for input and target;
    images smaller than ``crop`` are reflect-padded; ``crop=None`` keeps whole images. With
    ``augment`` the pair gets the same random rotation/flips and the input gets Gaussian noise
    of ``noise_sigma`` (clipped to ``[0, 1]``). ``prompt`` is a fixed string or a function of
    the :class:`Pair`; with ``alt_rate`` > 0 an item is prompted instead, with that probability,
    with ``alt_prompts[pair.name]`` (e.g. the analyzer's reading of the frame). ``cache`` keeps
    decoded images in memory in their file dtype: ``True`` for all, ``False`` for none, or a
    number of images (LRU). Each DataLoader worker holds its own cache.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        crop: int | tuple[int, int] | None = 256,
        *,
        prompt: str | Callable[[Pair], str] = DEFAULT_PAIR_PROMPT,
        augment: bool = True,
        noise_sigma: float = 1e-4,
        seed: int = 0,
        cache: bool | int = True,
        length: int | None = None,
        alt_prompts: dict[str, str] | None = None,
        alt_rate: float = 0.0,
    ) -> None:
        self.pairs = list(pairs)
        if not self.pairs:
            raise DataError("no image pairs given")
        no_target = [p.name for p in self.pairs if p.target is None]
        if no_target:
            raise DataError(f"training pairs need targets; {no_target[0]} has none")
        super().__init__(len(self.pairs), seed, length)
        self.crop = _crop_size(crop)
        self.prompt = prompt
        self.alt_rate = float(alt_rate)
        self.alt_prompts = dict(alt_prompts or {})
        if not 0.0 <= self.alt_rate <= 1.0:
            raise ConfigError(f"alt_rate must be between 0 and 1, not {alt_rate}")
        missing = [p.name for p in self.pairs if self.alt_rate > 0 and p.name not in self.alt_prompts]
        if missing:
            raise ConfigError(f"no alternative prompt for pair {missing[0]}")
        self.augment = bool(augment)
        self.noise_sigma = float(noise_sigma)
        self._cache = _Cache(cache)

    def load(self, index: int) -> dict[str, Any]:
        """The item as numpy ``HxWx3`` float32 arrays (``__getitem__`` converts to tensors)."""
        index = self._check_index(index)
        pair = self.pairs[index % self.count]
        rng = self._rng(index)
        inp = self._cache.get(pair.input)
        tgt = self._cache.get(pair.target)
        _check_same_size(inp, tgt, pair.input, pair.target)
        inp, tgt = _random_crops([inp, tgt], self.crop, rng)
        inp, tgt = _to_float(inp), _to_float(tgt)
        if self.augment:
            inp, tgt = _augment([inp, tgt], rng)
            if self.noise_sigma > 0:
                inp = np.clip(inp + gaussian_noise(rng, inp.shape, self.noise_sigma), 0.0, 1.0)
        prompt = self.prompt(pair) if callable(self.prompt) else self.prompt
        if self.alt_rate > 0 and rng.random() < self.alt_rate:  # drawn last: other streams unchanged
            prompt = self.alt_prompts[pair.name]
        return {"input": inp, "target": tgt, "prompt": prompt, "name": pair.name}


class SyntheticDataset(_SeededDataset):
    """Random crops of clean images, degraded on the fly by a DegradationSpec; the prompt comes
    from ``describe(record)``.

    Item ``i`` uses image ``i % len(images)``: a random crop (reflect-padded if small), the
    same geometric augmentation as :class:`PairedCropDataset`, then :func:`degrade`. With
    probability ``prompt_dropout`` the prompt is ``""`` (for classifier-free guidance).
    ``content_words`` optionally maps an image (its path, file name, stem or item name) to
    words describing its content, which are put in front: ``"a red car, mild noise"``.
    ``images`` may also be a folder, scanned with :func:`clean_images`.

    Two options make more of few photos. ``scale=(lo, hi)`` (``0 < lo <= hi <= 1``) shows each
    crop at a random scale in that range: a window ``1/s`` times the crop, shrunk to it.
    ``shuffle_channels`` puts the colour channels in a random order, so the colours of a few
    photos do not become the only colours the network knows. Both draw from the item's
    generator only when on, so a config without them gives the same items as before.
    """

    #: Defaults for subclasses that do not take the options (rendered text).
    scale: tuple[float, float] = (1.0, 1.0)
    shuffle_channels: bool = False

    def __init__(
        self,
        images: Sequence[str | os.PathLike] | str | os.PathLike,
        spec: DegradationSpec | str,
        crop: int | tuple[int, int] | None = 256,
        *,
        augment: bool = True,
        seed: int = 0,
        cache: bool | int = True,
        length: int | None = None,
        prompt_dropout: float = 0.1,
        content_words: Mapping[str, str] | None = None,
        scale: tuple[float, float] = (1.0, 1.0),
        shuffle_channels: bool = False,
    ) -> None:
        self.images = _as_images(images)
        super().__init__(len(self.images), seed, length)
        self.names = _names_for(self.images)
        self.spec = _as_spec(spec)
        self.crop = _crop_size(crop)
        self.augment = bool(augment)
        if not 0.0 <= float(prompt_dropout) <= 1.0:
            raise ConfigError(f"prompt_dropout must be between 0 and 1, not {prompt_dropout}")
        self.prompt_dropout = float(prompt_dropout)
        self.content_words = dict(content_words or {})
        self._cache = _Cache(cache)
        lo, hi = (float(s) for s in scale)
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"scale must be two numbers with 0 < low <= high <= 1, not {list(scale)}")
        self.scale = (lo, hi)
        self.shuffle_channels = bool(shuffle_channels)

    def _content(self, i: int) -> str:
        if not self.content_words:
            return ""
        p = self.images[i]
        for key in (str(p), p.name, p.stem, self.names[i]):
            if key in self.content_words:
                return self.content_words[key]
        return ""

    def load(self, index: int) -> dict[str, Any]:
        """The item as numpy arrays plus ``"record"``: the list of :class:`Applied` steps."""
        index = self._check_index(index)
        i = index % self.count
        rng = self._rng(index)
        return self._degraded(self._cache.get(self.images[i]), rng, self._content(i), self.names[i])

    def _degraded(self, image: np.ndarray, rng: np.random.Generator, content: str, name: str) -> dict[str, Any]:
        """A random crop of ``image``, augmented and degraded; its prompt, maybe with ``content``."""
        size = self.crop
        if size is not None and self.scale != (1.0, 1.0):
            # no smaller than the photo allows: a window past its edges would show mirrored content
            s = float(rng.uniform(*self.scale))
            s = min(1.0, max(s, size[0] / image.shape[0], size[1] / image.shape[1]))
            (clean,) = _random_crops([image], (round(size[0] / s), round(size[1] / s)), rng)
            clean = _shrink(clean, size)
        else:
            (clean,) = _random_crops([image], size, rng)
        clean = _to_float(clean)
        if self.augment:
            (clean,) = _augment([clean], rng)
        if self.shuffle_channels:
            clean = clean[..., rng.permutation(3)]
        clean = np.ascontiguousarray(clean)
        dropped = bool(rng.random() < self.prompt_dropout)
        degraded, record = degrade(clean, self.spec, rng)
        prompt = "" if dropped else ", ".join(w for w in (content, describe(record)) if w)
        return {"input": degraded, "target": clean, "prompt": prompt, "name": name, "record": record}


#: Content words for the rendered-text kinds of :mod:`m3restore.data.text_images`.
TEXT_CONTENT = {"sign": "street sign", "plate": "licence plate", "document": "document text"}


class RenderedTextDataset(SyntheticDataset):
    """Street signs, licence plates and document lines rendered on the fly
    (:mod:`m3restore.data.text_images`), cropped, augmented and degraded like
    :class:`SyntheticDataset`. With probability ``content_rate`` the prompt also names what the
    picture shows ("street sign, strong motion blur"), so the network learns content words
    from the kinds of picture users restore for their text. ``variants`` distinct pictures
    are drawn from (seeded), each rendered when used.
    """

    def __init__(
        self,
        spec: DegradationSpec | str,
        crop: int | tuple[int, int] | None = 256,
        *,
        augment: bool = True,
        seed: int = 0,
        length: int | None = None,
        prompt_dropout: float = 0.1,
        content_rate: float = 0.5,
        variants: int = 100_000,
    ) -> None:
        _SeededDataset.__init__(self, int(variants), seed, length)
        self.spec = _as_spec(spec)
        self.crop = _crop_size(crop)
        self.augment = bool(augment)
        if not 0.0 <= float(prompt_dropout) <= 1.0 or not 0.0 <= float(content_rate) <= 1.0:
            raise ConfigError("prompt_dropout and content_rate must be between 0 and 1")
        self.prompt_dropout = float(prompt_dropout)
        self.content_rate = float(content_rate)

    def load(self, index: int) -> dict[str, Any]:
        from m3restore.data.text_images import text_image

        index = self._check_index(index)
        rng = self._rng(index)
        picture = text_image(int(rng.integers(self.count)), seed=self.seed)
        content = TEXT_CONTENT[picture.kind] if rng.random() < self.content_rate else ""
        return self._degraded(picture.image, rng, content, picture.name)


class EvalDataset(Dataset):
    """Whole images, no crop/augment: pairs as-is, or clean images + a spec degraded with a
    per-image seed, so every run sees the same inputs.

    ``source`` is a list of :class:`Pair` (each needs a target) or of clean image paths (or a
    folder of them); clean images need ``spec``. Item ``i`` of clean images is degraded with
    ``np.random.default_rng([seed, i])``. ``prompt`` overrides the default prompt
    (``"motion blur"`` for pairs, ``describe(record)`` for synthetic inputs). Images keep their
    sizes, so use ``batch_size=1`` (or a collate function that pads).
    """

    def __init__(
        self,
        source: Sequence[Pair] | Sequence[str | os.PathLike] | str | os.PathLike,
        spec: DegradationSpec | str | None = None,
        *,
        seed: int = 0,
        prompt: str | None = None,
        cache: bool | int = False,
    ) -> None:
        if isinstance(source, (str, os.PathLike)):
            source = clean_images(source)
        items = list(source)
        if not items:
            raise DataError("no evaluation images given")
        self.pairs: list[Pair] | None = None
        self.images: list[Path] | None = None
        if all(isinstance(x, Pair) for x in items):
            if spec is not None:
                raise ConfigError("a degradation spec applies to clean images, not to real pairs")
            no_target = [p.name for p in items if p.target is None]
            if no_target:
                raise DataError(f"evaluation pairs need targets; {no_target[0]} has none")
            self.pairs = items
            self.names = [p.name for p in items]
            self.spec = None
        else:
            if spec is None:
                raise ConfigError("clean images need a degradation spec to evaluate on")
            self.images = [Path(x) for x in items]
            self.names = _names_for(self.images)
            self.spec = _as_spec(spec)
        self.seed = int(seed)
        self.prompt = prompt
        self._cache = _Cache(cache)

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> dict[str, Any]:
        """The item as numpy arrays plus ``"record"`` (empty for real pairs)."""
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        record: list[Applied] = []
        if self.pairs is not None:
            pair = self.pairs[index]
            inp = self._cache.get(pair.input)
            tgt = self._cache.get(pair.target)
            _check_same_size(inp, tgt, pair.input, pair.target)
            inp, tgt = _to_float(inp), _to_float(tgt)
            prompt = DEFAULT_PAIR_PROMPT
        else:
            tgt = _to_float(self._cache.get(self.images[index]))
            inp, record = degrade(tgt, self.spec, np.random.default_rng([self.seed, index]))
            prompt = describe(record)
        if self.prompt is not None:
            prompt = self.prompt
        return {"input": inp, "target": tgt, "prompt": prompt, "name": self.names[index], "record": record}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _as_tensors(self.load(index))


class EpochSampler(Sampler):
    """A seeded permutation per epoch as ``(epoch, index)`` keys for :class:`EpochKeyed`.

    ``set_epoch(epoch, offset)`` starts the epoch's permutation at ``offset`` (exact resume).
    """

    def __init__(self, length: int, seed: int):
        self.length, self.seed, self.epoch, self.offset = length, seed, 0, 0

    def set_epoch(self, epoch: int, offset: int = 0) -> None:
        self.epoch, self.offset = epoch, offset

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return ((self.epoch, i) for i in torch.randperm(self.length, generator=g)[self.offset :].tolist())

    def __len__(self) -> int:
        return self.length - self.offset


class EpochKeyed(Dataset):
    """A dataset addressed by ``(epoch, index)`` keys, for persistent DataLoader workers.

    Each worker's copy switches to the key's epoch before loading, so items are the same as
    ``dataset.set_epoch(epoch); dataset[index]`` in the main process, while the workers (and
    their image caches) live across epochs.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        if self.dataset.epoch != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


class MixedDataset(Dataset):
    """Several datasets sampled with weights, e.g. 0.3 real pairs / 0.7 synthetic.

    For each epoch a table assigns every index to a dataset (drawn with the weights) and to an
    item of that dataset (walking a per-epoch permutation, so items repeat only once a
    dataset's share exceeds its length); the table depends only on ``(seed, epoch)``, so an
    item is a function of ``(seed, epoch, index)``. ``set_epoch`` is passed on to the
    datasets. ``length`` defaults to the sum of their lengths.
    """

    def __init__(
        self,
        datasets: Sequence[Dataset],
        weights: Sequence[float] | None = None,
        *,
        length: int | None = None,
        seed: int = 0,
    ) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ConfigError("MixedDataset needs at least one dataset")
        sizes = [len(d) for d in self.datasets]
        if min(sizes) < 1:
            raise DataError("MixedDataset got an empty dataset")
        w = np.ones(len(self.datasets)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.datasets),):
            raise ConfigError(f"MixedDataset got {len(self.datasets)} datasets but {w.size} weights")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ConfigError(f"MixedDataset weights must be non-negative with a positive sum, not {list(w)}")
        self.weights = w / w.sum()
        self.sizes = sizes
        self.length = sum(sizes) if length is None else int(length)
        if self.length < 1:
            raise ConfigError(f"dataset length must be at least 1, not {length}")
        self.seed = int(seed)
        self.epoch = 0
        self._table: tuple[int, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def locate(self, index: int) -> tuple[int, int]:
        """``(dataset number, index within it)`` of an item in the current epoch."""
        index = int(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        if self._table is None or self._table[0] != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch])
            which = rng.choice(len(self.datasets), size=self.length, p=self.weights)
            inner = np.zeros(self.length, dtype=np.int64)
            for k, size in enumerate(self.sizes):
                slots = np.flatnonzero(which == k)
                if slots.size:
                    perm = np.random.default_rng([self.seed, self.epoch, k]).permutation(size)
                    inner[slots] = perm[np.arange(slots.size) % size]
            self._table = (self.epoch, which, inner)
        _, which, inner = self._table
        return int(which[index]), int(inner[index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        k, j = self.locate(index)
        return self.datasets[k][j]

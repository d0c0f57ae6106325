"""Prepare the folder `.gpu/` that a lent GPU machine gets with `carry: [".gpu"]`.

The GPU box has PyTorch but neither ../shared nor the MiniLM weights, and a call may carry at
most 64 MiB. This writes (about 40 MiB):

- `.gpu/data/gopro_train/{blur,sharp}`: two 448x448 crops of each GoPro training pair,
- `.gpu/data/gopro_val/{blur,sharp}`: a 256x256 centre crop of each validation pair,
- `.gpu/data/train_clean/...`: the clean training photos,
- `.gpu/data/mcmaster_val`: six 256x256 McMaster crops for validation,
- `.gpu/data/check/{blur,sharp}.webp`: one full GoPro validation pair for benchmarks/gpu_check.py,

all re-encoded as lossless WebP (pixels unchanged), and `.gpu/text_cache.safetensors`: the
MiniLM embeddings of every training prompt of the GPU configs named (default: configs/gpu*.yaml;
see training/prompts.py). Name the configs the call will train: configs/gpu.yaml alone brings about
1,800 prompts (45 MB), the specialists' configs a handful each.

    python benchmarks/gpu/prepare.py [CONFIG ...] && echo /.gpu/ >> .git/info/exclude
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / ".gpu" / "data"


def save(img, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101 = lossless
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    path.with_suffix(".webp").write_bytes(buf.tobytes())


def main(configs: list[str]) -> None:
    gopro = SHARED / "gopro_GOPR0372"
    for blur in sorted((gopro / "train/blur").glob("*.png")):
        b, s = cv2.imread(str(blur)), cv2.imread(str(gopro / "train/sharp" / blur.name))
        for k, x in enumerate((128, 704)):
            save(b[136:584, x : x + 448], OUT / "gopro_train/blur" / f"{blur.stem}_{k}")
            save(s[136:584, x : x + 448], OUT / "gopro_train/sharp" / f"{blur.stem}_{k}")
    for blur in sorted((gopro / "val/blur").glob("*.png")):
        b, s = cv2.imread(str(blur)), cv2.imread(str(gopro / "val/sharp" / blur.name))
        save(b[232:488, 512:768], OUT / "gopro_val/blur" / blur.stem)
        save(s[232:488, 512:768], OUT / "gopro_val/sharp" / blur.stem)
    for path in sorted((SHARED / "train_clean").rglob("*")):
        if path.suffix.lower() in (".png", ".bmp", ".tif", ".jpg"):
            save(cv2.imread(str(path), cv2.IMREAD_COLOR), OUT / "train_clean" / path.parent.name / path.stem)
    for path in sorted((SHARED / "mcmaster").glob("*"))[:6]:
        save(cv2.imread(str(path), cv2.IMREAD_COLOR)[122:378, 122:378], OUT / "mcmaster_val" / path.stem)
    save(cv2.imread(str(gopro / "val/blur/000100.png")), OUT / "check/blur")
    save(cv2.imread(str(gopro / "val/sharp/000100.png")), OUT / "check/sharp")

    from m3restore.training.cli_config import build_config
    from m3restore.training.prompts import build_text_cache

    configs = configs or sorted(str(p) for p in (ROOT / "configs").glob("gpu*.yaml"))
    count = build_text_cache([build_config(config=c) for c in configs], ROOT / ".gpu/text_cache.safetensors")
    print(f"wrote {OUT} and {count} prompt embeddings")


if __name__ == "__main__":
    main(sys.argv[1:])

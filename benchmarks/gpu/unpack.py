"""Rebuild the bundles of a benchmarks/gpu/run.sh call from the files it returned.

    python benchmarks/gpu/unpack.py FILES_AT [--runs runs]

For each `<name>.safetensors` in FILES_AT, writes `runs/gpu-<name>/bundle` (the fp16 bundle the
GPU machine converted, checksums verified on opening) beside that run's log, metrics and
training config; the CUDA check's json goes to `runs/gpu_check.json`.
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
from pathlib import Path

from m3restore.weights import open_bundle


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files_at", type=Path)
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    meta = args.runs / "gpu-meta"
    shutil.rmtree(meta, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=args.runs) as tmp, tarfile.open(args.files_at / "meta.tar") as tar:
        tar.extractall(tmp, filter="data")
        Path(tmp, "meta").rename(meta)
    for tensors in sorted(args.files_at.glob("*.safetensors")):
        name = tensors.stem
        run = args.runs / f"gpu-{name}"
        (run / "bundle" / "predictor").mkdir(parents=True, exist_ok=True)
        shutil.copy(tensors, run / "bundle/predictor/model.safetensors")
        shutil.copy(meta / f"{name}-config.json", run / "bundle/predictor/config.json")
        shutil.copy(meta / f"{name}-model_index.json", run / "bundle/model_index.json")
        for path in meta.glob(f"{name}-*"):  # the log, metrics and training config
            if path.name not in (f"{name}-config.json", f"{name}-model_index.json"):
                shutil.copy(path, run / path.name.removeprefix(f"{name}-"))
        bundle = open_bundle(run / "bundle")
        print(f"{run / 'bundle'}: {bundle.name}, verified")
    if (meta / "gpu_check.json").exists():
        shutil.copy(meta / "gpu_check.json", args.runs / "gpu_check.json")


if __name__ == "__main__":
    main()

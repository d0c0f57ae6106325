#!/usr/bin/env bash
# One prepared GPU leg, run on the lent machine from the repository root with `carry: [".gpu"]`:
#   MINUTES=8 INIT=weights/m3restore-base bash benchmarks/gpu/run.sh
# Trains configs/gpu.yaml for MINUTES (the cosine runs over the time budget), checks the CUDA
# fp32/fp16/bf16 path and the NaN guard (benchmarks/gpu_check.py), and leaves under $OUT the log,
# metrics, the bundle's json files and its tensors split into parts under 16 MB (the return limit).
# Back here: load the parts, merge, and save with m3restore.weights.save_bundle / extend_bundle.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -m m3restore train --config configs/gpu.yaml --iterations 100000 --time-limit "${MINUTES:-7}" \
  ${INIT:+--init "$INIT"} --out /tmp/gpurun > "$OUT/train.log" 2>&1
echo "train exit $?"; tail -5 "$OUT/train.log"
cp /tmp/gpurun/metrics.csv "$OUT/"
mkdir -p "$OUT/bundle"
cp /tmp/gpurun/bundle/model_index.json /tmp/gpurun/bundle/predictor/config.json "$OUT/bundle/"
python3 - <<'PY'
import os
from safetensors.torch import load_file, save_file
tensors = load_file("/tmp/gpurun/bundle/predictor/model.safetensors")
keys = sorted(tensors)
for i in range(3):
    save_file({k: tensors[k] for k in keys[i::3]}, os.environ["OUT"] + f"/bundle/part{i}.safetensors")
PY
timeout 60 python3 benchmarks/gpu_check.py --bundle /tmp/gpurun/bundle --blur .gpu/data/check/blur.png \
  --sharp .gpu/data/check/sharp.png --text-cache .gpu/text_cache.safetensors --out "$OUT/gpu_check.json"

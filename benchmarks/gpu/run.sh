#!/usr/bin/env bash
# One prepared GPU call, run on the lent machine from the repository root with `carry: [".gpu"]`
# (benchmarks/gpu/prepare.py writes .gpu):
#   MINUTES=7.6 SEED=51 bash benchmarks/gpu/run.sh configs/gpu_deblur.yaml   # session 18's leg 9
#   MINUTES=7.5 SEED=65 bash benchmarks/gpu/run.sh configs/gpu_deblur.yaml configs/gpu_dejpeg.yaml
# (session 28: 4,170 and 4,697 iterations side by side, 537 s of a 600-s call, check included.
# A GPU leg moved the deblurrer far more than a CPU leg; the denoiser's gained nothing over one.)
# Trains the configs side by side on the one GPU for MINUTES each (the cosine runs over the time
# budget), each warm-started from weights/<its bundle_name> when that exists, with seeds SEED,
# SEED+1, ...; then checks the CUDA fp32/fp16/bf16 path and the fp16 NaN guard on the first
# bundle written (benchmarks/gpu_check.py). Leaves under $OUT, within the return limits (8 files,
# 16 MB each): <name>.safetensors per config (its predictor in fp16) and meta.tar (the logs,
# metrics, bundle json files and the check's json). Back here: benchmarks/gpu/unpack.py.
# The machine's image has torch, typer, rich, accelerate, transformers and safetensors but neither
# gensim nor pyspellchecker: training prompts and the check's are written only in restoration
# terms, which m3restore.text.clean takes without them (tests/test_text_clean.py and
# tests/test_training.py block both). The working tree and .gpu must stay under the 64 MiB a call
# carries: hold docs/, examples/ and the bundles not trained out of the tree for the call. One
# config with MINUTES=7.6 took 494 s of a 600-s call, the check included. Dry run here, on the CPU:
#   PATH=$PWD/.venv/bin:$PATH OUT=/tmp/o MINUTES=0.4 CHECK_DEVICE=cpu \
#     bash benchmarks/gpu/run.sh configs/gpu_denoise.yaml
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import sys, torch, m3restore.cli; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
mkdir -p "$OUT/meta"
names=() pids=() seed=${SEED:-41}
for cfg in "$@"; do
  name=$(basename "$cfg" .yaml) && name=${name#gpu_} && names+=("$name")
  init=weights/$(sed -n 's/^bundle_name: *//p' "$cfg")
  [ -d "$init" ] || init=
  python3 -m m3restore train --config "$cfg" --iterations 100000 --time-limit "${MINUTES:-6.5}" \
    --seed "$seed" ${init:+--init "$init"} --out "/tmp/gpu/$name" > "$OUT/meta/$name-train.log" 2>&1 &
  pids+=($!) && seed=$((seed + 1))
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; echo "${names[$i]}: train exit $?"; tail -2 "$OUT/meta/${names[$i]}-train.log"
done
for name in "${names[@]}"; do
  run=/tmp/gpu/$name
  python3 -c "from m3restore.weights import convert_bundle; convert_bundle('$run/bundle', '$run/bundle-fp16')" &&
    cp "$run/bundle-fp16/predictor/model.safetensors" "$OUT/$name.safetensors"
  cp "$run/bundle-fp16/model_index.json" "$OUT/meta/$name-model_index.json"
  cp "$run/bundle-fp16/predictor/config.json" "$OUT/meta/$name-config.json"
  cp "$run/metrics.csv" "$run/metrics.jsonl" "$run/train_config.json" "$OUT/meta/" 2>/dev/null
  for f in metrics.csv metrics.jsonl train_config.json; do mv "$OUT/meta/$f" "$OUT/meta/$name-$f"; done
done
check=$(ls -d /tmp/gpu/*/bundle 2>/dev/null | head -1)
timeout 90 python3 benchmarks/gpu_check.py --bundle "${check:-/tmp/gpu/none}" \
  --blur .gpu/data/check/blur.webp --sharp .gpu/data/check/sharp.webp \
  --text-cache .gpu/text_cache.safetensors --out "$OUT/meta/gpu_check.json" ${CHECK_DEVICE:+--device "$CHECK_DEVICE"}
echo "gpu_check exit $?"
tar -C "$OUT" -cf "$OUT/meta.tar" meta && rm -r "$OUT/meta"

#!/usr/bin/env bash
# LoRA training benchmark on the GPU (needs an NVIDIA GPU with about 32 GB free, a driver for
# CUDA 13, NVRTC and cuBLASLt; python3 with torch, transformers and peft for the baseline):
# PEFT's baseline (bench/peft_baseline.py: llama-3.1-8b shape, bf16, SDPA, LoRA r=16 a=16 on the
# seven projections, AdamW, 2048 tokens, checkpointing batch 4 and none batch 2), then medtune's
# training step on the same shape (CudaTrainBench: SftTrainer.optimizerStep, checkpointing
# batch 4, then none batch 2 when it fits; the 16 GB model written to WORK_DIR first) with a profile of one step; appends both
# to bench/RESULTS.md. Usage: bench/cuda-train.sh [LAYERS (32)] [WORK_DIR]
# On the lent GPU machine (no Java or Maven there) use cuda/prepare-device.sh here and
# `bash .device/cuda/run-on-gpu.sh train` there instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/jdk.sh"
medtune_find_jdk
layers=${1:-32}
work=${2:-/tmp/medtune-cuda-train-bench}
"$root/medtune" --version >/dev/null   # builds the jar when the sources changed
(cd "$root" && mvn -B -q -ntp -o -pl medtune-cuda test-compile >/dev/null 2>&1 || mvn -B -q -ntp -pl medtune-cuda test-compile)
commit=$(git -C "$root" rev-parse --short HEAD)
trap 'rm -rf "$work"' EXIT
python3 "$root/bench/peft_baseline.py" "$root/bench/RESULTS.md" "$commit" --layers "$layers"
"$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xmx16g \
  -cp "$root/medtune-cli/target/medtune.jar:$root/medtune-cuda/target/test-classes" \
  dev.medtune.cuda.CudaTrainBench "$work" "$root/bench/RESULTS.md" "$commit" 4,2 2048 true,false "$layers" 3

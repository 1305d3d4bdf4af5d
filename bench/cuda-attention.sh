#!/usr/bin/env bash
# Attention alone on the GPU (needs an NVIDIA GPU with about 6 GB free, compute capability 8.0+
# for the flash kernels, a driver for CUDA 13, NVRTC): forward + backward on the llama-3.1-8b
# training shape (4 x 2048 rows, 32/8 heads of 128), the flash-attention kernels and the tiled
# kernels (the baseline) in the same run (CudaAttentionBench, under a minute); appends a line per
# path to bench/RESULTS.md. Usage: bench/cuda-attention.sh
# On the lent GPU machine (no Java or Maven there) use cuda/prepare-device.sh here and
# `bash .device/cuda/run-on-gpu.sh attention` there instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/jdk.sh"
medtune_find_jdk
"$root/medtune" --version >/dev/null   # builds the jar when the sources changed
(cd "$root" && mvn -B -q -ntp -o -pl medtune-cuda test-compile >/dev/null 2>&1 || mvn -B -q -ntp -pl medtune-cuda test-compile)
commit=$(git -C "$root" rev-parse --short HEAD)
"$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xmx8g \
  -cp "$root/medtune-cli/target/medtune.jar:$root/medtune-cuda/target/test-classes" \
  dev.medtune.cuda.CudaAttentionBench "$root/bench/RESULTS.md" "$commit"

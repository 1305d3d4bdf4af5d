#!/usr/bin/env bash
# CUDA decode benchmark (needs an NVIDIA GPU, driver for CUDA 13, NVRTC and cuBLASLt): batch-1
# decode tokens/s of a random bf16 model of the llama-3.2-1b or llama-3.1-8b shape, written to
# WORK_DIR first (2.5 / 16 GB), as a fraction of the device-to-device copy bandwidth measured in
# the same run, with the CPU backend's tokens/s on the same model as the same-run baseline;
# five decode paths in one run (CUDA graphs off/on x host/GPU greedy picking, then gemv_16), the
# first (graphs off, host sampling) the baseline of the ratios; appends to bench/RESULTS.md. Usage: bench/cuda-decode.sh [SHAPE] [NEW_TOKENS] [WORK_DIR]
# On the lent GPU machine (no Java or Maven there) use cuda/prepare-device.sh here and
# `bash .device/cuda/run-on-gpu.sh bench` there instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/jdk.sh"
medtune_find_jdk
shape=${1:-llama-3.2-1b}
work=${3:-/tmp/medtune-cuda-bench-$shape}
"$root/medtune" --version >/dev/null   # builds the jar when the sources changed
(cd "$root" && mvn -B -q -ntp -o -pl medtune-cuda test-compile >/dev/null 2>&1 || mvn -B -q -ntp -pl medtune-cuda test-compile)
commit=$(git -C "$root" rev-parse --short HEAD)
trap 'rm -rf "$work"' EXIT
"$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xmx16g \
  -cp "$root/medtune-cli/target/medtune.jar:$root/medtune-cuda/target/test-classes" \
  dev.medtune.cuda.CudaDecodeBench "$work" "$root/bench/RESULTS.md" "${2:-256}" "$commit" "$shape"

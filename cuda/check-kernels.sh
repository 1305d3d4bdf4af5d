#!/usr/bin/env bash
# Compile-checks medtune's CUDA kernels without a GPU: concatenates them as NVRTC sees them (one
# program, common.cuh first, the order of Nvrtc.SOURCES) and compiles with nvcc for sm_90,
# printing ptxas' resource report (registers, shared memory, spills). Needs nvcc (CUDA 13).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/medtune-cuda/src/main/resources/dev/medtune/cuda/kernels
order=$(sed -n '/SOURCES = List.of(/,/);/p' "$root/medtune-cuda/src/main/java/dev/medtune/cuda/Nvrtc.java" \
  | grep -o '"[a-z0-9_]*\.cuh\?"' | tr -d '"')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in $order; do cat "$dir/$f"; echo; done > "$tmp/medtune_kernels.cu"
nvcc -arch=${ARCH:-sm_90} -std=c++17 -c "$tmp/medtune_kernels.cu" -o "$tmp/k.o" -Xptxas -v 2>&1 \
  | grep -E "Compiling entry|registers|spill|error|warning" || true
echo "compiled: $order" | tr '\n' ' '; echo

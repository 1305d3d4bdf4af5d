#!/usr/bin/env bash
# Runs on the GPU machine (no Java, no Maven there): unpacks the Java runtime, runs the CUDA tests
# with the JUnit console launcher (every op against the CPU backend, the fixtures' logits and
# greedy continuations against transformers), prints the table of checks, then the decode
# benchmark (llama-3.2-1b shape, bf16). Logs go to $OUT. Prepared here by cuda/prepare-device.sh;
# the device call carries .device/cuda and .device/jre.tgz and runs:
#   bash .device/cuda/run-on-gpu.sh [tests|bench|train|attention|gemv|all]  (BENCH_SHAPES="llama-3.2-1b llama-3.1-8b",
#   the default of bench alone; all runs llama-3.2-1b)
# attention: attention forward + backward alone on the 8B training shape (4 x 2048 rows, 32/8
# heads of 128), the flash-attention and the tiled kernels in the same run (CudaAttentionBench,
# under a minute), appending to $OUT/attention-bench.md.
# train: the LoRA training benchmark on the llama-3.1-8b shape at 2048 tokens - PEFT's baseline
# (peft_baseline.py, checkpointing batch 4 and none batch 2) and medtune's step (CudaTrainBench,
# checkpointing batch 4, then without checkpointing batch 2 when it fits in device memory) in the
# same call, then checkpointing batch 4 again with float32 products in float32 (TF32 off: what TF32
# gives); about 5 minutes on an H200. TRAIN_LAYERS (default 32) takes fewer layers,
# TRAIN_SETTINGS="4:true 2:false 4:true/float32" (batch:checkpointing[/float32]) the settings,
# TRAIN_TESTS=0 skips the tests.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
what=${1:-all}
out=${OUT:-/tmp/medtune-cuda-out}
mkdir -p "$out"
jre=${JRE_TGZ:-$here/../jre.tgz}
tar xzf "$jre" -C /tmp || { echo "run-on-gpu.sh: no Java runtime at $jre (make it with /work/shared/tools/device-jre.sh)" >&2; exit 1; }
export JAVA_HOME=/tmp/jre PATH=/tmp/jre/bin:$PATH
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export MEDTUNE_CUDA_CACHE=${MEDTUNE_CUDA_CACHE:-/tmp/medtune-cuda-cache}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv 2>&1 | tee "$out/gpu.txt"
ls /usr/local/cuda/lib64/ | grep -E "nvrtc|cublasLt" | tee -a "$out/gpu.txt"
cp="$(ls "$here"/lib/*.jar | grep -v console-standalone | tr '\n' ':')$here/test-classes"
jvm=(--enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xmx16g)
status=0
commit=$(cat "$here/commit" 2>/dev/null || echo unknown)
layers=${TRAIN_LAYERS:-32}
if [[ $what == train ]]; then
  # the 16 GB model is written while the tests and PEFT's baseline run
  java "${jvm[@]}" -cp "$cp" dev.medtune.cuda.CudaTrainBench /tmp/medtune-train-8b "$out/train-bench.md" "$commit" 0 2048 true "$layers" \
    > "$out/train-write.log" 2>&1 &
  writer=$!
fi
run_tests=1
[[ $what == train && ${TRAIN_TESTS:-1} == 0 ]] && run_tests=0
if [[ $run_tests == 1 && ( $what == all || $what == tests || $what == train ) ]]; then
  : > "$out/checks.md"
  java "${jvm[@]}" -Dmedtune.cuda.report="$out/checks.md" -jar "$here"/lib/junit-platform-console-standalone-*.jar \
    execute --class-path "$cp" --select-package dev.medtune.cuda --details=tree --disable-banner --disable-ansi-colors > "$out/tests.log" 2>&1
  status=$?
  grep -E "CUDA backend:|✘|MethodSource|=>|tests (successful|failed|aborted|skipped)" "$out/tests.log" | head -60
  echo
  echo "| op | case | max error | tolerance | result |"
  echo "|---|---|---|---|---|"
  cat "$out/checks.md"
  echo "tests exit status: $status"
fi
if [[ $what == all || $what == bench ]]; then
  # BENCH_SHAPES: llama-3.2-1b (2.5 GB) and/or llama-3.1-8b (16 GB, written to /tmp first); bench
  # alone takes both by default (about 2-3 minutes: four decode paths each, graphs off/on x host/GPU argmax)
  default_shapes=llama-3.2-1b
  [[ $what == bench ]] && default_shapes="llama-3.2-1b llama-3.1-8b"
  for shape in ${BENCH_SHAPES:-$default_shapes}; do
    java "${jvm[@]}" -cp "$cp" dev.medtune.cuda.CudaDecodeBench "/tmp/medtune-$shape" "$out/bench.md" \
      "${BENCH_TOKENS:-256}" "$(cat "$here/commit" 2>/dev/null || echo unknown)" "$shape" 2>&1 | tee -a "$out/bench.log" \
      || status=1
    rm -rf "/tmp/medtune-$shape"
  done
fi
if [[ $what == gemv ]]; then
  # the decode products alone, per 8B weight shape: cuBLASLt, gemv_rows.cu (1, 2, 4 rows per warp), gemv.cu
  java "${jvm[@]}" -cp "$cp" dev.medtune.cuda.CudaGemvBench "$out/gemv-bench.md" "$commit" 2>&1 \
    | tee "$out/gemv-bench.log" || status=1
fi
if [[ $what == attention ]]; then
  java "${jvm[@]}" -cp "$cp" dev.medtune.cuda.CudaAttentionBench "$out/attention-bench.md" "$commit" 2>&1 \
    | tee "$out/attention-bench.log" || status=1
fi
if [[ $what == train ]]; then
  echo "== PEFT baseline"
  python3 "$here/peft_baseline.py" "$out/train-bench.md" "$commit" --layers "$layers" 2>&1 | tee "$out/peft.log" || status=1
  wait $writer || { echo "writing the model failed:"; cat "$out/train-write.log"; status=1; }
  cat "$out/train-write.log"
  echo "== medtune"
  settings=${TRAIN_SETTINGS:-4:true 2:false 4:true/float32}
  batches=$(for s in $settings; do printf '%s,' "${s%%:*}"; done); batches=${batches%,}
  ckpts=$(for s in $settings; do printf '%s,' "${s##*:}"; done); ckpts=${ckpts%,}
  timeout "${TRAIN_TIMEOUT:-300}" java "${jvm[@]}" -cp "$cp" dev.medtune.cuda.CudaTrainBench /tmp/medtune-train-8b "$out/train-bench.md" \
    "$commit" "$batches" 2048 "$ckpts" "$layers" "${TRAIN_STEPS:-3}" 2>&1 | tee "$out/train-bench.log" || status=1
  rm -rf /tmp/medtune-train-8b
  echo; cat "$out/train-bench.md"
fi
exit $status

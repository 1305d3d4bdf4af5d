#!/usr/bin/env bash
# LoRA training speed on the CPU for the tiny preset and the llama-3.2-1b shape, with the useful
# GFLOP/s as a fraction of the float32 FMA rate measured in the same run; appends to
# bench/RESULTS.md. Usage: bench/train-cpu.sh [STEPS]
# Models: /tmp/medtune-bench-tiny and /tmp/medtune-bench-llama-3.2-1b (made with init-model when
# missing; the 1B shape is 2.5 GB). A few minutes; the cores are shared, so figures are noisy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/jdk.sh"
medtune_find_jdk
steps=${1:-2}
for p in tiny llama-3.2-1b; do
  if [ ! -f "/tmp/medtune-bench-$p/config.json" ]; then
    "$root/medtune" init-model --preset "$p" --output "/tmp/medtune-bench-$p"
  fi
done
"$root/medtune" --version >/dev/null   # builds the jar when the sources changed
(cd "$root" && mvn -B -q -ntp -o -pl medtune-cpu test-compile >/dev/null 2>&1 || mvn -B -q -ntp -pl medtune-cpu test-compile)
commit=$(git -C "$root" rev-parse --short HEAD)
# tiny: 2 rows of 256 tokens; 1B shape: 1 row of 64 tokens (a step is seconds, not minutes)
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector \
  -XX:+UseParallelGC -Xmx8g -cp "$root/medtune-cli/target/medtune.jar:$root/medtune-cpu/target/test-classes" \
  dev.medtune.cpu.bench.TrainCpuBench "$root/bench/RESULTS.md" "$commit" \
  /tmp/medtune-bench-tiny 2 256 "$((steps + 2))" /tmp/medtune-bench-llama-3.2-1b 1 64 "$steps" \
  2> >(grep -v -e '^WARNING: Using incubator modules' >&2)

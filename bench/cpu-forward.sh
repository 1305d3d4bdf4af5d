#!/usr/bin/env bash
# CPU forward benchmark: decode and prefill tokens/s of the llama-3.2-1b shape (bf16 weights)
# against the machine's memory bandwidth and FMA rate measured in the same run; appends to
# bench/RESULTS.md. Usage: bench/cpu-forward.sh [MODEL_DIR] [PROMPT_TOKENS] [DECODE_TOKENS]
# MODEL_DIR defaults to /tmp/medtune-bench-llama-3.2-1b, made with `medtune init-model` if missing
# (about 2.5 GB). It takes a few minutes; the cores are shared, so figures are noisy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/jdk.sh"
medtune_find_jdk
model=${1:-/tmp/medtune-bench-llama-3.2-1b}
if [ ! -f "$model/config.json" ]; then
  "$root/medtune" init-model --preset llama-3.2-1b --output "$model"
fi
"$root/medtune" --version >/dev/null   # builds the jar when the sources changed
(cd "$root" && mvn -B -q -ntp -o -pl medtune-cpu test-compile >/dev/null 2>&1 || mvn -B -q -ntp -pl medtune-cpu test-compile)
commit=$(git -C "$root" rev-parse --short HEAD)
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector \
  -XX:+UseParallelGC -Xmx8g -cp "$root/medtune-cli/target/medtune.jar:$root/medtune-cpu/target/test-classes" \
  dev.medtune.cpu.bench.CpuForwardBench "$model" "$root/bench/RESULTS.md" "$commit" "${2:-128}" "${3:-8}" \
  2> >(grep -v -e '^WARNING: Using incubator modules' >&2)

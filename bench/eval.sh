#!/usr/bin/env bash
# eval benchmark: log-likelihood scoring tokens/s and questions/s of the llama-3.2-1b shape on the
# CPU against the plain forward pass over the same token rows, measured in the same run; appends
# to bench/RESULTS.md. Usage: bench/eval.sh [MODEL_DIR] [QUESTIONS]
# MODEL_DIR defaults to /tmp/medtune-bench-llama-3.2-1b, made with `medtune init-model` if missing
# (about 2.5 GB). QUESTIONS (default 2) real MedMCQA dev questions from the test resources.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/jdk.sh"
medtune_find_jdk
model=${1:-/tmp/medtune-bench-llama-3.2-1b}
if [ ! -f "$model/config.json" ]; then
  "$root/medtune" init-model --preset llama-3.2-1b --output "$model"
fi
"$root/medtune" --version >/dev/null   # builds the jar when the sources changed
(cd "$root" && mvn -B -q -ntp -o -pl medtune-cli test-compile >/dev/null 2>&1 || mvn -B -q -ntp -pl medtune-cli -am test-compile)
commit=$(git -C "$root" rev-parse --short HEAD)
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector \
  -XX:+UseParallelGC -Xmx8g -cp "$root/medtune-cli/target/medtune.jar:$root/medtune-cli/target/test-classes" \
  dev.medtune.cli.eval.bench.EvalBench "$model" \
  "$root/medtune-cli/src/test/resources/eval/dev-choices-20.jsonl" "$root/bench/RESULTS.md" \
  "$commit" "${2:-2}" 2> >(grep -v -e '^WARNING: Using incubator modules' >&2)

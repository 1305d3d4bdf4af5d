#!/usr/bin/env bash
# init-model benchmark: time to write a preset (default llama-3.2-1b, 2.47 GB of bf16) against the
# same-run baseline of writing as many plain bytes with fsync to the same folder; appends to
# bench/RESULTS.md. Usage: bench/init-model.sh [WORK_DIR] [PRESET]
# WORK_DIR (default /tmp/medtune-bench-init) needs room for one copy of the weights; it is emptied.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/jdk.sh"
medtune_find_jdk
work=${1:-/tmp/medtune-bench-init}
"$root/medtune" --version >/dev/null   # builds the jar when the sources changed
(cd "$root" && mvn -B -q -ntp -o -pl medtune-model test-compile >/dev/null 2>&1 || mvn -B -q -ntp -pl medtune-model test-compile)
commit=$(git -C "$root" rev-parse --short HEAD)
"$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED -Xmx2g \
  -cp "$root/medtune-cli/target/medtune.jar:$root/medtune-model/target/test-classes" \
  dev.medtune.model.bench.InitModelBench "$work" "$root/bench/RESULTS.md" "$commit" "${2:-llama-3.2-1b}"
rm -rf "$work"

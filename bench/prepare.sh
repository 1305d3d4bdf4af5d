#!/usr/bin/env bash
# Benchmark of `medtune prepare` end to end on 182,822 MedMCQA-shaped rows as parquet, CSV and JSON
# lines, with DuckDB's plain full read of each file as the same-run baseline. Appends to
# bench/RESULTS.md. Arguments go to PrepareBench (--rows N, --repeats N, --work DIR).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/jdk.sh"
medtune_find_jdk || exit 1
cd "$root"
[ -x /usr/bin/time ] || { echo "bench/prepare.sh: needs GNU time (/usr/bin/time; apt-get install time)" >&2; exit 1; }
./medtune --version >/dev/null
mvn -B -q -ntp -pl medtune-data test-compile
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector \
  -cp medtune-cli/target/medtune.jar:medtune-data/target/test-classes \
  dev.medtune.data.bench.PrepareBench "$@" 2> >(grep -v -e '^WARNING: Using incubator modules' >&2)

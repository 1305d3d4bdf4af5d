#!/usr/bin/env bash
# Benchmark: `medtune pull` of one large LFS file (default 2048 MB) from a local stand-in hub against
# `curl` from the same server in the same run; prints MB/s, the ratio and peak RSS, and appends
# them to bench/RESULTS.md. The file is written under /tmp and deleted afterwards.
# Usage: bench/hub-download.sh [SIZE_MB] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/jdk.sh"
medtune_find_jdk || exit 1
command -v curl >/dev/null || { echo "hub-download: needs curl" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "hub-download: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
cd "$root"
"$root/medtune" --version >/dev/null   # builds the jar when the sources changed
mvn -B -q -ntp -pl medtune-hub test-compile >/dev/null
exec "$JAVA_HOME/bin/java" -cp "medtune-hub/target/test-classes:medtune-cli/target/medtune.jar" \
  dev.medtune.hub.HubDownloadBench "$root" "$root/medtune-cli/target/medtune.jar" "${1:-2048}" "${2:-2}"

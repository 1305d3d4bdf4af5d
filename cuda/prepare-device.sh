#!/usr/bin/env bash
# Prepares a GPU run (on this machine, which needs no GPU): builds medtune-cuda and its tests,
# and copies what cuda/run-on-gpu.sh needs into <dest> (default: .device/cuda in the checkout), which
# the device call carries together with .device/jre.tgz (made by /work/shared/tools/device-jre.sh).
# Nothing is built on the GPU machine. Carried: the module jars, Jackson (fixtures' JSON), the
# JUnit console launcher, the test classes and fixtures; about 6 MB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.device/cuda}
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
cd "$root"
# package, not install: the jars come from each module's target/, never from the shared ~/.m2
mvn -B -q -ntp -pl medtune-cuda -am package -DskipTests
m2=${M2_REPO:-$HOME/.m2/repository}
mvn -B -q -ntp dependency:get -Dartifact=org.junit.platform:junit-platform-console-standalone:1.14.4
rm -rf "$dest"
mkdir -p "$dest/lib"
jackson=$(sed -n 's:.*<jackson.version>\(.*\)</jackson.version>.*:\1:p' pom.xml)
for jar in medtune-model/target/medtune-model-*.jar medtune-cpu/target/medtune-cpu-*.jar \
    medtune-cuda/target/medtune-cuda-*.jar \
    "$m2"/com/fasterxml/jackson/core/jackson-{core,databind}/"$jackson"/*"$jackson".jar \
    "$m2"/com/fasterxml/jackson/core/jackson-annotations/*/jackson-annotations-"${jackson%.*}".jar \
    "$m2"/org/junit/platform/junit-platform-console-standalone/1.14.4/*1.14.4.jar; do
  cp "$jar" "$dest/lib/"
done
cp -r medtune-cuda/target/test-classes "$dest/test-classes"
cp cuda/run-on-gpu.sh bench/peft_baseline.py "$dest/"
git rev-parse --short HEAD > "$dest/commit"
du -sh "$dest"

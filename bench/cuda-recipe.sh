#!/usr/bin/env bash
# The whole recipe on the GPU (issue 5): 10,000 prepared MedMCQA examples, `medtune train` with its
# defaults (the recipe's: 60 steps of 2 x 4 examples, LoRA r=16 alpha=16 on the seven projections,
# lr 2e-4, linear schedule, 5 warmup steps, rows of at most 2048 tokens, checkpointing, seed 3407)
# on the llama-3.1-8b shape (random bf16 weights, the real Llama 3.1 tokenizer), timed from
# `train` start to its adapter written. The reference: the original recipe took 3 min 42 s on a
# T4 with unsloth and the model in 4-bit (../shared/reference/seed-facts.md).
#
# Two halves, because the GPU machine has no Java, no Maven and no network:
#
#   bench/cuda-recipe.sh prepare [DEST]      on this machine (JDK, Maven, the tokenizer in
#       ~/.cache/medtune from scripts/fetch-llama3-tokenizer.sh). Writes DEST (default
#       .device/recipe in the checkout, git-ignored): lib/ (the module jars and the dependency jars
#       `train` and `init-model` need - no DuckDB, the tokenizers jar stripped to its linux-x86_64
#       native), data/train.jsonl.gz (prepare's train.jsonl), tokenizer/ (tokenizer.json.gz,
#       tokenizer_config.json), this script, commit. About 16 MB; with .device/jre.tgz (28 MB)
#       well under the device call's 64 MiB.
#       The data: MedMCQA's train split is not available offline (../shared/data/medmcqa has
#       samples of 100-177 rows), so, as that folder's README says for scale runs, 182,822
#       MedMCQA-shaped rows are generated from the real samples (PrepareBench's generator: each
#       row copies a real row's field lengths, choice type and explanation prefix, words drawn
#       from the samples' vocabulary), then `medtune prepare` runs with its defaults (the
#       recipe's: single-choice, explanations of 6+ words, the 10,000 shortest, 5% held out as
#       val.jsonl, which the recipe's training did not use). RECIPE_INPUT=FILE|DIR prepares real
#       data instead (e.g. the hub's medmcqa parquet folder).
#
#   bash .device/recipe/cuda-recipe.sh run   on the GPU machine (the device call carries
#       .device/recipe and .device/jre.tgz). Unpacks the Java runtime into /tmp, writes the model
#       with `init-model --preset llama-3.1-8b --tokenizer <Llama 3.1's>` into /tmp (timed on its
#       own), runs `train --device cuda` with the command's defaults, and writes to $OUT: train.log,
#       init-model.log, training.json, metrics.jsonl, gpu-memory.csv (nvidia-smi every second) and
#       recipe-results.md (one line for bench/RESULTS.md: machine, date, commit, wall times,
#       steps, tokens/s from metrics.jsonl, the T4 reference).
#       RECIPE_PRESET (llama-3.1-8b), RECIPE_DEVICE (cuda) and RECIPE_TRAIN_ARGS (none) change the
#       run: `RECIPE_PRESET=tiny RECIPE_DEVICE=cpu RECIPE_TRAIN_ARGS="--max-steps 2 --max-seq-len 256"`
#       proves the script, jars and paths on a CPU machine. RECIPE_WORK (/tmp/medtune-recipe) is
#       where the model and run go; it is removed at the end unless RECIPE_KEEP=1.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=${1:-}

prepare() {
  set -e
  local root dest work tok
  root=$(cd "$here/.." && pwd)
  dest=${1:-$root/.device/recipe}
  . "$root/scripts/jdk.sh"
  medtune_find_jdk
  cd "$root"
  tok=$("$root/scripts/fetch-llama3-tokenizer.sh")
  work=$(mktemp -d /tmp/medtune-recipe-prepare.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  # the jars: modules from their target/, dependencies from the reactor's runtime class path
  mvn -B -q -ntp -pl medtune-cli -am package -DskipTests \
    dependency:build-classpath -Dmdep.outputFile=target/recipe-classpath.txt -Dmdep.includeScope=runtime
  mvn -B -q -ntp -pl medtune-data test-compile
  ./medtune --version >/dev/null # the shaded jar, for prepare and the generator (DuckDB in it)
  local input=${RECIPE_INPUT:-}
  if [[ -z $input ]]; then
    input=$work/medmcqa-train.jsonl
    "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED -cp medtune-cli/target/medtune.jar:medtune-data/target/test-classes \
      dev.medtune.data.bench.PrepareBench --rows 182822 --generate "$input"
  fi
  ./medtune prepare --input "$input" --output "$work/prepared"
  rm -rf "$dest.tmp"
  mkdir -p "$dest.tmp/lib" "$dest.tmp/data" "$dest.tmp/tokenizer"
  for m in model cpu cuda data hub cli; do
    cp medtune-$m/target/medtune-$m-*.jar "$dest.tmp/lib/"
  done
  rm -f "$dest.tmp"/lib/*-tests.jar "$dest.tmp"/lib/*-sources.jar
  # (the plugin's list also names the test scope's JUnit jars: left out, as DuckDB, which train does not load)
  tr ':' '\n' < medtune-cli/target/recipe-classpath.txt | grep '\.jar$' \
    | grep -v -e '/medtune-' -e duckdb -e junit -e opentest4j -e apiguardian \
    | while read -r jar; do cp "$jar" "$dest.tmp/lib/"; done
  # the tokenizers jar carries natives for four platforms (18 MB, 5 MB without them); the GPU machine is linux-x86_64
  local tj
  tj=$(ls "$dest.tmp"/lib/tokenizers-*.jar)
  python3 - "$tj" <<'EOF'
import os, sys, zipfile
jar = sys.argv[1]
keep = lambda n: not n.startswith("native/lib/") or n.startswith("native/lib/linux-x86_64/") \
    or n in ("native/lib/", "native/lib/tokenizers.properties")
with zipfile.ZipFile(jar) as src, zipfile.ZipFile(jar + ".tmp", "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        if keep(info.filename):
            dst.writestr(info, src.read(info.filename))
os.replace(jar + ".tmp", jar)
EOF
  gzip -c "$work/prepared/train.jsonl" > "$dest.tmp/data/train.jsonl.gz"
  cp "$work/prepared/report.json" "$dest.tmp/data/prepare-report.json"
  # real MedMCQA questions (the shared dev sample) for the generate and eval runs after training
  cp "$root/../shared/data/medmcqa/dev-choices.jsonl" "$dest.tmp/data/"
  gzip -c "$tok/tokenizer.json" > "$dest.tmp/tokenizer/tokenizer.json.gz"
  cp "$tok/tokenizer_config.json" "$dest.tmp/tokenizer/"
  cp "$here/cuda-recipe.sh" "$dest.tmp/"
  echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/RESULTS.md' || echo -dirty)" > "$dest.tmp/commit"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  echo "prepared: $(wc -l < "$work/prepared/train.jsonl") training examples, $(wc -l < "$work/prepared/val.jsonl") held out"
  du -sh "$dest" "$dest"/* | sed 's/^/  /'
}

seconds() { date +%s.%N; }

run() {
  local out work preset device t0 t1 status=0 start
  start=$(seconds)
  out=${OUT:-/tmp/medtune-recipe-out}
  work=${RECIPE_WORK:-/tmp/medtune-recipe}
  preset=${RECIPE_PRESET:-llama-3.1-8b}
  device=${RECIPE_DEVICE:-cuda}
  read -r -a extra <<< "${RECIPE_TRAIN_ARGS:-}"
  mkdir -p "$out"
  if [[ ! -x ${JAVA_HOME:-/nonexistent}/bin/java ]]; then
    local jre=${JRE_TGZ:-$here/../jre.tgz}
    tar xzf "$jre" -C /tmp || { echo "cuda-recipe.sh: no Java runtime at $jre (make it with /work/shared/tools/device-jre.sh)" >&2; return 1; }
    export JAVA_HOME=/tmp/jre
  fi
  export MEDTUNE_CUDA_CACHE=${MEDTUNE_CUDA_CACHE:-$work/cuda-cache}
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  local java=("$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector
    -XX:+UseParallelGC -cp "$(ls "$here"/lib/*.jar | tr '\n' ':')" dev.medtune.cli.Main)
  rm -rf "$work"
  mkdir -p "$work/tokenizer"
  gunzip -c "$here/data/train.jsonl.gz" > "$work/train.jsonl"
  gunzip -c "$here/tokenizer/tokenizer.json.gz" > "$work/tokenizer/tokenizer.json"
  cp "$here/tokenizer/tokenizer_config.json" "$work/tokenizer/"
  local machine
  if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
    machine=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -l 1 > "$out/gpu-memory.csv" 2>/dev/null &
    smi=$!
  else
    machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(nproc) threads)"
  fi
  echo "== $(date -u +%FT%TZ) $machine, commit $(cat "$here/commit"), $("${java[@]:0:1}" -version 2>&1 | head -1)"

  echo "== init-model --preset $preset"
  t0=$(seconds)
  "${java[@]}" init-model --preset "$preset" --tokenizer "$work/tokenizer/tokenizer.json" --output "$work/model" \
    > "$out/init-model.log" 2>&1 || { cat "$out/init-model.log"; echo "cuda-recipe.sh: init-model failed" >&2; return 1; }
  sync # on disk before train starts: its clock does not pay for this write-back
  t1=$(seconds)
  local init_s
  init_s=$(awk "BEGIN { print $t1 - $t0 }")
  tail -2 "$out/init-model.log"
  du -sh "$work/model"
  echo "init-model (with sync): $init_s s"

  # the device call gives 10 minutes: SIGTERM before that makes train finish its step, save a
  # checkpoint and write the adapter (the line below then says how many steps ran)
  local budget
  budget=$(awk "BEGIN { b = ${RECIPE_BUDGET_S:-560} - ($(seconds) - $start); print (b < 60 ? 60 : int(b)) }")
  echo "== train --device $device ${extra[*]} (stopped by SIGTERM after $budget s if still running)"
  local timev=()
  [[ -x /usr/bin/time ]] && timev=(/usr/bin/time -v -o "$out/train.time") # peak host memory (outside timeout: TERM goes to java)
  t0=$(seconds)
  "${timev[@]}" timeout -s TERM "$budget" "${java[@]}" train --model "$work/model" --data "$work/train.jsonl" --device "$device" --output "$work/run" \
    "${extra[@]}" 2>&1 | tee "$out/train.log" | grep --line-buffered -v '^WARNING: Using incubator'
  status=${PIPESTATUS[0]}
  t1=$(seconds)
  [[ -n ${smi:-} ]] && kill "$smi" 2>/dev/null
  if [[ $status != 0 || ! -f $work/run/adapter/adapter_model.safetensors ]]; then
    echo "cuda-recipe.sh: train failed (exit $status), no adapter" >&2
    cp "$work/run/training.json" "$work/run/metrics.jsonl" "$out/" 2>/dev/null
    return 1
  fi
  local wall adapter_s
  wall=$(awk "BEGIN { print $t1 - $t0 }")
  adapter_s=$(awk "BEGIN { print $(stat -c %.3Y "$work/run/adapter/adapter_model.safetensors") - $t0 }")
  cp "$work/run/training.json" "$work/run/metrics.jsonl" "$out/"
  ls -la "$work/run" "$work/run/adapter"
  [[ -f $out/train.time ]] && grep -E "Maximum resident|Elapsed" "$out/train.time"
  python3 - "$out" "$machine" "$(cat "$here/commit")" "$preset" "$device" "$init_s" "$wall" "$adapter_s" \
      "$(gunzip -c "$here/data/train.jsonl.gz" | wc -l)" "${extra[*]}" \
      "$(sed -n 's/.*"torch_dtype" *: *"\([a-z0-9]*\)".*/\1/p' "$work/model/config.json")" <<'EOF'
import json, sys, datetime
out, machine, commit, preset, device, init_s, wall, adapter_s, examples, extra, dtype = sys.argv[1:]
steps = [json.loads(l) for l in open(f"{out}/metrics.jsonl") if '"loss"' in l]
tokens = sum(s["tokens"] for s in steps)
step_seconds = sum(s["tokens"] / s["tokens_per_s"] for s in steps if s["tokens_per_s"] > 0)
t = json.load(open(f"{out}/training.json"))
res = t.get("results", {})
def clock(s):
    s = float(s)
    return f"{int(s // 60)} min {s % 60:04.1f} s"
line = (f"| {datetime.date.today()} | {machine} | {commit} | medtune `train --device {device}` with its defaults"
        f"{' ' + extra if extra else ''}, {preset} shape (random {dtype} weights, "
        f"Llama 3.1 tokenizer), {int(examples):,} prepared examples | {len(steps)} steps"
        f"{' (stopped early by the time limit)' if res.get('stopped_early') else ''}, {tokens:,} tokens, "
        f"loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f} "
        f"| {clock(adapter_s)} from `train` start to adapter written ({clock(wall)} to exit; trainer {float(res.get('seconds_this_run', 0)):.1f} s) "
        f"| {tokens / step_seconds:,.0f} tokens/s over the steps (metrics.jsonl) | init-model {clock(init_s)} (not counted) "
        f"| original recipe: 3 min 42 s on a T4, unsloth, 4-bit (its figure, not re-run) |")
print(line)
with open(f"{out}/recipe-results.md", "a") as f:
    f.write(line + "\n")
EOF
  # the other commands on the same device with the adapter just written: streamed generation and
  # an accuracy run (the weights are random, so the answers are noise; what counts is that the
  # commands run there and how fast)
  if [[ -f $here/data/dev-choices.jsonl ]]; then
    echo "== generate --device $device --adapter (greedy, 64 new tokens)"
    "${java[@]}" generate --model "$work/model" --adapter "$work/run/adapter" --device "$device" --max-new-tokens 64 \
      --question "Which of the following is the drug of choice for absence seizures?" 2>&1 \
      | tee "$out/generate.log" | grep -v '^WARNING: Using incubator' | tail -8
    echo "== eval --device $device --adapter --limit 200 (loglik, real MedMCQA dev questions)"
    "${java[@]}" eval --model "$work/model" --adapter "$work/run/adapter" --device "$device" \
      --data "$here/data/dev-choices.jsonl" --limit 200 --output "$work/eval" 2>&1 \
      | tee "$out/eval.log" | grep -v '^WARNING: Using incubator' | tail -20
    cp "$work/eval/report.md" "$out/eval-report.md" 2>/dev/null
  fi
  [[ ${RECIPE_KEEP:-0} == 1 ]] || rm -rf "$work"
}

case $mode in
  prepare) shift; prepare "$@" ;;
  run) run ;;
  *) echo "usage: bench/cuda-recipe.sh prepare [DEST] | run   (see the comment on top)" >&2; exit 2 ;;
esac

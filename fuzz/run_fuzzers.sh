#!/usr/bin/env bash
# Runs every fuzz target of a fuzz build for a bounded time: fuzz/run_fuzzers.sh BUILD SECONDS [TARGET...]
# (`make fuzz` builds BUILD and calls this). Each target starts from a scratch corpus in
# BUILD/corpus/<target>, which gets the committed seeds of fuzz/corpus/<target> (the
# regression inputs among them, which run first) and keeps what earlier runs found;
# the checkpoint target also gets real checkpoints from BUILD/microgpt. Crash inputs
# land in BUILD/crashes/<target>/, the whole output in BUILD/fuzz-<target>.log.
# Exits non-zero if any target crashed (or leaked, ran out of memory or timed out).
set -uo pipefail

build=${1:?usage: run_fuzzers.sh BUILD SECONDS [TARGET...]}
seconds=${2:?usage: run_fuzzers.sh BUILD SECONDS [TARGET...]}
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dataset checkpoint command_line)
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)

# Real checkpoints of both engines (one with --ema, one of a text), from the build's own microgpt: tiny models, so the
# fuzzer spends its time in the header rather than in megabytes of weights.
seed_checkpoints() {
  local dir=$1 work
  work=$(mktemp -d)
  printf 'ab\nba\nabc\n' > "$work/tiny.txt"
  "$build/microgpt" train --data "$work/tiny.txt" --engine fast --steps 2 --num-samples 0 --n-embd 4 --n-head 1 \
    --block-size 4 --threads 1 --out "$dir/seed-fast" > /dev/null &&
    "$build/microgpt" train --data "$work/tiny.txt" --engine fast --steps 3 --num-samples 0 --n-embd 4 --n-head 2 \
      --block-size 4 --threads 1 --dropout 0.1 --ema 0.5 --reshuffle --out "$dir/seed-fast-ema" > /dev/null &&
    "$build/microgpt" train --data "$work/tiny.txt" --engine reference --steps 3 --num-samples 2 --n-embd 2 --n-head 2 \
      --n-layer 2 --block-size 3 --out "$dir/seed-reference" > /dev/null &&
    "$build/microgpt" train --data "$work/tiny.txt" --format text --steps 2 --num-samples 0 --n-embd 4 --n-head 1 \
      --block-size 3 --val-frac 0 --init gpt2 --warmup 1 --threads 1 --out "$dir/seed-text" > /dev/null
  local rc=$?
  rm -rf "$work"
  return $rc
}

failed=()
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t
  crashes=$build/crashes/$t
  log=$build/fuzz-$t.log
  mkdir -p "$corpus" "$crashes"
  stamp=$build/fuzz-$t.start
  touch "$stamp"
  cp "$fuzz_dir/corpus/$t/"* "$corpus/" 2> /dev/null
  if [ "$t" = checkpoint ] && ! seed_checkpoints "$corpus"; then
    echo "fuzz: could not write seed checkpoints with $build/microgpt"
    failed+=("$t")
    continue
  fi
  echo "fuzz: $t for ${seconds} s (corpus $corpus, log $log)"
  # -timeout: seconds per input; -rss_limit_mb: the memory one process may take;
  # -use_value_profile: comparisons guide the mutations (magic strings, sizes).
  # -max_len: the checkpoint target's mutator nests values up to 150,000 levels deep,
  # which takes room, from the start (-len_control=0).
  extra=()
  [ "$t" = checkpoint ] && extra=(-max_len=1048576 -len_control=0)
  "$build/fuzz/fuzz_$t" "$corpus" -dict="$fuzz_dir/$t.dict" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -use_value_profile=1 "${extra[@]}" -print_final_stats=1 -artifact_prefix="$crashes/" \
    > "$log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    echo "fuzz: $t FAILED (exit $rc); the report:"
    # From the sanitizer's or libFuzzer's first word on the problem to the end.
    awk '/^==[0-9]+==|runtime error:|^terminate called|^ALARM:/ {p=1} p' "$log" | grep -v '^INFO: ' | head -n 80
    find "$crashes" -type f -newer "$stamp" | while read -r f; do
      echo "fuzz: input kept at $f (reproduce: $build/fuzz/fuzz_$t $f)"
    done
  else
    grep -E '^(#[0-9]+\s+DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | sed "s/^/fuzz: $t: /"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $build/crashes/; see fuzz/README.md to turn one into a regression test)"
  exit 1
fi
echo "fuzz: no crashes in ${targets[*]}"

#!/usr/bin/env bash
# The speed figures of the README, measured side by side in one time window:
#   1. the default run (names.txt, 1000 steps + 20 samples), whole process, fast engine;
#   2. the same run with the reference engine (CPU seconds);
#   3. ms/step, tokens/s, GFLOP/s and peak memory of the fast engine for the
#      makemore-sized and large configurations, on 1 and 2 threads;
#   4. with --torch SCRIPT, the same configurations in PyTorch (a script such as
#      torch_microgpt.py that takes the same flags, which needs Debian's python3-torch and
#      libopenblas0-openmp; never a dependency);
#   5. with --quality, the quality preset on names.txt: validation loss, wall time and
#      peak memory of one whole run (about two minutes).
# This machine is shared: every figure is a median of repeated runs; compare ratios
# measured in the same window.
#   bench/run_benchmarks.sh --data names.txt [--torch SCRIPT] [--quick] [--quality]
# names.txt is makemore's list of 32,033 names (see the README); `make bench` passes the
# copy in the shared data folder when there is one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
bin="$root/build/microgpt"
bench="$root/build/microgpt_bench"
data=""
torch_py=""
with_torch=0
with_quality=0
runs=30
steps_mm=200
steps_large=30
usage="usage: $0 --data names.txt [--torch SCRIPT] [--quick] [--quality]"
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data="${2:?$usage}"; shift ;;
    --torch) torch_py="${2:?$usage}"; with_torch=1; shift ;;
    --quick) runs=10; steps_mm=60; steps_large=10 ;;
    --quality) with_quality=1 ;;
    *) echo "$usage"; exit 2 ;;
  esac
  shift
done
if [ -z "$data" ]; then echo "$usage"; exit 2; fi
if [ ! -f "$data" ]; then echo "$0: data file '$data' not found"; exit 1; fi
export OMP_WAIT_POLICY=PASSIVE  # PyTorch's OpenMP threads: no spinning between operations

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "== default run: names.txt, 1000 steps + 20 samples, whole process"
for engine in fast reference; do
  n=$runs; [ "$engine" = reference ] && n=$(( runs / 3 + 1 ))
  if command -v hyperfine > /dev/null; then
    hyperfine -N -w 3 -r "$n" --export-json /tmp/microgpt_bench_$$.json \
      "$bin --engine $engine --data $data" > /dev/null 2>&1
    python3 - /tmp/microgpt_bench_$$.json "$engine" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"][0]
cpu = [u + s for u, s in zip(r["user"], r["system"])] if "user" in r and isinstance(r["user"], list) else None
print("%-9s wall: median %.1f ms, min %.1f ms, max %.1f ms over %d runs; CPU (user+sys) mean %.1f ms"
      % (sys.argv[2], 1000 * r["median"], 1000 * r["min"], 1000 * r["max"], len(r["times"]), 1000 * (r["user"] + r["system"])))
PY
    rm -f /tmp/microgpt_bench_$$.json
  else
    cpus=()
    for _ in $(seq "$n"); do
      t=$( { TIMEFORMAT='%U %S'; time "$bin" --engine "$engine" --data "$data" > /dev/null; } 2>&1 | tail -1)
      cpus+=("$(echo "$t" | awk '{printf "%d", ($1 + $2) * 1e6}')")
    done
    c=$(printf '%s\n' "${cpus[@]}" | median)
    printf '%-9s median CPU %.1f ms over %d runs (install hyperfine for wall times)\n' "$engine" "$(echo "$c / 1000" | bc -l)" "$n"
  fi
done

config_makemore="--n-layer 4 --n-embd 64 --n-head 4 --block-size 16 --batch-size 32 --lr 1e-3"
config_large="--n-layer 6 --n-embd 192 --n-head 6 --block-size 16 --batch-size 64 --lr 1e-3"
for name in makemore large; do
  eval "cfg=\$config_$name"
  steps=$steps_mm; [ "$name" = large ] && steps=$steps_large
  echo "== $name: $cfg"
  for t in 1 2; do
    printf 'microgpt %d thread(s): ' "$t"
    "$bench" --data "$data" $cfg --steps "$steps" --warmup 5 --chunk 5 --threads "$t" | sed -n 2p
  done
  if [ "$with_torch" = 1 ]; then
    printf 'pytorch  2 threads:   '
    /usr/bin/python3 "$torch_py" --input "$data" $cfg --steps $(( steps + 5 )) --warmup 5 --threads 2 \
        --init torch --val-frac 0.1 2>/dev/null | tail -1 |
      python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("%.4f ms/step | %.0f tokens/s (padded batches: %.0f tokens/s)" % (d["ms_per_step"], d["tokens_per_s"], d["padded_tokens_per_s"]))'
  fi
done

if [ "$with_quality" = 1 ]; then
  echo "== quality preset: names.txt, --val-frac 0.1, whole process"
  log=$(mktemp)
  /usr/bin/time -f "wall %e s | peak memory %M KB" -o "$log.time" \
    "$bin" train --data "$data" --preset quality --val-frac 0.1 --num-samples 0 --out "" > "$log" 2>/dev/null
  printf '%s | %s\n' "$(grep 'val loss' "$log" | tail -1 | sed 's/.*| //')" "$(tail -1 "$log.time")"
  rm -f "$log" "$log.time"
fi

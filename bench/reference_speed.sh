#!/usr/bin/env bash
# CPU time of the default reference run, whole process: names.txt, 1000 steps + 20 samples.
# Prints each run's user+system seconds and the median. The machine may be shared:
# run it more than once and compare medians.
#   bench/reference_speed.sh [path/to/microgpt] [runs]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../build/microgpt}"
runs="${2:-7}"
data="$here/../../shared/data/names.txt"
if [ ! -f "$data" ]; then
  echo "skipped: $data not found (../shared is not beside this checkout)"; exit 0
fi
TIMEFORMAT='%U %S'
times=()
for _ in $(seq "$runs"); do
  t=$( { time "$bin" --engine reference --data "$data" > /dev/null; } 2>&1 | tail -1 | awk '{print $1 + $2}')
  times+=("$t")
done
printf 'reference engine, default run on names.txt (1000 steps + 20 samples), CPU seconds per run:'
printf ' %s' "${times[@]}"; echo
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "median %.3f s CPU (target: at most 0.5 s)\n", m}'

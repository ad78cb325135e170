#!/usr/bin/env bash
# Training across processes against threads, on one machine, in one time window: the
# same run as 1 process of 2 threads and as `mpirun -np 2` processes of 1 thread each
# (the same results, bit for bit; README "Train on several processes").
#   ms/step = (time of S2 steps - time of S1 steps) / (S2 - S1), whole processes (so
#   start-up, MPI's start and the data's loading cancel); each figure the median of
#   --runs alternating runs; ratio = threaded ms/step / processes' ms/step (above 1: the
#   processes are faster).
#   bench/mpi_speed.sh --names names.txt [--text tinyshakespeare.txt] [--runs 5]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$here/../build/microgpt"
names="" text="" runs=5
usage="usage: $0 --names names.txt [--text TEXT] [--runs N]"
while [ $# -gt 0 ]; do
  case "$1" in
    --names) names="${2:?$usage}"; shift ;;
    --text) text="${2:?$usage}"; shift ;;
    --runs) runs="${2:?$usage}"; shift ;;
    *) echo "$usage"; exit 2 ;;
  esac
  shift
done
[ -f "$names" ] || { echo "$usage"; exit 2; }
command -v mpirun > /dev/null || { echo "mpirun not found (make build installs openmpi-bin)"; exit 2; }
mpirun_np2=(mpirun -q -np 2)
[ "$(id -u)" = 0 ] && mpirun_np2=(mpirun -q --allow-run-as-root -np 2)
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }

# name | S1 | S2 | flags
workloads=("makemore (4x64, batch 32 names)|300|1500|--data $names --preset makemore --val-frac 0 --num-samples 0 --out ''")
[ -n "$text" ] && workloads+=("text (4x256, block 128, batch 16)|8|38|--data $text --preset text --val-frac 0 --num-samples 0 --out ''")

printf '%-36s %14s %14s %8s\n' "workload" "1x2 threads" "2x1 processes" "ratio"
for w in "${workloads[@]}"; do
  IFS='|' read -r name s1 s2 flags <<< "$w"
  eval "args=($flags)"
  threads=() procs=()
  for r in $(seq "$runs"); do
    a1=$(seconds "$bin" train "${args[@]}" --steps "$s1" --threads 2)
    a2=$(seconds "$bin" train "${args[@]}" --steps "$s2" --threads 2)
    b1=$(seconds "${mpirun_np2[@]}" "$bin" train "${args[@]}" --steps "$s1" --threads 1)
    b2=$(seconds "${mpirun_np2[@]}" "$bin" train "${args[@]}" --steps "$s2" --threads 1)
    threads+=("$(echo "($a2 - $a1) * 1000 / ($s2 - $s1)" | bc -l)")
    procs+=("$(echo "($b2 - $b1) * 1000 / ($s2 - $s1)" | bc -l)")
  done
  t=$(printf '%s\n' "${threads[@]}" | median)
  p=$(printf '%s\n' "${procs[@]}" | median)
  printf '%-36s %11.2f ms %11.2f ms %7.2fx   (runs: threads %s; processes %s)\n' "$name" "$t" "$p" \
    "$(echo "$t / $p" | bc -l)" "$(printf '%.2f ' "${threads[@]}")" "$(printf '%.2f ' "${procs[@]}")"
done

#!/usr/bin/env bash
# On paper: how a preset's training step would scale over N machines like this one,
# from the step time measured here and the bytes of its gradient. Prints, for 10 and
# 100 Gb/s Ethernet, the expected step time, speed-up and efficiency for N = 2 to 64.
#   bench/mpi_scaling.sh --preset quality --data names.txt [--threads 2]
#   bench/mpi_scaling.sh --preset text --data tinyshakespeare.txt
# The model (README "Train on several processes"):
#   compute(N) = T1 * ceil(B / N) / B    the largest share of the batch of B documents
#                                        (or windows); past N = B machines wait idle
#   comm(N)    = 2 (N-1)/N * 4P / bandwidth + 2 (N-1) * latency
#                the gradient's float32 bytes through the exchange and the gather, the
#                two halves of a ring all-reduce, each in N-1 rounds of latency 50 us
#   step(N)    = compute(N) + comm(N)    (no overlap of the two)
#   speed-up   = T1 / step(N); efficiency = speed-up / N
# T1 is measured here: the step time of one machine (--threads, all cores by default)
# by the difference of two run lengths.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$here/../build/microgpt"
preset="" data="" threads=""
usage="usage: $0 --preset NAME --data FILE [--threads N]"
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset="${2:?$usage}"; shift ;;
    --data) data="${2:?$usage}"; shift ;;
    --threads) threads="${2:?$usage}"; shift ;;
    *) echo "$usage"; exit 2 ;;
  esac
  shift
done
[ -n "$preset" ] && [ -f "$data" ] || { echo "$usage"; exit 2; }
args=(train --data "$data" --preset "$preset" --val-frac 0 --num-samples 0 --out "")
[ -n "$threads" ] && args+=(--threads "$threads")
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }

# The parameter count and batch, as the run prints and the preset sets them.
params=$("$bin" "${args[@]}" --steps 1 | sed -n 's/^num params: //p')
batch=$("$bin" train --help | sed -n "s/.*  $preset: .*[^0-9]\([0-9][0-9]*\) \(documents\|windows\) per step.*/\1/p" | head -1)
[ -n "$batch" ] || { echo "cannot read the batch size of preset $preset from --help"; exit 1; }
# T1: long enough to time (a step of the big presets is a few hundred ms).
s1=5 s2=25
[ "$params" -lt 2000000 ] && s1=50 s2=450
t1=$(echo "($(seconds "$bin" "${args[@]}" --steps $s2) - $(seconds "$bin" "${args[@]}" --steps $s1)) / ($s2 - $s1)" | bc -l)

echo "preset $preset: $params parameters ($(echo "$params * 4 / 1000000" | bc -l | xargs printf '%.1f') MB of gradient), batch $batch, one machine $(printf '%.1f' "$(echo "$t1 * 1000" | bc -l)") ms/step"
for gbps in 10 100; do
  echo "  $gbps Gb/s Ethernet:"
  printf '    %4s %12s %12s %10s %10s\n' N "step (ms)" "comm (ms)" speed-up efficiency
  for n in 2 4 8 16 32 64; do
    awk -v T1="$t1" -v P="$params" -v B="$batch" -v N="$n" -v G="$gbps" 'BEGIN {
      share = int((B + N - 1) / N)
      compute = T1 * share / B
      comm = 2 * (N - 1) / N * 4 * P / (G * 1e9 / 8) + 2 * (N - 1) * 50e-6
      step = compute + comm
      printf "    %4d %12.1f %12.1f %9.1fx %9.0f%%\n", N, step * 1000, comm * 1000, T1 / step, 100 * T1 / step / N
    }'
  done
done

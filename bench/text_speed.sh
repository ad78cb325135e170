#!/usr/bin/env bash
# Training speed on a continuous text (--format text), side by side with a PyTorch script
# of the same architecture (torch_text.py, which needs Debian's python3-torch and
# libopenblas0-openmp; never a dependency), in one time window:
#   ms/step of microgpt = (time of S2 steps - time of S1 steps) / (S2 - S1), whole
#   processes, so start-up and the text's loading cancel; PyTorch's from its own timer
#   (steps after its warm-up). Each figure is the median of --runs alternating runs, and
#   the peak memory (max RSS) of the longer run is printed beside it.
#   bench/text_speed.sh --data tinyshakespeare.txt [--torch torch_text.py] [--runs 3]
#       [--shape "L H C T B"]...   (default: nanoGPT's CPU recipe shape, 4 4 128 64 12)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$here/../build/microgpt"
data="" torch_py="" runs=3 shapes=()
usage="usage: $0 --data TEXT [--torch torch_text.py] [--runs N] [--shape 'L H C T B']..."
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data="${2:?$usage}"; shift ;;
    --torch) torch_py="${2:?$usage}"; shift ;;
    --runs) runs="${2:?$usage}"; shift ;;
    --shape) shapes+=("${2:?$usage}"); shift ;;
    *) echo "$usage"; exit 2 ;;
  esac
  shift
done
[ -f "$data" ] || { echo "$usage"; exit 2; }
[ ${#shapes[@]} -gt 0 ] || shapes=("4 4 128 64 12")
export OMP_WAIT_POLICY=PASSIVE  # PyTorch's OpenMP threads: no spinning between operations
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for shape in "${shapes[@]}"; do
  read -r L H C T B <<< "$shape"
  # enough steps for about 3 s of difference at 100 GFLOP/s
  flops=$(( 6 * B * T * 12 * L * C * C ))
  s2=$(( 300000000000 / flops + 8 )); [ $s2 -gt 400 ] && s2=400
  s1=$(( s2 / 5 + 1 ))
  args=(train --data "$data" --format text --n-layer "$L" --n-head "$H" --n-embd "$C" --block-size "$T"
        --batch-size "$B" --lr 1e-3 --init gpt2 --threads 2 --val-frac 0 --out "" --num-samples 0)
  ours=() theirs=() rss=""
  for r in $(seq "$runs"); do
    t1=$( { /usr/bin/time -f "%e" "$bin" "${args[@]}" --steps "$s1" > /dev/null; } 2>&1 | tail -1)
    out=$( { /usr/bin/time -f "%e %M" "$bin" "${args[@]}" --steps "$s2" > /dev/null; } 2>&1 | tail -1)
    read -r t2 rss <<< "$out"
    ours+=("$(awk -v a="$t1" -v b="$t2" -v n=$(( s2 - s1 )) 'BEGIN {printf "%.2f", 1000 * (b - a) / n}')")
    if [ -n "$torch_py" ]; then
      ts=$(( s2 / 2 + 5 ))
      theirs+=("$(/usr/bin/python3 "$torch_py" --input "$data" --n-layer "$L" --n-head "$H" --n-embd "$C" \
        --block-size "$T" --batch-size "$B" --steps "$ts" --warmup 5 --threads 2 --no-val --log-every 100000 |
        tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ms_per_step"])')")
    fi
  done
  m=$(printf '%s\n' "${ours[@]}" | median)
  gflops=$(awk -v f="$flops" -v m="$m" 'BEGIN {printf "%.0f", f / m / 1e6}')
  tok=$(awk -v m="$m" -v n=$(( B * T )) 'BEGIN {printf "%.0f", n * 1000 / m}')
  line="L=$L H=$H C=$C T=$T B=$B: microgpt ${m} ms/step (runs: ${ours[*]}), $tok tokens/s, ~$gflops GFLOP/s (6 N P), peak $(( rss / 1024 )) MB"
  if [ -n "$torch_py" ]; then
    tm=$(printf '%s\n' "${theirs[@]}" | median)
    line="$line | torch ${tm} ms/step (runs: ${theirs[*]}) | ratio $(awk -v a="$tm" -v b="$m" 'BEGIN {printf "%.2f", a / b}')x"
  fi
  echo "$line"
done

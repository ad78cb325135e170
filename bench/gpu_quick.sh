#!/usr/bin/env bash
# A kernel change checked on a GPU in about a minute, for when little device time is left
# (bench/gpu_check.sh is the whole check): the GPU kernels' tests; 6 layers x 192 wide on
# 64 names a step with the default attention (each document's length chooses the tiled or
# the warp kernels) and with the warp kernels for all; nanoGPT's Shakespeare shape
# in tf32 (ms per step from 20 and 120 steps), its attention on the tensor cores and in
# float32; Nsight Compute's time per kernel for two of its steps. Beside gpu-bundle/
# (make gpu-bundle); writes into $OUT or bench/out.
set -uo pipefail
b=gpu-bundle
out="${OUT:-bench/out}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/$b/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
timeout 60 "$b/fast_tests" --gtest_filter='Gpu/*:Backends/DevicePath.*/gpu' > "$out/tests.log" 2>&1
echo "tests: exit $? ($(grep -c '^\[       OK' "$out/tests.log") passed; $(grep -c '^\[  FAILED' "$out/tests.log") failed lines)"
# tensor (the default): each document's length chooses the tiled (tensor cores in tf32) or
# the warp kernels; warp: the warp kernels for all
for attention in tensor warp; do
  for precision in fp32 tf32; do
    printf '6x192 names, %s attention, %s: ' "$attention" "$precision"
    MICROGPT_CUDA_ATTENTION=$attention timeout 30 "$b/microgpt_bench" --data "$b/data/names.txt" --n-layer 6 \
      --n-embd 192 --n-head 6 --batch-size 64 --steps 300 --engine gpu --precision "$precision" 2>&1 | grep '^{'
  done
done
text=(train --engine gpu --data "$b/data/tinyshakespeare.txt" --format text --n-layer 6 --n-embd 384 --n-head 6
      --block-size 256 --batch-size 64 --lr 1e-3 --init gpt2 --dropout 0.2 --num-samples 0 --out "" --val-frac 0
      --precision tf32)
# attention on the tensor cores (the default in tf32), then the float32 tiled kernels
for attention in tensor tiled; do
  export MICROGPT_CUDA_ATTENTION=$attention
  t0=$(date +%s.%N)
  timeout 30 "$b/microgpt" "${text[@]}" --steps 20 > /dev/null 2>&1
  t1=$(date +%s.%N)
  timeout 40 "$b/microgpt" "${text[@]}" --steps 120 > "$out/text_$attention.log" 2>&1
  t2=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v k="$attention" \
    'BEGIN { printf "text 6x384 tf32, %s attention: %.2f ms/step\n", k, ((c - b) - (b - a)) * 10 }'
done
unset MICROGPT_CUDA_ATTENTION
timeout 60 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 600 \
  --launch-count 400 --csv "$b/microgpt" "${text[@]}" --steps 8 > "$out/profile_text_tf32.csv" 2> /dev/null
echo "ncu: exit $?"

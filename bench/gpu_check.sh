#!/usr/bin/env bash
# The GPU engine's checks and figures on a machine with an NVIDIA GPU, in one run: the
# device machine a session is sometimes lent has a GPU but no package registry, so the
# programs are built here and carried (`make gpu-bundle` puts them, names.txt,
# tinyshakespeare.txt and the PyTorch scripts into gpu-bundle/).
#
#   bench/gpu_check.sh [--full] [--budget SECONDS]   (from the repository root, beside gpu-bundle/)
#
# With the device tool: make gpu-bundle here, then run `bash bench/gpu_check.sh --full`
# there with gpu-bundle carried (it is ignored by git): about 8 minutes, 3 without --full.
#
# Writes gpu_check.log (everything), results.jsonl (one JSON line per figure) and the
# training logs into $OUT, or bench/out. Each step has its own time limit, and a step
# that would not end within --budget (default 520 s) from the start is skipped, so a
# run fits the device tool's limit. Most important first:
#   1. the GPU, the driver, whether the carried programs start;
#   2. the GPU tests: every kernel against the CPU's, the driver's device path, exact
#      resume, GPU->CPU->GPU checkpoints, a size the GPU cannot hold;
#   3. nanoGPT's Shakespeare recipe (6 x 384, block 256, batch 64, lr 1e-3 after 100 steps
#      of warm-up, dropout 0.2, weight decay 0.1): ms per step in tf32
#      and fp32 from runs of 20 and 120 steps; with --full, the whole 5000-step run in
#      tf32 with its wall time and its best and last validation loss (every 250 steps);
#   4. speed, side by side with PyTorch in the same run: 6 layers x 192 wide x 6 heads,
#      64 names a step (ours in fp32 and tf32, default and warp attention; PyTorch eager and
#      compiled with TF32); the default microgpt run on the GPU and on the CPU's cores; the
#      Shakespeare shape in PyTorch, eager and at its best (compiled, TF32:
#      bench/torch_text_best.py);
#   5. Nsight Compute's time per kernel for two steps of the Shakespeare shape; the tiled
#      product's tests; what tf32 does to the loss (500 steps each way); compute-sanitizer.
set -uo pipefail
bundle=gpu-bundle
out="${OUT:-bench/out}"
full=0
budget=520
while [ $# -gt 0 ]; do
  case $1 in
    --full) full=1 ;;
    --budget) budget=$2; shift ;;
    *) echo "usage: bench/gpu_check.sh [--full] [--budget SECONDS]"; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
log="$out/gpu_check.log"
results="$out/results.jsonl"
: > "$log"
: > "$results"
export LD_LIBRARY_PATH="$PWD/$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# cuBLAS, which the module loads by name: the toolkit's, or the one PyTorch's wheels carry
# (else the module multiplies with its own kernel, and says "cuda-tiled")
for dir in /usr/local/cuda/lib64 \
  "$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null)"; do
  if [ -n "$dir" ] && ls "$dir"/libcublas.so.* > /dev/null 2>&1; then
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$dir"
  fi
done
export MICROGPT_TEST_BINARY="$PWD/$bundle/microgpt"
export PYTHONUNBUFFERED=1
names="$bundle/data/names.txt"
book="$bundle/data/tinyshakespeare.txt"

say() { echo "== $*" | tee -a "$log"; }
# fits SECONDS: whether a step that may take that long still ends within the budget
fits() {
  if [ $((SECONDS + $1)) -le "$budget" ]; then return 0; fi
  say "skipped (needs $1 s, $((budget - SECONDS)) s of the budget left): the rest of this block"
  return 1
}
# step NAME SECONDS COMMAND...: runs it with a time limit, output to the log
step() {
  local name=$1 seconds=$2
  shift 2
  say "$name"
  local t0=$SECONDS
  timeout "$seconds" "$@" >> "$log" 2>&1
  local rc=$?
  say "$name: exit $rc in $((SECONDS - t0)) s"
  printf '{"step": "%s", "exit": %d, "seconds": %d}\n' "$name" "$rc" "$((SECONDS - t0))" >> "$results"
  return $rc
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# the last JSON line a command printed, tagged
json_of() { grep '^{' | tail -1 | sed "s/^{/{\"run\": \"$1\", /"; }

[ -x "$bundle/microgpt" ] || { echo "no $bundle/microgpt: run make gpu-bundle first" | tee -a "$log"; exit 2; }

# 1. the machine
step nvidia-smi 30 nvidia-smi
step programs-start 30 "$bundle/microgpt" --help
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
# which kernels the module chose (cuda-cublas or cuda-tiled), on a tiny run
step kernels-chosen 60 "$bundle/microgpt_bench" --data "$names" --engine gpu --steps 20 --warmup 2 --chunk 10

# 2. tests
step tests-kernels 120 "$bundle/fast_tests" --gtest_filter='Gpu/*:Backends/DevicePath.*'
step tests-engine 120 "$bundle/checkpoint_tests" --gtest_filter='GpuEngine.*:Engines/ExactResume.*gpu*'

# 3. nanoGPT's recipe: ms per step from two lengths (start-up cancels), then the whole run
text=(train --engine gpu --data "$book" --format text --n-layer 6 --n-embd 384 --n-head 6 --block-size 256
      --batch-size 64 --lr 1e-3 --warmup 100 --weight-decay 0.1 --init gpt2 --dropout 0.2 --num-samples 0 --out "")
for precision in tf32 fp32; do
  fits 90 || break
  say "nanoGPT's Shakespeare shape, 20 and 120 steps, $precision"
  t0=$(now)
  timeout 40 "$bundle/microgpt" "${text[@]}" --precision "$precision" --steps 20 --val-frac 0 >> "$log" 2>&1
  t1=$(now)
  timeout 50 "$bundle/microgpt" "${text[@]}" --precision "$precision" --steps 120 --val-frac 0 >> "$log" 2>&1
  t2=$(now)
  per_step=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.2f", ((c - b) - (b - a)) * 1000 / 100 }')
  [ "$precision" = tf32 ] && probe=$per_step
  printf '{"run": "text_6x384_%s", "ms_per_step": %s, "tokens_per_s": %s, "seconds_20_steps": %s}\n' "$precision" \
    "$per_step" "$(awk -v m="$per_step" 'BEGIN { printf "%.0f", 64 * 256 * 1000 / m }')" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" >> "$results"
done
if [ "$full" = 1 ] && [ -n "${probe:-}" ]; then
  # 5000 steps at the probe's pace, with five validations and the start-up
  need=$(awk -v m="$probe" 'BEGIN { printf "%d", 5000 * m / 1000 * 1.15 + 20 }')
  if fits "$need"; then
    say "nanoGPT's whole run: 5000 steps, tf32 (about $need s)"
    t0=$(now)
    timeout "$need" "$bundle/microgpt" "${text[@]}" --precision tf32 --steps 5000 --eval-every 250 \
      --log "$out/text_full.jsonl" >> "$log" 2>&1
    rc=$?
    seconds=$(since "$t0")
    # nanoGPT's 1.4697 is the best of its validations (every 250 steps; it keeps that checkpoint)
    vals=$(grep val_loss "$out/text_full.jsonl" 2> /dev/null | sed 's/.*"val_loss": *\([0-9.eE+-]*\).*/\1/')
    best=$(echo "$vals" | sort -g | head -1)
    last=$(echo "$vals" | tail -1)
    printf '{"run": "text_6x384_5000_steps_tf32", "exit": %d, "seconds": %s, "best_val_loss": %s, "last_val_loss": %s}\n' \
      "$rc" "$seconds" "${best:-null}" "${last:-null}" >> "$results"
  fi
fi

# 4. speed beside PyTorch
shape=(--n-layer 6 --n-embd 192 --n-head 6 --batch-size 64)
# the default attention (each document's length chooses its kernels), then the warp kernels for all
for attention in tensor warp; do
  for precision in fp32 tf32; do
    fits 40 || break 2
    say "microgpt 6x192, 64 names a step, gpu $precision, $attention attention"
    MICROGPT_CUDA_ATTENTION=$attention timeout 40 "$bundle/microgpt_bench" --data "$names" "${shape[@]}" --steps 300 \
      --engine gpu --precision "$precision" 2>&1 | tee -a "$log" \
      | json_of "microgpt_gpu_${precision}_6x192_${attention}" >> "$results"
  done
done
for engine in gpu fast; do
  fits 30 || break
  say "the default microgpt run (1000 steps of one name), $engine"
  t0=$(now)
  timeout 30 "$bundle/microgpt" train --engine "$engine" --num-samples 0 --out "" >> "$log" 2>&1
  printf '{"run": "default_%s", "seconds": %s}\n' "$engine" "$(since "$t0")" >> "$results"
done
if fits 60; then
  say "PyTorch 6x192 eager"
  timeout 60 python3 "$bundle/torch/torch_microgpt.py" --device cuda --input "$names" "${shape[@]}" --steps 300 \
    --warmup 50 2>&1 | tee -a "$log" | json_of "torch_6x192_eager" >> "$results"
fi
if fits 60; then
  say "PyTorch, the Shakespeare shape, 120 steps, eager fp32"
  timeout 60 python3 "$bundle/torch/torch_text.py" --device cuda --input "$book" --n-layer 6 --n-embd 384 --n-head 6 \
    --block-size 256 --batch-size 64 --steps 120 --warmup 20 --no-val 2>&1 | tee -a "$log" | json_of "torch_text_6x384_eager" >> "$results"
fi
if fits 150; then
  say "PyTorch, the Shakespeare shape, 150 steps, compiled, TF32"
  timeout 150 python3 "$bundle/torch/torch_text_best.py" "$bundle/torch/torch_text.py" --device cuda --input "$book" \
    --n-layer 6 --n-embd 384 --n-head 6 --block-size 256 --batch-size 64 --steps 150 --warmup 50 --no-val 2>&1 \
    | tee -a "$log" | json_of "torch_text_6x384_compile_tf32" >> "$results"
fi
if fits 120; then
  say "PyTorch 6x192 compiled, TF32 (padded to the block: one shape to compile)"
  timeout 120 python3 "$bundle/torch/torch_microgpt.py" --device cuda --input "$names" "${shape[@]}" --steps 300 \
    --warmup 50 --compile --tf32 --pad-to-block 2>&1 | tee -a "$log" | json_of "torch_6x192_compile_tf32" >> "$results"
fi

# 5. where the time goes, and the rest of the checks
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [ -n "$ncu" ] && fits 60; then
  say "Nsight Compute: the kernels of two steps of the Shakespeare shape, tf32"
  timeout 60 "$ncu" --clock-control none --metrics gpu__time_duration.sum --launch-skip 600 --launch-count 400 --csv \
    "$bundle/microgpt" "${text[@]}" --precision tf32 --steps 8 --val-frac 0 > "$out/profile_text_tf32.csv" 2>> "$log"
fi
fits 60 && MICROGPT_CUDA_GEMM=own step tests-kernels-tiled-gemm 60 "$bundle/fast_tests" \
  --gtest_filter='Gpu/KernelIsa.Matmul*:Backends/DevicePath.*/gpu'
# and on the text, where tf32 also puts attention on the tensor cores (the names' short
# documents keep it in float32): 300 steps of the Shakespeare shape, each way
for precision in fp32 tf32; do
  fits 60 || break
  say "what $precision does to the loss: the Shakespeare shape, 300 steps"
  timeout 60 "$bundle/microgpt" "${text[@]}" --precision "$precision" --steps 300 --eval-every 300 \
    --log "$out/text_$precision.jsonl" >> "$log" 2>&1
  grep val_loss "$out/text_$precision.jsonl" | tail -1 | sed "s/^{/{\"run\": \"val_text_$precision\", /" >> "$results"
done
for precision in fp32 tf32; do
  fits 60 || break
  say "what $precision does to the loss: 6x192, 500 steps"
  timeout 60 "$bundle/microgpt" train --engine gpu --precision "$precision" --data "$names" "${shape[@]}" --steps 500 \
    --lr 1e-3 --init gpt2 --val-frac 0.1 --eval-every 100 --num-samples 0 --out "" --log "$out/tf32_$precision.jsonl" \
    >> "$log" 2>&1
  grep val_loss "$out/tf32_$precision.jsonl" | tail -1 | sed "s/^{/{\"run\": \"val_6x192_$precision\", /" >> "$results"
done
if command -v compute-sanitizer > /dev/null && fits 60; then
  step memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 9 "$bundle/fast_tests" --gtest_filter='Gpu/*'
fi

say done
cat "$results"

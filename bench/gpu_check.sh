#!/usr/bin/env bash
# The GPU engine's checks and figures on a machine with an NVIDIA GPU, in one run: the
# device machine a session is sometimes lent has a GPU but no package registry, so the
# programs are built here and carried (`make gpu-bundle` puts them, names.txt,
# tinyshakespeare.txt and the PyTorch scripts of ../shared/bench into gpu-bundle/).
#
#   bench/gpu_check.sh [--full]      (from the repository root, beside gpu-bundle/)
#
# With the device tool: make gpu-bundle here, then run `bash bench/gpu_check.sh` there
# with gpu-bundle carried (it is ignored by git); about 5 minutes without --full.
#
# Writes gpu_check.log (everything) and results.jsonl (one JSON line per figure) into
# $OUT, or bench/out. Each step has its own time limit, so that one that hangs costs
# only its share. In order:
#   1. the GPU, the driver, whether the carried programs start;
#   2. the GPU tests: every kernel against the CPU's (with cuBLAS and with the module's
#      own tiled product), the driver's device path, exact resume, GPU->CPU->GPU
#      checkpoints, a size the GPU cannot hold;
#   3. speed, side by side with PyTorch in the same run: 6 layers x 192 wide x 6 heads,
#      64 names a step (ours in fp32 and tf32; PyTorch eager, compiled with TF32); what
#      tf32 does to the loss (500 steps each way, validation losses in tf32_*.jsonl); the
#      default microgpt run on the GPU and on the CPU's 16 cores; nanoGPT's Shakespeare
#      shape (6 x 384, block 256, batch 64) for 100 steps, fp32 and tf32;
#   4. with --full: nanoGPT's whole 5000-step run on tinyshakespeare.txt, with its
#      validation loss and wall time, if step 3 says it ends within 4 minutes.
set -uo pipefail
bundle=gpu-bundle
out="${OUT:-bench/out}"
full=0
[ "${1:-}" = "--full" ] && full=1
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
step tests-kernels 240 "$bundle/fast_tests" --gtest_filter='Gpu/*:Backends/DevicePath.*'
MICROGPT_CUDA_GEMM=own step tests-kernels-tiled-gemm 120 "$bundle/fast_tests" --gtest_filter='Gpu/KernelIsa.Matmul*:Backends/DevicePath.*/gpu'
step tests-engine 240 "$bundle/checkpoint_tests" --gtest_filter='GpuEngine.*:Engines/ExactResume.*gpu*'

# 3. speed
shape=(--n-layer 6 --n-embd 192 --n-head 6 --batch-size 64)
for precision in fp32 tf32; do
  say "microgpt 6x192, 64 names a step, gpu $precision"
  timeout 120 "$bundle/microgpt_bench" --data "$names" "${shape[@]}" --steps 200 --engine gpu --precision "$precision" \
    2>&1 | tee -a "$log" | json_of "microgpt_gpu_${precision}_6x192" >> "$results"
done
for precision in fp32 tf32; do
  say "what $precision does to the loss: 6x192, 500 steps"
  timeout 120 "$bundle/microgpt" train --engine gpu --precision "$precision" --data "$names" "${shape[@]}" --steps 500 \
    --lr 1e-3 --init gpt2 --val-frac 0.1 --eval-every 100 --num-samples 0 --out "" --log "$out/tf32_$precision.jsonl" \
    >> "$log" 2>&1
  grep val_loss "$out/tf32_$precision.jsonl" | tail -1 | sed "s/^{/{\"run\": \"val_6x192_$precision\", /" >> "$results"
done
for mode in "" "--compile --tf32"; do
  say "PyTorch 6x192 ${mode:-eager}"
  timeout 300 python3 "$bundle/torch/torch_microgpt.py" --device cuda --input "$names" "${shape[@]}" --steps 300 \
    --warmup 50 $mode 2>&1 | tee -a "$log" | json_of "torch_6x192_${mode:-eager}" >> "$results"
done
for engine in gpu fast; do
  say "the default microgpt run (1000 steps of one name), $engine"
  t0=$(now)
  timeout 120 "$bundle/microgpt" train --engine "$engine" --num-samples 0 --out "" >> "$log" 2>&1
  printf '{"run": "default_%s", "seconds": %s}\n' "$engine" "$(since "$t0")" >> "$results"
done
text=(train --engine gpu --data "$book" --format text --n-layer 6 --n-embd 384 --n-head 6 --block-size 256
      --batch-size 64 --lr 1e-3 --init gpt2 --dropout 0.2 --num-samples 0 --out "")
for precision in tf32 fp32; do
  say "nanoGPT's Shakespeare shape, 100 steps, $precision"
  t0=$(now)
  timeout 180 "$bundle/microgpt" "${text[@]}" --precision "$precision" --steps 100 --val-frac 0 >> "$log" 2>&1
  probe=$(since "$t0")
  printf '{"run": "text_6x384_100_steps_%s", "seconds": %s}\n' "$precision" "$probe" >> "$results"
done  # (probe: fp32's)
say "PyTorch, the same shape, 100 steps"
timeout 180 python3 "$bundle/torch/torch_text.py" --device cuda --input "$book" --n-layer 6 --n-embd 384 --n-head 6 \
  --block-size 256 --batch-size 64 --steps 100 --no-val 2>&1 | tee -a "$log" | json_of "torch_text_6x384" >> "$results"

# 4. the whole recipe
if [ "$full" = 1 ]; then
  if awk -v p="$probe" 'BEGIN { exit !(p * 50 < 240) }'; then
    say "nanoGPT's whole run: 5000 steps"
    t0=$(now)
    timeout 300 "$bundle/microgpt" "${text[@]}" --steps 5000 --eval-every 1000 --log "$out/text_full.jsonl" \
      >> "$log" 2>&1
    printf '{"run": "text_6x384_5000_steps", "seconds": %s}\n' "$(since "$t0")" >> "$results"
  else
    say "nanoGPT's whole run skipped: 100 steps took $probe s"
  fi
fi
say done

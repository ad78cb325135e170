// Speed of the fast engine's training step: ms/step, tokens/s, achieved GFLOP/s and peak
// memory for one configuration, on names.txt batches as `microgpt train` makes them.
//
//   build/microgpt_bench --data names.txt --preset makemore --steps 200
//   build/microgpt_bench --data names.txt --n-layer 6 --n-embd 192 --n-head 6 --batch-size 64 --threads 2
//   build/microgpt_bench --data names.txt --n-layer 6 --n-embd 192 --n-head 6 --batch-size 64 --engine gpu
//
// Steps run in chunks; the figure is the median chunk (this machine is shared, so
// single timings wander). Prints one line for people and one JSON line.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <numeric>

#include <CLI/CLI.hpp>

#include "core/python_random.h"
#include "data/dataset.h"
#include "fast/fast_model.h"
#include "fast/task_pool.h"
#include "train/presets.h"
#include "train/data_source.h"

using namespace microgpt;

int main(int argc, char** argv) {
  CLI::App app{"microgpt fast-engine benchmark"};
  std::string data_path, preset;
  ModelConfig model;
  TrainConfig train;
  int64_t steps = 200, warmup = 20, chunk = 20, threads = microgpt::available_cores();
  std::string engine = "fast", precision = "fp32";
  app.add_option("--data", data_path, "text file, one document per line (names.txt)")->required();
  app.add_option("--preset", preset);
  auto* o_layer = app.add_option("--n-layer", model.n_layer);
  auto* o_embd = app.add_option("--n-embd", model.n_embd);
  auto* o_head = app.add_option("--n-head", model.n_head);
  auto* o_block = app.add_option("--block-size", model.block_size);
  auto* o_batch = app.add_option("--batch-size", train.batch_size);
  auto* o_lr = app.add_option("--lr", train.lr);
  app.add_option("--steps", steps, "timed steps");
  app.add_option("--warmup", warmup, "untimed steps first");
  app.add_option("--chunk", chunk, "steps per timing chunk");
  app.add_option("--threads", threads);
  app.add_option("--engine", engine, "fast (the CPU kernels) or gpu (the CUDA module's; each step ends when the GPU has)")
      ->check(CLI::IsMember({"fast", "gpu"}));
  app.add_option("--precision", precision, "gpu: fp32 or tf32")->check(CLI::IsMember({"fp32", "tf32"}));
  CLI11_PARSE(app, argc, argv);
  if (!preset.empty()) {
    const Preset* p = find_preset(preset);
    if (!p) {
      std::cerr << "unknown preset " << preset << "\n";
      return 2;
    }
    if (!o_layer->count()) model.n_layer = p->n_layer;
    if (!o_embd->count()) model.n_embd = p->n_embd;
    if (!o_head->count()) model.n_head = p->n_head;
    if (!o_block->count()) model.block_size = p->block_size;
    if (!o_batch->count()) train.batch_size = p->batch_size;
    if (!o_lr->count()) train.lr = p->lr;
  }
  try {
    PyRandom rng(train.seed);
    DocumentSource source(load_dataset(data_path), rng, train, model.block_size);  // the batches train makes
    model.vocab_size = source.tokenizer().vocab_size();
    FastModel m(model, train, threads, train.batch_size, engine == "gpu" ? gpu_kernels(precision) : cpu_kernels());
    m.init_params(rng);
    const int64_t total = warmup + steps, B = train.batch_size;
    std::vector<double> chunk_ms;
    int64_t tokens = 0;
    double flops = 0;
    const double C = static_cast<double>(model.n_embd);
    const double linear = static_cast<double>(model.n_layer) * 12 * C * C + C * static_cast<double>(model.vocab_size);
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < total; s++) {
      const Batch& batch = source.batch(s);
      m.train_step(s, total, batch.docs);
      if (s >= warmup) {
        for (const DocRef& d : batch.docs) {
          const double T = static_cast<double>(std::min<int64_t>(model.block_size, static_cast<int64_t>(d.size()) - 1));
          tokens += static_cast<int64_t>(T);
          // forward: 2 flops per multiply-add; attention q.k and a.v over T(T+1)/2 pairs per layer
          const double fwd = 2 * T * linear + 2 * 2 * C * T * (T + 1) / 2 * static_cast<double>(model.n_layer);
          flops += 3 * fwd;  // backward is about twice the forward
        }
        if ((s - warmup + 1) % chunk == 0) {
          const auto t1 = std::chrono::steady_clock::now();
          chunk_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count() / static_cast<double>(chunk));
          t0 = t1;
        }
      } else if (s + 1 == warmup) {
        t0 = std::chrono::steady_clock::now();
      }
    }
    std::vector<double> sorted = chunk_ms;
    std::sort(sorted.begin(), sorted.end());
    const double ms = sorted[sorted.size() / 2];
    const double timed = static_cast<double>(chunk_ms.size() * static_cast<size_t>(chunk));
    const double tokens_per_step = static_cast<double>(tokens) / static_cast<double>(steps);
    const double flops_per_step = flops / static_cast<double>(steps);
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
#if defined(__APPLE__)
    const double peak_mb = static_cast<double>(ru.ru_maxrss) / (1024.0 * 1024.0);  // bytes on macOS
#else
    const double peak_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;  // kilobytes on Linux
#endif
    std::printf("n_layer %lld n_embd %lld n_head %lld block %lld batch %lld threads %lld kernels %s | params %lld\n",
                static_cast<long long>(model.n_layer), static_cast<long long>(model.n_embd),
                static_cast<long long>(model.n_head), static_cast<long long>(model.block_size),
                static_cast<long long>(B), static_cast<long long>(m.threads()), m.kernels().name.c_str(),
                static_cast<long long>(m.num_params()));
    std::printf("%.4f ms/step (median of %zu chunks of %lld; best %.4f) | %.0f tokens/s | %.1f GFLOP/s | peak %.1f MB\n",
                ms, chunk_ms.size(), static_cast<long long>(chunk), sorted.front(), tokens_per_step / ms * 1000.0,
                flops_per_step / ms / 1e6, peak_mb);
    std::printf("{\"ms_per_step\": %.4f, \"best_ms_per_step\": %.4f, \"tokens_per_s\": %.1f, \"gflops\": %.2f, "
                "\"peak_mb\": %.1f, \"params\": %lld, \"timed_steps\": %.0f}\n",
                ms, sorted.front(), tokens_per_step / ms * 1000.0, flops_per_step / ms / 1e6, peak_mb,
                static_cast<long long>(m.num_params()), timed);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

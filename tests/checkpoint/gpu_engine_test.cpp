// The gpu engine as a user meets it (issue 15): refused with one line where it cannot run;
// where a GPU is, a model too large for it refused cleanly, and its checkpoints continued
// on the CPU and back. (Its kernels: fast/kernels_test.cpp's Gpu cases; its driver:
// fast/device_path_test.cpp; exact resume on the GPU: resume_test.cpp's gpu cases.)
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint_test_support.h"
#include "core/error.h"
#include "test_support.h"
#include "train/engine.h"

namespace microgpt {
namespace {

using testing::TempDir;

// (a macro: GTEST_SKIP returns from the function it is written in)
#define MICROGPT_SKIP_WITHOUT_GPU()                                       \
  if (const std::string why = testing::gpu_unavailable(); !why.empty()) { \
    GTEST_SKIP() << "skipped: no GPU here (" << why << ")";               \
  }

// Where no NVIDIA driver is (CI), these tests and resume_test's gpu cases run on the
// kernels built over the CUDA emulation (tests/gpu/cuda_emulation.h): the program's
// whole gpu path, its kernels run on the CPU.
const bool kEmulatedGpu = [] {
#ifdef MICROGPT_CUDA_EMULATED_MODULE
  if (std::getenv("MICROGPT_CUDA_MODULE") == nullptr) {
    if (void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL); driver != nullptr) {
      dlclose(driver);
      return false;
    }
    setenv("MICROGPT_CUDA_MODULE", MICROGPT_CUDA_EMULATED_MODULE, 1);
    return true;
  }
#endif
  return false;
}();

// Runs microgpt with MICROGPT_CUDA_MODULE set to `module` (unset when empty).
testing::RunResult run_with_module(const std::string& args, const std::string& cwd, const char* module) {
  const char* was = std::getenv("MICROGPT_CUDA_MODULE");
  const std::string saved = was != nullptr ? was : "";
  if (module != nullptr) {
    setenv("MICROGPT_CUDA_MODULE", module, 1);
  } else {
    unsetenv("MICROGPT_CUDA_MODULE");
  }
  testing::RunResult r = testing::run_microgpt(args, cwd);
  if (was != nullptr) {
    setenv("MICROGPT_CUDA_MODULE", saved.c_str(), 1);
  } else {
    unsetenv("MICROGPT_CUDA_MODULE");
  }
  return r;
}

void expect_refused(const testing::RunResult& r, const std::string& fragment, const TempDir& dir) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("microgpt: error: --engine gpu: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(std::filesystem::exists(dir.file("model.safetensors")));
}

TEST(GpuEngine, WithoutAGpuSaysWhyInOneLine) {
  TempDir dir;
  const std::string args = "train --engine gpu --steps 2 --num-samples 0";
  expect_refused(run_with_module(args, dir.path(), "/nonexistent/libmicrogpt_cuda.so"), "would not load", dir);
  if (void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL); driver != nullptr) {
    dlclose(driver);
    GTEST_SKIP() << "skipped: an NVIDIA driver is here (the refusal without one is checked elsewhere)";
  }
  // the build's own module (or none): no driver, or no CUDA in this build
  const auto r = run_with_module(args, dir.path(), nullptr);
  expect_refused(r, r.err.find("without CUDA") != std::string::npos ? "without CUDA" : "no NVIDIA driver", dir);
}

// --precision tf32 is the gpu engine's, and needs cuBLAS (which the emulation lacks).
TEST(GpuEngine, Tf32IsTheGpuEnginesAndNeedsCublas) {
  TempDir dir;
  auto refused = [&](const std::string& args, const std::vector<std::string>& fragments) {
    const auto r = testing::run_microgpt(args, dir.path());
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    for (const std::string& f : fragments) EXPECT_NE(r.err.find(f), std::string::npos) << args << "\n" << r.err;
  };
  refused("train --precision tf32 --steps 2", {"--precision tf32", "gpu engine", "float32"});
  refused("train --engine reference --precision tf32 --steps 2", {"--precision tf32", "double"});
  refused("train --engine gpu --precision bf17 --steps 2", {"--precision"});
  if (kEmulatedGpu) refused("train --engine gpu --precision tf32 --steps 2", {"--engine gpu", "cuBLAS"});
}

TEST(GpuEngine, RefusesAModelTheGpuCannotHold) {
  MICROGPT_SKIP_WITHOUT_GPU();
  EngineOptions e;
  e.name = "gpu";
  ModelConfig m;
  m.vocab_size = 27;
  m.n_layer = 8;
  m.n_embd = 2048;
  m.n_head = 16;
  m.block_size = 2048;
  TrainConfig t;
  t.batch_size = 4096;  // activations of 8M rows: terabytes
  const Error err = testing::error_of([&] { make_engine(e, m, t); });
  EXPECT_EQ(err.exit_code(), 2) << err.what();
  EXPECT_NE(std::string(err.what()).find("out of device memory"), std::string::npos) << err.what();
}

std::vector<double> losses_of(const std::string& log) {
  std::vector<double> out;
  for (const nlohmann::json& j : testing::read_jsonl(log)) {
    if (j.contains("loss")) out.push_back(j.at("loss").get<double>());
    if (j.contains("val_loss")) out.push_back(j.at("val_loss").get<double>());
  }
  return out;
}

// Steps 1-20 on the GPU, 21-30 on the CPU, 31-40 on the GPU again follow one run on the
// GPU within float32 rounding, and the last checkpoint samples on the CPU.
TEST(GpuEngine, CheckpointsGoFromGpuToCpuAndBack) {
  MICROGPT_SKIP_WITHOUT_GPU();
  TempDir dir;
  testing::write_file(dir.file("names.txt"), testing::first_names(60));
  TrainOptions o = testing::tiny_run("gpu");
  o.data_path = dir.file("names.txt");
  o.train.steps = 40;
  o.train.batch_size = 4;
  o.train.val_frac = 0.1;
  o.train.eval_every = 10;

  TrainOptions whole = o;
  whole.out_path = dir.file("whole.safetensors");
  whole.log_path = dir.file("whole.jsonl");
  testing::train(whole);

  TrainOptions gpu1 = o;
  gpu1.out_path = dir.file("split.safetensors");
  gpu1.log_path = dir.file("split.jsonl");
  gpu1.stop_after = 20;
  testing::train(gpu1);
  EXPECT_EQ(testing::checkpoint_meta(dir.file("split.safetensors"), "engine"), "gpu");

  auto resume = [&](const std::string& engine, int64_t stop_after) {
    TrainOptions r;
    r.data_path = o.data_path;
    r.resume_path = dir.file("split.safetensors");
    r.out_path = dir.file("split.safetensors");
    r.log_path = dir.file("split.jsonl");
    r.engine.name = engine;
    r.engine_given = true;
    r.engine.threads = 2;
    r.threads_given = true;
    r.stop_after = stop_after;
    testing::train(r);
    EXPECT_EQ(testing::checkpoint_meta(dir.file("split.safetensors"), "engine"), engine);
  };
  resume("fast", 30);
  resume("gpu", 0);

  const std::vector<double> split = losses_of(dir.file("split.jsonl")), want = losses_of(dir.file("whole.jsonl"));
  ASSERT_EQ(split.size(), want.size());
  ASSERT_EQ(want.size(), 40u + 4u);
  for (size_t i = 0; i < want.size(); i++) EXPECT_NEAR(split[i], want[i], 1e-3 * want[i]) << "entry " << i;

  // sample runs a gpu checkpoint on the CPU
  const auto r = testing::run_microgpt("sample --model split.safetensors --num-samples 3 --threads 1", dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(testing::count_occurrences(r.out, "sample "), 3u) << r.out;
}

}  // namespace
}  // namespace microgpt

// The fast engine's matmul kernels against OpenBLAS's sgemm (one thread each) on the shapes
// of the large, makemore-sized and default models: forward and both backward products.
// It decided that no BLAS is linked into microgpt (see README, Speed). Built only when
// Debian's libopenblas-dev is installed; never a dependency of the program.
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <vector>
#include "fast/kernels.h"
extern "C" void openblas_set_num_threads(int);
using namespace microgpt;
int main() {
  openblas_set_num_threads(1);
  const Kernels& k = cpu_kernels();
  struct Shape { const char* name; int64_t N, C, OC; } shapes[] = {
    {"qkv", 240, 192, 576}, {"wo", 240, 192, 192}, {"fc1", 240, 192, 768}, {"fc2", 240, 768, 192}, {"lm_head", 240, 192, 27},
    {"mm-qkv", 128, 64, 192}, {"mm-wo", 128, 64, 64}, {"mm-fc1", 128, 64, 256}, {"mm-fc2", 128, 256, 64}, {"mm-lm", 128, 64, 27}, {"tiny-qkv", 7, 16, 48}, {"tiny-fc2", 7, 64, 16},
    // text: 6 layers 384 wide, block 256, batch 16 on two threads (2048 rows each)
    {"t-qkv", 2048, 384, 1152}, {"t-wo", 2048, 384, 384}, {"t-fc1", 2048, 384, 1536}, {"t-fc2", 2048, 1536, 384}, {"t-lm", 2048, 384, 65},
    // text: nanoGPT's CPU recipe shape, 128 wide, block 64, batch 12 (384 rows a thread)
    {"n-qkv", 384, 128, 384}, {"n-fc1", 384, 128, 512}, {"n-fc2", 384, 512, 128}};
  double ours_total = 0, blas_total = 0;
  for (auto s : shapes) {
    std::vector<float> inp(s.N * s.C, 0.01f), w(s.OC * s.C, 0.02f), out(s.N * s.OC), dout(s.N * s.OC, 0.03f),
        dinp(s.N * s.C), dw(s.OC * s.C), scratch(s.OC * s.C + 64);
    auto time = [](auto f) {
      f();
      double best = 1e9;
      for (int r = 0; r < 7; r++) {
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 20; i++) f();
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 20);
      }
      return best;
    };
    const double ours = time([&] {
      k.matmul_forward(out.data(), inp.data(), w.data(), s.N, s.C, s.OC, scratch.data());
      k.matmul_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), s.N, s.C, s.OC);
    });
    const double blas = time([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.N, s.OC, s.C, 1, inp.data(), s.C, w.data(), s.C, 0, out.data(), s.OC);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.N, s.C, s.OC, 1, dout.data(), s.OC, w.data(), s.C, 1, dinp.data(), s.C);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s.OC, s.C, s.N, 1, dout.data(), s.OC, inp.data(), s.C, 1, dw.data(), s.C);
    });
    const double gflop = 3 * 2.0 * s.N * s.C * s.OC / 1e9;
    std::printf("%-8s N %3lld C %3lld OC %3lld | ours %.3f ms (%.1f GFLOP/s) | openblas %.3f ms (%.1f GFLOP/s)\n", s.name,
                (long long)s.N, (long long)s.C, (long long)s.OC, ours, gflop / ours * 1e3, blas, gflop / blas * 1e3);
    ours_total += ours; blas_total += blas;
  }
  std::printf("one layer's products + lm_head: ours %.3f ms, openblas %.3f ms\n", ours_total, blas_total);
}

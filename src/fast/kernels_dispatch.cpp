// Picks the CPU kernels for this processor, among the sets this build compiled: which
// ones is decided by the target architecture (src/CMakeLists.txt), so each name below
// exists only where its instructions do.
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "fast/kernels.h"

namespace microgpt {

namespace {

struct KernelSet {
  const char* name;
  const Kernels& (*kernels)();
  bool (*runs_here)();
};

bool always() { return true; }

}  // namespace

#if defined(__x86_64__) || defined(__i386__)
namespace cpu_avx512 { const Kernels& kernels(); }
namespace cpu_avx2 { const Kernels& kernels(); }
namespace cpu_generic { const Kernels& kernels(); }
namespace {
bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
const KernelSet kSets[] = {{"avx512", &cpu_avx512::kernels, &has_avx512},
                           {"avx2", &cpu_avx2::kernels, &has_avx2},
                           {"generic", &cpu_generic::kernels, &always}};
}  // namespace
#elif defined(__aarch64__)
namespace cpu_neon { const Kernels& kernels(); }
namespace cpu_generic { const Kernels& kernels(); }
namespace {
// Advanced SIMD is part of AArch64: every such processor has it.
const KernelSet kSets[] = {{"neon", &cpu_neon::kernels, &always}, {"generic", &cpu_generic::kernels, &always}};
}  // namespace
#else
namespace cpu_generic { const Kernels& kernels(); }
namespace {
const KernelSet kSets[] = {{"generic", &cpu_generic::kernels, &always}};
}  // namespace
#endif

const std::vector<std::string>& cpu_kernel_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const KernelSet& k : kSets) out.push_back(k.name);
    return out;
  }();
  return names;
}

const Kernels* cpu_kernels_named(const std::string& isa) {
  for (const KernelSet& k : kSets) {
    if (isa == k.name) return k.runs_here() ? &k.kernels() : nullptr;
  }
  return nullptr;
}

const Kernels& cpu_kernels() {
  static const Kernels* chosen = [] {
    if (const char* forced = std::getenv("MICROGPT_KERNELS")) {
      const std::string name = forced;
      std::string names;
      for (const std::string& n : cpu_kernel_names()) names += (names.empty() ? "" : ", ") + n;
      bool known = false;
      for (const std::string& n : cpu_kernel_names()) known = known || n == name;
      if (!known) throw Error("MICROGPT_KERNELS=" + name + ": unknown kernels (accepted: " + names + ")");
      const Kernels* k = cpu_kernels_named(name);
      if (!k) throw Error("MICROGPT_KERNELS=" + name + ": this CPU lacks the instructions they need (accepted here: " + names + ")");
      return k;
    }
    for (const KernelSet& k : kSets) {
      if (k.runs_here()) return &k.kernels();
    }
    return &kSets[0].kernels();  // unreachable: the plain set runs everywhere
  }();
  return *chosen;
}

}  // namespace microgpt

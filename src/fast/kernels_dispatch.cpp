// Picks the CPU kernels for this processor.
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "fast/kernels.h"

namespace microgpt {
namespace cpu_avx512 { const Kernels& kernels(); }
namespace cpu_avx2 { const Kernels& kernels(); }
namespace cpu_generic { const Kernels& kernels(); }

const Kernels* cpu_kernels_named(const std::string& isa) {
  __builtin_cpu_init();
  if (isa == "avx512") {
    const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    return ok ? &cpu_avx512::kernels() : nullptr;
  }
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &cpu_avx2::kernels() : nullptr;
  if (isa == "generic") return &cpu_generic::kernels();
  return nullptr;
}

const Kernels& cpu_kernels() {
  static const Kernels* chosen = [] {
    if (const char* forced = std::getenv("MICROGPT_KERNELS")) {
      const std::string name = forced;
      if (name != "avx512" && name != "avx2" && name != "generic") {
        throw Error("MICROGPT_KERNELS=" + name + ": unknown kernels (accepted: avx512, avx2, generic)");
      }
      const Kernels* k = cpu_kernels_named(name);
      if (!k) throw Error("MICROGPT_KERNELS=" + name + ": this CPU lacks the instructions they need (try avx2 or generic)");
      return k;
    }
    for (const char* isa : {"avx512", "avx2"}) {
      if (const Kernels* k = cpu_kernels_named(isa)) return k;
    }
    return &cpu_generic::kernels();
  }();
  return *chosen;
}

}  // namespace microgpt

// --engine gpu: the kernel table of the CUDA module (fast/cuda_module.h). The module is
// loaded only here, on first use, so that a build with the CUDA toolkit runs everywhere
// and a CPU run never loads CUDA's libraries.
#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/files.h"
#include "fast/cuda_module.h"
#include "fast/kernels.h"

namespace microgpt {

namespace {

Error no_gpu(const std::string& why) { return usage_error("--engine gpu: " + why); }

struct Module {
  decltype(&microgpt_cuda_kernels) kernels = nullptr;
  decltype(&microgpt_cuda_device) device = nullptr;
};

Module load_module(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) throw no_gpu("the CUDA module would not load (" + std::string(dlerror()) + ")");
  Module m;
  m.kernels = reinterpret_cast<decltype(m.kernels)>(dlsym(handle, "microgpt_cuda_kernels"));
  m.device = reinterpret_cast<decltype(m.device)>(dlsym(handle, "microgpt_cuda_device"));
  if (m.kernels == nullptr || m.device == nullptr) throw no_gpu("the CUDA module '" + path + "' is not this program's");
  return m;
}

// The module beside the executable, or the one MICROGPT_CUDA_MODULE names (a module
// built elsewhere; the tests' build of the kernels on a CPU emulation of CUDA).
Module find_module() {
  if (const char* named = std::getenv("MICROGPT_CUDA_MODULE"); named != nullptr && *named != '\0') {
    return load_module(named);
  }
#ifndef MICROGPT_CUDA_MODULE
  throw no_gpu("this microgpt was built without CUDA (CMake found no CUDA toolkit; the README says how to add it)");
#else
  const std::string path = beside_executable(MICROGPT_CUDA_MODULE);
  if (path.empty()) throw no_gpu("this program cannot tell where its own file is, to find its CUDA module");
  return load_module(path);
#endif
}

const Module& module() {
  static const Module m = find_module();
  return m;
}

}  // namespace

const Kernels& gpu_kernels(const std::string& precision) {
  const Module& m = module();
  const Kernels* k = nullptr;
  char why[512] = {};
  if (m.kernels(&k, precision.c_str(), why, sizeof why) != 0) throw no_gpu(why);
  return *k;
}

GpuDevice gpu_device() {
  const Module& m = module();
  GpuDevice d;
  char name[256] = {}, why[512] = {};
  if (m.device(name, sizeof name, &d.free_bytes, &d.total_bytes, why, sizeof why) != 0) throw no_gpu(why);
  d.name = name;
  return d;
}

}  // namespace microgpt

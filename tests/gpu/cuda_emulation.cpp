// The CPU side of cuda_emulation.h: fibers with their own stacks, switched by a few
// instructions of x86-64 assembly (a system call per switch, as swapcontext makes, would
// make the tests slow), a round-robin scheduler per block, and barriers that count the
// threads still running.
#include "cuda_emulation.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#if !defined(__x86_64__)
#error "the CUDA emulation switches fibers with x86-64 instructions"
#endif

// switch_fiber(save, next): saves the callee-saved registers and the stack pointer of
// the running fiber in *save and resumes the one whose stack pointer is `next`.
extern "C" void microgpt_emu_switch(void** save, void* next);
asm(R"(
.text
.globl microgpt_emu_switch
.type microgpt_emu_switch,@function
microgpt_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size microgpt_emu_switch, .-microgpt_emu_switch
.section .note.GNU-stack,"",@progbits
)");

namespace microgpt::emu {

namespace {

constexpr size_t kStackBytes = 64 * 1024;
constexpr int kWarp = 32;

struct Fiber {
  void* sp = nullptr;
  std::unique_ptr<char[]> stack;
  dim3 tid;
  int warp = 0, lane = 0;
  bool done = false;
  // waiting at a barrier: which (block or warp) and for which generation to pass
  enum class Wait { none, block, warp } wait = Wait::none;
  uint64_t wait_generation = 0;
};

struct Block {
  std::vector<Fiber> fibers;  // kept between launches for their stacks
  int64_t count = 0;          // fibers in this block
  int64_t current = -1;
  void* scheduler_sp = nullptr;
  const std::function<void()>* body = nullptr;
  dim3 block_idx, block_dim, grid_dim;
  std::vector<char> shared;
  // barriers: arrivals, threads still running, generation
  int64_t block_arrived = 0, block_alive = 0;
  uint64_t block_generation = 0;
  std::vector<int64_t> warp_arrived, warp_alive;
  std::vector<uint64_t> warp_generation;
  std::vector<float> slots;  // a warp's shuffle values, kWarp per warp
};

thread_local Block g;

Fiber& me() { return g.fibers[static_cast<size_t>(g.current)]; }

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "CUDA emulation: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

void yield() { microgpt_emu_switch(&me().sp, g.scheduler_sp); }

// The last of the running threads to arrive opens the barrier for the others.
void open_block_if_full() {
  if (g.block_arrived > 0 && g.block_arrived == g.block_alive) {
    g.block_arrived = 0;
    g.block_generation++;
  }
}
void open_warp_if_full(int w) {
  const auto i = static_cast<size_t>(w);
  if (g.warp_arrived[i] > 0 && g.warp_arrived[i] == g.warp_alive[i]) {
    g.warp_arrived[i] = 0;
    g.warp_generation[i]++;
  }
}

[[noreturn]] void fiber_main() {
  (*g.body)();
  Fiber& f = me();
  f.done = true;
  g.block_alive--;
  g.warp_alive[static_cast<size_t>(f.warp)]--;
  open_block_if_full();
  open_warp_if_full(f.warp);
  microgpt_emu_switch(&f.sp, g.scheduler_sp);
  die("a finished thread was resumed");
}

bool runnable(const Fiber& f) {
  if (f.done) return false;
  switch (f.wait) {
    case Fiber::Wait::none:
      return true;
    case Fiber::Wait::block:
      return g.block_generation > f.wait_generation;
    case Fiber::Wait::warp:
      return g.warp_generation[static_cast<size_t>(f.warp)] > f.wait_generation;
  }
  return false;
}

void run_block() {
  const int64_t threads = g.count;
  const int64_t warps = (threads + kWarp - 1) / kWarp;
  g.block_arrived = 0;
  g.block_alive = threads;
  g.warp_arrived.assign(static_cast<size_t>(warps), 0);
  g.warp_alive.assign(static_cast<size_t>(warps), 0);
  g.warp_generation.assign(static_cast<size_t>(warps), 0);
  g.slots.assign(static_cast<size_t>(warps * kWarp), 0.0f);
  std::fill(g.shared.begin(), g.shared.end(), static_cast<char>(0xFF));  // NaN until written
  for (int64_t t = 0; t < threads; t++) {
    Fiber& f = g.fibers[static_cast<size_t>(t)];
    if (!f.stack) f.stack.reset(new char[kStackBytes]);  // (not zeroed: pages are touched as used)
    f.tid = dim3(static_cast<unsigned>(t % g.block_dim.x), static_cast<unsigned>(t / g.block_dim.x % g.block_dim.y),
                 static_cast<unsigned>(t / (g.block_dim.x * g.block_dim.y)));
    f.warp = static_cast<int>(t / kWarp);
    f.lane = static_cast<int>(t % kWarp);
    f.done = false;
    f.wait = Fiber::Wait::none;
    g.warp_alive[static_cast<size_t>(f.warp)]++;
    // A fresh stack: six zeroed registers, then fiber_main as the return address, on a
    // 16-byte boundary so that fiber_main starts as if called.
    auto top = reinterpret_cast<uintptr_t>(f.stack.get() + kStackBytes) & ~uintptr_t{15};
    auto* slot = reinterpret_cast<void**>(top - 16);
    slot[0] = reinterpret_cast<void*>(&fiber_main);
    slot[1] = nullptr;
    for (int r = 1; r <= 6; r++) slot[-r] = nullptr;
    f.sp = slot - 6;
  }
  int64_t finished = 0;
  while (finished < threads) {
    bool progressed = false;
    for (int64_t t = 0; t < threads; t++) {
      Fiber& f = g.fibers[static_cast<size_t>(t)];
      if (!runnable(f)) continue;
      f.wait = Fiber::Wait::none;
      g.current = t;
      microgpt_emu_switch(&g.scheduler_sp, f.sp);
      g.current = -1;
      progressed = true;
      if (f.done) finished++;
    }
    if (!progressed) die("the threads of a block wait for each other at different barriers (a deadlock on a GPU)");
  }
}

}  // namespace

const dim3& thread_idx() { return me().tid; }
const dim3& block_idx() { return g.block_idx; }
const dim3& block_dim() { return g.block_dim; }
const dim3& grid_dim() { return g.grid_dim; }
void* dynamic_shared() { return g.shared.data(); }

void sync_block() {
  Fiber& f = me();
  f.wait = Fiber::Wait::block;
  f.wait_generation = g.block_generation;
  g.block_arrived++;
  open_block_if_full();
  yield();
}

void sync_warp() {
  Fiber& f = me();
  f.wait = Fiber::Wait::warp;
  f.wait_generation = g.warp_generation[static_cast<size_t>(f.warp)];
  g.warp_arrived[static_cast<size_t>(f.warp)]++;
  open_warp_if_full(f.warp);
  yield();
}

float shuffle(float v, int src_lane) {
  const Fiber& f = me();
  float* slots = g.slots.data() + f.warp * kWarp;
  slots[f.lane] = v;
  sync_warp();
  const float got = slots[src_lane & (kWarp - 1)];
  sync_warp();
  return got;
}

float shuffle_xor(float v, int lane_mask) { return shuffle(v, me().lane ^ lane_mask); }

void launch(dim3 grid, dim3 block, size_t shared, const std::function<void()>& body) {
  if (g.current >= 0) die("a kernel launched from inside a kernel");
  const int64_t threads = int64_t{block.x} * block.y * block.z;
  if (threads < 1 || threads > 1024) die("a block of 1 to 1024 threads is needed");
  if (shared > 48 * 1024) die("more than 48 KiB of dynamic shared memory");
  if (static_cast<int64_t>(g.fibers.size()) < threads) g.fibers.resize(static_cast<size_t>(threads));
  g.count = threads;
  g.body = &body;
  g.block_dim = block;
  g.grid_dim = grid;
  g.shared.assign(shared, 0);
  for (unsigned z = 0; z < grid.z; z++) {
    for (unsigned y = 0; y < grid.y; y++) {
      for (unsigned x = 0; x < grid.x; x++) {
        g.block_idx = dim3(x, y, z);
        run_block();
      }
    }
  }
  g.body = nullptr;
}

}  // namespace microgpt::emu

// ---- the runtime API ----

namespace {
cudaError_t g_last = cudaSuccess;
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    default:
      return "emulated CUDA error";
  }
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last;
  g_last = cudaSuccess;
  return e;
}
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (bytes > (size_t{1} << 40)) return cudaErrorMemoryAllocation;
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (*p == nullptr) return cudaErrorMemoryAllocation;
  std::memset(*p, 0xFF, bytes);  // NaN until written
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* to, const void* from, size_t bytes, cudaMemcpyKind) {
  std::memmove(to, from, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* to, const void* from, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(to, from, bytes, kind);
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  std::snprintf(prop->name, sizeof prop->name, "%s", "CUDA emulated on the CPU");
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = *total_bytes = size_t{1} << 34;
  return cudaSuccess;
}

namespace nvcuda::wmma {
void check_tile(const void* p, unsigned ldm, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || ldm % 4 != 0) {
    std::fprintf(stderr, "emulated CUDA: %s needs a pointer aligned to 32 bytes and ldm a multiple of 4 (%p, %u)\n",
                 what, p, ldm);
    std::abort();
  }
}
}  // namespace nvcuda::wmma

#include "fast/task_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

#include "core/error.h"

namespace microgpt {

namespace {

// Denormal floats flushed to zero while the fast engine runs: a moment of Adam that decays
// towards zero would otherwise make every operation on it a hundred times slower. The
// caller's mode is restored afterwards (the reference engine must keep IEEE behaviour).
class FlushDenormals {
 public:
#if defined(__x86_64__) || defined(__i386__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // MXCSR's FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved_); }
#elif defined(__aarch64__)
  FlushDenormals() : saved_(fpcr()) { set_fpcr(saved_ | (uint64_t{1} << 24)); }  // FPCR's FZ
  ~FlushDenormals() { set_fpcr(saved_); }
#else
  FlushDenormals() = default;  // elsewhere denormals keep their IEEE meaning (and cost)
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
#if defined(__aarch64__)
  static uint64_t fpcr() {
    uint64_t v;
    asm volatile("mrs %0, fpcr" : "=r"(v));
    return v;
  }
  static void set_fpcr(uint64_t v) { asm volatile("msr fpcr, %0" : : "r"(v)); }
#endif
  [[maybe_unused]] uint64_t saved_ = 0;
};

void pause() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long a thread spins before it sleeps: longer than the engine's usual gaps between
// jobs within a step (so that a step does not wait for threads to wake), far shorter
// than an operating system's time slice (so that a core is soon given up to whatever is
// held up when another program takes the one a task runs on).
constexpr std::chrono::microseconds kSpin{100};

// Spins until done() or kSpin has passed; whether done().
template <class Done>
bool spin_until(Done&& done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (done()) return true;
      pause();
    }
    if (std::chrono::steady_clock::now() >= until) return done();
  }
}

constexpr uint64_t pack(uint32_t job, int64_t tasks, int64_t next) {
  return uint64_t{job} << 32 | static_cast<uint64_t>(tasks) << 16 | static_cast<uint64_t>(next);
}

}  // namespace

int64_t available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

TaskPool::TaskPool(int64_t threads) {
  if (threads > 0xffff) throw Error("too many threads (at most 65535)");
  for (int64_t t = 1; t < threads; t++) workers_.emplace_back([this] { work(); });
}

TaskPool::~TaskPool() {
  {
    std::lock_guard<std::mutex> lock(sleep_);
    stop_.store(true);
    job_.fetch_add(1);
  }
  new_job_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void TaskPool::run(int64_t n, const std::function<void(int64_t)>& task) {
  FlushDenormals flush;
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; i++) task(i);
    return;
  }
  if (n > 0xffff) throw Error("too many tasks in one job (at most 65535)");
  const uint32_t job = job_.load(std::memory_order_relaxed) + 1;
  task_ = &task;
  done_.store(0, std::memory_order_relaxed);
  ticket_.store(pack(job, n, 0), std::memory_order_release);
  job_.store(job);
  if (sleepers_.load() > 0) wake(new_job_);
  take_tasks(job);
  // Every task is taken; wait for those that others are still running.
  if (!spin_until([&] { return done_.load(std::memory_order_acquire) == static_cast<uint32_t>(n); })) {
    std::unique_lock<std::mutex> lock(sleep_);
    caller_sleeps_.store(true);
    all_done_.wait(lock, [&] { return done_.load() == static_cast<uint32_t>(n); });
    caller_sleeps_.store(false);
  }
  if (failed_) {  // (every task has ended: nothing else reads or writes it now)
    std::exception_ptr e = std::exchange(failed_, nullptr);
    std::rethrow_exception(e);
  }
}

// A sleeper checks what it waits for while it holds the lock, after saying that it sleeps;
// whoever changes that, and then sees a sleeper, takes the lock before waking it, so the
// change comes either before the check or before the wait.
void TaskPool::wake(std::condition_variable& sleepers) {
  { std::lock_guard<std::mutex> lock(sleep_); }
  sleepers.notify_all();
}

void TaskPool::take_tasks(uint32_t job) {
  for (;;) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    int64_t next = 0;
    for (;;) {
      const int64_t tasks = static_cast<int64_t>(t >> 16 & 0xffff);
      next = static_cast<int64_t>(t & 0xffff);
      if (static_cast<uint32_t>(t >> 32) != job || next >= tasks) return;
      if (ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) break;
    }
    // Taking a task of `job` proves that job is still being run: its task is read now.
    // A task that throws ends as if it had returned, and the caller throws it again.
    try {
      (*task_)(next);
    } catch (...) {
      std::lock_guard<std::mutex> lock(sleep_);
      if (!failed_) failed_ = std::current_exception();
    }
    if (done_.fetch_add(1) + 1 == static_cast<uint32_t>(t >> 16 & 0xffff) && caller_sleeps_.load()) {
      wake(all_done_);
    }
  }
}

void TaskPool::work() {
  FlushDenormals flush;  // for the thread's life
  uint32_t seen = 0;     // the job counter when the pool was made (this thread may start late)
  for (;;) {
    const auto new_job = [&] { return job_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(new_job)) {
      std::unique_lock<std::mutex> lock(sleep_);
      sleepers_.fetch_add(1);
      new_job_.wait(lock, [&] { return job_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    // The job is read before stop_: the destructor sets stop_ and then counts a job, so
    // a thread that read stop_ first could miss it and take the destructor's count for
    // the job it woke for, then wait for another job forever (a pool dropped just after
    // a job; seen under emulation, where a thread can stop between two reads).
    seen = job_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    take_tasks(seen);
  }
}

}  // namespace microgpt

#pragma once
// The fast engine's threads: a job's tasks 0..n-1, each run once, by whichever thread of
// the pool is free to take the next one. What a task computes depends on its number
// alone (the engine gives each task its own gradient buffer), so the results are the same
// bits whichever thread runs which task.
//
// Why not OpenMP's parallel regions: there every thread waits for every other at the end
// of a region, and a thread whose core is taken by another program (a browser watching
// the run, say) holds them all back. Here the caller takes part and returns as soon as
// every task is done: a task that no thread has started yet is taken by the first thread
// that is free, including the caller. And a thread that waits longer than a short spin
// sleeps, so that the operating system can give its core to whatever was held up.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace microgpt {

// The cores this process may run on (its CPU affinity where the system has one), at
// least 1: the engines' default thread count.
int64_t available_cores();

class TaskPool {
 public:
  // threads: how many run a job at most, the caller included (threads - 1 are started).
  explicit TaskPool(int64_t threads);
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  int64_t threads() const { return static_cast<int64_t>(workers_.size()) + 1; }

  // task(i) for i = 0..n-1, with denormal floats flushed to zero; returns when all have
  // run, or throws the first exception one threw once all have ended. One job at a time
  // (the engine's driver calls it from one thread).
  void run(int64_t n, const std::function<void(int64_t)>& task);

 private:
  void work();
  void take_tasks(uint32_t job);
  void wake(std::condition_variable& sleepers);

  std::vector<std::thread> workers_;
  // The job being run and its next task, in one word so that a task is taken only while
  // its job is the current one: job (32 bits) | tasks (16) | next (16).
  std::atomic<uint64_t> ticket_{0};
  std::atomic<uint32_t> job_{0};   // what the workers wait on for a new job
  std::atomic<uint32_t> done_{0};  // tasks of the current job finished
  std::atomic<bool> stop_{false};
  // Sleeping, after a spin: workers until a new job, the caller until every task is done.
  std::mutex sleep_;
  std::condition_variable new_job_, all_done_;
  std::atomic<int32_t> sleepers_{0};
  std::atomic<bool> caller_sleeps_{false};
  const std::function<void(int64_t)>* task_ = nullptr;
  std::exception_ptr failed_;  // the first exception a task of the current job threw
};

}  // namespace microgpt

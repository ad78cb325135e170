// The fast engine's thread pool: every task of every job runs once, the caller returns
// only when all have, a task no thread has started is taken by one that is free, and the
// float mode the kernels need holds on every thread.
#include "fast/task_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace microgpt {
namespace {

TEST(TaskPool, EveryTaskOfEveryJobRunsOnce) {
  for (int64_t threads : {1, 2, 3, 5}) {
    TaskPool pool(threads);
    EXPECT_EQ(pool.threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1000}) {
      for (int job = 0; job < 50; job++) {
        std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
        pool.run(n, [&](int64_t i) { runs[static_cast<size_t>(i)].fetch_add(1); });
        // (read as soon as run returns: every task has finished by then)
        for (int64_t i = 0; i < n; i++) {
          ASSERT_EQ(runs[static_cast<size_t>(i)].load(), 1) << threads << " threads, " << n << " tasks, task " << i;
        }
      }
    }
  }
}

TEST(TaskPool, APoolMadeAndDroppedAtOnceEnds) {
  // Its threads may not have started when it is dropped (a command that never needs
  // them): they must still end, and the destructor return.
  for (int i = 0; i < 200; i++) TaskPool pool(4);
  for (int i = 0; i < 50; i++) {
    TaskPool pool(3);
    pool.run(2, [](int64_t) {});
  }
}

TEST(TaskPool, TheTasksOfAThreadHeldUpAreTakenByAnother) {
  // Task 0 cannot finish until every other task has: so whichever thread runs it, another
  // must run all the rest. (With a fixed share per thread, as OpenMP's static schedule
  // gives, the thread running task 0 would hold tasks of its own share, and this would
  // never end: the wait gives up after a minute and fails.)
  TaskPool pool(2);
  for (int job = 0; job < 20; job++) {
    constexpr int64_t n = 9;
    std::atomic<int64_t> others_done{0};
    std::vector<std::thread::id> ran_on(n);
    bool gave_up = false;
    pool.run(n, [&](int64_t i) {
      ran_on[static_cast<size_t>(i)] = std::this_thread::get_id();
      if (i != 0) {
        others_done.fetch_add(1);
        return;
      }
      const auto until = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      while (others_done.load() < n - 1) {
        if (std::chrono::steady_clock::now() > until) {
          gave_up = true;
          return;
        }
        std::this_thread::yield();
      }
    });
    ASSERT_FALSE(gave_up);
    for (int64_t i = 1; i < n; i++) EXPECT_NE(ran_on[static_cast<size_t>(i)], ran_on[0]) << "task " << i;
  }
}

#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
// x * 1 for a denormal x, computed where the compiler cannot fold it.
float times_one(float x) {
  volatile float one = 1.0f;
  return x * one;
}

TEST(TaskPool, TasksFlushDenormalsToZeroAndTheCallerKeepsItsMode) {
  const float denormal = 1e-40f;
  ASSERT_NE(times_one(denormal), 0.0f);  // IEEE behaviour here, outside the pool
  TaskPool pool(3);
  for (int job = 0; job < 20; job++) {
    std::vector<float> seen(12, -1.0f);
    pool.run(12, [&](int64_t i) { seen[static_cast<size_t>(i)] = times_one(denormal); });
    for (float s : seen) EXPECT_EQ(s, 0.0f);
  }
  EXPECT_NE(times_one(denormal), 0.0f);  // and again after it
}
#endif

TEST(TaskPool, ATaskThatThrowsIsThrownAgainOnceEveryTaskHasEnded) {
  TaskPool pool(3);
  for (int64_t failing : {0, 5, 11}) {
    std::atomic<int> ended{0};
    try {
      pool.run(12, [&](int64_t i) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        ended.fetch_add(1);
        if (i == failing) throw std::runtime_error("task " + std::to_string(i));
      });
      FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "task " + std::to_string(failing));
    }
    EXPECT_EQ(ended.load(), 12);
    // and the pool goes on
    std::atomic<int> runs{0};
    pool.run(7, [&](int64_t) { runs.fetch_add(1); });
    EXPECT_EQ(runs.load(), 7);
  }
}

TEST(TaskPool, AvailableCoresIsAtLeastOne) { EXPECT_GE(available_cores(), 1); }

}  // namespace
}  // namespace microgpt

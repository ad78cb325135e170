// Training across processes under mpirun (train/data_parallel.h), run for real: the
// binary launched by Open MPI's mpirun on this machine, oversubscribed where there are
// more processes than cores. Each test compares what N processes of one thread write
// (stdout, the JSON log, the checkpoint's tensors) with what one process of N threads
// writes, or checks how the job ends when something goes wrong.
//
// The tests skip, saying why, in a build without MPI (-DMICROGPT_MPI=OFF, as the
// sanitizer and ARM64 builds are); with MPI wanted but not found they fail under CI.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "test_support.h"

namespace microgpt {
namespace {

using testing::read_file;
using testing::run_shell;
using testing::TempDir;

#define REQUIRE_MPI()                                                                                         \
  do {                                                                                                        \
    const std::string state = MICROGPT_TEST_MPI;                                                              \
    if (state == "missing" && std::getenv("CI")) FAIL() << "CI is set but this build found no MPI";         \
    if (state != "on") GTEST_SKIP() << "skipped: this build has no MPI (" << state << "; see the README)";    \
  } while (0)

// mpirun as the tests launch it: as root too, more processes than cores, no pinning to
// cores (the ranks of two tests may share them). Under AddressSanitizer, what Open MPI
// allocates and keeps until exit is not reported as a leak: tests/lsan_openmpi.supp names
// its libraries, which stay loaded (no dlclose) so that their frames have names in the
// full stacks (no fast unwinding: Open MPI is built without frame pointers).
std::string mpirun_options() {
  return "OMPI_MCA_mca_base_component_disable_dlclose=1 LSAN_OPTIONS=suppressions='" + std::string(MICROGPT_SOURCE_DIR) +
         "/tests/lsan_openmpi.supp':fast_unwind_on_malloc=0:print_suppressions=0 mpirun --allow-run-as-root --oversubscribe --bind-to none ";
}
// ... and -q: no banners of its own.
std::string mpirun(int n) { return mpirun_options() + "-q -np " + std::to_string(n) + " "; }

std::string bin() {
  std::string quoted = "'";  // (appended: GCC 12 warns falsely about "'" + string)
  quoted += testing::microgpt_binary();
  return quoted + "'";
}

// Two processes launched apart (mpirun's "A : B"): rank 0 runs `rank0`, rank 1 runs
// `rank1`, each a command line after mpirun's own options for it.
testing::RunResult launch_two(const TempDir& dir, const std::string& rank0, const std::string& rank1) {
  testing::RunResult r;
  r.exit_code = run_shell("cd '" + dir.path() + "' && " + mpirun(1) + rank0 + " : -np 1 " + rank1 + " >out 2>err", 120);
  r.out = read_file(dir.file("out"));
  r.err = read_file(dir.file("err"));
  return r;
}

struct Outputs {
  int exit_code = -1;
  std::string out, err, log;
  CheckpointData model;
};

// Runs `launch` + microgpt train `flags` in `dir`, writing run.st and run.jsonl there.
Outputs train(const TempDir& dir, const std::string& name, const std::string& launch, const std::string& flags) {
  const std::string st = dir.file(name + ".st"), log = dir.file(name + ".jsonl");
  Outputs o;
  o.exit_code = run_shell("cd '" + dir.path() + "' && " + launch + bin() + " train " + flags + " --out '" + st +
                              "' --log '" + log + "' >'" + dir.file(name + ".out") + "' 2>'" + dir.file(name + ".err") + "'",
                          300);
  o.out = read_file(dir.file(name + ".out"));
  o.err = read_file(dir.file(name + ".err"));
  o.log = read_file(log);
  if (o.exit_code == 0) o.model = load_checkpoint(st);
  return o;
}

// Bit for bit: what was printed and logged, the weights, Adam's moments, the generator.
void expect_same_run(const Outputs& a, const Outputs& b) {
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.log, b.log);
  EXPECT_EQ(a.model.step, b.model.step);
  EXPECT_TRUE(a.model.params == b.model.params) << "weights differ";
  EXPECT_TRUE(a.model.trained_params == b.model.trained_params) << "trained weights differ";
  EXPECT_TRUE(a.model.adam_m == b.model.adam_m) << "Adam's m differs";
  EXPECT_TRUE(a.model.adam_v == b.model.adam_v) << "Adam's v differs";
  EXPECT_EQ(a.model.rng.index, b.model.rng.index);
}

const std::string kNames =
    "--steps 24 --batch-size 12 --n-layer 2 --n-embd 32 --val-frac 0.1 --eval-every 8 --num-samples 4";

TEST(Mpi, TwoProcessesOfOneThreadTrainExactlyAsOneProcessOfTwoThreads) {
  REQUIRE_MPI();
  TempDir dir;
  const Outputs one = train(dir, "one", "", kNames + " --threads 2");
  const Outputs two = train(dir, "two", mpirun(2), kNames + " --threads 1");
  expect_same_run(one, two);
  // Rank 0 alone speaks: the samples are printed once.
  EXPECT_EQ(testing::count_lines(two.out), testing::count_lines(one.out));
}

TEST(Mpi, ThreeProcessesTrainExactlyAsThreeThreadsOnAText) {
  REQUIRE_MPI();
  TempDir dir;
  // A continuous text (this project's README), windows of 32 characters; dropout and an
  // average of the weights, whose masks and sums must not depend on who computes them.
  const std::string flags = "--data '" + std::string(MICROGPT_SOURCE_DIR) +
                            "/README.md' --format text --steps 12 --batch-size 7 --block-size 32 --n-layer 1 "
                            "--n-embd 32 --dropout 0.1 --ema 0.9 --eval-every 6";
  const Outputs one = train(dir, "one", "", flags + " --threads 3");
  const Outputs three = train(dir, "three", mpirun(3), flags + " --threads 1");
  expect_same_run(one, three);
}

TEST(Mpi, ShardedAdamStateGivesTheSameRunAndOneCheckpoint) {
  REQUIRE_MPI();
  TempDir dir;
  const Outputs whole = train(dir, "whole", mpirun(2), kNames + " --threads 1");
  const Outputs zero = train(dir, "zero", mpirun(2), kNames + " --threads 1 --zero 1");
  expect_same_run(whole, zero);
  // N = 3 shards too: one file, which a single process samples from.
  const Outputs three = train(dir, "three", mpirun(3), kNames + " --threads 1 --zero 1");
  ASSERT_EQ(three.exit_code, 0) << three.err;
  EXPECT_EQ(three.model.adam_m.size(), three.model.params.size());
  EXPECT_EQ(run_shell(bin() + " sample --model '" + dir.file("three.st") + "' --num-samples 3 >/dev/null"), 0);
}

TEST(Mpi, ARunOfTwoProcessesResumesInOneProcess) {
  REQUIRE_MPI();
  TempDir dir;
  const Outputs full = train(dir, "full", "", kNames + " --threads 2");
  const Outputs first = train(dir, "part", mpirun(2), kNames + " --threads 1 --zero 1 --stop-after 13");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.model.step, 13);
  // The checkpoint counts 2 workers: continued by one process, of two threads unless
  // told otherwise, in the same checkpoint and log.
  EXPECT_EQ(first.model.threads, 2);
  const std::string st = dir.file("part.st");
  ASSERT_EQ(run_shell("cd '" + dir.path() + "' && " + bin() + " train --resume '" + st + "' --out '" + st +
                      "' --log '" + dir.file("part.jsonl") + "' >/dev/null 2>'" + dir.file("resume.err") + "'"),
            0)
      << read_file(dir.file("resume.err"));
  const CheckpointData resumed = load_checkpoint(st);
  EXPECT_TRUE(resumed.params == full.model.params);
  EXPECT_TRUE(resumed.adam_m == full.model.adam_m);
  EXPECT_TRUE(resumed.adam_v == full.model.adam_v);
  EXPECT_EQ(read_file(dir.file("part.jsonl")), full.log);
}

TEST(Mpi, ProcessesOnOtherDataOrSettingsAreRefusedAtStart) {
  REQUIRE_MPI();
  TempDir dir;
  testing::write_file(dir.file("a.txt"), "anna\nbob\ncarl\ndora\nemma\n");
  testing::write_file(dir.file("b.txt"), "anna\nbob\ncarl\ndora\nemmy\n");
  auto launch = [&](const std::string& rank0, const std::string& rank1) {
    return launch_two(dir, bin() + " train --steps 5 --out '' " + rank0, bin() + " train --steps 5 --out '' " + rank1);
  };
  // (Python: '%08x' % zlib.crc32(open('b.txt', 'rb').read()) is c75fc9b2, a.txt's 454451eb)
  testing::RunResult r = launch("--data a.txt", "--data b.txt");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");  // nothing was trained or reported
  EXPECT_EQ(r.err,
            "microgpt: error: the processes disagree: rank 1 has data 5 documents with CRC-32 c75fc9b2, rank 0 has "
            "data 5 documents with CRC-32 454451eb (every process must train on the same data with the same "
            "settings)\n");
  r = launch("--data a.txt --lr 0.01", "--data a.txt --lr 0.02");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("rank 1 has lr 0.02, rank 0 has lr 0.01"), std::string::npos) << r.err;
  // A file missing on one machine: that rank's reason, once.
  r = launch("--data a.txt", "--data missing.txt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "microgpt: error: rank 1 of 2: cannot read data file 'missing.txt': No such file or directory\n");
}

TEST(Mpi, ProcessesThatStopAgreeingEndTheRunNamingTheStep) {
  REQUIRE_MPI();
  TempDir dir;
  // Rank 1 on the plain kernels, whose Adam rounds otherwise than the vector ones: the
  // weights drift apart, which the checksum of every step catches.
  const std::string flags = " train --steps 20 --batch-size 4 --check-every 1 --out '' --num-samples 0";
  const testing::RunResult r = launch_two(dir, bin() + flags, "-x MICROGPT_KERNELS=generic " + bin() + flags);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("microgpt: error: the weights of rank 1 differ from rank 0's after step "), std::string::npos)
      << r.err;
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
}

TEST(Mpi, AKilledProcessEndsTheJobAndKeepsTheLastCheckpoint) {
  REQUIRE_MPI();
  TempDir dir;
  const std::string st = dir.file("k.st");
  // A long run with a checkpoint every 20 steps; once the first is written, one rank is
  // killed. Without -q, mpirun names the rank and the signal.
  const std::string script =
      "cd '" + dir.path() + "'; " + mpirun_options() + "-np 2 " + bin() +
      " train --steps 100000 --batch-size 16 --threads 1 --checkpoint-every 20 --out '" + st +
      "' >out 2>err & job=$!\n"
      "while [ ! -e '" + st + "' ]; do sleep 0.1; done\n"
      "victim=$(pgrep -n -P $job)\n"  // the newest process mpirun started: a rank
      "kill -9 $victim; start=$(date +%s%N)\n"
      "wait $job; code=$?\n"
      "echo $code $(( ($(date +%s%N) - start) / 1000000 )) > result\n";
  ASSERT_EQ(run_shell(script, 120), 0);
  std::istringstream result(read_file(dir.file("result")));
  int code = 0;
  int64_t ms = 0;
  result >> code >> ms;
  EXPECT_NE(code, 0);
  EXPECT_LT(ms, 10000) << "the job took " << ms << " ms to end";
  const std::string err = read_file(dir.file("err"));
  EXPECT_NE(err.find("exited on signal 9 (Killed)"), std::string::npos) << err;
  // The last good checkpoint loads and samples.
  const CheckpointData c = load_checkpoint(st);
  EXPECT_EQ(c.step % 20, 0);
  EXPECT_EQ(run_shell(bin() + " sample --model '" + st + "' --num-samples 2 >/dev/null"), 0);
}

TEST(Mpi, AProcessThatRunsOutOfMemoryEndsTheJobWithItsReason) {
  REQUIRE_MPI();
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "skipped: AddressSanitizer reserves more address space than the limit this test sets";
#endif
  TempDir dir;
  // Rank 1 may not map more than 400 MB: a model that needs more fails there, and rank 0
  // must not wait for it.
  const std::string flags = " train --steps 5 --n-embd 512 --n-layer 4 --batch-size 32 --block-size 64 --threads 1 --out ''";
  const testing::RunResult r =
      launch_two(dir, bin() + flags, "sh -c 'ulimit -v 400000; exec \"$0\" \"$@\"' " + bin() + flags);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.find("microgpt: error: rank 1 of 2: "), 0u) << r.err;
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
}

TEST(Mpi, APlainRunDoesNotStartMpi) {
  REQUIRE_MPI();
  TempDir dir;
  // Open MPI's start, even in a process mpirun did not launch, makes a session folder
  // (ompi.HOST.UID) under TMPDIR and forks a runtime; a plain run must do neither.
  std::filesystem::create_directory(dir.file("tmp"));
  ASSERT_EQ(run_shell("cd '" + dir.path() + "' && TMPDIR='" + dir.file("tmp") + "' " + bin() +
                      " train --steps 2 --threads 2 --batch-size 4 --out '' >/dev/null 2>&1"),
            0);
  EXPECT_TRUE(std::filesystem::is_empty(dir.file("tmp")));
}

}  // namespace
}  // namespace microgpt

namespace microgpt {
namespace {

// MPI's libraries are loaded from a module beside the executable, only under mpirun:
// without it (a build that found no MPI), a launched run is refused with one line.
TEST(Mpi, WithoutItsMpiModuleARunUnderMpirunIsRefused) {
  REQUIRE_MPI();
  TempDir dir;
  std::filesystem::copy_file(testing::microgpt_binary(), dir.file("microgpt"));
  std::filesystem::permissions(dir.file("microgpt"), std::filesystem::perms::owner_all);
  const int code = run_shell("cd '" + dir.path() + "' && " + mpirun(2) + "./microgpt train --steps 2 --out '' >out 2>err", 120);
  const std::string err = read_file(dir.file("err"));
  EXPECT_EQ(code, 1);
  EXPECT_EQ(err.find("microgpt: error: this microgpt cannot train across the 2 processes mpirun started: its MPI module "
                     "would not load"),
            0u)
      << err;
  EXPECT_EQ(testing::count_lines(err), 1) << err;
}

}  // namespace
}  // namespace microgpt

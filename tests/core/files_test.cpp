// Atomic file writes: content lands whole, no temporary file stays behind, temporaries
// of dead writers are cleaned up but a living writer's never are.
#include "core/files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <filesystem>

#include "core/error.h"
#include "test_support.h"

namespace microgpt {
namespace {

using testing::TempDir;

int count_temporaries(const std::string& folder) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(folder)) n += e.path().filename().string().find(".tmp-") != std::string::npos;
  return n;
}

void age(const std::string& path, int seconds) {
  struct utimbuf t {};
  t.actime = t.modtime = ::time(nullptr) - seconds;
  ::utime(path.c_str(), &t);
}

TEST(AtomicWrite, ReplacesWholeAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("f.bin");
  write_file_atomic(path, "first");
  write_file_atomic(path, std::string(100000, 'x'));
  EXPECT_EQ(testing::read_file(path), std::string(100000, 'x'));
  EXPECT_EQ(count_temporaries(dir.path()), 0);
}

TEST(AtomicWrite, RemovesDeadWritersTemporariesOnly) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  const std::string dead = path + ".tmp-AAAAAA", fresh = path + ".tmp-BBBBBB", alive = path + ".tmp-CCCCCC",
                    other = dir.file("other.tmp-DDDDDD");
  for (const std::string& p : {dead, fresh, alive, other}) testing::write_file(p, "partial");
  age(dead, 3600);
  age(alive, 3600);
  age(other, 3600);
  const int held = ::open(alive.c_str(), O_RDONLY);  // a writer still at work holds its lock
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  write_file_atomic(path, "model");
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(fresh));  // could be a writer that just started
  EXPECT_TRUE(std::filesystem::exists(alive));
  EXPECT_TRUE(std::filesystem::exists(other));  // not this file's
  ::close(held);
}

TEST(AtomicWrite, FailuresNameThePath) {
  TempDir dir;
  for (const std::string& p : {dir.file("missing/f"), dir.path()}) {
    try {
      write_file_atomic(p, "x");
      ADD_FAILURE() << "no error for " << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(check_writable(dir.file("missing/f"), "log file"), Error);
  EXPECT_NO_THROW(check_writable(dir.file("new-file"), "log file"));
}

// A copy holds every byte of a file larger than a chunk, replaces what was there whole,
// and reads only regular files (a folder or a FIFO is refused, naming the source).
TEST(AtomicWrite, CopiesWholeFilesOnly) {
  TempDir dir;
  std::string bytes;
  for (int i = 0; i < 200000; i++) bytes += static_cast<char>(i * 7 % 251);
  testing::write_file(dir.file("from.jsonl"), bytes);
  testing::write_file(dir.file("to.jsonl"), "older and other");
  copy_file_atomic(dir.file("from.jsonl"), dir.file("to.jsonl"), "snapshots");
  EXPECT_EQ(testing::read_file(dir.file("to.jsonl")), bytes);
  EXPECT_EQ(count_temporaries(dir.path()), 0);
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  for (const std::string& from : {dir.file("fifo"), dir.path(), dir.file("missing")}) {
    try {
      copy_file_atomic(from, dir.file("to.jsonl"), "snapshots");
      ADD_FAILURE() << "no error for " << from;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("snapshots '" + from + "'"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(testing::read_file(dir.file("to.jsonl")), bytes);  // left as it was
}

TEST(Crc32Core, MatchesZlib) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926U);  // zlib.crc32(b"123456789")
  EXPECT_EQ(crc32("hello world"), 0x0D4A1185U);
  EXPECT_EQ(crc32(""), 0U);
}

}  // namespace
}  // namespace microgpt

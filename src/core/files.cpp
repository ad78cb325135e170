#include "core/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>

#include "core/error.h"

namespace microgpt {

namespace {

std::string folder_of(const std::string& path) {
  const std::filesystem::path p(path);
  const std::filesystem::path parent = p.parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Temporary files of writers that were killed: PATH.tmp-XXXXXX files beside `path` that
// no living writer holds (each writer keeps an exclusive lock on its own) and that have
// not been touched for a minute. Removing them keeps a run that is killed again and
// again from filling the disk.
void remove_stale_temporaries(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path target(path);
  const std::string prefix = target.filename().string() + ".tmp-";
  const std::filesystem::path folder = target.parent_path().empty() ? "." : target.parent_path();
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) continue;
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || ::time(nullptr) - st.st_mtime < 60) continue;
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) ::unlink(entry.path().c_str());
    ::close(fd);
  }
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error("cannot write '" + path + "': " + what);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

}  // namespace

void write_file_atomic(const std::string& path,
                       const std::function<void(const std::function<void(std::string_view)>&)>& produce) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) fail(path, "it is a directory");
  remove_stale_temporaries(path);
  // A unique temporary name beside the target, so concurrent writers never share one;
  // locked while we write it, so no one takes it for a dead writer's.
  std::string tmpl = path + ".tmp-XXXXXX";
  const int raw = ::mkstemp(tmpl.data());
  if (raw < 0) fail(path, std::strerror(errno));
  Fd fd(raw);
  ::flock(fd.get(), LOCK_EX);
  const std::string tmp = tmpl;
  bool done = false;
  struct Cleanup {
    const std::string& tmp;
    bool& done;
    ~Cleanup() {
      if (!done) ::unlink(tmp.c_str());
    }
  } cleanup{tmp, done};
  ::fchmod(fd.get(), 0644);
  auto write_all = [&](std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd.get(), bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        fail(path, std::strerror(errno));
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  };
  produce(write_all);
  if (::fsync(fd.get()) != 0) fail(path, std::strerror(errno));
  if (::close(fd.release()) != 0) fail(path, std::strerror(errno));
  // The data is on the disk before the name points at it, so no crash leaves a torn file
  // under the name. The folder is not synced after the rename: if the machine goes down
  // before the rename reaches the disk, the previous file is still there, whole (and the
  // temporary is cleaned up later), which costs no model and saves a sync per write.
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail(path, std::strerror(errno));
  done = true;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, [&](const std::function<void(std::string_view)>& write) { write(bytes); });
}

void check_writable(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw Error("cannot write " + what + " '" + path + "': it is a directory");
  }
  const std::string folder = folder_of(path);
  if (::stat(folder.c_str(), &st) != 0) {
    throw Error("cannot write " + what + " '" + path + "': folder '" + folder + "' does not exist");
  }
  if (!S_ISDIR(st.st_mode)) throw Error("cannot write " + what + " '" + path + "': '" + folder + "' is not a folder");
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    throw Error("cannot write " + what + " '" + path + "': " + std::strerror(errno));
  }
}

std::string read_file(const std::string& path, const std::string& what) {
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) throw Error("cannot read " + what + " '" + path + "': " + std::strerror(errno));
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error("cannot read " + what + " '" + path + "': " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error("cannot read " + what + " '" + path + "': it is a directory");
  std::string bytes;
  if (S_ISREG(st.st_mode)) bytes.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read " + what + " '" + path + "': " + std::strerror(errno));
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  return bytes;
}

uint32_t crc32(std::string_view bytes, uint32_t crc) {
  // Slicing by 8: table k gives the CRC of a byte followed by k zero bytes, so eight
  // bytes are folded in per step instead of one (checkpoints of millions of weights).
  static const std::array<std::array<uint32_t, 256>, 8> t = [] {
    std::array<std::array<uint32_t, 256>, 8> tables{};
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
      tables[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
      for (size_t k = 1; k < 8; k++) tables[k][i] = (tables[k - 1][i] >> 8) ^ tables[0][tables[k - 1][i] & 0xFF];
    }
    return tables;
  }();
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  crc = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    const uint32_t lo = crc ^ (uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24);
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][p[4]] ^
          t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
  }
  for (; n > 0; n--, p++) crc = t[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

}  // namespace microgpt

#include "core/files.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/memory.h"

namespace microgpt {

namespace {

std::string folder_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// What a file is, for messages: "a directory", "a FIFO", ...
std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
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
    if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || ::time(nullptr) - st.st_mtime < 60) continue;
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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

// The temporary file beside `target` that a write goes through: PATH.tmp-XXXXXX, unique,
// created empty with mode 0644.
int make_temporary(const std::string& target, std::string& name) {
  name = target + ".tmp-XXXXXX";
  const int fd = ::mkstemp(name.data());
  if (fd >= 0) ::fchmod(fd, 0644);
  return fd;
}

}  // namespace

std::string output_target(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 40; hops++) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    std::string link(static_cast<size_t>(PATH_MAX), '\0');
    const ssize_t n = ::readlink(p.c_str(), link.data(), link.size());
    if (n < 0) return p;
    link.resize(static_cast<size_t>(n));
    p = link.starts_with('/') ? link : folder_of(p) + "/" + link;
  }
  throw Error("cannot write '" + path + "': too many levels of symbolic links");
}

void write_file_atomic(const std::string& path,
                       const std::function<void(const std::function<void(std::string_view)>&)>& produce) {
  // Through a symbolic link to its target, so the link stays; never over anything but a
  // regular file.
  const std::string target = output_target(path);
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) fail(path, "it is " + kind_of(st.st_mode) + ", not a regular file");
  remove_stale_temporaries(target);
  // A unique temporary name beside the target, so concurrent writers never share one;
  // locked while we write it, so no one takes it for a dead writer's.
  std::string tmp;
  const int raw = make_temporary(target, tmp);
  if (raw < 0) fail(path, std::strerror(errno));
  Fd fd(raw);
  ::flock(fd.get(), LOCK_EX);
  bool done = false;
  struct Cleanup {
    const std::string& tmp;
    bool& done;
    ~Cleanup() {
      if (!done) ::unlink(tmp.c_str());
    }
  } cleanup{tmp, done};
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
  if (::rename(tmp.c_str(), target.c_str()) != 0) fail(path, std::strerror(errno));
  done = true;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, [&](const std::function<void(std::string_view)>& write) { write(bytes); });
}

void check_writable(const std::string& path, const std::string& what) {
  auto refuse = [&](const std::string& why) { throw Error("cannot write " + what + " '" + path + "': " + why); };
  if (path.empty()) throw usage_error("cannot write the " + what + ": its path is empty");
  std::string target;
  try {
    target = output_target(path);
  } catch (const Error&) {
    refuse("too many levels of symbolic links");
  }
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) refuse("it is a directory");
    if (!S_ISREG(st.st_mode)) refuse("it is " + kind_of(st.st_mode) + ", not a regular file");
  }
  const std::string folder = folder_of(target);
  if (::stat(folder.c_str(), &st) != 0) refuse("folder '" + folder + "' does not exist");
  if (!S_ISDIR(st.st_mode)) refuse("'" + folder + "' is not a folder");
  // What the writer will do first: create its temporary file beside the target.
  std::string probe;
  const int fd = make_temporary(target, probe);
  if (fd < 0) refuse(std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

InputFile open_input(const std::string& path, const std::string& what, double max_bytes) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer, forever if none comes.
  const int raw = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (raw < 0) throw Error("cannot read " + what + " '" + path + "': " + std::strerror(errno));
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error("cannot read " + what + " '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    throw Error("cannot read " + what + " '" + path + "': it is " + kind_of(st.st_mode) + ", not a regular file");
  }
  if (max_bytes <= 0) max_bytes = available_memory_bytes();
  if (static_cast<double>(st.st_size) > max_bytes) {
    throw Error("cannot read " + what + " '" + path + "': it is " + human_bytes(static_cast<double>(st.st_size)) +
                ", more than this machine's memory can hold while reading it (" + human_bytes(max_bytes) + ")");
  }
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return InputFile{fd.release(), static_cast<int64_t>(st.st_size)};
}

namespace {

// Up to `size` bytes of an input into `to`, retried when a signal interrupts; 0 at its end.
size_t read_some(int fd, char* to, size_t size, const std::string& what, const std::string& path) {
  for (;;) {
    const ssize_t n = ::read(fd, to, size);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) throw Error("cannot read " + what + " '" + path + "': " + std::strerror(errno));
  }
}

}  // namespace

std::string read_file(const std::string& path, const std::string& what, double max_bytes) {
  const InputFile in = open_input(path, what, max_bytes);
  Fd fd(in.fd);
  std::string bytes(static_cast<size_t>(in.size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const size_t n = read_some(fd.get(), bytes.data() + got, bytes.size() - got, what, path);
    if (n == 0) break;  // it shrank while we read
    got += n;
  }
  bytes.resize(got);
  return bytes;
}

void copy_file_atomic(const std::string& from, const std::string& to, const std::string& what) {
  const InputFile in = open_input(from, what, std::numeric_limits<double>::infinity());
  Fd fd(in.fd);
  write_file_atomic(to, [&](const std::function<void(std::string_view)>& write) {
    std::vector<char> buffer(1 << 16);
    while (const size_t n = read_some(fd.get(), buffer.data(), buffer.size(), what, from)) {
      write(std::string_view(buffer.data(), n));
    }
  });
}

namespace {

// Where a file is: its inode when it exists, else the place it would be created.
struct Place {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string where;
  bool operator==(const Place& o) const {
    return exists == o.exists && (exists ? dev == o.dev && ino == o.ino : where == o.where);
  }
};

Place place_of(const std::string& path) {
  Place p;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    p.exists = true;
    p.dev = st.st_dev;
    p.ino = st.st_ino;
    return p;
  }
  std::string target = path;
  try {
    target = output_target(path);
  } catch (const Error&) {
  }
  std::error_code ec;
  const std::filesystem::path canonical = std::filesystem::weakly_canonical(std::filesystem::absolute(target, ec), ec);
  p.where = ec ? target : canonical.string();
  return p;
}

}  // namespace

void check_distinct_files(std::span<const FileRole> roles,
                          std::span<const std::pair<std::string_view, std::string_view>> allowed) {
  std::vector<Place> places;
  for (const FileRole& r : roles) places.push_back(place_of(r.path));
  for (size_t i = 0; i < roles.size(); i++) {
    for (size_t j = i + 1; j < roles.size(); j++) {
      if (roles[i].path.empty() || roles[j].path.empty() || !(places[i] == places[j])) continue;
      bool ok = false;
      for (const auto& [a, b] : allowed) {
        ok = ok || (roles[i].flag == a && roles[j].flag == b) || (roles[i].flag == b && roles[j].flag == a);
      }
      if (ok) continue;
      throw usage_error(roles[i].flag + " and " + roles[j].flag + " name the same file ('" + roles[j].path +
                        "'): give each its own");
    }
  }
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

std::string beside_executable(const std::string& name) {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::canonical("/proc/self/exe", ec);
  if (ec) {  // no /proc (macOS): the file this function was loaded from, the executable
    Dl_info self{};
    if (dladdr(reinterpret_cast<void*>(&beside_executable), &self) == 0 || self.dli_fname == nullptr) return "";
    exe = std::filesystem::absolute(self.dli_fname, ec);
    if (ec) return "";
  }
  return (exe.parent_path() / name).string();
}

}  // namespace microgpt

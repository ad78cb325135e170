// The program's files, as the promises of the README need them. Outputs are written so
// that a crash never leaves a half-written file in place of a good one: the bytes go to
// a temporary file beside the target, are flushed to the disk, and the temporary file
// is renamed over the target (rename is atomic within a file system). An output is a
// regular file or nothing yet: a directory, device, FIFO or socket is never replaced,
// and a symbolic link is written through (its target is replaced; the link stays).
// Inputs are regular files only (a FIFO would block, /dev/zero never end) and no larger
// than the memory that could hold them. Also a CRC-32 (the IEEE polynomial, as zlib and
// Python's zlib.crc32 compute it) for checksums of file contents, and the identity of
// files, so that a command can refuse to be given one file in two roles.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace microgpt {

// Writes `bytes` to `path` atomically. Throws Error naming the path on any failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Streams the content through `write` (called with chunks) into a temporary file, then
// renames it over `path`. For files too large to build in memory first.
void write_file_atomic(const std::string& path, const std::function<void(const std::function<void(std::string_view)>&)>& produce);

// Copies the regular file `from` (`what`: named in errors) to `to`, atomically as above,
// a chunk at a time (a file of any size).
void copy_file_atomic(const std::string& from, const std::string& to, const std::string& what);

// The file that writing `path` replaces: `path` with symbolic links followed to their
// end, which may not exist yet. Throws Error for a loop of links.
std::string output_target(const std::string& path);

// Throws Error, naming `what` ("checkpoint", "log file", ...) and the path, unless a file
// can be written there: the path is not empty (a usage error), it names nothing yet or a regular file
// (through links), and its folder exists and takes a new file of the temporary's name
// (tried by creating one and removing it).
void check_writable(const std::string& path, const std::string& what);

// Opens an input for reading (without blocking on a FIFO); throws Error naming `what`
// and the path unless it is a regular file of at most max_bytes. Returns the descriptor
// and the size.
struct InputFile {
  int fd;
  int64_t size;
};
InputFile open_input(const std::string& path, const std::string& what, double max_bytes);

// Reads a whole regular file of at most max_bytes (default: what memory allows);
// throws Error naming the path.
std::string read_file(const std::string& path, const std::string& what, double max_bytes = 0);

uint32_t crc32(std::string_view bytes, uint32_t crc = 0);

// The path of `name` in the folder of the running executable (where the build puts the
// modules it loads on demand: build/libmicrogpt_mpi.so beside build/microgpt); "" when
// the executable's own path cannot be found.
std::string beside_executable(const std::string& name);

// A file given to a command: the flag that names it and the path.
struct FileRole {
  std::string flag;  // "--data", "--out", ...
  std::string path;
  bool output;
};
// Throws a usage error when two roles name the same file (the same inode, or, for files
// not there yet, the same place once links are followed), unless the pair is in
// `allowed` ({"--resume", "--out"}: a run may continue in its own checkpoint).
void check_distinct_files(std::span<const FileRole> roles,
                          std::span<const std::pair<std::string_view, std::string_view>> allowed = {});

}  // namespace microgpt

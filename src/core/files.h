// Files written so that a crash never leaves a half-written file in place of a good one:
// the bytes go to a temporary file in the same folder, are flushed to the disk, and the
// temporary file is renamed over the target (rename is atomic within a file system).
// Also a CRC-32 (the IEEE polynomial, as zlib and Python's zlib.crc32 compute it) for
// checksums of file contents.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace microgpt {

// Writes `bytes` to `path` atomically. Throws Error naming the path on any failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Streams the content through `write` (called with chunks) into a temporary file, then
// renames it over `path`. For files too large to build in memory first.
void write_file_atomic(const std::string& path, const std::function<void(const std::function<void(std::string_view)>&)>& produce);

// Throws Error naming the path if a file could not be created there (missing folder,
// no permission, a directory in the way). Creates nothing.
void check_writable(const std::string& path, const std::string& what);

// Reads a whole file; throws Error naming the path.
std::string read_file(const std::string& path, const std::string& what);

uint32_t crc32(std::string_view bytes, uint32_t crc = 0);

}  // namespace microgpt

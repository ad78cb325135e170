#include "data/text.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/files.h"
#include "core/memory.h"
#include "core/text.h"

namespace microgpt {

Text parse_text(std::string_view bytes, const std::string& name) {
  Text t;
  t.source = name;
  t.chars.resize(bytes.size());  // a byte makes at most one character
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t used = 0, i = 0;
  int64_t line = 1;
  while (i < bytes.size()) {
    char32_t cp = 0;
    const int len = decode_utf8_one(s + i, bytes.size() - i, &cp);
    if (len == 0) {
      throw Error("data file '" + name + "' is not valid UTF-8 (line " + std::to_string(line) + ", byte " +
                  std::to_string(i + 1) + ")");
    }
    i += static_cast<size_t>(len);
    if (cp == U'\r') {  // \r\n and \r are one line break
      if (i < bytes.size() && s[i] == '\n') i++;
      cp = U'\n';
    }
    if (cp == U'\n') line++;
    t.chars[used++] = cp;
  }
  t.chars.resize(used);
  if (t.chars.empty()) throw Error("data file '" + name + "' is empty");
  t.bytes_crc = crc32(bytes);
  return t;
}

Text load_text(const std::string& path) {
  // Four bytes a character, and the file's bytes while they are decoded.
  const std::string bytes = read_file(path, "data file", available_memory_bytes() / 6);
  return parse_text(bytes, path);
}

}  // namespace microgpt

// A continuous text, such as a book: one stream of characters, read the way nanoGPT
// reads shakespeare_char. Strict UTF-8; \r\n and a lone \r are read as \n (Python's
// universal newlines, as open() does); nothing else is changed: line breaks are
// characters like any other, and nothing is stripped or dropped (docs/algorithm.md §2).
// Not here: the vocabulary (a Tokenizer without BOS, data/dataset.h), windows and the
// split (train/data_source.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace microgpt {

struct Text {
  std::u32string chars;
  std::string source;      // the path
  uint32_t bytes_crc = 0;  // CRC-32 of the bytes it was read from
  int64_t size() const { return static_cast<int64_t>(chars.size()); }
};

// `name` appears in errors ("'x.txt' is not valid UTF-8 (line 3, byte 17)").
Text parse_text(std::string_view bytes, const std::string& name);

// Reads a text file: a missing, unreadable or empty file, one that is not a regular file,
// or bad UTF-8 is an Error naming the file.
Text load_text(const std::string& path);

}  // namespace microgpt

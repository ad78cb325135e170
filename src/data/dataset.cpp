#include "data/dataset.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "core/error.h"
#include "core/text.h"

namespace microgpt {

namespace {

std::u32string_view strip(std::u32string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && is_python_space(s[b])) b++;
  while (e > b && is_python_space(s[e - 1])) e--;
  return s.substr(b, e - b);
}

// 1-based line of a byte offset, counting \n, \r\n and a lone \r as one line break each.
int64_t line_of_offset(std::string_view bytes, int64_t offset) {
  int64_t line = 1;
  for (int64_t i = 0; i < offset; i++) {
    char c = bytes[static_cast<size_t>(i)];
    if (c == '\n') {
      line++;
    } else if (c == '\r') {
      if (i + 1 < offset && bytes[static_cast<size_t>(i) + 1] == '\n') i++;
      line++;
    }
  }
  return line;
}

}  // namespace

std::vector<std::u32string> split_documents(std::u32string_view text) {
  std::vector<std::u32string> docs;
  // text.strip().split('\n'): leading/trailing white space of the whole text would only
  // produce empty lines or be stripped from the first/last line, so stripping each line
  // gives the same documents. Universal newlines: \r\n and a lone \r end a line too.
  std::u32string line;
  auto flush = [&]() {
    std::u32string_view s = strip(line);
    if (!s.empty()) docs.emplace_back(s);
    line.clear();
  };
  for (size_t i = 0; i < text.size(); i++) {
    char32_t c = text[i];
    if (c == U'\r') {
      if (i + 1 < text.size() && text[i + 1] == U'\n') i++;
      flush();
    } else if (c == U'\n') {
      flush();
    } else {
      line.push_back(c);
    }
  }
  flush();
  return docs;
}

Dataset parse_dataset(std::string_view bytes, const std::string& name) {
  Utf8Failure failure;
  auto text = decode_utf8(bytes, &failure);
  if (!text) {
    throw Error("data file '" + name + "' is not valid UTF-8 (line " +
                std::to_string(line_of_offset(bytes, failure.byte_offset)) + ", byte " +
                std::to_string(failure.byte_offset + 1) + ")");
  }
  Dataset ds;
  ds.docs = split_documents(*text);
  ds.source = name;
  if (ds.docs.empty()) {
    throw Error("data file '" + name + "' has no documents (every line is blank)");
  }
  return ds;
}

Dataset load_dataset(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error("cannot read data file '" + path + "': " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) throw Error("data file '" + path + "' is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read data file '" + path + "': " + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw Error("cannot read data file '" + path + "': read failed");
  const std::string bytes = buf.str();
  return parse_dataset(bytes, path);
}

Dataset embedded_dataset() { return parse_dataset(embedded_names_bytes(), kEmbeddedSource); }

Tokenizer::Tokenizer(const std::vector<std::u32string>& docs) {
  // sorted(set(''.join(docs))): mark every code point seen, then list them in order.
  std::vector<bool> seen(0x110000, false);
  for (const auto& d : docs) {
    for (char32_t c : d) {
      if (!seen[c]) {
        seen[c] = true;
        chars_.push_back(c);
      }
    }
  }
  std::sort(chars_.begin(), chars_.end());
}

Tokenizer::Tokenizer(std::u32string chars) : chars_(std::move(chars)) {
  if (!std::is_sorted(chars_.begin(), chars_.end()) ||
      std::adjacent_find(chars_.begin(), chars_.end()) != chars_.end()) {
    throw Error("vocabulary must be sorted and distinct");
  }
}

Token Tokenizer::id_of(char32_t c) const {
  auto it = std::lower_bound(chars_.begin(), chars_.end(), c);
  if (it == chars_.end() || *it != c) return -1;
  return static_cast<Token>(it - chars_.begin());
}

std::vector<Token> Tokenizer::encode_document(std::u32string_view doc) const {
  std::vector<Token> ids;
  ids.reserve(doc.size() + 2);
  ids.push_back(bos());
  for (char32_t c : doc) {
    Token id = id_of(c);
    if (id < 0) throw Error("character U+" + std::to_string(static_cast<uint32_t>(c)) + " is not in the vocabulary");
    ids.push_back(id);
  }
  ids.push_back(bos());
  return ids;
}

std::string Tokenizer::decode(const std::vector<Token>& ids) const {
  std::string out;
  for (Token id : ids) {
    if (id >= 0 && id < bos()) append_utf8(out, chars_[static_cast<size_t>(id)]);
  }
  return out;
}

std::string Tokenizer::label(Token id) const {
  if (id == bos()) return "<BOS>";
  std::string out;
  if (id >= 0 && id < bos()) append_utf8(out, chars_[static_cast<size_t>(id)]);
  return out;
}

}  // namespace microgpt

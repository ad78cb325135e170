#include "data/dataset.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/files.h"
#include "core/memory.h"
#include "core/text.h"

namespace microgpt {

std::vector<std::u32string> Dataset::docs() const {
  std::vector<std::u32string> out;
  for (int64_t i = 0; i < size(); i++) out.emplace_back(doc(i));
  return out;
}

namespace {

// White space among ASCII characters, by Python's str.isspace(): \t \n \v \f \r,
// \x1c-\x1f and space.
constexpr bool ascii_space(unsigned char c) { return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20); }

}  // namespace

Dataset parse_dataset(std::string_view bytes, const std::string& name) {
  // Line by line: a line ends at \n, \r\n or \r (universal newlines) and is stripped of
  // Python's white space at both ends; blank lines are dropped. Stripping the whole text
  // first, as microgpt.py also does, removes nothing that this does not. Most lines are
  // ASCII and are copied straight; the others are decoded strictly.
  Dataset ds;
  ds.source = name;
  ds.chars.resize(bytes.size());  // a byte makes at most one character
  char32_t* const chars = ds.chars.data();
  size_t used = 0;
  ds.starts.push_back(0);
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  int64_t line = 1;
  size_t i = 0;
  const bool any_cr = std::memchr(s, '\r', n) != nullptr;  // if not, memchr finds line ends
  while (i <= n) {
    // [b, e): the line's bytes; high: all of them or-ed, so high >= 0x80 if any is not ASCII
    const size_t b = i;
    if (any_cr) {
      while (i < n && s[i] != '\n' && s[i] != '\r') i++;
    } else {
      const void* nl = i < n ? std::memchr(s + i, '\n', n - i) : nullptr;
      i = nl ? static_cast<size_t>(static_cast<const unsigned char*>(nl) - s) : n;
    }
    const size_t e = i;
    unsigned char high = 0;
    for (size_t k = b; k < e; k++) high |= s[k];
    if (i < n && s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') i++;
    i++;  // past the line break (or past the end)
    size_t lb, le;
    if (high < 0x80) {
      lb = b, le = e;
      while (lb < le && ascii_space(s[lb])) lb++;
      while (le > lb && ascii_space(s[le - 1])) le--;
      for (size_t k = lb; k < le; k++) chars[used++] = s[k];
    } else {
      const size_t begin = used;
      for (size_t k = b; k < e;) {
        const int len = decode_utf8_one(s + k, e - k, &chars[used]);
        if (len == 0) {
          throw Error("data file '" + name + "' is not valid UTF-8 (line " + std::to_string(line) + ", byte " +
                      std::to_string(k + 1) + ")");
        }
        used++;
        k += static_cast<size_t>(len);
      }
      lb = begin, le = used;
      while (lb < le && is_python_space(chars[lb])) lb++;
      while (le > lb && is_python_space(chars[le - 1])) le--;
      std::copy(chars + lb, chars + le, chars + begin);
      used = begin + (le - lb);
    }
    if (lb < le) ds.starts.push_back(static_cast<int64_t>(used));
    line++;
  }
  ds.chars.resize(used);
  if (ds.size() == 0) throw Error("data file '" + name + "' has no documents (every line is blank)");
  ds.bytes_crc = crc32(bytes);
  return ds;
}

Dataset load_dataset(const std::string& path) {
  // The characters take four bytes per byte of the file, and the document offsets up to
  // four more (one-character lines), with the bytes themselves held while parsing.
  const InputFile in = open_input(path, "data file", available_memory_bytes() / 9);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{in.fd};
  std::unique_ptr<char[]> bytes(new char[static_cast<size_t>(in.size) + 1]);
  size_t size = 0;
  while (size < static_cast<size_t>(in.size)) {
    const ssize_t got = ::read(in.fd, bytes.get() + size, static_cast<size_t>(in.size) - size);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read data file '" + path + "': " + std::strerror(errno));
    }
    if (got == 0) break;  // it shrank while we read
    size += static_cast<size_t>(got);
  }
  return parse_dataset(std::string_view(bytes.get(), size), path);
}

Dataset embedded_dataset() { return parse_dataset(embedded_names_bytes(), kEmbeddedSource); }

Tokenizer::Tokenizer(std::u32string_view text, bool with_bos) : has_bos_(with_bos) {
  // sorted(set(''.join(docs)))
  bool latin1[256] = {};
  std::u32string others;
  for (char32_t c : text) {
    if (c < 256) {
      latin1[c] = true;
    } else {
      others.push_back(c);
    }
  }
  std::sort(others.begin(), others.end());
  others.erase(std::unique(others.begin(), others.end()), others.end());
  for (char32_t c = 0; c < 256; c++) {
    if (latin1[c]) chars_.push_back(c);
  }
  chars_ += others;
  latin1_ids_.assign(256, -1);
  for (size_t i = 0; i < chars_.size() && chars_[i] < 256; i++) latin1_ids_[chars_[i]] = static_cast<Token>(i);
}

Tokenizer Tokenizer::from_chars(std::u32string chars, bool with_bos) {
  if (!std::is_sorted(chars.begin(), chars.end()) || std::adjacent_find(chars.begin(), chars.end()) != chars.end()) {
    throw Error("vocabulary must be sorted and distinct");
  }
  return Tokenizer(std::u32string_view(chars), with_bos);
}

Token Tokenizer::id_of(char32_t c) const {
  if (c < 256) return latin1_ids_[c];
  auto it = std::lower_bound(chars_.begin(), chars_.end(), c);
  if (it == chars_.end() || *it != c) return -1;
  return static_cast<Token>(it - chars_.begin());
}

std::vector<Token> Tokenizer::encode_document(std::u32string_view doc) const {
  if (!has_bos_) throw Error("a text's tokenizer has no BOS to mark documents with");
  std::vector<Token> ids;
  ids.reserve(doc.size() + 2);
  ids.push_back(bos());
  for (char32_t c : doc) {
    const Token id = id_of(c);
    if (id < 0) throw Error("character U+" + std::to_string(static_cast<uint32_t>(c)) + " is not in the vocabulary");
    ids.push_back(id);
  }
  ids.push_back(bos());
  return ids;
}

std::string Tokenizer::decode(const std::vector<Token>& ids) const { return encode_utf8(chars_of(ids)); }

std::u32string Tokenizer::chars_of(std::span<const Token> ids) const {
  std::u32string out;
  for (Token id : ids) {
    if (id >= 0 && id < static_cast<Token>(chars_.size())) out.push_back(chars_[static_cast<size_t>(id)]);
  }
  return out;
}

void tokenize_documents(const Dataset& data, const Tokenizer& tokenizer, std::span<const int64_t> which,
                        TokenizedDocs& out, int64_t max_tokens) {
  out.tokens.clear();
  out.starts.assign(1, 0);
  if (!tokenizer.has_bos()) throw Error("documents need a tokenizer with BOS");
  const Token bos = tokenizer.bos();
  for (int64_t i : which) {
    out.tokens.push_back(bos);
    std::u32string_view doc = data.doc(i);
    // [BOS] + chars + [BOS] cut to max_tokens: the closing BOS only if it fits.
    const bool cut = max_tokens > 0 && static_cast<int64_t>(doc.size()) + 2 > max_tokens;
    if (cut) doc = doc.substr(0, static_cast<size_t>(max_tokens - 1));
    for (char32_t c : doc) {
      const Token id = tokenizer.id_of(c);
      if (id < 0) throw Error("character U+" + std::to_string(static_cast<uint32_t>(c)) + " is not in the vocabulary");
      out.tokens.push_back(id);
    }
    if (!cut) out.tokens.push_back(bos);
    out.starts.push_back(static_cast<int64_t>(out.tokens.size()));
  }
}

int64_t predicted_rows(DocRef doc, int64_t block_size) {
  return std::min(block_size, static_cast<int64_t>(doc.size()) - 1);
}

DocRange batch_part(std::span<const int64_t> row_starts, int64_t part, int64_t parts) {
  const int64_t docs = static_cast<int64_t>(row_starts.size()) - 1;
  const int64_t n = std::min(parts, docs);
  if (part >= n) return DocRange{docs, docs};
  const int64_t rows = row_starts.back();
  auto boundary = [&](int64_t t) -> int64_t {
    if (t == 0) return 0;
    if (t == n) return docs;
    const int64_t target = rows * t / n;
    auto it = std::lower_bound(row_starts.begin(), row_starts.end(), target);
    return std::min<int64_t>(it - row_starts.begin(), docs);
  };
  return DocRange{boundary(part), boundary(part + 1)};
}

}  // namespace microgpt

// The documents microgpt trains on, and the character tokenizer (spec section 2).
// A file is read as UTF-8 with universal newlines; white space is Python's; blank
// lines are dropped. The embedded default list (data/names-cc0.txt) is compiled in.
// Not here: shuffling (the driver does it with the run's generator) and batching.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace microgpt {

using Token = int32_t;

struct Dataset {
  std::vector<std::u32string> docs;  // in file order
  std::string source;                // the path, or "<embedded names>"
};

// Splits decoded text into documents exactly as microgpt.py does:
// [l.strip() for l in text.strip().split('\n') if l.strip()], after universal newlines.
std::vector<std::u32string> split_documents(std::u32string_view text);

// Parses raw file bytes. `name` appears in errors ("bad UTF-8 in 'x.txt' at line 3").
Dataset parse_dataset(std::string_view bytes, const std::string& name);

// Reads a data file; a missing, unreadable or empty file, a directory or bad UTF-8 is an
// Error naming the file.
Dataset load_dataset(const std::string& path);

// The names list compiled into the binary (public domain; see data/NOTICE).
Dataset embedded_dataset();
std::string_view embedded_names_bytes();
inline constexpr const char* kEmbeddedSource = "<embedded names>";

// Characters <-> token ids. Ids 0..n-1 are the distinct code points sorted; BOS = n.
class Tokenizer {
 public:
  explicit Tokenizer(const std::vector<std::u32string>& docs);
  explicit Tokenizer(std::u32string chars);  // chars sorted and distinct

  int64_t vocab_size() const { return static_cast<int64_t>(chars_.size()) + 1; }
  Token bos() const { return static_cast<Token>(chars_.size()); }
  const std::u32string& chars() const { return chars_; }

  // -1 when the character is not in the vocabulary.
  Token id_of(char32_t c) const;
  // [BOS] + ids + [BOS]; throws if a character is not in the vocabulary.
  std::vector<Token> encode_document(std::u32string_view doc) const;
  // UTF-8 text of token ids (BOS is skipped).
  std::string decode(const std::vector<Token>& ids) const;
  // How a token prints: the character, or <BOS>.
  std::string label(Token id) const;

 private:
  std::u32string chars_;
};

}  // namespace microgpt

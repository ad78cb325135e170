// The documents microgpt trains on, and the character tokenizer (docs/algorithm.md §2).
// A file is read as UTF-8 with universal newlines; white space is Python's; blank
// lines are dropped. Documents are stored back to back in one buffer (a million
// names are a few allocations, not a million). The embedded default list
// (data/names-cc0.txt) is compiled in.
// Not here: shuffling, splitting and batching (train/data_source.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace microgpt {

using Token = int32_t;

struct Dataset {
  std::u32string chars;         // every document's characters, back to back
  std::vector<int64_t> starts;  // document i is chars[starts[i], starts[i + 1])
  std::string source;           // the path, or "<embedded names>"
  uint32_t bytes_crc = 0;       // CRC-32 of the bytes it was read from

  int64_t size() const { return starts.empty() ? 0 : static_cast<int64_t>(starts.size()) - 1; }
  std::u32string_view doc(int64_t i) const {
    const auto b = static_cast<size_t>(starts[static_cast<size_t>(i)]);
    const auto e = static_cast<size_t>(starts[static_cast<size_t>(i) + 1]);
    return std::u32string_view(chars).substr(b, e - b);
  }
  std::vector<std::u32string> docs() const;  // copies, for tests and small tools
};

// Parses raw file bytes exactly as microgpt.py reads its file:
// [l.strip() for l in text.strip().split('\n') if l.strip()], after universal newlines.
// `name` appears in errors ("'x.txt' is not valid UTF-8 (line 3, byte 17)").
Dataset parse_dataset(std::string_view bytes, const std::string& name);

// Reads a data file; a missing, unreadable or empty file, a directory or bad UTF-8 is an
// Error naming the file.
Dataset load_dataset(const std::string& path);

// The identity of a dataset for checkpoints: the CRC-32 of the bytes it was read from
// (so the same characters cut into other lines are other data).
inline uint32_t dataset_crc(const Dataset& data) { return data.bytes_crc; }

// The names list compiled into the binary (public domain; see data/NOTICE).
Dataset embedded_dataset();
std::string_view embedded_names_bytes();
inline constexpr const char* kEmbeddedSource = "<embedded names>";

// Characters <-> token ids. Ids 0..n-1 are the distinct code points sorted; for a list
// of documents BOS = n marks where each begins and ends. A continuous text has no BOS:
// its vocabulary is its characters alone.
class Tokenizer {
 public:
  explicit Tokenizer(std::u32string_view text, bool with_bos = true);  // every character that occurs
  static Tokenizer from_chars(std::u32string chars, bool with_bos = true);  // chars sorted and distinct

  bool has_bos() const { return has_bos_; }
  int64_t vocab_size() const { return static_cast<int64_t>(chars_.size()) + (has_bos_ ? 1 : 0); }
  Token bos() const { return has_bos_ ? static_cast<Token>(chars_.size()) : -1; }  // -1: none
  const std::u32string& chars() const { return chars_; }

  // -1 when the character is not in the vocabulary.
  Token id_of(char32_t c) const;
  // [BOS] + ids + [BOS]; throws if a character is not in the vocabulary (or there is
  // no BOS).
  std::vector<Token> encode_document(std::u32string_view doc) const;
  // UTF-8 text of token ids (BOS is skipped).
  std::string decode(const std::vector<Token>& ids) const;
  // The characters of token ids (BOS is skipped).
  std::u32string chars_of(std::span<const Token> ids) const;

 private:
  Tokenizer() = default;
  std::u32string chars_;
  bool has_bos_ = true;
  std::vector<Token> latin1_ids_;  // id_of for code points below 256, -1 if absent
};

// A document as a model reads it: [BOS] + ids + [BOS], or its first block_size + 1
// tokens (all a model of that context reads).
using DocRef = std::span<const Token>;

// The documents of one training step, or a set to evaluate, and how many positions they
// predict (the sum of min(block_size, length - 1)): the loss of a step is the mean over
// those positions.
struct Batch {
  std::vector<DocRef> docs;
  int64_t tokens = 0;
  // A share of a step's batch (one process's, in a run under mpirun) keeps the whole
  // step's `tokens`, and says at which of the step's rows its first document starts.
  int64_t first_row = 0;
};

// The positions a model predicts in a document: min(block_size, length - 1).
int64_t predicted_rows(DocRef doc, int64_t block_size);

// Where a batch is cut between workers: part `part` of `parts` is a contiguous run of
// documents [begin, end), cut where the rows (row_starts[d] is the first row of
// document d, row_starts.back() all rows) come closest to equal shares. There are at
// most as many parts as documents; parts past that are empty. The fast engine's threads
// split a batch this way and so do the processes of a run under mpirun, which is why
// 2 processes of 1 thread train exactly as 1 process of 2 threads.
struct DocRange {
  int64_t begin = 0, end = 0;
};
DocRange batch_part(std::span<const int64_t> row_starts, int64_t part, int64_t parts);

// Documents as token sequences ([BOS] + ids + [BOS]), back to back.
struct TokenizedDocs {
  std::vector<Token> tokens;
  std::vector<int64_t> starts;  // size() + 1 entries

  int64_t size() const { return starts.empty() ? 0 : static_cast<int64_t>(starts.size()) - 1; }
  const Token* begin(int64_t i) const { return tokens.data() + starts[static_cast<size_t>(i)]; }
  int64_t length(int64_t i) const { return starts[static_cast<size_t>(i) + 1] - starts[static_cast<size_t>(i)]; }
};

// Tokenizes data.doc(which[0]), data.doc(which[1]), ... into `out`, reusing its memory.
// With max_tokens > 0 each document keeps at most that many tokens ([BOS] + its first
// characters): a model of block size T reads only T + 1, and a 10 MB line need not be
// copied at every step.
void tokenize_documents(const Dataset& data, const Tokenizer& tokenizer, std::span<const int64_t> which,
                        TokenizedDocs& out, int64_t max_tokens = 0);

}  // namespace microgpt

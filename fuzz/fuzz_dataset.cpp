// libFuzzer target: reading a data file. The input is the file's bytes; parse_dataset
// may refuse them with microgpt::Error (bad UTF-8, no documents), anything else that
// escapes is a bug. What parses then goes through the tokenizer, with the properties
// the trainer relies on checked (a failed check traps, so libFuzzer keeps the input):
// documents are non-empty and trimmed, every document encodes to [BOS] ids [BOS] and
// decodes back to its text, and tokenize_documents agrees with encode_document.
// Not here: loading through the file system (load_dataset adds only the read).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/text.h"
#include "data/dataset.h"
#include "data/text.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

// The same bytes as a continuous text: every character kept but \r (a line break),
// the vocabulary sorted and without BOS, every character a token of it.
void check_text(std::string_view bytes) {
  using namespace microgpt;
  Text t;
  try {
    t = parse_text(bytes, "fuzz.txt");
  } catch (const Error&) {
    return;
  }
  check(!t.chars.empty() && t.chars.find(U'\r') == std::u32string::npos && t.chars.size() <= bytes.size());
  const Tokenizer tokenizer(t.chars, /*with_bos=*/false);
  check(!tokenizer.has_bos() && tokenizer.vocab_size() == static_cast<int64_t>(tokenizer.chars().size()));
  for (char32_t c : t.chars) check(tokenizer.id_of(c) >= 0 && tokenizer.id_of(c) < tokenizer.vocab_size());
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microgpt;
  check_text(std::string_view(reinterpret_cast<const char*>(data), size));
  Dataset d;
  try {
    d = parse_dataset(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.txt");
  } catch (const Error&) {
    return 0;
  }
  check(d.size() >= 0 && (d.starts.empty() || d.starts.back() == static_cast<int64_t>(d.chars.size())));
  const Tokenizer tokenizer(d.chars);
  check(std::is_sorted(tokenizer.chars().begin(), tokenizer.chars().end()));
  for (int64_t i = 0; i < d.size(); i++) {
    const std::u32string_view doc = d.doc(i);
    check(!doc.empty() && !is_python_space(doc.front()) && !is_python_space(doc.back()));
    const std::vector<Token> ids = tokenizer.encode_document(doc);
    check(ids.size() == doc.size() + 2 && ids.front() == tokenizer.bos() && ids.back() == tokenizer.bos());
    for (size_t j = 1; j + 1 < ids.size(); j++) check(ids[j] >= 0 && ids[j] < tokenizer.bos());
    check(tokenizer.decode(ids) == encode_utf8(doc));
  }
  // The trainer's path: all documents at once, cut to a few tokens each.
  std::vector<int64_t> which(static_cast<size_t>(d.size()));
  std::iota(which.begin(), which.end(), int64_t{0});
  TokenizedDocs docs;
  tokenize_documents(d, tokenizer, which, docs, 4);
  check(docs.size() == d.size());
  for (int64_t i = 0; i < d.size(); i++) {
    const std::vector<Token> ids = tokenizer.encode_document(d.doc(i));
    const int64_t n = std::min<int64_t>(4, static_cast<int64_t>(ids.size()));
    check(docs.length(i) == n && std::equal(ids.begin(), ids.begin() + n, docs.begin(i)));
  }
  return 0;
}

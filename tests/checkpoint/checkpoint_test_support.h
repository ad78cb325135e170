// Helpers for the tests of checkpoints and of the commands that read them (here and in
// tests/cli): safetensors files taken apart and put back together (to check a header
// and to build damaged files), an independent CRC-32, a strict XML well-formedness
// check for the SVG files, small data files and the step lines of a run's output.
// Header-only, so that both test binaries can use it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/text.h"
#include "data/dataset.h"
#include "train/run.h"
#include "test_support.h"
#include "xml_check.h"

namespace microgpt::testing {

// ---- Running the trainer ------------------------------------------------------------------

// What run_training prints for `o`.
inline std::string train(const TrainOptions& o) {
  std::ostringstream out;
  run_training(o, out);
  return out.str();
}

// The Error that fn() throws; a test failure if it throws none.
template <class Fn>
Error error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error("");
}

// A run small enough for any test: 1 layer 8 wide with 2 heads, block 8, one thread, the
// default steps, no samples, no checkpoint; tests set what they need on top.
inline TrainOptions tiny_run(const std::string& engine) {
  TrainOptions o;
  o.engine.name = engine;
  o.engine.threads = 1;
  o.model.n_embd = 8;
  o.model.n_head = 2;
  o.model.block_size = 8;
  o.train.num_samples = 0;
  return o;
}

// ---- Data as a run sees it ------------------------------------------------------------------

// Tokenized documents as a Batch for an engine, each predicting min(block_size, len - 1)
// positions.
inline Batch batch_of(const TokenizedDocs& tokens, int64_t block_size) {
  Batch b;
  for (int64_t i = 0; i < tokens.size(); i++) {
    b.docs.emplace_back(tokens.begin(i), static_cast<size_t>(tokens.length(i)));
    b.tokens += std::min(block_size, tokens.length(i) - 1);
  }
  return b;
}

// A data file (none: the embedded names) shuffled as docs/algorithm.md §2 says a run
// shuffles it, written here apart from the run's DocumentSource so that tests can replay
// a run independently.
struct Shuffled {
  Dataset data;
  Tokenizer tokenizer = Tokenizer(U"");
  std::vector<int64_t> order;
  int64_t n_val = 0;
  // Documents begin..end-1 of the shuffled list, tokenized into `tokens` (at most
  // max_tokens each, 0: all).
  Batch documents(int64_t begin, int64_t end, TokenizedDocs& tokens, int64_t block_size, int64_t max_tokens = 0) const {
    tokenize_documents(data, tokenizer, std::span(order).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)),
                       tokens, max_tokens);
    return batch_of(tokens, block_size);
  }
};
inline Shuffled shuffled(const std::optional<std::string>& path, PyRandom& rng, double val_frac) {
  Shuffled s;
  s.data = path ? load_dataset(*path) : embedded_dataset();
  s.tokenizer = Tokenizer(s.data.chars);
  s.order.resize(static_cast<size_t>(s.data.size()));
  for (int64_t i = 0; i < s.data.size(); i++) s.order[static_cast<size_t>(i)] = i;
  rng.shuffle(s.order);
  if (val_frac > 0) {
    s.n_val = std::min<int64_t>(static_cast<int64_t>(std::nearbyint(static_cast<double>(s.data.size()) * val_frac)),
                                s.data.size() - 1);
  }
  return s;
}

// ---- CRC-32 -----------------------------------------------------------------------------

// Bit by bit, as zlib defines it (reflected polynomial 0xEDB88320, initial and final
// value 0xFFFFFFFF), so that it shares no code with core/files.h's table-driven one.
inline uint32_t slow_crc32(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline std::string hex8(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// ---- safetensors --------------------------------------------------------------------------

struct Safetensors {
  uint64_t header_len = 0;  // as the first 8 bytes say
  std::string header_text;  // the header's bytes, padding included
  nlohmann::json header;
  std::string data;  // everything after the header
};

// Takes a file apart; fails the test (and returns an empty header) when the bytes are
// not a safetensors file.
inline Safetensors parse_safetensors(const std::string& bytes) {
  Safetensors s;
  if (bytes.size() < 8) {
    ADD_FAILURE() << "shorter than 8 bytes";
    return s;
  }
  for (int i = 7; i >= 0; i--) {
    s.header_len = (s.header_len << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  }
  if (s.header_len > bytes.size() - 8) {
    ADD_FAILURE() << "header length " << s.header_len << " beyond the file (" << bytes.size() << " bytes)";
    return s;
  }
  s.header_text = bytes.substr(8, s.header_len);
  s.header = nlohmann::json::parse(s.header_text, nullptr, /*allow_exceptions=*/false);
  if (s.header.is_discarded()) ADD_FAILURE() << "header does not parse: " << s.header_text.substr(0, 200);
  s.data = bytes.substr(8 + s.header_len);
  return s;
}

// The header checksum a writer puts in: the CRC-32 of the header without it.
inline std::string header_crc(nlohmann::json header) {
  header["__metadata__"].erase("header_crc32");
  return hex8(slow_crc32(header.dump()));
}

// Puts a file together: the length prefix, the header (padded with spaces so the data
// starts 8-byte aligned, as microgpt writes it) and the data. A header with a checksum
// gets it computed again, as a writer of the format would, so that an edited header
// is refused for what was edited (or loads), never for the checksum alone;
// keep_header_crc keeps the one it has.
inline std::string build_safetensors(nlohmann::json header, const std::string& data, bool keep_header_crc = false) {
  if (!keep_header_crc && header.is_object() && header.contains("__metadata__") && header["__metadata__"].is_object() &&
      header["__metadata__"].contains("header_crc32")) {
    header["__metadata__"]["header_crc32"] = header_crc(header);
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = text.size();
  for (int i = 0; i < 8; i++) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + text + data;
}

// A metadata entry of a checkpoint file ("" when absent).
inline std::string checkpoint_meta(const std::string& path, const std::string& key) {
  const Safetensors s = parse_safetensors(read_file(path));
  if (!s.header.is_object() || !s.header.contains("__metadata__")) return "";
  return s.header["__metadata__"].value(key, "");
}

// ---- Data files and output ----------------------------------------------------------------

// The first n names of the embedded list, one a line.
inline std::string first_names(int64_t n) {
  const Dataset d = embedded_dataset();
  std::string text;
  for (int64_t i = 0; i < n && i < d.size(); i++) text += encode_utf8(std::u32string(d.doc(i))) + "\n";
  return text;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// The lines of a run's output that say what it computed: "step ...", "sample ...".
inline std::vector<std::string> result_lines(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& l : lines_of(text)) {
    if (l.rfind("step ", 0) == 0 || l.rfind("sample ", 0) == 0) out.push_back(l);
  }
  return out;
}

// The names of "sample  k: name" lines.
inline std::vector<std::string> sample_names(const std::string& text) {
  std::vector<std::string> names;
  for (const std::string& l : lines_of(text)) {
    if (l.rfind("sample ", 0) != 0) continue;
    const size_t colon = l.find(": ");
    names.push_back(colon == std::string::npos ? "" : l.substr(colon + 2));
  }
  return names;
}

inline size_t count_substr(const std::string& s, const std::string& sub) {
  size_t n = 0;
  for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + 1)) n++;
  return n;
}

using XmlCheck = XmlResult;  // tests/xml_check.h

}  // namespace microgpt::testing

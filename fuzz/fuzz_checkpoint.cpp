// libFuzzer target: loading a checkpoint. The input is the file's bytes, written to one
// temporary file per process and read with load_checkpoint, which may refuse it with
// microgpt::Error; anything else that escapes is a bug. What loads then goes the way
// `microgpt sample` takes it (the vocabulary becomes a tokenizer, which may refuse it
// with an Error), and must survive a round trip: saved again and loaded back, it is the
// same checkpoint (a failed check traps, so libFuzzer keeps the input).
// Seeds: real checkpoints that `make fuzz` writes with the built microgpt (both engines),
// and fuzz/checkpoint.dict, the header's JSON keys.
// Mutations: half of them libFuzzer's own, on bytes; the other half know the format
// (LLVMFuzzerCustomMutator below): they take the header apart and put in a value of
// another type, a number out of range, a structure nested up to 150,000 levels deep, an
// entry removed or one added, in the header, a tensor's entry or the JSON inside a
// metadata string, and then usually make both checksums right again, so the loader's
// checks past them are reached too.
// Not here: building an engine from the checkpoint (a valid header may ask for a model
// of any size up to the limits, which is not a parsing question).
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "core/files.h"
#include "data/dataset.h"

namespace {

// The input lives in a file that is unlinked as soon as it is opened, read through
// /proc/self/fd: a crash leaves nothing behind.
int input_fd = -1;
std::string input_path, resave_path;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

bool same(const microgpt::CheckpointData& a, const microgpt::CheckpointData& b) {
  const auto& ma = a.model;
  const auto& mb = b.model;
  const auto& ta = a.train;
  const auto& tb = b.train;
  return a.engine == b.engine && ma.vocab_size == mb.vocab_size && ma.n_embd == mb.n_embd && ma.n_head == mb.n_head &&
         ma.n_layer == mb.n_layer && ma.block_size == mb.block_size && ta.seed == tb.seed && ta.steps == tb.steps &&
         same_bits(ta.lr, tb.lr) && same_bits(ta.beta1, tb.beta1) && same_bits(ta.beta2, tb.beta2) &&
         same_bits(ta.eps, tb.eps) && same_bits(ta.init_std, tb.init_std) && same_bits(ta.temperature, tb.temperature) &&
         ta.num_samples == tb.num_samples && ta.batch_size == tb.batch_size && same_bits(ta.val_frac, tb.val_frac) &&
         ta.eval_every == tb.eval_every && ta.format == tb.format && ta.init == tb.init && ta.warmup == tb.warmup &&
         same_bits(ta.dropout, tb.dropout) && same_bits(ta.ema, tb.ema) && ta.reshuffle == tb.reshuffle && a.vocab == b.vocab && a.step == b.step && a.threads == b.threads &&
         a.data_source == b.data_source && a.data_docs == b.data_docs && a.data_crc == b.data_crc && a.f64 == b.f64 &&
         same_bits(a.params, b.params) && same_bits(a.adam_m, b.adam_m) && same_bits(a.adam_v, b.adam_v) &&
         a.rng.mt == b.rng.mt && a.rng.index == b.rng.index && a.rng.gauss_next.has_value() == b.rng.gauss_next.has_value() &&
         (!a.rng.gauss_next || same_bits(*a.rng.gauss_next, *b.rng.gauss_next));
}

}  // namespace

// Files in $TMPDIR, else /dev/shm: a checkpoint that loads is saved again, and saving
// syncs the file to disk, which on a disk costs more than all the parsing.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp && *tmp ? tmp : "/tmp";
  if (!(tmp && *tmp) && ::access("/dev/shm", W_OK) == 0) dir = "/dev/shm";
  const std::string base = dir + "/microgpt-fuzz-checkpoint-" + std::to_string(::getpid());
  input_fd = ::open((base + ".in").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (input_fd < 0 || ::unlink((base + ".in").c_str()) != 0) {
    std::perror(("fuzz_checkpoint: " + base + ".in").c_str());
    std::abort();
  }
  input_path = "/proc/self/fd/" + std::to_string(input_fd);
  resave_path = base + ".resaved";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microgpt;
  if (::ftruncate(input_fd, 0) != 0 ||
      (size > 0 && ::pwrite(input_fd, data, size, 0) != static_cast<ssize_t>(size))) {
    std::abort();
  }

  CheckpointData c;
  try {
    c = load_checkpoint(input_path);
  } catch (const Error&) {
    return 0;
  }
  try {
    (void)Tokenizer::from_chars(c.vocab, !c.train.is_text());
  } catch (const Error&) {
  }
  save_checkpoint(resave_path, c);  // what loads must save: an Error here is a bug too
  const CheckpointData again = load_checkpoint(resave_path);
  std::remove(resave_path.c_str());
  check(same(c, again));
  return 0;
}

namespace {

using nlohmann::json;

// Raw JSON text for a value of any kind: `depth` > 0 gives arrays or objects nested that
// deep (as text: never built as a json, which would recurse to print it).
std::string raw_value(std::minstd_rand& rng) {
  switch (rng() % 10) {
    case 0: case 1: case 2: case 3: {
      // nesting a few levels deep, or tens of thousands of levels, where code that
      // recurses runs out of stack (in between is neither, and only fills the corpus)
      const int depth = rng() % 2 ? static_cast<int>(1 + rng() % 8) : static_cast<int>(20000 + rng() % 130000);
      const bool objects = rng() % 2;
      std::string text;
      for (int i = 0; i < depth; i++) text += objects ? "{\"k\":" : "[";
      text += "0";
      for (int i = 0; i < depth; i++) text += objects ? "}" : "]";
      return text;
    }
    case 9: return "1e300";
    case 4: return "-1";
    case 5: return "18446744073709551616";
    case 6: return "\"" + std::string(rng() % 3 == 0 ? 100000 : 3, 'x') + "\"";
    case 7: return "null";
    case 8: return rng() % 2 ? "true" : "[]";
    default: return std::to_string(static_cast<int64_t>(rng() % 100000) - 50000) + ".5";
  }
}

// `j` dumped with the (string) value at `key` replaced by raw text; with `key` absent,
// the raw text is added under it.
std::string dump_with(json j, const std::string& key, const std::string& raw) {
  const std::string mark = "\u0001microgpt-fuzz-mark\u0001";
  j[key] = mark;
  std::string text = j.dump();
  const std::string quoted = json(mark).dump();
  const size_t at = text.find(quoted);
  if (at != std::string::npos) text.replace(at, quoted.size(), raw);
  return text;
}

// Parses JSON that a mutation may have nested deeply, keeping nothing deeper than a few
// levels (the mutator itself must never walk a deep structure): discarded if it was
// deeper or does not parse.
json parse_shallow(const std::string& text) {
  bool deep = false;
  json j = json::parse(
      text,
      [&deep](int depth, json::parse_event_t event, json&) {
        const bool opens = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
        if (opens && depth >= 4) deep = true;
        return !(opens && depth >= 4);
      },
      /*allow_exceptions=*/false);
  return deep ? json(json::value_t::discarded) : j;
}

std::string random_key(const json& obj, std::minstd_rand& rng) {
  if (!obj.is_object() || obj.empty() || rng() % 8 == 0) return rng() % 2 ? "x" : "__extra__";
  auto it = obj.begin();
  std::advance(it, static_cast<long>(rng() % obj.size()));
  return it.key();
}

}  // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed);
  if (rng() % 2 == 0 || size < 8) return LLVMFuzzerMutate(data, size, max_size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
  if (n > size - 8) return LLVMFuzzerMutate(data, size, max_size);
  const std::string text(reinterpret_cast<const char*>(data) + 8, static_cast<size_t>(n));
  // An input that is already deep is left to the byte mutations.
  json header = parse_shallow(text);
  if (header.is_discarded() || !header.is_object()) return LLVMFuzzerMutate(data, size, max_size);
  std::string tensors(reinterpret_cast<const char*>(data) + 8 + n, size - 8 - static_cast<size_t>(n));
  json& meta = header["__metadata__"];
  if (!meta.is_object()) meta = json::object();

  std::string new_header;
  const std::string raw = raw_value(rng);
  switch (rng() % 4) {
    case 0: {  // a field of the JSON inside a metadata string (config, data, rng, vocab)
      const char* holding_json[] = {"config", "config", "data", "rng", "vocab"};
      const std::string key = rng() % 5 ? holding_json[rng() % 5] : random_key(meta, rng);
      const json& value = meta.contains(key) ? meta[key] : json();
      json inner = parse_shallow(value.is_string() ? value.get<std::string>() : std::string("{}"));
      if (inner.is_discarded()) inner = json::object();
      std::string inner_text;
      if (inner.is_array() && !inner.empty()) {
        inner[rng() % inner.size()] = "\u0001microgpt-fuzz-mark\u0001";
        inner_text = inner.dump();
        const std::string quoted = json("\u0001microgpt-fuzz-mark\u0001").dump();
        inner_text.replace(inner_text.find(quoted), quoted.size(), raw);
      } else {
        if (!inner.is_object()) inner = json::object();
        inner_text = dump_with(inner, random_key(inner, rng), raw);
      }
      meta[key] = inner_text;
      break;
    }
    case 1: {  // a metadata entry itself
      json h = header;
      h["__metadata__"] = json::object();
      new_header = dump_with(meta, random_key(meta, rng), raw);
      std::string outer = h.dump();
      const std::string empty = "\"__metadata__\":{}";
      outer.replace(outer.find(empty), empty.size(), "\"__metadata__\":" + new_header);
      new_header = outer;
      break;
    }
    case 2: {  // a field of a tensor's entry, or a whole entry
      const std::string name = random_key(header, rng);
      if (name == "__metadata__" || !header[name].is_object()) {
        new_header = dump_with(header, name, raw);
      } else {
        json h = header;
        h[name] = "\u0001microgpt-fuzz-mark\u0001";
        const std::string entry = dump_with(header[name], random_key(header[name], rng), raw);
        new_header = h.dump();
        const std::string quoted = json("\u0001microgpt-fuzz-mark\u0001").dump();
        new_header.replace(new_header.find(quoted), quoted.size(), entry);
      }
      break;
    }
    default:  // an entry removed
      if (rng() % 2) {
        meta.erase(random_key(meta, rng));
      } else {
        header.erase(random_key(header, rng));
      }
  }
  if (new_header.empty()) {
    // Checksums made right again (usually), so what follows them in the loader is reached.
    if (rng() % 4 != 0 && header.contains("__metadata__") && header["__metadata__"].is_object()) {
      char crc[16];
      std::snprintf(crc, sizeof crc, "%08x", microgpt::crc32(tensors));
      header["__metadata__"]["tensor_crc32"] = crc;
      json without = header;
      without["__metadata__"].erase("header_crc32");
      std::snprintf(crc, sizeof crc, "%08x", microgpt::crc32(without.dump()));
      header["__metadata__"]["header_crc32"] = crc;
    }
    new_header = header.dump();
  }
  new_header.append((8 - new_header.size() % 8) % 8, ' ');
  const size_t total = 8 + new_header.size() + tensors.size();
  if (total > max_size) return LLVMFuzzerMutate(data, size, max_size);
  const uint64_t len = new_header.size();
  for (int i = 0; i < 8; i++) data[i] = static_cast<uint8_t>((len >> (8 * i)) & 0xFF);
  std::memcpy(data + 8, new_header.data(), new_header.size());
  std::memcpy(data + 8 + new_header.size(), tensors.data(), tensors.size());
  return total;
}

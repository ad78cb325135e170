// libFuzzer target: loading a checkpoint. The input is the file's bytes, written to one
// temporary file per process and read with load_checkpoint, which may refuse it with
// microgpt::Error; anything else that escapes is a bug. What loads then goes the way
// `microgpt sample` takes it (the vocabulary becomes a tokenizer, which may refuse it
// with an Error), and must survive a round trip: saved again and loaded back, it is the
// same checkpoint (a failed check traps, so libFuzzer keeps the input).
// Seeds: real checkpoints that `make fuzz` writes with the built microgpt (both engines),
// and fuzz/checkpoint.dict, the header's JSON keys.
// Not here: building an engine from the checkpoint (a valid header may ask for a model
// of any size up to the limits, which is not a parsing question).
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
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
         ta.eval_every == tb.eval_every && a.vocab == b.vocab && a.step == b.step && a.threads == b.threads &&
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
    (void)Tokenizer::from_chars(c.vocab);
  } catch (const Error&) {
  }
  save_checkpoint(resave_path, c);  // what loads must save: an Error here is a bug too
  const CheckpointData again = load_checkpoint(resave_path);
  std::remove(resave_path.c_str());
  check(same(c, again));
  return 0;
}

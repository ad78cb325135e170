#include "train/compare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string_view>

#include "core/error.h"
#include "core/files.h"
#include "core/text.h"
#include "inspect/embed.h"
#include "inspect/plots.h"
#include "model/inputs.h"

namespace microgpt {

namespace {

struct Variant {
  const char* name;
  const char* wte;
  const char* wpe;
  const char* combine;
  const char* what;  // for the table's legend
};
constexpr Variant kVariants[] = {
    {"learned", "learned", "learned", "add", "learned token and position vectors, added (microgpt)"},
    {"frozen", "frozen", "learned", "add", "random token vectors, never trained"},
    {"onehot", "onehot", "learned", "add", "a one-hot vector per token, never trained"},
    {"scalar", "scalar", "learned", "add", "the token id / (vocab - 1) in one channel: just the token id"},
    {"no-wpe", "learned", "none", "add", "no position vectors"},
    {"sinusoidal", "learned", "sinusoidal", "add", "fixed sinusoidal position vectors"},
    {"concat", "learned", "learned", "concat", "token and position vectors side by side, each half as wide"},
};

const Variant& find_variant(const std::string& name) {
  for (const Variant& v : kVariants) {
    if (name == v.name) return v;
  }
  std::string names;
  for (const Variant& v : kVariants) names += std::string(names.empty() ? "" : ", ") + v.name;
  throw usage_error("--variants: unknown variant '" + name + "' (accepted: " + names + ")");
}

// What a run tells: its validation curve and its samples.
class Recorder final : public Observer {
 public:
  void on_validation(const Validated& e) override { curve.emplace_back(e.step, e.loss); }
  void on_sample(const SampleDrawn& e) override { samples.push_back(e.text); }
  LossSeries curve;
  std::vector<std::u32string> samples;
};

struct Result {
  std::string variant;
  uint64_t seed = 0;
  double val_loss = NAN;
  int64_t params = 0;
  ClassSimilarity similarity;
  bool geometry = false;  // the token vectors are trained or random (not one-hot or a scalar)
  LossSeries curve;
  std::vector<std::u32string> samples;
  uint32_t batches = 0;  // CRC-32 of the token ids of every training batch
  double seconds = 0;
};

// The checksum of every training batch's token ids, in step order.
uint32_t batches_checksum(DataSource& data, int64_t steps) {
  uint32_t crc = 0;
  for (int64_t s = 0; s < steps; s++) {
    for (const DocRef& doc : data.batch(s).docs) {
      crc = crc32(std::string_view(reinterpret_cast<const char*>(doc.data()), doc.size_bytes()), crc);
    }
  }
  return crc;
}

// A sample for the table: one line, at most `width` characters.
std::string table_sample(const std::u32string& text, size_t width) {
  std::u32string s = text.substr(0, width);
  for (char32_t& c : s) {
    if (c == U'\n' || c == U'\r' || c == U'\t') c = U' ';
  }
  return encode_utf8(s) + (text.size() > width ? "..." : "");
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string pad(std::string s, size_t width) {
  // characters, not bytes: UTF-8 continuation bytes do not count
  const auto shown = static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  if (shown < width) s += std::string(width - shown, ' ');
  return s;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / static_cast<double>(v.size());
}
// The sample standard deviation (n - 1); 0 for one value.
double spread_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

}  // namespace

const std::vector<std::string>& compare_variants() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Variant& v : kVariants) n.emplace_back(v.name);
    return n;
  }();
  return names;
}

void apply_variant(const std::string& variant, TrainConfig& train) {
  const Variant& v = find_variant(variant);
  train.wte = v.wte;
  train.wpe = v.wpe;
  train.combine = v.combine;
}

void run_compare(const CompareCommand& command, std::ostream& out, std::ostream* progress) {
  if (command.variants.empty()) throw usage_error("--variants: no variant given");
  for (const std::string& v : command.variants) find_variant(v);
  if (command.seeds < 1) throw usage_error("--seeds: expected a whole number from 1, got " + std::to_string(command.seeds));
  TrainOptions base = command.base;
  if (base.engine.name != "fast") throw usage_error("compare trains on the fast engine (the reference engine is microgpt.py's, inputs and all)");
  if (base.train.val_frac <= 0.0) {
    throw usage_error("--val-frac 0: compare ranks the inputs by their validation loss, so it needs some held out");
  }
  if (base.train.eval_every <= 0) base.train.eval_every = std::max<int64_t>(1, base.train.steps / 20);
  base.train.num_samples = command.samples;
  base.out_path.reset();
  base.log_path.reset();
  base.plot_loss_path.reset();
  base.resume_path.reset();
  base.progress = nullptr;
  base.progress_mode = Progress::Mode::off;
  // Outputs are checked before hours of training, not after, and none may be the data
  // or the other output (the log written over the names, the plot over the log).
  std::vector<FileRole> files;
  if (base.data_path) files.push_back({"--data", *base.data_path, false});
  if (command.log_path) files.push_back({"--log", *command.log_path, true});
  if (command.plot_path) files.push_back({"--plot", *command.plot_path, true});
  check_distinct_files(files);
  if (command.log_path) check_writable(*command.log_path, "log file");
  if (command.plot_path) check_writable(*command.plot_path, "plot");

  std::vector<Result> results;
  std::map<std::string, std::string> impossible;  // variant -> why
  std::string data_name;
  int64_t vocab = 0;
  for (int64_t k = 0; k < command.seeds; k++) {
    for (const std::string& variant : command.variants) {
      if (impossible.count(variant)) continue;
      TrainOptions o = base;
      o.train.seed = base.train.seed + static_cast<uint64_t>(k);
      apply_variant(variant, o.train);
      Recorder recorder;
      const auto start = std::chrono::steady_clock::now();
      TrainingRun run(o);
      run.add_observer(recorder);
      try {
        run.prepare();
      } catch (const Error& e) {
        // a variant this model cannot have (a one-hot wider than n_embd): a row that says so
        if (e.kind() != Error::Kind::usage || variant == "learned") throw;
        impossible[variant] = e.what();
        continue;
      }
      if (run.data().validation_size() == 0) {  // (a few documents: their share rounds to none)
        throw usage_error("--val-frac " + python_float_repr(base.train.val_frac) + " of the " +
                          std::to_string(run.data().train_size()) +
                          " documents holds none out, and compare ranks the inputs by their validation loss: "
                          "raise --val-frac or give more documents");
      }
      while (run.steps_left()) run.step();
      run.finish();
      Result r;
      r.variant = variant;
      r.seed = o.train.seed;
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      r.curve = recorder.curve;
      r.val_loss = r.curve.empty() ? NAN : r.curve.back().second;
      r.params = trained_param_count(run.config(), o.train);
      r.batches = batches_checksum(run.data(), o.train.steps);
      r.samples = recorder.samples;
      r.geometry = o.train.wte == "learned" || o.train.wte == "frozen";
      if (r.geometry) {
        CheckpointData c;
        run.engine().save_state(c);
        const EmbeddingView view = embedding_view_from_params(run.config(), run.data().tokenizer().chars(), c.params);
        r.similarity = class_similarity(view);
      }
      data_name = run.data().identity().source;
      vocab = run.config().vocab_size;
      if (progress) {
        *progress << "compare: " << variant << ", seed " << r.seed << ": validation loss " << fixed(r.val_loss, 4)
                  << " (" << fixed(r.seconds, 1) << " s)\n";
      }
      results.push_back(std::move(r));
    }
  }

  if (results.empty()) throw usage_error(impossible.begin()->second);  // no variant could be trained

  // The table: one row per variant.
  const TrainOptions& b = base;
  out << "compare: " << command.variants.size() << " variants x " << command.seeds << " seed"
      << (command.seeds > 1 ? "s" : "") << " (" << b.train.seed << (command.seeds > 1 ? ".." + std::to_string(b.train.seed + static_cast<uint64_t>(command.seeds) - 1) : "")
      << ") on " << data_name << " (" << vocab << " tokens): " << b.train.steps << " steps, " << b.model.n_layer
      << " layer" << (b.model.n_layer > 1 ? "s" : "") << " x " << b.model.n_embd << " wide, block " << b.model.block_size
      << ", batch " << b.train.batch_size << ", " << fixed(b.train.val_frac * 100, 0) << "% held out\n";
  // The variants of a seed share their data order and every other weight's start, so
  // a variant's difference from learned is best seen seed by seed (paired).
  std::map<uint64_t, double> learned_loss;
  for (const Result& r : results) {
    if (r.variant == "learned") learned_loss[r.seed] = r.val_loss;
  }
  const bool paired = !learned_loss.empty();
  out << pad("variant", 11) << pad("params", 8) << pad("val loss", 18) << (paired ? pad("vs learned", 19) : "")
      << pad("vowels", 8) << pad("consonants", 11) << pad("across", 8) << "samples\n";
  for (const std::string& variant : command.variants) {
    if (impossible.count(variant)) {
      out << pad(variant, 11) << "cannot: " << impossible[variant] << "\n";
      continue;
    }
    std::vector<double> losses, vowels, consonants, across, differences;
    int64_t params = 0;
    bool geometry = false;
    std::vector<std::u32string> samples;
    for (const Result& r : results) {
      if (r.variant != variant) continue;
      losses.push_back(r.val_loss);
      if (learned_loss.count(r.seed)) differences.push_back(r.val_loss - learned_loss[r.seed]);
      vowels.push_back(r.similarity.within_vowels);
      consonants.push_back(r.similarity.within_consonants);
      across.push_back(r.similarity.across);
      params = r.params;
      geometry = r.geometry;
      if (samples.empty()) samples = r.samples;  // the first seed's
    }
    std::string loss = fixed(mean_of(losses), 4);
    if (losses.size() > 1) loss += " ± " + fixed(spread_of(losses), 4);
    std::string shown;
    for (const std::u32string& s : samples) {
      if (!shown.empty()) shown += ", ";
      shown += table_sample(s, b.train.is_text() ? 40 : 16);
    }
    std::string versus = "-";
    if (variant != "learned" && !differences.empty()) {
      versus = (mean_of(differences) >= 0 ? "+" : "") + fixed(mean_of(differences), 4);
      if (differences.size() > 1) versus += " ± " + fixed(spread_of(differences), 4);
    }
    out << pad(variant, 11) << pad(std::to_string(params), 8) << pad(loss, 18) << (paired ? pad(versus, 19) : "")
        << pad(geometry ? fixed(mean_of(vowels), 2) : "-", 8) << pad(geometry ? fixed(mean_of(consonants), 2) : "-", 11)
        << pad(geometry ? fixed(mean_of(across), 2) : "-", 8) << shown << "\n";
  }
  out << "val loss: mean" << (command.seeds > 1 ? " ± standard deviation over the seeds" : "")
      << (paired ? "; vs learned: its val loss minus learned's with the same seed, mean" +
                       std::string(command.seeds > 1 ? " ± standard deviation" : "")
                 : "")
      << "; vowels, consonants, across: mean cosine similarity of the token vectors within and across the classes "
         "(- where they are fixed by construction)\n";

  if (command.log_path) {
    std::string lines;
    for (const Result& r : results) {
      std::vector<std::string> samples;
      for (const std::u32string& t : r.samples) samples.push_back(encode_utf8(t));
      nlohmann::json j = {{"variant", r.variant},
                          {"seed", r.seed},
                          {"val_loss", r.val_loss},
                          {"params", r.params},
                          {"val_curve", r.curve},
                          {"samples", samples},
                          {"batches", r.batches},
                          {"seconds", r.seconds}};
      if (r.geometry) {
        j["within_vowels"] = r.similarity.within_vowels;
        j["within_consonants"] = r.similarity.within_consonants;
        j["across"] = r.similarity.across;
      }
      lines += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    write_file_atomic(*command.log_path, lines);
  }
  if (command.plot_path) {
    std::vector<NamedSeries> curves;
    for (const std::string& variant : command.variants) {
      if (impossible.count(variant)) continue;
      // the mean over the seeds at each validation step
      std::map<int64_t, std::vector<double>> at;
      for (const Result& r : results) {
        if (r.variant != variant) continue;
        for (const auto& [step, loss] : r.curve) at[step].push_back(loss);
      }
      NamedSeries c{variant, {}};
      for (const auto& [step, losses] : at) c.points.emplace_back(step, mean_of(losses));
      curves.push_back(std::move(c));
    }
    write_curves_svg(*command.plot_path, curves,
                     "Validation loss by input (mean of " + std::to_string(command.seeds) + " seed" +
                         (command.seeds > 1 ? "s" : "") + ")");
  }
}

}  // namespace microgpt

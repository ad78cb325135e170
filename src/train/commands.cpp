#include "train/commands.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <unordered_set>

#include "core/error.h"
#include "core/files.h"
#include "core/text.h"
#include "inspect/embed.h"
#include "model/inputs.h"
#include "model/limits.h"
#include "train/data_source.h"
#include "train/reporters.h"
#include "train/sampler.h"

namespace microgpt {

namespace {

// The characters of `text` as tokens; characters outside the vocabulary are an error
// that names them.
std::vector<Token> tokens_of(const Tokenizer& tokenizer, const std::u32string& text, const std::string& what,
                             Error::Kind kind = Error::Kind::usage) {
  std::vector<Token> ids;
  std::u32string unknown;
  for (char32_t c : text) {
    const Token id = tokenizer.id_of(c);
    if (id < 0) {
      if (unknown.find(c) == std::u32string::npos) unknown.push_back(c);
    } else {
      ids.push_back(id);
    }
  }
  if (!unknown.empty()) {
    std::string list;
    // (each as one_line shows it: a NUL would end the message's C string)
    for (char32_t c : unknown) list += (list.empty() ? "'" : ", '") + one_line(encode_utf8(std::u32string(1, c))) + "'";
    throw Error(what + ": " + list + (unknown.size() == 1 ? " is" : " are") + " not in the model's vocabulary", kind);
  }
  return ids;
}

// The data a checkpoint was trained on: the embedded list, `given`, or the stored path if
// it still holds the same documents.
Dataset training_data(const CheckpointData& c, const std::optional<std::string>& given, const std::string& model_path,
                      const std::string& why) {
  if (given) return load_dataset(*given);
  if (c.data_source == kEmbeddedSource) return embedded_dataset();
  if (std::filesystem::exists(c.data_source)) {
    Dataset d = load_dataset(c.data_source);
    if (d.size() == c.data_docs && dataset_crc(d) == c.data_crc) return d;
  }
  throw usage_error(why + ": model '" + model_path + "' was trained on '" + c.data_source +
                    "', which is not there as it was; give it with --data");
}

}  // namespace

LoadedModel load_model(const std::string& path, int64_t threads) {
  LoadedModel m{load_checkpoint(path), Tokenizer::from_chars(U""), nullptr};
  m.tokenizer = Tokenizer::from_chars(m.checkpoint.vocab, /*with_bos=*/!m.checkpoint.train.is_text());
  EngineOptions engine;
  // A model the GPU trained is the fast engine's float32 model: it runs on the CPU here.
  engine.name = m.checkpoint.engine == "gpu" ? "fast" : m.checkpoint.engine;
  engine.threads = threads;
  TrainConfig train = m.checkpoint.train;
  m.engine = make_engine(engine, m.checkpoint.model, train);
  m.engine->load_state(m.checkpoint);
  return m;
}

namespace {

// A text model writes on: --max-len characters (500 by default, the prefix included),
// as many as wanted past the block size, handed on as they come.
void draw_text_samples(const SampleCommand& cmd, const LoadedModel& m, SampleOptions o, const SampleSink& sink) {
  const CheckpointData& c = m.checkpoint;
  const std::vector<Token> prefix = o.prefix;
  o.prefix.clear();
  const int64_t length = o.max_len > 0 ? o.max_len : kTextSampleLength;
  PyRandom rng(cmd.seed.value_or(0));
  if (!cmd.seed) rng.set_state(c.rng);  // where training left it: the text train printed
  const int64_t wanted = cmd.num_samples.value_or(c.train.num_samples);
  const std::vector<Token> start = prefix.empty() ? std::vector<Token>{text_start_token(m.tokenizer)} : prefix;
  for (int64_t i = 1; i <= wanted; i++) {
    if (sink.begin) sink.begin(i, wanted);
    std::u32string text = m.tokenizer.chars_of(prefix);
    if (sink.write) sink.write(text);
    sample_text(*m.engine, rng, o, start, c.model.block_size, length - static_cast<int64_t>(prefix.size()), [&](Token t) {
      const std::u32string ch = m.tokenizer.chars_of(std::span(&t, 1));
      text += ch;
      if (sink.write) sink.write(ch);
    });
    sink.end(i, text);
  }
}

}  // namespace

namespace {

// The checks that need no model, made before one is loaded.
std::u32string checked_prefix(const SampleCommand& cmd) {
  if (cmd.num_samples) check(limits::num_samples, *cmd.num_samples);
  if (cmd.temperature) check(limits::sample_temperature, *cmd.temperature);
  check(limits::top_k, cmd.top_k);
  check(limits::top_p, cmd.top_p);
  check(limits::max_len, cmd.max_len);
  const auto prefix_text = decode_utf8(cmd.prefix);
  if (!prefix_text) throw usage_error("--prefix is not valid UTF-8");
  return *prefix_text;
}

}  // namespace

SampleOptions sample_options(const SampleCommand& cmd, const LoadedModel& m) {
  const std::u32string prefix_text = checked_prefix(cmd);
  const CheckpointData& c = m.checkpoint;
  SampleOptions o;
  o.temperature = cmd.temperature.value_or(c.train.temperature);
  o.top_k = cmd.top_k;
  o.top_p = cmd.top_p;
  o.prefix = tokens_of(m.tokenizer, prefix_text, "--prefix");
  o.max_len = cmd.max_len;
  if (c.train.is_text() && cmd.novel) {
    throw usage_error("--novel is for models of names; '" + cmd.model_path + "' is a text model");
  }
  // (a text model writes kTextSampleLength characters unless told)
  const int64_t length = c.train.is_text() && o.max_len == 0 ? kTextSampleLength : o.max_len;
  if (length > 0 && length <= static_cast<int64_t>(o.prefix.size())) {
    throw usage_error("--max-len " + std::to_string(length) + " leaves no room after the " +
                      std::to_string(o.prefix.size()) + " characters of --prefix");
  }
  if (!c.train.is_text()) check_prefix_fits(o, c.model.block_size);
  return o;
}

void draw_samples(const SampleCommand& cmd, const LoadedModel& m, const SampleSink& sink) {
  const SampleOptions o = sample_options(cmd, m);
  const CheckpointData& c = m.checkpoint;
  if (c.train.is_text()) return draw_text_samples(cmd, m, o, sink);
  std::unordered_set<std::u32string> known;
  if (cmd.novel) {
    const Dataset d = training_data(c, cmd.data_path, cmd.model_path, "--novel");
    for (int64_t i = 0; i < d.size(); i++) known.emplace(d.doc(i));
  }
  PyRandom rng(cmd.seed.value_or(0));
  if (!cmd.seed) rng.set_state(c.rng);  // where training left it: the names train printed
  const int64_t wanted = cmd.num_samples.value_or(c.train.num_samples);
  // --novel draws again while a name is in the training data. Greedy sampling draws the
  // same name every time, so there one miss is final; otherwise the search gives up
  // after kMaxMisses draws in a row that found nothing new.
  constexpr int64_t kMaxMisses = 10000;
  const bool greedy = o.temperature == 0.0 || o.top_k == 1;
  int64_t drawn = 0, misses = 0;
  while (drawn < wanted) {
    const std::u32string text = m.tokenizer.chars_of(sample_sequence(*m.engine, rng, o, m.tokenizer.bos(), c.model.block_size));
    if (cmd.novel && known.contains(text)) {
      misses++;
      if (greedy) {
        throw Error("found " + std::to_string(drawn) + " of " + std::to_string(wanted) +
                    " names that are not in the training data: greedy sampling draws '" + encode_utf8(text) +
                    "' every time, and it is a training name (raise --temperature)");
      }
      if (misses >= kMaxMisses) {
        throw Error("found " + std::to_string(drawn) + " of " + std::to_string(wanted) +
                    " names that are not in the training data: the last " + std::to_string(kMaxMisses) +
                    " draws were all training names (raise --temperature?)");
      }
      continue;
    }
    misses = 0;
    drawn++;
    sink.end(drawn, text);
  }
}

void run_sample(const SampleCommand& cmd, std::ostream& out) {
  checked_prefix(cmd);
  check(limits::threads, cmd.threads);
  if (cmd.log_path) check_writable(*cmd.log_path, "log file");
  LoadedModel m = load_model(cmd.model_path, cmd.threads);
  const CheckpointData& c = m.checkpoint;
  {
    std::vector<FileRole> files = {{"--model", cmd.model_path, false}};
    if (cmd.data_path) {
      files.push_back({"--data", *cmd.data_path, false});
    } else if (cmd.novel && c.data_source != kEmbeddedSource) {
      files.push_back({"the model's training data", c.data_source, false});
    }
    if (cmd.log_path) files.push_back({"--log", *cmd.log_path, true});
    check_distinct_files(files);
  }
  std::optional<JsonLines> log;
  if (cmd.log_path) log.emplace(*cmd.log_path, false);
  const bool text = c.train.is_text();
  SampleSink sink;
  if (text) {
    // a text model's characters are printed as they come, each sample under a header
    sink.begin = [&](int64_t i, int64_t n) {
      if (n > 1) out << "--- sample " << i << " of " << n << " ---\n";
    };
    sink.write = [&](const std::u32string& chars) {
      out << encode_utf8(chars) << std::flush;
      check_output(out);
    };
  }
  sink.end = [&](int64_t i, const std::u32string& sample) {
    out << (text ? std::string() : sample_line(i, sample)) << "\n";
    check_output(out);
    if (log) log->sample(i, sample);
  };
  draw_samples(cmd, m, sink);
  if (log) log->close();
}

void run_eval(const EvalCommand& cmd, std::ostream& out) {
  check(limits::threads, cmd.threads);
  if (cmd.data_path) {
    const FileRole files[] = {{"--model", cmd.model_path, false}, {"--data", *cmd.data_path, false}};
    check_distinct_files(files);
  }
  LoadedModel m = load_model(cmd.model_path, cmd.threads);
  const CheckpointData& c = m.checkpoint;
  TokenizedDocs tokens;
  std::vector<Token> text_tokens;
  Batch windows;
  std::vector<DocRef> docs;
  std::unique_ptr<DataSource> held_out;
  std::string what;
  const bool text = c.train.is_text();
  if (cmd.data_path && text) {
    // A text is read in windows block_size apart, every character but the first predicted.
    const Text t = load_text(*cmd.data_path);
    const std::vector<Token> ids = tokens_of(m.tokenizer, t.chars, "data file '" + *cmd.data_path + "'", Error::Kind::runtime);
    text_windows(ids, c.model.block_size, text_tokens, windows);
    docs = windows.docs;
    what = "'" + *cmd.data_path + "'";
  } else if (cmd.data_path) {
    const Dataset d = load_dataset(*cmd.data_path);
    std::vector<int64_t> all(static_cast<size_t>(d.size()));
    for (int64_t i = 0; i < d.size(); i++) all[static_cast<size_t>(i)] = i;
    tokens_of(m.tokenizer, d.chars, "data file '" + *cmd.data_path + "'", Error::Kind::runtime);  // all known
    tokenize_documents(d, m.tokenizer, all, tokens, c.model.block_size + 1);
    for (int64_t i = 0; i < tokens.size(); i++) docs.emplace_back(tokens.begin(i), static_cast<size_t>(tokens.length(i)));
    what = "'" + *cmd.data_path + "'";
  } else {
    if (!(c.train.val_frac > 0.0)) {
      throw usage_error("model '" + cmd.model_path +
                        "' was trained without --val-frac, so it has no held-out documents; give a file with --data");
    }
    // The held-out share exactly as training drew it: the same data, split the same way
    // (documents shuffled by the same seed first).
    const bool embedded = c.data_source == kEmbeddedSource;
    if (!embedded && !std::filesystem::exists(c.data_source)) {
      throw usage_error("eval of the held-out data: model '" + cmd.model_path + "' was trained on '" + c.data_source +
                        "', which is not there; give a file with --data");
    }
    PyRandom rng(c.train.seed);
    held_out = make_data_source(embedded ? std::nullopt : std::optional<std::string>(c.data_source), rng, c.train,
                                c.model.block_size);
    const DataIdentity id = held_out->identity();
    if (id.docs != c.data_docs || id.crc != c.data_crc) {
      throw Error("the data is not what model '" + cmd.model_path + "' was trained on");
    }
    docs = held_out->validation().docs;
    what = "the " + std::to_string(held_out->validation_size()) + " held-out " + (text ? "characters" : "documents") +
           " of '" + c.data_source + "'";
  }
  const LossSum loss = m.engine->evaluate(docs);
  char line[256];
  std::snprintf(line, sizeof line, "loss per token %.4f | perplexity %.3f | %lld %s, %lld tokens", loss.mean(),
                std::exp(loss.mean()), static_cast<long long>(docs.size()), text ? "windows" : "documents",
                static_cast<long long>(loss.tokens));
  out << "evaluating " << what << "\n" << line << "\n";
}

void run_embed(const EmbedCommand& cmd, std::ostream& out) {
  check(limits::top, cmd.top);
  if (cmd.export_prefix && cmd.export_prefix->empty()) throw usage_error("--export: the prefix of the files is empty");
  std::vector<FileRole> files = {{"--model", cmd.model_path, false}};
  if (cmd.plot_path) files.push_back({"--plot", *cmd.plot_path, true});
  if (cmd.heatmap_path) files.push_back({"--heatmap", *cmd.heatmap_path, true});
  if (cmd.export_prefix) {
    files.push_back({"--export", *cmd.export_prefix + "_vectors.tsv", true});
    files.push_back({"--export", *cmd.export_prefix + "_labels.tsv", true});
  }
  check_distinct_files(files);
  for (const FileRole& f : files) {
    if (f.output) check_writable(f.path, f.flag == "--plot" ? "plot" : f.flag == "--heatmap" ? "heatmap" : "export");
  }
  LoadedModel m = load_model(cmd.model_path, 1);
  const CheckpointData& c = m.checkpoint;
  const EmbeddingView view = embedding_view_from_params(c.model, c.vocab, std::span<const double>(c.params));
  // Pictures have a bounded size: refused before anything is written.
  if (cmd.plot_path) check_plot_fits(view);
  if (cmd.heatmap_path) check_heatmap_fits(view);
  // The reports are made before anything is printed, so a bad --neighbors or --show is
  // refused before any output, like every other usage error.
  std::string neighbors;
  if (cmd.neighbors) {
    neighbors = neighbors_report(view, *cmd.neighbors, cmd.top);
  } else {
    std::vector<Token> all;
    for (Token t = 0; t < view.vocab_size(); t++) all.push_back(t);
    neighbors = neighbors_report(view, all, cmd.top);
  }
  std::string show;
  if (cmd.show_text) {
    Engine& engine = *m.engine;
    const NextTokenProbs predict = [&engine](const std::vector<Token>& tokens) {
      std::vector<std::vector<double>> rows;
      engine.start_sequence();
      for (Token t : tokens) rows.push_back(engine.next(t, 1.0));
      return rows;
    };
    show = show_report(view, *cmd.show_text, predict);
  }
  out << "model '" << cmd.model_path << "': " << view.vocab_size() << " tokens, embeddings " << view.n_embd()
      << " wide, trained " << c.step << " of " << c.train.steps << " steps\n";
  // inputs other than learned vectors added (model/inputs.h): what the numbers below are
  if (!default_inputs(c.train)) {
    auto kind = [](const std::string& v) { return v == "learned" ? "learned" : v + " (fixed)"; };
    out << "inputs: token vectors " << kind(c.train.wte) << ", position vectors " << kind(c.train.wpe) << ", "
        << (c.train.combine == "concat" ? "side by side (concat)" : "added") << "\n";
  }
  out << class_similarity_line(view) << "\n";
  out << "nearest tokens by cosine similarity:\n" << neighbors;
  if (cmd.plot_path) {
    write_embedding_plot_svg(*cmd.plot_path, view);
    out << "wrote " << *cmd.plot_path << "\n";
  }
  if (cmd.heatmap_path) {
    write_similarity_heatmap_svg(*cmd.heatmap_path, view);
    out << "wrote " << *cmd.heatmap_path << "\n";
  }
  if (cmd.export_prefix) {
    const ProjectorFiles files = export_projector_tsv(*cmd.export_prefix, view);
    out << "wrote " << files.vectors << " and " << files.labels << "\n";
  }
  out << show;
}

}  // namespace microgpt

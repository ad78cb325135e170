// Parsing the `microgpt` command line with CLI11. Every flag value is checked strictly
// (no "12abc", no zero sizes, no impossible combinations), with messages that say what
// is accepted.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/command_line.h"
#include "core/error.h"
#include "core/text.h"
#include "fast/task_pool.h"
#include "train/commands.h"
#include "train/presets.h"
#include "model/limits.h"
#include "train/run.h"

namespace microgpt {

namespace {

// Validators built from the one table of limits (model/limits.h), so a flag says what
// it accepts in the same words everywhere. CLI11 runs them on the text before
// converting it and puts the flag's name in front of the message.
CLI::Validator whole_number(const WholeRange& range) {
  return CLI::Validator(
      [range](std::string& s) -> std::string {
        int64_t v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size() || !range.contains(v)) {
          return "expected " + range.expected() + ", got '" + s + "'";
        }
        return {};
      },
      "", "whole_number");
}

CLI::Validator seed_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        uint64_t v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size()) {
          return "expected a whole number from 0 to 18446744073709551615, got '" + s + "'";
        }
        return {};
      },
      "", "seed");
}

CLI::Validator real_number(const RealRange& range) {
  return CLI::Validator(
      [range](std::string& s) -> std::string {
        double v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size() || !range.contains(v)) {
          return "expected " + std::string(range.expected) + ", got '" + s + "'";
        }
        return {};
      },
      "", "real_number");
}

// What the train command parsed, with the options a preset may fill in.
struct TrainFlags {
  microgpt::TrainOptions options;
  std::string preset;
  std::string out = "model.safetensors";
  CLI::Option *format, *n_layer, *n_embd, *n_head, *block_size, *batch_size, *steps, *lr, *eval_every, *dropout, *ema, *weight_decay,
      *reshuffle, *init, *warmup;
  CLI::Option *threads, *resume, *val_frac, *num_samples, *engine;
  // Flags that set the model or its training, which --resume takes from the checkpoint.
  std::vector<CLI::Option*> configuration;
};

void add_train_flags(CLI::App* cmd, TrainFlags& f) {
  microgpt::TrainOptions& o = f.options;
  struct Collect {
    TrainFlags& f;
    CLI::Option* operator()(CLI::Option* opt) const {
      f.configuration.push_back(opt);
      return opt;
    }
  } config{f};
  std::vector<std::string> preset_names;
  std::string preset_help = "Named hyperparameters (explicit flags override):";
  for (const auto& p : microgpt::presets()) {
    preset_names.push_back(p.name);
    preset_help += "\n  " + p.name + ": " + p.description;
  }
  cmd->add_option("--data", o.data_path, "Text file: one document per line, or with --format text one continuous "
                                         "text (default: the embedded names list)")
      ->type_name("PATH");
  f.format = config(cmd->add_option("--format", o.train.format,
                         "lines: one document per line (names); text: one continuous text (a book), trained on in "
                         "windows of block-size + 1 characters")
      ->type_name("NAME")
      ->check(CLI::IsMember(names::format.list()).description(""))
      ->capture_default_str());
  // (not among the configuration: a resumed run may change fast for gpu, or back)
  f.engine = cmd->add_option("--engine", o.engine.name,
                  "fast: float32 batches on SIMD kernels and threads; reference: double precision, bit-exact with "
                  "microgpt.py, one document per step; gpu: the fast engine's model on an NVIDIA GPU (builds "
                  "with the CUDA toolkit)")
      ->type_name("NAME")
      ->check(CLI::IsMember(names::engine.list()).description(""))
      ->capture_default_str();
  cmd->add_option("--precision", o.engine.precision,
                  "gpu engine: fp32 (float32 throughout) or tf32 (the matrix products on the tensor cores, with "
                  "10-bit mantissas)")
      ->type_name("NAME")
      ->check(CLI::IsMember(names::precision.list()).description(""))
      ->capture_default_str();
  config(cmd->add_option("--preset", f.preset, preset_help)->type_name("NAME")->check(CLI::IsMember(preset_names).description("")));
  config(cmd->add_option("--seed", o.train.seed, "Seed of the random generator (shuffle, init, sampling)")
      ->type_name("N")->check(seed_number())->capture_default_str());
  f.n_layer = config(cmd->add_option("--n-layer", o.model.n_layer, "Transformer blocks")
      ->type_name("N")->check(whole_number(limits::n_layer))->capture_default_str());
  f.n_embd = config(cmd->add_option("--n-embd", o.model.n_embd, "Embedding width")
      ->type_name("N")->check(whole_number(limits::n_embd))->capture_default_str());
  f.n_head = config(cmd->add_option("--n-head", o.model.n_head, "Attention heads (must divide --n-embd)")
      ->type_name("N")->check(whole_number(limits::n_head))->capture_default_str());
  f.block_size = config(cmd->add_option("--block-size", o.model.block_size, "Context length in tokens")
      ->type_name("N")->check(whole_number(limits::block_size))->capture_default_str());
  f.batch_size = config(cmd->add_option("--batch-size", o.train.batch_size,
                                 "Documents per step; the loss is the mean over all their predicted tokens")
      ->type_name("N")->check(whole_number(limits::batch_size))->capture_default_str());
  f.steps = config(cmd->add_option("--steps", o.train.steps, "Training steps")
      ->type_name("N")->check(whole_number(limits::steps))->capture_default_str());
  f.lr = config(cmd->add_option("--lr", o.train.lr, "Adam learning rate at step 1, decaying linearly to 0")
      ->type_name("X")->check(real_number(limits::lr))->capture_default_str());
  f.warmup = config(cmd->add_option("--warmup", o.train.warmup,
                                    "Raise the learning rate linearly over the first N steps (0: none, as microgpt.py)")
      ->type_name("N")->check(whole_number(limits::warmup))->capture_default_str());
  f.dropout = config(cmd->add_option("--dropout", o.train.dropout,
                                "Fast engine: zero each output of an attention or MLP block with this probability "
                                "while training (0: off, as microgpt.py)")
      ->type_name("P")->check(real_number(limits::dropout))->capture_default_str());
  f.ema = config(cmd->add_option("--ema", o.train.ema,
                            "Fast engine: the model is the running average of the weights with this decay per "
                            "step, e.g. 0.999 (0: off, the last weights, as microgpt.py)")
      ->type_name("D")->check(real_number(limits::ema))->capture_default_str());
  f.weight_decay = config(cmd->add_option("--weight-decay", o.train.weight_decay,
                                     "Fast engine: AdamW's decoupled weight decay, each weight multiplied by "
                                     "1 - lr * W every step, e.g. 0.1 as nanoGPT (0: off, as microgpt.py)")
      ->type_name("W")->check(real_number(limits::weight_decay))->capture_default_str());
  f.init = config(cmd->add_option("--init", o.train.init,
                                  "How the weights start: microgpt (every weight ~ N(0, 0.08), as microgpt.py) or "
                                  "gpt2 (std 0.02, residual projections 0.02/sqrt(2 n_layer): stable at any size)")
      ->type_name("NAME")
      ->check(CLI::IsMember(names::init.list()).description(""))
      ->capture_default_str());
  config(cmd->add_option("--wte", o.train.wte,
                         "Fast engine, what a token becomes: learned vectors, frozen (random, never trained), onehot "
                         "(needs --n-embd >= the vocabulary), or scalar (the token id / (vocab - 1) in one channel)")
      ->type_name("NAME")->check(CLI::IsMember(names::wte.list()).description(""))->capture_default_str());
  config(cmd->add_option("--wpe", o.train.wpe,
                         "Fast engine, what a position becomes: learned vectors, none (zeros), sinusoidal (fixed, "
                         "as in the original Transformer) or frozen (random, never trained)")
      ->type_name("NAME")->check(CLI::IsMember(names::wpe.list()).description(""))->capture_default_str());
  config(cmd->add_option("--combine", o.train.combine,
                         "Fast engine: add the token and position vectors, or concat them (each half of --n-embd)")
      ->type_name("NAME")->check(CLI::IsMember(names::combine.list()).description(""))->capture_default_str());
  f.reshuffle = config(cmd->add_flag("--reshuffle", o.train.reshuffle,
                                    "Visit the training documents in a new order in every pass over them after the "
                                    "first (microgpt.py keeps one order)"));
  f.threads = cmd->add_option("--threads", o.engine.threads, "Threads for the fast engine (default: all cores)")
      ->type_name("N")->check(whole_number(limits::threads));
  f.val_frac = config(cmd->add_option("--val-frac", o.train.val_frac,
                  "Hold out this last share of the shuffled documents (of the text's characters) and report the "
                  "validation loss (default: 0, or 0.1 with --format text)")
      ->type_name("F")->check(real_number(limits::val_frac)));
  f.eval_every = config(cmd->add_option("--eval-every", o.train.eval_every,
                                 "Validation loss every N steps as well as at the end (0: only at the end)")
      ->type_name("N")->check(whole_number(limits::eval_every))->capture_default_str());
  config(cmd->add_option("--temperature", o.train.temperature, "Sampling temperature (lower: safer names)")
      ->type_name("X")->check(real_number(limits::temperature))->capture_default_str());
  f.num_samples = config(cmd->add_option("--num-samples", o.train.num_samples,
                                         "Names to sample after training (default: 20, or 1 text of 500 characters "
                                         "with --format text)")
      ->type_name("N")->check(whole_number(limits::num_samples)));
  cmd->add_option("--log", o.log_path,
                  "Write JSON lines: {\"step\", \"loss\"} per step, {\"step\", \"val_loss\"}, {\"sample\", \"text\"} "
                  "(appended to when resuming)")
      ->type_name("PATH");
  cmd->add_option("--out", f.out, "Checkpoint file (safetensors), written at the end; \"\" for none")
      ->type_name("PATH")->capture_default_str();
  cmd->add_option("--checkpoint-every", o.checkpoint_every, "Also write the checkpoint every N steps (0: only at the end)")
      ->type_name("N")->check(whole_number(limits::checkpoint_every))->capture_default_str();
  cmd->add_option("--stop-after", o.stop_after, "End after step N of the planned --steps, writing the checkpoint (resume later)")
      ->type_name("N")->check(whole_number(limits::stop_after));
  f.resume = cmd->add_option("--resume", o.resume_path,
                             "Continue the run saved in this checkpoint, with its configuration (give --data again "
                             "unless it trained on the embedded names)")
      ->type_name("PATH");
  cmd->add_option("--plot-loss", o.plot_loss_path, "Draw the training and validation loss as an SVG file")
      ->type_name("PATH.svg");
  // Under mpirun (README: Training on several processes)
  cmd->add_option("--zero", o.zero,
                  "Under mpirun: 1 shards Adam's moments between the processes (ZeRO stage 1: each keeps and "
                  "updates 1/N of them); 0 keeps them whole in every process")
      ->type_name("STAGE")->check(CLI::IsMember({0, 1}).description(""))->capture_default_str();
  cmd->add_option("--check-every", o.check_every,
                  "Under mpirun: compare the processes' weights every N steps and at the end (0: only at the end)")
      ->type_name("N")->check(whole_number(limits::check_every))->capture_default_str();
}

// A preset fills in what the command line left unset.
void apply_preset(TrainFlags& f, const CLI::App* cmd) {
  if (f.preset.empty()) return;
  // a setting was given when its flag (--n-layer for n_layer) was
  microgpt::apply_preset(*microgpt::find_preset(f.preset), f.options.model, f.options.train, [cmd](const std::string& setting) {
    std::string flag = "--" + setting;
    std::replace(flag.begin(), flag.end(), '_', '-');
    return cmd->get_option(flag)->count() > 0;
  });
}

// The options sample, eval and embed share.
void add_model_option(CLI::App* cmd, std::string& path) {
  cmd->add_option("--model", path, "Checkpoint written by microgpt train")->type_name("PATH")->required();
}
void add_threads_option(CLI::App* cmd, int64_t& threads) {
  cmd->add_option("--threads", threads, "Threads for the fast engine")->type_name("N")->check(whole_number(limits::threads))
      ->capture_default_str();
}

void add_sample_flags(CLI::App* cmd, microgpt::SampleCommand& c) {
  add_model_option(cmd, c.model_path);
  cmd->add_option("--num-samples", c.num_samples, "Names to draw (default: as many as train drew)")
      ->type_name("N")->check(whole_number(limits::num_samples));
  cmd->add_option("--temperature", c.temperature, "Sampling temperature (default: the training run's); 0 takes the most likely character")
      ->type_name("X")->check(real_number(limits::sample_temperature));
  cmd->add_option("--top-k", c.top_k, "Draw only among the K most likely characters (0: all)")
      ->type_name("K")->check(whole_number(limits::top_k))->capture_default_str();
  cmd->add_option("--top-p", c.top_p, "Draw only among the most likely characters whose probabilities add up to P")
      ->type_name("P")->check(real_number(limits::top_p))->capture_default_str();
  cmd->add_option("--prefix", c.prefix, "Every name starts with this text")->type_name("TEXT");
  cmd->add_option("--seed", c.seed, "Seed a fresh generator (default: continue the one saved with the model, so the names "
                                    "train printed come out again)")
      ->type_name("N")->check(seed_number());
  cmd->add_option("--max-len", c.max_len, "At most this many characters (0: the block size)")
      ->type_name("N")->check(whole_number(limits::max_len))->capture_default_str();
  cmd->add_flag("--novel", c.novel, "Only names that are not in the training data");
  cmd->add_option("--data", c.data_path, "The training data, for --novel (default: the file the model was trained on)")
      ->type_name("PATH");
  cmd->add_option("--log", c.log_path, "Write JSON lines {\"sample\", \"text\"}")->type_name("PATH");
  add_threads_option(cmd, c.threads);
}

void add_eval_flags(CLI::App* cmd, microgpt::EvalCommand& c) {
  add_model_option(cmd, c.model_path);
  cmd->add_option("--data", c.data_path, "Text file to evaluate, one document per line (default: the documents the "
                                         "training run held out with --val-frac)")
      ->type_name("PATH");
  add_threads_option(cmd, c.threads);
}

void add_embed_flags(CLI::App* cmd, microgpt::EmbedCommand& c) {
  add_model_option(cmd, c.model_path);
  cmd->add_option("--neighbors", c.neighbors,
                  "Nearest tokens by cosine similarity for these characters, e.g. a,e,k, or their names in the "
                  "report: <BOS>, <space>, \\n, U+FEFF (default: every token)")
      ->type_name("CHARS");
  cmd->add_option("--top", c.top, "How many neighbours to list")->type_name("N")->check(whole_number(limits::top))
      ->capture_default_str();
  cmd->add_option("--plot", c.plot_path, "2-D PCA of the token embeddings beside the position embeddings, as SVG")
      ->type_name("PATH.svg");
  cmd->add_option("--heatmap", c.heatmap_path, "Token-by-token cosine similarity, as SVG")->type_name("PATH.svg");
  cmd->add_option("--export", c.export_prefix, "Write PREFIX_vectors.tsv and PREFIX_labels.tsv for embedding projectors")
      ->type_name("PREFIX");
  cmd->add_option("--show", c.show_text, "For each character of [BOS] + TEXT: token id, token and position embedding, "
                                         "their sum, and the model's top 5 next characters")
      ->type_name("TEXT");
}

// compare takes train's data, size, preset and training flags (not its outputs, the
// inputs it varies itself, or the engine: the fast one), and its own.
void add_compare_flags(CLI::App* cmd, TrainFlags& f, microgpt::CompareCommand& c) {
  add_train_flags(cmd, f);
  for (const char* name : {"--out", "--checkpoint-every", "--stop-after", "--resume", "--plot-loss", "--log", "--zero",
                           "--check-every", "--wte", "--wpe", "--combine", "--engine", "--precision", "--num-samples"}) {
    CLI::Option* opt = cmd->get_option(name);
    f.configuration.erase(std::remove(f.configuration.begin(), f.configuration.end(), opt), f.configuration.end());
    cmd->remove_option(opt);
  }
  f.resume = nullptr;
  f.num_samples = nullptr;
  // compare needs a validation loss, and its curve
  f.val_frac->description("Hold out this last share of the shuffled documents (of the text's characters) to "
                          "compare the variants on (default: 0.1)");
  f.eval_every->description("Validation loss every N steps, for the curves (default: a twentieth of the steps, or "
                            "the preset's)");
  cmd->add_option("--variants", c.variants,
                  "Comma-separated inputs to compare: learned (the default), frozen, onehot, scalar (wte); no-wpe, "
                  "sinusoidal (wpe); concat (--combine) (default: all of them)")
      ->type_name("LIST")->delimiter(',')->check(CLI::IsMember(microgpt::compare_variants()).description(""));
  cmd->add_option("--seeds", c.seeds, "Train each variant with this many seeds (--seed, --seed + 1, ...)")
      ->type_name("N")->check(whole_number(limits::seeds))->capture_default_str();
  cmd->add_option("--num-samples", c.samples, "Samples each run draws after training (the table shows the first seed's)")
      ->type_name("N")->check(whole_number(limits::num_samples))->capture_default_str();
  cmd->add_option("--plot", c.plot_path, "Draw every variant's validation loss (mean over the seeds) in one SVG")
      ->type_name("PATH.svg");
  cmd->add_option("--log", c.log_path,
                  "Write one JSON line per variant and seed: {\"variant\", \"seed\", \"val_loss\", \"params\", "
                  "\"val_curve\", \"samples\", \"batches\" (a checksum of the data order), ...}")
      ->type_name("PATH");
}

void add_serve_flags(CLI::App* cmd, microgpt::ServeCommand& c) {
  cmd->add_option("--model", c.model_path, "Checkpoint to open in the page")->type_name("PATH");
  cmd->add_option("--data", c.data_path, "Data the page trains on (default: the embedded names)")->type_name("PATH");
  cmd->add_option("--port", c.port, "TCP port (0: any free one, printed)")
      ->type_name("N")->check(whole_number(limits::port))->capture_default_str();
  cmd->add_option("--host", c.host, "Address to listen on (127.0.0.1: this machine only)")
      ->type_name("ADDRESS")->capture_default_str();
  cmd->add_option("--out-dir", c.out_dir, "Folder the page saves checkpoints to and loads them from")
      ->type_name("DIR")->capture_default_str();
  cmd->add_option("--threads", c.threads, "Threads for the fast engine (default: all cores)")
      ->type_name("N")->check(whole_number(limits::threads));
}

}  // namespace

CommandLine parse_command_line(std::vector<std::string> args, std::ostream& out, std::ostream& err) {
  CommandLine result;
  // Plain `microgpt` and `microgpt --flag ...` mean `microgpt train ...`.
  const bool top_level_only = !args.empty() && (args[0] == "-h" || args[0] == "--help" || args[0] == "--version");
  if (args.empty() || (args[0].starts_with("-") && !top_level_only)) args.insert(args.begin(), "train");
  std::reverse(args.begin(), args.end());  // CLI11 takes them last-first

  CLI::App app{"microgpt: a tiny character-level GPT that learns a list of names and invents new ones.\n"
               "Plain `microgpt` trains on the embedded names and prints 20 new ones."};
  app.name("microgpt");
  app.set_version_flag("--version", "microgpt 0.1.0");
  app.require_subcommand(1, 1);

  TrainFlags flags;
  flags.options.engine.threads = available_cores();
  CLI::App* train = app.add_subcommand("train", "Train a model on a list of documents, then sample from it (the default command)");
  add_train_flags(train, flags);
  result.sample.threads = available_cores();
  CLI::App* sample = app.add_subcommand("sample", "Draw names from a trained model");
  add_sample_flags(sample, result.sample);
  result.eval.threads = available_cores();
  CLI::App* eval = app.add_subcommand("eval", "Loss per token and perplexity of a trained model over a file or its held-out documents");
  add_eval_flags(eval, result.eval);
  CLI::App* embed = app.add_subcommand("embed", "Look inside a trained model's embeddings");
  add_embed_flags(embed, result.embed);
  result.serve.threads = available_cores();
  CLI::App* serve = app.add_subcommand("serve", "A local web page to watch and use a model (prints its address)");
  add_serve_flags(serve, result.serve);

  TrainFlags compare_flags;
  compare_flags.options.engine.threads = available_cores();
  CLI::App* compare = app.add_subcommand("compare", "Train input variants (learned, frozen, one-hot, scalar token vectors; "
                                                    "no, sinusoidal position vectors; concatenation) alike and compare them");
  add_compare_flags(compare, compare_flags, result.compare);

  auto usage = [&](const std::string& where, const std::string& message) {
    err << where << ": error: " << one_line(message) << "\n";
    result.command = CommandLine::Command::none;
    result.exit_code = 2;
    return result;
  };
  // args are reversed: the command is at the back.
  if (!args.empty() && !args.back().starts_with("-") && app.get_subcommands([&](CLI::App* a) {
        return a->get_name() == args.back();
      }).empty()) {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
    return usage("microgpt", "unknown command '" + args.back() + "' (accepted: " + CLI::detail::join(names, ", ") +
                                 "; see 'microgpt --help')");
  }

  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version: CLI11 prints them
      result.exit_code = app.exit(e, out, err);
      return result;
    }
    std::string where = "microgpt";
    for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    return usage(where, std::string(e.what()) + " (see '" + where + " --help')");
  }

  try {
    if (train->parsed()) {
      microgpt::TrainOptions& o = flags.options;
      if (flags.resume->count() > 0) {
        for (CLI::Option* opt : flags.configuration) {
          if (opt->count() > 0) {
            throw microgpt::usage_error(opt->get_name() + " cannot be given with --resume: a resumed run keeps the "
                                        "configuration stored in its checkpoint");
          }
        }
      } else {
        apply_preset(flags, train);
        // A text holds out a tenth to validate on, as nanoGPT splits it, and shows one
        // long sample rather than twenty names.
        if (o.train.is_text() && flags.val_frac->count() == 0) o.train.val_frac = 0.1;
        if (o.train.is_text() && flags.num_samples->count() == 0) o.train.num_samples = 1;
      }
      o.out_path = flags.out.empty() ? std::nullopt : std::optional<std::string>(flags.out);
      o.threads_given = flags.threads->count() > 0;
      o.engine_given = flags.engine->count() > 0;
      result.train = o;
      result.command = CommandLine::Command::train;
    } else if (sample->parsed()) {
      result.command = CommandLine::Command::sample;
    } else if (eval->parsed()) {
      result.command = CommandLine::Command::eval;
    } else if (embed->parsed()) {
      result.command = CommandLine::Command::embed;
    } else if (serve->parsed()) {
      result.command = CommandLine::Command::serve;
    } else if (compare->parsed()) {
      microgpt::TrainOptions& o = compare_flags.options;
      apply_preset(compare_flags, compare);
      // compare ranks the inputs by their validation loss: a tenth held out unless asked
      if (compare_flags.val_frac->count() == 0 && (o.train.is_text() || o.train.val_frac <= 0.0)) {
        o.train.val_frac = 0.1;
      }
      // a text's sample is 500 characters: one a run, unless asked
      if (o.train.is_text() && compare->get_option("--num-samples")->count() == 0) result.compare.samples = 1;
      result.compare.base = o;
      result.command = CommandLine::Command::compare;
    }
  } catch (const microgpt::Error& e) {
    std::string where = "microgpt";
    for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    return usage(where, e.what());
  }
  return result;
}

}  // namespace microgpt

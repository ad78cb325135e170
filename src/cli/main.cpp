// The `microgpt` command line. Parsing is CLI11's; every flag value is checked
// strictly (no "12abc", no zero sizes) and every error is one line on stderr with
// exit code 2 for usage errors and 1 for everything else.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/error.h"
#include "train/trainer.h"

namespace {

using microgpt::Error;

// Validators that say what they accept. CLI11 runs them on the text before converting.
CLI::Validator whole_number(int64_t min, int64_t max) {
  return CLI::Validator(
      [min, max](std::string& s) -> std::string {
        int64_t v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size() || v < min || v > max) {
          return "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
                 ", got '" + s + "'";
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

CLI::Validator positive_real() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v) || !(v > 0)) {
          return "expected a number greater than 0, got '" + s + "'";
        }
        return {};
      },
      "", "positive_real");
}

constexpr int64_t kMaxSize = int64_t{1} << 24;
constexpr int64_t kMaxCount = int64_t{1} << 40;

void add_train_flags(CLI::App* cmd, microgpt::TrainOptions& o) {
  cmd->add_option("--data", o.data_path, "Text file, one document per line (default: the embedded names list)")
      ->type_name("PATH");
  cmd->add_option("--engine", o.engine, "Engine: reference (bit-exact with microgpt.py, double precision)")
      ->type_name("NAME")
      ->check(CLI::IsMember({"reference"}).description(""))
      ->capture_default_str();
  cmd->add_option("--seed", o.train.seed, "Seed of the random generator (shuffle, init, sampling)")
      ->type_name("N")->check(seed_number())->capture_default_str();
  cmd->add_option("--n-layer", o.model.n_layer, "Transformer blocks")
      ->type_name("N")->check(whole_number(1, kMaxSize))->capture_default_str();
  cmd->add_option("--n-embd", o.model.n_embd, "Embedding width")
      ->type_name("N")->check(whole_number(1, kMaxSize))->capture_default_str();
  cmd->add_option("--n-head", o.model.n_head, "Attention heads (must divide --n-embd)")
      ->type_name("N")->check(whole_number(1, kMaxSize))->capture_default_str();
  cmd->add_option("--block-size", o.model.block_size, "Context length in tokens")
      ->type_name("N")->check(whole_number(1, kMaxSize))->capture_default_str();
  cmd->add_option("--steps", o.train.steps, "Training steps (one document per step)")
      ->type_name("N")->check(whole_number(1, kMaxCount))->capture_default_str();
  cmd->add_option("--lr", o.train.lr, "Adam learning rate at step 1, decaying linearly to 0")
      ->type_name("X")->check(positive_real())->capture_default_str();
  cmd->add_option("--temperature", o.train.temperature, "Sampling temperature (lower: safer names)")
      ->type_name("X")->check(positive_real())->capture_default_str();
  cmd->add_option("--num-samples", o.train.num_samples, "Names to sample after training")
      ->type_name("N")->check(whole_number(0, kMaxCount))->capture_default_str();
  cmd->add_option("--log", o.log_path, "Write JSON lines: {\"step\", \"loss\"} per step, {\"sample\", \"text\"} per name")
      ->type_name("PATH");
}

int run(int argc, char** argv) {
  // Plain `microgpt` and `microgpt --flag ...` mean `microgpt train ...`.
  std::vector<std::string> args(argv + 1, argv + argc);
  const bool top_level_only = !args.empty() && (args[0] == "-h" || args[0] == "--help" || args[0] == "--version");
  if (args.empty() || (args[0].starts_with("-") && !top_level_only)) args.insert(args.begin(), "train");
  std::reverse(args.begin(), args.end());  // CLI11 takes them last-first

  CLI::App app{"microgpt: a tiny character-level GPT that learns a list of names and invents new ones.\n"
               "Plain `microgpt` trains on the embedded names and prints 20 new ones."};
  app.name("microgpt");
  app.set_version_flag("--version", "microgpt 0.1.0");
  app.require_subcommand(1, 1);

  microgpt::TrainOptions options;
  CLI::App* train = app.add_subcommand("train", "Train a model on a list of documents, then sample from it (the default command)");
  add_train_flags(train, options);

  // args are reversed: the command is at the back.
  if (!args.empty() && !args.back().starts_with("-") && app.get_subcommands([&](CLI::App* a) {
        return a->get_name() == args.back();
      }).empty()) {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
    std::cerr << "microgpt: error: unknown command '" << args.back() << "' (accepted: " << CLI::detail::join(names, ", ")
              << "; see 'microgpt --help')\n";
    return 2;
  }

  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where = "microgpt";
    for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    std::cerr << where << ": error: " << e.what() << " (see '" << where << " --help')\n";
    return 2;
  }

  if (train->parsed()) microgpt::run_training(options, std::cout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::cout.flush();
    std::cerr << "microgpt: error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    std::cout.flush();
    std::cerr << "microgpt: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "microgpt: error: " << e.what() << "\n";
    return 1;
  }
}

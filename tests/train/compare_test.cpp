// `microgpt compare` (train/compare.h): every variant of a seed is trained on the same
// batches, each row is what `microgpt train` with that variant's flags gives (its
// validation loss to the last bit), every variant's checkpoint loads, samples,
// evaluates and shows its inputs, and what cannot be compared says why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "test_support.h"

namespace microgpt {
namespace {

using testing::read_file;
using testing::read_jsonl;
using testing::run_microgpt;
using testing::TempDir;

// The flags of each variant, as `microgpt train` takes them.
const std::map<std::string, std::string> kFlags = {
    {"learned", ""},           {"frozen", "--wte frozen"},        {"onehot", "--wte onehot"},
    {"scalar", "--wte scalar"}, {"no-wpe", "--wpe none"},          {"sinusoidal", "--wpe sinusoidal"},
    {"concat", "--combine concat"},
};

// 32 wide, so that a one-hot of the embedded names' 28 tokens fits.
const std::string kSizes = "--steps 60 --n-embd 32 --batch-size 4 --threads 2";

TEST(Compare, EachRowIsTheTrainingRunOfItsVariantOnTheSameBatches) {
  TempDir dir;
  const auto r = run_microgpt("compare " + kSizes + " --seeds 2 --num-samples 2 --log '" + dir.file("c.jsonl") +
                              "' --plot '" + dir.file("c.svg") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = read_jsonl(dir.file("c.jsonl"));
  ASSERT_EQ(lines.size(), 14u);  // 7 variants x 2 seeds
  // The batches of a seed are the same for every variant, and another seed's differ.
  std::map<uint64_t, std::set<uint32_t>> batches;
  for (const auto& l : lines) batches[l["seed"].get<uint64_t>()].insert(l["batches"].get<uint32_t>());
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[42].size(), 1u);
  EXPECT_EQ(batches[43].size(), 1u);
  EXPECT_NE(*batches[42].begin(), *batches[43].begin());
  // Every variant of seed 42 is `microgpt train` with its flags: the same validation
  // losses, to the last bit; its checkpoint loads, samples, and evaluates to the same loss.
  std::set<double> distinct;
  for (const auto& l : lines) {
    if (l["seed"] != 42) continue;
    const std::string variant = l["variant"];
    SCOPED_TRACE(variant);
    const std::string model = dir.file(variant + ".safetensors"), log = dir.file(variant + ".jsonl");
    const auto t = run_microgpt("train " + kSizes + " " + kFlags.at(variant) + " --val-frac 0.1 --eval-every 3 --out '" +
                                model + "' --log '" + log + "' --num-samples 2");
    ASSERT_EQ(t.exit_code, 0) << t.err;
    std::vector<double> val;
    std::vector<std::string> samples;
    for (const auto& e : read_jsonl(log)) {
      if (e.contains("val_loss")) val.push_back(e["val_loss"]);
      if (e.contains("sample")) samples.push_back(e["text"]);
    }
    ASSERT_EQ(val.size(), l["val_curve"].size());
    for (size_t i = 0; i < val.size(); i++) EXPECT_EQ(val[i], l["val_curve"][i][1].get<double>()) << i;
    EXPECT_EQ(l["val_loss"].get<double>(), val.back());
    EXPECT_EQ(samples, l["samples"].get<std::vector<std::string>>());
    distinct.insert(val.back());
    const auto s = run_microgpt("sample --model '" + model + "' --num-samples 3 --seed 1");
    EXPECT_EQ(s.exit_code, 0) << s.err;
    EXPECT_EQ(testing::count_lines(s.out), 3) << s.out;
    // embed says what the vectors it shows are
    const auto m = run_microgpt("embed --model '" + model + "' --top 2");
    EXPECT_EQ(m.exit_code, 0) << m.err;
    EXPECT_EQ(m.out.find("\ninputs: ") != std::string::npos, variant != "learned") << m.out;
    const auto e = run_microgpt("eval --model '" + model + "'");
    EXPECT_EQ(e.exit_code, 0) << e.err;
    char want[32];
    std::snprintf(want, sizeof want, "%.4f", val.back());
    EXPECT_NE(e.out.find(want), std::string::npos) << e.out << " (want " << want << ")";
  }
  EXPECT_EQ(distinct.size(), 7u);  // the inputs change the model
  // The paired difference from learned: the mean over the seeds of each seed's difference.
  std::map<std::string, std::map<uint64_t, double>> loss;
  for (const auto& l : lines) loss[l["variant"]][l["seed"].get<uint64_t>()] = l["val_loss"].get<double>();
  for (const auto& [variant, flags] : kFlags) {
    if (variant == "learned") continue;
    const double d0 = loss[variant][42] - loss["learned"][42], d1 = loss[variant][43] - loss["learned"][43];
    char want[64];
    std::snprintf(want, sizeof want, "%s%.4f ± %.4f", (d0 + d1) / 2 >= 0 ? "+" : "", (d0 + d1) / 2,
                  std::abs(d0 - d1) / std::sqrt(2.0));
    const size_t row = r.out.find("\n" + variant + " ");
    ASSERT_NE(row, std::string::npos);
    EXPECT_NE(r.out.substr(row, r.out.find('\n', row + 1) - row).find(want), std::string::npos) << variant << ": " << want;
  }
  // The table has a row per variant; the plot a curve per variant.
  for (const auto& [variant, flags] : kFlags) EXPECT_NE(r.out.find("\n" + variant + " "), std::string::npos) << variant;
  const std::string svg = read_file(dir.file("c.svg"));
  EXPECT_EQ(testing::count_occurrences(svg, "<path d="), 7u);
  for (const auto& [variant, flags] : kFlags) EXPECT_NE(svg.find(">" + variant + "</text>"), std::string::npos) << variant;
}

TEST(Compare, SaysWhatCannotBeCompared) {
  // the default width, 16, holds no one-hot of 28 tokens: a row says so, the rest run
  const auto r = run_microgpt("compare --steps 20 --variants learned,onehot --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("onehot     cannot: --wte onehot gives each of the 28 tokens its own channel"), std::string::npos)
      << r.out;
  // unknown variants and impossible settings: one line, exit 2
  for (const std::string args : {"compare --variants learned,bigger", "compare --seeds 0", "compare --wte onehot",
                                 "compare --engine reference", "compare --variants onehot --steps 5"}) {
    const auto bad = run_microgpt(args);
    EXPECT_EQ(bad.exit_code, 2) << args << ": " << bad.out << bad.err;
    EXPECT_EQ(testing::count_lines(bad.err), 1) << args << ": " << bad.err;
  }
}

// Its log and plot are outputs like train's: neither may be the data (which they would
// overwrite) or each other; the refusal comes before any training, the data untouched.
// And it needs documents held out, as it ranks by validation loss: --val-frac 0 is
// refused, and so is a share of so few documents that it rounds to none.
TEST(Compare, RefusesOneFileInTwoRolesAndNothingHeldOut) {
  TempDir dir;
  const std::string names = "anna\nbob\ncarl\ndave\nemma\n";
  testing::write_file(dir.file("names.txt"), names);
  std::filesystem::create_symlink(dir.file("names.txt"), dir.file("alias.txt"));
  const std::string base = "compare --data '" + dir.file("names.txt") + "' --steps 5 --variants learned --threads 1 ";
  for (const std::string& extra :
       {"--log '" + dir.file("names.txt") + "'", "--plot '" + dir.file("names.txt") + "'",
        "--log '" + dir.file("alias.txt") + "'",
        "--log '" + dir.file("same.out") + "' --plot '" + dir.file("same.out") + "'", std::string("--val-frac 0"),
        "--val-frac 0.05 --log '" + dir.file("same.out") + "'"}) {
    const auto r = run_microgpt(base + extra);
    EXPECT_EQ(r.exit_code, 2) << extra << ": " << r.out << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << extra << ": " << r.err;
    EXPECT_EQ(read_file(dir.file("names.txt")), names) << extra;
    EXPECT_FALSE(std::filesystem::exists(dir.file("same.out"))) << extra;
  }
  EXPECT_NE(run_microgpt(base + "--val-frac 0").err.find("held out"), std::string::npos);
  EXPECT_NE(run_microgpt(base + "--val-frac 0.05").err.find("--val-frac 0.05 of the 5 documents holds none out"),
            std::string::npos);
  EXPECT_EQ(run_microgpt(base + "--val-frac 0.2").exit_code, 0);  // one held out
}

TEST(Compare, ATextDrawsOneSampleARun) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 40; i++) text += "To be, or not to be, that is the question. ";
  testing::write_file(dir.file("book.txt"), text);
  const auto r = run_microgpt("compare --data '" + dir.file("book.txt") + "' --format text --block-size 16 --steps 4 "
                              "--variants learned,no-wpe --threads 1 --log '" + dir.file("c.jsonl") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = read_jsonl(dir.file("c.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& l : lines) {
    ASSERT_EQ(l["samples"].size(), 1u);
    EXPECT_EQ(l["samples"][0].get<std::string>().size(), 500u);  // one text of 500 characters (ASCII here)
  }
}

}  // namespace
}  // namespace microgpt

// The observers every `microgpt train` has (train/observer.h): the console report on
// stdout (what microgpt.py prints), the JSON-lines log (--log) and the loss plot
// (--plot-loss); the progress line is train/progress.h. Also the lines they write,
// which `microgpt sample` writes too, so both commands print and log alike.
#pragma once

#include <cstdint>
#include <fstream>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "train/observer.h"

namespace microgpt {

// "step    1 / 1000 | loss 3.3660", as microgpt.py prints it ({:4d} and {:.4f}); `what`
// is "loss" or "val loss".
std::string step_line(int64_t step, int64_t steps, const char* what, double loss);
// "sample  1: kamon"
std::string sample_line(int64_t index, const std::u32string& text);

// Throws Error once `out` can no longer be written (a full disk, say): a run or a
// command whose output is being lost stops, rather than going on silently.
void check_output(std::ostream& out);

// A JSON-lines file, one object a line, as microgpt.py's reference logs are written:
// {"step": k, "loss": x} with x the exact double (shortest round-trip decimal),
// {"step": k, "val_loss": x}, {"sample": i, "text": "..."}.
class JsonLines {
 public:
  // Opens (appending, or from empty); throws Error naming the file.
  JsonLines(const std::string& path, bool append);
  void step(int64_t step, const char* key, double loss);
  void sample(int64_t index, const std::u32string& text);
  void flush();
  // Throws Error if anything could not be written.
  void close();

 private:
  std::ofstream file_;
  std::string path_;
};

// What microgpt.py prints: the data's size, the parameter count, a line per step, the
// validation losses, the samples. `interactive` (stdout is the terminal that shows the
// progress line): only the last step's line, as microgpt.py's print(..., end='\r')
// leaves one.
class ConsoleReport final : public Observer {
 public:
  ConsoleReport(std::ostream& out, bool interactive) : out_(out), interactive_(interactive) {}
  void on_start(const RunStarted& e) override;
  void on_step(const StepFinished& e) override;
  void on_validation(const Validated& e) override;
  void on_sample(const SampleDrawn& e) override;
  void on_diverged(const RunDiverged& e) override;
  void on_finish(const RunFinished& e) override;

 private:
  std::ostream& out_;
  bool interactive_;
  bool text_ = false;
  std::string last_line_;  // the last step's line, for the interactive report
};

// --log: the file opens when the run starts (a resumed run appends) and is closed, with
// its errors reported, when the run finishes.
class JsonLog final : public Observer {
 public:
  explicit JsonLog(std::string path) : path_(std::move(path)) {}
  void on_start(const RunStarted& e) override;
  void on_step(const StepFinished& e) override;
  void on_validation(const Validated& e) override;
  void on_sample(const SampleDrawn& e) override;
  void on_diverged(const RunDiverged&) override;
  void on_finish(const RunFinished&) override;

 private:
  std::string path_;
  std::optional<JsonLines> file_;
};

// --plot-loss: the training and validation losses of this run, drawn when it finishes.
class LossPlot final : public Observer {
 public:
  explicit LossPlot(std::string path) : path_(std::move(path)) {}
  void on_step(const StepFinished& e) override { train_.emplace_back(e.step, e.loss); }
  void on_validation(const Validated& e) override { val_.emplace_back(e.step, e.loss); }
  void on_finish(const RunFinished&) override;

 private:
  std::string path_;
  std::vector<std::pair<int64_t, double>> train_, val_;
};

}  // namespace microgpt

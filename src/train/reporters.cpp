#include "train/reporters.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ostream>

#include "core/error.h"
#include "core/text.h"
#include "data/dataset.h"
#include "inspect/plots.h"

namespace microgpt {

std::string step_line(int64_t step, int64_t steps, const char* what, double loss) {
  // Without printf's cost on every step.
  char buf[96];
  char* p = buf;
  auto number = [&p](int64_t v) {
    char digits[24];
    const auto r = std::to_chars(digits, digits + sizeof digits, v);
    for (auto n = r.ptr - digits; n < 4; n++) *p++ = ' ';
    p = std::copy(digits, r.ptr, p);
  };
  p = std::copy_n("step ", 5, p);
  number(step);
  p = std::copy_n(" / ", 3, p);
  number(steps);
  p = std::copy_n(" | ", 3, p);
  while (*what) *p++ = *what++;
  *p++ = ' ';
  if (std::isfinite(loss)) {
    p = std::to_chars(p, buf + sizeof buf, loss, std::chars_format::fixed, 4).ptr;
  } else {
    p = std::copy_n(std::isnan(loss) ? "nan" : "inf", 3, p);
  }
  return std::string(buf, p);
}

std::string sample_line(int64_t index, const std::u32string& text) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "sample %2lld: ", static_cast<long long>(index));
  return buf + encode_utf8(text);
}

void check_output(std::ostream& out) {
  if (!out) throw Error(std::string("cannot write the standard output") + (errno ? std::string(": ") + std::strerror(errno) : ""));
}

JsonLines::JsonLines(const std::string& path, bool append) : path_(path) {
  file_.open(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  if (!file_) throw Error("cannot write log file '" + path + "': " + std::strerror(errno));
}

void JsonLines::step(int64_t step, const char* key, double loss) {
  file_ << "{\"step\": " << step << ", \"" << key << "\": " << python_float_repr(loss) << "}\n";
}

void JsonLines::sample(int64_t index, const std::u32string& text) {
  file_ << "{\"sample\": " << index << ", \"text\": " << json_quote(text) << "}\n";
}

void JsonLines::flush() { file_.flush(); }

void JsonLines::close() {
  if (!file_.is_open()) return;
  file_.close();
  if (!file_) throw Error("cannot write log file '" + path_ + "': write failed");
}

void ConsoleReport::on_start(const RunStarted& e) {
  text_ = e.text;
  const char* unit = e.text ? "chars" : "docs";
  out_ << "num " << unit << ": " << e.docs << "\n";
  out_ << "vocab size: " << e.vocab_size << "\n";
  out_ << "num params: " << e.num_params << "\n";
  if (e.validating) out_ << "validation: " << e.held_out_docs << " " << unit << " held out, training on " << e.train_docs << "\n";
  if (!e.resumed_from.empty()) out_ << "resuming from '" << e.resumed_from << "' after step " << e.first_step << "\n";
  if (e.precision == "tf32") out_ << "precision: tf32 (the matrix products on the GPU's tensor cores, 10-bit mantissas)\n";
  check_output(out_);
}

void ConsoleReport::on_step(const StepFinished& e) {
  last_line_ = step_line(e.step, e.steps, "loss", e.loss);
  if (!interactive_ || e.last) out_ << last_line_ << "\n";
  check_output(out_);
}

void ConsoleReport::on_validation(const Validated& e) {
  out_ << step_line(e.step, e.steps, "val loss", e.loss) << "\n";
  check_output(out_);
}

void ConsoleReport::on_sample(const SampleDrawn& e) {
  if (text_) {  // a text is shown as it is, line breaks and all
    out_ << "--- sample " << e.index << " of " << e.count << " (" << e.text.size() << " characters after a line break) ---\n"
         << encode_utf8(e.text) << "\n";
  } else {
    if (e.index == 1) out_ << "--- inference (new, hallucinated names) ---\n";
    out_ << sample_line(e.index, e.text) << "\n";
  }
  check_output(out_);
}

void ConsoleReport::on_diverged(const RunDiverged&) {
  if (interactive_) out_ << last_line_ << "\n";  // the step that diverged
}

void ConsoleReport::on_finish(const RunFinished& e) {
  if (e.stopped) {
    out_ << "stopped after step " << e.step << " of " << e.steps;
    if (!e.checkpoint_path.empty()) {
      out_ << "; continue with: microgpt train --resume " << e.checkpoint_path
           << (e.data_source != kEmbeddedSource ? " --data " + e.data_source : "");
    }
    out_ << "\n";
  }
  out_.flush();
  check_output(out_);
}

void JsonLog::on_start(const RunStarted& e) { file_.emplace(path_, !e.resumed_from.empty()); }
void JsonLog::on_step(const StepFinished& e) { file_->step(e.step, "loss", e.loss); }
void JsonLog::on_validation(const Validated& e) { file_->step(e.step, "val_loss", e.loss); }
void JsonLog::on_sample(const SampleDrawn& e) { file_->sample(e.index, e.text); }
void JsonLog::on_diverged(const RunDiverged&) { file_->flush(); }
void JsonLog::on_finish(const RunFinished&) { file_->close(); }

void LossPlot::on_finish(const RunFinished&) { write_loss_plot_svg(path_, train_, val_, "training loss"); }

}  // namespace microgpt

#include "train/progress.h"

#include <cmath>
#include <cstdio>
#include <ostream>

namespace microgpt {

namespace {
std::string duration(double seconds) {
  char buf[32];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.0fs", seconds);
  } else if (seconds < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(seconds) / 60, static_cast<int>(seconds) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(seconds) / 3600, static_cast<int>(seconds) / 60 % 60);
  }
  return buf;
}
}  // namespace

Progress::Progress(std::ostream* stream, Mode mode, int64_t first_step, int64_t total_steps)
    : stream_(stream), mode_(stream ? mode : Mode::off), first_step_(first_step), total_steps_(total_steps) {
  start_ = last_draw_ = Clock::now();
}

void Progress::on_start(const RunStarted& e) {
  first_step_ = e.first_step;
  total_steps_ = e.steps;
  start_ = last_draw_ = Clock::now();
}

void Progress::on_step(const StepFinished& e) {
  step(e.step, e.loss, e.smoothed, e.tokens);
  if (e.last) finish();
}

void Progress::step(int64_t step, double loss, double smoothed, int64_t tokens) {
  step_ = step;
  loss_ = loss;
  smoothed_ = smoothed;
  tokens_ += tokens;
  if (mode_ == Mode::off) return;
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (mode_ == Mode::live && (since >= 0.1 || step == total_steps_)) {
    *stream_ << "\r\033[K" << status() << std::flush;
    drawn_ = true;
    last_draw_ = now;
  } else if (mode_ == Mode::periodic && since >= 5.0) {
    *stream_ << "progress: " << status() << "\n" << std::flush;
    last_draw_ = now;
  }
}

std::string Progress::status() const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double done = static_cast<double>(step_ - first_step_);
  char buf[200];
  const double per_s = elapsed > 0 ? static_cast<double>(tokens_) / elapsed : 0.0;
  const double left = done > 0 ? elapsed / done * static_cast<double>(total_steps_ - step_) : 0.0;
  std::snprintf(buf, sizeof buf, "step %lld / %lld | loss %.4f (smoothed %.4f) | %.1fk tokens/s | %s left",
                static_cast<long long>(step_), static_cast<long long>(total_steps_), loss_,
                std::isfinite(smoothed_) ? smoothed_ : loss_, per_s / 1000.0, duration(left).c_str());
  return buf;
}

void Progress::clear() {
  if (mode_ == Mode::live && drawn_) *stream_ << "\r\033[K" << std::flush;
  drawn_ = false;  // nothing of ours on the line now
}

void Progress::finish() { clear(); }

}  // namespace microgpt

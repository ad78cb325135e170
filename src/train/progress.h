// Progress of a training run as a person watches it. On a terminal: one live status
// line (step, smoothed loss, tokens/s, time left), redrawn at most ten times a second.
// Not on a terminal: a plain line every few seconds, so logs of long runs show life
// without drowning in it. It watches a run as an Observer (train/observer.h); the
// per-step lines on stdout are the console report's business (train/reporters.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "train/observer.h"

namespace microgpt {

class Progress final : public Observer {
 public:
  enum class Mode {
    off,       // nothing
    live,      // a status line rewritten in place (the stream is a terminal)
    periodic,  // a plain line every few seconds
  };
  Progress(std::ostream* stream, Mode mode, int64_t first_step, int64_t total_steps);
  // As an observer: the steps come with the run's start.
  Progress(std::ostream* stream, Mode mode) : Progress(stream, mode, 0, 0) {}

  void on_start(const RunStarted& e) override;
  void on_step(const StepFinished& e) override;  // the run's last step also finishes the line
  void on_validation(const Validated&) override { clear(); }
  void on_diverged(const RunDiverged&) override { finish(); }

  // After step `step` (1-based) with its loss, the run's smoothed loss through it
  // (StepFinished::smoothed) and the tokens it trained on.
  void step(int64_t step, double loss, double smoothed, int64_t tokens);
  // Clears the live line before other output goes to the same terminal.
  void clear();
  // The run is over (or stopped): clears the live line.
  void finish();

  // The status text: "step 500 / 1000 | loss 2.3412 (smoothed 2.4100) | 120.3k tokens/s | 3s left"
  std::string status() const;

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream* stream_;
  Mode mode_;
  int64_t first_step_, total_steps_;
  int64_t step_ = 0;
  int64_t tokens_ = 0;
  double loss_ = 0.0;
  double smoothed_ = 0.0;
  Clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace microgpt

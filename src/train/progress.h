// Progress of a training run as a person watches it. On a terminal: one live status
// line (step, smoothed loss, tokens/s, time left), redrawn at most ten times a second.
// Not on a terminal: a plain line every few seconds, so logs of long runs show life
// without drowning in it. The per-step lines on stdout are the trainer's business.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace microgpt {

class Progress {
 public:
  enum class Mode {
    off,       // nothing
    live,      // a status line rewritten in place (the stream is a terminal)
    periodic,  // a plain line every few seconds
  };
  Progress(std::ostream* stream, Mode mode, int64_t first_step, int64_t total_steps);

  // After step `step` (1-based) with its loss and the tokens it trained on.
  void step(int64_t step, double loss, int64_t tokens);
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
  double smoothed_ = 0.0;  // exponential moving average, bias corrected
  double weight_ = 0.0;
  Clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace microgpt

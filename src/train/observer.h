// What happens in a training run, as typed events, and the interface of everything that
// reacts to them. The console report, the JSON-lines log, the progress line and the
// loss plot (train/reporters.h, train/progress.h) are observers; so is anything that
// wants to watch a run (a web page, one process of several). Observers are told in the
// order they were added and never change the run; an observer that throws (a log that
// cannot be written) ends the run with its error.
#pragma once

#include <cstdint>
#include <string>

namespace microgpt {

// Data and engine are ready; the first step is next.
struct RunStarted {
  std::string data_source;  // the path, or "<embedded names>"
  int64_t docs = 0, train_docs = 0, held_out_docs = 0;
  bool validating = false;  // a validation share was asked for (--val-frac > 0)
  bool text = false;        // a continuous text: docs are its characters
  int64_t vocab_size = 0, num_params = 0;
  int64_t first_step = 0;  // steps already done (a resumed run's checkpoint step)
  int64_t last_step = 0;   // this run ends after this step (--stop-after, or all steps)
  int64_t steps = 0;       // planned in all
  std::string resumed_from;  // the checkpoint, or empty
  std::string precision = "fp32";  // the gpu engine's --precision
};

struct StepFinished {
  int64_t step = 0;  // 1-based
  int64_t steps = 0;
  double loss = 0.0;       // the batch's mean loss per predicted token (may be NaN: see RunDiverged)
  double smoothed = 0.0;   // the run's smoothed loss through it (train/smoothed_loss.h)
  int64_t tokens = 0;      // predicted positions it trained on
  double seconds = 0.0;    // wall time of the step
  bool last = false;       // the last step of this run
};

struct Validated {
  int64_t step = 0, steps = 0;
  double loss = 0.0;  // mean loss per token over the held-out documents
};

struct CheckpointWritten {
  int64_t step = 0;
  std::string path;
};

struct SampleDrawn {
  int64_t index = 0;  // 1-based
  int64_t count = 0;  // how many will be drawn
  std::u32string text;
};

// The loss or a gradient stopped being finite, or the loss blew up; the run then ends
// with an Error carrying `message`.
struct RunDiverged {
  int64_t step = 0;
  std::string message;
};

struct RunFinished {
  int64_t step = 0, steps = 0;
  bool stopped = false;         // ended early by --stop-after, to be resumed
  std::string checkpoint_path;  // where it was saved (empty: nowhere)
  std::string data_source;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_start(const RunStarted&) {}
  virtual void on_step(const StepFinished&) {}
  virtual void on_validation(const Validated&) {}
  virtual void on_checkpoint(const CheckpointWritten&) {}
  virtual void on_sample(const SampleDrawn&) {}
  virtual void on_diverged(const RunDiverged&) {}
  virtual void on_finish(const RunFinished&) {}
};

}  // namespace microgpt

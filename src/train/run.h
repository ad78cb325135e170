// One training run, in stages: the options resolved once (a resumed run's configuration
// comes from its checkpoint) and checked, before anything is read or written → the data
// source (train/data_source.h) → the engine, initialised or loaded (train/engine.h) →
// step() in a loop → validation → checkpoint → samples. Everything that reacts to
// training is an Observer of its events (train/observer.h). A run launched by mpirun
// is spread over its processes (train/data_parallel.h): each computes the gradient of
// its share of every batch, and between the two halves of every step they are summed;
// rank 0 alone has observers and writes files. `run_training` is the whole of
// `microgpt train`: a run with the console report, the log, the progress line and the
// plot attached.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/python_random.h"
#include "model/config.h"
#include "train/data_parallel.h"
#include "train/data_source.h"
#include "train/engine.h"
#include "train/observer.h"
#include "train/process_group.h"
#include "train/progress.h"
#include "train/smoothed_loss.h"

namespace microgpt {

struct TrainOptions {
  std::optional<std::string> data_path;  // none: the embedded names
  EngineOptions engine;
  ModelConfig model;  // vocab_size is filled in from the data
  TrainConfig train;
  std::optional<std::string> log_path;
  std::optional<std::string> out_path;  // the checkpoint (the command line's default: model.safetensors)
  int64_t checkpoint_every = 0;  // also write the checkpoint every N steps
  int64_t stop_after = 0;        // end after this step, checkpoint written (0: run every step)
  // Continue the run saved in this checkpoint, with the configuration stored there;
  // model, engine and train settings above are then ignored (threads too, unless set,
  // and the engine, when set to the other float32 one: fast and gpu continue each
  // other's runs).
  std::optional<std::string> resume_path;
  bool threads_given = false;
  bool engine_given = false;
  std::optional<std::string> plot_loss_path;
  // How progress is shown: `progress` (stderr) gets a live status line or periodic
  // lines. With `interactive` (stdout and stderr are one terminal) stdout gets no line
  // per step, only the last step's, since the live status shows the rest.
  bool interactive = false;
  std::ostream* progress = nullptr;
  Progress::Mode progress_mode = Progress::Mode::off;
  // The processes mpirun started, when it did (none, or a group of one: a plain run).
  ProcessGroup* group = nullptr;
  int64_t zero = 0;           // ZeRO stage: 1, each process keeps Adam's moments of its part only
  int64_t check_every = 100;  // compare the processes' weights every N steps (0: at the end)
};

class TrainingRun {
 public:
  // Resolves and checks the options: usage errors (and outputs that cannot be written)
  // are thrown here, before any data is read or anything is written. (In a run of
  // several processes they are thrown by prepare(), once every process has started.)
  explicit TrainingRun(const TrainOptions& options);
  ~TrainingRun();

  // Observers are told of every event in the order they were added; add them before
  // prepare(), and keep them alive as long as the run.
  void add_observer(Observer& observer) { observers_.push_back(&observer); }
  // Whether this process reports and writes files: a plain run's, or rank 0 of several.
  bool leader() const { return !parallel_ || parallel_->leader(); }

  // Reads the data, builds the engine (refusing a model that does not fit), initialises
  // it or loads the checkpoint; then tells the observers the run has started.
  void prepare();
  // Whether a step of this run is left (it ends after --stop-after or the last step).
  bool steps_left() const { return step_ < last_step_; }
  // One training step, then the validation and checkpoint due after it. Throws Error
  // when training diverges.
  void step();
  // After the last step: the final validation, checkpoint and samples. Before it (after
  // --stop-after, or when a caller stops stepping), a stopped run: its checkpoint, when
  // it has a checkpoint file, to be resumed.
  void finish();
  // All of it: prepare(), every step, finish().
  void run();

  // The resolved options (a resumed run's, from its checkpoint).
  const TrainOptions& options() const { return options_; }
  const ModelConfig& config() const { return config_; }  // with the data's vocab_size (after prepare)
  DataSource& data() { return *source_; }
  Engine& engine() { return *engine_; }
  int64_t steps_done() const { return step_; }

 private:
  template <class Event>
  void notify(void (Observer::*handler)(const Event&), const Event& event) {
    for (Observer* o : observers_) (o->*handler)(event);
  }
  void resolve();
  void build();
  std::vector<std::pair<std::string, std::string>> settings() const;
  void validate(int64_t step);
  void save(int64_t step);
  [[noreturn]] void diverged(int64_t step, double loss);

  TrainOptions options_;
  std::optional<CheckpointData> resume_;
  std::vector<Observer*> observers_;
  std::unique_ptr<DataParallel> parallel_;  // none in a run of one process
  std::optional<Error> start_error_;         // a process's failure to start, for prepare() to share
  PyRandom rng_;
  std::unique_ptr<DataSource> source_;
  ModelConfig config_;
  std::unique_ptr<Engine> engine_;
  int64_t first_step_ = 0, step_ = 0, last_step_ = 0;  // steps done: before this run, now, at its end
  double first_loss_ = 0.0;
  SmoothedLoss smoothed_;              // the loss as the observers show it
  std::optional<int64_t> saved_step_;  // the last good checkpoint at out_path
};

// The whole of `microgpt train`: prints what microgpt.py prints to `out`, logs, shows
// progress and plots as the options say. Throws Error on bad input.
void run_training(const TrainOptions& options, std::ostream& out);

}  // namespace microgpt

#include "train/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ostream>

#include "core/error.h"
#include "core/files.h"
#include "core/text.h"
#include "model/limits.h"
#include "train/reporters.h"
#include "train/sampler.h"

namespace microgpt {

TrainingRun::TrainingRun(const TrainOptions& given) : options_(given), rng_(given.train.seed) {
  if (given.group && given.group->size() > 1) {
    parallel_ = std::make_unique<DataParallel>(*given.group, given.zero == 1, given.check_every);
  }
  try {
    resolve();
  } catch (const Error& e) {
    if (!parallel_) throw;
    start_error_ = e;  // told to every process in prepare()
  }
}

void TrainingRun::resolve() {
  TrainOptions& o = options_;
  // A resumed run takes its configuration from the checkpoint.
  if (o.resume_path) {
    resume_ = load_checkpoint(*o.resume_path);
    const CheckpointData& c = *resume_;
    o.model = c.model;
    o.train = c.train;
    const auto float32 = [](const std::string& e) { return e == "fast" || e == "gpu"; };
    if (o.engine_given && o.engine.name != c.engine && !(float32(o.engine.name) && float32(c.engine))) {
      throw usage_error("checkpoint '" + *o.resume_path + "' was trained by the " + c.engine +
                        " engine, which --engine " + o.engine.name +
                        " cannot continue (the fast and gpu engines continue each other's runs)");
    }
    if (!o.engine_given || !float32(o.engine.name)) o.engine.name = c.engine;
    // The checkpoint records the workers of the run (processes x threads); a run of
    // several processes shares them out, so that 2 processes of 1 thread continue as 1
    // process of 2 threads, or back, with the same sums.
    if (!o.threads_given) o.engine.threads = std::max<int64_t>(1, c.threads / (parallel_ ? parallel_->group().size() : 1));
    if (!o.data_path && c.data_source != kEmbeddedSource) {
      throw usage_error("checkpoint '" + *o.resume_path + "' was trained on '" + c.data_source +
                        "': give that file again with --data");
    }
    if (c.step >= c.train.steps) {
      throw usage_error("checkpoint '" + *o.resume_path + "' has finished all " + std::to_string(c.train.steps) +
                        " of its steps; there is nothing to resume");
    }
    step_ = c.step;
  }
  validate_configuration(o.engine.name, o.model, o.train);
  if (parallel_ && o.engine.name == "reference") {
    throw usage_error("the reference engine trains one document a step, which cannot be shared between " +
                      std::to_string(parallel_->group().size()) + " processes: use --engine fast under mpirun");
  }
  if (parallel_ && o.engine.name == "gpu") {
    throw usage_error("the gpu engine trains in one process (its gradient stays on the GPU): use --engine fast under mpirun");
  }
  check(limits::threads, o.engine.threads);
  check(limits::check_every, o.check_every);
  check(limits::checkpoint_every, o.checkpoint_every);
  const int64_t steps = o.train.steps;
  if (o.stop_after != 0 && (!limits::stop_after.contains(o.stop_after) || o.stop_after > steps || o.stop_after <= step_)) {
    throw usage_error("--stop-after " + std::to_string(o.stop_after) + ": expected a step after " + std::to_string(step_) +
                      " and at most --steps (" + std::to_string(steps) + ")");
  }
  if ((o.checkpoint_every > 0 || o.stop_after > 0) && !o.out_path) {
    throw usage_error("--checkpoint-every and --stop-after need a checkpoint file (--out)");
  }
  // One file in two roles would be destroyed (the data overwritten by the checkpoint, a
  // log written over the model it resumes); continuing in one's own checkpoint is fine.
  std::vector<FileRole> files;
  if (o.data_path) files.push_back({"--data", *o.data_path, false});
  if (o.resume_path) files.push_back({"--resume", *o.resume_path, false});
  if (o.out_path) files.push_back({"--out", *o.out_path, true});
  if (o.log_path) files.push_back({"--log", *o.log_path, true});
  if (o.plot_loss_path) files.push_back({"--plot-loss", *o.plot_loss_path, true});
  const std::pair<std::string_view, std::string_view> same_file_allowed[] = {{"--resume", "--out"}};
  check_distinct_files(files, same_file_allowed);
  // Only rank 0 of several processes writes files.
  if (leader()) {
    if (o.out_path) check_writable(*o.out_path, "checkpoint");
    if (o.log_path) check_writable(*o.log_path, "log file");
    if (o.plot_loss_path) check_writable(*o.plot_loss_path, "plot");
  }
  first_step_ = step_;
  last_step_ = o.stop_after > 0 ? o.stop_after : steps;
  if (resume_ && o.out_path && *o.out_path == *o.resume_path) saved_step_ = step_;
  rng_ = PyRandom(o.train.seed);
}

TrainingRun::~TrainingRun() = default;

void TrainingRun::prepare() {
  // Processes that failed to start, or that would train on other data or settings, end
  // every process here, before anything is reported.
  if (parallel_) {
    std::string error;
    int code = 0;
    try {
      if (start_error_) throw *start_error_;
      build();
    } catch (const Error& e) {
      error = e.what();
      code = e.exit_code();
    }
    parallel_->agree(error, code, error.empty() ? settings() : decltype(settings()){});
  } else {
    build();
  }
  const TrainOptions& o = options_;
  const DataIdentity data = source_->identity();
  RunStarted e;
  e.precision = o.engine.precision;
  e.data_source = data.source;
  e.docs = source_->size();
  e.train_docs = source_->train_size();
  e.held_out_docs = source_->validation_size();
  e.validating = o.train.val_frac > 0.0;
  e.text = o.train.is_text();
  e.vocab_size = config_.vocab_size;
  e.num_params = engine_->num_params();
  e.first_step = step_;
  e.last_step = last_step_;
  e.steps = o.train.steps;
  if (resume_) e.resumed_from = *o.resume_path;
  notify(&Observer::on_start, e);
}

std::vector<std::pair<std::string, std::string>> TrainingRun::settings() const {
  const DataIdentity data = source_->identity();
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", data.crc);
  std::string vocabulary = "'";  // (appended: GCC 12 warns falsely about "'" + string)
  vocabulary += encode_utf8(source_->tokenizer().chars());
  vocabulary += "'";
  std::vector<std::pair<std::string, std::string>> out = {
      {"engine", options_.engine.name},
      {"data", std::to_string(data.docs) + (options_.train.is_text() ? " characters" : " documents") + " with CRC-32 " + crc},
      {"vocabulary", vocabulary},
      {"first step", std::to_string(step_)},
      {"ZeRO stage", std::to_string(options_.zero)},
  };
  // The model and training settings, one by one, as a checkpoint records them.
  for (const auto& [name, value] : recorded_settings(config_, options_.train)) out.emplace_back(name, value);
  return out;
}

void TrainingRun::build() {
  const TrainOptions& o = options_;
  std::unique_ptr<DataSource> source = make_data_source(o.data_path, rng_, o.train, o.model.block_size);
  const DataIdentity data = source->identity();
  if (resume_ && (data.docs != resume_->data_docs || data.crc != resume_->data_crc)) {
    throw Error("data file '" + data.source + "' is not the data checkpoint '" + *o.resume_path + "' was trained on (" +
                std::to_string(resume_->data_docs) + " documents from '" + resume_->data_source + "')");
  }
  source_ = std::move(source);
  config_ = o.model;
  config_.vocab_size = source_->tokenizer().vocab_size();
  EngineOptions engine = o.engine;
  if (parallel_) engine.optimizer_part = parallel_->optimizer_part(ParamLayout(config_).total());
  engine_ = make_engine(engine, config_, o.train);  // refuses what cannot fit
  if (resume_) {
    engine_->load_state(*resume_);
    rng_.set_state(resume_->rng);  // where the generator stood after the initial weights
  } else {
    engine_->init_params(rng_);
  }
}

void TrainingRun::step() {
  if (!engine_ || !steps_left()) throw Error("training run: step() before prepare() or after the last step");
  const TrainOptions& o = options_;
  const int64_t steps = o.train.steps;
  const auto start = std::chrono::steady_clock::now();
  const Batch& batch = source_->batch(step_);
  double loss = 0.0;
  bool finite = true;
  if (parallel_) {
    engine_->forward_backward(step_, parallel_->share(batch, config_.block_size));
    loss = parallel_->reduce(*engine_, batch);
    finite = parallel_->finish_update(*engine_, engine_->update(step_, steps));
  } else {
    loss = engine_->forward_backward(step_, batch);
    finite = engine_->update(step_, steps);
  }
  if (!finite) loss = NAN;
  const int64_t done = ++step_;
  StepFinished e;
  e.step = done;
  e.steps = steps;
  e.loss = loss;
  e.smoothed = smoothed_.add(loss);
  e.tokens = batch.tokens;
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  e.last = done == last_step_;
  notify(&Observer::on_step, e);
  // A numeric fault: a loss or gradient that is infinite or NaN, or a loss so far above
  // where training started (a thousand times) that the run has blown up even though
  // float arithmetic still holds it (the fast engine's log-sum-exp keeps losses of
  // 1e20 finite).
  if (done == first_step_ + 1) first_loss_ = std::max(loss, std::log(static_cast<double>(config_.vocab_size)));
  if (!std::isfinite(loss) || loss > 1000 * first_loss_) diverged(done, loss);
  if (parallel_ && (parallel_->check_due(done) || done == last_step_)) parallel_->check_weights(*engine_, done);
  if (o.train.eval_every > 0 && done % o.train.eval_every == 0 && done < steps) validate(done);
  if (o.checkpoint_every > 0 && done % o.checkpoint_every == 0 && done < last_step_) save(done);
}

void TrainingRun::finish() {
  const TrainOptions& o = options_;
  const int64_t steps = o.train.steps;
  RunFinished e;
  e.step = step_;
  e.steps = steps;
  e.stopped = step_ < steps;
  e.checkpoint_path = o.out_path.value_or("");
  e.data_source = source_->identity().source;
  if (e.stopped) {  // by --stop-after, or by a caller that steps the run itself
    if (o.out_path) save(step_);
    notify(&Observer::on_finish, e);
    return;
  }
  validate(steps);
  // The checkpoint holds the generator as it stands before sampling, so `microgpt sample`
  // draws the same names as the ones printed below.
  if (o.out_path) save(steps);
  const SampleOptions sampling = at_temperature(o.train.temperature);
  const Tokenizer& tokenizer = source_->tokenizer();
  for (int64_t i = 0; i < (leader() ? o.train.num_samples : 0); i++) {
    SampleDrawn s;
    s.index = i + 1;
    s.count = o.train.num_samples;
    const std::vector<Token> ids =
        o.train.is_text()
            ? sample_text(*engine_, rng_, sampling, std::vector<Token>{text_start_token(tokenizer)}, config_.block_size,
                          kTextSampleLength)
            : sample_sequence(*engine_, rng_, sampling, tokenizer.bos(), config_.block_size);
    s.text = tokenizer.chars_of(ids);
    notify(&Observer::on_sample, s);
  }
  notify(&Observer::on_finish, e);
}

void TrainingRun::run() {
  prepare();
  while (steps_left()) step();
  finish();
}

void TrainingRun::validate(int64_t step) {
  const Batch& val = source_->validation();
  if (val.docs.empty()) return;
  const double loss =
      parallel_ ? parallel_->evaluate(*engine_, val.docs, config_.block_size) : engine_->evaluate(val.docs).mean();
  notify(&Observer::on_validation, Validated{step, options_.train.steps, loss});
}

void TrainingRun::save(int64_t step) {
  const TrainOptions& o = options_;
  const DataIdentity data = source_->identity();
  CheckpointData c;
  c.engine = o.engine.name;
  c.model = config_;
  c.train = o.train;
  c.vocab = source_->tokenizer().chars();
  c.step = step;
  c.threads = o.engine.threads * (parallel_ ? parallel_->group().size() : 1);  // the workers
  c.data_source = data.source;
  c.data_docs = data.docs;
  c.data_crc = data.crc;
  engine_->save_state(c);
  for (double p : c.params) {
    if (!std::isfinite(p)) {
      // (the weights are the same in every process, so all of them see this)
      const std::string message = "training diverged by step " + std::to_string(step) +
                                  ": a parameter is not finite; the last good checkpoint is kept (try a lower --lr)";
      if (parallel_) throw GroupError(message);
      throw Error(message);
    }
  }
  if (parallel_) parallel_->gather_state(c);
  if (!leader()) return;
  c.rng = rng_.state();
  save_checkpoint(*o.out_path, c);
  saved_step_ = step;
  notify(&Observer::on_checkpoint, CheckpointWritten{step, *o.out_path});
}

void TrainingRun::diverged(int64_t step, double loss) {
  const std::string message =
      "training diverged at step " + std::to_string(step) + ": " +
      (std::isfinite(loss) ? "the loss is over a thousand times the first step's; "
                           : "the loss or a gradient is not finite; ") +
      (saved_step_ ? "the last good checkpoint, '" + *options_.out_path + "' at step " + std::to_string(*saved_step_) +
                         ", is kept"
                   : std::string("no checkpoint was written")) +
      " (try a lower --lr)";
  notify(&Observer::on_diverged, RunDiverged{step, message});
  if (parallel_) throw GroupError(message);  // every process saw the same loss
  throw Error(message);
}

void run_training(const TrainOptions& options, std::ostream& out) {
  TrainingRun run(options);
  // The progress line is cleared before the console writes below it, and the log is
  // opened before the console's first line, so a log that cannot be opened is reported
  // before any output.
  Progress progress(options.progress, options.progress_mode);
  ConsoleReport console(out, options.interactive);
  std::optional<JsonLog> log;
  std::optional<LossPlot> plot;
  // Only one process of several reports and writes.
  if (run.leader()) {
    run.add_observer(progress);
    if (options.log_path) run.add_observer(log.emplace(*options.log_path));
    run.add_observer(console);
    if (options.plot_loss_path) run.add_observer(plot.emplace(*options.plot_loss_path));
  }
  run.run();
}

}  // namespace microgpt

#include "serve/trainer.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/files.h"
#include "core/text.h"
#include "train/presets.h"
#include "train/run.h"

namespace microgpt {

using nlohmann::json;

void EventLog::push(const std::string& type, const json& data, const json* compact) {
  const std::string head = "event: " + type + "\ndata: ";
  Event e{head + data.dump() + "\n\n", compact ? head + compact->dump() + "\n\n" : std::string()};
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(e));
  }
  changed_.notify_all();
}

EventLog::Events EventLog::after(size_t from, std::chrono::milliseconds timeout, bool compact) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return closed_ || events_.size() > from; });
  if (closed_ || events_.size() <= from) return {};
  Events out;
  for (size_t i = from; i < events_.size(); i++) {
    const Event& e = events_[i];
    out.texts.push_back(compact && !e.compact.empty() ? e.compact : e.text);
  }
  out.count = events_.size() - from;
  return out;
}

size_t EventLog::size() const {
  std::lock_guard lock(mutex_);
  return events_.size();
}

void EventLog::write_data(size_t from, std::string_view type,
                          const std::function<void(std::string_view)>& write) const {
  const std::string head = "event: " + std::string(type) + "\ndata: ";
  std::vector<std::string_view> texts;
  {
    std::lock_guard lock(mutex_);
    for (size_t i = from; i < events_.size(); i++) {
      if (events_[i].text.starts_with(head)) texts.push_back(events_[i].text);  // head, the data, "\n\n"
    }
  }
  for (const std::string_view text : texts) {
    write(text.substr(head.size(), text.size() - head.size() - 2));
    write("\n");
  }
}

json compact_snapshot(const json& snapshot) {
  auto matrix = [](const json& rows) {
    if (!rows.is_array() || rows.empty() || !rows[0].is_array()) throw Error("a snapshot's matrix is not rows");
    const size_t n = rows.size(), cols = rows[0].size();
    std::string bytes;
    bytes.reserve(4 * n * cols);
    for (const json& row : rows) {
      if (!row.is_array() || row.size() != cols) throw Error("a snapshot's rows differ in length");
      for (const json& x : row) {
        const auto bits = std::bit_cast<uint32_t>(static_cast<float>(x.get<double>()));
        for (int k = 0; k < 32; k += 8) bytes.push_back(static_cast<char>(bits >> k & 0xff));
      }
    }
    return json{{"rows", n}, {"cols", cols}, {"float32", base64(bytes)}};
  };
  return json{{"step", snapshot.at("step")}, {"wte", matrix(snapshot.at("wte"))}, {"wpe", matrix(snapshot.at("wpe"))}};
}

void EventLog::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

bool EventLog::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

namespace {

// The events of a run, as the page reads them. Steps go out in batches, at most ten a
// second (and before any other event, and at the last step), so that a fast run does not
// spend its time telling the page about itself: a batch of steps is one event.
class EventReporter final : public Observer {
 public:
  explicit EventReporter(EventLog& log) : log_(log) {}
  ~EventReporter() override { flush(); }
  void on_start(const RunStarted& e) override {
    log_.push("start", {{"data", e.data_source},
                        {"docs", e.docs},
                        {"vocab_size", e.vocab_size},
                        {"num_params", e.num_params},
                        {"first_step", e.first_step},
                        {"steps", e.steps},
                        {"validating", e.validating}});
  }
  void on_step(const StepFinished& e) override {
    pending_.push_back({e.step, e.loss, e.smoothed, e.tokens, e.seconds});
    const auto now = std::chrono::steady_clock::now();
    if (e.last || now - flushed_ >= std::chrono::milliseconds(100)) flush();
  }
  void on_validation(const Validated& e) override {
    flush();
    log_.push("validation", {{"step", e.step}, {"loss", e.loss}});
  }
  void on_checkpoint(const CheckpointWritten& e) override {
    flush();
    log_.push("checkpoint", {{"step", e.step}, {"path", e.path}});
  }
  void on_sample(const SampleDrawn& e) override {
    flush();
    log_.push("sample", {{"index", e.index}, {"text", encode_utf8(e.text)}});
  }
  void on_finish(const RunFinished& e) override {
    flush();
    log_.push("finished", {{"step", e.step}, {"stopped", e.stopped}, {"checkpoint", e.checkpoint_path}});
  }
  // Whatever steps are waiting go out now (before a snapshot, say): those kept_steps
  // keeps, with how many steps the batch holds and their tokens.
  void flush() {
    if (pending_.empty()) return;
    json steps = json::array();
    for (const StepEntry& s : kept_steps(pending_, told_)) {
      steps.push_back(
          {{"step", s.step}, {"loss", s.loss}, {"smooth", s.smooth}, {"tokens", s.tokens}, {"seconds", s.seconds}});
    }
    int64_t tokens = 0;
    for (const StepEntry& s : pending_) tokens += s.tokens;
    const auto count = static_cast<int64_t>(pending_.size());
    log_.push("steps", {{"steps", std::move(steps)}, {"count", count}, {"tokens", tokens}});
    told_ += count;
    pending_.clear();
    flushed_ = std::chrono::steady_clock::now();
  }

 private:
  EventLog& log_;
  std::vector<StepEntry> pending_;
  int64_t told_ = 0;  // the run's steps in the events so far
  std::chrono::steady_clock::time_point flushed_ = std::chrono::steady_clock::now();
};

// x as the double whose shortest decimal is the shortest decimal of x as a float, when x
// is a float (the fast engine's weights): JSON then carries at most 9 digits a number,
// not 17. Any other x (the reference engine's) stays as it is.
double float32_decimal(double x) {
  const auto f = static_cast<float>(x);
  if (static_cast<double>(f) != x) return x;
  char buf[32];
  const auto written = std::to_chars(buf, buf + sizeof buf, f);
  double y = x;
  std::from_chars(buf, written.ptr, y);
  return y;
}

// wte and wpe as they stand, as rows.
json snapshot(Engine& engine, const ModelConfig& config, int64_t step) {
  const ParamLayout layout(config);
  auto rows = [&](const ParamTensor& t) {
    const std::vector<double> values = engine.read_params(t.offset, t.rows * t.cols);
    json out = json::array();
    for (int64_t r = 0; r < t.rows; r++) {
      json row = json::array();
      for (int64_t k = 0; k < t.cols; k++) row.push_back(float32_decimal(values[static_cast<size_t>(r * t.cols + k)]));
      out.push_back(std::move(row));
    }
    return out;
  };
  return json{{"step", step}, {"wte", rows(layout.wte())}, {"wpe", rows(layout.wpe())}};
}

template <class T>
void take(const json& request, const char* name, T& value) {
  if (const std::optional<T> v = field<T>(request, name)) value = *v;
}

}  // namespace

std::vector<StepEntry> kept_steps(const std::vector<StepEntry>& batch, int64_t told) {
  if (batch.empty() || told + static_cast<int64_t>(batch.size()) <= kEveryStep) return batch;
  size_t lo = batch.size() - 1, hi = lo;  // (the last, when no loss is finite)
  for (size_t i = 0; i < batch.size(); i++) {
    if (!std::isfinite(batch[i].loss)) continue;
    if (!std::isfinite(batch[lo].loss) || batch[i].loss < batch[lo].loss) lo = i;
    if (!std::isfinite(batch[hi].loss) || batch[i].loss > batch[hi].loss) hi = i;
  }
  std::vector<size_t> at{lo, hi, batch.size() - 1};
  std::sort(at.begin(), at.end());
  at.erase(std::unique(at.begin(), at.end()), at.end());
  std::vector<StepEntry> kept;
  for (size_t i : at) kept.push_back(batch[i]);
  return kept;
}

int64_t snapshot_interval(int64_t requested, int64_t steps, int64_t numbers) {
  if (requested <= 0) return 0;
  const int64_t most = std::clamp<int64_t>(kSnapshotNumbers / std::max<int64_t>(1, numbers), 1, kMaxSnapshots);
  return std::max(requested, (steps + most - 1) / most);
}

Trainer::~Trainer() {
  stop_ = true;
  paused_ = false;
  unpaused_.notify_all();
  if (thread_.joinable()) thread_.join();
  events_.close();
}

json Trainer::start(const json& request) {
  if (!request.is_object()) throw ApiError(400, "the request must be a JSON object");
  static const char* known[] = {"preset", "n_layer", "n_embd", "n_head", "block_size", "batch_size", "steps", "lr",
                                "warmup", "init", "seed", "engine", "format", "val_frac", "eval_every", "num_samples",
                                "threads", "snapshot_every", "name", "data", "wte", "wpe", "combine"};
  for (const auto& item : request.items()) {
    const std::string& field_name = item.key();
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return field_name == k; }) ==
        std::end(known)) {
      throw ApiError(400, "unknown field '" + field_name + "'");
    }
  }
  TrainOptions o;
  o.data_path = command_.data_path;
  o.engine.threads = command_.threads;
  o.train.num_samples = 5;
  o.train.val_frac = 0.1;
  o.train.eval_every = 100;
  std::string name = "model";
  int64_t snapshot_every = 50;
  if (const std::optional<std::string> preset = field<std::string>(request, "preset")) {
    const Preset* p = find_preset(*preset);
    if (!p) throw ApiError(400, "no preset '" + *preset + "'");
    apply_preset(*p, o.model, o.train, [&](const std::string& setting) { return request.contains(setting); });
  }
  take(request, "n_layer", o.model.n_layer);
  take(request, "n_embd", o.model.n_embd);
  take(request, "n_head", o.model.n_head);
  take(request, "block_size", o.model.block_size);
  take(request, "batch_size", o.train.batch_size);
  take(request, "steps", o.train.steps);
  take(request, "lr", o.train.lr);
  take(request, "warmup", o.train.warmup);
  take(request, "init", o.train.init);
  take(request, "wte", o.train.wte);
  take(request, "wpe", o.train.wpe);
  take(request, "combine", o.train.combine);
  take(request, "seed", o.train.seed);
  take(request, "engine", o.engine.name);
  take(request, "format", o.train.format);
  take(request, "val_frac", o.train.val_frac);
  take(request, "eval_every", o.train.eval_every);
  take(request, "num_samples", o.train.num_samples);
  take(request, "threads", o.engine.threads);
  take(request, "snapshot_every", snapshot_every);
  take(request, "name", name);
  std::string data = command_.data_path ? "file" : "embedded";
  take(request, "data", data);
  if (data == "embedded") {
    o.data_path.reset();
  } else if (data != "file" || !command_.data_path) {
    throw ApiError(400, command_.data_path ? "'data' is \"embedded\" or \"file\""
                                           : "'data' can only be \"embedded\": the server was started without --data");
  }
  if (snapshot_every < 0) throw ApiError(400, "'snapshot_every' must not be negative");
  check_request_samples(o.train.num_samples);
  o.out_path = file_in(command_.out_dir, name, ".safetensors");
  const std::string snapshots_path = file_in(command_.out_dir, name, ".snapshots.jsonl");
  std::lock_guard lock(mutex_);
  if (running_) throw ApiError(409, "a run is going on: stop it first");
  if (thread_.joinable()) thread_.join();
  // Prepared here (its data read, its engine built), so that a request that cannot run
  // (a text run without a text, a model too large for this machine's memory) is answered
  // as such, not with "started" and an error event after.
  auto reporter = std::make_shared<EventReporter>(events_);
  auto run = std::make_shared<std::unique_ptr<TrainingRun>>();
  const size_t first_event = events_.size();  // (the run's events come after it)
  try {
    *run = std::make_unique<TrainingRun>(o);
    (*run)->add_observer(*reporter);
    (*run)->prepare();
  } catch (const Error& e) {
    throw ApiError(e.kind() == Error::Kind::usage ? 400 : 500, one_line(e.what()));
  }
  running_ = true;
  stop_ = false;
  writes_ = *o.out_path;
  paused_ = false;
  step_ = 0;
  thread_ = std::thread([this, reporter, run, first_event, snapshot_every, name, out = *o.out_path, snapshots_path] {
    TrainingRun& r = **run;
    try {
      const TrainOptions& ro = r.options();
      const ParamLayout layout(r.config());
      const int64_t every =
          snapshot_interval(snapshot_every, ro.train.steps,
                            layout.wte().rows * layout.wte().cols + layout.wpe().rows * layout.wpe().cols);
      json told{{"name", name},
                {"engine", ro.engine.name},
                {"format", ro.train.format},
                {"n_layer", ro.model.n_layer},
                {"n_embd", ro.model.n_embd},
                {"n_head", ro.model.n_head},
                {"block_size", ro.model.block_size},
                {"batch_size", ro.train.batch_size},
                {"lr", ro.train.lr},
                {"warmup", ro.train.warmup},
                {"seed", ro.train.seed},
                {"steps", ro.train.steps},
                {"wte", ro.train.wte},
                {"wpe", ro.train.wpe},
                {"combine", ro.train.combine},
                {"snapshot_every", every}};
      put_vocabulary(told, r.data().tokenizer().chars());
      events_.push("run", told);
      auto keep = [&] {
        reporter->flush();
        const json s = snapshot(r.engine(), r.config(), r.steps_done());
        const json compact = compact_snapshot(s);
        events_.push("snapshot", s, &compact);
      };
      keep();
      while (r.steps_left() && !stop_) {
        {
          std::unique_lock lock(mutex_);
          unpaused_.wait(lock, [&] { return !paused_ || stop_; });
        }
        if (stop_) break;
        r.step();
        step_ = r.steps_done();
        if (every > 0 && r.steps_done() % every == 0) keep();
      }
      if (every > 0 && r.steps_done() % every != 0) keep();
      r.finish();
      write_file_atomic(snapshots_path, [&](const std::function<void(std::string_view)>& write) {
        events_.write_data(first_event, "snapshot", write);
      });
      host_.load(out);
      // The run's model is the page's now (its snapshots written beside it): after
      // "finished", which the run itself tells before these.
      events_.push("model", {{"path", out}});
    } catch (const std::exception& e) {
      reporter->flush();  // (the steps before the error)
      events_.push("error", {{"message", one_line(e.what())}});
    }
    run->reset();  // (before the reporter it tells)
    running_ = false;
  });
  return json{{"started", true}, {"checkpoint", *o.out_path}};
}

void Trainer::tell_history(const std::string& path) {
  const std::filesystem::path p(path);
  const std::filesystem::path snapshots = snapshots_beside(path);
  // Only a plain file is read: a pipe would hold the server here forever, a link could
  // lead out of the folder, a device (/dev/zero) has no end.
  std::error_code ec;
  const std::filesystem::file_type type = std::filesystem::symlink_status(snapshots, ec).type();
  if (type == std::filesystem::file_type::not_found || ec) return;
  if (type != std::filesystem::file_type::regular) {
    std::string message = "'";
    message += snapshots.string();
    message += "' is not a plain file (a link, a folder, a pipe or a device): the model's history is not read from it";
    events_.push("error", {{"message", message}});
    return;
  }
  std::ifstream in(snapshots);
  if (!in) return;
  const json m = host_.model();
  const json& c = m["config"];
  events_.push("start", {{"data", m["data"]}, {"vocab_size", c["vocab_size"]}, {"num_params", m["num_params"]},
                         {"first_step", 0}, {"steps", m["steps"]}, {"from", snapshots.string()}});
  json run = m["settings"];
  run["name"] = p.stem().string();
  for (const char* key : {"vocab", "labels", "classes"}) run[key] = m[key];
  run["engine"] = m["engine"];
  events_.push("run", run);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const json s = json::parse(line);
      const json compact = compact_snapshot(s);
      events_.push("snapshot", s, &compact);
    } catch (const std::exception&) {
      events_.push("error", {{"message", "'" + snapshots.string() + "' holds a line that is not a snapshot's JSON"}});
      return;
    }
  }
  events_.push("finished", {{"step", m["step"]}, {"stopped", m["step"] < m["steps"]}, {"checkpoint", path}});
}

bool Trainer::writing(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (!running_) return false;
  std::error_code ec;
  return path == writes_ || std::filesystem::equivalent(path, writes_, ec) ||
         snapshots_beside(path) == snapshots_beside(writes_);
}

json Trainer::stop() {
  stop_ = true;
  unpaused_.notify_all();
  return state();
}

json Trainer::pause() {
  if (running_) paused_ = true;
  return state();
}

json Trainer::resume() {
  paused_ = false;
  unpaused_.notify_all();
  return state();
}

json Trainer::state() {
  const char* s = !running_ ? "idle" : stop_ ? "stopping" : paused_ ? "paused" : "running";
  return json{{"state", s}, {"step", step_.load()}};
}

}  // namespace microgpt

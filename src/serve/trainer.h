// Training from the page: one run at a time, on a thread of its own, with the real
// engines (train/run.h), told to the page as Server-Sent Events. Every event of every
// run is kept, so a page that connects late (or reloads) replays the whole history,
// embedding snapshots included; the snapshots are also written beside the checkpoint.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "serve/api.h"
#include "serve/serve.h"

namespace microgpt {

// The events so far, each "event: TYPE\ndata: JSON\n\n" as SSE sends it.
class EventLog {
 public:
  // An event, and (when given) its data in a compact form, for a stream that asks for it
  // (a snapshot's weights as float32 bytes: see compact_snapshot).
  void push(const std::string& type, const nlohmann::json& data, const nlohmann::json* compact = nullptr);
  // The events from index `from` on (each in its compact form where it has one, if
  // `compact`), as views of their text, and how many; waits up to `timeout` for one when
  // there are none. None also once closed. An event never changes or moves once pushed,
  // so the views stay good while the log lives: the stream writes from them without the
  // lock held, in pieces (a page that reloads a long history reads hundreds of MB).
  struct Events {
    std::vector<std::string_view> texts;
    size_t count = 0;
  };
  Events after(size_t from, std::chrono::milliseconds timeout, bool compact = false);
  // How many events there are so far.
  size_t size() const;
  // The data of each event of type `type` from index `from` on, each followed by a line
  // break, through `write` (a run's snapshots, written beside its checkpoint from here
  // rather than from a copy of their text; the stream goes on meanwhile).
  void write_data(size_t from, std::string_view type, const std::function<void(std::string_view)>& write) const;
  void close();
  bool closed() const;

 private:
  struct Event {
    std::string text, compact;  // (compact empty: as text)
  };
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Event> events_;  // (a deque: pushing moves no event)
  bool closed_ = false;
};

// A snapshot event's data ({"step", "wte": rows, "wpe": rows}) with each matrix as
// {"rows", "cols", "float32"}: its numbers as float32, row after row, little-endian,
// in base64. Less than half the bytes of the decimals, and a page reads them without
// parsing a number (/api/events?snapshots=float32).
nlohmann::json compact_snapshot(const nlohmann::json& snapshot);

// A run keeps its first snapshot (before any step) and at most kMaxSnapshots more, with
// about kSnapshotNumbers numbers in them all (about 10 bytes each as the events' text):
// the server holds every event, the page every snapshot, and its views go over them all
// as it redraws, so that a long run would otherwise fill both and slow the page down. The steps between snapshots: the
// `requested` ones (0: only the first, before any step), or more, so that a run of
// `steps` keeps within both (`numbers` in each snapshot: wte's and wpe's).
inline constexpr int64_t kMaxSnapshots = 500;
inline constexpr int64_t kSnapshotNumbers = int64_t{1} << 24;
int64_t snapshot_interval(int64_t requested, int64_t steps, int64_t numbers);

// A step as the `steps` events tell it, with the run's smoothed loss there
// (train/smoothed_loss.h: the progress line's), which the page's loss chart draws.
struct StepEntry {
  int64_t step = 0;
  double loss = 0.0, smooth = 0.0;
  int64_t tokens = 0;
  double seconds = 0.0;
};

// What a `steps` event keeps of its batch, the steps since the last one: all of them
// while the run has told at most kEveryStep steps (`told` before this batch), then
// the batch's lowest and highest loss and its last step, in order, each once. A run of
// the tiny model does 30,000 steps a second, and the server and every page keep every
// event: a run of a million steps left the server at about 100 MB and the page's heap at
// 70 MB when every step was kept, 35 MB and under 10 MB now. The loss chart draws each pixel column's
// lowest and highest loss and the smoothed loss at its last step: these steps keep it as
// it was (but where a batch spans two columns), in at most 30 steps a second.
inline constexpr int64_t kEveryStep = 10000;
std::vector<StepEntry> kept_steps(const std::vector<StepEntry>& batch, int64_t told);

class Trainer {
 public:
  // Checkpoints go to command.out_dir; a finished (or stopped) run's model becomes
  // `host`'s, for the other views.
  Trainer(const ServeCommand& command, ModelHost& host) : command_(command), host_(host) {}
  ~Trainer();

  // POST /api/train: starts a run (409 while one runs). The request: "preset", and any
  // of "n_layer", "n_embd", "n_head", "block_size", "batch_size", "steps", "lr",
  // "warmup", "init", "seed", "engine", "format", "val_frac", "eval_every",
  // "num_samples", "threads" (as microgpt train's flags), "snapshot_every" (steps
  // between snapshots of wte and wpe; default 50, more when snapshot_interval says so;
  // the run event says how many), "name" (the checkpoint,
  // OUT_DIR/NAME.safetensors; default "model") and "data": "embedded" (the embedded
  // names) or "file" (the server's --data, the default when it has one).
  nlohmann::json start(const nlohmann::json& request);
  // POST /api/train/stop, /pause, /resume; GET /api/train: {"state": "idle" | "running"
  // | "paused" | "stopping", "step": the steps the last run has done}.
  nlohmann::json stop();
  nlohmann::json pause();
  nlohmann::json resume();
  nlohmann::json state();
  EventLog& events() { return events_; }
  // Whether a run going on will write its checkpoint (or its snapshots) at `path`.
  bool writing(const std::string& path);
  // When the checkpoint at `path` (the host's model now) has snapshots beside it
  // (NAME.snapshots.jsonl), tells them as a past run: start, run, every snapshot,
  // finished; so a model trained before the server started shows its history too.
  void tell_history(const std::string& path);

 private:
  void finish_thread();

  ServeCommand command_;
  ModelHost& host_;
  EventLog events_;
  std::mutex mutex_;
  std::condition_variable unpaused_;
  std::thread thread_;
  std::atomic<bool> running_{false}, stop_{false}, paused_{false};
  std::string writes_;  // the running run's checkpoint (under mutex_)
  std::atomic<int64_t> step_{0};
};

}  // namespace microgpt

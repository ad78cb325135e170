// Data-parallel training across the processes of a ProcessGroup (mpirun), as TrainingRun
// uses it (train/run.h):
//
// - Every process reads the same data and draws the same global batch of every step; it
//   keeps its share, cut as the fast engine cuts a batch between threads (data/dataset.h
//   batch_part), and runs forward and backward on it with its own threads.
// - The gradients are summed in rank order: each process receives its part
//   (model/config.h param_part) of every process's gradient and adds them up, rank 0's
//   plus rank 1's plus ..., the order in which the fast engine's threads sum theirs; so N
//   processes of one thread train exactly as one process of N threads. The parts are then
//   gathered whole on every process, and every process applies the same Adam update; or,
//   with --zero 1 (ZeRO stage 1), each process keeps Adam's moments of its part only,
//   updates that part, and the weights are gathered. Adam works element by element, so
//   both give the same weights.
// - Losses are summed document by document in batch order (each process contributes its
//   documents'), so the reported loss does not depend on the number of processes either.
// - A checksum of the weights is compared every `check_every` steps and at the end: a
//   divergence becomes an error naming the step.
//
// The processes agree at the start: if one failed to start (a missing file, a bad
// option) or their settings differ (another data file, vocabulary, configuration), every
// process ends with one message from rank 0 saying which rank and what.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "data/dataset.h"
#include "model/config.h"
#include "train/engine.h"
#include "train/process_group.h"

namespace microgpt {

class DataParallel {
 public:
  // zero: shard Adam's moments (ZeRO stage 1). check_every: compare the weights' checksum
  // every so many steps (0: only at the end).
  DataParallel(ProcessGroup& group, bool zero, int64_t check_every);

  ProcessGroup& group() { return group_; }
  bool leader() const { return group_.leader(); }

  // The parameters whose Adam moments this process keeps: all, or its part with --zero 1.
  ParamRange optimizer_part(int64_t params) const;

  // After every process has started (or failed to: `error` non-empty, with its exit
  // code): throws GroupError on every process if one failed, or if their settings
  // ((name, value) pairs in a fixed order) differ, naming the rank and what differs.
  void agree(const std::string& error, int exit_code, const std::vector<std::pair<std::string, std::string>>& settings);

  // This process's share of a step's batch (valid until the next call).
  const Batch& share(const Batch& batch, int64_t block_size);
  // After forward_backward on the share: the gradient summed over every process (in
  // place, in the engine); returns the step's mean loss over the whole batch.
  double reduce(Engine& engine, const Batch& batch);
  // After the update (`finite`: whether this process's gradient was): with --zero 1 the
  // weights are gathered whole. Returns whether every process's update was finite.
  bool finish_update(Engine& engine, bool finite);
  // Whether `step` is one at which the weights' checksums are compared.
  bool check_due(int64_t step) const { return check_every_ > 0 && step % check_every_ == 0; }
  // Compares the weights' checksums; throws GroupError naming the step if they differ.
  void check_weights(Engine& engine, int64_t step);
  // The mean loss over documents, each process evaluating its share.
  double evaluate(Engine& engine, std::span<const DocRef> docs, int64_t block_size);
  // With --zero 1, a checkpoint's Adam moments gathered whole on rank 0 (the others'
  // are left partial: only rank 0 writes).
  void gather_state(CheckpointData& c);

 private:
  std::vector<int64_t> part_bounds(int64_t params) const;

  ProcessGroup& group_;
  bool zero_;
  int64_t check_every_;
  Batch share_;
};

}  // namespace microgpt

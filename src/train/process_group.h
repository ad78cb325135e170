// The processes of one training run launched by mpirun: their number, this one's rank,
// and the few collective operations data-parallel training needs (train/data_parallel.h
// says what it does with them). The interface knows nothing of MPI; the one
// implementation, on Open MPI, is in train/mpi_group.cpp and is built when CMake finds
// MPI.
//
// Every operation is collective: every process of the group calls it, in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace microgpt {

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t size() const = 0;
  bool leader() const { return rank() == 0; }

  // Every process's `mine`, in rank order.
  virtual std::vector<std::string> all_gather(const std::string& mine) = 0;
  // Every process's doubles, back to back in rank order (each may give a different count).
  virtual std::vector<double> all_gather(std::span<const double> mine) = 0;
  // With parts[r] = [bounds[r], bounds[r+1]) of `data`: sends part r of this process's
  // data to rank r, and returns this process's part as every rank sent it, back to back
  // in rank order (size() times the part).
  virtual std::vector<float> exchange(std::span<const float> data, std::span<const int64_t> bounds) = 0;
  // Every process holds its own part (rank r: [bounds[r], bounds[r+1])) of `data`; on
  // return every process holds all of them.
  virtual void all_gather_parts(std::span<float> data, std::span<const int64_t> bounds) = 0;
  // The same for doubles, gathered on rank 0 only (the others' `data` is left as it is).
  virtual void gather_parts(std::span<double> data, std::span<const int64_t> bounds) = 0;
  // Ends every process of the job at once with this exit code: for a failure that only
  // this process saw, when the others may be waiting for it in a collective.
  [[noreturn]] virtual void abort(int exit_code) = 0;
};

// An error that every process of the group raised together (they agreed on it, or saw
// the same numbers): rank 0 reports it and every process ends normally with its exit
// code. Any other error is one process's own, and ends the job through abort().
class GroupError : public Error {
 public:
  using Error::Error;
};

// The launcher's process count when this process was started by mpirun (Open MPI's
// OMPI_COMM_WORLD_SIZE, or the PMI_SIZE of MPICH's and Slurm's launchers); 0 when it was
// not. Reads the environment only: it starts no MPI, so a plain run pays nothing for it.
int64_t launched_process_count();

// This process's rank as the launcher numbered it (OMPI_COMM_WORLD_RANK or PMI_RANK);
// 0 when it was not launched by one.
int64_t launched_rank();

// Joins the group of processes mpirun started (initialising MPI, once). Throws a
// GroupError (every process fails alike) when this build has no MPI.
std::unique_ptr<ProcessGroup> join_launched_group();

}  // namespace microgpt

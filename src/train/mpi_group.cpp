// The process group on MPI: the module libmicrogpt_mpi (train/mpi_module.h), loaded
// when mpirun started this process with others. Without the module (a build that found
// no MPI) a run under mpirun is refused with one line.
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "core/files.h"
#include "train/mpi_module.h"
#include "train/process_group.h"

namespace microgpt {

namespace {

// The first of these variables that holds a whole number at least `least`, or -1.
int64_t launcher_number(std::initializer_list<const char*> names, long long least) {
  for (const char* name : names) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long long n = std::strtoll(v, &end, 10);
    if (*end == '\0' && n >= least) return n;
  }
  return -1;
}

}  // namespace

// Open MPI's mpirun sets OMPI_COMM_WORLD_*; MPICH's and Slurm's launchers PMI_*.
int64_t launched_process_count() {
  return std::max<int64_t>(0, launcher_number({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}, 1));
}

int64_t launched_rank() { return std::max<int64_t>(0, launcher_number({"OMPI_COMM_WORLD_RANK", "PMI_RANK"}, 0)); }

namespace {

// The module's functions, looked up once.
struct Module {
  decltype(&microgpt_mpi_init) init;
  decltype(&microgpt_mpi_finalize) finalize;
  decltype(&microgpt_mpi_all_gather_count) all_gather_count;
  decltype(&microgpt_mpi_all_gather) all_gather;
  decltype(&microgpt_mpi_exchange) exchange;
  decltype(&microgpt_mpi_all_gather_parts) all_gather_parts;
  decltype(&microgpt_mpi_gather_parts) gather_parts;
  decltype(&microgpt_mpi_error) error;
  decltype(&microgpt_mpi_abort) abort;
};

GroupError no_mpi(const std::string& why) {
  return GroupError("this microgpt cannot train across the " + std::to_string(launched_process_count()) +
               " processes mpirun started: " + why +
               " (a build finds MPI when libopenmpi-dev is installed: make build installs it)");
}

// The module beside the executable (build/microgpt, build/libmicrogpt_mpi.so), loaded
// with its symbols global: Open MPI's own plugins look up libmpi's symbols there.
Module load_module() {
#ifndef MICROGPT_MPI_MODULE
  throw no_mpi("it was built without MPI");
#else
  const std::string path = beside_executable(MICROGPT_MPI_MODULE);
  if (path.empty()) throw no_mpi("it cannot tell where its own file is");
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr) throw no_mpi("its MPI module would not load (" + std::string(dlerror()) + ")");
  auto symbol = [&](const char* name) {
    void* f = dlsym(handle, name);
    if (f == nullptr) throw no_mpi("its MPI module '" + path + "' lacks " + name);
    return f;
  };
  Module m{};
  m.init = reinterpret_cast<decltype(m.init)>(symbol("microgpt_mpi_init"));
  m.finalize = reinterpret_cast<decltype(m.finalize)>(symbol("microgpt_mpi_finalize"));
  m.all_gather_count = reinterpret_cast<decltype(m.all_gather_count)>(symbol("microgpt_mpi_all_gather_count"));
  m.all_gather = reinterpret_cast<decltype(m.all_gather)>(symbol("microgpt_mpi_all_gather"));
  m.exchange = reinterpret_cast<decltype(m.exchange)>(symbol("microgpt_mpi_exchange"));
  m.all_gather_parts = reinterpret_cast<decltype(m.all_gather_parts)>(symbol("microgpt_mpi_all_gather_parts"));
  m.gather_parts = reinterpret_cast<decltype(m.gather_parts)>(symbol("microgpt_mpi_gather_parts"));
  m.error = reinterpret_cast<decltype(m.error)>(symbol("microgpt_mpi_error"));
  m.abort = reinterpret_cast<decltype(m.abort)>(symbol("microgpt_mpi_abort"));
  return m;
#endif
}

class MpiGroup final : public ProcessGroup {
 public:
  MpiGroup() : m_(load_module()) { check(m_.init(&rank_, &size_), "MPI_Init"); }
  ~MpiGroup() override { m_.finalize(); }

  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }

  std::vector<std::string> all_gather(const std::string& mine) override {
    const std::vector<int64_t> counts = gather_counts(static_cast<int64_t>(mine.size()));
    std::string all(static_cast<size_t>(sum(counts)), '\0');
    check(m_.all_gather(mine.data(), counts.data(), all.data(), kMicrogptMpiBytes), "MPI_Allgatherv");
    std::vector<std::string> out;
    size_t at = 0;
    for (int64_t n : counts) {
      out.push_back(all.substr(at, static_cast<size_t>(n)));
      at += static_cast<size_t>(n);
    }
    return out;
  }

  std::vector<double> all_gather(std::span<const double> mine) override {
    const std::vector<int64_t> counts = gather_counts(static_cast<int64_t>(mine.size()));
    std::vector<double> all(static_cast<size_t>(sum(counts)));
    check(m_.all_gather(mine.data(), counts.data(), all.data(), kMicrogptMpiDouble), "MPI_Allgatherv");
    return all;
  }

  std::vector<float> exchange(std::span<const float> data, std::span<const int64_t> bounds) override {
    const size_t r = static_cast<size_t>(rank_);
    std::vector<float> out(static_cast<size_t>(size_) * static_cast<size_t>(bounds[r + 1] - bounds[r]));
    check(m_.exchange(data.data(), bounds.data(), out.data()), "MPI_Alltoallv");
    return out;
  }

  void all_gather_parts(std::span<float> data, std::span<const int64_t> bounds) override {
    check(m_.all_gather_parts(data.data(), bounds.data(), kMicrogptMpiFloat), "MPI_Allgatherv");
  }

  void gather_parts(std::span<double> data, std::span<const int64_t> bounds) override {
    check(m_.gather_parts(data.data(), bounds.data(), kMicrogptMpiDouble), "MPI_Gatherv");
  }

  [[noreturn]] void abort(int exit_code) override {
    m_.abort(exit_code);
    std::_Exit(exit_code);
  }

 private:
  void check(int rc, const char* what) const {
    if (rc == 0) return;
    char words[512];
    m_.error(rc, words, sizeof words);
    throw Error(std::string(what) + " failed: " + words);
  }
  std::vector<int64_t> gather_counts(int64_t mine) {
    std::vector<int64_t> counts(static_cast<size_t>(size_));
    check(m_.all_gather_count(mine, counts.data()), "MPI_Allgather");
    return counts;
  }
  static int64_t sum(const std::vector<int64_t>& v) {
    int64_t s = 0;
    for (int64_t x : v) s += x;
    return s;
  }

  Module m_;
  int64_t rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<ProcessGroup> join_launched_group() { return std::make_unique<MpiGroup>(); }

}  // namespace microgpt

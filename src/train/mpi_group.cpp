// The process group on Open MPI (or any MPI), when CMake found one (MICROGPT_MPI);
// without it, a run launched by mpirun is refused with one line.
#include <climits>
#include <cstdlib>
#include <string>

#include "train/process_group.h"

#ifdef MICROGPT_MPI
#include <mpi.h>
#endif

namespace microgpt {

int64_t launched_process_count() {
  // Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; MPICH's and Slurm's launchers PMI_SIZE.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long long n = std::strtoll(v, &end, 10);
    if (*end == '\0' && n >= 1) return n;
  }
  return 0;
}

#ifdef MICROGPT_MPI

namespace {

// MPI counts are ints.
int count_of(int64_t n) {
  if (n < 0 || n > INT_MAX) throw Error("MPI: a message of " + std::to_string(n) + " elements is too large");
  return static_cast<int>(n);
}

class MpiGroup final : public ProcessGroup {
 public:
  MpiGroup() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      // Only the main thread calls MPI, outside the engine's OpenMP regions.
      int provided = 0;
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        throw Error("MPI could not start");
      }
    }
    // Failures come back as error codes (turned into errors), not as MPI's own abort.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rank_ = rank;
    size_ = size;
  }
  ~MpiGroup() override { MPI_Finalize(); }

  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }

  std::vector<std::string> all_gather(const std::string& mine) override {
    std::vector<char> bytes(mine.begin(), mine.end());
    const std::vector<int> counts = gather_counts(count_of(static_cast<int64_t>(bytes.size())));
    const std::vector<int> displs = offsets(counts);
    std::vector<char> all(static_cast<size_t>(displs.back() + counts.back()));
    check(MPI_Allgatherv(bytes.data(), counts[static_cast<size_t>(rank_)], MPI_CHAR, all.data(), counts.data(),
                         displs.data(), MPI_CHAR, MPI_COMM_WORLD),
          "MPI_Allgatherv");
    std::vector<std::string> out;
    for (size_t r = 0; r < counts.size(); r++) out.emplace_back(all.data() + displs[r], static_cast<size_t>(counts[r]));
    return out;
  }

  std::vector<double> all_gather(std::span<const double> mine) override {
    const std::vector<int> counts = gather_counts(count_of(static_cast<int64_t>(mine.size())));
    const std::vector<int> displs = offsets(counts);
    std::vector<double> all(static_cast<size_t>(displs.back() + counts.back()));
    check(MPI_Allgatherv(mine.data(), counts[static_cast<size_t>(rank_)], MPI_DOUBLE, all.data(), counts.data(),
                         displs.data(), MPI_DOUBLE, MPI_COMM_WORLD),
          "MPI_Allgatherv");
    return all;
  }

  std::vector<float> exchange(std::span<const float> data, std::span<const int64_t> bounds) override {
    const size_t n = static_cast<size_t>(size_);
    std::vector<int> send_counts(n), send_displs(n), recv_counts(n), recv_displs(n);
    const int mine = count_of(bounds[static_cast<size_t>(rank_) + 1] - bounds[static_cast<size_t>(rank_)]);
    for (size_t r = 0; r < n; r++) {
      send_counts[r] = count_of(bounds[r + 1] - bounds[r]);
      send_displs[r] = count_of(bounds[r]);
      recv_counts[r] = mine;
      recv_displs[r] = count_of(static_cast<int64_t>(r) * mine);
    }
    std::vector<float> out(n * static_cast<size_t>(mine));
    check(MPI_Alltoallv(data.data(), send_counts.data(), send_displs.data(), MPI_FLOAT, out.data(), recv_counts.data(),
                        recv_displs.data(), MPI_FLOAT, MPI_COMM_WORLD),
          "MPI_Alltoallv");
    return out;
  }

  void all_gather_parts(std::span<float> data, std::span<const int64_t> bounds) override {
    const auto [counts, displs] = parts_of(bounds);
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data.data(), counts.data(), displs.data(), MPI_FLOAT,
                         MPI_COMM_WORLD),
          "MPI_Allgatherv");
  }

  void gather_parts(std::span<double> data, std::span<const int64_t> bounds) override {
    const auto [counts, displs] = parts_of(bounds);
    const size_t r = static_cast<size_t>(rank_);
    check(rank_ == 0 ? MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data.data(), counts.data(), displs.data(),
                                   MPI_DOUBLE, 0, MPI_COMM_WORLD)
                     : MPI_Gatherv(data.data() + displs[r], counts[r], MPI_DOUBLE, nullptr, nullptr, nullptr,
                                   MPI_DOUBLE, 0, MPI_COMM_WORLD),
          "MPI_Gatherv");
  }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  static void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw Error(std::string(what) + " failed: " + std::string(text, static_cast<size_t>(len)));
  }
  std::vector<int> gather_counts(int mine) {
    std::vector<int> counts(static_cast<size_t>(size_));
    check(MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    return counts;
  }
  static std::vector<int> offsets(const std::vector<int>& counts) {
    std::vector<int> displs(counts.size(), 0);
    int64_t at = 0;
    for (size_t r = 0; r < counts.size(); r++) {
      displs[r] = count_of(at);
      at += counts[r];
    }
    count_of(at);
    return displs;
  }
  std::pair<std::vector<int>, std::vector<int>> parts_of(std::span<const int64_t> bounds) const {
    std::vector<int> counts, displs;
    for (int64_t r = 0; r < size_; r++) {
      counts.push_back(count_of(bounds[static_cast<size_t>(r) + 1] - bounds[static_cast<size_t>(r)]));
      displs.push_back(count_of(bounds[static_cast<size_t>(r)]));
    }
    return {counts, displs};
  }

  int64_t rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<ProcessGroup> join_launched_group() { return std::make_unique<MpiGroup>(); }

#else

std::unique_ptr<ProcessGroup> join_launched_group() {
  throw Error("this microgpt was built without MPI, so it cannot train across the " +
              std::to_string(launched_process_count()) +
              " processes mpirun started (install libopenmpi-dev and rebuild: make build)");
}

#endif

}  // namespace microgpt

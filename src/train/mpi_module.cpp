// libmicrogpt_mpi: the collectives of train/mpi_module.h on MPI. Built when CMake finds
// MPI; loaded by the program only under mpirun. Written against MPI's C interface,
// with no C++ library: nothing it allocates or throws crosses into the program.
#include "train/mpi_module.h"

#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kTooLarge = -1;  // a count above what MPI's ints hold
constexpr int kNoMemory = -2;

MPI_Datatype datatype(int type) {
  return type == kMicrogptMpiFloat ? MPI_FLOAT : type == kMicrogptMpiDouble ? MPI_DOUBLE : MPI_BYTE;
}

size_t element_size(int type) {
  return type == kMicrogptMpiFloat ? sizeof(float) : type == kMicrogptMpiDouble ? sizeof(double) : 1;
}

int64_t world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

int64_t world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// counts[r] and displacements of n parts as MPI's ints, in one malloc'd block of 2n.
// Returns null (and sets *rc) when a value does not fit or memory runs out.
template <class Count, class Offset>
int* int_parts(int64_t n, Count count, Offset offset, int* rc) {
  int* out = static_cast<int*>(std::malloc(sizeof(int) * static_cast<size_t>(2 * n)));
  if (out == nullptr) {
    *rc = kNoMemory;
    return nullptr;
  }
  for (int64_t r = 0; r < n; r++) {
    const int64_t c = count(r), o = offset(r);
    if (c < 0 || c > INT_MAX || o < 0 || o > INT_MAX) {
      std::free(out);
      *rc = kTooLarge;
      return nullptr;
    }
    out[r] = static_cast<int>(c);
    out[n + r] = static_cast<int>(o);
  }
  return out;
}

}  // namespace

extern "C" {

int microgpt_mpi_init(int64_t* rank, int64_t* size) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    // Only the main thread calls MPI, outside the engine's jobs of tasks.
    int provided = 0;
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
  }
  // Failures come back as codes (which the program reports), not as MPI's own abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  *rank = world_rank();
  *size = world_size();
  return MPI_SUCCESS;
}

int microgpt_mpi_finalize() { return MPI_Finalize(); }

int microgpt_mpi_all_gather_count(int64_t mine, int64_t* all) {
  return MPI_Allgather(&mine, 1, MPI_INT64_T, all, 1, MPI_INT64_T, MPI_COMM_WORLD);
}

int microgpt_mpi_all_gather(const void* mine, const int64_t* counts, void* out, int type) {
  const int64_t n = world_size();
  int64_t total = 0;
  int rc = MPI_SUCCESS;
  int* parts = nullptr;
  {
    // displacements: the running sum of the counts
    int64_t* offsets = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * static_cast<size_t>(n)));
    if (offsets == nullptr) return kNoMemory;
    for (int64_t r = 0; r < n; r++) {
      offsets[r] = total;
      total += counts[r];
    }
    parts = int_parts(
        n, [&](int64_t r) { return counts[r]; }, [&](int64_t r) { return offsets[r]; }, &rc);
    std::free(offsets);
  }
  if (parts == nullptr) return rc;
  const int64_t r = world_rank();
  rc = MPI_Allgatherv(mine, parts[r], datatype(type), out, parts, parts + n, datatype(type), MPI_COMM_WORLD);
  std::free(parts);
  return rc;
}

int microgpt_mpi_exchange(const float* data, const int64_t* bounds, float* out) {
  const int64_t n = world_size(), me = world_rank();
  const int64_t mine = bounds[me + 1] - bounds[me];
  int rc = MPI_SUCCESS;
  int* send = int_parts(
      n, [&](int64_t r) { return bounds[r + 1] - bounds[r]; }, [&](int64_t r) { return bounds[r]; }, &rc);
  if (send == nullptr) return rc;
  int* recv = int_parts(
      n, [&](int64_t) { return mine; }, [&](int64_t r) { return r * mine; }, &rc);
  if (recv == nullptr) {
    std::free(send);
    return rc;
  }
  rc = MPI_Alltoallv(data, send, send + n, MPI_FLOAT, out, recv, recv + n, MPI_FLOAT, MPI_COMM_WORLD);
  std::free(send);
  std::free(recv);
  return rc;
}

int microgpt_mpi_all_gather_parts(void* data, const int64_t* bounds, int type) {
  const int64_t n = world_size();
  int rc = MPI_SUCCESS;
  int* parts = int_parts(
      n, [&](int64_t r) { return bounds[r + 1] - bounds[r]; }, [&](int64_t r) { return bounds[r]; }, &rc);
  if (parts == nullptr) return rc;
  rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, parts, parts + n, datatype(type), MPI_COMM_WORLD);
  std::free(parts);
  return rc;
}

int microgpt_mpi_gather_parts(void* data, const int64_t* bounds, int type) {
  const int64_t n = world_size(), me = world_rank();
  int rc = MPI_SUCCESS;
  int* parts = int_parts(
      n, [&](int64_t r) { return bounds[r + 1] - bounds[r]; }, [&](int64_t r) { return bounds[r]; }, &rc);
  if (parts == nullptr) return rc;
  char* own = static_cast<char*>(data) + static_cast<size_t>(bounds[me]) * element_size(type);
  rc = me == 0 ? MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, parts, parts + n, datatype(type), 0, MPI_COMM_WORLD)
               : MPI_Gatherv(own, parts[me], datatype(type), nullptr, nullptr, nullptr, datatype(type), 0, MPI_COMM_WORLD);
  std::free(parts);
  return rc;
}

void microgpt_mpi_error(int code, char* text, size_t len) {
  if (len == 0) return;
  if (code == kTooLarge) {
    std::snprintf(text, len, "a message too large for MPI's int counts");
  } else if (code == kNoMemory) {
    std::snprintf(text, len, "out of memory");
  } else {
    char words[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, words, &n) != MPI_SUCCESS) n = std::snprintf(words, sizeof words, "MPI error %d", code);
    std::snprintf(text, len, "%.*s", n, words);
  }
}

void microgpt_mpi_abort(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // extern "C"

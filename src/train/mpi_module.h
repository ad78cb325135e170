// The C interface of the MPI module: libmicrogpt_mpi (train/mpi_module.cpp), the one part
// of microgpt that links MPI. The program loads it (train/mpi_group.cpp) only when mpirun
// started it with other processes, so a plain run does not even load MPI's libraries
// (eight of them, a millisecond of every start).
//
// Plain C types only, and nothing thrown across: each call returns 0, or an MPI error
// code that microgpt_mpi_error() turns into words. Sizes are 64-bit; the module refuses
// counts MPI's ints cannot hold. Every call but init, error and abort is collective.
#pragma once

#include <stddef.h>
#include <stdint.h>

extern "C" {

// The element types of the gathers.
enum MicrogptMpiType { kMicrogptMpiBytes = 0, kMicrogptMpiFloat = 1, kMicrogptMpiDouble = 2 };

// Starts MPI (once); this process's rank and the number of processes.
int microgpt_mpi_init(int64_t* rank, int64_t* size);
int microgpt_mpi_finalize();
// Every process's `mine` (one number) into all[rank].
int microgpt_mpi_all_gather_count(int64_t mine, int64_t* all);
// Every process's `counts[rank]` elements, back to back in rank order, into `out`.
int microgpt_mpi_all_gather(const void* mine, const int64_t* counts, void* out, int type);
// Part r = [bounds[r], bounds[r+1]) of `data` to rank r; this process's part from every
// rank, back to back in rank order, into `out`.
int microgpt_mpi_exchange(const float* data, const int64_t* bounds, float* out);
// Each process's own part of `data` (as above) to every process (all), or to rank 0
// only (root), in place.
int microgpt_mpi_all_gather_parts(void* data, const int64_t* bounds, int type);
int microgpt_mpi_gather_parts(void* data, const int64_t* bounds, int type);
// Words for a code, at most len - 1 bytes and a NUL.
void microgpt_mpi_error(int code, char* text, size_t len);
// Ends every process of the job with this exit code.
void microgpt_mpi_abort(int exit_code);

}  // extern "C"

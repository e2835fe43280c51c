// Open MPI (Debian: libopenmpi-dev) for data-parallel training. Swift cannot import
// MPI's handle macros (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM are addresses of Open MPI's
// globals), so the few calls the trainer makes are wrapped here, on the world
// communicator. Each returns MPI's error code (MPI_SUCCESS is 0).
#include <mpi.h>

/// MPI_THREAD_SERIALIZED: the gradient buckets' collectives run on a thread of their own
/// while the main thread computes; the two never call MPI at the same time. `provided` is
/// the level the library grants.
static inline int bitnet_mpi_init(int *provided) {
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
}
static inline int bitnet_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int bitnet_mpi_finalize(void) { return MPI_Finalize(); }
static inline int bitnet_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
static inline int bitnet_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }
static inline int bitnet_mpi_sum_floats(float *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
/// Errors return to the caller rather than aborting inside MPI, so they can be reported.
static inline int bitnet_mpi_errors_return(void) {
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static inline int bitnet_mpi_sum_doubles(double *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static inline int bitnet_mpi_max_int(int *value) {
    return MPI_Allreduce(MPI_IN_PLACE, value, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
}
/// ZeRO stage 1. Sums `values` (the whole bucket) over the ranks and leaves in `piece`
/// this rank's part of the sum, counts[r] floats for rank r, in rank order.
static inline int bitnet_mpi_reduce_scatter_floats(const float *values, float *piece, const int *counts) {
    return MPI_Reduce_scatter(values, piece, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
/// Every rank's part of `values` (counts[r] floats at offsets[r], already in place on
/// rank r) copied to every rank.
static inline int bitnet_mpi_all_gather_floats(float *values, const int *counts, const int *offsets) {
    return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, values, counts, offsets, MPI_FLOAT, MPI_COMM_WORLD);
}
/// Every rank's `piece` placed into `values` on rank 0 (counts[r] floats at offsets[r]).
static inline int bitnet_mpi_gather_floats(const float *piece, int count, float *values, const int *counts,
                                           const int *offsets) {
    return MPI_Gatherv(piece, count, MPI_FLOAT, values, counts, offsets, MPI_FLOAT, 0, MPI_COMM_WORLD);
}

// OpenBLAS's CBLAS interface (Debian: libopenblas-dev).
#include <cblas.h>

// LAPACK, which OpenBLAS bundles (column-major, Fortran calling convention): the
// Cholesky factorization and the inverse from it, for GPTQ.
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);
void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info);

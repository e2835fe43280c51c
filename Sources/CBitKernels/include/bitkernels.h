// The runtime's hot loops, where Swift cannot reach the instructions (vpshufb, F16C):
// the add-only look-up-table product over packed weights and the FP16/FP32 head.
// Each has a portable scalar path; the AVX2 path is chosen at run time.
// Layouts are specified in docs/FORMAT.md ("Tiled bit-planes").
#ifndef BITKERNELS_H
#define BITKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Bytes of look-up tables for one token and a BitLinear of `cols` inputs:
/// 32 bytes per group of 4 columns, columns padded to a multiple of 16.
size_t bitnet_table_bytes(int cols);

/// Builds one token's tables from its int8 activations q[0..cols) (|q| <= 127).
/// Group g covers columns 4g..4g+3 (missing columns count as 0). With q = 16 hi + lo
/// (lo = q & 15, hi = q >> 4), its 32 bytes are L[16] then H[16]:
/// L[m] = sum of lo over the columns whose bit is set in m, H[m] the same for hi.
void bitnet_build_tables(const int8_t *q, int cols, uint8_t *tables);

/// For 32-row blocks [block_begin, block_end) of one tiled bit-plane with `tiles`
/// 16-column tiles per block, and `tokens` tokens whose tables lie `table_stride` bytes
/// apart: sums[t * sum_stride + r] = the sum of token t's q over the set bits of row r.
/// Only additions of table entries: no multiplication by a weight.
void bitnet_plane_sums(const uint8_t *plane, int block_begin, int block_end, int tiles,
                       const uint8_t *tables, size_t table_stride, int tokens,
                       int32_t *sums, size_t sum_stride);

/// y[r] = sum_i w[r * stride + i] * x[i], i < cols, for rows [row_begin, row_end);
/// w in FP16 (the head) or FP32 (the head, attention scores against the key cache).
void bitnet_matvec_f16(const uint16_t *w, size_t stride, const float *x, float *y, int cols, int row_begin, int row_end);
void bitnet_matvec_f32(const float *w, size_t stride, const float *x, float *y, int cols, int row_begin, int row_end);
/// y[r] = scales[r] * sum_i w[r * stride + i] * x[i]: int8 rows with one scale each (the
/// head rounded to 8 bits at load, `bitnet-run --head int8`).
void bitnet_matvec_q8(const int8_t *w, const float *scales, size_t stride, const float *x, float *y, int cols, int row_begin,
                      int row_end);

/// out[j] = sum_i weights[i] * values[i * stride + j] for j < cols, i < n
/// (attention's weighted sum of the cached values of one head).
void bitnet_weighted_sum_f32(const float *values, size_t stride, const float *weights, int n, int cols, float *out);
void bitnet_weighted_sum_f16(const uint16_t *values, size_t stride, const float *weights, int n, int cols, float *out);

/// out[i] = x[i] rounded to IEEE half (the FP16 KV cache).
void bitnet_to_f16(const float *x, uint16_t *out, int n);

/// The sum of `words` u64 words (wrapping): a read of every byte that cannot be
/// optimized away, for measuring the machine's read bandwidth.
uint64_t bitnet_read_sum(const uint64_t *p, size_t words);

/// A spin-wait hint (x86 `pause`): lets a waiting worker spin without starving its sibling.
void bitnet_cpu_relax(void);

/// 1 when the CPU has AVX-512 BF16 (Zen 4, Sapphire Rapids), so that
/// `bitnet_bf16_encode_avx512` may be called.
int bitnet_has_avx512_bf16(void);
/// out[i] = x[i] rounded to BF16 by `vcvtneps2bf16` (round to nearest even, as the
/// trainer's loop; unlike it, subnormal inputs become zeros of their sign). Only where
/// `bitnet_has_avx512_bf16()`.
void bitnet_bf16_encode_avx512(const float *x, uint16_t *out, size_t n);

/// The int8 product's paths (int8gemm.c), slowest first.
enum { BITNET_S8_SCALAR = 0, BITNET_S8_AVX2 = 1, BITNET_S8_AVXVNNI = 2, BITNET_S8_AVX512VNNI = 3 };
/// 1 when this CPU can run `path`.
int bitnet_s8_path_supported(int path);
/// The fastest path this CPU can run.
int bitnet_s8_best_path(void);
/// c[i * ldc + j] = sum over p < k of a[i * lda + p] * b[j * ldb + p], for rows i in
/// [row_begin, row_end) and j < n: A times B transposed, every output the dot product of
/// two int8 rows, in int32. Exact for every int8 value when k <= 65536. `path` falls back
/// to the scalar one where unsupported.
void bitnet_gemm_s8(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, int32_t *c, size_t ldc,
                    int row_begin, int row_end, int n, int k);
/// The same sums written as FP32 (exact while |sum| < 2^24, as BitLinear's are).
void bitnet_gemm_s8_f32(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, float *c, size_t ldc,
                        int row_begin, int row_end, int n, int k);

/// Operations per second (2 per multiply-add) of one core running `iterations` x 12
/// independent `vpdpbusd` on registers only: the int8 limit the AVX-512 VNNI kernel is
/// compared with. 0 where AVX-512 VNNI is unsupported.
double bitnet_vnni_peak_ops(long iterations);

/// The same product for INT4 operands (every value of a and b in [-8, 7]; others give
/// wrong sums on the AVX2 path): its own vpmaddubsw kernel on AVX2, the int8 kernels on
/// the other paths. Exact for k <= 65536.
void bitnet_gemm_s4(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, int32_t *c, size_t ldc,
                    int row_begin, int row_end, int n, int k);
void bitnet_gemm_s4_f32(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, float *c, size_t ldc,
                        int row_begin, int row_end, int n, int k);

/// The same product for BitLinear's operands: every value of a in [-127, 127] and of b
/// in {-1, 0, +1} (others give wrong sums on the AVX2 path, whose own vpsignb +
/// vpmaddubsw kernel this is; the int8 kernels on the other paths).
void bitnet_gemm_s8t(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, int32_t *c, size_t ldc,
                     int row_begin, int row_end, int n, int k);
void bitnet_gemm_s8t_f32(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, float *c, size_t ldc,
                         int row_begin, int row_end, int n, int k);

/// out[c * rows + r] = a[r * cols + c] for r < rows and columns c in [col_from, col_to):
/// a [rows, cols] transposed. `vectorized` 0 takes the scalar path (tests compare the two);
/// otherwise 16 x 16 blocks go through SSE2 registers on x86-64.
void bitnet_transpose_s8(const int8_t *a, size_t rows, size_t cols, int8_t *out, size_t col_from, size_t col_to,
                         int vectorized);
/// 1 when the AVX2 paths are in use (for the benchmark report).
int bitnet_kernels_use_avx2(void);
/// Forces the scalar paths (tests compare the two); returns the previous setting.
int bitnet_kernels_force_scalar(int force);

#ifdef __cplusplus
}
#endif
#endif

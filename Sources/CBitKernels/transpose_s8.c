// See bitkernels.h: the byte transpose the trainer's backward integer products need
// (their kernel reads both operands along k). Scalar, it moved one byte per load and
// store and took 6% of an `int4` step at `small`; here 16 x 16 blocks are transposed in
// registers by four rounds of byte interleaves (SSE2, part of every x86-64).
#include "bitkernels.h"

#if defined(__x86_64__)
#include <emmintrin.h>

/// out[j * ldo + i] = a[i * lda + j] for i, j < 16. Each round interleaves register i
/// with register i + 8; after four rounds (log2 16) row r holds column r.
static void block16(const int8_t *a, size_t lda, int8_t *out, size_t ldo) {
    __m128i x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = _mm_loadu_si128((const __m128i *)(a + i * lda));
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 8; i++) {
            y[2 * i] = _mm_unpacklo_epi8(x[i], x[i + 8]);
            y[2 * i + 1] = _mm_unpackhi_epi8(x[i], x[i + 8]);
        }
        for (int i = 0; i < 16; i++) x[i] = y[i];
    }
    for (int i = 0; i < 16; i++) _mm_storeu_si128((__m128i *)(out + i * ldo), x[i]);
}
#endif

static void scalar(const int8_t *a, size_t rows, size_t cols, int8_t *out,
                   size_t row_from, size_t row_to, size_t col_from, size_t col_to) {
    for (size_t r = row_from; r < row_to; r++)
        for (size_t c = col_from; c < col_to; c++) out[c * rows + r] = a[r * cols + c];
}

void bitnet_transpose_s8(const int8_t *a, size_t rows, size_t cols, int8_t *out, size_t col_from, size_t col_to,
                         int vectorized) {
    size_t whole_to = col_from;
#if defined(__x86_64__)
    if (vectorized) {
        // Strips of 16 columns; 16-row blocks of each strip in turn, so the 16 output
        // rows being written stay in cache.
        whole_to = col_from + (col_to - col_from) / 16 * 16;
        size_t whole_rows = rows / 16 * 16;
        for (size_t c = col_from; c < whole_to; c += 16) {
            for (size_t r = 0; r < whole_rows; r += 16) block16(a + r * cols + c, cols, out + c * rows + r, rows);
            scalar(a, rows, cols, out, whole_rows, rows, c, c + 16);
        }
    }
#else
    (void)vectorized;
#endif
    scalar(a, rows, cols, out, 0, rows, whole_to, col_to);
}

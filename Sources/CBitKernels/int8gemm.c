// See bitkernels.h: the trainer's int8 x int8 -> int32 product (issue 12), C = A B^T
// with both operands row-major along k, so every output is the dot product of two int8
// rows. Four paths, chosen by the caller (tests run each one the CPU has):
//   scalar:      int32 multiply-adds;
//   AVX2:        int8 sign-extended to int16, vpmaddwd (int16 x int16 summed in pairs to
//                int32): exact for every int8 value, -128 included, where vpmaddubsw
//                (u8 x s8 saturating to int16) would not be;
//   AVX-VNNI and AVX-512 VNNI: vpdpbusd (u8 x s8, four products summed into int32
//                without saturation). A is made unsigned as a + 128 and the excess
//                128 * sum(b) taken off at the end. The AVX-512 one packs its operands
//                (see gemm_avx512vnni); the others are dot-product kernels.
// The dot-product kernels block 4 rows of A against 2 rows of B (8 accumulators), each
// output reduced across its vector's lanes once at the end; k left over after the last
// whole vector is summed in scalar code.
#include "bitkernels.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BITNET_X86 1
#endif

/// Where the sums go: int32, or FP32 (exact while |sum| < 2^24) for the trainer's
/// forward, converted in registers so no int32 buffer is needed.
typedef struct { int32_t *i32; float *f32; } Out;

static inline void put(Out c, size_t index, int32_t v) {
    if (c.f32) c.f32[index] = (float)v;
    else c.i32[index] = v;
}

static int cpu_supports(int path) {
    switch (path) {
    case BITNET_S8_SCALAR: return 1;
#ifdef BITNET_X86
    case BITNET_S8_AVX2: return __builtin_cpu_supports("avx2");
    case BITNET_S8_AVXVNNI: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni");
    case BITNET_S8_AVX512VNNI:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
#endif
    default: return 0;
    }
}

int bitnet_s8_path_supported(int path) {
    // Asked once per path: the answer is read on every product.
    static int known[BITNET_S8_AVX512VNNI + 1] = {-1, -1, -1, -1};
    if (path < BITNET_S8_SCALAR || path > BITNET_S8_AVX512VNNI) return 0;
    if (known[path] < 0) {
#ifdef BITNET_X86
        __builtin_cpu_init();
#endif
        known[path] = cpu_supports(path);
    }
    return known[path];
}

int bitnet_s8_best_path(void) {
    static int best = -1;
    if (best < 0) {
        best = BITNET_S8_SCALAR;
        for (int p = BITNET_S8_AVX2; p <= BITNET_S8_AVX512VNNI; p++) {
            if (bitnet_s8_path_supported(p)) best = p;
        }
    }
    return best;
}

/// Narrow operand kinds with AVX2 kernels of their own (see gemm_pairs_avx2).
enum { PAIRS_INT4, PAIRS_TERNARY };

static inline int32_t dot_scalar(const int8_t *a, const int8_t *b, int from, int k) {
    int32_t s = 0;
    for (int p = from; p < k; p++) s += (int32_t)a[p] * (int32_t)b[p];
    return s;
}

static void gemm_scalar(const int8_t *a, size_t lda, const int8_t *b, size_t ldb, Out c, size_t ldc,
                        int row_begin, int row_end, int n, int k) {
    for (int i = row_begin; i < row_end; i++) {
        for (int j = 0; j < n; j++) put(c, (size_t)i * ldc + j, dot_scalar(a + (size_t)i * lda, b + (size_t)j * ldb, 0, k));
    }
}

#ifdef BITNET_X86

__attribute__((target("avx2"))) static inline int32_t sum8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/// 16 int8 at p as 16 int16.
__attribute__((target("avx2"))) static inline __m256i widen16(const int8_t *p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
}

__attribute__((target("avx2"))) static void gemm_avx2(const int8_t *a, size_t lda, const int8_t *b, size_t ldb, Out c,
                                                     size_t ldc, int row_begin, int row_end, int n, int k) {
    const int whole = k & ~15;
    int i = row_begin;
    for (; i + 4 <= row_end; i += 4) {
        const int8_t *a0 = a + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            const int8_t *b0 = b + (size_t)j * ldb, *b1 = b0 + ldb;
            __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00, s30 = s00, s31 = s00;
            for (int p = 0; p < whole; p += 16) {
                const __m256i x0 = widen16(b0 + p), x1 = widen16(b1 + p);
                __m256i y = widen16(a0 + p);
                s00 = _mm256_add_epi32(s00, _mm256_madd_epi16(y, x0));
                s01 = _mm256_add_epi32(s01, _mm256_madd_epi16(y, x1));
                y = widen16(a1 + p);
                s10 = _mm256_add_epi32(s10, _mm256_madd_epi16(y, x0));
                s11 = _mm256_add_epi32(s11, _mm256_madd_epi16(y, x1));
                y = widen16(a2 + p);
                s20 = _mm256_add_epi32(s20, _mm256_madd_epi16(y, x0));
                s21 = _mm256_add_epi32(s21, _mm256_madd_epi16(y, x1));
                y = widen16(a3 + p);
                s30 = _mm256_add_epi32(s30, _mm256_madd_epi16(y, x0));
                s31 = _mm256_add_epi32(s31, _mm256_madd_epi16(y, x1));
            }
            const size_t o = (size_t)i * ldc + j;
            put(c, o, sum8(s00) + dot_scalar(a0, b0, whole, k));
            put(c, o + 1, sum8(s01) + dot_scalar(a0, b1, whole, k));
            put(c, o + ldc, sum8(s10) + dot_scalar(a1, b0, whole, k));
            put(c, o + ldc + 1, sum8(s11) + dot_scalar(a1, b1, whole, k));
            put(c, o + 2 * ldc, sum8(s20) + dot_scalar(a2, b0, whole, k));
            put(c, o + 2 * ldc + 1, sum8(s21) + dot_scalar(a2, b1, whole, k));
            put(c, o + 3 * ldc, sum8(s30) + dot_scalar(a3, b0, whole, k));
            put(c, o + 3 * ldc + 1, sum8(s31) + dot_scalar(a3, b1, whole, k));
        }
        for (; j < n; j++) {
            for (int r = 0; r < 4; r++) {
                const int8_t *ar = a + (size_t)(i + r) * lda, *bj = b + (size_t)j * ldb;
                __m256i s = _mm256_setzero_si256();
                for (int p = 0; p < whole; p += 16) s = _mm256_add_epi32(s, _mm256_madd_epi16(widen16(ar + p), widen16(bj + p)));
                put(c, (size_t)(i + r) * ldc + j, sum8(s) + dot_scalar(ar, bj, whole, k));
            }
        }
    }
    for (; i < row_end; i++) {
        const int8_t *ar = a + (size_t)i * lda;
        for (int j = 0; j < n; j++) {
            const int8_t *bj = b + (size_t)j * ldb;
            __m256i s = _mm256_setzero_si256();
            for (int p = 0; p < whole; p += 16) s = _mm256_add_epi32(s, _mm256_madd_epi16(widen16(ar + p), widen16(bj + p)));
            put(c, (size_t)i * ldc + j, sum8(s) + dot_scalar(ar, bj, whole, k));
        }
    }
}


/// The sum of row j of B over the first `whole` columns: a + 128 (or a + 8) adds 128
/// (or 8) times it to every product with that row.
static int32_t row_sum(const int8_t *bj, int whole) {
    int32_t s = 0;
    for (int p = 0; p < whole; p++) s += bj[p];
    return s;
}

/// Two AVX2 kernels for operands whose range lets vpmaddubsw (u8 x s8, 32 products per
/// instruction, summed in pairs to int16) run without saturating; one body, specialized
/// by `kind` (a constant wherever it is inlined):
///   PAIRS_INT4: a, b in [-8, 7]. A is made unsigned as a + 8 in [0, 15]; pair sums are
///     at most |2 * 15 * 8| = 240; the excess 8 * sum(b) is taken off at the end.
///   PAIRS_TERNARY: a in [-127, 127], b in {-1, 0, +1} (BitLinear's forward). vpsignb
///     moves b's sign onto a (zero where b is), vpmaddubsw multiplies by |b| in {0, 1};
///     pair sums are at most 254; no correction.
/// The int16 sums are added up for at most 128 steps (|sum| <= 32512 < 2^15) before
/// vpmaddwd widens them to int32: two or three instructions per 32 products, against
/// the int8 path's four per 16. Blocks of 4 rows x 2 columns keep the eight int16 sums,
/// the two B vectors and one A vector in registers; edges go one output at a time.
enum { PAIRS_CHUNK = 128 * 32 };

__attribute__((target("avx2"), always_inline)) static inline __m256i pair_sums(int kind, __m256i a, __m256i b) {
    if (kind == PAIRS_INT4) return _mm256_maddubs_epi16(_mm256_add_epi8(a, _mm256_set1_epi8(8)), b);
    return _mm256_maddubs_epi16(_mm256_abs_epi8(b), _mm256_sign_epi8(a, b));
}

__attribute__((target("avx2"))) static inline __m256i widen_pairs(__m256i h) {
    return _mm256_madd_epi16(h, _mm256_set1_epi16(1));
}

/// v = the horizontal sums of s[0..3], four at once (two hadd levels, then the two lanes).
__attribute__((target("avx2"))) static inline void store_four_sums(int32_t *v, const __m256i *s) {
    const __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
    _mm_storeu_si128((__m128i *)v, _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1)));
}

/// What the kind adds to every product with row b over the first `whole` columns.
static inline int32_t pair_excess(int kind, const int8_t *b, int whole) {
    return kind == PAIRS_INT4 ? 8 * row_sum(b, whole) : 0;
}

__attribute__((target("avx2"), always_inline)) static inline int32_t dot_pairs_avx2(int kind, const int8_t *a, const int8_t *b,
                                                                                int whole, int k) {
    __m256i s = _mm256_setzero_si256();
    for (int p0 = 0; p0 < whole; p0 += PAIRS_CHUNK) {
        const int p1 = p0 + PAIRS_CHUNK < whole ? p0 + PAIRS_CHUNK : whole;
        __m256i h = _mm256_setzero_si256();
        for (int p = p0; p < p1; p += 32) {
            h = _mm256_add_epi16(h, pair_sums(kind, _mm256_loadu_si256((const __m256i *)(a + p)),
                                              _mm256_loadu_si256((const __m256i *)(b + p))));
        }
        s = _mm256_add_epi32(s, widen_pairs(h));
    }
    return sum8(s) - pair_excess(kind, b, whole) + dot_scalar(a, b, whole, k);
}

__attribute__((target("avx2"), always_inline)) static inline void gemm_pairs_avx2(
    int kind, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, Out c, size_t ldc, int row_begin, int row_end,
    int n, int k) {
    const int whole = k & ~31;
    // Each B row's excess once per call (not once per block of A rows).
    int32_t *excess = malloc((size_t)n * sizeof(int32_t));
    if (!excess) {
        gemm_scalar(a, lda, b, ldb, c, ldc, row_begin, row_end, n, k);
        return;
    }
    for (int j = 0; j < n; j++) excess[j] = pair_excess(kind, b + (size_t)j * ldb, whole);
    int i = row_begin;
    for (; i + 4 <= row_end; i += 4) {
        const int8_t *rows[4] = {a + (size_t)i * lda, a + (size_t)(i + 1) * lda, a + (size_t)(i + 2) * lda,
                                 a + (size_t)(i + 3) * lda};
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            const int8_t *b0 = b + (size_t)j * ldb, *b1 = b0 + ldb;
            __m256i s[8];
            for (int t = 0; t < 8; t++) s[t] = _mm256_setzero_si256();
            for (int p0 = 0; p0 < whole; p0 += PAIRS_CHUNK) {
                const int p1 = p0 + PAIRS_CHUNK < whole ? p0 + PAIRS_CHUNK : whole;
                __m256i h00 = _mm256_setzero_si256(), h01 = h00, h10 = h00, h11 = h00, h20 = h00, h21 = h00, h30 = h00, h31 = h00;
                for (int p = p0; p < p1; p += 32) {
                    const __m256i x0 = _mm256_loadu_si256((const __m256i *)(b0 + p)), x1 = _mm256_loadu_si256((const __m256i *)(b1 + p));
                    __m256i y = _mm256_loadu_si256((const __m256i *)(rows[0] + p));
                    h00 = _mm256_add_epi16(h00, pair_sums(kind, y, x0));
                    h01 = _mm256_add_epi16(h01, pair_sums(kind, y, x1));
                    y = _mm256_loadu_si256((const __m256i *)(rows[1] + p));
                    h10 = _mm256_add_epi16(h10, pair_sums(kind, y, x0));
                    h11 = _mm256_add_epi16(h11, pair_sums(kind, y, x1));
                    y = _mm256_loadu_si256((const __m256i *)(rows[2] + p));
                    h20 = _mm256_add_epi16(h20, pair_sums(kind, y, x0));
                    h21 = _mm256_add_epi16(h21, pair_sums(kind, y, x1));
                    y = _mm256_loadu_si256((const __m256i *)(rows[3] + p));
                    h30 = _mm256_add_epi16(h30, pair_sums(kind, y, x0));
                    h31 = _mm256_add_epi16(h31, pair_sums(kind, y, x1));
                }
                const __m256i h[8] = {h00, h01, h10, h11, h20, h21, h30, h31};
                for (int t = 0; t < 8; t++) s[t] = _mm256_add_epi32(s[t], widen_pairs(h[t]));
            }
            for (int r = 0; r < 4; r += 2) {
                int32_t v[4];
                store_four_sums(v, s + 2 * r);  // (r c0, r c1, r+1 c0, r+1 c1)
                for (int q = 0; q < 4; q++) {
                    const int row = r + q / 2, col = q % 2;
                    put(c, (size_t)(i + row) * ldc + j + col,
                        v[q] - excess[j + col] + dot_scalar(rows[row], col ? b1 : b0, whole, k));
                }
            }
        }
        for (; j < n; j++) {
            for (int r = 0; r < 4; r++) put(c, (size_t)(i + r) * ldc + j, dot_pairs_avx2(kind, rows[r], b + (size_t)j * ldb, whole, k));
        }
    }
    for (; i < row_end; i++) {
        for (int j = 0; j < n; j++) put(c, (size_t)i * ldc + j, dot_pairs_avx2(kind, a + (size_t)i * lda, b + (size_t)j * ldb, whole, k));
    }
    free(excess);
}

__attribute__((target("avx2"))) static void gemm_s4_avx2(const int8_t *a, size_t lda, const int8_t *b, size_t ldb, Out c,
                                                        size_t ldc, int row_begin, int row_end, int n, int k) {
    gemm_pairs_avx2(PAIRS_INT4, a, lda, b, ldb, c, ldc, row_begin, row_end, n, k);
}

__attribute__((target("avx2"))) static void gemm_s8t_avx2(const int8_t *a, size_t lda, const int8_t *b, size_t ldb, Out c,
                                                         size_t ldc, int row_begin, int row_end, int n, int k) {
    gemm_pairs_avx2(PAIRS_TERNARY, a, lda, b, ldb, c, ldc, row_begin, row_end, n, k);
}

__attribute__((target("avx2,avxvnni"))) static void gemm_avxvnni(const int8_t *a, size_t lda, const int8_t *b, size_t ldb,
                                                                Out c, size_t ldc, int row_begin, int row_end, int n, int k) {
    const int whole = k & ~31;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int i = row_begin; i < row_end; i += 4) {
        const int rows = row_end - i < 4 ? row_end - i : 4;
        for (int j = 0; j < n; j += 2) {
            const int cols = n - j < 2 ? n - j : 2;
            __m256i s[4][2];
            for (int r = 0; r < 4; r++) s[r][0] = s[r][1] = _mm256_setzero_si256();
            for (int p = 0; p < whole; p += 32) {
                __m256i x[2];
                for (int q = 0; q < cols; q++) x[q] = _mm256_loadu_si256((const __m256i *)(b + (size_t)(j + q) * ldb + p));
                for (int r = 0; r < rows; r++) {
                    const __m256i y = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + (size_t)(i + r) * lda + p)), flip);
                    for (int q = 0; q < cols; q++) s[r][q] = _mm256_dpbusd_avx_epi32(s[r][q], y, x[q]);
                }
            }
            for (int q = 0; q < cols; q++) {
                const int8_t *bj = b + (size_t)(j + q) * ldb;
                const int32_t e = 128 * row_sum(bj, whole);
                for (int r = 0; r < rows; r++) {
                    const int8_t *ar = a + (size_t)(i + r) * lda;
                    put(c, (size_t)(i + r) * ldc + j + q, sum8(s[r][q]) - e + dot_scalar(ar, bj, whole, k));
                }
            }
        }
    }
}

/// AVX-512 VNNI, packed: unlike the dot-product kernels above, each vpdpbusd adds four
/// products into each of 16 *different* outputs, so no output is ever reduced across
/// lanes. B is repacked per call into panels of 16 columns, each panel k/4 groups of 16
/// dwords (column c's four bytes p..p+3 in dword c); A's rows are copied once into u8
/// (a + 128) rows padded to a multiple of 4 with zeros, so a 4-byte broadcast never reads
/// past a row. A block of 6 rows x 32 columns keeps 12 accumulators, 2 panel vectors and
/// a broadcast in registers; each B panel pair stays in cache while every row block
/// passes over it. The excess 128 * sum(b) per column is taken off as a vector.
enum { VNNI_ROWS = 6, VNNI_PANEL = 16 };

/// Grow-only scratch of this thread (the product runs on the same few threads, call
/// after call), freed when the thread ends: [0] the packed B, [1] the packed A.
typedef struct { uint8_t *buffer[2]; size_t capacity[2]; } VnniScratch;
static pthread_key_t vnni_key;
static pthread_once_t vnni_once = PTHREAD_ONCE_INIT;
static void vnni_free(void *p) {
    VnniScratch *s = p;
    free(s->buffer[0]);
    free(s->buffer[1]);
    free(s);
}
static int vnni_key_made;
static void vnni_make_key(void) { vnni_key_made = pthread_key_create(&vnni_key, vnni_free) == 0; }

/// NULL when memory (or a thread key) cannot be had: the caller falls back to AVX2.
static uint8_t *vnni_scratch(int which, size_t bytes) {
    pthread_once(&vnni_once, vnni_make_key);
    if (!vnni_key_made) return NULL;
    VnniScratch *s = pthread_getspecific(vnni_key);
    if (!s) {
        s = calloc(1, sizeof(VnniScratch));
        if (!s || pthread_setspecific(vnni_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->capacity[which] < bytes) {
        free(s->buffer[which]);
        s->buffer[which] = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        s->capacity[which] = s->buffer[which] ? bytes : 0;
    }
    return s->buffer[which];
}

/// B [n, k] into panels (see above), zero in the padding; corr[j] = 128 * sum(b row j).
/// Each group of 4 k of a panel is one 16-dword gather (masked on the last panel's
/// missing columns); only a last group of fewer than 4 k goes byte by byte, so that no
/// load reads past a row. The column sums come from the packed vectors themselves: a
/// vpdpbusd with u8 ones adds each column's four bytes into its own lane.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void vnni_pack_b(const int8_t *b, size_t ldb, int n, int k,
                                                                            int k4, int8_t *packed, int32_t *corr) {
    const int panels = (n + VNNI_PANEL - 1) / VNNI_PANEL, whole = k & ~3;
    const __m512i ones = _mm512_set1_epi8(1);
    const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)ldb));
    for (int t = 0; t < panels; t++) {
        const int j0 = t * VNNI_PANEL, cols = n - j0 < VNNI_PANEL ? n - j0 : VNNI_PANEL;
        const __mmask16 present = (__mmask16)((1u << cols) - 1);
        int8_t *panel = packed + (size_t)t * VNNI_PANEL * k4;
        const int8_t *first = b + (size_t)j0 * ldb;
        __m512i sums = _mm512_setzero_si512();
        for (int p = 0; p < whole; p += 4) {
            const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), present, rows, first + p, 1);
            _mm512_store_si512((void *)(panel + (size_t)p * VNNI_PANEL), v);
            sums = _mm512_dpbusd_epi32(sums, ones, v);
        }
        if (whole < k4) {  // the last 1-3 k, zero-padded to a group
            int8_t *group = panel + (size_t)whole * VNNI_PANEL;
            for (int c = 0; c < VNNI_PANEL; c++) {
                for (int q = 0; q < 4; q++) {
                    group[c * 4 + q] = (c < cols && whole + q < k) ? first[(size_t)c * ldb + whole + q] : 0;
                }
            }
            sums = _mm512_dpbusd_epi32(sums, ones, _mm512_load_si512((const void *)group));
        }
        _mm512_storeu_si512((void *)(corr + j0), _mm512_slli_epi32(sums, 7));
    }
}

/// Rows [row_begin, row_end) of A as u8 (a + 128), each k4 long with zeros after k (the
/// zeros meet B's zero padding).
static void vnni_pack_a(const int8_t *a, size_t lda, int row_begin, int row_end, int k, int k4, uint8_t *packed) {
    for (int i = row_begin; i < row_end; i++) {
        const int8_t *ar = a + (size_t)i * lda;
        uint8_t *out = packed + (size_t)(i - row_begin) * k4;
        for (int p = 0; p < k; p++) out[p] = (uint8_t)(ar[p] ^ 0x80);
        for (int p = k; p < k4; p++) out[p] = 0;
    }
}

/// One block: `rows` (<= 6) packed A rows against `panels` (1 or 2) packed B panels,
/// written to C with `cols` of the last panel's 16 columns. Inlined with constant rows
/// and panels, so the accumulators stay in registers.
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void vnni_block(
    int rows, int panels, const uint8_t *a, int k4, const int8_t *b0, const int32_t *corr, Out c, size_t c_offset,
    size_t ldc, int last_cols) {
    __m512i s[VNNI_ROWS][2];
    for (int r = 0; r < rows; r++) s[r][0] = s[r][1] = _mm512_setzero_si512();
    const int8_t *b1 = b0 + (size_t)VNNI_PANEL * k4;
    for (int p = 0; p < k4; p += 4) {
        const __m512i x0 = _mm512_load_si512((const void *)(b0 + (size_t)p * VNNI_PANEL));
        const __m512i x1 = panels > 1 ? _mm512_load_si512((const void *)(b1 + (size_t)p * VNNI_PANEL)) : x0;
        for (int r = 0; r < rows; r++) {
            int32_t word;
            __builtin_memcpy(&word, a + (size_t)r * k4 + p, 4);
            const __m512i y = _mm512_set1_epi32(word);
            s[r][0] = _mm512_dpbusd_epi32(s[r][0], y, x0);
            if (panels > 1) s[r][1] = _mm512_dpbusd_epi32(s[r][1], y, x1);
        }
    }
    for (int q = 0; q < panels; q++) {
        const __m512i e = _mm512_loadu_si512((const void *)(corr + q * VNNI_PANEL));
        const __mmask16 m = q == panels - 1 ? (__mmask16)((1u << last_cols) - 1) : (__mmask16)0xffff;
        for (int r = 0; r < rows; r++) {
            const __m512i v = _mm512_sub_epi32(s[r][q], e);
            const size_t at = c_offset + (size_t)r * ldc + (size_t)q * VNNI_PANEL;
            if (c.f32) _mm512_mask_storeu_ps(c.f32 + at, m, _mm512_cvtepi32_ps(v));
            else _mm512_mask_storeu_epi32(c.i32 + at, m, v);
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void vnni_blocks(int rows, int panels, const uint8_t *a,
                                                                            int k4, const int8_t *b0, const int32_t *corr,
                                                                            Out c, size_t c_offset, size_t ldc, int last_cols) {
#define VNNI_CASE(R)                                                                                      \
    case R:                                                                                               \
        if (panels > 1) vnni_block(R, 2, a, k4, b0, corr, c, c_offset, ldc, last_cols);                   \
        else vnni_block(R, 1, a, k4, b0, corr, c, c_offset, ldc, last_cols);                              \
        return;
    switch (rows) {
        VNNI_CASE(1) VNNI_CASE(2) VNNI_CASE(3) VNNI_CASE(4) VNNI_CASE(5) VNNI_CASE(6)
    default: return;
    }
#undef VNNI_CASE
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void gemm_avx512vnni(
    const int8_t *a, size_t lda, const int8_t *b, size_t ldb, Out c, size_t ldc, int row_begin, int row_end, int n, int k) {
    const int k4 = (k + 3) & ~3, panels = (n + VNNI_PANEL - 1) / VNNI_PANEL, rows = row_end - row_begin;
    const size_t b_bytes = (size_t)panels * VNNI_PANEL * k4;
    uint8_t *bspace = vnni_scratch(0, b_bytes + (size_t)panels * VNNI_PANEL * sizeof(int32_t));
    uint8_t *aspace = vnni_scratch(1, (size_t)rows * k4);
    // Out of memory, or rows of B too far apart for the gather's 32-bit offsets: the same
    // sums, more slowly.
    if (!bspace || !aspace || ldb > (size_t)INT32_MAX / VNNI_PANEL) {
        gemm_avx2(a, lda, b, ldb, c, ldc, row_begin, row_end, n, k);
        return;
    }
    int8_t *packed_b = (int8_t *)bspace;
    int32_t *corr = (int32_t *)(bspace + b_bytes);
    vnni_pack_b(b, ldb, n, k, k4, packed_b, corr);
    vnni_pack_a(a, lda, row_begin, row_end, k, k4, aspace);
    for (int t = 0; t < panels; t += 2) {
        const int pair = panels - t < 2 ? 1 : 2;
        const int last_cols = n - (t + pair - 1) * VNNI_PANEL < VNNI_PANEL ? n - (t + pair - 1) * VNNI_PANEL : VNNI_PANEL;
        const int8_t *b0 = packed_b + (size_t)t * VNNI_PANEL * k4;
        for (int i = 0; i < rows; i += VNNI_ROWS) {
            const int block = rows - i < VNNI_ROWS ? rows - i : VNNI_ROWS;
            vnni_blocks(block, pair, aspace + (size_t)i * k4, k4, b0, corr + t * VNNI_PANEL, c,
                        (size_t)(row_begin + i) * ldc + (size_t)t * VNNI_PANEL, ldc, last_cols);
        }
    }
}

/// The int8 limit of one core: `iterations` x 12 independent `vpdpbusd` (zmm) on registers
/// only, 128 operations each (64 multiply-adds). Returns operations per second.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static double vnni_peak(long iterations) {
    __m512i x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(2);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0;
    __m512i s6 = s0, s7 = s0, s8 = s0, s9 = s0, s10 = s0, s11 = s0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long it = 0; it < iterations; it++) {
        s0 = _mm512_dpbusd_epi32(s0, x, y); s1 = _mm512_dpbusd_epi32(s1, x, y);
        s2 = _mm512_dpbusd_epi32(s2, x, y); s3 = _mm512_dpbusd_epi32(s3, x, y);
        s4 = _mm512_dpbusd_epi32(s4, x, y); s5 = _mm512_dpbusd_epi32(s5, x, y);
        s6 = _mm512_dpbusd_epi32(s6, x, y); s7 = _mm512_dpbusd_epi32(s7, x, y);
        s8 = _mm512_dpbusd_epi32(s8, x, y); s9 = _mm512_dpbusd_epi32(s9, x, y);
        s10 = _mm512_dpbusd_epi32(s10, x, y); s11 = _mm512_dpbusd_epi32(s11, x, y);
        __asm__ volatile("" : "+v"(x), "+v"(y));  // the inputs stay opaque: no folding
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    // Keep the sums alive, so the loop is not removed.
    volatile int32_t sink = _mm512_reduce_add_epi32(_mm512_add_epi32(
        _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3)),
        _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(s4, s5), _mm512_add_epi32(s6, s7)),
                         _mm512_add_epi32(_mm512_add_epi32(s8, s9), _mm512_add_epi32(s10, s11)))));
    (void)sink;
    const double seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return seconds > 0 ? (double)iterations * 12 * 128 / seconds : 0;
}

#endif

static void gemm(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, Out c, size_t ldc,
                 int row_begin, int row_end, int n, int k) {
    if (row_begin >= row_end || n <= 0) return;
#ifdef BITNET_X86
    if (bitnet_s8_path_supported(path)) {
        switch (path) {
        case BITNET_S8_AVX2: gemm_avx2(a, lda, b, ldb, c, ldc, row_begin, row_end, n, k); return;
        case BITNET_S8_AVXVNNI: gemm_avxvnni(a, lda, b, ldb, c, ldc, row_begin, row_end, n, k); return;
        case BITNET_S8_AVX512VNNI: gemm_avx512vnni(a, lda, b, ldb, c, ldc, row_begin, row_end, n, k); return;
        default: break;
        }
    }
#endif
    gemm_scalar(a, lda, b, ldb, c, ldc, row_begin, row_end, n, k);
}

void bitnet_gemm_s8(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, int32_t *c, size_t ldc,
                    int row_begin, int row_end, int n, int k) {
    Out out = {c, 0};
    gemm(path, a, lda, b, ldb, out, ldc, row_begin, row_end, n, k);
}

double bitnet_vnni_peak_ops(long iterations) {
#ifdef BITNET_X86
    if (bitnet_s8_path_supported(BITNET_S8_AVX512VNNI)) return vnni_peak(iterations);
#endif
    (void)iterations;
    return 0;
}

void bitnet_gemm_s8_f32(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, float *c, size_t ldc,
                        int row_begin, int row_end, int n, int k) {
    Out out = {0, c};
    gemm(path, a, lda, b, ldb, out, ldc, row_begin, row_end, n, k);
}

/// INT4 operands or ternary weights (`kind`): the AVX2 path has a kernel of its own for
/// each; the VNNI paths run the int8 kernels (the packed AVX-512 one reaches 2.5-3x
/// sgemm on Zen 4: docs/BENCHMARKS.md), and the scalar one is the scalar one.
static void gemm_narrow(int kind, int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, Out c, size_t ldc,
                        int row_begin, int row_end, int n, int k) {
#ifdef BITNET_X86
    if (path == BITNET_S8_AVX2 && bitnet_s8_path_supported(path) && row_begin < row_end && n > 0) {
        if (kind == PAIRS_INT4) gemm_s4_avx2(a, lda, b, ldb, c, ldc, row_begin, row_end, n, k);
        else gemm_s8t_avx2(a, lda, b, ldb, c, ldc, row_begin, row_end, n, k);
        return;
    }
#endif
    gemm(path, a, lda, b, ldb, c, ldc, row_begin, row_end, n, k);
}

void bitnet_gemm_s8t(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, int32_t *c, size_t ldc,
                     int row_begin, int row_end, int n, int k) {
    gemm_narrow(PAIRS_TERNARY, path, a, lda, b, ldb, (Out){c, 0}, ldc, row_begin, row_end, n, k);
}

void bitnet_gemm_s8t_f32(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, float *c, size_t ldc,
                         int row_begin, int row_end, int n, int k) {
    gemm_narrow(PAIRS_TERNARY, path, a, lda, b, ldb, (Out){0, c}, ldc, row_begin, row_end, n, k);
}

void bitnet_gemm_s4(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, int32_t *c, size_t ldc,
                    int row_begin, int row_end, int n, int k) {
    gemm_narrow(PAIRS_INT4, path, a, lda, b, ldb, (Out){c, 0}, ldc, row_begin, row_end, n, k);
}

void bitnet_gemm_s4_f32(int path, const int8_t *a, size_t lda, const int8_t *b, size_t ldb, float *c, size_t ldc,
                        int row_begin, int row_end, int n, int k) {
    gemm_narrow(PAIRS_INT4, path, a, lda, b, ldb, (Out){0, c}, ldc, row_begin, row_end, n, k);
}

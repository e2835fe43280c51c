// See bitkernels.h. The product of a packed row with int8 activations is computed
// from per-token tables of partial sums (the T-MAC / bitnet.cpp TL idea): a 4-bit
// slice of a row selects one of 16 precomputed sums of 4 activations. Tables hold
// bytes so that vpshufb can look up 32 rows at once; each activation is split as
// q = 16 hi + lo so that sums of 4 fit in a byte (lo sums <= 60, hi sums in [-32, 28]).
#include "bitkernels.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BITNET_X86 1
#endif

static int force_scalar = 0;

int bitnet_kernels_use_avx2(void) {
#ifdef BITNET_X86
    static int supported = -1;
    if (supported < 0) {
        __builtin_cpu_init();
        supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }
    return supported && !force_scalar;
#else
    return 0;
#endif
}

int bitnet_kernels_force_scalar(int force) {
    int previous = force_scalar;
    force_scalar = force;
    return previous;
}

int bitnet_has_avx512_bf16(void) {
#ifdef BITNET_X86
    static int supported = -1;
    if (supported < 0) {
        __builtin_cpu_init();
        supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512bf16");
    }
    return supported;
#else
    return 0;
#endif
}

#ifdef BITNET_X86
__attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16")))
void bitnet_bf16_encode_avx512(const float *x, uint16_t *out, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
        _mm256_storeu_si256((__m256i *)(out + i), (__m256i)h);
    }
    if (i < n) {  // the tail under a mask: nothing read or written past n
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1);
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x + i));
        _mm256_mask_storeu_epi16(out + i, mask, (__m256i)h);
    }
}
#else
void bitnet_bf16_encode_avx512(const float *x, uint16_t *out, size_t n) { (void)x; (void)out; (void)n; }
#endif

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exponent = (h >> 10) & 31, mantissa = h & 1023, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int e = -1;
            do { e++; mantissa <<= 1; } while (!(mantissa & 1024));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (mantissa & 1023) << 13;
        }
    } else if (exponent == 31) {
        bits = sign | 0x7F800000u | mantissa << 13;
    } else {
        bits = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// Round to nearest even, with overflow to infinity and subnormals, as vcvtps2ph does.
static uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, magnitude = x & 0x7FFFFFFF;
    if (magnitude >= 0x7F800000) return (uint16_t)(sign | 0x7C00 | (magnitude > 0x7F800000 ? 0x200 : 0));  // inf, NaN
    if (magnitude >= 0x477FF000) return (uint16_t)(sign | 0x7C00);                                       // rounds to inf
    if (magnitude < 0x38800000) {                                                                         // subnormal or zero
        if (magnitude < 0x33000000) return (uint16_t)sign;
        uint32_t e = magnitude >> 23, m = (magnitude & 0x7FFFFF) | 0x800000;
        int shift = 126 - (int)e;  // value = m 2^(e - 150) = (m >> shift) 2^-24, shift in 14..24
        uint32_t half = m >> shift, rest = m & ((1u << shift) - 1), midpoint = 1u << (shift - 1);
        if (rest > midpoint || (rest == midpoint && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t rounded = magnitude - 0x38000000;  // rebias the exponent
    uint32_t half = rounded >> 13, rest = rounded & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

// ---- The look-up-table product ----

size_t bitnet_table_bytes(int cols) { return (size_t)((cols + 15) / 16) * 4 * 32; }

// One block of 32 rows for one token, scalar: the reference for the vector path.
static void block_sums_scalar(const uint8_t *block, int tiles, const uint8_t *tables, int32_t *out) {
    for (int r = 0; r < 32; r++) {
        int32_t l = 0, h = 0;
        for (int t = 0; t < tiles; t++) {
            const uint8_t *tile = block + 64 * t;
            const uint8_t *tab = tables + 128 * t;
            uint8_t a = tile[r], b = tile[32 + r];
            int idx[4] = {a & 15, a >> 4, b & 15, b >> 4};
            for (int k = 0; k < 4; k++) {
                l += tab[32 * k + idx[k]];
                h += (int8_t)tab[32 * k + 16 + idx[k]];
            }
        }
        out[r] = 16 * h + l;
    }
}

#ifdef BITNET_X86
// Adds the 16-bit partial sums into 32-bit ones: acc[0] rows 0-7, acc[1] rows 8-15,
// acc[2] rows 16-23, acc[3] rows 24-31 (unpacklo holds bytes 0-7 and 16-23 of a row set).
__attribute__((target("avx2"))) static inline void flush16(__m256i l_lo, __m256i l_hi, __m256i h_lo, __m256i h_hi,
                                                           __m256i acc[4]) {
    __m256i lo = _mm256_add_epi16(_mm256_slli_epi16(h_lo, 4), l_lo);  // |16 h + l| < 2^15 per flush
    __m256i hi = _mm256_add_epi16(_mm256_slli_epi16(h_hi, 4), l_hi);
    acc[0] = _mm256_add_epi32(acc[0], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(lo)));
    acc[1] = _mm256_add_epi32(acc[1], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(hi)));
    acc[2] = _mm256_add_epi32(acc[2], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(lo, 1)));
    acc[3] = _mm256_add_epi32(acc[3], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(hi, 1)));
}

// Tiles between flushes: per tile, a row's l grows by at most 4 * 60 and 16 h by at most
// 16 * 4 * 32, so 16 h + l stays inside int16 for 15 tiles.
#define TILES_PER_FLUSH 15
// Weights stream from memory once per token; asking for them 2 KB ahead made one core
// read 35% faster in `bitnet-run --bench-kernel` (the hardware prefetcher alone lags).
#define PREFETCH_AHEAD 2048

__attribute__((target("avx2"))) static void block_sums_avx2(const uint8_t *block, int tiles, const uint8_t *tables,
                                                            int32_t *out) {
    const __m256i nibble = _mm256_set1_epi8(15), zero = _mm256_setzero_si256();
    __m256i acc[4] = {zero, zero, zero, zero};
    for (int t0 = 0; t0 < tiles; t0 += TILES_PER_FLUSH) {
        int t1 = t0 + TILES_PER_FLUSH < tiles ? t0 + TILES_PER_FLUSH : tiles;
        __m256i l_lo = zero, l_hi = zero, h_lo = zero, h_hi = zero;
        for (int t = t0; t < t1; t++) {
            const uint8_t *tab = tables + 128 * t;
            _mm_prefetch((const char *)(block + 64 * t + PREFETCH_AHEAD), _MM_HINT_T0);
            __m256i a = _mm256_loadu_si256((const __m256i *)(block + 64 * t));
            __m256i b = _mm256_loadu_si256((const __m256i *)(block + 64 * t + 32));
            __m256i i0 = _mm256_and_si256(a, nibble), i1 = _mm256_and_si256(_mm256_srli_epi16(a, 4), nibble);
            __m256i i2 = _mm256_and_si256(b, nibble), i3 = _mm256_and_si256(_mm256_srli_epi16(b, 4), nibble);
#define TABLE(k, half) _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(tab + 32 * (k) + 16 * (half))))
            // Sums of 4 look-ups: l <= 240 fits u8, h in [-128, 112] fits i8.
            __m256i l = _mm256_add_epi8(_mm256_add_epi8(_mm256_shuffle_epi8(TABLE(0, 0), i0), _mm256_shuffle_epi8(TABLE(1, 0), i1)),
                                        _mm256_add_epi8(_mm256_shuffle_epi8(TABLE(2, 0), i2), _mm256_shuffle_epi8(TABLE(3, 0), i3)));
            __m256i h = _mm256_add_epi8(_mm256_add_epi8(_mm256_shuffle_epi8(TABLE(0, 1), i0), _mm256_shuffle_epi8(TABLE(1, 1), i1)),
                                        _mm256_add_epi8(_mm256_shuffle_epi8(TABLE(2, 1), i2), _mm256_shuffle_epi8(TABLE(3, 1), i3)));
#undef TABLE
            l_lo = _mm256_add_epi16(l_lo, _mm256_unpacklo_epi8(l, zero));
            l_hi = _mm256_add_epi16(l_hi, _mm256_unpackhi_epi8(l, zero));
            h_lo = _mm256_add_epi16(h_lo, _mm256_srai_epi16(_mm256_unpacklo_epi8(zero, h), 8));
            h_hi = _mm256_add_epi16(h_hi, _mm256_srai_epi16(_mm256_unpackhi_epi8(zero, h), 8));
        }
        flush16(l_lo, l_hi, h_lo, h_hi, acc);
    }
    for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)(out + 8 * k), acc[k]);
}

// Tables for whole groups of 4 columns, two 16-byte tables per register: lane 0 holds
// lo_0..3 and builds L, lane 1 holds hi_0..3 and builds H, so the register is the
// group's 32 bytes as stored. T[m] = sum over bits i of m of (v_i & mask_i(m)).
__attribute__((target("avx2"))) static int build_tables_avx2(const int8_t *q, int cols, uint8_t *tables) {
    const __m256i nibble = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
    __m256i select[4], mask[4];
    for (int i = 0; i < 4; i++) {
        select[i] = _mm256_set1_epi8((char)i);
        uint8_t m[16];
        for (int k = 0; k < 16; k++) m[k] = (k >> i) & 1 ? 0xFF : 0;
        __m128i half = _mm_loadu_si128((const __m128i *)m);
        mask[i] = _mm256_set_m128i(half, half);
    }
    int g = 0;
    for (; 4 * g + 4 <= cols; g++) {
        int32_t four;
        memcpy(&four, q + 4 * g, 4);
        __m256i v = _mm256_set1_epi32(four);
        __m256i lo = _mm256_and_si256(v, nibble);
        // hi = q >> 4 (arithmetic): the high nibble, sign-extended from 4 bits.
        __m256i hi = _mm256_sub_epi8(_mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), nibble), eight), eight);
        __m256i both = _mm256_blend_epi32(lo, hi, 0xF0);
        __m256i t = _mm256_and_si256(_mm256_shuffle_epi8(both, select[0]), mask[0]);
        for (int i = 1; i < 4; i++) t = _mm256_add_epi8(t, _mm256_and_si256(_mm256_shuffle_epi8(both, select[i]), mask[i]));
        _mm256_storeu_si256((__m256i *)(tables + 32 * g), t);
    }
    return g;
}
#endif

void bitnet_build_tables(const int8_t *q, int cols, uint8_t *tables) {
    int groups = (cols + 15) / 16 * 4, g = 0;
#ifdef BITNET_X86
    if (bitnet_kernels_use_avx2()) g = build_tables_avx2(q, cols, tables);
#endif
    for (; g < groups; g++) {
        uint8_t lo[4];
        int8_t hi[4];
        for (int i = 0; i < 4; i++) {
            int c = 4 * g + i;
            int v = c < cols ? q[c] : 0;
            lo[i] = (uint8_t)(v & 15);
            hi[i] = (int8_t)(v >> 4);  // arithmetic shift: v = 16 hi + lo
        }
        uint8_t *L = tables + 32 * g;
        int8_t *H = (int8_t *)(L + 16);
        L[0] = 0;
        H[0] = 0;
        for (int m = 1; m < 16; m++) {
            int low = __builtin_ctz(m), rest = m & (m - 1);
            L[m] = (uint8_t)(L[rest] + lo[low]);
            H[m] = (int8_t)(H[rest] + hi[low]);
        }
    }
}

void bitnet_plane_sums(const uint8_t *plane, int block_begin, int block_end, int tiles, const uint8_t *tables,
                       size_t table_stride, int tokens, int32_t *sums, size_t sum_stride) {
    int avx2 = bitnet_kernels_use_avx2();
    // Tokens in groups whose tables fit in L2 (128 bytes per tile each); within a group,
    // blocks outside and tokens inside, so a block's weights stay in L1 while the
    // group's tables stream past them.
    size_t group_bytes = 256 * 1024;
    int group = (int)(group_bytes / ((size_t)tiles * 128));
    if (group < 1) group = 1;
    for (int t0 = 0; t0 < tokens; t0 += group) {
        int t1 = t0 + group < tokens ? t0 + group : tokens;
        for (int b = block_begin; b < block_end; b++) {
            const uint8_t *block = plane + (size_t)b * tiles * 64;
            for (int t = t0; t < t1; t++) {
                const uint8_t *tab = tables + (size_t)t * table_stride;
                int32_t *out = sums + (size_t)t * sum_stride + 32 * (size_t)b;
#ifdef BITNET_X86
                if (avx2) {
                    block_sums_avx2(block, tiles, tab, out);
                    continue;
                }
#endif
                block_sums_scalar(block, tiles, tab, out);
            }
        }
    }
    (void)avx2;
}

// ---- FP16 and FP32 rows: the head, attention scores, the weighted sum of values ----

// What a row of the head, the KV cache or the int8 head holds.
enum element { F32 = 0, F16 = 1, I8 = 2 };

// Element i of an array of `kind` as a float.
static inline float load1(const void *p, size_t i, int kind) {
    return kind == F16 ? half_to_float(((const uint16_t *)p)[i]) : kind == I8 ? (float)((const int8_t *)p)[i] : ((const float *)p)[i];
}

#ifdef BITNET_X86
// Eight elements from i on as floats (F16C widens FP16; int8 goes through int32, exactly).
__attribute__((target("avx2,f16c"), always_inline)) static inline __m256 load8(const void *p, size_t i, int kind) {
    if (kind == F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    if (kind == I8) return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)p + i))));
    return _mm256_loadu_ps((const float *)p + i);
}

// 32 columns per step in four sums, the tail (fewer than 32 columns) one at a time; each
// row's sum times scales[r] when there are scales (the int8 head's).
__attribute__((target("avx2,fma,f16c"))) static void matvec_avx2(const void *w, int kind, const float *scales, size_t stride,
                                                                 const float *x, float *y, int cols, int row_begin, int row_end) {
    int body = cols & ~31;
    for (int r = row_begin; r < row_end; r++) {
        size_t row = (size_t)r * stride;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int i = 0; i < body; i += 32) {
            s0 = _mm256_fmadd_ps(load8(w, row + i, kind), _mm256_loadu_ps(x + i), s0);
            s1 = _mm256_fmadd_ps(load8(w, row + i + 8, kind), _mm256_loadu_ps(x + i + 8), s1);
            s2 = _mm256_fmadd_ps(load8(w, row + i + 16, kind), _mm256_loadu_ps(x + i + 16), s2);
            s3 = _mm256_fmadd_ps(load8(w, row + i + 24, kind), _mm256_loadu_ps(x + i + 24), s3);
        }
        __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        float total = _mm_cvtss_f32(q);
        for (int i = body; i < cols; i++) total += load1(w, row + i, kind) * x[i];
        y[r] = scales ? scales[r] * total : total;
    }
}

// Columns in chunks of 64 (eight registers of sums, enough independent sums to keep
// both FMA pipes busy), then of 32, positions inside; returns the columns done, leaving
// a tail of fewer than 32 to the scalar loop.
__attribute__((target("avx2,fma,f16c"))) static int weighted_sum_avx2(const void *values, int kind, size_t stride,
                                                                      const float *weights, int n, int cols, float *out) {
    int j = 0;
    for (; j + 64 <= cols; j += 64) {
        __m256 s[8];
        for (int k = 0; k < 8; k++) s[k] = _mm256_setzero_ps();
        for (int i = 0; i < n; i++) {
            size_t at = (size_t)i * stride + j;
            __m256 w = _mm256_broadcast_ss(weights + i);
            for (int k = 0; k < 8; k++) s[k] = _mm256_fmadd_ps(w, load8(values, at + 8 * k, kind), s[k]);
        }
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(out + j + 8 * k, s[k]);
    }
    for (; j + 32 <= cols; j += 32) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int i = 0; i < n; i++) {
            size_t at = (size_t)i * stride + j;
            __m256 w = _mm256_broadcast_ss(weights + i);
            s0 = _mm256_fmadd_ps(w, load8(values, at, kind), s0);
            s1 = _mm256_fmadd_ps(w, load8(values, at + 8, kind), s1);
            s2 = _mm256_fmadd_ps(w, load8(values, at + 16, kind), s2);
            s3 = _mm256_fmadd_ps(w, load8(values, at + 24, kind), s3);
        }
        _mm256_storeu_ps(out + j, s0);
        _mm256_storeu_ps(out + j + 8, s1);
        _mm256_storeu_ps(out + j + 16, s2);
        _mm256_storeu_ps(out + j + 24, s3);
    }
    return j;
}

__attribute__((target("avx2,f16c"))) static int to_f16_avx2(const float *x, uint16_t *out, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    return i;
}
#endif

static void matvec(const void *w, int kind, const float *scales, size_t stride, const float *x, float *y, int cols, int row_begin,
                   int row_end) {
#ifdef BITNET_X86
    if (bitnet_kernels_use_avx2()) {
        matvec_avx2(w, kind, scales, stride, x, y, cols, row_begin, row_end);
        return;
    }
#endif
    for (int r = row_begin; r < row_end; r++) {
        float s = 0;
        for (int i = 0; i < cols; i++) s += load1(w, (size_t)r * stride + i, kind) * x[i];
        y[r] = scales ? scales[r] * s : s;
    }
}

void bitnet_matvec_f16(const uint16_t *w, size_t stride, const float *x, float *y, int cols, int row_begin, int row_end) {
    matvec(w, F16, NULL, stride, x, y, cols, row_begin, row_end);
}

void bitnet_matvec_f32(const float *w, size_t stride, const float *x, float *y, int cols, int row_begin, int row_end) {
    matvec(w, F32, NULL, stride, x, y, cols, row_begin, row_end);
}

void bitnet_matvec_q8(const int8_t *w, const float *scales, size_t stride, const float *x, float *y, int cols, int row_begin,
                      int row_end) {
    matvec(w, I8, scales, stride, x, y, cols, row_begin, row_end);
}

static void weighted_sum(const void *values, int kind, size_t stride, const float *weights, int n, int cols, float *out) {
    int j = 0;
#ifdef BITNET_X86
    if (bitnet_kernels_use_avx2()) j = weighted_sum_avx2(values, kind, stride, weights, n, cols, out);
#endif
    for (; j < cols; j++) {
        float s = 0;
        for (int i = 0; i < n; i++) s += weights[i] * load1(values, (size_t)i * stride + j, kind);
        out[j] = s;
    }
}

void bitnet_weighted_sum_f32(const float *values, size_t stride, const float *weights, int n, int cols, float *out) {
    weighted_sum(values, F32, stride, weights, n, cols, out);
}

void bitnet_weighted_sum_f16(const uint16_t *values, size_t stride, const float *weights, int n, int cols, float *out) {
    weighted_sum(values, F16, stride, weights, n, cols, out);
}

void bitnet_to_f16(const float *x, uint16_t *out, int n) {
    int i = 0;
#ifdef BITNET_X86
    if (bitnet_kernels_use_avx2()) i = to_f16_avx2(x, out, n);
#endif
    for (; i < n; i++) out[i] = float_to_half(x[i]);
}

// ---- The machine ----

uint64_t bitnet_read_sum(const uint64_t *p, size_t words) {
    uint64_t a = 0, b = 0, c = 0, d = 0;  // independent sums: -O3 turns each pair into vector adds
    size_t i = 0;
    for (; i + 4 <= words; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
    }
    for (; i < words; i++) a += p[i];
    return a + b + c + d;
}

void bitnet_cpu_relax(void) {
#ifdef BITNET_X86
    _mm_pause();
#endif
}

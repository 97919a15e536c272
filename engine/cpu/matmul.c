/* matmul.c: y = x . W^T with W quantized (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) or
 * float (F32, F16, BF16) and x f32. Written by hand because no CPU BLAS reads
 * GGML blocks, and because the result must not depend on the batch.
 *
 * Numerics. Weights are dequantized in registers to exactly the floats
 * lp_dequant_row gives (the gguf-py values), activations stay f32. Every dot
 * product accumulates element k into lane k % 16 with a fused multiply-add, in
 * increasing k, then sums the 16 lanes in a fixed tree (lanes_sum). The AVX2
 * and scalar paths run this same sequence of IEEE operations, so they agree
 * bit for bit; the tiles (4 weight rows x 1 input row, 1 x 4, 1 x 1) change
 * which dots run side by side, never the operations of one dot. Threads split
 * the weight rows, never a dot product: row i of y is the same for any batch
 * size, batch contents and thread count.
 *
 * Speed. Decode (n = 1) streams the weights once; 4 weight rows are worked on
 * together so that 8 accumulators hide the FMA latency. For n >= 4, a weight
 * chunk is dequantized once and used for 4 input rows. The AVX2 path is
 * picked at run time; there is no AVX-512 path (the target EPYC lacks it). */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

#include "../lp_common.h"
#include "../tensor.h"

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#define LANES 16 /* partial sums per dot product */
#define CHUNK 32 /* elements per inner step: one Q4_0/Q4_1/Q8_0 block */

/* Sums 16 lanes in the fixed order both paths use. */
static float lanes_sum(const float *l) {
    float s8[8], s4[4];
    for (int j = 0; j < 8; j++)
        s8[j] = l[j] + l[j + 8];
    for (int j = 0; j < 4; j++)
        s4[j] = s8[j] + s8[j + 4];
    float s2a = s4[0] + s4[2];
    float s2b = s4[1] + s4[3];
    return s2a + s2b;
}

static size_t row_bytes(const struct lp_weight *w) {
    return lp_type_nbytes(w->type, (uint64_t)w->cols);
}

/* ---- scalar path ------------------------------------------------------------ */

#define SCALAR_ROWS 8 /* input rows per pass over a weight row */

static void matmul_range_scalar(float *y, const float *x, const struct lp_weight *w, int n,
                                int64_t r0, int64_t r1) {
    const struct lp_type_traits *tt = lp_type_get(w->type);
    const int64_t cols = w->cols;
    const size_t rb = row_bytes(w);
    /* a piece is one block, or 256 elements of a float type */
    const int64_t piece = tt->block_elems > 1 ? tt->block_elems : 256;
    float wbuf[256];
    float lanes[SCALAR_ROWS][LANES];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wrow = (const uint8_t *)w->data + (size_t)r * rb;
        for (int i0 = 0; i0 < n; i0 += SCALAR_ROWS) {
            int ni = n - i0 < SCALAR_ROWS ? n - i0 : SCALAR_ROWS;
            memset(lanes, 0, sizeof lanes);
            for (int64_t k0 = 0; k0 < cols; k0 += piece) {
                int64_t len = cols - k0 < piece ? cols - k0 : piece;
                size_t off = lp_type_nbytes(w->type, (uint64_t)k0);
                lp_dequant_row(w->type, wrow + off, wbuf, len);
                for (int i = 0; i < ni; i++) {
                    const float *xr = x + (size_t)(i0 + i) * (size_t)cols + k0;
                    float *l = lanes[i];
                    for (int64_t k = 0; k < len; k++) {
                        int lane = (int)((k0 + k) % LANES);
                        l[lane] = fmaf(wbuf[k], xr[k], l[lane]);
                    }
                }
            }
            for (int i = 0; i < ni; i++)
                y[(size_t)(i0 + i) * (size_t)w->rows + (size_t)r] = lanes_sum(lanes[i]);
        }
    }
}

static float dot_f32_scalar(const float *a, const float *b, int64_t n) {
    float l[LANES] = {0};
    for (int64_t k = 0; k < n; k++)
        l[k % LANES] = fmaf(a[k], b[k], l[k % LANES]);
    return lanes_sum(l);
}

/* ---- AVX2 path ---------------------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
#define LP_HAVE_AVX2_PATH 1
#include <cpuid.h>
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE_AVX2 static inline __attribute__((always_inline, target("avx2,fma,f16c")))

/* 32 dequantized weights: elements 0-7, 8-15, 16-23, 24-31. Named fields,
 * not an array, so that the compiler keeps them in registers. */
struct wchunk {
    __m256 v0, v1, v2, v3;
};

/* Four vectors of 8 integers. */
struct ichunk {
    __m256i q0, q1, q2, q3;
};

INLINE_AVX2 float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

INLINE_AVX2 __m128i load128(const uint8_t *p) {
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

INLINE_AVX2 __m256i load256(const uint8_t *p) {
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

/* 32 bytes (as two halves) -> 4 x 8 int32, signed. */
INLINE_AVX2 struct ichunk widen_i8(__m128i lo, __m128i hi) {
    struct ichunk q = {_mm256_cvtepi8_epi32(lo), _mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)),
                       _mm256_cvtepi8_epi32(hi), _mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))};
    return q;
}

/* 16 bytes of nibbles at p: the low nibbles are elements 0-15, the high
 * nibbles 16-31. Widened straight from memory, then split. */
INLINE_AVX2 struct ichunk nibbles(const uint8_t *p) {
    const __m256i m4 = _mm256_set1_epi32(0x0f);
    __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p + 8)));
    struct ichunk q = {_mm256_and_si256(a, m4), _mm256_and_si256(b, m4), _mm256_srli_epi32(a, 4),
                       _mm256_srli_epi32(b, 4)};
    return q;
}

/* 8 bytes at p, sign- or zero-extended to 8 int32. */
INLINE_AVX2 __m256i i8x8(const uint8_t *p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
}
INLINE_AVX2 __m256i u8x8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
}

INLINE_AVX2 __m256 cvt(__m256i q) { return _mm256_cvtepi32_ps(q); }

/* Chunk j of block sb of a weight row (elements 32 * (sb * CPB + j) + 0..31),
 * dequantized; CPB(type) chunks per block: 8 for the K-quants (super-blocks of
 * 256), else 1 (j = 0, sb counts chunks). The
 * arithmetic mirrors quant.c: where it computes d*q + m in two roundings,
 * the FMA here gives the same float because d*q is exact (an 11-bit fp16
 * mantissa times a 4- or 6-bit integer fits in 24 bits). */
INLINE_AVX2 struct wchunk load_chunk(int type, const uint8_t *row, int64_t sb, int j) {
    const int64_t c = sb; /* for the one-chunk-per-block types */
    struct wchunk w;
    switch (type) {
    case LP_TYPE_F32: {
        const float *p = (const float *)(const void *)(row + 128 * c);
        w.v0 = _mm256_loadu_ps(p);
        w.v1 = _mm256_loadu_ps(p + 8);
        w.v2 = _mm256_loadu_ps(p + 16);
        w.v3 = _mm256_loadu_ps(p + 24);
        break;
    }
    case LP_TYPE_F16: {
        const uint8_t *p = row + 64 * c;
        w.v0 = _mm256_cvtph_ps(load128(p));
        w.v1 = _mm256_cvtph_ps(load128(p + 16));
        w.v2 = _mm256_cvtph_ps(load128(p + 32));
        w.v3 = _mm256_cvtph_ps(load128(p + 48));
        break;
    }
    case LP_TYPE_BF16: {
        const uint8_t *p = row + 64 * c;
        w.v0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p)), 16));
        w.v1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p + 16)), 16));
        w.v2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p + 32)), 16));
        w.v3 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p + 48)), 16));
        break;
    }
    case LP_TYPE_Q4_0: {
        const uint8_t *b = row + 18 * c;
        float d = f16_at(b);
        /* d * (q - 8) as d*q - 8d: both products are exact, so one rounding */
        __m256 dv = _mm256_set1_ps(d), m8d = _mm256_set1_ps(-8.0f * d);
        struct ichunk q = nibbles(b + 2);
        w.v0 = _mm256_fmadd_ps(dv, cvt(q.q0), m8d);
        w.v1 = _mm256_fmadd_ps(dv, cvt(q.q1), m8d);
        w.v2 = _mm256_fmadd_ps(dv, cvt(q.q2), m8d);
        w.v3 = _mm256_fmadd_ps(dv, cvt(q.q3), m8d);
        break;
    }
    case LP_TYPE_Q4_1: {
        const uint8_t *b = row + 20 * c;
        __m256 d = _mm256_set1_ps(f16_at(b));
        __m256 m = _mm256_set1_ps(f16_at(b + 2));
        struct ichunk q = nibbles(b + 4);
        w.v0 = _mm256_fmadd_ps(d, cvt(q.q0), m);
        w.v1 = _mm256_fmadd_ps(d, cvt(q.q1), m);
        w.v2 = _mm256_fmadd_ps(d, cvt(q.q2), m);
        w.v3 = _mm256_fmadd_ps(d, cvt(q.q3), m);
        break;
    }
    case LP_TYPE_Q8_0: {
        const uint8_t *b = row + 34 * c;
        __m256 d = _mm256_set1_ps(f16_at(b));
        struct ichunk q = {i8x8(b + 2), i8x8(b + 10), i8x8(b + 18), i8x8(b + 26)};
        w.v0 = _mm256_mul_ps(cvt(q.q0), d);
        w.v1 = _mm256_mul_ps(cvt(q.q1), d);
        w.v2 = _mm256_mul_ps(cvt(q.q2), d);
        w.v3 = _mm256_mul_ps(cvt(q.q3), d);
        break;
    }
    case LP_TYPE_Q4_K: {
        const uint8_t *b = row + 144 * sb;
        const uint8_t *s = b + 4;
        int sc, mn;
        if (j < 4) {
            sc = s[j] & 63;
            mn = s[j + 4] & 63;
        } else {
            sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
            mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
        __m256 d1 = _mm256_set1_ps(f16_at(b) * (float)sc);
        __m256 m1 = _mm256_set1_ps(f16_at(b + 2) * (float)mn);
        const uint8_t *qs = b + 16 + 32 * (j / 2);
        __m256i a0 = u8x8(qs), a1 = u8x8(qs + 8), a2 = u8x8(qs + 16), a3 = u8x8(qs + 24);
        struct ichunk q;
        if (j & 1) { /* high nibbles: the byte shifted down */
            q.q0 = _mm256_srli_epi32(a0, 4);
            q.q1 = _mm256_srli_epi32(a1, 4);
            q.q2 = _mm256_srli_epi32(a2, 4);
            q.q3 = _mm256_srli_epi32(a3, 4);
        } else {
            const __m256i m4 = _mm256_set1_epi32(0x0f);
            q.q0 = _mm256_and_si256(a0, m4);
            q.q1 = _mm256_and_si256(a1, m4);
            q.q2 = _mm256_and_si256(a2, m4);
            q.q3 = _mm256_and_si256(a3, m4);
        }
        w.v0 = _mm256_fmsub_ps(d1, cvt(q.q0), m1);
        w.v1 = _mm256_fmsub_ps(d1, cvt(q.q1), m1);
        w.v2 = _mm256_fmsub_ps(d1, cvt(q.q2), m1);
        w.v3 = _mm256_fmsub_ps(d1, cvt(q.q3), m1);
        break;
    }
    case LP_TYPE_Q6_K: {
        const uint8_t *b = row + 210 * sb;
        int h = j / 4, k = j % 4;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = f16_at(b + 208);
        __m256i ql = load256(b + 64 * h + 32 * (k & 1));
        __m256i qh = load256(b + 128 + 32 * h);
        ql = _mm256_and_si256(_mm256_srli_epi16(ql, 4 * (k >> 1)), _mm256_set1_epi8(0x0f));
        qh = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), _mm256_set1_epi8(0x03));
        __m256i q8 = _mm256_or_si256(ql, _mm256_slli_epi16(qh, 4));
        q8 = _mm256_sub_epi8(q8, _mm256_set1_epi8(32));
        struct ichunk q = widen_i8(_mm256_castsi256_si128(q8), _mm256_extracti128_si256(q8, 1));
        __m256 ds0 = _mm256_set1_ps(d * (float)sc[2 * j]);
        __m256 ds1 = _mm256_set1_ps(d * (float)sc[2 * j + 1]);
        w.v0 = _mm256_mul_ps(ds0, cvt(q.q0));
        w.v1 = _mm256_mul_ps(ds0, cvt(q.q1));
        w.v2 = _mm256_mul_ps(ds1, cvt(q.q2));
        w.v3 = _mm256_mul_ps(ds1, cvt(q.q3));
        break;
    }
    default:
        ENSURE(!"unsupported type in load_chunk");
        w.v0 = w.v1 = w.v2 = w.v3 = _mm256_setzero_ps();
    }
    return w;
}

/* Chunks per block. The loops over a block's chunks are written out
 * (FOR_CHUNKS) so that j is a constant in load_chunk and the K-quant scale
 * unpacking folds away. */
#define CPB(type) ((type) == LP_TYPE_Q4_K || (type) == LP_TYPE_Q6_K ? 8 : 1)

/* Bytes per block as load_chunk steps sb: a block for the quantized types,
 * one 32-element chunk for the float types. */
#define SB_BYTES(type)                                                                             \
    ((type) == LP_TYPE_F32    ? 128                                                                \
     : (type) == LP_TYPE_F16  ? 64                                                                 \
     : (type) == LP_TYPE_BF16 ? 64                                                                 \
     : (type) == LP_TYPE_Q4_0 ? 18                                                                 \
     : (type) == LP_TYPE_Q4_1 ? 20                                                                 \
     : (type) == LP_TYPE_Q8_0 ? 34                                                                 \
     : (type) == LP_TYPE_Q4_K ? 144                                                                \
                              : 210) /* Q6_K; a constant: no call from the AVX2 code */
#define PREFETCH_AHEAD 256
#define FOR_CHUNKS(type, STEP)                                                                     \
    do {                                                                                           \
        if (CPB(type) == 8) {                                                                      \
            STEP(0);                                                                               \
            STEP(1);                                                                               \
            STEP(2);                                                                               \
            STEP(3);                                                                               \
            STEP(4);                                                                               \
            STEP(5);                                                                               \
            STEP(6);                                                                               \
            STEP(7);                                                                               \
        } else {                                                                                   \
            STEP(0);                                                                               \
        }                                                                                          \
    } while (0)

/* acc0 takes lanes 0-7 (elements 0-7 and 16-23 of the chunk), acc1 lanes
 * 8-15 (elements 8-15 and 24-31): element k goes to lane k % 16. */
#define FMA_CHUNK(acc0, acc1, w, xp)                                                               \
    do {                                                                                           \
        (acc0) = _mm256_fmadd_ps((w).v0, _mm256_loadu_ps((xp)), (acc0));                           \
        (acc1) = _mm256_fmadd_ps((w).v1, _mm256_loadu_ps((xp) + 8), (acc1));                       \
        (acc0) = _mm256_fmadd_ps((w).v2, _mm256_loadu_ps((xp) + 16), (acc0));                      \
        (acc1) = _mm256_fmadd_ps((w).v3, _mm256_loadu_ps((xp) + 24), (acc1));                      \
    } while (0)

/* lanes_sum on the two accumulators, in registers: the same tree. */
INLINE_AVX2 float hsum16(__m256 a0, __m256 a1) {
    __m256 v = _mm256_add_ps(a0, a1);                                               /* s8 */
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); /* s4 */
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4)); /* s4[0]+s4[2], s4[1]+s4[3] */
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

/* Element k of a float-type row (the tail after the last full chunk). */
INLINE_AVX2 float float_elem(int type, const uint8_t *row, int64_t k) {
    uint16_t h;
    float f;
    switch (type) {
    case LP_TYPE_F32: memcpy(&f, row + 4 * k, 4); return f;
    case LP_TYPE_F16: memcpy(&h, row + 2 * k, 2); return _cvtsh_ss(h);
    default: {
        uint32_t b;
        memcpy(&h, row + 2 * k, 2);
        b = (uint32_t)h << 16;
        memcpy(&f, &b, 4);
        return f;
    }
    }
}

/* Finishes one dot: a float type's tail goes into its lanes one element at a
 * time (as in the scalar path), then the lanes are summed. Stays in AVX code:
 * calling SSE code with dirty upper halves costs a state transition. */
INLINE_AVX2 float finish(__m256 acc0, __m256 acc1, int type, const uint8_t *wrow, const float *x,
                         int64_t k0, int64_t cols) {
    if (k0 < cols) {
        float lanes[LANES];
        _mm256_storeu_ps(lanes, acc0);
        _mm256_storeu_ps(lanes + 8, acc1);
        for (int64_t k = k0; k < cols; k++)
            lanes[k % LANES] = fmaf(float_elem(type, wrow, k), x[k], lanes[k % LANES]);
        acc0 = _mm256_loadu_ps(lanes);
        acc1 = _mm256_loadu_ps(lanes + 8);
    }
    return hsum16(acc0, acc1);
}

/* One weight row against one input row. */
INLINE_AVX2 float tile_1x1(int type, const uint8_t *w0, const float *x, int64_t nch, int64_t cols) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
#define STEP_1X1(j)                                                                                \
    do {                                                                                           \
        struct wchunk w = load_chunk(type, w0, sb, (j));                                           \
        FMA_CHUNK(a0, a1, w, x + 32 * (sb * CPB(type) + (j)));                                     \
    } while (0)
    for (int64_t sb = 0; sb < nch / CPB(type); sb++)
        FOR_CHUNKS(type, STEP_1X1);
#undef STEP_1X1
    return finish(a0, a1, type, w0, x, 32 * nch, cols);
}

/* Four weight rows (rb bytes apart) against one input row: out[0..3]. */
INLINE_AVX2 void tile_4x1(int type, const uint8_t *w0, size_t rb, const float *x, int64_t nch,
                          int64_t cols, float *out, size_t out_stride) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
    __m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    const uint8_t *w1 = w0 + rb, *w2 = w1 + rb, *w3 = w2 + rb;
#define STEP_4X1(j)                                                                                \
    do {                                                                                           \
        const float *xc = x + 32 * (sb * CPB(type) + (j));                                         \
        struct wchunk w = load_chunk(type, w0, sb, (j));                                           \
        FMA_CHUNK(a00, a01, w, xc);                                                                \
        w = load_chunk(type, w1, sb, (j));                                                         \
        FMA_CHUNK(a10, a11, w, xc);                                                                \
        w = load_chunk(type, w2, sb, (j));                                                         \
        FMA_CHUNK(a20, a21, w, xc);                                                                \
        w = load_chunk(type, w3, sb, (j));                                                         \
        FMA_CHUNK(a30, a31, w, xc);                                                                \
    } while (0)
    /* Four rows a row apart are four streams; the hardware prefetcher keeps
     * up with them poorly once rows are long (measured: the 576->49152 and
     * 1536->576 shapes stream 1.5-2x faster with this), so ask for the lines
     * PREFETCH_AHEAD bytes ahead. A prefetch past the end never faults. */
    const size_t bb = (size_t)SB_BYTES(type);
    for (int64_t sb = 0; sb < nch / CPB(type); sb++) {
        size_t o = (size_t)sb * bb + PREFETCH_AHEAD;
        _mm_prefetch((const char *)w0 + o, _MM_HINT_T0);
        _mm_prefetch((const char *)w1 + o, _MM_HINT_T0);
        _mm_prefetch((const char *)w2 + o, _MM_HINT_T0);
        _mm_prefetch((const char *)w3 + o, _MM_HINT_T0);
        FOR_CHUNKS(type, STEP_4X1);
    }
#undef STEP_4X1
    int64_t k0 = 32 * nch;
    out[0] = finish(a00, a01, type, w0, x, k0, cols);
    out[out_stride] = finish(a10, a11, type, w1, x, k0, cols);
    out[2 * out_stride] = finish(a20, a21, type, w2, x, k0, cols);
    out[3 * out_stride] = finish(a30, a31, type, w3, x, k0, cols);
}

/* One weight row against four input rows (xs floats apart): y[0], y[ys], ... */
INLINE_AVX2 void tile_1x4(int type, const uint8_t *w0, const float *x, size_t xs, int64_t nch,
                          int64_t cols, float *y, size_t ys) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
    __m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    const float *x1 = x + xs, *x2 = x1 + xs, *x3 = x2 + xs;
#define STEP_1X4(j)                                                                                \
    do {                                                                                           \
        int64_t o = 32 * (sb * CPB(type) + (j));                                                   \
        struct wchunk w = load_chunk(type, w0, sb, (j));                                           \
        FMA_CHUNK(a00, a01, w, x + o);                                                             \
        FMA_CHUNK(a10, a11, w, x1 + o);                                                            \
        FMA_CHUNK(a20, a21, w, x2 + o);                                                            \
        FMA_CHUNK(a30, a31, w, x3 + o);                                                            \
    } while (0)
    for (int64_t sb = 0; sb < nch / CPB(type); sb++)
        FOR_CHUNKS(type, STEP_1X4);
#undef STEP_1X4
    int64_t k0 = 32 * nch;
    y[0] = finish(a00, a01, type, w0, x, k0, cols);
    y[ys] = finish(a10, a11, type, w0, x1, k0, cols);
    y[2 * ys] = finish(a20, a21, type, w0, x2, k0, cols);
    y[3 * ys] = finish(a30, a31, type, w0, x3, k0, cols);
}

INLINE_AVX2 void range_avx2(int type, float *y, const float *x, const struct lp_weight *w, int n,
                            int64_t r0, int64_t r1) {
    const int64_t cols = w->cols, rows = w->rows;
    const size_t rb = row_bytes(w);
    const int64_t nch = cols / CHUNK;
    const uint8_t *base = w->data;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *xi = x + (size_t)i * (size_t)cols;
        for (int64_t r = r0; r < r1; r++)
            tile_1x4(type, base + (size_t)r * rb, xi, (size_t)cols, nch, cols,
                     y + (size_t)i * (size_t)rows + (size_t)r, (size_t)rows);
    }
    for (; i < n; i++) {
        const float *xi = x + (size_t)i * (size_t)cols;
        float *yi = y + (size_t)i * (size_t)rows;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4)
            tile_4x1(type, base + (size_t)r * rb, rb, xi, nch, cols, yi + r, 1);
        for (; r < r1; r++)
            yi[r] = tile_1x1(type, base + (size_t)r * rb, xi, nch, cols);
    }
}

/* One out-of-line instance per type, so each inlines its own load_chunk. */
#define RANGE_FN(name, TYPE)                                                                       \
    static AVX2 void name(float *y, const float *x, const struct lp_weight *w, int n, int64_t r0,  \
                          int64_t r1) {                                                            \
        range_avx2(TYPE, y, x, w, n, r0, r1);                                                      \
    }
RANGE_FN(range_avx2_f32, LP_TYPE_F32)
RANGE_FN(range_avx2_f16, LP_TYPE_F16)
RANGE_FN(range_avx2_bf16, LP_TYPE_BF16)
RANGE_FN(range_avx2_q4_0, LP_TYPE_Q4_0)
RANGE_FN(range_avx2_q4_1, LP_TYPE_Q4_1)
RANGE_FN(range_avx2_q8_0, LP_TYPE_Q8_0)
RANGE_FN(range_avx2_q4_k, LP_TYPE_Q4_K)
RANGE_FN(range_avx2_q6_k, LP_TYPE_Q6_K)

static void matmul_range_avx2(float *y, const float *x, const struct lp_weight *w, int n,
                              int64_t r0, int64_t r1) {
    switch (w->type) {
    case LP_TYPE_F32: range_avx2_f32(y, x, w, n, r0, r1); break;
    case LP_TYPE_F16: range_avx2_f16(y, x, w, n, r0, r1); break;
    case LP_TYPE_BF16: range_avx2_bf16(y, x, w, n, r0, r1); break;
    case LP_TYPE_Q4_0: range_avx2_q4_0(y, x, w, n, r0, r1); break;
    case LP_TYPE_Q4_1: range_avx2_q4_1(y, x, w, n, r0, r1); break;
    case LP_TYPE_Q8_0: range_avx2_q8_0(y, x, w, n, r0, r1); break;
    case LP_TYPE_Q4_K: range_avx2_q4_k(y, x, w, n, r0, r1); break;
    case LP_TYPE_Q6_K: range_avx2_q6_k(y, x, w, n, r0, r1); break;
    default: ENSURE(!"matmul: unsupported weight type");
    }
}

static AVX2 float dot_f32_avx2(const float *a, const float *b, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), a1);
    }
    if (k < n) {
        float lanes[LANES];
        _mm256_storeu_ps(lanes, a0);
        _mm256_storeu_ps(lanes + 8, a1);
        for (; k < n; k++)
            lanes[k % LANES] = fmaf(a[k], b[k], lanes[k % LANES]);
        a0 = _mm256_loadu_ps(lanes);
        a1 = _mm256_loadu_ps(lanes + 8);
    }
    return hsum16(a0, a1);
}
#endif /* x86 */

/* ---- dispatch ------------------------------------------------------------------- */

int lp_cpu_isa_best(void) {
#ifdef LP_HAVE_AVX2_PATH
    static int best = -1;
    if (best < 0) {
        /* F16C from CPUID leaf 1 (ECX bit 29): clang 14's
         * __builtin_cpu_supports does not know "f16c". */
        unsigned eax, ebx, ecx = 0, edx;
        int f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
        __builtin_cpu_init();
        best = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
                   ? LP_CPU_ISA_AVX2
                   : LP_CPU_ISA_SCALAR;
    }
    return best;
#else
    return LP_CPU_ISA_SCALAR;
#endif
}

void lp_cpu_matmul_range(int isa, float *y, const float *x, const struct lp_weight *w, int n,
                         int64_t r0, int64_t r1) {
    ENSURE(r0 >= 0 && r0 <= r1 && r1 <= w->rows);
    if (n <= 0 || r0 == r1) return;
#ifdef LP_HAVE_AVX2_PATH
    if (isa == LP_CPU_ISA_AVX2) {
        matmul_range_avx2(y, x, w, n, r0, r1);
        return;
    }
#endif
    (void)isa;
    matmul_range_scalar(y, x, w, n, r0, r1);
}

float lp_cpu_dot_f32(int isa, const float *a, const float *b, int64_t n) {
#ifdef LP_HAVE_AVX2_PATH
    if (isa == LP_CPU_ISA_AVX2) return dot_f32_avx2(a, b, n);
#endif
    (void)isa;
    return dot_f32_scalar(a, b, n);
}

struct matmul_job {
    int isa;
    float *y;
    const float *x;
    const struct lp_weight *w;
    int n;
};

static void matmul_task(void *ctx, int64_t begin, int64_t end) {
    const struct matmul_job *j = ctx;
    lp_cpu_matmul_range(j->isa, j->y, j->x, j->w, j->n, begin, end);
}

void lp_cpu_matmul(struct lp_threadpool *pool, int isa, float *y, const float *x,
                   const struct lp_weight *w, int n) {
    ENSURE(lp_type_get(w->type) != NULL);
    if (n <= 0 || w->rows == 0) return;
    /* Rows per task: a slice of the weights that stays in L1/L2 while every
     * input row passes over it (~32 KB), a multiple of 4 (the 4-row tile),
     * and small enough to give each thread several tasks to balance. */
    const size_t rb = row_bytes(w);
    int64_t grain = (int64_t)(32768 / (rb ? rb : 1));
    int nt = pool ? lp_threadpool_size(pool) : 1;
    int64_t balance = (w->rows + 4 * nt - 1) / (4 * nt);
    if (grain > balance) grain = balance;
    grain = (grain + 3) / 4 * 4;
    if (grain < 4) grain = 4;
    struct matmul_job job = {isa, y, x, w, n};
    if (!pool) {
        matmul_task(&job, 0, w->rows);
        return;
    }
    lp_threadpool_run(pool, w->rows, grain, matmul_task, &job);
}

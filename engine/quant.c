/* quant.c: reference dequantization of GGML block formats into f32. Each
 * value is computed with the same operations, in the same order, as gguf-py's
 * `gguf.quants.dequantize` (fp16 scales widened to f32 first, then d*q [+ m]),
 * so the results are bit-exact with it; the CPU matmul kernels reproduce these
 * values in registers. No library offers this in C, hence written here.
 *
 * Rounding: every product and sum is rounded to f32 separately. The build uses
 * -std=c11, under which GCC does not contract a*b+c into an FMA; clang is told
 * the same below. tests/unit/engine/test_quant.c holds this to gguf-py. */
#include "tensor.h"

#include <string.h>

#include "lp_common.h"

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#define QK 32    /* elements per Q4_0 / Q4_1 / Q8_0 block */
#define QK_K 256 /* elements per K-quant super-block */

static float read_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return lp_fp16_to_fp32(h);
}

/* Q4_0: fp16 d, 16 bytes of nibbles; element j is the low nibble of byte j,
 * element j + 16 the high nibble. value = d * (q - 8). */
static void dequant_q4_0(const uint8_t *b, float *y) {
    float d = read_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = d * (float)((int)(qs[j] & 0x0f) - 8);
        y[j + QK / 2] = d * (float)((int)(qs[j] >> 4) - 8);
    }
}

/* Q4_1: fp16 d, fp16 m, 16 bytes of nibbles. value = d * q + m. */
static void dequant_q4_1(const uint8_t *b, float *y) {
    float d = read_f16(b);
    float m = read_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < QK / 2; j++) {
        float p0 = d * (float)(qs[j] & 0x0f);
        float p1 = d * (float)(qs[j] >> 4);
        y[j] = p0 + m;
        y[j + QK / 2] = p1 + m;
    }
}

/* Q8_0: fp16 d, 32 int8. value = q * d. */
static void dequant_q8_0(const uint8_t *b, float *y) {
    float d = read_f16(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < QK; j++)
        y[j] = (float)qs[j] * d;
}

/* Q4_K: fp16 d, fp16 dmin, 12 bytes of packed 6-bit scales and mins for 8
 * sub-blocks of 32, 128 bytes of nibbles (sub-blocks 2i and 2i+1 are the low
 * and high nibbles of bytes 32i..32i+31). value = (d*sc) * q - (dmin*m). */
static void q4_k_scale_min(const uint8_t *s, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

static void dequant_q4_k(const uint8_t *b, float *y) {
    float d = read_f16(b);
    float dmin = read_f16(b + 2);
    const uint8_t *scales = b + 4;
    const uint8_t *qs = b + 16;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        q4_k_scale_min(scales, j, &sc, &m);
        float d1 = d * (float)sc;
        float m1 = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j / 2);
        int shift = (j & 1) * 4;
        for (int l = 0; l < 32; l++) {
            float p = d1 * (float)((q[l] >> shift) & 0x0f);
            y[32 * j + l] = p - m1;
        }
    }
}

/* Q6_K: 128 bytes low nibbles, 64 bytes of 2-bit high parts, 16 int8 scales
 * (one per 16 elements), fp16 d. Element e = 128h + r reads low nibble
 * ql[64h + r%64] >> 4*(r/64) and high bits qh[32h + r%32] >> 2*(r/32).
 * value = (d * scale) * (q - 32). */
static void dequant_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b;
    const uint8_t *qh = b + QK_K / 2;
    const int8_t *sc = (const int8_t *)(b + QK_K / 2 + QK_K / 4);
    float d = read_f16(b + QK_K / 2 + QK_K / 4 + QK_K / 16);
    for (int e = 0; e < QK_K; e++) {
        int h = e / 128, r = e % 128;
        int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
        int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
        int q = (lo | (hi << 4)) - 32;
        float ds = d * (float)sc[e / 16];
        y[e] = ds * (float)q;
    }
}

void lp_dequant_row(int type, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    const struct lp_type_traits *tt = lp_type_get(type);
    ENSURE(tt != NULL);
    ENSURE(n >= 0 && n % tt->block_elems == 0);
    switch (type) {
    case LP_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case LP_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = read_f16(p + 2 * i);
        return;
    case LP_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = lp_bf16_to_fp32(h);
        }
        return;
    default: break;
    }
    int64_t nb = n / tt->block_elems;
    for (int64_t i = 0; i < nb; i++, p += tt->block_bytes, dst += tt->block_elems) {
        switch (type) {
        case LP_TYPE_Q4_0: dequant_q4_0(p, dst); break;
        case LP_TYPE_Q4_1: dequant_q4_1(p, dst); break;
        case LP_TYPE_Q8_0: dequant_q8_0(p, dst); break;
        case LP_TYPE_Q4_K: dequant_q4_k(p, dst); break;
        case LP_TYPE_Q6_K: dequant_q6_k(p, dst); break;
        default: ENSURE(!"unreachable type");
        }
    }
}

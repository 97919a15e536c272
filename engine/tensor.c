/* tensor.c: element type traits and half/bfloat16 conversion. The
 * dequantization kernels live in quant.c. */
#include "tensor.h"

#include <string.h>

static const struct lp_type_traits traits[LP_TYPE_COUNT] = {
    [LP_TYPE_F32] = {"F32", 1, 4},       [LP_TYPE_F16] = {"F16", 1, 2},
    [LP_TYPE_Q4_0] = {"Q4_0", 32, 18},   [LP_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [LP_TYPE_Q8_0] = {"Q8_0", 32, 34},   [LP_TYPE_Q4_K] = {"Q4_K", 256, 144},
    [LP_TYPE_Q6_K] = {"Q6_K", 256, 210}, [LP_TYPE_BF16] = {"BF16", 1, 2},
};

const struct lp_type_traits *lp_type_get(int type) {
    if (type < 0 || type >= LP_TYPE_COUNT || traits[type].name == NULL) return NULL;
    return &traits[type];
}

size_t lp_type_nbytes(int type, uint64_t n) {
    const struct lp_type_traits *tt = lp_type_get(type);
    if (!tt || n % (uint64_t)tt->block_elems != 0) return 0;
    uint64_t blocks = n / (uint64_t)tt->block_elems;
    if (blocks > SIZE_MAX / (uint64_t)tt->block_bytes) return 0;
    return (size_t)(blocks * (uint64_t)tt->block_bytes);
}

int64_t lp_tensor_nelements(const struct lp_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++)
        n *= t->ne[i];
    return n;
}

float lp_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while ((mant & 0x400) == 0) {
                mant <<= 1;
                exp--;
            }
            mant &= 0x3ff;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lp_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff);
    uint32_t mant = x & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    int32_t e = exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t h = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* may carry into exp: correct */
    return (uint16_t)(sign | h);
}

float lp_bf16_to_fp32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* rand_weights.h: a small seeded generator and random *valid* weight bytes of
 * any lp_type (random quants, small finite fp16 scales), shared by the CPU
 * backend tests and the matmul benchmark. Header-only: each includer gets its
 * own generator state. */
#ifndef LP_RAND_WEIGHTS_H
#define LP_RAND_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tensor.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline void rng_seed(uint64_t s) { rng_state = s * 0x9e3779b97f4a7c15ull + 1; }
static inline uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
/* Uniform in [-1, 1). */
static inline float rndf(void) { return (float)rnd() / 4294967296.0f * 2.0f - 1.0f; }

static inline void put_f16(uint8_t *p, float f) {
    uint16_t h = lp_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

/* Random valid blocks: random bytes, small finite fp16 scales. */
static inline void fill_weights(int type, uint8_t *dst, size_t nbytes) {
    const struct lp_type_traits *tt = lp_type_get(type);
    for (size_t i = 0; i < nbytes; i++)
        dst[i] = (uint8_t)rnd();
    if (type == LP_TYPE_F32) {
        for (size_t i = 0; i < nbytes / 4; i++) {
            float f = rndf();
            memcpy(dst + 4 * i, &f, 4);
        }
        return;
    }
    if (type == LP_TYPE_F16 || type == LP_TYPE_BF16) {
        for (size_t i = 0; i < nbytes / 2; i++) {
            float f = rndf();
            uint32_t b;
            memcpy(&b, &f, 4);
            uint16_t h = type == LP_TYPE_F16 ? lp_fp32_to_fp16(f) : (uint16_t)(b >> 16);
            memcpy(dst + 2 * i, &h, 2);
        }
        return;
    }
    for (size_t off = 0; off < nbytes; off += (size_t)tt->block_bytes) {
        uint8_t *b = dst + off;
        switch (type) {
        case LP_TYPE_Q4_0:
        case LP_TYPE_Q8_0: put_f16(b, rndf() * 0.05f); break;
        case LP_TYPE_Q4_1:
        case LP_TYPE_Q4_K:
            put_f16(b, rndf() * 0.05f);
            put_f16(b + 2, rndf() * 0.05f);
            break;
        case LP_TYPE_Q6_K: put_f16(b + 208, rndf() * 0.01f); break;
        }
    }
}

#endif

/* tensor.h: element types (numbered as GGML numbers them, so GGUF type ids
 * map directly), their block layout, and a borrowed view of a host tensor. */
#ifndef LP_TENSOR_H
#define LP_TENSOR_H

#include <stddef.h>
#include <stdint.h>

enum lp_type {
    LP_TYPE_F32 = 0,
    LP_TYPE_F16 = 1,
    LP_TYPE_Q4_0 = 2,
    LP_TYPE_Q4_1 = 3,
    LP_TYPE_Q8_0 = 8,
    LP_TYPE_Q4_K = 12,
    LP_TYPE_Q6_K = 14,
    LP_TYPE_BF16 = 30,
    LP_TYPE_COUNT = 31, /* one past the largest id we know */
};

/* Block layout of a type: `block_elems` values are stored in `block_bytes`
 * bytes. Float types have block_elems == 1. */
struct lp_type_traits {
    const char *name;
    int block_elems;
    int block_bytes;
};

/* Returns the traits of `type`, or NULL if we do not support that type. */
const struct lp_type_traits *lp_type_get(int type);

/* Bytes needed for `n` elements of `type` (n must be a multiple of the block
 * size). Returns 0 on an unsupported type, a non-multiple, or overflow. */
size_t lp_type_nbytes(int type, uint64_t n);

#define LP_MAX_DIMS 4

/* A borrowed view of a tensor in host memory (for example inside an mmapped
 * file). ne[0] is the innermost (contiguous) dimension, as in GGML: a weight
 * matrix of `rows` output features and `cols` input features has
 * ne[0] = cols, ne[1] = rows. */
struct lp_tensor {
    const char *name;        /* borrowed from the file it came from */
    int type;                /* enum lp_type */
    int n_dims;              /* 1..LP_MAX_DIMS */
    int64_t ne[LP_MAX_DIMS]; /* unused dims are 1 */
    const void *data;        /* borrowed; nbytes long */
    size_t nbytes;
};

/* Number of elements: product of ne. */
int64_t lp_tensor_nelements(const struct lp_tensor *t);

/* Reference dequantization of `n` consecutive elements of `type` starting at
 * the beginning of block-aligned `src` into f32. Bit-exact with gguf-py's
 * dequantize (fp16 scales widened to f32, then d*q [+ m]). */
void lp_dequant_row(int type, const void *src, float *dst, int64_t n);

/* IEEE half and bfloat16 <-> float. */
float lp_fp16_to_fp32(uint16_t h);
uint16_t lp_fp32_to_fp16(float f);
float lp_bf16_to_fp32(uint16_t h);

#endif

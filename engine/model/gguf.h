/* gguf.h: a validating reader for GGUF v2/v3 files (llama.cpp's format).
 * The file is mmapped read-only; every count, length, offset and size is
 * checked against the file before it is used. */
#ifndef LP_GGUF_H
#define LP_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "../tensor.h"

enum gguf_vtype {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};

struct gguf_ctx;

/* A string inside the file: not NUL-terminated, borrowed until gguf_close. */
struct gguf_str {
    const char *ptr;
    uint64_t len;
};

/* Opens and validates `path`. On success *out is a new context (free with
 * gguf_close). On failure returns a negative lp_status and writes the reason
 * into err (LP_ERR_LEN bytes). */
int gguf_open(const char *path, struct gguf_ctx **out, char *err);

/* Same, over a caller's buffer (borrowed until gguf_close; used by fuzzing). */
int gguf_open_memory(const void *data, size_t size, struct gguf_ctx **out, char *err);

void gguf_close(struct gguf_ctx *ctx); /* NULL is a no-op */

uint32_t gguf_version(const struct gguf_ctx *ctx);

/* Key/value metadata. Lookups return -1 when the key is absent. */
int64_t gguf_kv_count(const struct gguf_ctx *ctx);
int64_t gguf_kv_find(const struct gguf_ctx *ctx, const char *key);
struct gguf_str gguf_kv_key(const struct gguf_ctx *ctx, int64_t i);
int gguf_kv_type(const struct gguf_ctx *ctx, int64_t i); /* enum gguf_vtype */

/* Typed getters by key: return 0 and set *v when the key exists with a
 * compatible type (any integer type that fits for ints; f32/f64 for floats),
 * LP_ENOTFOUND when absent, LP_EFORMAT when the type does not fit. */
int gguf_get_u32(const struct gguf_ctx *ctx, const char *key, uint32_t *v);
int gguf_get_i64(const struct gguf_ctx *ctx, const char *key, int64_t *v);
int gguf_get_f32(const struct gguf_ctx *ctx, const char *key, float *v);
int gguf_get_bool(const struct gguf_ctx *ctx, const char *key, int *v);
int gguf_get_str(const struct gguf_ctx *ctx, const char *key, struct gguf_str *v);

/* Arrays: element type and count; element accessors are bounds-checked by
 * the parser at open time, so `idx < count` is all the caller must ensure. */
int gguf_get_arr(const struct gguf_ctx *ctx, const char *key, int *elem_type, uint64_t *count);
struct gguf_str gguf_arr_str(const struct gguf_ctx *ctx, const char *key, uint64_t idx);
/* Pointer to the packed elements of a numeric array (little-endian file
 * data, possibly unaligned: memcpy from it). NULL if not a numeric array. */
const void *gguf_arr_data(const struct gguf_ctx *ctx, const char *key);

/* Tensors. */
int64_t gguf_tensor_count(const struct gguf_ctx *ctx);
int64_t gguf_tensor_find(const struct gguf_ctx *ctx, const char *name);
/* Fills *t with a view of tensor i (name NUL-terminated, borrowed). */
void gguf_tensor_get(const struct gguf_ctx *ctx, int64_t i, struct lp_tensor *t);

#endif

/* safetensors.h: a validating reader for Hugging Face safetensors files,
 * single or sharded (model.safetensors.index.json). Files are mmapped. */
#ifndef LP_SAFETENSORS_H
#define LP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../tensor.h"

struct st_ctx;

/* Opens one .safetensors file, or a directory / index json that names
 * shards. Checks: header length <= 100 MB and within the file, UTF-8 JSON
 * object, no duplicate keys, known dtype, shape x dtype size equal to the
 * byte range, ranges contiguous, non-overlapping, and ending at the file end.
 * dtypes F32, F16, BF16 map to lp_type; others are refused by name. */
int st_open(const char *path, struct st_ctx **out, char *err);
int st_open_memory(const void *data, size_t size, struct st_ctx **out, char *err);
void st_close(struct st_ctx *ctx);

int64_t st_tensor_count(const struct st_ctx *ctx);
int64_t st_tensor_find(const struct st_ctx *ctx, const char *name);
/* Fills *t with a view of tensor i. ne[] is in GGML order (reversed from the
 * safetensors shape), so a torch [out, in] weight has ne[0] = in. */
void st_tensor_get(const struct st_ctx *ctx, int64_t i, struct lp_tensor *t);

/* The optional "__metadata__" string map: value for key or NULL. */
const char *st_metadata_get(const struct st_ctx *ctx, const char *key);

#endif

/* fuzz_gguf.c: any input either is refused by gguf_open_memory or yields a
 * context whose every key, array element and tensor byte range can be read:
 * the target touches the first and last byte of each, so ASan catches a range
 * the parser let through but the input does not hold. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_common.h"
#include "model/gguf.h"

static volatile unsigned sink;

static void touch(const void *p, uint64_t n) {
    if (n == 0) return;
    const uint8_t *b = p;
    sink += b[0] + b[n - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct gguf_ctx *ctx;
    char err[LP_ERR_LEN];
    if (gguf_open_memory(data, size, &ctx, err) != 0) {
        ENSURE(ctx == NULL && err[0] != '\0');
        return 0;
    }
    (void)gguf_version(ctx);
    for (int64_t i = 0; i < gguf_kv_count(ctx); i++) {
        struct gguf_str k = gguf_kv_key(ctx, i);
        touch(k.ptr, k.len);
        int type = gguf_kv_type(ctx, i);
        if (memchr(k.ptr, '\0', (size_t)k.len)) continue; /* not reachable by name */
        char *key = xstrndup(k.ptr, (size_t)k.len);
        ENSURE(gguf_kv_find(ctx, key) == i);
        uint32_t u;
        int64_t s;
        float f;
        int b;
        struct gguf_str str;
        (void)gguf_get_u32(ctx, key, &u);
        (void)gguf_get_i64(ctx, key, &s);
        (void)gguf_get_f32(ctx, key, &f);
        (void)gguf_get_bool(ctx, key, &b);
        if (gguf_get_str(ctx, key, &str) == 0) touch(str.ptr, str.len);
        int et;
        uint64_t n;
        if (gguf_get_arr(ctx, key, &et, &n) == 0) {
            ENSURE(type == GGUF_TYPE_ARRAY);
            if (et == GGUF_TYPE_STRING) {
                for (uint64_t j = 0; j < n; j++) {
                    struct gguf_str e = gguf_arr_str(ctx, key, j);
                    ENSURE(e.ptr != NULL);
                    touch(e.ptr, e.len);
                }
                ENSURE(gguf_arr_data(ctx, key) == NULL);
            } else {
                static const int sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
                ENSURE(et >= 0 && et <= GGUF_TYPE_FLOAT64 && sizes[et] > 0);
                const void *p = gguf_arr_data(ctx, key);
                ENSURE(p != NULL);
                touch(p, n * (uint64_t)sizes[et]);
            }
        }
        free(key);
    }
    for (int64_t i = 0; i < gguf_tensor_count(ctx); i++) {
        struct lp_tensor t;
        gguf_tensor_get(ctx, i, &t);
        ENSURE(gguf_tensor_find(ctx, t.name) == i);
        ENSURE(t.n_dims >= 1 && t.n_dims <= LP_MAX_DIMS);
        uint64_t nelem = 1;
        for (int d = 0; d < LP_MAX_DIMS; d++) {
            ENSURE(t.ne[d] >= 1);
            nelem *= (uint64_t)t.ne[d];
        }
        ENSURE(lp_type_nbytes(t.type, nelem) == t.nbytes);
        ENSURE((const uint8_t *)t.data >= data && t.nbytes <= size &&
               (size_t)((const uint8_t *)t.data - data) <= size - t.nbytes);
        touch(t.data, t.nbytes);
    }
    gguf_close(ctx);
    return 0;
}

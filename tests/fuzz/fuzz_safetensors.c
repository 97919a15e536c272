/* fuzz_safetensors.c: any input either is refused by st_open_memory or
 * yields tensors whose byte ranges lie in the input (first and last byte are
 * touched, so ASan catches a lie) and that are found by their names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_common.h"
#include "model/safetensors.h"

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct st_ctx *ctx;
    char err[LP_ERR_LEN];
    if (st_open_memory(data, size, &ctx, err) != 0) {
        ENSURE(ctx == NULL && err[0] != '\0');
        return 0;
    }
    size_t total = 0;
    for (int64_t i = 0; i < st_tensor_count(ctx); i++) {
        struct lp_tensor t;
        st_tensor_get(ctx, i, &t);
        ENSURE(st_tensor_find(ctx, t.name) == i);
        ENSURE(t.n_dims >= 1 && t.n_dims <= LP_MAX_DIMS);
        uint64_t nelem = 1;
        for (int d = 0; d < LP_MAX_DIMS; d++) {
            ENSURE(t.ne[d] >= 0);
            nelem *= (uint64_t)t.ne[d];
        }
        ENSURE(nelem == 0 || lp_type_nbytes(t.type, nelem) == t.nbytes);
        ENSURE((const uint8_t *)t.data >= data && t.nbytes <= size &&
               (size_t)((const uint8_t *)t.data - data) <= size - t.nbytes);
        if (t.nbytes)
            sink += ((const uint8_t *)t.data)[0] + ((const uint8_t *)t.data)[t.nbytes - 1];
        total += t.nbytes;
    }
    ENSURE(total <= size); /* ranges tile the data without overlap */
    const char *v = st_metadata_get(ctx, "format");
    if (v) sink += (unsigned)strlen(v);
    st_close(ctx);
    return 0;
}

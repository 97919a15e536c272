/* fuzz_adapter.c: LoRA adapters as lp_adapter_load reads them, against a base
 * with tiny-llama's shapes (2 layers, n_embd 64, 4 heads / 2 kv heads of 16,
 * n_ff 128). Input: one flags byte (bit 0: GGUF-layout base whose q/k rows are
 * permuted; bit 1: the rest is a GGUF LoRA file), else a 2-byte little-endian
 * length, that many bytes of adapter_config.json, and adapter_model.safetensors. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lora/adapter.h"
#include "lora/adapter_build.h"
#include "lp_common.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void set(struct lp_tensor *t, int64_t in, int64_t out) {
    t->type = LP_TYPE_F32;
    t->n_dims = 2;
    t->ne[0] = in;
    t->ne[1] = out;
    t->ne[2] = t->ne[3] = 1;
}

static void tiny_base(struct lp_model *m, struct lp_layer_weights *layers, int interleaved) {
    memset(m, 0, sizeof *m);
    memset(layers, 0, 2 * sizeof *layers);
    m->cfg = (struct lp_model_config){.arch = LP_ARCH_LLAMA,
                                      .n_vocab = 512,
                                      .n_embd = 64,
                                      .n_layer = 2,
                                      .n_head = 4,
                                      .n_head_kv = 2,
                                      .head_dim = 16,
                                      .n_ff = 128,
                                      .rope_interleaved = interleaved};
    for (int l = 0; l < 2; l++) {
        set(&layers[l].wq, 64, 64);
        set(&layers[l].wk, 64, 32);
        set(&layers[l].wv, 64, 32);
        set(&layers[l].wo, 64, 64);
        set(&layers[l].w_gate, 64, 128);
        set(&layers[l].w_up, 64, 128);
        set(&layers[l].w_down, 128, 64);
    }
    m->layers = layers;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    struct lp_model m;
    struct lp_layer_weights layers[2];
    tiny_base(&m, layers, data[0] & 1);
    struct lp_adapter *a = NULL;
    char err[LP_ERR_LEN];
    int rc;
    if (data[0] & 2) {
        rc = lp_gguf_lora_load_memory(data + 1, size - 1, &m, &a, err);
    } else {
        if (size < 3) return 0;
        size_t cl = (size_t)data[1] | (size_t)data[2] << 8;
        if (cl > size - 3) cl = size - 3;
        rc = lp_peft_load_memory((const char *)data + 3, cl, data + 3 + cl, size - 3 - cl, &m, &a,
                                 err);
    }
    if (rc != LP_OK) {
        ENSURE(a == NULL && rc < 0 && memchr(err, 0, LP_ERR_LEN) != NULL);
        return 0;
    }
    /* what was accepted must be usable: shapes of the base, finite values, bytes add up */
    size_t bytes = 0;
    int max_rank = 0;
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < LP_PROJ_COUNT; p++) {
            const struct lp_lora_target *t = lp_adapter_target(a, l, p);
            if (!t) continue;
            const struct lp_tensor *w = p == LP_PROJ_Q      ? &layers[l].wq
                                        : p == LP_PROJ_K    ? &layers[l].wk
                                        : p == LP_PROJ_V    ? &layers[l].wv
                                        : p == LP_PROJ_O    ? &layers[l].wo
                                        : p == LP_PROJ_GATE ? &layers[l].w_gate
                                        : p == LP_PROJ_UP   ? &layers[l].w_up
                                                            : &layers[l].w_down;
            ENSURE(t->rank >= 1 && t->rank <= 1024 && isfinite(t->scale));
            for (int64_t j = 0; j < t->rank * w->ne[0]; j++)
                ENSURE(isfinite(t->a[j]));
            for (int64_t j = 0; j < t->rank * w->ne[1]; j++)
                ENSURE(isfinite(t->b[j]));
            bytes += (size_t)(t->rank * (w->ne[0] + w->ne[1])) * sizeof(float);
            if (t->rank > max_rank) max_rank = t->rank;
        }
    ENSURE(bytes == lp_adapter_bytes(a) && max_rank == lp_adapter_max_rank(a) && bytes > 0);
    lp_adapter_destroy(a);
    return 0;
}

/* adapter_build.h: private to engine/lora/. The readers (peft.c, gguf_lora.c)
 * stage borrowed views of each (layer, projection) A/B pair here; the builder
 * in adapter.c checks every pair against the base model's shapes, converts
 * them to owned f32 in one allocation, and permutes q/k rows of B when the
 * adapter's rope row layout differs from the base's. */
#ifndef LP_ADAPTER_BUILD_H
#define LP_ADAPTER_BUILD_H

#include <stddef.h>

#include "../tensor.h"
#include "adapter.h"

#define LP_ADAPTER_MAX_RANK 1024

/* One (layer, proj) slot while an adapter is being read. */
struct lp_adapter_stage {
    struct lp_tensor a; /* ne = [in, rank]; valid when has_a; name borrowed from the file */
    struct lp_tensor b; /* ne = [rank, out]; valid when has_b */
    int has_a, has_b;
    int targeted; /* PEFT: adapter_config.json selects this module (tensors required) */
    int rank;     /* rank the config expects, or 0 to take it from the tensors */
    float alpha;  /* scale = alpha / rank (or alpha / sqrt(rank) when rslora) */
    int rslora;
    int alpha_is_scale; /* GGUF with alpha 0: llama.cpp applies scale 1 */
};

struct lp_adapter_build {
    const struct lp_model *base; /* borrowed */
    int n_layer;
    struct lp_adapter_stage *st; /* [n_layer * LP_PROJ_COUNT], owned */
    int allow_q8_0; /* GGUF adapters may be Q8_0 (convert_lora_to_gguf --outtype q8_0) */
    /* Row order of the adapter's q/k B matrices relative to the base: +1
     * permute HF -> GGUF interleaved (PEFT adapter on a GGUF llama base), -1
     * the inverse (GGUF llama adapter on a HF base), 0 leave as is. */
    int qk_permute;
    const char *what; /* "adapter_config.json" or the GGUF path, for messages */
};

/* Prepares an empty build for `base` (xcalloc; aborts only on tiny OOM). */
void lp_adapter_build_init(struct lp_adapter_build *b, const struct lp_model *base);
void lp_adapter_build_clear(struct lp_adapter_build *b);

/* The slot for (layer, proj); layer must be < n_layer. */
struct lp_adapter_stage *lp_adapter_build_slot(struct lp_adapter_build *b, int layer, int proj);

/* Checks every staged pair against the base and makes the adapter. The
 * tensors' data must still be mapped. *out is new (lp_adapter_destroy). */
int lp_adapter_build_finish(struct lp_adapter_build *b, struct lp_adapter **out, char *err);

/* HF module name of (layer, proj), e.g. "model.layers.3.self_attn.q_proj". */
void lp_adapter_module_name(int layer, int proj, char *buf, size_t len);
/* "q_proj" ... "down_proj" */
const char *lp_adapter_proj_name(int proj);

/* Readers. The memory forms borrow their buffers only for the call. */
int lp_peft_load_dir(const char *dir, const struct lp_model *base, struct lp_adapter **out,
                     char *err);
int lp_peft_load_memory(const char *config, size_t config_len, const void *st, size_t st_len,
                        const struct lp_model *base, struct lp_adapter **out, char *err);
int lp_gguf_lora_load(const char *path, const struct lp_model *base, struct lp_adapter **out,
                      char *err);
int lp_gguf_lora_load_memory(const void *data, size_t size, const struct lp_model *base,
                             struct lp_adapter **out, char *err);

#endif

/* forward.h: one forward step of a decoder-only transformer over a flat batch
 * of tokens from many sequences, written once against backend.h. A replica
 * owns one lp_forward: the model's weights made resident on its backend, the
 * paged KV cache memory and the scratch buffers, all sized at creation so that
 * a step allocates nothing. */
#ifndef LP_FORWARD_H
#define LP_FORWARD_H

#include <stdint.h>

#include "backend.h"
#include "model/model.h"

/* The projections LoRA can target, in the order of the layer diagram. */
enum lp_proj {
    LP_PROJ_Q = 0,
    LP_PROJ_K,
    LP_PROJ_V,
    LP_PROJ_O,
    LP_PROJ_GATE,
    LP_PROJ_UP,
    LP_PROJ_DOWN,
    LP_PROJ_COUNT
};

struct lp_forward_params {
    int max_tokens; /* most tokens in one step (prefill chunk + decodes) */
    int max_logits; /* most rows of logits one step may ask for */
    int n_blocks;   /* KV blocks in the cache */
    int block_size; /* tokens per KV block */
};

struct lp_forward;

/* One step. tokens/attn describe the flat batch (attn.n_tokens tokens); the
 * rows of `logit_rows` (indices into the batch) get logits. */
struct lp_step {
    const int32_t *tokens;     /* [n_tokens] */
    struct lp_attn_batch attn; /* positions, sequences, slots, block tables */
    int n_logits;
    const int32_t *logit_rows; /* [n_logits] */
};

/* Makes `m` resident on `be` and allocates cache and scratch. `m` and `be`
 * are borrowed and must outlive the forward. */
int lp_forward_create(struct lp_backend *be, const struct lp_model *m,
                      const struct lp_forward_params *p, struct lp_forward **out, char *err);
void lp_forward_destroy(struct lp_forward *f); /* NULL is a no-op */

/* Runs one step and writes logits [n_logits, n_vocab] into host memory. */
int lp_forward_step(struct lp_forward *f, const struct lp_step *s, float *logits, char *err);

const struct lp_forward_params *lp_forward_params_get(const struct lp_forward *f);

#endif

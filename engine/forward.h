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
    int n_slots;    /* adapter slots resident on the device (0 = no LoRA) */
    int max_rank;   /* largest LoRA rank a slot may hold */
};

/* One targeted projection of one layer of an adapter, in host memory:
 * y += scale * (x . A^T) . B^T. rank 0 means "not targeted". */
struct lp_lora_target {
    int rank;
    float scale;
    const float *a; /* [rank, in_features] row-major */
    const float *b; /* [out_features, rank] row-major */
};

/* A run of consecutive tokens of a step that use one adapter slot. */
struct lp_step_seg {
    int start; /* first token of the run */
    int len;   /* tokens in the run */
    int slot;  /* adapter slot, or -1 for the base model alone */
};

struct lp_forward;

/* One step. tokens/attn describe the flat batch (attn.n_tokens tokens); the
 * rows of `logit_rows` (indices into the batch) get logits. */
struct lp_step {
    const int32_t *tokens;     /* [n_tokens] */
    struct lp_attn_batch attn; /* positions, sequences, slots, block tables */
    int n_logits;
    const int32_t *logit_rows;      /* [n_logits] */
    int n_segs;                     /* 0: no adapter in this step */
    const struct lp_step_seg *segs; /* [n_segs] covering the tokens in order */
};

/* Makes `m` resident on `be` and allocates cache and scratch. `m` and `be`
 * are borrowed and must outlive the forward. */
int lp_forward_create(struct lp_backend *be, const struct lp_model *m,
                      const struct lp_forward_params *p, struct lp_forward **out, char *err);
void lp_forward_destroy(struct lp_forward *f); /* NULL is a no-op */

/* Runs one step and writes logits [n_logits, n_vocab] into host memory. */
int lp_forward_step(struct lp_forward *f, const struct lp_step *s, float *logits, char *err);

const struct lp_forward_params *lp_forward_params_get(const struct lp_forward *f);

/* Width of a logits row: the model's vocabulary, which may be larger than the
 * tokenizer's (padded embeddings). */
int lp_forward_n_vocab(const struct lp_forward *f);

/* Brings an adapter from host memory into device slot `slot` (replacing what
 * was there): targets is [n_layer * LP_PROJ_COUNT], indexed layer *
 * LP_PROJ_COUNT + proj, borrowed for the call. Fails with LP_ERANGE if a rank
 * exceeds max_rank, LP_ENOMEM if the device is full. */
int lp_forward_slot_load(struct lp_forward *f, int slot, const struct lp_lora_target *targets,
                         char *err);
/* Merged mode: folds one adapter into this forward's own copy of the
 * weights it targets (W + scale * B . A, in f32), for the fastest
 * single-adapter path. Irreversible for this forward; targets as in
 * lp_forward_slot_load. */
int lp_forward_merge(struct lp_forward *f, const struct lp_lora_target *targets, char *err);

/* Frees the slot's device memory. */
void lp_forward_slot_clear(struct lp_forward *f, int slot);
/* Device bytes held by the slot (0 when empty). */
size_t lp_forward_slot_bytes(const struct lp_forward *f, int slot);

#endif

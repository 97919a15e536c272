/* forward.c: the transformer forward pass, written once against backend.h.
 * Reads like the model diagram: embed, then per layer attention and MLP with
 * residuals, then the final norm and the logits of the rows asked for. */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "lp_common.h"

struct layer_dev {
    struct lp_weight attn_norm, wq, wk, wv, wo, bq, bk, bv, bo;
    struct lp_weight ffn_norm, w_gate, w_up, w_down;
    float *kcache; /* [n_blocks * block_size, kv_dim] */
    float *vcache; /* [n_blocks * block_size, kv_dim] */
};

/* An adapter resident in a device slot: per (layer, proj) its A and B^T. */
struct slot {
    int used;
    size_t bytes;
    struct lp_lora_seg *t; /* [n_layer * LP_PROJ_COUNT]; rank 0 = not targeted;
                              start/len unused here */
};

struct lp_forward {
    struct lp_backend *be;
    const struct lp_model *m;
    struct lp_forward_params p;
    struct lp_weight tok_embd, output_norm, output;
    struct layer_dev *layers; /* [n_layer] */
    /* scratch, all backend memory */
    float *x;           /* [max_tokens, n_embd] residual stream */
    float *xn;          /* [max_tokens, n_embd] normed input / projection output */
    float *q;           /* [max_tokens, n_head * head_dim] */
    float *k;           /* [max_tokens, kv_dim] */
    float *v;           /* [max_tokens, kv_dim] */
    float *att;         /* [max_tokens, n_head * head_dim] */
    float *gate;        /* [max_tokens, n_ff] */
    float *up;          /* [max_tokens, n_ff] */
    float *xl;          /* [max_logits, n_embd] rows that need logits */
    float *logits;      /* [max_logits, n_vocab] */
    float *lora_tmp;    /* [max_tokens, max_rank] LoRA shrink output */
    struct slot *slots; /* [n_slots] */
    float **merged;     /* host f32 copies of merged weights, owned */
    int n_merged;
    struct lp_lora_seg *segs; /* [max_tokens] host scratch: one projection's segments */
};

static int weight(struct lp_forward *f, const struct lp_tensor *t, struct lp_weight *w, char *err) {
    memset(w, 0, sizeof *w);
    if (!t->data) return LP_OK; /* optional tensor absent */
    return f->be->ops->weight_init(f->be, t, w, err);
}

static void *dev_alloc(struct lp_forward *f, size_t n, int *failed) {
    void *p = f->be->ops->alloc(f->be, n);
    if (!p) *failed = 1;
    return p;
}

int lp_forward_create(struct lp_backend *be, const struct lp_model *m,
                      const struct lp_forward_params *p, struct lp_forward **out, char *err) {
    *out = NULL;
    if (p->max_tokens <= 0 || p->max_logits <= 0 || p->max_logits > p->max_tokens ||
        p->n_blocks <= 0 || p->block_size <= 0 || p->n_slots < 0 || p->n_slots > 4096 ||
        p->max_rank < 0 || p->max_rank > 4096 || (p->n_slots > 0 && p->max_rank == 0))
        return lp_err(err, LP_EINVAL, "forward: bad sizes (tokens %d, logits %d, blocks %d x %d)",
                      p->max_tokens, p->max_logits, p->n_blocks, p->block_size);
    const struct lp_model_config *c = &m->cfg;
    struct lp_forward *f = xcalloc(1, sizeof *f);
    f->be = be;
    f->m = m;
    f->p = *p;
    int rc;
    if ((rc = weight(f, &m->tok_embd, &f->tok_embd, err)) ||
        (rc = weight(f, &m->output_norm, &f->output_norm, err)) ||
        (rc = weight(f, &m->output, &f->output, err))) {
        lp_forward_destroy(f);
        return rc;
    }
    f->layers = xcalloc((size_t)c->n_layer, sizeof *f->layers);
    size_t kv_dim = (size_t)c->n_head_kv * c->head_dim;
    size_t cache_bytes = (size_t)p->n_blocks * p->block_size * kv_dim * sizeof(float);
    int failed = 0;
    for (int l = 0; l < c->n_layer && !failed; l++) {
        const struct lp_layer_weights *L = &m->layers[l];
        struct layer_dev *D = &f->layers[l];
        if ((rc = weight(f, &L->attn_norm, &D->attn_norm, err)) ||
            (rc = weight(f, &L->wq, &D->wq, err)) || (rc = weight(f, &L->wk, &D->wk, err)) ||
            (rc = weight(f, &L->wv, &D->wv, err)) || (rc = weight(f, &L->wo, &D->wo, err)) ||
            (rc = weight(f, &L->bq, &D->bq, err)) || (rc = weight(f, &L->bk, &D->bk, err)) ||
            (rc = weight(f, &L->bv, &D->bv, err)) || (rc = weight(f, &L->bo, &D->bo, err)) ||
            (rc = weight(f, &L->ffn_norm, &D->ffn_norm, err)) ||
            (rc = weight(f, &L->w_gate, &D->w_gate, err)) ||
            (rc = weight(f, &L->w_up, &D->w_up, err)) ||
            (rc = weight(f, &L->w_down, &D->w_down, err))) {
            lp_forward_destroy(f);
            return rc;
        }
        D->kcache = dev_alloc(f, cache_bytes, &failed);
        D->vcache = dev_alloc(f, cache_bytes, &failed);
    }
    size_t T = (size_t)p->max_tokens, qd = (size_t)c->n_head * c->head_dim;
    f->x = dev_alloc(f, T * c->n_embd * sizeof(float), &failed);
    f->xn = dev_alloc(f, T * c->n_embd * sizeof(float), &failed);
    f->q = dev_alloc(f, T * qd * sizeof(float), &failed);
    f->k = dev_alloc(f, T * kv_dim * sizeof(float), &failed);
    f->v = dev_alloc(f, T * kv_dim * sizeof(float), &failed);
    f->att = dev_alloc(f, T * qd * sizeof(float), &failed);
    f->gate = dev_alloc(f, T * c->n_ff * sizeof(float), &failed);
    f->up = dev_alloc(f, T * c->n_ff * sizeof(float), &failed);
    f->xl = dev_alloc(f, (size_t)p->max_logits * c->n_embd * sizeof(float), &failed);
    f->logits = dev_alloc(f, (size_t)p->max_logits * c->n_vocab * sizeof(float), &failed);
    if (p->n_slots > 0) {
        f->lora_tmp = dev_alloc(f, T * (size_t)p->max_rank * sizeof(float), &failed);
        f->slots = xcalloc((size_t)p->n_slots, sizeof *f->slots);
        f->segs = xmalloc(T * sizeof *f->segs);
    }
    if (failed) {
        lp_forward_destroy(f);
        return lp_err(err, LP_ENOMEM,
                      "forward: out of device memory for %d KV blocks of %d tokens and %d-token "
                      "steps",
                      p->n_blocks, p->block_size, p->max_tokens);
    }
    *out = f;
    return LP_OK;
}

void lp_forward_destroy(struct lp_forward *f) {
    if (!f) return;
    const struct lp_backend_ops *o = f->be->ops;
    for (int i = 0; i < f->p.n_slots && f->slots; i++)
        lp_forward_slot_clear(f, i);
    if (f->layers) {
        for (int l = 0; l < f->m->cfg.n_layer; l++) {
            struct layer_dev *D = &f->layers[l];
            struct lp_weight *ws[] = {&D->attn_norm, &D->wq,   &D->wk,    &D->wv, &D->wo,
                                      &D->bq,        &D->bk,   &D->bv,    &D->bo, &D->ffn_norm,
                                      &D->w_gate,    &D->w_up, &D->w_down};
            for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
                if (ws[i]->data) o->weight_clear(f->be, ws[i]);
            if (D->kcache) o->free(f->be, D->kcache);
            if (D->vcache) o->free(f->be, D->vcache);
        }
        free(f->layers);
    }
    struct lp_weight *top[] = {&f->tok_embd, &f->output_norm, &f->output};
    for (size_t i = 0; i < 3; i++) {
        /* tied embeddings: output borrows the same host tensor; clear once */
        if (i == 2 && f->output.data == f->tok_embd.data) break;
        if (top[i]->data) o->weight_clear(f->be, top[i]);
    }
    float *bufs[] = {f->x, f->xn, f->q, f->k, f->v, f->att, f->gate, f->up, f->xl, f->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) o->free(f->be, bufs[i]);
    if (f->lora_tmp) o->free(f->be, f->lora_tmp);
    for (int i = 0; i < f->p.n_slots && f->slots; i++)
        lp_forward_slot_clear(f, i);
    free(f->slots);
    free(f->segs);
    for (int i = 0; i < f->n_merged; i++)
        free(f->merged[i]);
    free(f->merged);
    free(f);
}

const struct lp_forward_params *lp_forward_params_get(const struct lp_forward *f) { return &f->p; }

int lp_forward_n_vocab(const struct lp_forward *f) { return f->m->cfg.n_vocab; }

/* In and out features of projection `proj` of every layer. */
static void proj_dims(const struct lp_model_config *c, int proj, int *in, int *out) {
    int qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
    switch (proj) {
    case LP_PROJ_Q: *in = c->n_embd, *out = qd; break;
    case LP_PROJ_K:
    case LP_PROJ_V: *in = c->n_embd, *out = kvd; break;
    case LP_PROJ_O: *in = qd, *out = c->n_embd; break;
    case LP_PROJ_GATE:
    case LP_PROJ_UP: *in = c->n_embd, *out = c->n_ff; break;
    default: *in = c->n_ff, *out = c->n_embd; break;
    }
}

void lp_forward_slot_clear(struct lp_forward *f, int slot) {
    ENSURE(slot >= 0 && slot < f->p.n_slots);
    struct slot *s = &f->slots[slot];
    if (!s->t) return;
    for (int i = 0; i < f->m->cfg.n_layer * LP_PROJ_COUNT; i++) {
        if (s->t[i].a) f->be->ops->free(f->be, (void *)s->t[i].a);
        if (s->t[i].bt) f->be->ops->free(f->be, (void *)s->t[i].bt);
    }
    free(s->t);
    memset(s, 0, sizeof *s);
}

size_t lp_forward_slot_bytes(const struct lp_forward *f, int slot) {
    ENSURE(slot >= 0 && slot < f->p.n_slots);
    return f->slots[slot].bytes;
}

int lp_forward_slot_load(struct lp_forward *f, int slot, const struct lp_lora_target *targets,
                         char *err) {
    if (slot < 0 || slot >= f->p.n_slots)
        return lp_err(err, LP_EINVAL, "adapter slot %d does not exist (%d slots)", slot,
                      f->p.n_slots);
    const struct lp_model_config *c = &f->m->cfg;
    const int nt = c->n_layer * LP_PROJ_COUNT;
    for (int i = 0; i < nt; i++)
        if (targets[i].rank < 0 || targets[i].rank > f->p.max_rank)
            return lp_err(err, LP_ERANGE, "adapter rank %d exceeds the slots' maximum %d",
                          targets[i].rank, f->p.max_rank);
    lp_forward_slot_clear(f, slot);
    struct slot *s = &f->slots[slot];
    s->t = xcalloc((size_t)nt, sizeof *s->t);
    size_t max_bt = 0;
    for (int i = 0; i < nt; i++) {
        int in, out;
        proj_dims(c, i % LP_PROJ_COUNT, &in, &out);
        if ((size_t)targets[i].rank * out > max_bt) max_bt = (size_t)targets[i].rank * out;
    }
    float *stage = max_bt ? malloc(max_bt * sizeof(float)) : NULL; /* B^T on the host */
    if (max_bt && !stage) {
        lp_forward_slot_clear(f, slot);
        return lp_err(err, LP_ENOMEM, "out of host memory staging an adapter");
    }
    const struct lp_backend_ops *o = f->be->ops;
    for (int i = 0; i < nt; i++) {
        const struct lp_lora_target *t = &targets[i];
        if (t->rank == 0) continue;
        int in, out;
        proj_dims(c, i % LP_PROJ_COUNT, &in, &out);
        size_t abytes = (size_t)t->rank * in * sizeof(float);
        size_t bbytes = (size_t)t->rank * out * sizeof(float);
        float *a = o->alloc(f->be, abytes), *bt = o->alloc(f->be, bbytes);
        s->t[i] = (struct lp_lora_seg){.rank = t->rank, .scale = t->scale, .a = a, .bt = bt};
        if (!a || !bt) {
            free(stage);
            lp_forward_slot_clear(f, slot);
            return lp_err(err, LP_ENOMEM, "out of device memory for an adapter slot");
        }
        for (int r = 0; r < t->rank; r++)
            for (int j = 0; j < out; j++)
                stage[(size_t)r * out + j] = t->b[(size_t)j * t->rank + r];
        o->upload(f->be, a, t->a, abytes);
        o->upload(f->be, bt, stage, bbytes);
        s->bytes += abytes + bbytes;
    }
    free(stage);
    s->used = 1;
    return LP_OK;
}

/* The resident weight of projection `proj` of layer `l`. */
static struct lp_weight *layer_weight(struct lp_forward *f, int l, int proj) {
    struct layer_dev *D = &f->layers[l];
    struct lp_weight *w[LP_PROJ_COUNT] = {&D->wq,     &D->wk,   &D->wv,    &D->wo,
                                          &D->w_gate, &D->w_up, &D->w_down};
    return w[proj];
}

/* The host tensor a projection was loaded from. */
static const struct lp_tensor *layer_tensor(const struct lp_model *m, int l, int proj) {
    const struct lp_layer_weights *L = &m->layers[l];
    const struct lp_tensor *t[LP_PROJ_COUNT] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                                &L->w_gate, &L->w_up, &L->w_down};
    return t[proj];
}

int lp_forward_merge(struct lp_forward *f, const struct lp_lora_target *targets, char *err) {
    const struct lp_model_config *c = &f->m->cfg;
    for (int l = 0; l < c->n_layer; l++) {
        for (int p = 0; p < LP_PROJ_COUNT; p++) {
            const struct lp_lora_target *t = &targets[l * LP_PROJ_COUNT + p];
            if (t->rank == 0) continue;
            int in, out;
            proj_dims(c, p, &in, &out);
            const struct lp_tensor *src = layer_tensor(f->m, l, p);
            float *w = malloc((size_t)in * out * sizeof(float));
            if (!w) return lp_err(err, LP_ENOMEM, "out of host memory merging an adapter");
            /* W (dequantized exactly) + scale * B . A, one GEMM per projection */
            size_t rb = lp_type_nbytes(src->type, (uint64_t)in);
            for (int r = 0; r < out; r++)
                lp_dequant_row(src->type, (const uint8_t *)src->data + (size_t)r * rb,
                               w + (size_t)r * in, in);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, t->rank, t->scale, t->b,
                        t->rank, t->a, in, 1.0f, w, in);
            struct lp_tensor mt = *src;
            mt.type = LP_TYPE_F32;
            mt.data = w;
            mt.nbytes = (size_t)in * out * sizeof(float);
            struct lp_weight nw;
            int rc = f->be->ops->weight_init(f->be, &mt, &nw, err);
            if (rc != LP_OK) {
                free(w);
                return rc;
            }
            struct lp_weight *dst = layer_weight(f, l, p);
            f->be->ops->weight_clear(f->be, dst);
            *dst = nw;
            f->merged = xrealloc(f->merged, (size_t)(f->n_merged + 1) * sizeof *f->merged);
            f->merged[f->n_merged++] = w;
        }
    }
    return LP_OK;
}

/* y = x.W^T (+ b) for n rows, then the LoRA of every segment whose adapter
 * targets this projection. */
static void project(struct lp_forward *f, const struct lp_step *s, int layer, int proj, float *y,
                    const float *x, const struct lp_weight *w, const struct lp_weight *b, int n) {
    const struct lp_backend_ops *o = f->be->ops;
    o->matmul(f->be, y, x, w, n);
    if (b && b->data) o->add_bias(f->be, y, b, n, (int)w->rows);
    if (s->n_segs == 0) return;
    int ns = 0;
    for (int i = 0; i < s->n_segs; i++) {
        const struct lp_step_seg *g = &s->segs[i];
        if (g->slot < 0) continue;
        const struct lp_lora_seg *t = &f->slots[g->slot].t[layer * LP_PROJ_COUNT + proj];
        if (t->rank == 0) continue;
        f->segs[ns] = *t;
        f->segs[ns].start = g->start;
        f->segs[ns++].len = g->len;
    }
    if (ns) o->lora(f->be, y, x, (int)w->cols, (int)w->rows, f->segs, ns, f->lora_tmp);
}

int lp_forward_step(struct lp_forward *f, const struct lp_step *s, float *logits, char *err) {
    const struct lp_model_config *c = &f->m->cfg;
    const struct lp_backend_ops *o = f->be->ops;
    struct lp_backend *be = f->be;
    const int n = s->attn.n_tokens;
    if (n <= 0 || n > f->p.max_tokens || s->n_logits < 0 || s->n_logits > f->p.max_logits ||
        s->attn.block_size != f->p.block_size)
        return lp_err(err, LP_EINVAL, "forward: step of %d tokens / %d logits exceeds %d / %d", n,
                      s->n_logits, f->p.max_tokens, f->p.max_logits);
    for (int i = 0; i < n; i++) {
        if (s->tokens[i] < 0 || s->tokens[i] >= c->n_vocab)
            return lp_err(err, LP_EINVAL, "forward: token id %d out of range", s->tokens[i]);
        if (s->attn.slot[i] < 0 || s->attn.slot[i] >= f->p.n_blocks * f->p.block_size)
            return lp_err(err, LP_EINVAL, "forward: KV slot %d out of range", s->attn.slot[i]);
    }
    int covered = 0;
    for (int i = 0; i < s->n_segs; i++) {
        const struct lp_step_seg *g = &s->segs[i];
        if (g->start != covered || g->len <= 0 || g->slot < -1 || g->slot >= f->p.n_slots ||
            (g->slot >= 0 && !f->slots[g->slot].used))
            return lp_err(err, LP_EINVAL, "forward: bad adapter segment %d", i);
        covered += g->len;
    }
    if (s->n_segs > 0 && covered != n)
        return lp_err(err, LP_EINVAL, "forward: adapter segments cover %d of %d tokens", covered,
                      n);
    const int d = c->n_embd, kv_dim = c->n_head_kv * c->head_dim;
    const float scale = 1.0f / sqrtf((float)c->head_dim);

    o->embed(be, f->x, &f->tok_embd, s->tokens, n); /* x: [n, d] */
    for (int l = 0; l < c->n_layer; l++) {
        struct layer_dev *L = &f->layers[l];
        /* attention block */
        o->rmsnorm(be, f->xn, f->x, &L->attn_norm, n, d, c->rms_eps);
        project(f, s, l, LP_PROJ_Q, f->q, f->xn, &L->wq, &L->bq, n); /* q: [n, n_head * head_dim] */
        project(f, s, l, LP_PROJ_K, f->k, f->xn, &L->wk, &L->bk, n); /* k: [n, kv_dim] */
        project(f, s, l, LP_PROJ_V, f->v, f->xn, &L->wv, &L->bv, n); /* v: [n, kv_dim] */
        o->rope(be, f->q, n, c->n_head, c->head_dim, c->rot_dim, s->attn.pos, f->m->inv_freq,
                c->rope_interleaved);
        o->rope(be, f->k, n, c->n_head_kv, c->head_dim, c->rot_dim, s->attn.pos, f->m->inv_freq,
                c->rope_interleaved);
        o->kv_store(be, L->kcache, L->vcache, f->k, f->v, &s->attn, kv_dim);
        o->attention(be, f->att, f->q, L->kcache, L->vcache, &s->attn, c->n_head, c->n_head_kv,
                     c->head_dim, scale);
        project(f, s, l, LP_PROJ_O, f->xn, f->att, &L->wo, &L->bo, n); /* xn: [n, d] */
        o->add(be, f->x, f->xn, (size_t)n * d);
        /* MLP block: down(silu(gate(x)) * up(x)) */
        o->rmsnorm(be, f->xn, f->x, &L->ffn_norm, n, d, c->rms_eps);
        project(f, s, l, LP_PROJ_GATE, f->gate, f->xn, &L->w_gate, NULL, n); /* gate: [n, n_ff] */
        project(f, s, l, LP_PROJ_UP, f->up, f->xn, &L->w_up, NULL, n);       /* up: [n, n_ff] */
        o->silu_mul(be, f->gate, f->gate, f->up, (size_t)n * c->n_ff);
        project(f, s, l, LP_PROJ_DOWN, f->xn, f->gate, &L->w_down, NULL, n); /* xn: [n, d] */
        o->add(be, f->x, f->xn, (size_t)n * d);
    }
    if (s->n_logits > 0) {
        for (int i = 0; i < s->n_logits; i++)
            if (s->logit_rows[i] < 0 || s->logit_rows[i] >= n)
                return lp_err(err, LP_EINVAL, "forward: logit row %d out of range",
                              s->logit_rows[i]);
        o->gather_rows(be, f->xl, f->x, s->logit_rows, s->n_logits, d);
        o->rmsnorm(be, f->xl, f->xl, &f->output_norm, s->n_logits, d, c->rms_eps);
        o->matmul(be, f->logits, f->xl, &f->output, s->n_logits); /* [n_logits, n_vocab] */
        o->sync(be);
        o->download(be, logits, f->logits, (size_t)s->n_logits * c->n_vocab * sizeof(float));
    } else {
        o->sync(be);
    }
    return LP_OK;
}

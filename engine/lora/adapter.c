/* adapter.c: a LoRA adapter held as owned f32 A/B pairs per (layer, proj),
 * and the builder the readers share: it checks each staged pair against the
 * base model (shapes, rank, dtype, complete pairs), converts all of them into
 * one allocation and fixes the q/k row order for the base's rope layout. */
#include "adapter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lp_common.h"
#include "../model/model.h"
#include "adapter_build.h"

struct lp_adapter {
    int n_layer;
    struct lp_lora_target *t; /* [n_layer * LP_PROJ_COUNT]; rank 0 = untouched */
    float *data;              /* every A and B, one allocation */
    size_t bytes;             /* bytes of A and B in `data` */
    int max_rank;
};

static const char *const proj_names[LP_PROJ_COUNT] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
};

const char *lp_adapter_proj_name(int proj) {
    return proj >= 0 && proj < LP_PROJ_COUNT ? proj_names[proj] : "?";
}

void lp_adapter_module_name(int layer, int proj, char *buf, size_t len) {
    snprintf(buf, len, "model.layers.%d.%s.%s", layer, proj <= LP_PROJ_O ? "self_attn" : "mlp",
             lp_adapter_proj_name(proj));
}

/* ---- the adapter ------------------------------------------------------------ */

void lp_adapter_destroy(struct lp_adapter *a) {
    if (!a) return;
    free(a->data);
    free(a->t);
    free(a);
}

const struct lp_lora_target *lp_adapter_target(const struct lp_adapter *a, int layer, int proj) {
    if (!a || layer < 0 || layer >= a->n_layer || proj < 0 || proj >= LP_PROJ_COUNT) return NULL;
    const struct lp_lora_target *t = &a->t[(size_t)layer * LP_PROJ_COUNT + proj];
    return t->rank > 0 ? t : NULL;
}

int lp_adapter_max_rank(const struct lp_adapter *a) { return a ? a->max_rank : 0; }

size_t lp_adapter_bytes(const struct lp_adapter *a) { return a ? a->bytes : 0; }

/* ---- loading ------------------------------------------------------------------ */

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

int lp_adapter_load(const char *path, const struct lp_model *base, struct lp_adapter **out,
                    char *err) {
    *out = NULL;
    if (!path || !base || !base->layers || base->cfg.n_layer <= 0)
        return lp_err(err, LP_EINVAL, "lp_adapter_load: no path or no base model");
    struct stat sb;
    if (stat(path, &sb) != 0) return lp_err(err, LP_ENOTFOUND, "adapter %s: no such file", path);
    if (S_ISDIR(sb.st_mode)) return lp_peft_load_dir(path, base, out, err);
    if (!S_ISREG(sb.st_mode))
        return lp_err(err, LP_EINVAL, "adapter %s: not a file or directory", path);
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return lp_err(err, LP_EIO, "adapter %s: cannot open", path);
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return lp_gguf_lora_load(path, base, out, err);
    if (has_suffix(path, "adapter_config.json")) {
        size_t n = strlen(path) - strlen("adapter_config.json");
        char *dir = xstrndup(path, n ? n : 1);
        if (n == 0) dir[0] = '.';
        int rc = lp_peft_load_dir(dir, base, out, err);
        free(dir);
        return rc;
    }
    if (has_suffix(path, ".bin") || has_suffix(path, ".pt") || has_suffix(path, ".pth"))
        return lp_err(err, LP_EUNSUPPORTED,
                      "%s is a pickle; convert it to safetensors (never unpickled)", path);
    return lp_err(err, LP_EFORMAT,
                  "adapter %s: not a PEFT directory, an adapter_config.json or a GGUF LoRA file",
                  path);
}

/* ---- the builder -------------------------------------------------------------- */

void lp_adapter_build_init(struct lp_adapter_build *b, const struct lp_model *base) {
    memset(b, 0, sizeof *b);
    b->base = base;
    b->n_layer = base->cfg.n_layer;
    b->st = xcalloc((size_t)b->n_layer * LP_PROJ_COUNT, sizeof *b->st);
}

void lp_adapter_build_clear(struct lp_adapter_build *b) {
    free(b->st);
    b->st = NULL;
}

struct lp_adapter_stage *lp_adapter_build_slot(struct lp_adapter_build *b, int layer, int proj) {
    ENSURE(layer >= 0 && layer < b->n_layer && proj >= 0 && proj < LP_PROJ_COUNT);
    return &b->st[(size_t)layer * LP_PROJ_COUNT + proj];
}

static const struct lp_tensor *base_weight(const struct lp_model *m, int layer, int proj) {
    const struct lp_layer_weights *w = &m->layers[layer];
    switch (proj) {
    case LP_PROJ_Q: return &w->wq;
    case LP_PROJ_K: return &w->wk;
    case LP_PROJ_V: return &w->wv;
    case LP_PROJ_O: return &w->wo;
    case LP_PROJ_GATE: return &w->w_gate;
    case LP_PROJ_UP: return &w->w_up;
    default: return &w->w_down;
    }
}

static int type_ok(const struct lp_adapter_build *b, int type) {
    return type == LP_TYPE_F32 || type == LP_TYPE_F16 || type == LP_TYPE_BF16 ||
           (b->allow_q8_0 && type == LP_TYPE_Q8_0);
}

/* Checks one complete or half pair; on success sets *rank. */
static int check_pair(const struct lp_adapter_build *b, int layer, int proj,
                      const struct lp_adapter_stage *s, int *rank, char *err) {
    char mod[96];
    lp_adapter_module_name(layer, proj, mod, sizeof mod);
    if (!s->has_a && !s->has_b)
        return lp_err(err, LP_EFORMAT, "%s: module %s is targeted but has no lora_A/lora_B tensors",
                      b->what, mod);
    if (!s->has_b)
        return lp_err(err, LP_EFORMAT, "tensor %s (lora_A of %s) has no matching lora_B", s->a.name,
                      mod);
    if (!s->has_a)
        return lp_err(err, LP_EFORMAT, "tensor %s (lora_B of %s) has no matching lora_A", s->b.name,
                      mod);
    const struct lp_tensor *w = base_weight(b->base, layer, proj);
    int64_t in = w->ne[0], out = w->ne[1];
    const struct lp_tensor *ts[2] = {&s->a, &s->b};
    for (int k = 0; k < 2; k++) {
        const struct lp_tensor *t = ts[k];
        if (!type_ok(b, t->type)) {
            const struct lp_type_traits *tt = lp_type_get(t->type);
            return lp_err(err, LP_EUNSUPPORTED,
                          "tensor %s: dtype %s (adapters must be F32/F16/BF16)", t->name,
                          tt ? tt->name : "unknown");
        }
        if (t->n_dims != 2)
            return lp_err(err, LP_EFORMAT, "tensor %s: %d dimensions, a LoRA matrix has 2", t->name,
                          t->n_dims);
    }
    /* Shapes are written rows x cols, as torch prints them. */
    int64_t ra = s->a.ne[1], rb = s->b.ne[0];
    if (s->a.ne[0] != in)
        return lp_err(err, LP_EFORMAT,
                      "tensor %s: shape [%lld, %lld] but %s takes %lld inputs (want [rank, %lld])",
                      s->a.name, (long long)ra, (long long)s->a.ne[0], mod, (long long)in,
                      (long long)in);
    if (s->b.ne[1] != out)
        return lp_err(err, LP_EFORMAT,
                      "tensor %s: shape [%lld, %lld] but %s has %lld outputs (want [%lld, rank])",
                      s->b.name, (long long)s->b.ne[1], (long long)rb, mod, (long long)out,
                      (long long)out);
    if (ra != rb)
        return lp_err(err, LP_EFORMAT, "tensors %s and %s: rank %lld vs %lld", s->a.name, s->b.name,
                      (long long)ra, (long long)rb);
    if (ra < 1 || ra > LP_ADAPTER_MAX_RANK)
        return lp_err(err, LP_ERANGE, "tensor %s: rank %lld outside 1..%d", s->a.name,
                      (long long)ra, LP_ADAPTER_MAX_RANK);
    if (s->rank > 0 && ra != s->rank)
        return lp_err(err, LP_EFORMAT, "tensor %s: rank %lld but %s says r = %d for %s", s->a.name,
                      (long long)ra, b->what, s->rank, mod);
    *rank = (int)ra;
    return LP_OK;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Reorders the rows of b [out, rank] within each of n_head heads. Forward
 * (dir +1) is llama.cpp's convert_hf_to_gguf permute: the HF row (h, s*hd/2 + j)
 * moves to (h, 2j + s), so that ggml's interleaved rope pairs what HF's
 * rotate_half pairs. dir -1 undoes it. */
static int permute_rows(float *b, int64_t out, int rank, int n_head, int dir, float *tmp) {
    if (n_head <= 0 || out % n_head) return -1;
    int64_t hd = out / n_head;
    if (hd % 2) return -1;
    for (int h = 0; h < n_head; h++) {
        float *head = b + (size_t)h * hd * rank;
        for (int64_t j = 0; j < hd / 2; j++)
            for (int s = 0; s < 2; s++) {
                int64_t hf = s * (hd / 2) + j, gg = 2 * j + s;
                int64_t dst = dir > 0 ? gg : hf, src = dir > 0 ? hf : gg;
                memcpy(tmp + dst * rank, head + src * rank, (size_t)rank * sizeof(float));
            }
        memcpy(head, tmp, (size_t)(hd * rank) * sizeof(float));
    }
    return 0;
}

int lp_adapter_build_finish(struct lp_adapter_build *b, struct lp_adapter **out, char *err) {
    *out = NULL;
    size_t n_slot = (size_t)b->n_layer * LP_PROJ_COUNT;
    int *ranks = xcalloc(n_slot, sizeof *ranks);
    size_t total = 0; /* floats */
    int rc = LP_OK, any = 0;
    for (int l = 0; l < b->n_layer && rc == LP_OK; l++)
        for (int p = 0; p < LP_PROJ_COUNT && rc == LP_OK; p++) {
            const struct lp_adapter_stage *s = &b->st[(size_t)l * LP_PROJ_COUNT + p];
            if (!s->has_a && !s->has_b && !s->targeted) continue;
            int r = 0;
            if ((rc = check_pair(b, l, p, s, &r, err))) break;
            const struct lp_tensor *w = base_weight(b->base, l, p);
            size_t n = 0;
            if (lp_mul_size((size_t)r, (size_t)(w->ne[0] + w->ne[1]), &n) ||
                lp_add_size(total, n, &total))
                rc = lp_err(err, LP_ERANGE, "%s: adapter too large", b->what);
            ranks[(size_t)l * LP_PROJ_COUNT + p] = r;
            any = 1;
        }
    if (rc == LP_OK && !any)
        rc = lp_err(err, LP_EFORMAT, "%s: the adapter has no LoRA tensors", b->what);
    size_t bytes = 0;
    if (rc == LP_OK && lp_mul_size(total, sizeof(float), &bytes))
        rc = lp_err(err, LP_ERANGE, "%s: adapter too large", b->what);
    if (rc) {
        free(ranks);
        return rc;
    }

    struct lp_adapter *ad = xcalloc(1, sizeof *ad);
    ad->n_layer = b->n_layer;
    ad->t = xcalloc(n_slot, sizeof *ad->t);
    ad->data = malloc(bytes);
    ad->bytes = bytes;
    float *tmp = NULL;
    if (!ad->data) {
        rc = lp_err(err, LP_ENOMEM, "%s: out of memory for %zu bytes of adapter weights", b->what,
                    bytes);
        goto fail;
    }
    float *cur = ad->data;
    for (int l = 0; l < b->n_layer; l++)
        for (int p = 0; p < LP_PROJ_COUNT; p++) {
            size_t i = (size_t)l * LP_PROJ_COUNT + p;
            int r = ranks[i];
            if (!r) continue;
            const struct lp_adapter_stage *s = &b->st[i];
            const struct lp_tensor *w = base_weight(b->base, l, p);
            int64_t in = w->ne[0], o = w->ne[1];
            float *a = cur, *bm = cur + (size_t)r * in;
            cur = bm + (size_t)o * r;
            lp_dequant_row(s->a.type, s->a.data, a, (int64_t)r * in);
            lp_dequant_row(s->b.type, s->b.data, bm, o * r);
            if (!all_finite(a, (size_t)r * in) || !all_finite(bm, (size_t)o * r)) {
                rc = lp_err(err, LP_EFORMAT, "tensor %s or %s: a value is NaN or infinite",
                            s->a.name, s->b.name);
                goto fail;
            }
            if (b->qk_permute && (p == LP_PROJ_Q || p == LP_PROJ_K)) {
                int nh = p == LP_PROJ_Q ? b->base->cfg.n_head : b->base->cfg.n_head_kv;
                float *t = realloc(tmp, (size_t)o * r * sizeof(float));
                if (!t) {
                    rc = lp_err(err, LP_ENOMEM, "%s: out of memory", b->what);
                    goto fail;
                }
                tmp = t;
                if (permute_rows(bm, o, r, nh, b->qk_permute, tmp)) {
                    rc = lp_err(err, LP_EFORMAT, "tensor %s: %lld rows do not split into %d heads",
                                s->b.name, (long long)o, nh);
                    goto fail;
                }
            }
            struct lp_lora_target *t = &ad->t[i];
            t->rank = r;
            t->a = a;
            t->b = bm;
            if (s->alpha_is_scale)
                t->scale = s->alpha;
            else
                t->scale = s->rslora ? (float)((double)s->alpha / sqrt((double)r))
                                     : (float)((double)s->alpha / (double)r);
            if (!isfinite(t->scale)) {
                rc = lp_err(err, LP_ERANGE, "tensor %s: scale alpha / r is not a finite float",
                            s->a.name);
                goto fail;
            }
            if (r > ad->max_rank) ad->max_rank = r;
        }
    free(tmp);
    free(ranks);
    *out = ad;
    return LP_OK;
fail:
    free(tmp);
    free(ranks);
    lp_adapter_destroy(ad);
    return rc;
}

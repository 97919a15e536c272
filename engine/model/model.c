/* model.c: builds a struct lp_model from a GGUF file or a Hugging Face
 * directory. Matrices stay where they are (mmapped, possibly quantized);
 * small vectors (norms, biases) are widened to owned f32 copies. Every
 * tensor is checked for presence, rank, type and shape before use. */
#include "model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lp_common.h"
#include "../tokenizer/tokenizer.h"
#include "gguf.h"
#include "safetensors.h"

/* Private state: the open files and the f32 copies we own. */
struct model_impl {
    struct gguf_ctx *gguf;
    struct st_ctx *st;
    float **owned; /* f32 vector copies */
    int n_owned;
    int cap_owned;
};

/* How tensors are found: by a name built from a layer index. */
struct name_map {
    const char *embd, *norm, *output;
    const char *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *bo;
    const char *ffn_norm, *w_gate, *w_up, *w_down;
};

static const struct name_map gguf_names = {
    "token_embd.weight",       "output_norm.weight",        "output.weight",
    "blk.%d.attn_norm.weight", "blk.%d.attn_q.weight",      "blk.%d.attn_k.weight",
    "blk.%d.attn_v.weight",    "blk.%d.attn_output.weight", "blk.%d.attn_q.bias",
    "blk.%d.attn_k.bias",      "blk.%d.attn_v.bias",        "blk.%d.attn_output.bias",
    "blk.%d.ffn_norm.weight",  "blk.%d.ffn_gate.weight",    "blk.%d.ffn_up.weight",
    "blk.%d.ffn_down.weight",
};

static const struct name_map hf_names = {
    "model.embed_tokens.weight",
    "model.norm.weight",
    "lm_head.weight",
    "model.layers.%d.input_layernorm.weight",
    "model.layers.%d.self_attn.q_proj.weight",
    "model.layers.%d.self_attn.k_proj.weight",
    "model.layers.%d.self_attn.v_proj.weight",
    "model.layers.%d.self_attn.o_proj.weight",
    "model.layers.%d.self_attn.q_proj.bias",
    "model.layers.%d.self_attn.k_proj.bias",
    "model.layers.%d.self_attn.v_proj.bias",
    "model.layers.%d.self_attn.o_proj.bias",
    "model.layers.%d.post_attention_layernorm.weight",
    "model.layers.%d.mlp.gate_proj.weight",
    "model.layers.%d.mlp.up_proj.weight",
    "model.layers.%d.mlp.down_proj.weight",
};

/* Finds a tensor by name in whichever file the model came from. */
static int find_tensor(const struct lp_model *m, const char *name, struct lp_tensor *t) {
    struct model_impl *im = m->impl;
    memset(t, 0, sizeof *t);
    if (im->gguf) {
        int64_t i = gguf_tensor_find(im->gguf, name);
        if (i < 0) return LP_ENOTFOUND;
        gguf_tensor_get(im->gguf, i, t);
        return LP_OK;
    }
    int64_t i = st_tensor_find(im->st, name);
    if (i < 0) return LP_ENOTFOUND;
    st_tensor_get(im->st, i, t);
    return LP_OK;
}

/* A matrix of `rows` x `cols` (ne[0] = cols). */
static int get_matrix(struct lp_model *m, const char *fmt, int layer, int64_t rows, int64_t cols,
                      int optional, struct lp_tensor *t, char *err) {
    char name[160];
    snprintf(name, sizeof name, fmt, layer);
    if (find_tensor(m, name, t) != LP_OK) {
        if (optional) return LP_OK;
        return lp_err(err, LP_EFORMAT, "%s: missing tensor %s", m->path, name);
    }
    if (!lp_type_get(t->type))
        return lp_err(err, LP_EUNSUPPORTED, "tensor %s: unsupported type %d", name, t->type);
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows)
        return lp_err(err, LP_EFORMAT,
                      "tensor %s: shape [%lld, %lld] (ne order), expected [%lld, %lld]", name,
                      (long long)t->ne[0], (long long)t->ne[1], (long long)cols, (long long)rows);
    return LP_OK;
}

/* A vector of n values, widened to an owned f32 copy. */
static int get_vector(struct lp_model *m, const char *fmt, int layer, int64_t n, int optional,
                      struct lp_tensor *t, char *err) {
    char name[160];
    snprintf(name, sizeof name, fmt, layer);
    struct lp_tensor src;
    if (find_tensor(m, name, &src) != LP_OK) {
        memset(t, 0, sizeof *t);
        if (optional) return LP_OK;
        return lp_err(err, LP_EFORMAT, "%s: missing tensor %s", m->path, name);
    }
    if (lp_tensor_nelements(&src) != n || (src.n_dims != 1 && !(src.n_dims == 2 && src.ne[1] == 1)))
        return lp_err(err, LP_EFORMAT, "tensor %s: expected a vector of %lld values", name,
                      (long long)n);
    if (src.type != LP_TYPE_F32 && src.type != LP_TYPE_F16 && src.type != LP_TYPE_BF16)
        return lp_err(err, LP_EUNSUPPORTED, "tensor %s: vectors must be F32, F16 or BF16", name);
    struct model_impl *im = m->impl;
    float *copy = malloc((size_t)n * sizeof(float));
    if (!copy) return lp_err(err, LP_ENOMEM, "out of memory copying %s", name);
    lp_dequant_row(src.type, src.data, copy, n);
    if (im->n_owned == im->cap_owned) {
        im->cap_owned = im->cap_owned ? im->cap_owned * 2 : 64;
        im->owned = xrealloc(im->owned, (size_t)im->cap_owned * sizeof *im->owned);
    }
    im->owned[im->n_owned++] = copy;
    *t = src;
    t->type = LP_TYPE_F32;
    t->n_dims = 1;
    t->ne[0] = n;
    t->ne[1] = t->ne[2] = t->ne[3] = 1;
    t->data = copy;
    t->nbytes = (size_t)n * sizeof(float);
    return LP_OK;
}

static int load_weights(struct lp_model *m, const struct name_map *nm, char *err) {
    const struct lp_model_config *c = &m->cfg;
    int64_t q_dim = (int64_t)c->n_head * c->head_dim, kv_dim = (int64_t)c->n_head_kv * c->head_dim;
    int rc;
    if ((rc = get_matrix(m, nm->embd, 0, c->n_vocab, c->n_embd, 0, &m->tok_embd, err))) return rc;
    if ((rc = get_vector(m, nm->norm, 0, c->n_embd, 0, &m->output_norm, err))) return rc;
    if ((rc = get_matrix(m, nm->output, 0, c->n_vocab, c->n_embd, 1, &m->output, err))) return rc;
    if (!m->output.data) {
        if (!c->tied_embeddings)
            return lp_err(err, LP_EFORMAT, "%s: missing output weights and embeddings are not tied",
                          m->path);
        m->output = m->tok_embd;
    } else {
        m->cfg.tied_embeddings = 0;
    }
    m->layers = xcalloc((size_t)c->n_layer, sizeof *m->layers);
    int need_bias = c->arch == LP_ARCH_QWEN2;
    for (int l = 0; l < c->n_layer; l++) {
        struct lp_layer_weights *L = &m->layers[l];
        if ((rc = get_vector(m, nm->attn_norm, l, c->n_embd, 0, &L->attn_norm, err)) ||
            (rc = get_matrix(m, nm->wq, l, q_dim, c->n_embd, 0, &L->wq, err)) ||
            (rc = get_matrix(m, nm->wk, l, kv_dim, c->n_embd, 0, &L->wk, err)) ||
            (rc = get_matrix(m, nm->wv, l, kv_dim, c->n_embd, 0, &L->wv, err)) ||
            (rc = get_matrix(m, nm->wo, l, c->n_embd, q_dim, 0, &L->wo, err)) ||
            (rc = get_vector(m, nm->bq, l, q_dim, !need_bias, &L->bq, err)) ||
            (rc = get_vector(m, nm->bk, l, kv_dim, !need_bias, &L->bk, err)) ||
            (rc = get_vector(m, nm->bv, l, kv_dim, !need_bias, &L->bv, err)) ||
            (rc = get_vector(m, nm->bo, l, c->n_embd, 1, &L->bo, err)) ||
            (rc = get_vector(m, nm->ffn_norm, l, c->n_embd, 0, &L->ffn_norm, err)) ||
            (rc = get_matrix(m, nm->w_gate, l, c->n_ff, c->n_embd, 0, &L->w_gate, err)) ||
            (rc = get_matrix(m, nm->w_up, l, c->n_ff, c->n_embd, 0, &L->w_up, err)) ||
            (rc = get_matrix(m, nm->w_down, l, c->n_embd, c->n_ff, 0, &L->w_down, err)))
            return rc;
    }
    return LP_OK;
}

/* Standard rotary inverse frequencies, computed in f32 as PyTorch does. */
static void rope_inv_freq(struct lp_model *m) {
    int half = m->cfg.rot_dim / 2;
    m->inv_freq = xmalloc((size_t)half * sizeof(float));
    for (int i = 0; i < half; i++) {
        float expo = (float)(2 * i) / (float)m->cfg.rot_dim;
        m->inv_freq[i] = 1.0f / powf(m->cfg.rope_theta, expo);
    }
}

/* Llama 3 frequency scaling (transformers' _compute_llama3_parameters). */
static void rope_llama3_scale(float *inv_freq, int half, float factor, float low_ff, float high_ff,
                              float old_ctx) {
    const float pi = 3.14159265358979323846f;
    float low_wavelen = old_ctx / low_ff;
    float high_wavelen = old_ctx / high_ff;
    for (int i = 0; i < half; i++) {
        float wavelen = 2.0f * pi / inv_freq[i];
        float f = inv_freq[i];
        float scaled = wavelen > low_wavelen ? f / factor : f;
        float smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff);
        float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
        int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
        inv_freq[i] = medium ? smoothed : scaled;
    }
}

static int check_config(const struct lp_model *m, char *err) {
    const struct lp_model_config *c = &m->cfg;
    if (c->n_layer <= 0 || c->n_layer > 1024 || c->n_embd <= 0 || c->n_embd > 65536 ||
        c->n_head <= 0 || c->n_head > 1024 || c->n_head_kv <= 0 || c->n_head_kv > c->n_head ||
        c->n_head % c->n_head_kv != 0 || c->head_dim <= 0 || c->head_dim > 1024 ||
        c->head_dim % 2 != 0 || c->n_ff <= 0 || c->n_ff > 1 << 20 || c->n_vocab <= 0 ||
        c->n_vocab > 1 << 22 || c->rot_dim <= 0 || c->rot_dim > c->head_dim ||
        c->rot_dim % 2 != 0 || !(c->rope_theta > 0) || !(c->rms_eps > 0))
        return lp_err(err, LP_EFORMAT,
                      "%s: implausible hyper-parameters (layers %d, embd %d, heads %d/%d, "
                      "head_dim %d, ff %d, vocab %d)",
                      m->path, c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->head_dim, c->n_ff,
                      c->n_vocab);
    return LP_OK;
}

/* ---- GGUF ------------------------------------------------------------------ */

static int gguf_u32(struct gguf_ctx *g, const char *arch, const char *key, int *v, int optional,
                    char *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t x;
    int rc = gguf_get_u32(g, full, &x);
    if (rc == LP_ENOTFOUND && optional) return LP_OK;
    if (rc != LP_OK) return lp_err(err, LP_EFORMAT, "GGUF key %s missing or not an integer", full);
    if (x > (1u << 30)) return lp_err(err, LP_EFORMAT, "GGUF key %s = %u is too large", full, x);
    *v = (int)x;
    return LP_OK;
}

static int gguf_f32(struct gguf_ctx *g, const char *arch, const char *key, float *v, int optional,
                    char *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int rc = gguf_get_f32(g, full, v);
    if (rc == LP_ENOTFOUND && optional) return LP_OK;
    if (rc != LP_OK) return lp_err(err, LP_EFORMAT, "GGUF key %s missing or not a float", full);
    return LP_OK;
}

static int load_gguf(struct lp_model *m, char *err) {
    struct model_impl *im = m->impl;
    int rc = gguf_open(m->path, &im->gguf, err);
    if (rc) return rc;
    struct gguf_ctx *g = im->gguf;
    struct gguf_str s;
    if (gguf_get_str(g, "general.type", &s) == LP_OK && !(s.len == 5 && !memcmp(s.ptr, "model", 5)))
        return lp_err(err, LP_EFORMAT, "%s: general.type is '%.*s', not a model", m->path,
                      (int)(s.len > 32 ? 32 : s.len), s.ptr);
    if (gguf_get_str(g, "general.architecture", &s) != LP_OK)
        return lp_err(err, LP_EFORMAT, "%s: no general.architecture", m->path);
    char arch[32];
    if (s.len >= sizeof arch) return lp_err(err, LP_EUNSUPPORTED, "architecture name too long");
    memcpy(arch, s.ptr, s.len);
    arch[s.len] = 0;
    struct lp_model_config *c = &m->cfg;
    if (!strcmp(arch, "llama")) {
        c->arch = LP_ARCH_LLAMA;
        c->rope_interleaved = 1; /* the converter permuted q/k for llama.cpp's rope */
    } else if (!strcmp(arch, "qwen2")) {
        c->arch = LP_ARCH_QWEN2;
        c->rope_interleaved = 0;
    } else {
        return lp_err(err, LP_EUNSUPPORTED, "%s: architecture '%s' is not supported (llama, qwen2)",
                      m->path, arch);
    }
    c->n_ctx_train = 4096;
    c->rms_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    if ((rc = gguf_u32(g, arch, "block_count", &c->n_layer, 0, err)) ||
        (rc = gguf_u32(g, arch, "embedding_length", &c->n_embd, 0, err)) ||
        (rc = gguf_u32(g, arch, "feed_forward_length", &c->n_ff, 0, err)) ||
        (rc = gguf_u32(g, arch, "attention.head_count", &c->n_head, 0, err)) ||
        (rc = gguf_u32(g, arch, "context_length", &c->n_ctx_train, 1, err)) ||
        (rc = gguf_f32(g, arch, "rope.freq_base", &c->rope_theta, 1, err)) ||
        (rc = gguf_f32(g, arch, "attention.layer_norm_rms_epsilon", &c->rms_eps, 0, err)))
        return rc;
    c->n_head_kv = c->n_head;
    if ((rc = gguf_u32(g, arch, "attention.head_count_kv", &c->n_head_kv, 1, err))) return rc;
    c->head_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
    if ((rc = gguf_u32(g, arch, "attention.key_length", &c->head_dim, 1, err))) return rc;
    c->rot_dim = c->head_dim;
    if ((rc = gguf_u32(g, arch, "rope.dimension_count", &c->rot_dim, 1, err))) return rc;
    int64_t ei = gguf_tensor_find(g, "token_embd.weight");
    if (ei < 0) return lp_err(err, LP_EFORMAT, "%s: missing tensor token_embd.weight", m->path);
    struct lp_tensor et;
    gguf_tensor_get(g, ei, &et);
    c->n_vocab = (int)(et.ne[1] > (1 << 22) ? -1 : et.ne[1]);
    c->tied_embeddings = gguf_tensor_find(g, "output.weight") < 0;
    if ((rc = check_config(m, err))) return rc;

    rope_inv_freq(m);
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (gguf_get_str(g, key, &s) == LP_OK) {
        if (s.len == 6 && !memcmp(s.ptr, "linear", 6)) {
            float factor = 1.0f;
            if ((rc = gguf_f32(g, arch, "rope.scaling.factor", &factor, 0, err))) return rc;
            if (!(factor > 0)) return lp_err(err, LP_EFORMAT, "rope scaling factor must be > 0");
            for (int i = 0; i < c->rot_dim / 2; i++)
                m->inv_freq[i] /= factor;
        } else if (!(s.len == 4 && !memcmp(s.ptr, "none", 4))) {
            return lp_err(err, LP_EUNSUPPORTED, "rope scaling type '%.*s' is not supported",
                          (int)(s.len > 32 ? 32 : s.len), s.ptr);
        }
    }
    /* Llama 3 scaling arrives as per-frequency divisors. */
    int64_t fi = gguf_tensor_find(g, "rope_freqs.weight");
    if (fi >= 0) {
        struct lp_tensor ft;
        gguf_tensor_get(g, fi, &ft);
        if (ft.type != LP_TYPE_F32 || lp_tensor_nelements(&ft) != c->rot_dim / 2)
            return lp_err(err, LP_EFORMAT, "rope_freqs.weight: expected %d f32 values",
                          c->rot_dim / 2);
        for (int i = 0; i < c->rot_dim / 2; i++) {
            float d;
            memcpy(&d, (const char *)ft.data + 4 * i, 4);
            if (!(d > 0)) return lp_err(err, LP_EFORMAT, "rope_freqs.weight: non-positive value");
            m->inv_freq[i] /= d;
        }
    }
    if (gguf_get_str(g, "tokenizer.chat_template", &s) == LP_OK)
        m->chat_template = xstrndup(s.ptr, (size_t)s.len);
    if ((rc = load_weights(m, &gguf_names, err))) return rc;
    if ((rc = lp_tokenizer_from_gguf(g, &m->tok, err))) return rc;
    return LP_OK;
}

/* ---- Hugging Face directory --------------------------------------------------- */

/* Reads a whole small file (config, tokenizer) into a NUL-terminated buffer. */
static int read_text(const char *path, size_t max, char **out, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lp_err(err, LP_ENOTFOUND, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (uint64_t)st.st_size > max) {
        fclose(f);
        return lp_err(err, LP_EFORMAT, "%s: larger than %zu bytes", path, max);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return lp_err(err, LP_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        free(buf);
        return lp_err(err, LP_EIO, "%s: short read", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return LP_OK;
}

static int json_int(const cJSON *o, const char *key, int *v, int optional, char *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x || cJSON_IsNull(x)) {
        if (optional) return LP_OK;
        return lp_err(err, LP_EFORMAT, "config.json: missing \"%s\"", key);
    }
    if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 0 ||
        x->valuedouble > (double)(1 << 30))
        return lp_err(err, LP_EFORMAT, "config.json: \"%s\" must be a non-negative integer", key);
    *v = (int)x->valuedouble;
    return LP_OK;
}

static int json_float(const cJSON *o, const char *key, float *v, int optional, char *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x || cJSON_IsNull(x)) {
        if (optional) return LP_OK;
        return lp_err(err, LP_EFORMAT, "config.json: missing \"%s\"", key);
    }
    if (!cJSON_IsNumber(x))
        return lp_err(err, LP_EFORMAT, "config.json: \"%s\" must be a number", key);
    *v = (float)x->valuedouble;
    return LP_OK;
}

static int parse_hf_config(struct lp_model *m, const cJSON *cfg, char *err) {
    struct lp_model_config *c = &m->cfg;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (!cJSON_IsString(mt)) return lp_err(err, LP_EFORMAT, "config.json: missing \"model_type\"");
    if (!strcmp(mt->valuestring, "llama") || !strcmp(mt->valuestring, "mistral"))
        c->arch = LP_ARCH_LLAMA;
    else if (!strcmp(mt->valuestring, "qwen2"))
        c->arch = LP_ARCH_QWEN2;
    else
        return lp_err(err, LP_EUNSUPPORTED,
                      "config.json: model_type '%.40s' is not supported (llama, mistral, qwen2)",
                      mt->valuestring);
    c->rope_interleaved = 0;
    c->rope_theta = 10000.0f;
    c->rms_eps = 1e-6f;
    c->n_ctx_train = 4096;
    int rc;
    if ((rc = json_int(cfg, "hidden_size", &c->n_embd, 0, err)) ||
        (rc = json_int(cfg, "num_hidden_layers", &c->n_layer, 0, err)) ||
        (rc = json_int(cfg, "num_attention_heads", &c->n_head, 0, err)) ||
        (rc = json_int(cfg, "intermediate_size", &c->n_ff, 0, err)) ||
        (rc = json_int(cfg, "vocab_size", &c->n_vocab, 0, err)) ||
        (rc = json_int(cfg, "max_position_embeddings", &c->n_ctx_train, 1, err)) ||
        (rc = json_float(cfg, "rms_norm_eps", &c->rms_eps, 1, err)) ||
        (rc = json_float(cfg, "rope_theta", &c->rope_theta, 1, err)))
        return rc;
    c->n_head_kv = c->n_head;
    if ((rc = json_int(cfg, "num_key_value_heads", &c->n_head_kv, 1, err))) return rc;
    c->head_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
    if ((rc = json_int(cfg, "head_dim", &c->head_dim, 1, err))) return rc;
    c->rot_dim = c->head_dim;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    c->tied_embeddings = tie ? cJSON_IsTrue(tie) : 0;
    const cJSON *mlp_bias = cJSON_GetObjectItemCaseSensitive(cfg, "mlp_bias");
    if (cJSON_IsTrue(mlp_bias))
        return lp_err(err, LP_EUNSUPPORTED, "config.json: \"mlp_bias\": true is not supported");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
        return lp_err(err, LP_EUNSUPPORTED, "config.json: \"hidden_act\" must be \"silu\"");
    if ((rc = check_config(m, err))) return rc;
    rope_inv_freq(m);
    /* transformers >= 5 writes rope_theta and the scaling into one
     * "rope_parameters" object; older configs use rope_theta + rope_scaling. */
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        if (!cJSON_IsObject(rp))
            return lp_err(err, LP_EFORMAT, "config.json: \"rope_parameters\" must be an object");
        if (!cJSON_GetObjectItemCaseSensitive(cfg, "rope_theta")) {
            if ((rc = json_float(rp, "rope_theta", &c->rope_theta, 1, err))) return rc;
            if (!(c->rope_theta > 0))
                return lp_err(err, LP_EFORMAT, "config.json: rope_theta must be > 0");
            free(m->inv_freq);
            rope_inv_freq(m);
        }
        if (!rs || cJSON_IsNull(rs)) rs = rp;
    }
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs))
            return lp_err(err, LP_EFORMAT, "config.json: bad \"rope_scaling\"");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!ty) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (!cJSON_IsString(ty))
            return lp_err(err, LP_EFORMAT, "config.json: rope_scaling without \"rope_type\"");
        float factor = 1.0f;
        int is_default = !strcmp(ty->valuestring, "default");
        if (!is_default && (rc = json_float(rs, "factor", &factor, 0, err))) return rc;
        if (!(factor > 0)) return lp_err(err, LP_EFORMAT, "config.json: rope_scaling.factor <= 0");
        if (!strcmp(ty->valuestring, "llama3")) {
            float lo = 1.0f, hi = 4.0f;
            int old = 8192;
            if ((rc = json_float(rs, "low_freq_factor", &lo, 0, err)) ||
                (rc = json_float(rs, "high_freq_factor", &hi, 0, err)) ||
                (rc = json_int(rs, "original_max_position_embeddings", &old, 0, err)))
                return rc;
            if (!(hi > lo)) return lp_err(err, LP_EFORMAT, "config.json: high_freq_factor <= low");
            rope_llama3_scale(m->inv_freq, c->rot_dim / 2, factor, lo, hi, (float)old);
        } else if (!strcmp(ty->valuestring, "linear")) {
            for (int i = 0; i < c->rot_dim / 2; i++)
                m->inv_freq[i] /= factor;
        } else if (strcmp(ty->valuestring, "default")) {
            return lp_err(err, LP_EUNSUPPORTED,
                          "config.json: rope_scaling type '%.40s' is not supported",
                          ty->valuestring);
        }
    }
    return LP_OK;
}

static int load_hf_dir(struct lp_model *m, char *err) {
    struct model_impl *im = m->impl;
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/config.json", m->path);
    int rc = read_text(path, 1 << 20, &text, &len, err);
    if (rc) return rc;
    cJSON *cfg = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return lp_err(err, LP_EFORMAT, "%s: not a JSON object", path);
    }
    rc = parse_hf_config(m, cfg, err);
    cJSON_Delete(cfg);
    if (rc) return rc;
    if ((rc = st_open(m->path, &im->st, err))) return rc;
    if ((rc = load_weights(m, &hf_names, err))) return rc;

    /* Tokenizer and chat template. */
    snprintf(path, sizeof path, "%s/tokenizer.json", m->path);
    char *tj = NULL, *tc = NULL;
    size_t tj_len = 0, tc_len = 0;
    if ((rc = read_text(path, 256u << 20, &tj, &tj_len, err))) return rc;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", m->path);
    char ignore[LP_ERR_LEN];
    if (read_text(path, 64u << 20, &tc, &tc_len, ignore) != LP_OK) tc = NULL;
    rc = lp_tokenizer_from_hf_json(tj, tj_len, tc, tc_len, &m->tok, err);
    free(tj);
    if (tc) {
        cJSON *o = cJSON_ParseWithLength(tc, tc_len);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "chat_template");
        if (cJSON_IsString(t)) m->chat_template = xstrdup(t->valuestring);
        cJSON_Delete(o);
        free(tc);
    }
    if (rc) return rc;
    if (!m->chat_template) {
        snprintf(path, sizeof path, "%s/chat_template.jinja", m->path);
        char *jt = NULL;
        if (read_text(path, 1 << 20, &jt, NULL, ignore) == LP_OK) m->chat_template = jt;
    }
    return LP_OK;
}

int lp_model_load(const char *path, struct lp_model **out, char *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return lp_err(err, LP_ENOTFOUND, "%s: %s", path, strerror(errno));
    struct lp_model *m = xcalloc(1, sizeof *m);
    m->impl = xcalloc(1, sizeof(struct model_impl));
    m->path = xstrdup(path);
    int rc;
    if (S_ISDIR(st.st_mode)) {
        m->source = "safetensors";
        rc = load_hf_dir(m, err);
    } else {
        m->source = "gguf";
        rc = load_gguf(m, err);
    }
    if (rc == LP_OK && lp_tokenizer_n_vocab(m->tok) > m->cfg.n_vocab)
        rc = lp_err(err, LP_EFORMAT, "%s: tokenizer has %lld tokens but the model only %d", path,
                    (long long)lp_tokenizer_n_vocab(m->tok), m->cfg.n_vocab);
    if (rc != LP_OK) {
        lp_model_destroy(m);
        return rc;
    }
    *out = m;
    return LP_OK;
}

void lp_model_destroy(struct lp_model *m) {
    if (!m) return;
    struct model_impl *im = m->impl;
    if (im) {
        for (int i = 0; i < im->n_owned; i++)
            free(im->owned[i]);
        free(im->owned);
        gguf_close(im->gguf);
        st_close(im->st);
        free(im);
    }
    lp_tokenizer_destroy(m->tok);
    free(m->layers);
    free(m->inv_freq);
    free(m->chat_template);
    free(m->path);
    free(m);
}

uint64_t lp_model_weight_bytes(const struct lp_model *m) {
    uint64_t n = m->tok_embd.nbytes + m->output_norm.nbytes;
    if (m->output.data != m->tok_embd.data) n += m->output.nbytes;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const struct lp_layer_weights *L = &m->layers[l];
        n += L->attn_norm.nbytes + L->wq.nbytes + L->wk.nbytes + L->wv.nbytes + L->wo.nbytes +
             L->bq.nbytes + L->bk.nbytes + L->bv.nbytes + L->bo.nbytes + L->ffn_norm.nbytes +
             L->w_gate.nbytes + L->w_up.nbytes + L->w_down.nbytes;
    }
    return n;
}

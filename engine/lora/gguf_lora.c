/* gguf_lora.c: reads a LoRA adapter as llama.cpp's convert_lora_to_gguf.py
 * writes it: general.type "adapter", adapter.type "lora", adapter.lora.alpha,
 * and per base weight "blk.N.attn_q.weight.lora_a" ([in, rank] in GGUF ne
 * order, i.e. PEFT's A [rank, in]) and ".lora_b" (PEFT's B [out, rank]). For
 * llama the converter permuted B's q/k rows as it permutes the base's q/k. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lp_common.h"
#include "../model/gguf.h"
#include "../model/model.h"
#include "adapter_build.h"

static const char *const gguf_names[LP_PROJ_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

static int str_is(struct gguf_str s, const char *want) {
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static int clip(struct gguf_str s) { return (int)(s.len > 40 ? 40 : s.len); }

/* "blk.N.<kind>.weight.lora_a|b" -> layer, proj, which (0 a, 1 b); -1 if not. */
static int parse_name(const char *name, int *layer, int *proj, int *which) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    const char *p = name + 4;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '.')) return -1;
    long l = 0;
    while (*p >= '0' && *p <= '9' && l < 100000000)
        l = l * 10 + (*p++ - '0');
    if (*p++ != '.') return -1;
    for (int k = 0; k < LP_PROJ_COUNT; k++) {
        size_t n = strlen(gguf_names[k]);
        if (strncmp(p, gguf_names[k], n) != 0) continue;
        const char *rest = p + n;
        if (!strcmp(rest, ".weight.lora_a") || !strcmp(rest, ".weight.lora_b")) {
            *layer = (int)l;
            *proj = k;
            *which = rest[strlen(rest) - 1] == 'b';
            return 0;
        }
    }
    return -1;
}

static int gguf_lora_read(struct gguf_ctx *g, const char *what, const struct lp_model *base,
                          struct lp_adapter **out, char *err) {
    struct gguf_str s;
    if (gguf_get_str(g, "general.type", &s) != LP_OK || !str_is(s, "adapter"))
        return lp_err(err, LP_EFORMAT, "%s: general.type is not 'adapter'", what);
    if (gguf_get_str(g, "adapter.type", &s) != LP_OK || !str_is(s, "lora"))
        return lp_err(err, LP_EUNSUPPORTED, "%s: adapter.type is not 'lora'", what);
    if (gguf_get_str(g, "general.architecture", &s) != LP_OK)
        return lp_err(err, LP_EFORMAT, "%s: no general.architecture", what);
    const char *want = base->cfg.arch == LP_ARCH_QWEN2 ? "qwen2" : "llama";
    if (!str_is(s, want))
        return lp_err(err, LP_EFORMAT, "%s: general.architecture '%.*s' but the base is %s", what,
                      clip(s), s.ptr, want);
    if (gguf_kv_find(g, "adapter.alora.invocation_tokens") >= 0)
        return lp_err(err, LP_EUNSUPPORTED,
                      "%s: adapter.alora.invocation_tokens (activated LoRA) is not supported",
                      what);
    float alpha = 0;
    int rc = gguf_get_f32(g, "adapter.lora.alpha", &alpha);
    if (rc == LP_EFORMAT)
        return lp_err(err, LP_EFORMAT, "%s: adapter.lora.alpha is not a float", what);
    if (alpha != alpha || alpha > 1e30f || alpha < -1e30f)
        return lp_err(err, LP_EFORMAT, "%s: adapter.lora.alpha is not finite", what);

    struct lp_adapter_build b;
    lp_adapter_build_init(&b, base);
    b.what = what;
    b.allow_q8_0 = 1;
    /* Only llama's converter permutes q/k; a HF-layout base needs them undone. */
    int adapter_interleaved = base->cfg.arch == LP_ARCH_LLAMA;
    b.qk_permute = base->cfg.rope_interleaved - adapter_interleaved;
    rc = LP_OK;
    for (int64_t i = 0; rc == LP_OK && i < gguf_tensor_count(g); i++) {
        struct lp_tensor t;
        gguf_tensor_get(g, i, &t);
        int layer, proj, which;
        if (parse_name(t.name, &layer, &proj, &which) != 0) {
            if (!strncmp(t.name, "token_embd.", 11) || !strncmp(t.name, "output.", 7))
                rc = lp_err(err, LP_EUNSUPPORTED,
                            "tensor %s: LoRA on the embeddings or output is not supported", t.name);
            else if (strstr(t.name, "_norm."))
                rc = lp_err(err, LP_EUNSUPPORTED,
                            "tensor %s: adapters that replace norm weights are not supported",
                            t.name);
            else
                rc = lp_err(err, LP_EFORMAT, "tensor %s: not a LoRA tensor of a known projection",
                            t.name);
            break;
        }
        if (layer >= b.n_layer) {
            rc = lp_err(err, LP_EFORMAT, "tensor %s: layer %d but the base model has %d layers",
                        t.name, layer, b.n_layer);
            break;
        }
        struct lp_adapter_stage *st = lp_adapter_build_slot(&b, layer, proj);
        /* llama.cpp: scale = alpha / rank, or 1 when alpha is 0 or absent */
        st->alpha = alpha != 0 ? alpha : 1.0f;
        st->alpha_is_scale = alpha == 0;
        if (which) {
            st->b = t;
            st->has_b = 1;
        } else {
            st->a = t;
            st->has_a = 1;
        }
    }
    if (rc == LP_OK) rc = lp_adapter_build_finish(&b, out, err);
    lp_adapter_build_clear(&b);
    return rc;
}

int lp_gguf_lora_load(const char *path, const struct lp_model *base, struct lp_adapter **out,
                      char *err) {
    *out = NULL;
    struct gguf_ctx *g = NULL;
    int rc = gguf_open(path, &g, err);
    if (rc) return rc;
    rc = gguf_lora_read(g, path, base, out, err);
    gguf_close(g);
    return rc;
}

int lp_gguf_lora_load_memory(const void *data, size_t size, const struct lp_model *base,
                             struct lp_adapter **out, char *err) {
    *out = NULL;
    struct gguf_ctx *g = NULL;
    int rc = gguf_open_memory(data, size, &g, err);
    if (rc) return rc;
    rc = gguf_lora_read(g, "GGUF LoRA", base, out, err);
    gguf_close(g);
    return rc;
}

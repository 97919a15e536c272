/* tok_gguf.c: builds a tokenizer from GGUF `tokenizer.ggml.*` metadata:
 * "gpt2" (byte-level BPE with ranked merges and the split regexes that
 * `tokenizer.ggml.pre` names) and "llama" (SentencePiece: score merges, the
 * ▁ space marker, add_space_prefix, <0xAB> byte fallback), with the token
 * types, special ids and BOS/EOS rules llama.cpp reads from the same keys. */
#include <stdlib.h>
#include <string.h>

#include "lp_common.h"
#include "model/gguf.h"
#include "tok_internal.h"

#define K(s) "tokenizer.ggml." s

static int32_t get_id(const struct gguf_ctx *g, const char *key, int32_t n_vocab) {
    int64_t v;
    if (gguf_get_i64(g, key, &v) != LP_OK || v < 0 || v >= n_vocab) return -1;
    return (int32_t)v;
}

static int get_flag(const struct gguf_ctx *g, const char *key, int dflt) {
    int v;
    return gguf_get_bool(g, key, &v) == LP_OK ? (v != 0) : dflt;
}

/* Element i of an int32/uint32 array (types), as an int. */
static int arr_i32(const void *data, uint64_t i) {
    int32_t v;
    memcpy(&v, (const char *)data + 4 * i, 4);
    return v;
}

int lp_tokenizer_from_gguf(const struct gguf_ctx *g, struct lp_tokenizer **out, char *err) {
    if (!g || !out) return lp_err(err, LP_EINVAL, "bad arguments");
    *out = NULL;
    struct gguf_str model, pre = {NULL, 0};
    if (gguf_get_str(g, K("model"), &model) != LP_OK)
        return lp_err(err, LP_EFORMAT, "GGUF has no tokenizer.ggml.model");
    int is_gpt2 = model.len == 4 && !memcmp(model.ptr, "gpt2", 4);
    int is_llama = model.len == 5 && !memcmp(model.ptr, "llama", 5);
    if (!is_gpt2 && !is_llama)
        return lp_err(err, LP_EUNSUPPORTED,
                      "GGUF tokenizer model \"%.*s\" is not supported (gpt2, llama)",
                      (int)(model.len > 40 ? 40 : model.len), model.ptr);

    int et;
    uint64_t n;
    if (gguf_get_arr(g, K("tokens"), &et, &n) != LP_OK || et != GGUF_TYPE_STRING || n == 0 ||
        n > (1u << 24))
        return lp_err(err, LP_EFORMAT, "GGUF tokenizer.ggml.tokens is missing or not strings");
    const void *types = NULL, *scores = NULL;
    uint64_t nt;
    if (gguf_get_arr(g, K("token_type"), &et, &nt) == LP_OK) {
        if ((et != GGUF_TYPE_INT32 && et != GGUF_TYPE_UINT32) || nt != n)
            return lp_err(err, LP_EFORMAT, "GGUF token_type: wrong type or count");
        types = gguf_arr_data(g, K("token_type"));
    }
    if (gguf_get_arr(g, K("scores"), &et, &nt) == LP_OK) {
        if (et != GGUF_TYPE_FLOAT32 || nt != n)
            return lp_err(err, LP_EFORMAT, "GGUF scores: wrong type or count");
        scores = gguf_arr_data(g, K("scores"));
    }

    struct lp_tokenizer *t = tok_alloc((int32_t)n);
    int rc = LP_OK;
    for (uint64_t i = 0; i < n; i++) {
        struct gguf_str s = gguf_arr_str(g, K("tokens"), i);
        int ty = types ? arr_i32(types, i) : TOK_NORMAL;
        if (ty < TOK_NORMAL || ty > TOK_BYTE) ty = TOK_NORMAL;
        int in_model = ty != TOK_CONTROL && ty != TOK_USER;
        if ((rc = tok_set_token(t, (int32_t)i, s.ptr ? s.ptr : "", (size_t)s.len, ty, in_model,
                                err)))
            goto fail;
        if (scores) memcpy(&t->vocab[i].score, (const char *)scores + 4 * i, 4);
    }
    tok_build_map(t);
    for (uint64_t i = 0; i < n; i++) {
        int ty = t->vocab[i].type;
        if (ty == TOK_CONTROL || ty == TOK_UNKNOWN || ty == TOK_USER) {
            if ((rc = tok_add_added(t, (int32_t)i, ty != TOK_USER, 0, 0, 0, 0, err))) goto fail;
            /* tok_add_added may retype; GGUF's type is the truth here */
            t->vocab[i].type = (uint8_t)ty;
        }
    }

    t->bos = get_id(g, K("bos_token_id"), t->n_vocab);
    t->eos = get_id(g, K("eos_token_id"), t->n_vocab);
    t->unk_id = get_id(g, K("unknown_token_id"), t->n_vocab);
    int32_t eot = get_id(g, K("eot_token_id"), t->n_vocab);
    int32_t eom = get_id(g, K("eom_token_id"), t->n_vocab);
    int add_bos, add_eos = get_flag(g, K("add_eos_token"), 0);

    if (is_gpt2) {
        if (gguf_get_arr(g, K("merges"), &et, &nt) != LP_OK || et != GGUF_TYPE_STRING) {
            rc = lp_err(err, LP_EFORMAT, "GGUF gpt2 tokenizer without tokenizer.ggml.merges");
            goto fail;
        }
        if ((rc = tok_merges_reserve(t, (size_t)nt))) {
            rc = lp_err(err, rc, "too many merges");
            goto fail;
        }
        for (uint64_t i = 0; i < nt; i++) {
            struct gguf_str m = gguf_arr_str(g, K("merges"), i);
            /* llama.cpp splits at the first space after the first byte */
            const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
            if (!sp) {
                rc = lp_err(err, LP_EFORMAT, "GGUF merge %llu is not \"a b\"",
                            (unsigned long long)i);
                goto fail;
            }
            size_t al = (size_t)(sp - m.ptr), bl = (size_t)m.len - al - 1;
            int32_t a = tok_find_n(t, m.ptr, al), b = tok_find_n(t, sp + 1, bl);
            char cat[2 * TOK_MAX_TEXT];
            int32_t id = -1;
            if (a >= 0 && b >= 0 && al + bl <= sizeof cat) {
                memcpy(cat, m.ptr, al);
                memcpy(cat + al, sp + 1, bl);
                id = tok_find_n(t, cat, al + bl);
            }
            if (id < 0) {
                rc = lp_err(err, LP_EFORMAT, "GGUF merge %llu names tokens not in the vocabulary",
                            (unsigned long long)i);
                goto fail;
            }
            if ((rc = tok_merges_add(t, a, b, id, (int32_t)i, err))) goto fail;
        }
        if (gguf_get_str(g, K("pre"), &pre) != LP_OK) pre.len = 0;
        if ((rc = tok_pre_from_gguf_name(t, pre.ptr, (size_t)pre.len, err))) goto fail;
        int llama3 = t->ignore_merges; /* set by the llama3 pre-tokenizer */
        t->dec.bytelevel = 1;
        add_bos = get_flag(g, K("add_bos_token"), llama3);
        t->unk_id = -1; /* byte-level: every byte has a token */
    } else {
        if (!scores) {
            rc = lp_err(err, LP_EFORMAT, "GGUF llama tokenizer without tokenizer.ggml.scores");
            goto fail;
        }
        t->model = TOK_MODEL_SPM_SCORES;
        t->byte_fallback = 1;
        int space_prefix = get_flag(g, K("add_space_prefix"), 1);
        static const char lower_block[] = "\xe2\x96\x81"; /* U+2581 */
        if (space_prefix &&
            (rc = tok_norm_add(t, TOK_NORM_PREPEND, lower_block, 3, 0, NULL, 0, err)))
            goto fail;
        if ((rc = tok_norm_add(t, TOK_NORM_REPLACE, " ", 1, 0, lower_block, 3, err))) goto fail;
        t->dec.n_replace = 1;
        t->dec.replace[0].from = xstrdup(lower_block);
        t->dec.replace[0].flen = 3;
        t->dec.replace[0].to = xstrdup(" ");
        t->dec.replace[0].tlen = 1;
        t->dec.byte_fallback = 1;
        if (space_prefix) {
            t->dec.strip_start = 1;
            t->dec.strip_global = 1;
            t->dec.strip_char[0] = ' ';
            t->dec.strip_char_len = 1;
        }
        if (t->unk_id < 0) t->unk_id = tok_find_n(t, "<unk>", 5);
        add_bos = get_flag(g, K("add_bos_token"), 1);
    }
    if (add_bos && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
    if (add_eos && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;

    if ((rc = tok_finish(t, err))) goto fail;
    if (eot >= 0) t->vocab[eot].eog = 1;
    if (eom >= 0) t->vocab[eom].eog = 1;
    *out = t;
    return LP_OK;
fail:
    lp_tokenizer_destroy(t);
    return rc;
}

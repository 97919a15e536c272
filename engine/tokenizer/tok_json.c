/* tok_json.c: builds a tokenizer from Hugging Face's tokenizer.json (and
 * tokenizer_config.json): model BPE, added_tokens, the normalizer,
 * pre_tokenizer, decoder and post_processor kinds that BPE language models
 * use. Anything else is refused with LP_EUNSUPPORTED and its name, never
 * approximated. JSON is parsed with cJSON. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "lp_common.h"
#include "tok_internal.h"

#define MAX_VOCAB (1 << 24)

static const cJSON *get(const cJSON *o, const char *k) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static int get_bool(const cJSON *o, const char *k, int dflt) {
    const cJSON *v = get(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static const char *get_str(const cJSON *o, const char *k) {
    const cJSON *v = get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *type_of(const cJSON *o) {
    const char *t = get_str(o, "type");
    return t ? t : "";
}

/* An id: an integral JSON number in [0, MAX_VOCAB). */
static int get_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < MAX_VOCAB) || d != (double)(int32_t)d) return -1;
    *id = (int32_t)d;
    return 0;
}

/* A pattern object {"String": s} or {"Regex": r}. */
static int get_pattern(const cJSON *o, const char **s, int *is_regex) {
    const char *v;
    if ((v = get_str(o, "String"))) {
        *s = v;
        *is_regex = 0;
        return 0;
    }
    if ((v = get_str(o, "Regex"))) {
        *s = v;
        *is_regex = 1;
        return 0;
    }
    return -1;
}

/* ------------------------------------------------------------------ pieces */

static int parse_normalizer(struct lp_tokenizer *t, const cJSON *n, int depth, char *err) {
    if (!n || cJSON_IsNull(n)) return LP_OK;
    if (depth > 4) return lp_err(err, LP_EFORMAT, "normalizer nested too deep");
    const char *ty = type_of(n);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = get(n, "normalizers"), *c;
        if (!cJSON_IsArray(arr)) return lp_err(err, LP_EFORMAT, "Sequence normalizer: no list");
        cJSON_ArrayForEach(c, arr) {
            int rc = parse_normalizer(t, c, depth + 1, err);
            if (rc) return rc;
        }
        return LP_OK;
    }
    if (!strcmp(ty, "Prepend")) {
        const char *p = get_str(n, "prepend");
        if (!p) return lp_err(err, LP_EFORMAT, "Prepend normalizer without \"prepend\"");
        return tok_norm_add(t, TOK_NORM_PREPEND, p, strlen(p), 0, NULL, 0, err);
    }
    if (!strcmp(ty, "Replace")) {
        const char *pat, *content = get_str(n, "content");
        int is_re;
        if (get_pattern(get(n, "pattern"), &pat, &is_re) || !content)
            return lp_err(err, LP_EFORMAT, "Replace normalizer needs pattern and content");
        return tok_norm_add(t, TOK_NORM_REPLACE, pat, strlen(pat), is_re, content, strlen(content),
                            err);
    }
    static const struct {
        const char *name;
        int form;
    } forms[] = {
        {"NFC", UTF8PROC_STABLE | UTF8PROC_COMPOSE},
        {"NFD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE},
        {"NFKC", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT},
        {"NFKD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        if (strcmp(ty, forms[i].name)) continue;
        int rc = tok_norm_add(t, TOK_NORM_UNICODE, NULL, 0, 0, NULL, 0, err);
        if (rc == LP_OK) t->norm[t->n_norm - 1].uform = forms[i].form;
        return rc;
    }
    return lp_err(err, LP_EUNSUPPORTED, "normalizer \"%.40s\" is not supported", ty);
}

static int split_behavior(const char *b) {
    if (!b) return -1;
    if (!strcmp(b, "Removed")) return TOK_SPLIT_REMOVED;
    if (!strcmp(b, "Isolated")) return TOK_SPLIT_ISOLATED;
    if (!strcmp(b, "MergedWithPrevious")) return TOK_SPLIT_MERGED_PREV;
    if (!strcmp(b, "MergedWithNext")) return TOK_SPLIT_MERGED_NEXT;
    if (!strcmp(b, "Contiguous")) return TOK_SPLIT_CONTIGUOUS;
    return -1;
}

static int prepend_scheme(const cJSON *o) {
    const char *s = get_str(o, "prepend_scheme");
    if (s) {
        if (!strcmp(s, "first")) return TOK_PREPEND_FIRST;
        if (!strcmp(s, "never")) return TOK_PREPEND_NEVER;
        if (!strcmp(s, "always")) return TOK_PREPEND_ALWAYS;
        return -1;
    }
    /* older files: add_prefix_space */
    return get_bool(o, "add_prefix_space", 1) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
}

static const char *metaspace_repl(const cJSON *o) {
    const char *r = get_str(o, "replacement");
    if (!r) r = get_str(o, "str_rep");
    return r ? r : "\xe2\x96\x81";
}

static int parse_pre(struct lp_tokenizer *t, const cJSON *p, int depth, char *err) {
    if (!p || cJSON_IsNull(p)) return LP_OK;
    if (depth > 4) return lp_err(err, LP_EFORMAT, "pre_tokenizer nested too deep");
    const char *ty = type_of(p);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = get(p, "pretokenizers"), *c;
        if (!cJSON_IsArray(arr)) return lp_err(err, LP_EFORMAT, "Sequence pre_tokenizer: no list");
        cJSON_ArrayForEach(c, arr) {
            int rc = parse_pre(t, c, depth + 1, err);
            if (rc) return rc;
        }
        return LP_OK;
    }
    if (!strcmp(ty, "Split")) {
        const char *pat;
        int is_re, beh = split_behavior(get_str(p, "behavior"));
        if (get_pattern(get(p, "pattern"), &pat, &is_re) || beh < 0)
            return lp_err(err, LP_EFORMAT, "Split pre_tokenizer needs pattern and behavior");
        return tok_pre_add_split(t, pat, strlen(pat), !is_re, beh, get_bool(p, "invert", 0), err);
    }
    if (!strcmp(ty, "Digits")) {
        if (get_bool(p, "individual_digits", 0))
            return tok_pre_add_split(t, "\\p{N}", 5, 0, TOK_SPLIT_ISOLATED, 0, err);
        return tok_pre_add_split(t, "\\p{N}+", 6, 0, TOK_SPLIT_ISOLATED, 0, err);
    }
    if (!strcmp(ty, "ByteLevel"))
        return tok_pre_add_bytelevel(t, get_bool(p, "add_prefix_space", 1),
                                     get_bool(p, "use_regex", 1), err);
    if (!strcmp(ty, "Metaspace")) {
        int sch = prepend_scheme(p);
        const char *r = metaspace_repl(p);
        if (sch < 0) return lp_err(err, LP_EFORMAT, "Metaspace: unknown prepend_scheme");
        return tok_pre_add_metaspace(t, r, strlen(r), sch, get_bool(p, "split", 1), err);
    }
    return lp_err(err, LP_EUNSUPPORTED, "pre_tokenizer \"%.40s\" is not supported", ty);
}

static int parse_decoder(struct lp_tokenizer *t, const cJSON *d, int depth, int *fused, char *err) {
    struct tok_decoder *dec = &t->dec;
    if (depth > 4) return lp_err(err, LP_EFORMAT, "decoder nested too deep");
    const char *ty = type_of(d);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = get(d, "decoders"), *c;
        if (!cJSON_IsArray(arr)) return lp_err(err, LP_EFORMAT, "Sequence decoder: no list");
        cJSON_ArrayForEach(c, arr) {
            int rc = parse_decoder(t, c, depth + 1, fused, err);
            if (rc) return rc;
        }
        return LP_OK;
    }
    if (!strcmp(ty, "ByteLevel")) {
        dec->bytelevel = 1;
        return LP_OK;
    }
    if (!strcmp(ty, "ByteFallback")) {
        dec->byte_fallback = 1;
        return LP_OK;
    }
    if (!strcmp(ty, "Fuse")) {
        *fused = 1;
        return LP_OK;
    }
    if (!strcmp(ty, "Replace")) {
        const char *pat, *content = get_str(d, "content");
        int is_re;
        if (get_pattern(get(d, "pattern"), &pat, &is_re) || !content)
            return lp_err(err, LP_EFORMAT, "Replace decoder needs pattern and content");
        if (is_re) return lp_err(err, LP_EUNSUPPORTED, "Replace decoder with a regex");
        if (dec->n_replace >= 4) return lp_err(err, LP_EUNSUPPORTED, "too many Replace decoders");
        if (!*pat) return lp_err(err, LP_EFORMAT, "Replace decoder with an empty pattern");
        int i = dec->n_replace++;
        dec->replace[i].from = xstrdup(pat);
        dec->replace[i].flen = strlen(pat);
        dec->replace[i].to = xstrdup(content);
        dec->replace[i].tlen = strlen(content);
        return LP_OK;
    }
    if (!strcmp(ty, "Strip")) {
        const char *c = get_str(d, "content");
        const cJSON *st = get(d, "start"), *sp = get(d, "stop");
        int32_t start = 0, stop = 0;
        if ((st && get_id(st, &start)) || (sp && get_id(sp, &stop)) || !c || !*c || strlen(c) > 4 ||
            start > 64 || stop > 64)
            return lp_err(err, LP_EFORMAT, "Strip decoder needs content, start, stop");
        if (*fused && stop)
            return lp_err(err, LP_EUNSUPPORTED, "Strip decoder with stop after Fuse");
        dec->strip_start = start;
        dec->strip_stop = stop;
        dec->strip_global = *fused;
        dec->strip_char_len = (int)strlen(c);
        memcpy(dec->strip_char, c, strlen(c));
        return LP_OK;
    }
    if (!strcmp(ty, "Metaspace")) {
        int sch = prepend_scheme(d);
        const char *r = metaspace_repl(d);
        if (sch < 0 || strlen(r) > 4 || !*r)
            return lp_err(err, LP_EFORMAT, "Metaspace decoder: bad replacement or scheme");
        dec->metaspace = 1;
        memcpy(dec->ms_repl, r, strlen(r));
        dec->ms_repl_len = (int)strlen(r);
        dec->ms_drop_first = sch != TOK_PREPEND_NEVER;
        return LP_OK;
    }
    return lp_err(err, LP_EUNSUPPORTED, "decoder \"%.40s\" is not supported", ty);
}

static int push_ids(int32_t *dst, int *n, const cJSON *ids, int32_t n_vocab, char *err) {
    const cJSON *c;
    cJSON_ArrayForEach(c, ids) {
        int32_t id;
        if (get_id(c, &id) || id >= n_vocab)
            return lp_err(err, LP_EFORMAT, "post_processor: bad special token id");
        if (*n >= 4) return lp_err(err, LP_EUNSUPPORTED, "post_processor adds too many tokens");
        dst[(*n)++] = id;
    }
    return LP_OK;
}

static int parse_post(struct lp_tokenizer *t, const cJSON *p, int depth, char *err) {
    if (!p || cJSON_IsNull(p)) return LP_OK;
    if (depth > 4) return lp_err(err, LP_EFORMAT, "post_processor nested too deep");
    const char *ty = type_of(p);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = get(p, "processors"), *c;
        if (!cJSON_IsArray(arr)) return lp_err(err, LP_EFORMAT, "Sequence processor: no list");
        cJSON_ArrayForEach(c, arr) {
            int rc = parse_post(t, c, depth + 1, err);
            if (rc) return rc;
        }
        return LP_OK;
    }
    if (!strcmp(ty, "ByteLevel")) return LP_OK; /* offsets only */
    if (!strcmp(ty, "TemplateProcessing")) {
        const cJSON *single = get(p, "single"), *specials = get(p, "special_tokens"), *it;
        if (!cJSON_IsArray(single)) return lp_err(err, LP_EFORMAT, "TemplateProcessing: no single");
        int seen_a = 0;
        t->n_prefix = t->n_suffix = 0;
        cJSON_ArrayForEach(it, single) {
            const cJSON *sp = get(it, "SpecialToken");
            if (get(it, "Sequence")) {
                seen_a = 1;
                continue;
            }
            const char *name = get_str(sp, "id");
            const cJSON *ids = get(get(specials, name ? name : ""), "ids");
            if (!name || !cJSON_IsArray(ids))
                return lp_err(err, LP_EFORMAT, "TemplateProcessing: unknown special token");
            int rc = seen_a ? push_ids(t->suffix, &t->n_suffix, ids, t->n_vocab, err)
                            : push_ids(t->prefix, &t->n_prefix, ids, t->n_vocab, err);
            if (rc) return rc;
        }
        return LP_OK;
    }
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        const cJSON *cls = get(p, "cls"), *sep = get(p, "sep");
        int32_t a, b;
        if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || get_id(cJSON_GetArrayItem(cls, 1), &a) ||
            get_id(cJSON_GetArrayItem(sep, 1), &b) || a >= t->n_vocab || b >= t->n_vocab)
            return lp_err(err, LP_EFORMAT, "%s: bad cls/sep", ty);
        t->prefix[0] = a;
        t->suffix[0] = b;
        t->n_prefix = t->n_suffix = 1;
        return LP_OK;
    }
    return lp_err(err, LP_EUNSUPPORTED, "post_processor \"%.40s\" is not supported", ty);
}

/* A token named in tokenizer_config.json: "text" or {"content": "text"}. */
static int32_t config_token(const struct lp_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = get(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : get_str(v, "content");
    return s ? tok_find_n(t, s, strlen(s)) : -1;
}

static int32_t first_special(const struct lp_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = tok_find_n(t, *names, strlen(*names));
        if (id >= 0 && t->vocab[id].special) return id;
    }
    return -1;
}

/* ------------------------------------------------------------------ model */

static int parse_model(struct lp_tokenizer *t, const cJSON *model, const cJSON *added, char *err) {
    const cJSON *vocab = get(model, "vocab"), *merges = get(model, "merges"), *c;
    int rc;
    cJSON_ArrayForEach(c, vocab) {
        int32_t id;
        if (get_id(c, &id)) return lp_err(err, LP_EFORMAT, "vocab: bad id for a token");
        if ((rc = tok_set_token(t, id, c->string, strlen(c->string), TOK_NORMAL, 1, err)))
            return rc;
    }
    cJSON_ArrayForEach(c, added) {
        int32_t id;
        const char *content = get_str(c, "content");
        if (get_id(get(c, "id"), &id) || !content)
            return lp_err(err, LP_EFORMAT, "added_tokens: entry without id or content");
        int special = get_bool(c, "special", 0);
        if ((rc = tok_set_token(t, id, content, strlen(content), special ? TOK_CONTROL : TOK_USER,
                                0, err)))
            return rc;
    }
    tok_build_map(t);
    cJSON_ArrayForEach(c, added) {
        int32_t id = 0;
        get_id(get(c, "id"), &id); /* checked in the loop above */
        int special = get_bool(c, "special", 0);
        if ((rc = tok_add_added(t, id, special, get_bool(c, "lstrip", 0), get_bool(c, "rstrip", 0),
                                get_bool(c, "single_word", 0), get_bool(c, "normalized", !special),
                                err)))
            return rc;
    }

    if ((rc = tok_merges_reserve(t, (size_t)cJSON_GetArraySize(merges))))
        return lp_err(err, rc, "too many merges");
    int32_t rank = 0;
    cJSON_ArrayForEach(c, merges) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(c)) {
            a = c->valuestring;
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return lp_err(err, LP_EFORMAT, "merge %d is not \"a b\"", rank);
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = strlen(b);
        } else if (cJSON_IsArray(c) && cJSON_GetArraySize(c) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(c, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(c, 1))) {
            a = cJSON_GetArrayItem(c, 0)->valuestring;
            b = cJSON_GetArrayItem(c, 1)->valuestring;
            al = strlen(a);
            bl = strlen(b);
        } else {
            return lp_err(err, LP_EFORMAT, "merge %d is neither \"a b\" nor [a, b]", rank);
        }
        int32_t ia = tok_find_n(t, a, al), ib = tok_find_n(t, b, bl);
        if (al + bl > TOK_MAX_TEXT || ia < 0 || ib < 0)
            return lp_err(err, LP_EFORMAT, "merge %d names a token not in the vocabulary", rank);
        char cat[2 * TOK_MAX_TEXT];
        memcpy(cat, a, al);
        memcpy(cat + al, b, bl);
        int32_t id = tok_find_n(t, cat, al + bl);
        if (id < 0)
            return lp_err(err, LP_EFORMAT, "merge %d makes a token not in the vocabulary", rank);
        if ((rc = tok_merges_add(t, ia, ib, id, rank, err))) return rc;
        rank++;
    }

    const char *unk = get_str(model, "unk_token");
    t->unk_id = unk ? tok_find_n(t, unk, strlen(unk)) : -1;
    t->byte_fallback = get_bool(model, "byte_fallback", 0);
    t->fuse_unk = get_bool(model, "fuse_unk", 0);
    t->ignore_merges = get_bool(model, "ignore_merges", 0);
    return LP_OK;
}

int lp_tokenizer_from_hf_json(const char *json, size_t len, const char *config_json,
                              size_t config_len, struct lp_tokenizer **out, char *err) {
    if (!json || !out) return lp_err(err, LP_EINVAL, "bad arguments");
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return lp_err(err, LP_EFORMAT, "tokenizer.json is not valid JSON");
    cJSON *cfg = NULL;
    if (config_json) {
        cfg = cJSON_ParseWithLength(config_json, config_len);
        if (!cfg) {
            cJSON_Delete(root);
            return lp_err(err, LP_EFORMAT, "tokenizer_config.json is not valid JSON");
        }
    }
    struct lp_tokenizer *t = NULL;
    int rc = LP_OK;
    const cJSON *model = get(root, "model"), *added = get(root, "added_tokens"), *c;
    const char *mt = get_str(model, "type");
    if (mt ? strcmp(mt, "BPE") != 0 : !get(model, "merges")) {
        rc = lp_err(err, LP_EUNSUPPORTED, "tokenizer model \"%.40s\" is not supported (only BPE)",
                    mt ? mt : "?");
        goto done;
    }
    if (!cJSON_IsObject(model) || !cJSON_IsObject(get(model, "vocab"))) {
        rc = lp_err(err, LP_EFORMAT, "tokenizer.json has no model.vocab object");
        goto done;
    }
    if (added && !cJSON_IsArray(added)) {
        rc = lp_err(err, LP_EFORMAT, "added_tokens is not a list");
        goto done;
    }
    if (!cJSON_IsArray(get(model, "merges"))) {
        rc = lp_err(err, LP_EFORMAT, "model.merges is not a list");
        goto done;
    }
    const cJSON *dropout = get(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0 && dropout->valuedouble < 1) {
        rc = lp_err(err, LP_EUNSUPPORTED, "BPE dropout is not supported");
        goto done;
    }
    const char *csp = get_str(model, "continuing_subword_prefix");
    const char *ews = get_str(model, "end_of_word_suffix");
    if ((csp && *csp) || (ews && *ews)) {
        rc = lp_err(err, LP_EUNSUPPORTED, "BPE subword prefixes/suffixes are not supported");
        goto done;
    }

    /* Size the id range: the largest id in vocab and added_tokens. */
    int32_t max_id = -1, count = 0;
    cJSON_ArrayForEach(c, get(model, "vocab")) {
        int32_t id;
        if (get_id(c, &id)) {
            rc = lp_err(err, LP_EFORMAT, "vocab: bad id");
            goto done;
        }
        if (id > max_id) max_id = id;
        count++;
    }
    cJSON_ArrayForEach(c, added) {
        int32_t id;
        if (get_id(get(c, "id"), &id)) {
            rc = lp_err(err, LP_EFORMAT, "added_tokens: bad id");
            goto done;
        }
        if (id > max_id) max_id = id;
        count++;
    }
    if (max_id < 0 || max_id > 2 * count + 1024) {
        rc = lp_err(err, LP_EFORMAT,
                    "vocabulary ids are empty or too sparse (max id %d, %d tokens)", max_id, count);
        goto done;
    }
    t = tok_alloc(max_id + 1);
    if ((rc = parse_model(t, model, added, err))) goto done;
    if ((rc = parse_normalizer(t, get(root, "normalizer"), 0, err))) goto done;
    if ((rc = parse_pre(t, get(root, "pre_tokenizer"), 0, err))) goto done;
    const cJSON *dec = get(root, "decoder");
    if (!dec || cJSON_IsNull(dec)) {
        t->dec.none = 1;
    } else {
        int fused = 0;
        if ((rc = parse_decoder(t, dec, 0, &fused, err))) goto done;
    }
    if ((rc = parse_post(t, get(root, "post_processor"), 0, err))) goto done;

    /* BOS/EOS: named by the config, else what the template adds, else the
     * usual names among special tokens. */
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>",
                                            NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>",
                                            NULL};
    t->bos = config_token(t, cfg, "bos_token");
    t->eos = config_token(t, cfg, "eos_token");
    if (t->bos < 0) t->bos = t->n_prefix ? t->prefix[0] : first_special(t, bos_names);
    if (t->eos < 0) t->eos = t->n_suffix ? t->suffix[t->n_suffix - 1] : first_special(t, eos_names);
    const cJSON *ab = get(cfg, "add_bos_token"), *ae = get(cfg, "add_eos_token");
    if (cJSON_IsBool(ab)) {
        t->n_prefix = 0;
        if (cJSON_IsTrue(ab) && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
    }
    if (cJSON_IsBool(ae)) {
        t->n_suffix = 0;
        if (cJSON_IsTrue(ae) && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;
    }
    rc = tok_finish(t, err);
done:
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (rc) {
        lp_tokenizer_destroy(t);
        return rc;
    }
    *out = t;
    return LP_OK;
}

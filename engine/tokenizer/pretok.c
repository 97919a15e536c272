/* pretok.c: normalizers (Prepend, Replace) and pre-tokenizers (Split with
 * its five behaviours, Digits, ByteLevel, Metaspace) as Hugging Face's
 * tokenizers runs them, with the regexes run by PCRE2 (UTF + UCP, JIT when
 * available), and the split regexes that GGUF's `tokenizer.ggml.pre` names. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "lp_common.h"
#include "tok_internal.h"

/* GPT-2's split, as HF's ByteLevel pre-tokenizer has it. */
static const char re_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
                              "\\s+(?!\\S)|\\s+";
static const char re_llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                                "\\s+(?!\\S)|\\s+";
static const char re_qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                               "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                               "\\s+(?!\\S)|\\s+";

/* Oniguruma's \s (what HF's regexes use) is Unicode White_Space; PCRE2's \s
 * also matches U+180E. White_Space is exactly \p{Z} plus \t-\r and U+0085,
 * so \s and \S are rewritten in those terms. */
#define WS_CLASS "\\t-\\r\\x{85}\\p{Z}"

static char *rewrite_space_classes(const char *pat, size_t len, size_t *out_len) {
    size_t cap = len * 20 + 1, o = 0;
    char *out = xmalloc(cap);
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char n = pat[i + 1];
            const char *rep = NULL;
            if (n == 's')
                rep = in_class ? WS_CLASS : "[" WS_CLASS "]";
            else if (n == 'S' && !in_class)
                rep = "[^" WS_CLASS "]";
            if (rep) {
                size_t rl = strlen(rep);
                memcpy(out + o, rep, rl);
                o += rl;
            } else {
                out[o++] = c;
                out[o++] = n;
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            out[o++] = c;
            /* a ']' first in the class (after an optional '^') is literal */
            if (i + 1 < len && pat[i + 1] == '^') out[o++] = pat[++i];
            if (i + 1 < len && pat[i + 1] == ']') out[o++] = pat[++i];
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && pat[i + 1] == ':') {
            /* POSIX class [:name:] inside a class */
            const char *end = NULL;
            for (size_t k = i + 2; k + 1 < len; k++)
                if (pat[k] == ':' && pat[k + 1] == ']') {
                    end = pat + k + 2;
                    break;
                }
            if (end) {
                size_t n = (size_t)(end - (pat + i));
                memcpy(out + o, pat + i, n);
                o += n;
                i += n - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        out[o++] = c;
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

pcre2_code *tok_regex_compile(const char *pat, size_t len, char *err) {
    size_t rl;
    char *rw = rewrite_space_classes(pat, len, &rl);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)rw, rl, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    free(rw);
    if (!re) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(ec, msg, sizeof msg);
        lp_err(err, LP_EUNSUPPORTED, "tokenizer regex does not compile: %s", (char *)msg);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    return re;
}

/* ------------------------------------------------------------------ building */

static int pre_slot(struct lp_tokenizer *t, char *err) {
    if (t->n_pre >= TOK_MAX_PRE)
        return lp_err(err, LP_EUNSUPPORTED, "more than %d pre-tokenizer steps", TOK_MAX_PRE);
    if (t->n_pre > 0 && (t->pre[t->n_pre - 1].kind == TOK_PRE_BYTELEVEL ||
                         t->pre[t->n_pre - 1].kind == TOK_PRE_METASPACE))
        return lp_err(err, LP_EUNSUPPORTED,
                      "a pre-tokenizer step after ByteLevel/Metaspace is not supported");
    return LP_OK;
}

int tok_pre_add_split(struct lp_tokenizer *t, const char *pat, size_t len, int literal,
                      int behavior, int invert, char *err) {
    int rc = pre_slot(t, err);
    if (rc) return rc;
    pcre2_code *re;
    if (literal) {
        int ec;
        PCRE2_SIZE eo;
        re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_LITERAL, &ec, &eo, NULL);
        if (!re) return lp_err(err, LP_EFORMAT, "split pattern is not valid UTF-8");
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    } else {
        re = tok_regex_compile(pat, len, err);
        if (!re) return LP_EUNSUPPORTED;
    }
    struct tok_pre *p = &t->pre[t->n_pre++];
    memset(p, 0, sizeof *p);
    p->kind = TOK_PRE_SPLIT;
    p->re = re;
    p->behavior = behavior;
    p->invert = invert;
    return LP_OK;
}

int tok_pre_add_bytelevel(struct lp_tokenizer *t, int add_prefix_space, int use_regex, char *err) {
    int rc = pre_slot(t, err);
    if (rc) return rc;
    pcre2_code *re = NULL;
    if (use_regex && !(re = tok_regex_compile(re_gpt2, sizeof re_gpt2 - 1, err)))
        return LP_EUNSUPPORTED;
    struct tok_pre *p = &t->pre[t->n_pre++];
    memset(p, 0, sizeof *p);
    p->kind = TOK_PRE_BYTELEVEL;
    p->re = re;
    p->add_prefix_space = add_prefix_space;
    t->bytelevel = 1;
    return LP_OK;
}

int tok_pre_add_metaspace(struct lp_tokenizer *t, const char *repl, size_t len, int scheme,
                          int split, char *err) {
    int rc = pre_slot(t, err);
    if (rc) return rc;
    int n;
    if (len == 0 || len > 4 || !tok_utf8_valid(repl, len) ||
        (tok_utf8_decode(repl, len, &n), (size_t)n != len))
        return lp_err(err, LP_EFORMAT, "Metaspace replacement must be one character");
    struct tok_pre *p = &t->pre[t->n_pre++];
    memset(p, 0, sizeof *p);
    p->kind = TOK_PRE_METASPACE;
    memcpy(p->repl, repl, len);
    p->repl_len = (int)len;
    p->prepend_scheme = scheme;
    p->split = split;
    return LP_OK;
}

void tok_pre_clear(struct lp_tokenizer *t) {
    for (int i = 0; i < t->n_pre; i++)
        pcre2_code_free(t->pre[i].re);
    t->n_pre = 0;
}

int tok_pre_from_gguf_name(struct lp_tokenizer *t, const char *name, size_t len, char *err) {
#define IS(s) (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)
    int rc;
    if (len == 0 || IS("default") || IS("gpt2") || IS("gpt-2")) {
        return tok_pre_add_bytelevel(t, 0, 1, err);
    }
    if (IS("llama3") || IS("llama-bpe") || IS("llama-v3")) {
        t->ignore_merges = 1; /* as llama.cpp and Llama 3's tokenizer.json */
        rc = tok_pre_add_split(t, re_llama3, sizeof re_llama3 - 1, 0, TOK_SPLIT_ISOLATED, 0, err);
        return rc ? rc : tok_pre_add_bytelevel(t, 0, 0, err);
    }
    if (IS("smollm")) {
        /* SmolLM's tokenizer.json: Digits(individual_digits) then ByteLevel. */
        rc = tok_pre_add_split(t, "\\p{N}", 5, 0, TOK_SPLIT_ISOLATED, 0, err);
        return rc ? rc : tok_pre_add_bytelevel(t, 0, 1, err);
    }
    if (IS("qwen2")) {
        rc = tok_pre_add_split(t, re_qwen2, sizeof re_qwen2 - 1, 0, TOK_SPLIT_ISOLATED, 0, err);
        return rc ? rc : tok_pre_add_bytelevel(t, 0, 0, err);
    }
#undef IS
    return lp_err(err, LP_EUNSUPPORTED,
                  "GGUF pre-tokenizer \"%.*s\" is not supported (known: default, gpt2, llama3, "
                  "llama-bpe, smollm, qwen2)",
                  (int)(len > 64 ? 64 : len), name);
}

int tok_norm_add(struct lp_tokenizer *t, int kind, const char *a, size_t alen, int a_is_regex,
                 const char *b, size_t blen, char *err) {
    if (t->n_norm >= TOK_MAX_NORM)
        return lp_err(err, LP_EUNSUPPORTED, "more than %d normalizer steps", TOK_MAX_NORM);
    struct tok_norm *n = &t->norm[t->n_norm];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    if (kind == TOK_NORM_REPLACE && a_is_regex) {
        n->re = tok_regex_compile(a, alen, err);
        if (!n->re) return LP_EUNSUPPORTED;
    } else {
        if (kind == TOK_NORM_REPLACE && alen == 0)
            return lp_err(err, LP_EFORMAT, "Replace normalizer with an empty pattern");
        if (a) {
            n->a = xstrndup(a, alen);
            n->alen = alen;
        }
    }
    if (b) {
        n->b = xstrndup(b, blen);
        n->blen = blen;
    }
    t->n_norm++;
    return LP_OK;
}

/* ------------------------------------------------------------------ running */

/* Finds the next non-empty match of re in s[off..len); 1 found, 0 none, <0 error. */
static int next_match(const struct lp_tokenizer *t, pcre2_code *re, pcre2_match_data *md,
                      const char *s, size_t len, size_t off, size_t *ms, size_t *me) {
    while (off <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK, md, t->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                             t->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) return rc == PCRE2_ERROR_NOMEMORY ? LP_ENOMEM : LP_EINVAL;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (a < off) a = off; /* \K or lookbehind tricks: never step back */
        if (b > a) {
            *ms = a;
            *me = b;
            return 1;
        }
        /* An empty match makes no piece: move one character on. */
        if (a >= len) return 0;
        off = a + (size_t)tok_utf8_len((unsigned char)s[a]);
    }
    return 0;
}

static int spans_push(size_t **v, size_t *n, size_t *cap, size_t a, size_t b, size_t m) {
    if (*n + 3 > *cap) {
        size_t c = *cap ? 2 * *cap : 96;
        size_t *q = realloc(*v, c * sizeof *q);
        if (!q) return -1;
        *v = q;
        *cap = c;
    }
    (*v)[(*n)++] = a;
    (*v)[(*n)++] = b;
    (*v)[(*n)++] = m;
    return 0;
}

/* tokenizers' NormalizedString::split: from (start, end, is_match) spans that
 * tile the piece to the pieces kept, in place (as (start, end, 0) triples). */
static size_t apply_behavior(size_t *v, size_t n, int behavior) {
    size_t w = 0;
    int prev_match = 0;
    switch (behavior) {
    case TOK_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i += 3)
            if (!v[i + 2]) {
                v[w] = v[i];
                v[w + 1] = v[i + 1];
                w += 3;
            }
        break;
    case TOK_SPLIT_ISOLATED: w = n; break;
    case TOK_SPLIT_CONTIGUOUS:
    case TOK_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < n; i += 3) {
            int m = (int)v[i + 2];
            int merge = behavior == TOK_SPLIT_CONTIGUOUS ? m == prev_match : (m && !prev_match);
            if (merge && w > 0) {
                v[w - 2] = v[i + 1];
            } else {
                v[w] = v[i];
                v[w + 1] = v[i + 1];
                w += 3;
            }
            prev_match = m;
        }
        break;
    case TOK_SPLIT_MERGED_NEXT: {
        /* walk backwards, merging a match into the piece after it */
        size_t r = n; /* pieces are written from the end */
        for (size_t i = n; i > 0; i -= 3) {
            size_t a = v[i - 3], b = v[i - 2];
            int m = (int)v[i - 1];
            if (m && !prev_match && r < n) {
                v[r] = a;
            } else {
                r -= 3;
                v[r] = a;
                v[r + 1] = b;
            }
            prev_match = m;
        }
        memmove(v, v + r, (n - r) * sizeof *v);
        w = n - r;
        break;
    }
    }
    for (size_t i = 0; i < w; i += 3)
        v[i + 2] = 0;
    return w;
}

static void run_step(struct tok_pre_ctx *c, int d, const char *s, size_t len, int first);

/* Grows level d's string buffer to n bytes; NULL on out-of-memory. */
static char *level_buf(struct tok_pre_ctx *c, int d, size_t n) {
    if (n <= c->level[d].buf_cap) return c->level[d].buf;
    size_t cap = c->level[d].buf_cap ? c->level[d].buf_cap : 256;
    while (cap < n)
        cap *= 2;
    char *b = realloc(c->level[d].buf, cap);
    if (!b) {
        c->status = LP_ENOMEM;
        return NULL;
    }
    c->level[d].buf = b;
    c->level[d].buf_cap = cap;
    return b;
}

/* Splits s by re into level d's spans and runs the next step on each piece. */
static void split_and_recurse(struct tok_pre_ctx *c, int d, pcre2_code *re, int behavior,
                              int invert, const char *s, size_t len, int first) {
    size_t *v = NULL, n = 0, cap = 0;
    /* The level's span array is reused: take it, and give it back after. */
    v = c->level[d].v;
    cap = c->level[d].cap;
    size_t off = 0, prev = 0, ms, me;
    int rc;
    while ((rc = next_match(c->t, re, c->md, s, len, off, &ms, &me)) == 1) {
        if (prev < ms && spans_push(&v, &n, &cap, prev, ms, invert ? 1 : 0)) goto oom;
        if (spans_push(&v, &n, &cap, ms, me, invert ? 0 : 1)) goto oom;
        prev = off = me;
    }
    if (rc < 0) {
        c->status = rc;
        goto out;
    }
    if (prev < len && spans_push(&v, &n, &cap, prev, len, invert ? 1 : 0)) goto oom;
    n = apply_behavior(v, n, behavior);
    c->level[d].v = v;
    c->level[d].cap = cap;
    for (size_t i = 0; i < n && !c->status; i += 3)
        run_step(c, d + 1, s + v[i], v[i + 1] - v[i], first && v[i] == 0);
    v = c->level[d].v; /* deeper levels use their own arrays; this one is unchanged */
    goto out;
oom:
    c->status = LP_ENOMEM;
out:
    c->level[d].v = v;
    c->level[d].cap = cap;
}

static void run_step(struct tok_pre_ctx *c, int d, const char *s, size_t len, int first) {
    const struct lp_tokenizer *t = c->t;
    if (!len || c->status) return;
    if (d >= t->n_pre) {
        tok_bpe_word(t, c->bpe, s, len, c->out);
        return;
    }
    const struct tok_pre *p = &t->pre[d];
    switch (p->kind) {
    case TOK_PRE_SPLIT:
        split_and_recurse(c, d, p->re, p->behavior, p->invert, s, len, first);
        break;
    case TOK_PRE_BYTELEVEL:
        if (p->add_prefix_space && s[0] != ' ') {
            char *b = level_buf(c, d, len + 1);
            if (!b) return;
            b[0] = ' ';
            memcpy(b + 1, s, len);
            s = b;
            len++;
        }
        if (p->re)
            split_and_recurse(c, d, p->re, TOK_SPLIT_ISOLATED, 0, s, len, first);
        else
            run_step(c, d + 1, s, len, first);
        break;
    case TOK_PRE_METASPACE: {
        size_t rl = (size_t)p->repl_len, spaces = 0;
        for (size_t i = 0; i < len; i++)
            spaces += s[i] == ' ';
        char *b = level_buf(c, d, len + spaces * rl + rl);
        if (!b) return;
        size_t o = 0;
        int starts = s[0] == ' ' || (len >= rl && memcmp(s, p->repl, rl) == 0);
        int prepend = !starts && (p->prepend_scheme == TOK_PREPEND_ALWAYS ||
                                  (p->prepend_scheme == TOK_PREPEND_FIRST && first));
        if (prepend) {
            memcpy(b, p->repl, rl);
            o = rl;
        }
        for (size_t i = 0; i < len; i++) {
            if (s[i] == ' ') {
                memcpy(b + o, p->repl, rl);
                o += rl;
            } else {
                b[o++] = s[i];
            }
        }
        if (!p->split) {
            run_step(c, d + 1, b, o, first);
            break;
        }
        /* split at each replacement, MergedWithNext */
        size_t start = 0;
        for (size_t i = 1; i + rl <= o; i++) {
            if (memcmp(b + i, p->repl, rl) == 0) {
                run_step(c, d + 1, b + start, i - start, first && start == 0);
                start = i;
                i += rl - 1;
            }
        }
        run_step(c, d + 1, b + start, o - start, first && start == 0);
        break;
    }
    }
}

void tok_pre_run(struct tok_pre_ctx *c, const char *s, size_t len, int first) {
    run_step(c, 0, s, len, first);
}

void tok_pre_ctx_free(struct tok_pre_ctx *c) {
    for (int d = 0; d < TOK_MAX_PRE; d++) {
        free(c->level[d].v);
        free(c->level[d].buf);
    }
}

/* ------------------------------------------------------------------ normalize */

const char *tok_normalize(const struct lp_tokenizer *t, const char *text, size_t len, char **buf,
                          size_t *cap, size_t *out_len) {
    *out_len = len;
    if (!t->n_norm) return text;
    const char *cur = text;
    size_t n = len;
    char *tmp = NULL;
    for (int k = 0; k < t->n_norm; k++) {
        const struct tok_norm *nm = &t->norm[k];
        size_t need;
        char *o;
        size_t on = 0;
        if (nm->kind == TOK_NORM_UNICODE) {
            /* Unicode normalization is utf8proc's, not ours (the input is
             * valid UTF-8: encode checked it). */
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)n,
                                              &dst, (utf8proc_option_t)nm->uform);
            if (r < 0) {
                free(dst);
                goto oom;
            }
            o = (char *)dst;
            on = (size_t)r;
        } else if (nm->kind == TOK_NORM_PREPEND) {
            if (n == 0) continue; /* HF prepends nothing to an empty string */
            need = n + nm->alen;
            if (!(o = malloc(need + 1))) goto oom;
            memcpy(o, nm->a, nm->alen);
            memcpy(o + nm->alen, cur, n);
            on = need;
        } else if (nm->re) {
            pcre2_match_data *md = pcre2_match_data_create(1, NULL);
            if (!md) goto oom;
            size_t ocap = n * 2 + 16;
            if (!(o = malloc(ocap))) {
                pcre2_match_data_free(md);
                goto oom;
            }
            size_t off = 0, ms, me;
            int rc;
            while ((rc = next_match(t, nm->re, md, cur, n, off, &ms, &me)) == 1) {
                size_t add = (ms - off) + nm->blen;
                if (on + add + 1 > ocap) {
                    while (on + add + 1 > ocap)
                        ocap *= 2;
                    char *q = realloc(o, ocap);
                    if (!q) {
                        free(o);
                        pcre2_match_data_free(md);
                        goto oom;
                    }
                    o = q;
                }
                memcpy(o + on, cur + off, ms - off);
                on += ms - off;
                memcpy(o + on, nm->b, nm->blen);
                on += nm->blen;
                off = me;
            }
            pcre2_match_data_free(md);
            if (on + (n - off) + 1 > ocap) {
                char *q = realloc(o, on + (n - off) + 1);
                if (!q) {
                    free(o);
                    goto oom;
                }
                o = q;
            }
            memcpy(o + on, cur + off, n - off);
            on += n - off;
        } else {
            size_t hits = 0;
            for (size_t i = 0; i + nm->alen <= n;) {
                if (memcmp(cur + i, nm->a, nm->alen) == 0) {
                    hits++;
                    i += nm->alen;
                } else {
                    i++;
                }
            }
            need = n + hits * nm->blen;
            if (!(o = malloc(need + 1))) goto oom;
            for (size_t i = 0; i < n;) {
                if (i + nm->alen <= n && memcmp(cur + i, nm->a, nm->alen) == 0) {
                    memcpy(o + on, nm->b, nm->blen);
                    on += nm->blen;
                    i += nm->alen;
                } else {
                    o[on++] = cur[i++];
                }
            }
        }
        free(tmp);
        tmp = o;
        cur = o;
        n = on;
    }
    if (cur == text) return text;
    if (*cap < n + 1) {
        char *b = realloc(*buf, n + 1);
        if (!b) goto oom;
        *buf = b;
        *cap = n + 1;
    }
    memcpy(*buf, cur, n);
    free(tmp);
    *out_len = n;
    return *buf;
oom:
    free(tmp);
    return NULL;
}

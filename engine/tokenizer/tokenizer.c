/* tokenizer.c: what every tokenizer model shares: the vocabulary and its
 * text->id map, added/special tokens and how text is split on them (as
 * Hugging Face's AddedVocabulary does: leftmost-longest, lstrip/rstrip,
 * single_word, raw then normalized), BOS/EOS, the encode driver, and decoding
 * (whole and incremental, never half a UTF-8 character). */
#include <stdlib.h>
#include <string.h>

#include "lp_common.h"
#include "tok_internal.h"

/* ------------------------------------------------------------------ UTF-8 */

int tok_utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 1;
}

/* Bytes 2.. of a sequence led by `lead` must lie in [lo, hi] for the second
 * byte (Unicode table 3-7) and 80..BF after it. */
static void utf8_second_range(unsigned char lead, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (lead == 0xE0) *lo = 0xA0;
    if (lead == 0xED) *hi = 0x9F;
    if (lead == 0xF0) *lo = 0x90;
    if (lead == 0xF4) *hi = 0x8F;
}

/* Length of the valid sequence at s (1..4), 0 if invalid, or -k when the k
 * bytes available are a valid but incomplete prefix. */
static int utf8_check(const unsigned char *s, size_t avail, int *bad_len) {
    unsigned char c = s[0];
    *bad_len = 1;
    if (c < 0x80) return 1;
    int L = tok_utf8_len(c);
    if (L == 1) return 0;
    unsigned char lo, hi;
    utf8_second_range(c, &lo, &hi);
    for (int k = 1; k < L; k++) {
        if ((size_t)k >= avail) return -k;
        unsigned char b = s[k];
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *bad_len = k; /* the maximal subpart that was a valid prefix */
            return 0;
        }
    }
    return L;
}

int tok_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int bad;
        int n = utf8_check(p + i, len - i, &bad);
        if (n <= 0) return 0;
        i += (size_t)n;
    }
    return 1;
}

uint32_t tok_utf8_decode(const char *s, size_t len, int *n) {
    const unsigned char *p = (const unsigned char *)s;
    int L = tok_utf8_len(p[0]);
    if ((size_t)L > len) L = 1;
    *n = L;
    switch (L) {
    case 1: return p[0];
    case 2: return ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3: return ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    default:
        return ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
               ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    }
}

int tok_utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The Unicode White_Space property (PropList.txt), which is what Rust's
 * char::is_whitespace tests and so what HF's lstrip/rstrip strip. */
int tok_is_white_space(uint32_t cp) {
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0) return 1;
    if (cp < 0x1680) return 0;
    return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ------------------------------------------------------------------ vocabulary */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int32_t tok_find_n(const struct lp_tokenizer *t, const char *text, size_t len) {
    if (!t->map.cap) return -1;
    uint32_t mask = t->map.cap - 1;
    for (uint32_t i = (uint32_t)hash_bytes(text, len) & mask;; i = (i + 1) & mask) {
        int32_t id = t->map.slot[i];
        if (id < 0) return -1;
        const struct tok_entry *e = &t->vocab[id];
        if (e->len == len && memcmp(e->text, text, len) == 0) return id;
    }
}

/* Inserts id; a later token with the same text wins, as llama.cpp's map does. */
static void map_insert(struct lp_tokenizer *t, int32_t id) {
    const struct tok_entry *e = &t->vocab[id];
    uint32_t mask = t->map.cap - 1;
    for (uint32_t i = (uint32_t)hash_bytes(e->text, e->len) & mask;; i = (i + 1) & mask) {
        int32_t o = t->map.slot[i];
        if (o < 0 ||
            (t->vocab[o].len == e->len && memcmp(t->vocab[o].text, e->text, e->len) == 0)) {
            t->map.slot[i] = id;
            return;
        }
    }
}

struct lp_tokenizer *tok_alloc(int32_t n_vocab) {
    struct lp_tokenizer *t = xcalloc(1, sizeof *t);
    t->n_vocab = n_vocab;
    t->vocab = xcalloc((size_t)(n_vocab > 0 ? n_vocab : 1), sizeof *t->vocab);
    t->model = TOK_MODEL_BPE;
    t->unk_id = t->bos = t->eos = -1;
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = t->bchar_id[b] = -1;
    return t;
}

int tok_set_token(struct lp_tokenizer *t, int32_t id, const char *text, size_t len, int type,
                  int in_model, char *err) {
    if (id < 0 || id >= t->n_vocab) return lp_err(err, LP_EFORMAT, "token id %d out of range", id);
    if (len > TOK_MAX_TEXT)
        return lp_err(err, LP_EUNSUPPORTED, "token %d is %zu bytes long (at most %d)", id, len,
                      TOK_MAX_TEXT);
    if (memchr(text, 0, len)) return lp_err(err, LP_EFORMAT, "token %d contains a NUL byte", id);
    struct tok_entry *e = &t->vocab[id];
    if (e->text) {
        if (e->len != len || memcmp(e->text, text, len) != 0)
            return lp_err(err, LP_EFORMAT, "token id %d is given two different texts", id);
        e->in_model |= (uint8_t)in_model;
        return LP_OK;
    }
    e->text = xstrndup(text, len);
    e->len = (uint32_t)len;
    e->type = (uint8_t)type;
    e->in_model = (uint8_t)in_model;
    return LP_OK;
}

int tok_add_added(struct lp_tokenizer *t, int32_t id, int special, int lstrip, int rstrip,
                  int single_word, int normalized, char *err) {
    if (id < 0 || id >= t->n_vocab || !t->vocab[id].text)
        return lp_err(err, LP_EFORMAT, "added token id %d has no text", id);
    if (t->n_added_tmp == t->cap_added_tmp) {
        t->cap_added_tmp = t->cap_added_tmp ? 2 * t->cap_added_tmp : 16;
        t->added_tmp = xrealloc(t->added_tmp, (size_t)t->cap_added_tmp * sizeof *t->added_tmp);
    }
    struct tok_added *a = &t->added_tmp[t->n_added_tmp++];
    memset(a, 0, sizeof *a);
    a->id = id;
    a->special = (uint8_t)(special != 0);
    a->lstrip = (uint8_t)(lstrip != 0);
    a->rstrip = (uint8_t)(rstrip != 0);
    a->single_word = (uint8_t)(single_word != 0);
    a->normalized = (uint8_t)(normalized != 0);
    struct tok_entry *e = &t->vocab[id];
    e->special = a->special;
    if (e->type == TOK_NORMAL || e->type == 0) e->type = special ? TOK_CONTROL : TOK_USER;
    return LP_OK;
}

static int added_cmp(const void *pa, const void *pb) {
    const struct tok_added *a = pa, *b = pb;
    unsigned char ca = (unsigned char)a->text[0], cb = (unsigned char)b->text[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    int c = memcmp(a->text, b->text, a->len);
    if (c) return c;
    return a->id < b->id ? -1 : (a->id > b->id);
}

static void added_set_build(struct tok_added_set *s) {
    if (s->n > 1) qsort(s->v, (size_t)s->n, sizeof *s->v, added_cmp);
    /* Same pattern twice: the first (lowest id) wins, the rest are dropped. */
    int w = 0;
    for (int i = 0; i < s->n; i++) {
        if (w > 0 && s->v[w - 1].len == s->v[i].len &&
            memcmp(s->v[w - 1].text, s->v[i].text, s->v[i].len) == 0) {
            free(s->v[i].text);
            continue;
        }
        s->v[w++] = s->v[i];
    }
    s->n = w;
    int i = 0;
    for (int b = 0; b <= 256; b++) {
        while (i < s->n && (unsigned char)s->v[i].text[0] < b)
            i++;
        s->first[b] = i;
    }
}

static const char *const eog_texts[] = {
    "<|im_end|>", "<|eot_id|>",    "<|eom_id|>", "<|end_of_text|>", "<|endoftext|>",
    "<|end|>",    "<end_of_turn>", "<|return|>", "<|call|>",        "</s>",
};

void tok_build_map(struct lp_tokenizer *t) {
    /* Holes in the id range decode to nothing and are never produced. */
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (!t->vocab[i].text) {
            t->vocab[i].text = xstrdup("");
            t->vocab[i].type = TOK_UNUSED;
        }
        if (!t->vocab[i].type) t->vocab[i].type = TOK_NORMAL;
    }
    free(t->map.slot);
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)t->n_vocab + 16)
        cap <<= 1;
    t->map.cap = cap;
    t->map.slot = xmalloc(cap * sizeof *t->map.slot);
    memset(t->map.slot, 0xff, cap * sizeof *t->map.slot);
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->vocab[i].len) map_insert(t, i);
}

int tok_finish(struct lp_tokenizer *t, char *err) {
    int rc;
    if (!t->map.cap) tok_build_map(t);

    for (int32_t i = 0; i < t->n_vocab; i++) {
        const struct tok_entry *e = &t->vocab[i];
        if (e->len == 6 && memcmp(e->text, "<0x", 3) == 0 && e->text[5] == '>') {
            char hex[3] = {e->text[3], e->text[4], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end == 0 && v >= 0 && v < 256 && t->byte_id[v] < 0) t->byte_id[v] = i;
        }
    }
    tok_bytelevel_tables(t->b2u, t->u2b);
    if (t->bytelevel) {
        for (int b = 0; b < 256; b++) {
            char u[4];
            int n = tok_utf8_encode(t->b2u[b], u);
            int32_t id = tok_find_n(t, u, (size_t)n);
            t->bchar_id[b] = (id >= 0 && t->vocab[id].in_model) ? id : -1;
        }
    }
    if (t->unk_id >= t->n_vocab) return lp_err(err, LP_EFORMAT, "unknown-token id out of range");
    if (t->bos >= t->n_vocab || t->eos >= t->n_vocab)
        return lp_err(err, LP_EFORMAT, "BOS/EOS id out of range");

    /* Added tokens: raw-text set and normalized-text set. */
    int any_single_word = 0;
    for (int i = 0; i < t->n_added_tmp; i++) {
        struct tok_added a = t->added_tmp[i];
        const struct tok_entry *e = &t->vocab[a.id];
        if (!e->len || !tok_utf8_valid(e->text, e->len)) continue;
        int norm = a.normalized && t->n_norm > 0;
        struct tok_added_set *s = norm ? &t->added_norm : &t->added_raw;
        if (norm) {
            char *buf = NULL;
            size_t bcap = 0, n = 0;
            const char *p = tok_normalize(t, e->text, e->len, &buf, &bcap, &n);
            if (!p) {
                free(buf);
                return lp_err(err, LP_ENOMEM, "out of memory normalizing added tokens");
            }
            a.text = xstrndup(p, n);
            a.len = (uint32_t)n;
            free(buf);
            if (n <= TOK_MAX_TEXT && !t->vocab[a.id].dec_text) {
                t->vocab[a.id].dec_text = xstrndup(a.text, n);
                t->vocab[a.id].dec_len = (uint32_t)n;
            }
            if (!n) {
                free(a.text);
                continue;
            }
        } else {
            a.text = xstrndup(e->text, e->len);
            a.len = e->len;
        }
        any_single_word |= a.single_word;
        s->v = xrealloc(s->v, (size_t)(s->n + 1) * sizeof *s->v);
        s->v[s->n++] = a;
    }
    free(t->added_tmp);
    t->added_tmp = NULL;
    t->n_added_tmp = t->cap_added_tmp = 0;
    added_set_build(&t->added_raw);
    added_set_build(&t->added_norm);
    if (any_single_word) {
        /* Rust's char::is_alphanumeric, plus '_': HF's word characters. */
        static const char wre[] = "[\\p{Alphabetic}\\p{N}_]";
        t->word_re = tok_regex_compile(wre, sizeof wre - 1, err);
        if (!t->word_re) return LP_EUNSUPPORTED;
    }

    for (size_t k = 0; k < sizeof eog_texts / sizeof *eog_texts; k++) {
        int32_t id = tok_find_n(t, eog_texts[k], strlen(eog_texts[k]));
        if (id >= 0 && t->vocab[id].type != TOK_NORMAL) t->vocab[id].eog = 1;
    }
    if (t->eos >= 0) t->vocab[t->eos].eog = 1;

    t->mctx = pcre2_match_context_create(NULL);
    if (!t->mctx) return lp_err(err, LP_ENOMEM, "out of memory (pcre2 match context)");
    /* Fixed tokenizer regexes need few steps per match; a hostile pattern
     * from a tokenizer.json fails the request instead of spinning. */
    pcre2_set_match_limit(t->mctx, 10u * 1000 * 1000);
    pcre2_set_depth_limit(t->mctx, 100000);
    rc = LP_OK;
    return rc;
}

void lp_tokenizer_destroy(struct lp_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        free(t->vocab[i].text);
        free(t->vocab[i].dec_text);
    }
    free(t->vocab);
    free(t->map.slot);
    free(t->merges);
    for (int i = 0; i < t->added_raw.n; i++)
        free(t->added_raw.v[i].text);
    for (int i = 0; i < t->added_norm.n; i++)
        free(t->added_norm.v[i].text);
    free(t->added_raw.v);
    free(t->added_norm.v);
    free(t->added_tmp);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
        pcre2_code_free(t->norm[i].re);
    }
    tok_pre_clear(t);
    for (int i = 0; i < t->dec.n_replace; i++) {
        free(t->dec.replace[i].from);
        free(t->dec.replace[i].to);
    }
    pcre2_match_context_free(t->mctx);
    pcre2_code_free(t->word_re);
    free(t);
}

/* ------------------------------------------------------------------ encode */

void tok_ids_push(struct tok_ids *o, int32_t id) {
    if (o->oom) return;
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 64;
        int32_t *v = realloc(o->v, cap * sizeof *v);
        if (!v) {
            o->oom = 1;
            return;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
}

struct enc {
    const struct lp_tokenizer *t;
    struct tok_pre_ctx pre;
    struct tok_bpe_scratch bpe;
    struct tok_ids out;
    int parse_special;
    char *nbuf; /* normalized text of the current segment */
    size_t nbuf_cap;
    int oom;
};

/* The longest added token at s[i] (NULL if none). */
static const struct tok_added *added_at(const struct tok_added_set *set, const char *s, size_t len,
                                        size_t i) {
    unsigned char b = (unsigned char)s[i];
    for (int k = set->first[b]; k < set->first[b + 1]; k++) {
        const struct tok_added *a = &set->v[k];
        if (a->len <= len - i && memcmp(s + i, a->text, a->len) == 0) return a;
    }
    return NULL;
}

static uint32_t last_char(const char *s, size_t end, size_t *start) {
    size_t i = end;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i > 0) i--;
    int n;
    *start = i;
    return tok_utf8_decode(s + i, end - i, &n);
}

static int is_word_char(const struct lp_tokenizer *t, pcre2_match_data *md, const char *s,
                        size_t len) {
    int n;
    tok_utf8_decode(s, len, &n);
    return pcre2_match(t->word_re, (PCRE2_SPTR)s, (size_t)n, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK,
                       md, t->mctx) >= 0;
}

typedef void (*segment_fn)(struct enc *e, const char *s, size_t len, int first);

/* Splits s on the tokens of `set` the way HF's AddedVocabulary::find_matches
 * does; plain stretches go to fn, tokens to the output. */
static void split_added(struct enc *e, const struct tok_added_set *set, const char *s, size_t len,
                        int first, segment_fn fn) {
    const struct lp_tokenizer *t = e->t;
    size_t start_off = 0, i = 0;
    if (set->n == 0) {
        if (len) fn(e, s, len, first);
        return;
    }
    while (i < len) {
        const struct tok_added *a = added_at(set, s, len, i);
        if (!a) {
            i += (size_t)tok_utf8_len((unsigned char)s[i]);
            continue;
        }
        size_t ms = i, me = i + a->len;
        i = me; /* a refused match still consumes its text, as find_iter does */
        if (a->special && !e->parse_special) continue;
        if (a->single_word) {
            size_t ps;
            int left_word =
                ms > 0 && (last_char(s, ms, &ps), is_word_char(t, e->pre.md, s + ps, ms - ps));
            int right_word = me < len && is_word_char(t, e->pre.md, s + me, len - me);
            if (left_word || right_word) continue;
        }
        if (a->lstrip) {
            size_t ns = ms;
            while (ns > start_off) {
                size_t ps;
                uint32_t cp = last_char(s, ns, &ps);
                if (!tok_is_white_space(cp)) break;
                ns = ps;
            }
            ms = ns;
        }
        if (a->rstrip) {
            while (me < len) {
                int n;
                uint32_t cp = tok_utf8_decode(s + me, len - me, &n);
                if (!tok_is_white_space(cp)) break;
                me += (size_t)n;
            }
            i = me;
        }
        if (start_off < ms) fn(e, s + start_off, ms - start_off, first && start_off == 0);
        tok_ids_push(&e->out, a->id);
        start_off = me;
    }
    if (start_off < len) fn(e, s + start_off, len - start_off, first && start_off == 0);
}

static void run_pre(struct enc *e, const char *s, size_t len, int first) {
    tok_pre_run(&e->pre, s, len, first);
}

static void raw_segment(struct enc *e, const char *s, size_t len, int first) {
    size_t n = len;
    const char *p = tok_normalize(e->t, s, len, &e->nbuf, &e->nbuf_cap, &n);
    if (!p) {
        e->oom = 1;
        return;
    }
    /* The normalized text lives in nbuf until this segment is done: the
     * normalized-token split and the pre-tokenizer copy what they keep. */
    split_added(e, &e->t->added_norm, p, n, first, run_pre);
}

int lp_tokenizer_encode(const struct lp_tokenizer *t, const char *text, size_t len, int add_special,
                        int parse_special, int32_t **ids, size_t *n_ids, char *err) {
    if (!t || !ids || !n_ids || (!text && len)) return lp_err(err, LP_EINVAL, "bad arguments");
    *ids = NULL;
    *n_ids = 0;
    if (len && !tok_utf8_valid(text, len)) return lp_err(err, LP_EINVAL, "text is not valid UTF-8");
    struct enc e;
    memset(&e, 0, sizeof e);
    e.t = t;
    e.parse_special = parse_special;
    e.pre.t = t;
    e.pre.bpe = &e.bpe;
    e.pre.out = &e.out;
    e.pre.md = pcre2_match_data_create(1, NULL);
    if (!e.pre.md) return lp_err(err, LP_ENOMEM, "out of memory");
    if (add_special)
        for (int i = 0; i < t->n_prefix; i++)
            tok_ids_push(&e.out, t->prefix[i]);
    if (len) split_added(&e, &t->added_raw, text, len, 1, raw_segment);
    if (add_special)
        for (int i = 0; i < t->n_suffix; i++)
            tok_ids_push(&e.out, t->suffix[i]);

    int rc = LP_OK;
    if (e.oom || e.out.oom || e.bpe.oom || e.pre.status == LP_ENOMEM)
        rc = lp_err(err, LP_ENOMEM, "out of memory tokenizing %zu bytes", len);
    else if (e.pre.status)
        rc = lp_err(err, e.pre.status, "pre-tokenizer regex failed (match limit?)");
    free(e.nbuf);
    tok_bpe_scratch_free(&e.bpe);
    tok_pre_ctx_free(&e.pre);
    pcre2_match_data_free(e.pre.md);
    if (rc) {
        free(e.out.v);
        return rc;
    }
    *ids = e.out.v ? e.out.v : malloc(sizeof(int32_t));
    if (!*ids) return lp_err(err, LP_ENOMEM, "out of memory");
    *n_ids = e.out.n;
    return LP_OK;
}

/* ------------------------------------------------------------------ decode */

enum {
    DETOK_TOKEN_SEEN = 1, /* a (non-skipped) token was pushed */
    DETOK_EMITTED = 2,    /* the decoder produced at least one byte */
    DETOK_PER_BYTE = 4,   /* byte-fallback model: bad bytes become one U+FFFD each */
    DETOK_STRIP_SHIFT = 8 /* leading strip characters removed so far */
};

static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Replaces every `from` in s[0..*n) with `to` (within cap). */
static void replace_in(char *s, size_t *n, size_t cap, const char *from, size_t flen,
                       const char *to, size_t tlen) {
    if (!flen) return;
    char tmp[4 * TOK_MAX_TEXT];
    size_t o = 0;
    for (size_t i = 0; i < *n;) {
        if (i + flen <= *n && memcmp(s + i, from, flen) == 0) {
            if (o + tlen > sizeof tmp) break;
            memcpy(tmp + o, to, tlen);
            o += tlen;
            i += flen;
        } else {
            if (o + 1 > sizeof tmp) break;
            tmp[o++] = s[i++];
        }
    }
    if (o > cap) o = cap;
    memcpy(s, tmp, o);
    *n = o;
}

/* The bytes token `id` decodes to, as the HF decoder chain makes them.
 * *is_byte says the piece is one byte-fallback byte. */
static size_t token_piece(const struct lp_tokenizer *t, int32_t id, int *flags, char *p, size_t cap,
                          int *is_byte) {
    const struct tok_entry *e = &t->vocab[id];
    const struct tok_decoder *d = &t->dec;
    const char *text = e->dec_text ? e->dec_text : e->text;
    size_t tlen = e->dec_text ? e->dec_len : e->len;
    size_t n = 0;
    *is_byte = 0;
    if (d->none) {
        if (*flags & DETOK_TOKEN_SEEN) p[n++] = ' ';
        memcpy(p + n, text, tlen);
        return n + tlen;
    }
    if (d->bytelevel) {
        /* Every char back to its byte; a token with a char outside the map
         * (an added token with a space, say) is kept as its raw text. */
        int ok = 1;
        for (size_t i = 0; i < tlen && ok;) {
            int k;
            uint32_t cp = tok_utf8_decode(text + i, tlen - i, &k);
            if (cp >= 512 || t->u2b[cp] < 0)
                ok = 0;
            else
                p[n++] = (char)t->u2b[cp];
            i += (size_t)k;
        }
        if (!ok) {
            memcpy(p, text, tlen);
            n = tlen;
        }
    } else {
        memcpy(p, text, tlen);
        n = tlen;
    }
    for (int r = 0; r < d->n_replace; r++)
        replace_in(p, &n, cap, d->replace[r].from, d->replace[r].flen, d->replace[r].to,
                   d->replace[r].tlen);
    if (d->metaspace) {
        int first = !(*flags & DETOK_TOKEN_SEEN) && d->ms_drop_first;
        replace_in(p, &n, cap, d->ms_repl, (size_t)d->ms_repl_len, " ", first ? 0 : 1);
    }
    if (d->byte_fallback && e->len == 6 && memcmp(e->text, "<0x", 3) == 0 && e->text[5] == '>') {
        char hex[3] = {e->text[3], e->text[4], 0};
        char *end;
        long v = strtol(hex, &end, 16);
        if (*end == 0 && v >= 0 && v < 256) {
            p[0] = (char)v;
            n = 1;
            *is_byte = 1;
        }
    }
    if (d->strip_start || d->strip_stop) {
        size_t cl = (size_t)d->strip_char_len;
        if (d->strip_global) {
            int done = *flags >> DETOK_STRIP_SHIFT;
            size_t off = 0;
            while (!(*flags & DETOK_EMITTED) && done < d->strip_start && n - off >= cl &&
                   memcmp(p + off, d->strip_char, cl) == 0) {
                off += cl;
                done++;
            }
            memmove(p, p + off, n - off);
            n -= off;
            *flags = (*flags & ((1 << DETOK_STRIP_SHIFT) - 1)) | (done << DETOK_STRIP_SHIFT);
        } else {
            size_t off = 0;
            for (int k = 0;
                 k < d->strip_start && n - off >= cl && memcmp(p + off, d->strip_char, cl) == 0;
                 k++)
                off += cl;
            memmove(p, p + off, n - off);
            n -= off;
            for (int k = 0;
                 k < d->strip_stop && n >= cl && memcmp(p + n - cl, d->strip_char, cl) == 0; k++)
                n -= cl;
        }
    }
    return n;
}

void lp_detok_init(struct lp_detok *d) { memset(d, 0, sizeof *d); }

/* Emits the whole characters of buf[0..n) into out, turning invalid bytes into
 * U+FFFD (one per maximal invalid subpart, or per byte), and keeps an
 * incomplete tail in d->pending. Stops adding U+FFFD when out is full. */
static size_t utf8_emit(struct lp_detok *d, const char *buf, size_t n, char *out, size_t cap) {
    const unsigned char *b = (const unsigned char *)buf;
    int per_byte = d->flags & DETOK_PER_BYTE;
    size_t o = 0, i = 0;
    d->n_pending = 0;
    while (i < n) {
        int bad;
        int L = utf8_check(b + i, n - i, &bad);
        if (L > 0) {
            if (o + (size_t)L > cap) break;
            memcpy(out + o, b + i, (size_t)L);
            o += (size_t)L;
            i += (size_t)L;
        } else if (L < 0) {
            memcpy(d->pending, b + i, n - i);
            d->n_pending = (int)(n - i);
            break;
        } else {
            int reps = per_byte ? bad : 1;
            for (int r = 0; r < reps && o + 3 <= cap; r++) {
                memcpy(out + o, fffd, 3);
                o += 3;
            }
            i += (size_t)bad;
        }
    }
    return o;
}

size_t lp_detok_push(const struct lp_tokenizer *t, struct lp_detok *d, int32_t id, int skip_special,
                     char *out, size_t cap) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    if (skip_special && t->vocab[id].special) return 0;
    char buf[8 + 4 * TOK_MAX_TEXT];
    int is_byte;
    if (t->dec.byte_fallback) d->flags |= DETOK_PER_BYTE;
    size_t n = token_piece(t, id, &d->flags, buf + 8, sizeof buf - 8, &is_byte);
    d->flags |= DETOK_TOKEN_SEEN;
    if (n) d->flags |= DETOK_EMITTED;
    size_t o = 0;
    if (d->n_pending && t->dec.byte_fallback && !is_byte) {
        /* HF's ByteFallback: a byte run cut short becomes one U+FFFD a byte. */
        for (int r = 0; r < d->n_pending && o + 3 <= cap; r++) {
            memcpy(out + o, fffd, 3);
            o += 3;
        }
        d->n_pending = 0;
    }
    size_t np = (size_t)d->n_pending;
    memcpy(buf + 8 - np, d->pending, np);
    return o + utf8_emit(d, buf + 8 - np, np + n, out + o, cap - o);
}

size_t lp_detok_flush(struct lp_detok *d, char *out, size_t cap) {
    size_t o = 0;
    if (d->n_pending) {
        int reps = (d->flags & DETOK_PER_BYTE) ? d->n_pending : 1;
        for (int r = 0; r < reps && o + 3 <= cap; r++) {
            memcpy(out + o, fffd, 3);
            o += 3;
        }
    }
    d->n_pending = 0;
    return o;
}

int lp_tokenizer_decode(const struct lp_tokenizer *t, const int32_t *ids, size_t n,
                        int skip_special, char **out, char *err) {
    if (!t || !out || (!ids && n)) return lp_err(err, LP_EINVAL, "bad arguments");
    *out = NULL;
    size_t cap = 64 + n * 8, len = 0;
    char *s = malloc(cap);
    if (!s) return lp_err(err, LP_ENOMEM, "out of memory decoding %zu tokens", n);
    struct lp_detok d;
    lp_detok_init(&d);
    enum { STEP = 3 * (LP_DETOK_MAX + 8) };
    for (size_t i = 0; i <= n; i++) {
        if (cap - len < STEP + 1) {
            size_t nc = cap * 2 + STEP;
            char *ns = realloc(s, nc);
            if (!ns) {
                free(s);
                return lp_err(err, LP_ENOMEM, "out of memory decoding %zu tokens", n);
            }
            s = ns;
            cap = nc;
        }
        if (i == n) {
            len += lp_detok_flush(&d, s + len, STEP);
            break;
        }
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            free(s);
            return lp_err(err, LP_EINVAL, "token id %d out of range [0, %d)", ids[i], t->n_vocab);
        }
        len += lp_detok_push(t, &d, ids[i], skip_special, s + len, STEP);
    }
    s[len] = 0;
    *out = s;
    return LP_OK;
}

/* ------------------------------------------------------------------ accessors */

int64_t lp_tokenizer_n_vocab(const struct lp_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t lp_tokenizer_bos(const struct lp_tokenizer *t) { return t ? t->bos : -1; }
int32_t lp_tokenizer_eos(const struct lp_tokenizer *t) { return t ? t->eos : -1; }

int lp_tokenizer_is_eog(const struct lp_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && t->vocab[id].eog;
}

const char *lp_tokenizer_token_text(const struct lp_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return t->vocab[id].text;
}

int32_t lp_tokenizer_find(const struct lp_tokenizer *t, const char *text) {
    if (!t || !text) return -1;
    return tok_find_n(t, text, strlen(text));
}

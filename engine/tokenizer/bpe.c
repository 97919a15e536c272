/* bpe.c: the merge engine for one pre-tokenized word, in two modes:
 *  - ranked merges (HF BPE and GGUF "gpt2"): symbols start as characters
 *    (or, byte-level, as the GPT-2 unicode stand-ins of the bytes); unknown
 *    characters become <0xAB> byte tokens (byte_fallback) or <unk>; then the
 *    adjacent pair with the lowest merge rank (leftmost on ties) is merged
 *    until none is left, exactly as tokenizers' Word::merge_all;
 *  - scores (GGUF "llama", SentencePiece): any adjacent pair whose
 *    concatenation is a token merges, highest score first (leftmost on ties),
 *    and what stays unknown becomes byte tokens, as llama.cpp's SPM session.
 * The pair->rank map is a hash table, so a merge step costs O(log n) and
 * 1 MB of text encodes in well under a second. */
#include <stdlib.h>
#include <string.h>

#include "lp_common.h"
#include "tok_internal.h"

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
 * other 68 bytes take code points 256.. in byte order. */
void tok_bytelevel_tables(uint16_t b2u[256], int16_t u2b[512]) {
    for (int i = 0; i < 512; i++)
        u2b[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        b2u[b] = (uint16_t)(printable ? b : 256 + n++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

/* ------------------------------------------------------------------ merge map */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint64_t merge_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

int tok_merges_reserve(struct lp_tokenizer *t, size_t n) {
    uint32_t cap = 16;
    while (cap < 2 * n + 16) {
        if (cap >= (1u << 30)) return LP_ERANGE;
        cap <<= 1;
    }
    free(t->merges);
    t->merges = xcalloc(cap, sizeof *t->merges);
    t->merges_cap = cap;
    return LP_OK;
}

int tok_merges_add(struct lp_tokenizer *t, int32_t a, int32_t b, int32_t id, int32_t rank,
                   char *err) {
    ENSURE(t->merges_cap);
    uint64_t key = merge_key(a, b);
    uint32_t mask = t->merges_cap - 1;
    uint32_t probes = 0;
    for (uint32_t i = (uint32_t)mix64(key) & mask;; i = (i + 1) & mask) {
        struct tok_merge *m = &t->merges[i];
        if (m->key == 0 || m->key == key) {
            m->key = key;
            m->rank = rank;
            m->id = id;
            return LP_OK;
        }
        if (++probes > t->merges_cap) return lp_err(err, LP_ERANGE, "merge table full");
    }
}

static const struct tok_merge *merge_find(const struct lp_tokenizer *t, int32_t a, int32_t b) {
    if (a < 0 || b < 0 || !t->merges_cap) return NULL;
    uint64_t key = merge_key(a, b);
    uint32_t mask = t->merges_cap - 1;
    for (uint32_t i = (uint32_t)mix64(key) & mask;; i = (i + 1) & mask) {
        const struct tok_merge *m = &t->merges[i];
        if (m->key == 0) return NULL;
        if (m->key == key) return m;
    }
}

/* ------------------------------------------------------------------ engine */

#define SYM_REMOVED (-2)
struct sym {
    int32_t id;    /* token id, -1 while unknown (score mode), SYM_REMOVED once merged */
    int32_t start; /* byte offset in the word */
    int32_t len;   /* bytes of the word it covers */
    int32_t prev, next;
};

struct cand {
    double prio;  /* lower is better: rank, or -score */
    int32_t pos;  /* left symbol */
    int32_t id;   /* merged token */
    int32_t size; /* bytes of the pair when pushed (stale check, score mode) */
};

static int cand_less(const struct cand *a, const struct cand *b) {
    if (a->prio != b->prio) return a->prio < b->prio;
    return a->pos < b->pos;
}

struct heap {
    struct cand *v;
    size_t n, cap;
    struct tok_bpe_scratch *s;
};

static void heap_push(struct heap *h, struct cand c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        struct cand *v = realloc(h->v, cap * sizeof *v);
        if (!v) {
            h->s->oom = 1;
            return;
        }
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
}

static struct cand heap_pop(struct heap *h) {
    struct cand top = h->v[0];
    struct cand last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *best = &last;
        if (l < h->n && cand_less(&h->v[l], best)) {
            m = l;
            best = &h->v[l];
        }
        if (r < h->n && cand_less(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

void tok_bpe_scratch_free(struct tok_bpe_scratch *s) {
    free(s->sym);
    free(s->heap);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* SentencePiece builds only normal and user-defined pieces from text (its
 * pieces_ map); control, unknown and byte pieces are never merge results. */
static int spm_piece(const struct lp_tokenizer *t, int32_t id) {
    int ty = t->vocab[id].type;
    return ty == TOK_NORMAL || ty == TOK_USER;
}

/* Pushes the candidate for symbols (l, l.next), if that pair merges. */
static void try_pair(const struct lp_tokenizer *t, const char *w, struct sym *sy, int32_t l,
                     struct heap *h) {
    if (l < 0) return;
    int32_t r = sy[l].next;
    if (r < 0) return;
    if (t->model == TOK_MODEL_SPM_SCORES) {
        size_t n = (size_t)sy[l].len + (size_t)sy[r].len;
        int32_t id = tok_find_n(t, w + sy[l].start, n);
        if (id < 0 || !spm_piece(t, id)) return;
        heap_push(h, (struct cand){-(double)t->vocab[id].score, l, id, (int32_t)n});
    } else {
        const struct tok_merge *m = merge_find(t, sy[l].id, sy[r].id);
        if (m) heap_push(h, (struct cand){(double)m->rank, l, m->id, 0});
    }
}

static int32_t model_find(const struct lp_tokenizer *t, const char *s, size_t n) {
    int32_t id = tok_find_n(t, s, n);
    if (id < 0) return -1;
    if (t->model == TOK_MODEL_SPM_SCORES) return spm_piece(t, id) ? id : -1;
    return t->vocab[id].in_model ? id : -1;
}

void tok_bpe_word(const struct lp_tokenizer *t, struct tok_bpe_scratch *s, const char *w,
                  size_t len, struct tok_ids *out) {
    if (!len) return;
    if (len > INT32_MAX / 4) {
        s->oom = 1;
        return;
    }
    /* Byte-level: the word in GPT-2 unicode chars (for ignore_merges and for
     * byte fallback of a char the vocabulary lacks). */
    if (t->ignore_merges) {
        const char *q = w;
        size_t qn = len;
        if (t->bytelevel) {
            if (grow((void **)&s->buf, &s->buf_cap, 2 * len, 1)) {
                s->oom = 1;
                return;
            }
            qn = 0;
            for (size_t i = 0; i < len; i++)
                qn += (size_t)tok_utf8_encode(t->b2u[(unsigned char)w[i]], s->buf + qn);
            q = s->buf;
        }
        int32_t id = model_find(t, q, qn);
        if (id >= 0) {
            tok_ids_push(out, id);
            return;
        }
    }
    if (grow(&s->sym, &s->sym_cap, len + 1, sizeof(struct sym))) {
        s->oom = 1;
        return;
    }
    struct sym *sy = s->sym;
    int32_t n = 0;
    int32_t unk_len = -1; /* pending <unk> (HF fuses consecutive unknowns) */
    int32_t unk_start = 0;

#define ADD_SYM(ID, ST, LEN)                                                                       \
    do {                                                                                           \
        sy[n] = (struct sym){(ID), (int32_t)(ST), (int32_t)(LEN), n - 1, n + 1};                   \
        n++;                                                                                       \
    } while (0)

    for (size_t i = 0; i < len;) {
        char cbuf[4];
        const char *c;
        int clen;
        int32_t id;
        if (t->bytelevel) {
            unsigned char b = (unsigned char)w[i];
            clen = 1;
            id = t->bchar_id[b];
            tok_utf8_encode(t->b2u[b], cbuf);
            c = cbuf;
        } else {
            clen = tok_utf8_len((unsigned char)w[i]);
            if ((size_t)clen > len - i) clen = 1;
            c = w + i;
            id = model_find(t, c, (size_t)clen);
        }
        if (t->model == TOK_MODEL_SPM_SCORES) {
            ADD_SYM(id, i, clen);
            i += (size_t)clen;
            continue;
        }
        if (id >= 0) {
            if (unk_len >= 0) {
                ADD_SYM(t->unk_id, unk_start, unk_len);
                unk_len = -1;
            }
            ADD_SYM(id, i, clen);
            i += (size_t)clen;
            continue;
        }
        /* Unknown char: its bytes (of the GPT-2 stand-in, byte-level) */
        int nb = t->bytelevel ? tok_utf8_len((unsigned char)c[0]) : clen;
        int all = t->byte_fallback;
        for (int k = 0; k < nb && all; k++)
            if (t->byte_id[(unsigned char)c[k]] < 0) all = 0;
        if (all) {
            /* HF adds the byte tokens without flushing a pending <unk> first. */
            if (grow(&s->sym, &s->sym_cap, (size_t)n + (size_t)nb + (len - i) + 1,
                     sizeof(struct sym))) {
                s->oom = 1;
                return;
            }
            sy = s->sym;
            for (int k = 0; k < nb; k++)
                ADD_SYM(t->byte_id[(unsigned char)c[k]], i, 1);
        } else if (t->unk_id >= 0) {
            if (unk_len >= 0 && t->fuse_unk) {
                unk_len += clen;
            } else {
                if (unk_len >= 0) ADD_SYM(t->unk_id, unk_start, unk_len);
                unk_start = (int32_t)i;
                unk_len = clen;
            }
        }
        i += (size_t)clen;
    }
    if (unk_len >= 0) ADD_SYM(t->unk_id, unk_start, unk_len);
#undef ADD_SYM
    if (n == 0) return;
    sy[n - 1].next = -1;

    struct heap h = {s->heap, 0, s->heap_cap, s};
    for (int32_t k = 0; k + 1 < n; k++)
        try_pair(t, w, sy, k, &h);
    while (h.n && !s->oom) {
        struct cand c = heap_pop(&h);
        struct sym *l = &sy[c.pos];
        if (l->id == SYM_REMOVED || l->next < 0) continue;
        struct sym *r = &sy[l->next];
        if (t->model == TOK_MODEL_SPM_SCORES) {
            if (l->len + r->len != c.size) continue; /* stale */
        } else {
            const struct tok_merge *m = merge_find(t, l->id, r->id);
            if (!m || m->id != c.id) continue; /* stale */
        }
        l->id = c.id;
        l->len += r->len;
        r->len = 0;
        r->id = SYM_REMOVED;
        l->next = r->next;
        if (r->next >= 0) sy[r->next].prev = c.pos;
        try_pair(t, w, sy, l->prev, &h);
        try_pair(t, w, sy, c.pos, &h);
    }
    s->heap = h.v;
    s->heap_cap = h.cap;

    for (int32_t k = 0; k >= 0; k = sy[k].next) {
        if (sy[k].id >= 0) {
            tok_ids_push(out, sy[k].id);
            continue;
        }
        /* Score mode: a character no token covers becomes byte tokens. */
        const unsigned char *p = (const unsigned char *)w + sy[k].start;
        for (int32_t j = 0; j < sy[k].len; j++) {
            int32_t id = t->byte_id[p[j]];
            if (id < 0) id = t->unk_id;
            if (id >= 0) tok_ids_push(out, id);
        }
    }
}

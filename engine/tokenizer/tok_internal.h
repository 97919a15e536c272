/* tok_internal.h: what the tokenizer's files share: the tokenizer's fields,
 * the builder that the GGUF and tokenizer.json loaders fill, and the steps of
 * the encode pipeline (added tokens, normalizers, pre-tokenizers, BPE). Not a
 * public header: only engine/tokenizer/ and its tests include it. */
#ifndef LP_TOK_INTERNAL_H
#define LP_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Token types, numbered as GGUF's tokenizer.ggml.token_type. */
enum tok_type {
    TOK_NORMAL = 1,
    TOK_UNKNOWN = 2,
    TOK_CONTROL = 3,
    TOK_USER = 4, /* added, not special */
    TOK_UNUSED = 5,
    TOK_BYTE = 6,
};

/* Longest vocabulary text we accept: a decoded piece must fit one detok call. */
#define TOK_MAX_TEXT LP_DETOK_MAX

struct tok_entry {
    char *text;       /* NUL-terminated, owned; NULL for a hole in the id range */
    uint32_t len;     /* bytes */
    uint8_t type;     /* enum tok_type */
    uint8_t in_model; /* the BPE model may produce it (0: added token only) */
    uint8_t special;  /* skipped by decode(skip_special) */
    uint8_t eog;      /* generation stops here */
    float score;      /* SentencePiece score (score-merge models) */
    char *dec_text;   /* what decoding starts from, when not text (HF decodes a
                         normalized added token from its normalized content); owned */
    uint32_t dec_len;
};

/* An added token, matched in the text before the model sees it. */
struct tok_added {
    int32_t id;
    char *text; /* the pattern: the content, or the normalized content; owned */
    uint32_t len;
    uint8_t special;     /* matched only with parse_special */
    uint8_t lstrip;      /* swallows whitespace on its left */
    uint8_t rstrip;      /* swallows whitespace on its right */
    uint8_t single_word; /* matches only between word boundaries */
    uint8_t normalized;  /* matched in normalized text rather than raw text */
};

/* One set of added tokens: sorted by first byte, then by length descending, so
 * that the first hit at a position is the longest (HF: leftmost-longest). */
struct tok_added_set {
    struct tok_added *v;
    int n;
    int first[257]; /* v[first[b] .. first[b+1]) start with byte b */
};

enum tok_norm_kind {
    TOK_NORM_PREPEND = 1,
    TOK_NORM_REPLACE = 2,
    TOK_NORM_UNICODE = 3, /* NFC / NFD / NFKC / NFKD through utf8proc */
};
struct tok_norm {
    int kind;
    char *a; /* PREPEND: the prefix; REPLACE: literal pattern (NULL if re) */
    size_t alen;
    char *b; /* REPLACE: the replacement */
    size_t blen;
    pcre2_code *re; /* REPLACE with a regex pattern */
    int uform;      /* UNICODE: utf8proc_option_t flags of the form */
};

enum tok_split_behavior {
    TOK_SPLIT_REMOVED = 0,
    TOK_SPLIT_ISOLATED = 1,
    TOK_SPLIT_MERGED_PREV = 2,
    TOK_SPLIT_MERGED_NEXT = 3,
    TOK_SPLIT_CONTIGUOUS = 4,
};
enum tok_pre_kind { TOK_PRE_SPLIT = 1, TOK_PRE_BYTELEVEL = 2, TOK_PRE_METASPACE = 3 };
enum tok_prepend { TOK_PREPEND_ALWAYS = 0, TOK_PREPEND_FIRST = 1, TOK_PREPEND_NEVER = 2 };

struct tok_pre {
    int kind;
    pcre2_code *re;       /* SPLIT; BYTELEVEL with use_regex (the GPT-2 regex) */
    int behavior;         /* SPLIT: enum tok_split_behavior */
    int invert;           /* SPLIT: the pieces are the non-matches */
    int add_prefix_space; /* BYTELEVEL */
    char repl[8];         /* METASPACE: the replacement (UTF-8, usually U+2581) */
    int repl_len;
    int prepend_scheme; /* METASPACE: enum tok_prepend */
    int split;          /* METASPACE: split at each replacement */
};

/* The decoder chain, reduced to what the supported HF decoders do per token. */
struct tok_decoder {
    int none;          /* no decoder: tokens joined with " " */
    int bytelevel;     /* GPT-2 unicode chars back to bytes */
    int byte_fallback; /* "<0xAB>" tokens are raw bytes */
    int n_replace;
    struct {
        char *from, *to;
        size_t flen, tlen;
    } replace[4];
    int metaspace;     /* replacement char -> ' ', dropped in the first token */
    char ms_repl[8];   /* METASPACE replacement */
    int ms_repl_len;   /* */
    int ms_drop_first; /* prepend_scheme != never */
    int strip_start;   /* Strip decoder: leading copies of strip_char removed */
    int strip_stop;    /* trailing copies removed (per token only) */
    int strip_global;  /* after Fuse: strips the whole output, not each token */
    char strip_char[8];
    int strip_char_len;
};

/* Open-addressing map from token text to id (power-of-two capacity). */
struct tok_strmap {
    uint32_t cap;
    int32_t *slot; /* id or -1 */
};

/* Map from a pair of ids to (rank, merged id). */
struct tok_merge {
    uint64_t key; /* (a << 32 | b) + 1; 0 = empty */
    int32_t rank;
    int32_t id;
};

enum tok_model { TOK_MODEL_BPE = 1, TOK_MODEL_SPM_SCORES = 2 };

#define TOK_MAX_NORM 8
#define TOK_MAX_PRE 8

struct lp_tokenizer {
    int32_t n_vocab;
    struct tok_entry *vocab; /* [n_vocab] */
    struct tok_strmap map;   /* text -> id over the model vocabulary and added tokens */
    int model;               /* enum tok_model */
    struct tok_merge *merges;
    uint32_t merges_cap;
    int byte_fallback;
    int fuse_unk;
    int ignore_merges;
    int32_t unk_id;        /* -1 if none */
    int32_t byte_id[256];  /* "<0xAB>" tokens, -1 where absent */
    int32_t bchar_id[256]; /* byte-level models: id of the char standing for byte b */
    uint16_t b2u[256];     /* GPT-2 byte -> unicode code point */
    int16_t u2b[512];      /* and back; -1 where no byte maps there */

    struct tok_added *added_tmp; /* collected by tok_add_added until tok_finish */
    int n_added_tmp, cap_added_tmp;
    struct tok_added_set added_raw;  /* matched in raw text */
    struct tok_added_set added_norm; /* matched in normalized text */

    struct tok_norm norm[TOK_MAX_NORM];
    int n_norm;
    struct tok_pre pre[TOK_MAX_PRE];
    int n_pre;
    int bytelevel; /* the model works on GPT-2 unicode chars */
    struct tok_decoder dec;

    int32_t bos, eos;
    int32_t prefix[4], suffix[4]; /* added by add_special */
    int n_prefix, n_suffix;

    pcre2_match_context *mctx; /* match limits, read-only after creation */
    pcre2_code *word_re;       /* single_word boundary test */
};

/* ---- the builder the loaders fill (tokenizer.c) ---- */

/* Creates an empty tokenizer with n_vocab holes; the loader fills vocab with
 * tok_set_token, then calls tok_finish. */
struct lp_tokenizer *tok_alloc(int32_t n_vocab);
/* Sets token `id`'s text (copied). Returns LP_OK or LP_EFORMAT (too long,
 * duplicate text, bad id). */
int tok_set_token(struct lp_tokenizer *t, int32_t id, const char *text, size_t len, int type,
                  int in_model, char *err);
/* Adds an added token (the vocabulary entry must already exist). */
int tok_add_added(struct lp_tokenizer *t, int32_t id, int special, int lstrip, int rstrip,
                  int single_word, int normalized, char *err);
/* Builds the text->id map (after every token is set; tok_finish calls it when
 * the loader did not need the map earlier, e.g. to resolve merges). */
void tok_build_map(struct lp_tokenizer *t);
/* Builds maps, byte tables, added-token sets and EOG flags; checks invariants. */
int tok_finish(struct lp_tokenizer *t, char *err);
int32_t tok_find_n(const struct lp_tokenizer *t, const char *text, size_t len);

/* ---- merges and the BPE engine (bpe.c) ---- */

void tok_bytelevel_tables(uint16_t b2u[256], int16_t u2b[512]);
/* Adds merge (a, b) -> id at `rank` (a later duplicate replaces an earlier one). */
int tok_merges_add(struct lp_tokenizer *t, int32_t a, int32_t b, int32_t id, int32_t rank,
                   char *err);
int tok_merges_reserve(struct lp_tokenizer *t, size_t n);

/* Growable id output of one encode call. */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
    int oom;
};
void tok_ids_push(struct tok_ids *o, int32_t id);

/* Scratch for the BPE engine, reused across the words of one encode call. */
struct tok_bpe_scratch {
    void *sym;
    size_t sym_cap;
    void *heap;
    size_t heap_cap;
    char *buf;
    size_t buf_cap;
    int oom;
};
void tok_bpe_scratch_free(struct tok_bpe_scratch *s);
/* Tokenizes one pre-tokenized word and appends its ids. */
void tok_bpe_word(const struct lp_tokenizer *t, struct tok_bpe_scratch *s, const char *w,
                  size_t len, struct tok_ids *out);

/* ---- normalizers and pre-tokenizers (pretok.c) ---- */

/* Compiles a tokenizer regex (UTF + UCP, JIT when available). `\s` is made to
 * mean Unicode White_Space as in Oniguruma (PCRE2 also counts U+180E). */
pcre2_code *tok_regex_compile(const char *pat, size_t len, char *err);
/* The split regexes for GGUF `tokenizer.ggml.pre`; fills t->pre. */
int tok_pre_from_gguf_name(struct lp_tokenizer *t, const char *name, size_t len, char *err);
int tok_pre_add_split(struct lp_tokenizer *t, const char *pat, size_t len, int literal,
                      int behavior, int invert, char *err);
int tok_pre_add_bytelevel(struct lp_tokenizer *t, int add_prefix_space, int use_regex, char *err);
int tok_pre_add_metaspace(struct lp_tokenizer *t, const char *repl, size_t len, int scheme,
                          int split, char *err);
int tok_norm_add(struct lp_tokenizer *t, int kind, const char *a, size_t alen, int a_is_regex,
                 const char *b, size_t blen, char *err);
void tok_pre_clear(struct lp_tokenizer *t);

/* Runs the normalizers over text[0..len); returns a pointer into *buf (grown as
 * needed) or text itself when there are none; NULL on out-of-memory. */
const char *tok_normalize(const struct lp_tokenizer *t, const char *text, size_t len, char **buf,
                          size_t *cap, size_t *out_len);

/* Per-call state of the pre-tokenizer pipeline. */
struct tok_pre_ctx {
    const struct lp_tokenizer *t;
    pcre2_match_data *md;
    struct tok_bpe_scratch *bpe;
    struct tok_ids *out;
    struct {
        size_t *v; /* (start, end) pairs */
        size_t n, cap;
        char *buf; /* strings made at this depth */
        size_t buf_cap;
    } level[TOK_MAX_PRE];
    int status; /* first error */
};
/* Pre-tokenizes one normalized piece and runs the model on each word. `first`
 * says whether the piece starts at offset 0 of the input (Metaspace "first"). */
void tok_pre_run(struct tok_pre_ctx *c, const char *s, size_t len, int first);
void tok_pre_ctx_free(struct tok_pre_ctx *c);

/* UTF-8 helpers (tokenizer.c). */
int tok_utf8_len(unsigned char c); /* length from the lead byte, 1 if invalid */
int tok_utf8_valid(const char *s, size_t len);
uint32_t tok_utf8_decode(const char *s, size_t len, int *n); /* n = bytes used */
int tok_utf8_encode(uint32_t cp, char *out);
int tok_is_white_space(uint32_t cp); /* Unicode White_Space (Rust char::is_whitespace) */

#endif

/* tokenizer.h: byte-level BPE (GPT-2 style, pre-tokenizer regexes through
 * PCRE2) and SentencePiece-style BPE with byte fallback, with added/special
 * tokens, BOS/EOS rules and incremental UTF-8-safe detokenization. Built from
 * GGUF metadata or from a Hugging Face tokenizer.json. */
#ifndef LP_TOKENIZER_H
#define LP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct gguf_ctx;
struct lp_tokenizer;

/* From GGUF `tokenizer.ggml.*` keys. */
int lp_tokenizer_from_gguf(const struct gguf_ctx *g, struct lp_tokenizer **out, char *err);

/* From the text of tokenizer.json (and, if not NULL, tokenizer_config.json,
 * which says add_bos_token / add_eos_token and may name bos/eos tokens). */
int lp_tokenizer_from_hf_json(const char *json, size_t len, const char *config_json,
                              size_t config_len, struct lp_tokenizer **out, char *err);

void lp_tokenizer_destroy(struct lp_tokenizer *t); /* NULL is a no-op */

/* Encodes text[0..len). add_special: add BOS/EOS as the model's rules say.
 * parse_special: text spelling a special/added token becomes that token
 * (otherwise it is tokenized as plain text). *ids is a new malloc'ed array
 * the caller frees. */
int lp_tokenizer_encode(const struct lp_tokenizer *t, const char *text, size_t len, int add_special,
                        int parse_special, int32_t **ids, size_t *n_ids, char *err);

/* Decodes ids into a new NUL-terminated malloc'ed string. skip_special:
 * control tokens produce no text. */
int lp_tokenizer_decode(const struct lp_tokenizer *t, const int32_t *ids, size_t n,
                        int skip_special, char **out, char *err);

int64_t lp_tokenizer_n_vocab(const struct lp_tokenizer *t);
int32_t lp_tokenizer_bos(const struct lp_tokenizer *t); /* -1 if none */
int32_t lp_tokenizer_eos(const struct lp_tokenizer *t); /* -1 if none */
/* 1 if generation should stop at this token (EOS, EOT, <|im_end|>, ...). */
int lp_tokenizer_is_eog(const struct lp_tokenizer *t, int32_t id);
/* The text of a token as stored in the vocabulary (borrowed), or NULL. */
const char *lp_tokenizer_token_text(const struct lp_tokenizer *t, int32_t id);
/* Finds a token by its exact vocabulary text; -1 if absent. */
int32_t lp_tokenizer_find(const struct lp_tokenizer *t, const char *text);

/* Incremental detokenization: feed one id at a time; `out` receives only
 * whole UTF-8 characters (at most LP_DETOK_MAX bytes per call plus what was
 * held back). Call lp_detok_flush at the end to release what is held (an
 * invalid tail becomes U+FFFD). */
#define LP_DETOK_MAX 256
struct lp_detok {
    char pending[8];
    int n_pending;
    int flags; /* private: first-token and leading-strip state of the decoder */
};
void lp_detok_init(struct lp_detok *d);
/* Returns the number of bytes written to out (cap >= LP_DETOK_MAX + 8). */
size_t lp_detok_push(const struct lp_tokenizer *t, struct lp_detok *d, int32_t id, int skip_special,
                     char *out, size_t cap);
size_t lp_detok_flush(struct lp_detok *d, char *out, size_t cap);

#endif

/* generate.h: a synchronous driver that runs a set of requests to completion
 * on one forward, sharing every step between them (prefill chunks beside
 * decodes). The CLI and the engine tests use it; the serving runtime has its
 * own scheduler on top of the same forward, KV cache and sampler. */
#ifndef LP_GENERATE_H
#define LP_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

struct lp_forward;
struct lp_tokenizer;

#define LP_MAX_LOGPROBS 20

struct lp_gen_request {
    const int32_t *prompt; /* [n_prompt] borrowed */
    size_t n_prompt;
    struct lp_sampling sampling;
    int max_tokens;          /* new tokens at most */
    int ignore_eos;          /* do not stop at end-of-generation tokens */
    int logprobs;            /* top-N logprobs per generated token, 0..LP_MAX_LOGPROBS */
    const char *const *stop; /* stop strings, borrowed, [n_stop] */
    int n_stop;
    int adapter; /* 0: base model; k > 0: the adapter in forward slot k - 1 */
};

struct lp_gen_result {
    int32_t *tokens; /* [n_tokens] generated ids, owned */
    size_t n_tokens;
    char *text;                /* detokenized output without the stop string, owned */
    const char *finish_reason; /* "stop" or "length" (static) */
    int32_t *top_ids;          /* [n_tokens, logprobs], owned, NULL if logprobs = 0 */
    float *top_lps;            /* [n_tokens, logprobs] */
    float *token_lps;          /* [n_tokens] logprob of each chosen token */
};

struct lp_gen_stats {
    int steps;
    long prefill_tokens;
    long decode_tokens;
    double prefill_s; /* wall time of steps that carried prompt tokens */
    double decode_s;  /* wall time of pure decode steps */
};

/* Runs all requests together. res is [n] caller storage, filled on success
 * (free each with lp_gen_result_clear). */
int lp_generate(struct lp_forward *f, const struct lp_tokenizer *tok,
                const struct lp_gen_request *reqs, int n, struct lp_gen_result *res,
                struct lp_gen_stats *stats, char *err);
void lp_gen_result_clear(struct lp_gen_result *r);

#endif

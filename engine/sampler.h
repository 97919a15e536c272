/* sampler.h: turns one row of logits into the next token: logit bias,
 * repetition / presence / frequency penalties, temperature, top-k, top-p,
 * min-p, and a per-request seeded generator so sampled output reproduces.
 * Also the top-N log-probabilities of the raw logits. */
#ifndef LP_SAMPLER_H
#define LP_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

struct lp_logit_bias {
    int32_t id;
    float bias;
};

/* Sampling parameters of a request (caller storage, copied by the sampler). */
struct lp_sampling {
    float temperature;        /* 0 = greedy */
    float top_p;              /* 1 = off */
    int top_k;                /* 0 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off; HF style over prompt and output */
    float presence_penalty;   /* 0 = off; OpenAI style over output */
    float frequency_penalty;  /* 0 = off; OpenAI style over output */
    uint64_t seed;            /* used when has_seed */
    int has_seed;
    const struct lp_logit_bias *logit_bias; /* borrowed, [n_logit_bias] */
    int n_logit_bias;
};

/* Defaults: greedy, no filtering, no penalties. */
void lp_sampling_default(struct lp_sampling *p);
/* Checks ranges; LP_EINVAL with a reason naming the field. */
int lp_sampling_validate(const struct lp_sampling *p, int n_vocab, char *err);

struct lp_sampler;

/* A sampler for one sequence. Without has_seed the seed comes from the
 * system's random source. */
struct lp_sampler *lp_sampler_create(const struct lp_sampling *p, int n_vocab);
void lp_sampler_destroy(struct lp_sampler *s);

/* Records a token of the prompt (for the repetition penalty). */
void lp_sampler_accept_prompt(struct lp_sampler *s, const int32_t *ids, size_t n);

/* Picks the next token from `logits` [n_vocab] (modified in place) and
 * records it as generated. */
int32_t lp_sampler_sample(struct lp_sampler *s, float *logits);

/* Log-softmax of raw logits: the top `k` (id, logprob) pairs, best first
 * (ties: lower id first), and the logprob of `chosen` (if >= 0). */
void lp_logprobs_top(const float *logits, int n_vocab, int k, int32_t *ids, float *lps,
                     int32_t chosen, float *chosen_lp);

#endif

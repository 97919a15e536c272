/* sampler.c: next-token selection. The order of processing follows the
 * common servers: bias, penalties, then temperature, top-k, top-p, min-p,
 * then a draw from the renormalised distribution. Greedy ties go to the lower
 * id so that results do not depend on the sort. */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lp_common.h"

struct cand {
    int32_t id;
    float logit;
};

struct lp_sampler {
    struct lp_sampling p;
    struct lp_logit_bias *bias; /* owned copy */
    int n_vocab;
    uint64_t rng[4];     /* xoshiro256** state */
    uint32_t *count_out; /* [n_vocab] times generated */
    uint8_t *seen;       /* [n_vocab] in prompt or output */
    struct cand *cands;  /* [n_vocab] scratch */
    double *probs;       /* [n_vocab] scratch */
};

void lp_sampling_default(struct lp_sampling *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 0.0f;
    p->top_p = 1.0f;
    p->repetition_penalty = 1.0f;
}

int lp_sampling_validate(const struct lp_sampling *p, int n_vocab, char *err) {
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
        return lp_err(err, LP_EINVAL, "temperature must be between 0 and 100");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return lp_err(err, LP_EINVAL, "top_p must be in (0, 1]");
    if (p->top_k < 0) return lp_err(err, LP_EINVAL, "top_k must be >= 0");
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return lp_err(err, LP_EINVAL, "min_p must be in [0, 1]");
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= 100.0f))
        return lp_err(err, LP_EINVAL, "repetition_penalty must be in (0, 100]");
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return lp_err(err, LP_EINVAL, "presence_penalty must be in [-2, 2]");
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return lp_err(err, LP_EINVAL, "frequency_penalty must be in [-2, 2]");
    for (int i = 0; i < p->n_logit_bias; i++) {
        if (p->logit_bias[i].id < 0 || p->logit_bias[i].id >= n_vocab)
            return lp_err(err, LP_EINVAL, "logit_bias: token id %d out of range",
                          p->logit_bias[i].id);
        if (!(p->logit_bias[i].bias >= -100.0f && p->logit_bias[i].bias <= 100.0f))
            return lp_err(err, LP_EINVAL, "logit_bias: values must be in [-100, 100]");
    }
    return LP_OK;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform double in [0, 1). */
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

struct lp_sampler *lp_sampler_create(const struct lp_sampling *p, int n_vocab) {
    struct lp_sampler *s = xcalloc(1, sizeof *s);
    s->p = *p;
    s->n_vocab = n_vocab;
    if (p->n_logit_bias > 0) {
        s->bias = xmalloc((size_t)p->n_logit_bias * sizeof *s->bias);
        memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
    }
    s->p.logit_bias = s->bias;
    uint64_t seed = p->seed;
    if (!p->has_seed && getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)(lp_time_now() * 1e9);
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&seed);
    s->count_out = xcalloc((size_t)n_vocab, sizeof *s->count_out);
    s->seen = xcalloc((size_t)n_vocab, 1);
    s->cands = xmalloc((size_t)n_vocab * sizeof *s->cands);
    s->probs = xmalloc((size_t)n_vocab * sizeof *s->probs);
    return s;
}

void lp_sampler_destroy(struct lp_sampler *s) {
    if (!s) return;
    free(s->bias);
    free(s->count_out);
    free(s->seen);
    free(s->cands);
    free(s->probs);
    free(s);
}

void lp_sampler_accept_prompt(struct lp_sampler *s, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < s->n_vocab) s->seen[ids[i]] = 1;
}

static int cand_cmp(const void *a, const void *b) {
    const struct cand *x = a, *y = b;
    if (x->logit > y->logit) return -1;
    if (x->logit < y->logit) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Rearranges c so that c[0..m) hold the m best candidates (cand_cmp order),
 * unsorted: quickselect with a median-of-three pivot. */
static void select_top(struct cand *c, int n, int m) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cand_cmp(&c[mid], &c[lo]) < 0) {
            struct cand t = c[mid];
            c[mid] = c[lo];
            c[lo] = t;
        }
        if (cand_cmp(&c[hi], &c[lo]) < 0) {
            struct cand t = c[hi];
            c[hi] = c[lo];
            c[lo] = t;
        }
        if (cand_cmp(&c[hi], &c[mid]) < 0) {
            struct cand t = c[hi];
            c[hi] = c[mid];
            c[mid] = t;
        }
        struct cand pivot = c[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (cand_cmp(&c[i], &pivot) < 0)
                i++;
            while (cand_cmp(&pivot, &c[j]) < 0)
                j--;
            if (i <= j) {
                struct cand t = c[i];
                c[i] = c[j];
                c[j] = t;
                i++;
                j--;
            }
        }
        /* now c[lo..j] <= pivot <= c[i..hi] in cand order */
        if (m - 1 <= j)
            hi = j;
        else if (m - 1 >= i)
            lo = i;
        else
            break;
    }
}

static int32_t argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int32_t lp_sampler_sample(struct lp_sampler *s, float *logits) {
    const struct lp_sampling *p = &s->p;
    const int nv = s->n_vocab;
    for (int i = 0; i < p->n_logit_bias; i++)
        logits[p->logit_bias[i].id] += p->logit_bias[i].bias;
    if (p->repetition_penalty != 1.0f) {
        for (int i = 0; i < nv; i++)
            if (s->seen[i])
                logits[i] = logits[i] > 0 ? logits[i] / p->repetition_penalty
                                          : logits[i] * p->repetition_penalty;
    }
    if (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f) {
        for (int i = 0; i < nv; i++)
            if (s->count_out[i])
                logits[i] -= p->frequency_penalty * (float)s->count_out[i] + p->presence_penalty;
    }
    int32_t id;
    if (p->temperature <= 1e-6f) {
        id = argmax(logits, nv);
    } else {
        struct cand *c = s->cands;
        int n = 0;
        for (int i = 0; i < nv; i++)
            if (!isnan(logits[i]) && logits[i] > -INFINITY)
                c[n++] = (struct cand){i, logits[i] / p->temperature};
        if (n == 0) {
            id = argmax(logits, nv);
            goto done;
        }
        /* Only the best candidates are ever sorted: top-k needs k of them;
         * top-p and min-p usually stop within a few dozen, so start with 64
         * and widen only when the cut-off is not reached. No filter: draw in
         * id order, no sort at all. */
        const int filters = p->top_p < 1.0f || p->min_p > 0.0f;
        const int k_cap = p->top_k > 0 && p->top_k < n ? p->top_k : n;
        double *pr = s->probs;
        double maxl = c[0].logit;
        for (int i = 1; i < n; i++)
            if (c[i].logit > maxl) maxl = c[i].logit;
        /* normaliser: over the top-k survivors if top-k is set, else over all */
        double sum = 0.0;
        int m = filters ? (k_cap < 64 ? k_cap : 64) : k_cap;
        if (p->top_k > 0 && k_cap < n) {
            select_top(c, n, k_cap);
            n = k_cap;
        }
        for (int i = 0; i < n; i++)
            sum += exp((double)c[i].logit - maxl);
        for (;;) {
            if (m < n) select_top(c, n, m);
            if (filters || m < n) qsort(c, (size_t)m, sizeof *c, cand_cmp);
            for (int i = 0; i < m; i++)
                pr[i] = exp((double)c[i].logit - maxl) / sum;
            int keep = m, reached = !filters;
            if (p->top_p < 1.0f) {
                double cum = 0.0;
                for (int i = 0; i < m; i++) {
                    cum += pr[i];
                    if (cum >= p->top_p) {
                        keep = i + 1;
                        reached = 1;
                        break;
                    }
                }
            }
            if (p->min_p > 0.0f) {
                double floor_p = pr[0] * p->min_p;
                int mk = 1;
                while (mk < keep && pr[mk] >= floor_p)
                    mk++;
                if (mk < keep || keep < m) reached = 1; /* the cut falls inside */
                keep = mk < keep ? mk : keep;
            }
            if (reached || m == n) {
                n = keep;
                break;
            }
            m = m * 4 < n ? m * 4 : n; /* widen and select again */
        }
        double total = 0.0;
        for (int i = 0; i < n; i++)
            total += pr[i];
        double r = rng_uniform(s->rng) * total, acc = 0.0;
        id = c[n - 1].id;
        for (int i = 0; i < n; i++) {
            acc += pr[i];
            if (r < acc) {
                id = c[i].id;
                break;
            }
        }
    }
done:
    s->count_out[id]++;
    s->seen[id] = 1;
    return id;
}

void lp_logprobs_top(const float *logits, int n_vocab, int k, int32_t *ids, float *lps,
                     int32_t chosen, float *chosen_lp) {
    float maxl = logits[0];
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > maxl) maxl = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - maxl);
    double lse = (double)maxl + log(sum);
    if (k > n_vocab) k = n_vocab;
    /* insertion into a small sorted list: k is tiny (<= 20) */
    int have = 0;
    for (int i = 0; i < n_vocab && k > 0; i++) {
        float v = logits[i];
        if (have == k && !(v > logits[ids[k - 1]])) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && v > logits[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    for (int i = 0; i < have; i++)
        lps[i] = (float)((double)logits[ids[i]] - lse);
    if (chosen >= 0 && chosen_lp) *chosen_lp = (float)((double)logits[chosen] - lse);
}

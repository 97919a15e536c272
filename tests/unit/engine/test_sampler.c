/* test_sampler.c: greedy, filters, penalties, seeded reproducibility and the
 * log-softmax top-k of the sampler. */
#include "lp_test.h"

#include <math.h>

#include "lp_common.h"
#include "sampler.h"

#define NV 50

static void fill(float *l, unsigned seed) {
    for (int i = 0; i < NV; i++) {
        seed = seed * 1103515245u + 12345u;
        l[i] = (float)((seed >> 8) % 1000) / 100.0f - 5.0f;
    }
}

static void test_greedy_and_bias(void **state) {
    (void)state;
    float l[NV];
    fill(l, 1);
    struct lp_sampling p;
    lp_sampling_default(&p);
    int best = 0;
    for (int i = 1; i < NV; i++)
        if (l[i] > l[best]) best = i;
    struct lp_sampler *s = lp_sampler_create(&p, NV);
    float c[NV];
    memcpy(c, l, sizeof c);
    assert_int_equal(lp_sampler_sample(s, c), best);
    lp_sampler_destroy(s);
    /* a logit bias of +100 on another token wins */
    struct lp_logit_bias b = {7 == best ? 8 : 7, 100.0f};
    p.logit_bias = &b;
    p.n_logit_bias = 1;
    s = lp_sampler_create(&p, NV);
    memcpy(c, l, sizeof c);
    assert_int_equal(lp_sampler_sample(s, c), b.id);
    lp_sampler_destroy(s);
}

static void test_seed_reproducible(void **state) {
    (void)state;
    struct lp_sampling p;
    lp_sampling_default(&p);
    p.temperature = 1.0f;
    p.seed = 1234;
    p.has_seed = 1;
    int32_t a[64], b[64];
    for (int run = 0; run < 2; run++) {
        struct lp_sampler *s = lp_sampler_create(&p, NV);
        for (int t = 0; t < 64; t++) {
            float l[NV];
            fill(l, (unsigned)t + 7);
            (run ? b : a)[t] = lp_sampler_sample(s, l);
        }
        lp_sampler_destroy(s);
    }
    assert_memory_equal(a, b, sizeof a);
    int distinct = 0;
    for (int t = 1; t < 64; t++)
        distinct += a[t] != a[0];
    assert_true(distinct > 0); /* it really samples */
}

static void test_top_k_one_is_greedy(void **state) {
    (void)state;
    struct lp_sampling p;
    lp_sampling_default(&p);
    p.temperature = 2.0f;
    p.top_k = 1;
    p.has_seed = 1;
    for (int t = 0; t < 20; t++) {
        float l[NV];
        fill(l, (unsigned)t);
        int best = 0;
        for (int i = 1; i < NV; i++)
            if (l[i] > l[best]) best = i;
        p.seed = (uint64_t)t;
        struct lp_sampler *s = lp_sampler_create(&p, NV);
        assert_int_equal(lp_sampler_sample(s, l), best);
        lp_sampler_destroy(s);
    }
}

static void test_top_p_and_min_p_filter(void **state) {
    (void)state;
    /* one dominant token: top_p 0.5 and min_p 0.5 both keep only it */
    float l[NV];
    for (int i = 0; i < NV; i++)
        l[i] = 0.0f;
    l[13] = 10.0f;
    for (int mode = 0; mode < 2; mode++) {
        struct lp_sampling p;
        lp_sampling_default(&p);
        p.temperature = 1.0f;
        p.has_seed = 1;
        if (mode == 0)
            p.top_p = 0.5f;
        else
            p.min_p = 0.5f;
        for (int t = 0; t < 50; t++) {
            p.seed = (uint64_t)t;
            struct lp_sampler *s = lp_sampler_create(&p, NV);
            float c[NV];
            memcpy(c, l, sizeof c);
            assert_int_equal(lp_sampler_sample(s, c), 13);
            lp_sampler_destroy(s);
        }
    }
}

static void test_repetition_penalty(void **state) {
    (void)state;
    float l[NV];
    for (int i = 0; i < NV; i++)
        l[i] = 0.0f;
    l[3] = 2.0f;
    l[4] = 1.5f;
    struct lp_sampling p;
    lp_sampling_default(&p);
    p.repetition_penalty = 2.0f; /* 2.0 -> 1.0 < 1.5 */
    struct lp_sampler *s = lp_sampler_create(&p, NV);
    int32_t prompt[] = {3};
    lp_sampler_accept_prompt(s, prompt, 1);
    assert_int_equal(lp_sampler_sample(s, l), 4);
    lp_sampler_destroy(s);
}

static void test_logprobs(void **state) {
    (void)state;
    float l[NV];
    fill(l, 99);
    int32_t ids[5];
    float lps[5], chosen;
    lp_logprobs_top(l, NV, 5, ids, lps, 0, &chosen);
    double lse = 0;
    for (int i = 0; i < NV; i++)
        lse += exp(l[i]);
    lse = log(lse);
    for (int k = 0; k < 5; k++) {
        assert_true(fabs(lps[k] - (l[ids[k]] - lse)) < 1e-5);
        if (k) assert_true(lps[k] <= lps[k - 1]);
    }
    assert_true(fabs(chosen - (l[0] - lse)) < 1e-5);
    for (int i = 0; i < NV; i++)
        assert_true(l[i] <= l[ids[0]]);
}

static void test_validate(void **state) {
    (void)state;
    struct lp_sampling p;
    char err[LP_ERR_LEN];
    lp_sampling_default(&p);
    assert_int_equal(lp_sampling_validate(&p, NV, err), LP_OK);
    p.top_p = 0.0f;
    assert_int_equal(lp_sampling_validate(&p, NV, err), LP_EINVAL);
    assert_non_null(strstr(err, "top_p"));
    lp_sampling_default(&p);
    p.temperature = -1.0f;
    assert_int_equal(lp_sampling_validate(&p, NV, err), LP_EINVAL);
    assert_non_null(strstr(err, "temperature"));
}

/* Brute force: the allowed set for top-k / top-p / min-p over a full sort. */
static int cmp_desc(const void *a, const void *b) {
    const float *x = a, *y = b;
    return (x[0] < y[0]) - (x[0] > y[0]);
}

static void test_filters_match_brute_force(void **state) {
    (void)state;
    enum { V = 3000 };
    static float l[V], sorted[V][2];
    static int allowed[V];
    unsigned seed = 77;
    struct {
        int k;
        float p, mp, t;
    } cfg[] = {
        {0, 0.9f, 0.0f, 1.0f},  {0, 0.999f, 0.0f, 2.0f}, {0, 1.0f, 0.02f, 1.0f},
        {40, 1.0f, 0.0f, 0.7f}, {40, 0.8f, 0.1f, 1.3f},  {2000, 0.95f, 0.0f, 1.0f},
    };
    for (size_t ci = 0; ci < sizeof cfg / sizeof cfg[0]; ci++) {
        for (int i = 0; i < V; i++) {
            seed = seed * 1103515245u + 12345u;
            l[i] = (float)((seed >> 8) % 100000) / 10000.0f; /* 0..10: a wide spread */
        }
        for (int i = 0; i < V; i++) {
            sorted[i][0] = l[i] / cfg[ci].t;
            sorted[i][1] = (float)i;
        }
        qsort(sorted, V, sizeof sorted[0], cmp_desc);
        int n = cfg[ci].k > 0 ? cfg[ci].k : V;
        double sum = 0, pr[V];
        for (int i = 0; i < n; i++)
            sum += exp((double)sorted[i][0] - sorted[0][0]);
        for (int i = 0; i < n; i++)
            pr[i] = exp((double)sorted[i][0] - sorted[0][0]) / sum;
        int keep = n;
        double cum = 0;
        if (cfg[ci].p < 1.0f)
            for (int i = 0; i < n; i++)
                if ((cum += pr[i]) >= cfg[ci].p) {
                    keep = i + 1;
                    break;
                }
        if (cfg[ci].mp > 0) {
            int mk = 1;
            while (mk < keep && pr[mk] >= pr[0] * cfg[ci].mp)
                mk++;
            keep = mk;
        }
        memset(allowed, 0, sizeof allowed);
        for (int i = 0; i < keep; i++)
            allowed[(int)sorted[i][1]] = 1;
        int hits = 0;
        for (int t = 0; t < 300; t++) {
            struct lp_sampling p;
            lp_sampling_default(&p);
            p.temperature = cfg[ci].t;
            p.top_k = cfg[ci].k;
            p.top_p = cfg[ci].p;
            p.min_p = cfg[ci].mp;
            p.has_seed = 1;
            p.seed = (uint64_t)t;
            struct lp_sampler *sm = lp_sampler_create(&p, V);
            static float c[V];
            memcpy(c, l, sizeof c);
            int32_t id = lp_sampler_sample(sm, c);
            lp_sampler_destroy(sm);
            if (!allowed[id])
                fail_msg("config %zu: token %d is outside the allowed set of %d", ci, id, keep);
            hits++;
        }
        assert_int_equal(hits, 300);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_and_bias),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_top_k_one_is_greedy),
        cmocka_unit_test(test_top_p_and_min_p_filter),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_filters_match_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

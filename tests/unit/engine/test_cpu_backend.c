/* test_cpu_backend.c: every op of the CPU backend against a plain double
 * precision reference on random data; matmul for every weight type at
 * n = 1, 3, 17 on 1, 2 and 3 threads with batch invariance checked bit for
 * bit; paged attention over several sequences with a shuffled block table;
 * the scalar and AVX2 kernels compared bit for bit. */
#include "lp_test.h"

#include <math.h>
#include <stdatomic.h>

#include "backend.h"
#include "cpu/cpu_internal.h"
#include "lp_common.h"
#include "rand_weights.h"
#include "tensor.h"

static void fill(float *a, size_t n, float scale) {
    for (size_t i = 0; i < n; i++)
        a[i] = rndf() * scale;
}

/* A weight with its own host bytes, made resident through weight_init. */
struct test_weight {
    uint8_t *bytes;
    struct lp_tensor host;
    struct lp_weight w;
};

static void make_weight(struct lp_backend *be, struct test_weight *tw, int type, int64_t rows,
                        int64_t cols) {
    size_t nb = lp_type_nbytes(type, (uint64_t)(rows * cols));
    assert_true(nb > 0);
    tw->bytes = malloc(nb);
    fill_weights(type, tw->bytes, nb);
    tw->host = (struct lp_tensor){"w", type, 2, {cols, rows, 1, 1}, tw->bytes, nb};
    char err[LP_ERR_LEN];
    assert_int_equal(be->ops->weight_init(be, &tw->host, &tw->w, err), LP_OK);
    assert_ptr_equal(tw->w.data, tw->bytes); /* borrowed */
    assert_int_equal(tw->w.owned, 0);
}

static void free_weight(struct lp_backend *be, struct test_weight *tw) {
    be->ops->weight_clear(be, &tw->w);
    free(tw->bytes);
}

static void check_close(const char *what, int64_t idx, double got, double want, double tol) {
    if (!(fabs(got - want) <= tol)) {
        print_error("%s[%lld]: got %.9g want %.9g (tolerance %.3g)\n", what, (long long)idx, got,
                    want, tol);
        fail();
    }
}

/* ---- matmul ------------------------------------------------------------------ */

static const int all_types[] = {LP_TYPE_F32,  LP_TYPE_F16,  LP_TYPE_BF16, LP_TYPE_Q8_0,
                                LP_TYPE_Q4_0, LP_TYPE_Q4_1, LP_TYPE_Q4_K, LP_TYPE_Q6_K};

static void matmul_case(int type, int64_t rows, int64_t cols) {
    struct lp_backend *be1 = lp_cpu_backend_create(1);
    struct lp_backend *bes[3] = {be1, lp_cpu_backend_create(2), lp_cpu_backend_create(3)};
    struct test_weight tw;
    make_weight(be1, &tw, type, rows, cols);
    const int nmax = 17;
    float *x = malloc(sizeof(float) * (size_t)(nmax * cols));
    fill(x, (size_t)(nmax * cols), 1.0f);
    float *wd = malloc(sizeof(float) * (size_t)(rows * cols));
    lp_dequant_row(type, tw.bytes, wd, rows * cols);

    /* n = 1, one row at a time, one thread: the reference for invariance */
    float *y1 = malloc(sizeof(float) * (size_t)(nmax * rows));
    for (int i = 0; i < nmax; i++)
        be1->ops->matmul(be1, y1 + i * rows, x + i * cols, &tw.w, 1);

    /* accuracy against double on the exactly dequantized weights */
    for (int i = 0; i < nmax; i++) {
        for (int64_t r = 0; r < rows; r++) {
            double s = 0, a = 0;
            for (int64_t k = 0; k < cols; k++) {
                s += (double)wd[r * cols + k] * x[i * cols + k];
                a += fabs((double)wd[r * cols + k] * x[i * cols + k]);
            }
            check_close("matmul", i * rows + r, y1[i * rows + r], s, 2e-6 * a + 1e-30);
        }
    }

    float *y = malloc(sizeof(float) * (size_t)(nmax * rows));
    const int ns[] = {1, 3, 17};
    for (int t = 0; t < 3; t++) {
        for (int ni = 0; ni < 3; ni++) {
            int n = ns[ni];
            /* a batch that starts at row 2 of x, so rows meet new neighbours */
            int start = n == 17 ? 0 : 2;
            memset(y, 0xff, sizeof(float) * (size_t)(n * rows));
            bes[t]->ops->matmul(bes[t], y, x + start * cols, &tw.w, n);
            for (int i = 0; i < n; i++) {
                if (memcmp(y + i * rows, y1 + (start + i) * rows, sizeof(float) * (size_t)rows)) {
                    print_error("%s %lldx%lld: row %d of n=%d on %d threads differs from n=1\n",
                                lp_type_get(type)->name, (long long)rows, (long long)cols, i, n,
                                t + 1);
                    fail();
                }
            }
        }
    }

    /* scalar and AVX2 kernels agree bit for bit */
    if (lp_cpu_isa_best() == LP_CPU_ISA_AVX2) {
        for (int t = 0; t < 2; t++) {
            lp_cpu_backend_set_isa(bes[t], LP_CPU_ISA_SCALAR);
            bes[t]->ops->matmul(bes[t], y, x, &tw.w, nmax);
            lp_cpu_backend_set_isa(bes[t], LP_CPU_ISA_AVX2);
            if (memcmp(y, y1, sizeof(float) * (size_t)(nmax * rows))) {
                print_error("%s: scalar and AVX2 results differ\n", lp_type_get(type)->name);
                fail();
            }
        }
    }

    free(y);
    free(y1);
    free(wd);
    free(x);
    free_weight(be1, &tw);
    for (int t = 0; t < 3; t++)
        bes[t]->ops->destroy(bes[t]);
}

static void test_matmul_all_types(void **state) {
    (void)state;
    rng_seed(1);
    for (size_t t = 0; t < sizeof all_types / sizeof all_types[0]; t++) {
        int type = all_types[t];
        int be = lp_type_get(type)->block_elems;
        int64_t cols = be == 256 ? 512 : be == 32 ? 96 : 83; /* 83: a float tail */
        matmul_case(type, 37, cols);
        matmul_case(type, 4, be == 256 ? 256 : be == 32 ? 32 : 7);
        matmul_case(type, 1, be == 256 ? 256 : be == 32 ? 64 : 16);
    }
}

static void test_matmul_large_rows(void **state) {
    (void)state;
    rng_seed(2);
    /* enough rows for several tasks per thread, the tiling of the real model */
    matmul_case(LP_TYPE_Q4_1, 515, 576);
    matmul_case(LP_TYPE_Q8_0, 300, 1536);
}

static void test_matmul_range_direct(void **state) {
    (void)state;
    rng_seed(3);
    /* any row range on its own gives the same rows as the whole matmul */
    struct lp_backend *be = lp_cpu_backend_create(1);
    struct test_weight tw;
    make_weight(be, &tw, LP_TYPE_Q4_K, 23, 256);
    float x[5 * 256], yall[5 * 23], ypart[5 * 23];
    fill(x, 5 * 256, 2.0f);
    be->ops->matmul(be, yall, x, &tw.w, 5);
    memset(ypart, 0, sizeof ypart);
    lp_cpu_matmul_range(lp_cpu_isa_best(), ypart, x, &tw.w, 5, 3, 10);
    for (int i = 0; i < 5; i++)
        assert_memory_equal(ypart + i * 23 + 3, yall + i * 23 + 3, 7 * 4);
    free_weight(be, &tw);
    be->ops->destroy(be);
}

/* ---- the other ops ---------------------------------------------------------------- */

static void test_rmsnorm(void **state) {
    (void)state;
    rng_seed(4);
    struct lp_backend *be = lp_cpu_backend_create(2);
    const int n = 9, d = 576;
    float *x = malloc(sizeof(float) * n * d), *y = malloc(sizeof(float) * n * d);
    fill(x, (size_t)n * d, 3.0f);
    struct test_weight tw;
    make_weight(be, &tw, LP_TYPE_F32, 1, d);
    const float *w = (const float *)(const void *)tw.bytes;
    be->ops->rmsnorm(be, y, x, &tw.w, n, d, 1e-5f);
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int k = 0; k < d; k++)
            ss += (double)x[i * d + k] * x[i * d + k];
        double r = 1.0 / sqrt(ss / d + 1e-5);
        for (int k = 0; k < d; k++) {
            double want = x[i * d + k] * r * w[k];
            check_close("rmsnorm", i * d + k, y[i * d + k], want, 2e-6 * fabs(want) + 1e-7);
        }
    }
    /* in place, and with an F16 weight (dequantized on the fly) */
    float *y2 = malloc(sizeof(float) * n * d);
    memcpy(y2, x, sizeof(float) * n * d);
    be->ops->rmsnorm(be, y2, y2, &tw.w, n, d, 1e-5f);
    assert_memory_equal(y2, y, sizeof(float) * n * d);
    struct test_weight th;
    make_weight(be, &th, LP_TYPE_F16, 1, d);
    be->ops->rmsnorm(be, y2, x, &th.w, 1, d, 1e-6f);
    float wf[576];
    lp_dequant_row(LP_TYPE_F16, th.bytes, wf, d);
    double ss = 0;
    for (int k = 0; k < d; k++)
        ss += (double)x[k] * x[k];
    for (int k = 0; k < d; k++) {
        double want = x[k] / sqrt(ss / d + 1e-6) * wf[k];
        check_close("rmsnorm f16", k, y2[k], want, 2e-6 * fabs(want) + 1e-7);
    }
    free_weight(be, &th);
    free_weight(be, &tw);
    free(x);
    free(y);
    free(y2);
    be->ops->destroy(be);
}

static void rope_reference(double *out, const float *x, int n_heads, int head_dim, int rot_dim,
                           int pos, const float *inv_freq, int interleaved) {
    int half = rot_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        const float *v = x + h * head_dim;
        double *o = out + h * head_dim;
        for (int k = 0; k < head_dim; k++)
            o[k] = v[k];
        for (int k = 0; k < half; k++) {
            float theta = (float)pos * inv_freq[k]; /* f32, as transformers */
            double c = cos((double)theta), s = sin((double)theta);
            int a = interleaved ? 2 * k : k, b = interleaved ? 2 * k + 1 : k + half;
            o[a] = v[a] * c - v[b] * s;
            o[b] = v[b] * c + v[a] * s;
        }
    }
}

static void test_rope(void **state) {
    (void)state;
    rng_seed(5);
    struct lp_backend *be = lp_cpu_backend_create(2);
    const int n = 5, nh = 3, hd = 64;
    const int32_t pos[5] = {0, 1, 17, 511, 2047};
    for (int interleaved = 0; interleaved < 2; interleaved++) {
        for (int rot = 32; rot <= 64; rot += 32) {
            float inv_freq[32];
            for (int k = 0; k < rot / 2; k++)
                inv_freq[k] = (float)(1.0 / pow(10000.0, (2.0 * k) / rot));
            float x[5 * 3 * 64], x0[5 * 3 * 64];
            fill(x, sizeof x / sizeof x[0], 2.0f);
            memcpy(x0, x, sizeof x);
            be->ops->rope(be, x, n, nh, hd, rot, pos, inv_freq, interleaved);
            for (int i = 0; i < n; i++) {
                double want[3 * 64];
                rope_reference(want, x0 + i * nh * hd, nh, hd, rot, pos[i], inv_freq, interleaved);
                for (int k = 0; k < nh * hd; k++)
                    check_close("rope", i * nh * hd + k, x[i * nh * hd + k], want[k], 1e-6);
            }
        }
    }
    /* the two layouts are the same rotation up to a permutation of dims */
    float inv_freq[32];
    for (int k = 0; k < 32; k++)
        inv_freq[k] = (float)(1.0 / pow(10000.0, (2.0 * k) / 64));
    float a[64], b[64];
    fill(a, 64, 1.0f);
    for (int k = 0; k < 32; k++) {
        b[k] = a[2 * k];
        b[k + 32] = a[2 * k + 1];
    }
    int32_t p = 77;
    be->ops->rope(be, a, 1, 1, 64, 64, &p, inv_freq, 1);
    be->ops->rope(be, b, 1, 1, 64, 64, &p, inv_freq, 0);
    for (int k = 0; k < 32; k++) {
        assert_true(a[2 * k] == b[k]);
        assert_true(a[2 * k + 1] == b[k + 32]);
    }
    be->ops->destroy(be);
}

/* Several sequences of different lengths in one batch, a shuffled block
 * table, grouped-query heads, and a head size that is not a multiple of 16. */
enum { A_NSEQ = 3, A_BS = 4, A_MAXB = 8, A_NBLK = A_NSEQ * A_MAXB };
enum { A_NH = 6, A_NKV = 2, A_HD = 40, A_KVD = A_NKV * A_HD };

struct attn_fixture {
    int len[A_NSEQ];                           /* tokens in each sequence */
    float kv[2][A_NSEQ][A_MAXB * A_BS][A_KVD]; /* logical K and V per sequence */
    int32_t table[A_NSEQ * A_MAXB];
    float *kcache, *vcache;
};

static int32_t slot_of(const struct attn_fixture *f, int s, int p) {
    return f->table[s * A_MAXB + p / A_BS] * A_BS + p % A_BS;
}

static void attn_fixture_init(struct lp_backend *be, struct attn_fixture *f) {
    const int len[A_NSEQ] = {29, 1, 13};
    memcpy(f->len, len, sizeof len);
    int32_t perm[A_NBLK];
    for (int i = 0; i < A_NBLK; i++)
        perm[i] = i;
    for (int i = A_NBLK - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint32_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    memcpy(f->table, perm, sizeof f->table);
    fill(&f->kv[0][0][0][0], sizeof f->kv / sizeof(float), 1.5f);
    size_t bytes = sizeof(float) * A_NBLK * A_BS * A_KVD;
    f->kcache = be->ops->alloc(be, bytes);
    f->vcache = be->ops->alloc(be, bytes);
    assert_non_null(f->kcache);
    assert_true(((uintptr_t)f->kcache & 63) == 0);
    memset(f->kcache, 0xff, bytes); /* NaN everywhere no one wrote */
    memset(f->vcache, 0xff, bytes);
    /* store every position with kv_store, one sequence per call */
    for (int s = 0; s < A_NSEQ; s++) {
        int32_t slot[A_MAXB * A_BS], pos[A_MAXB * A_BS], seq[A_MAXB * A_BS];
        for (int p = 0; p < f->len[s]; p++) {
            slot[p] = slot_of(f, s, p);
            pos[p] = p;
            seq[p] = s;
        }
        struct lp_attn_batch b = {f->len[s], pos, seq, slot, A_NSEQ, A_MAXB, f->table, A_BS};
        be->ops->kv_store(be, f->kcache, f->vcache, &f->kv[0][s][0][0], &f->kv[1][s][0][0], &b,
                          A_KVD);
    }
    for (int s = 0; s < A_NSEQ; s++)
        for (int p = 0; p < f->len[s]; p++)
            assert_memory_equal(f->kcache + (size_t)slot_of(f, s, p) * A_KVD, f->kv[0][s][p],
                                sizeof(float) * A_KVD);
}

static void attn_reference(const struct attn_fixture *f, const float *q, int s, int pos,
                           float scale, double *out) {
    for (int h = 0; h < A_NH; h++) {
        int g = h / (A_NH / A_NKV);
        double sc[A_MAXB * A_BS], mx = -INFINITY, sum = 0;
        for (int p = 0; p <= pos; p++) {
            double d = 0;
            for (int k = 0; k < A_HD; k++)
                d += (double)q[h * A_HD + k] * f->kv[0][s][p][g * A_HD + k];
            sc[p] = d * scale;
            if (sc[p] > mx) mx = sc[p];
        }
        for (int p = 0; p <= pos; p++)
            sum += (sc[p] = exp(sc[p] - mx));
        for (int k = 0; k < A_HD; k++) {
            double o = 0;
            for (int p = 0; p <= pos; p++)
                o += sc[p] / sum * f->kv[1][s][p][g * A_HD + k];
            out[h * A_HD + k] = o;
        }
    }
}

static void test_attention(void **state) {
    (void)state;
    rng_seed(6);
    struct lp_backend *be = lp_cpu_backend_create(3);
    struct lp_backend *be1 = lp_cpu_backend_create(1);
    struct attn_fixture *f = calloc(1, sizeof *f);
    attn_fixture_init(be, f);
    /* a batch: a prompt chunk of seq 0 (positions 20..28), the first token of
     * seq 1, a decode token of seq 2 */
    enum { NT = 11 };
    int32_t pos[NT], seq[NT], slot[NT];
    for (int i = 0; i < 9; i++)
        pos[i] = 20 + i, seq[i] = 0;
    pos[9] = 0, seq[9] = 1;
    pos[10] = 12, seq[10] = 2;
    for (int i = 0; i < NT; i++)
        slot[i] = slot_of(f, seq[i], pos[i]);
    struct lp_attn_batch b = {NT, pos, seq, slot, A_NSEQ, A_MAXB, f->table, A_BS};
    float q[NT * A_NH * A_HD], out[NT * A_NH * A_HD], out1[A_NH * A_HD];
    fill(q, sizeof q / sizeof q[0], 1.0f);
    const float scale = 1.0f / sqrtf((float)A_HD);
    be->ops->attention(be, out, q, f->kcache, f->vcache, &b, A_NH, A_NKV, A_HD, scale);
    for (int i = 0; i < NT; i++) {
        double want[A_NH * A_HD];
        attn_reference(f, q + i * A_NH * A_HD, seq[i], pos[i], scale, want);
        for (int k = 0; k < A_NH * A_HD; k++)
            check_close("attention", i * A_NH * A_HD + k, out[i * A_NH * A_HD + k], want[k],
                        2e-6 * fabs(want[k]) + 1e-6);
        /* the same token alone, on one thread: bit-identical */
        struct lp_attn_batch one = {1, &pos[i], &seq[i], &slot[i], A_NSEQ, A_MAXB, f->table, A_BS};
        be1->ops->attention(be1, out1, q + i * A_NH * A_HD, f->kcache, f->vcache, &one, A_NH, A_NKV,
                            A_HD, scale);
        assert_memory_equal(out1, out + i * A_NH * A_HD, sizeof out1);
    }
    if (lp_cpu_isa_best() == LP_CPU_ISA_AVX2) {
        float outs[NT * A_NH * A_HD];
        lp_cpu_backend_set_isa(be, LP_CPU_ISA_SCALAR);
        be->ops->attention(be, outs, q, f->kcache, f->vcache, &b, A_NH, A_NKV, A_HD, scale);
        lp_cpu_backend_set_isa(be, LP_CPU_ISA_AVX2);
        assert_memory_equal(outs, out, sizeof out);
    }
    be->ops->free(be, f->kcache);
    be->ops->free(be, f->vcache);
    free(f);
    be->ops->destroy(be);
    be1->ops->destroy(be1);
}

/* A long context crosses several online-softmax steps (64 keys each). */
static void test_attention_long(void **state) {
    (void)state;
    rng_seed(7);
    struct lp_backend *be = lp_cpu_backend_create(2);
    const int bs = 16, nblk = 20, hd = 64, len = 300;
    float *kc = be->ops->alloc(be, sizeof(float) * nblk * bs * hd);
    float *vc = be->ops->alloc(be, sizeof(float) * nblk * bs * hd);
    fill(kc, (size_t)nblk * bs * hd, 3.0f); /* large scores: the max moves */
    fill(vc, (size_t)nblk * bs * hd, 1.0f);
    int32_t table[20];
    for (int i = 0; i < nblk; i++)
        table[i] = nblk - 1 - i;
    int32_t pos = len - 1, seq = 0, slot = 0;
    struct lp_attn_batch b = {1, &pos, &seq, &slot, 1, nblk, table, bs};
    float q[64], out[64];
    fill(q, 64, 3.0f);
    be->ops->attention(be, out, q, kc, vc, &b, 1, 1, hd, 0.125f);
    double sc[300], mx = -INFINITY, sum = 0;
    for (int p = 0; p < len; p++) {
        const float *k = kc + ((size_t)table[p / bs] * bs + p % bs) * hd;
        double d = 0;
        for (int j = 0; j < hd; j++)
            d += (double)q[j] * k[j];
        sc[p] = d * 0.125;
        if (sc[p] > mx) mx = sc[p];
    }
    for (int p = 0; p < len; p++)
        sum += (sc[p] = exp(sc[p] - mx));
    for (int j = 0; j < hd; j++) {
        double o = 0;
        for (int p = 0; p < len; p++)
            o += sc[p] / sum * vc[((size_t)table[p / bs] * bs + p % bs) * hd + j];
        check_close("attention long", j, out[j], o, 1e-5 * fabs(o) + 1e-6);
    }
    be->ops->free(be, kc);
    be->ops->free(be, vc);
    be->ops->destroy(be);
}

static void test_elementwise(void **state) {
    (void)state;
    rng_seed(8);
    struct lp_backend *be = lp_cpu_backend_create(2);
    const size_t n = 100003; /* several pool chunks and an odd tail */
    float *g = malloc(n * 4), *u = malloc(n * 4), *y = malloc(n * 4), *y0 = malloc(n * 4);
    fill(g, n, 12.0f);
    fill(u, n, 2.0f);
    be->ops->silu_mul(be, y, g, u, n);
    for (size_t i = 0; i < n; i++) {
        double want = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        check_close("silu_mul", (int64_t)i, y[i], want, 1e-6 * fabs(want) + 1e-30);
    }
    memcpy(y0, g, n * 4);
    be->ops->silu_mul(be, y0, y0, u, n); /* y may equal gate */
    assert_memory_equal(y0, y, n * 4);

    memcpy(y0, y, n * 4);
    be->ops->add(be, y, u, n);
    for (size_t i = 0; i < n; i++)
        assert_true(y[i] == y0[i] + u[i]);

    /* add_bias over rows, f32 and bf16 biases */
    const int rows = 7, d = 300;
    struct test_weight tb;
    make_weight(be, &tb, LP_TYPE_BF16, 1, d);
    float bias[300];
    lp_dequant_row(LP_TYPE_BF16, tb.bytes, bias, d);
    memcpy(y0, y, (size_t)rows * d * 4);
    be->ops->add_bias(be, y, &tb.w, rows, d);
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < d; k++)
            assert_true(y[i * d + k] == y0[i * d + k] + bias[k]);
    free_weight(be, &tb);

    /* gather_rows */
    int32_t pick[4] = {6, 0, 6, 3};
    be->ops->gather_rows(be, y0, y, pick, 4, d);
    for (int i = 0; i < 4; i++)
        assert_memory_equal(y0 + i * d, y + pick[i] * d, d * 4);
    free(g);
    free(u);
    free(y);
    free(y0);
    be->ops->destroy(be);
}

static void test_embed(void **state) {
    (void)state;
    rng_seed(9);
    struct lp_backend *be = lp_cpu_backend_create(2);
    const int vocab = 50, d = 96;
    const int types[] = {LP_TYPE_Q8_0, LP_TYPE_Q4_1, LP_TYPE_F16, LP_TYPE_F32};
    for (int t = 0; t < 4; t++) {
        struct test_weight tw;
        make_weight(be, &tw, types[t], vocab, d);
        int32_t tok[5] = {49, 0, 7, 7, 31};
        float x[5 * 96], want[96];
        be->ops->embed(be, x, &tw.w, tok, 5);
        size_t rb = lp_type_nbytes(types[t], d);
        for (int i = 0; i < 5; i++) {
            lp_dequant_row(types[t], tw.bytes + (size_t)tok[i] * rb, want, d);
            assert_memory_equal(x + i * d, want, sizeof want);
        }
        free_weight(be, &tw);
    }
    be->ops->destroy(be);
}

static void test_weight_init_errors(void **state) {
    (void)state;
    struct lp_backend *be = lp_cpu_backend_create(1);
    assert_string_equal(be->ops->name, "cpu");
    uint8_t buf[1024] = {0};
    char err[LP_ERR_LEN];
    struct lp_weight w;
    struct lp_tensor t = {"t", LP_TYPE_Q4_0, 2, {33, 2, 1, 1}, buf, sizeof buf};
    assert_int_equal(be->ops->weight_init(be, &t, &w, err), LP_EFORMAT); /* not a block multiple */
    t.ne[0] = 64;
    t.nbytes = 71; /* needs 72 */
    assert_int_equal(be->ops->weight_init(be, &t, &w, err), LP_EFORMAT);
    t.nbytes = 72;
    assert_int_equal(be->ops->weight_init(be, &t, &w, err), LP_OK);
    assert_int_equal(w.rows, 2);
    assert_int_equal(w.cols, 64);
    be->ops->weight_clear(be, &w);
    t.type = 6; /* Q5_0: not supported */
    assert_int_equal(be->ops->weight_init(be, &t, &w, err), LP_EUNSUPPORTED);
    /* a 3-d tensor is rows = ne[1] * ne[2] */
    struct lp_tensor t3 = {"t3", LP_TYPE_F32, 3, {4, 3, 2, 1}, buf, sizeof buf};
    assert_int_equal(be->ops->weight_init(be, &t3, &w, err), LP_OK);
    assert_int_equal(w.rows, 6);
    be->ops->weight_clear(be, &w);
    void *p = be->ops->alloc(be, 1);
    assert_non_null(p);
    assert_true(((uintptr_t)p & 63) == 0);
    float src[3] = {1, 2, 3}, dst[3];
    be->ops->free(be, p);
    p = be->ops->alloc(be, sizeof src);
    be->ops->upload(be, p, src, sizeof src);
    be->ops->sync(be);
    be->ops->download(be, dst, p, sizeof dst);
    assert_memory_equal(dst, src, sizeof src);
    be->ops->free(be, p);
    be->ops->destroy(be);
}

/* ---- the thread pool ----------------------------------------------------------------- */

struct count_job {
    atomic_int *hits;
};

static void count_task(void *ctx, int64_t begin, int64_t end) {
    struct count_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&j->hits[i], 1);
}

static void test_threadpool(void **state) {
    (void)state;
    enum { N = 1000 };
    static atomic_int hits[N];
    for (int t = 1; t <= 4; t++) {
        struct lp_threadpool *p = lp_threadpool_create(t);
        assert_non_null(p);
        assert_int_equal(lp_threadpool_size(p), t);
        struct count_job j = {hits};
        for (int round = 0; round < 300; round++) {
            int n = 1 + round * 7 % N;
            int grain = 1 + round % 13;
            for (int i = 0; i < N; i++)
                atomic_store(&hits[i], 0);
            lp_threadpool_run(p, n, grain, count_task, &j);
            for (int i = 0; i < N; i++) {
                if (atomic_load(&hits[i]) != (i < n)) {
                    print_error("pool %d round %d: item %d ran %d times\n", t, round, i,
                                atomic_load(&hits[i]));
                    fail();
                }
            }
        }
        lp_threadpool_destroy(p);
    }
    lp_threadpool_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threadpool),
        cmocka_unit_test(test_matmul_all_types),
        cmocka_unit_test(test_matmul_large_rows),
        cmocka_unit_test(test_matmul_range_direct),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_long),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_weight_init_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

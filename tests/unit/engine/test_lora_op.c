/* test_lora_op.c: the CPU backend's LoRA op: against a double-precision
 * reference, scalar == AVX2 bit for bit, and each row independent of the
 * segment (batch) it is computed in. */
#include "lp_test.h"

#include <math.h>

#include "cpu/cpu_internal.h"
#include "lp_common.h"

#define IN 70
#define OUT 45 /* not a multiple of 8 or 32: exercises the tails */
#define ROWS 11

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

struct fixture {
    float x[ROWS * IN];
    float a[2][16 * IN]; /* two adapters, ranks 5 and 16 */
    float bt[2][16 * OUT];
    float y0[ROWS * OUT]; /* base output before LoRA */
};

static void fill(struct fixture *f) {
    unsigned s = 12345;
    for (size_t i = 0; i < sizeof f->x / 4; i++)
        f->x[i] = frand(&s);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof f->a[k] / 4; i++)
            f->a[k][i] = frand(&s) * 0.1f;
        for (size_t i = 0; i < sizeof f->bt[k] / 4; i++)
            f->bt[k][i] = frand(&s) * 0.1f;
    }
    for (size_t i = 0; i < sizeof f->y0 / 4; i++)
        f->y0[i] = frand(&s);
}

static const int ranks[2] = {5, 16};
static const float scales[2] = {2.0f, 0.25f};

/* segments: rows 0-3 adapter 0, rows 4-5 none (absent), rows 6-10 adapter 1 */
static int make_segs(const struct fixture *f, struct lp_lora_seg *segs) {
    segs[0] = (struct lp_lora_seg){0, 4, ranks[0], scales[0], f->a[0], f->bt[0]};
    segs[1] = (struct lp_lora_seg){6, 5, ranks[1], scales[1], f->a[1], f->bt[1]};
    return 2;
}

static void run(struct lp_backend *be, const struct fixture *f, float *y) {
    struct lp_lora_seg segs[2];
    int n = make_segs(f, segs);
    float tmp[ROWS * 16];
    memcpy(y, f->y0, sizeof f->y0);
    be->ops->lora(be, y, f->x, IN, OUT, segs, n, tmp);
}

static void test_reference_and_isa(void **state) {
    (void)state;
    static struct fixture f;
    fill(&f);
    struct lp_backend *be = lp_cpu_backend_create(2);
    float y_best[ROWS * OUT], y_scalar[ROWS * OUT];
    run(be, &f, y_best);
    int prev = lp_cpu_backend_set_isa(be, LP_CPU_ISA_SCALAR);
    run(be, &f, y_scalar);
    lp_cpu_backend_set_isa(be, prev);
    assert_memory_equal(y_best, y_scalar, sizeof y_best);
    for (int r = 0; r < ROWS; r++) {
        int ad = r < 4 ? 0 : r >= 6 ? 1 : -1;
        for (int o = 0; o < OUT; o++) {
            double want = f.y0[r * OUT + o];
            if (ad >= 0) {
                double acc = 0;
                for (int k = 0; k < ranks[ad]; k++) {
                    double t = 0;
                    for (int i = 0; i < IN; i++)
                        t += (double)f.x[r * IN + i] * f.a[ad][k * IN + i];
                    acc += t * f.bt[ad][k * OUT + o];
                }
                want += scales[ad] * acc;
            }
            double got = y_best[r * OUT + o];
            if (fabs(got - want) > 1e-5 * (1 + fabs(want)))
                fail_msg("row %d out %d: %.8f vs reference %.8f", r, o, got, want);
            if (ad < 0) assert_true(got == f.y0[r * OUT + o]); /* untouched */
        }
    }
    be->ops->destroy(be);
}

static void test_row_independent_of_segment(void **state) {
    (void)state;
    static struct fixture f;
    fill(&f);
    struct lp_backend *be = lp_cpu_backend_create(3);
    float y_all[ROWS * OUT];
    run(be, &f, y_all);
    /* each row of adapter 1 alone, as a one-row segment */
    for (int r = 6; r < 11; r++) {
        float y[OUT], tmp[16];
        memcpy(y, f.y0 + r * OUT, sizeof y);
        struct lp_lora_seg s = {0, 1, ranks[1], scales[1], f.a[1], f.bt[1]};
        be->ops->lora(be, y, f.x + r * IN, IN, OUT, &s, 1, tmp);
        assert_memory_equal(y, y_all + r * OUT, sizeof y);
    }
    be->ops->destroy(be);
}

/* Segments of different ranks share the scratch: a rank-16 segment's rows
 * must not overlap a rank-2 segment's (a race once tiles run in parallel). */
static void test_mixed_ranks_share_scratch(void **state) {
    (void)state;
    static struct fixture f;
    fill(&f);
    struct lp_backend *be = lp_cpu_backend_create(3);
    struct lp_lora_seg segs[2] = {{0, 2, 16, 0.5f, f.a[1], f.bt[1]},
                                  {2, ROWS - 2, 2, 3.0f, f.a[0], f.bt[0]}};
    float want[ROWS * OUT];
    for (int r = 0; r < ROWS; r++) { /* each row alone */
        struct lp_lora_seg s = r < 2 ? segs[0] : segs[1];
        s.start = 0;
        s.len = 1;
        float tmp[16];
        memcpy(want + r * OUT, f.y0 + r * OUT, OUT * sizeof(float));
        be->ops->lora(be, want + r * OUT, f.x + r * IN, IN, OUT, &s, 1, tmp);
    }
    for (int rep = 0; rep < 200; rep++) {
        float y[ROWS * OUT], tmp[ROWS * 16];
        memcpy(y, f.y0, sizeof y);
        be->ops->lora(be, y, f.x, IN, OUT, segs, 2, tmp);
        assert_memory_equal(y, want, sizeof y);
    }
    be->ops->destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_and_isa),
        cmocka_unit_test(test_row_independent_of_segment),
        cmocka_unit_test(test_mixed_ranks_share_scratch),
    };
    LP_RUN_TESTS(tests);
}

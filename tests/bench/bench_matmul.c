/* bench_matmul.c: throughput of the CPU matmul on the SmolLM2-135M shapes,
 * against the machine's own memory bandwidth measured in the same run (best of 5 trials each, so
 * that other processes on a shared machine disturb it less). Prints GB/s of weight bytes streamed,
 * GFLOP/s, and the ratio to the read bandwidth ceiling. Weights rotate over enough copies to
 * overflow the last level cache, as a decode step does (the model is larger than L3). Never fails
 * on time.   usage: bench_matmul [seconds-per-case] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/cpu_internal.h"
#include "lp_common.h"
#include "../unit/rand_weights.h"
#include "tensor.h"

#define ROTATE_BYTES ((size_t)256 << 20) /* > any L3 we run on */

/* Read bandwidth: a 16-lane f32 dot over a buffer much larger than L3. */
struct bw_job {
    const float *a;
    float sink[64];
};
static void bw_task(void *ctx, int64_t b, int64_t e) {
    struct bw_job *j = ctx;
    int64_t piece = 1 << 16;
    float s =
        lp_cpu_dot_f32(lp_cpu_isa_best(), j->a + b * piece, j->a + b * piece, (e - b) * piece);
    j->sink[b % 64] += s;
}

/* Best of TRIALS short trials: the least disturbed by other processes. */
#define TRIALS 5

static double read_bw(struct lp_threadpool *pool, const float *a, size_t bytes, double secs) {
    int64_t pieces = (int64_t)(bytes / sizeof(float)) >> 16;
    struct bw_job j = {a, {0}};
    int64_t grain = pieces / lp_threadpool_size(pool);
    lp_threadpool_run(pool, pieces, grain, bw_task, &j);
    double best = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        double t0 = lp_time_now(), t;
        int iters = 0;
        do {
            lp_threadpool_run(pool, pieces, grain, bw_task, &j);
            iters++;
        } while ((t = lp_time_now()) - t0 < secs / TRIALS);
        double bw = (double)bytes * iters / (t - t0) / 1e9;
        if (bw > best) best = bw;
    }
    return best;
}

static double memcpy_bw(uint8_t *dst, const uint8_t *src, size_t bytes, double secs) {
    memcpy(dst, src, bytes);
    double best = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        double t0 = lp_time_now(), t;
        int iters = 0;
        do {
            memcpy(dst, src, bytes);
            iters++;
        } while ((t = lp_time_now()) - t0 < secs / TRIALS);
        double bw = (double)bytes * iters / (t - t0) / 1e9;
        if (bw > best) best = bw;
    }
    return best;
}

struct shape {
    const char *what;
    int64_t cols, rows;
    int type;
};

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 0.4;
    static const struct shape shapes[] = {
        {"attn q/o 576->576", 576, 576, LP_TYPE_Q4_1},
        {"attn k/v 576->192", 576, 192, LP_TYPE_Q4_1},
        {"mlp gate/up 576->1536", 576, 1536, LP_TYPE_Q4_1},
        {"mlp down 1536->576", 1536, 576, LP_TYPE_Q4_1},
        {"logits 576->49152", 576, 49152, LP_TYPE_Q8_0},
        {"mlp gate/up 576->1536", 576, 1536, LP_TYPE_Q4_0},
        {"mlp gate/up 576->1536", 576, 1536, LP_TYPE_Q8_0},
        {"mlp gate/up 576->1536", 576, 1536, LP_TYPE_Q4_K},
        {"mlp gate/up 576->1536", 576, 1536, LP_TYPE_Q6_K},
        {"mlp gate/up 576->1536", 576, 1536, LP_TYPE_F16},
        {"mlp gate/up 576->1536", 576, 1536, LP_TYPE_BF16},
        {"mlp gate/up 576->1536", 576, 1536, LP_TYPE_F32},
    };
    const int threads[] = {1, 2};
    const int ns[] = {1, 16};
    printf("isa: %s (no AVX-512 path)\n", lp_cpu_isa_best() == LP_CPU_ISA_AVX2 ? "AVX2" : "scalar");

    uint8_t *big = malloc(ROTATE_BYTES), *big2 = malloc(ROTATE_BYTES);
    if (!big || !big2) return 1;
    for (size_t i = 0; i < ROTATE_BYTES; i++)
        big[i] = (uint8_t)i;
    double ceil_read[3] = {0}, ceil_copy = memcpy_bw(big2, big, ROTATE_BYTES, 1.0);
    for (int t = 1; t <= 2; t++) {
        struct lp_threadpool *pool = lp_threadpool_create(t);
        ceil_read[t] = read_bw(pool, (const float *)(const void *)big, ROTATE_BYTES, 1.0);
        lp_threadpool_destroy(pool);
    }
    free(big2);
    printf("ceiling: memcpy %.1f GB/s copied (1 thread); read %.1f GB/s (1 thread), %.1f GB/s "
           "(2 threads)\n\n",
           ceil_copy, ceil_read[1], ceil_read[2]);
    printf("%-24s %-5s %3s %2s %9s %9s %8s %8s\n", "shape", "type", "n", "th", "ms/call", "GB/s",
           "GFLOP/s", "of read");

    float *x = malloc(sizeof(float) * 16 * 1536), *y = malloc(sizeof(float) * 16 * 49152);
    for (int i = 0; i < 16 * 1536; i++)
        x[i] = rndf();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const struct shape *sh = &shapes[s];
        size_t mbytes = lp_type_nbytes(sh->type, (uint64_t)(sh->rows * sh->cols));
        size_t copies = ROTATE_BYTES / mbytes;
        if (copies < 1) copies = 1;
        fill_weights(sh->type, big, mbytes * copies);
        for (int ti = 0; ti < 2; ti++) {
            struct lp_backend *be = lp_cpu_backend_create(threads[ti]);
            for (int ni = 0; ni < 2; ni++) {
                int n = ns[ni];
                struct lp_weight w = {sh->type, sh->rows, sh->cols, big, mbytes, 0};
                be->ops->matmul(be, y, x, &w, n);
                double per = 1e30;
                long calls = 0;
                for (int trial = 0; trial < TRIALS; trial++) {
                    double t0 = lp_time_now(), t;
                    long c0 = calls;
                    do {
                        w.data = big + (size_t)(calls % (long)copies) * mbytes;
                        be->ops->matmul(be, y, x, &w, n);
                        calls++;
                    } while ((t = lp_time_now()) - t0 < secs / TRIALS);
                    double p = (t - t0) / (double)(calls - c0);
                    if (p < per) per = p;
                }
                double gbs = (double)mbytes / per / 1e9;
                double gflops = 2.0 * (double)sh->rows * (double)sh->cols * n / per / 1e9;
                printf("%-24s %-5s %3d %2d %9.3f %9.2f %8.2f %7.0f%%\n", sh->what,
                       lp_type_get(sh->type)->name, n, threads[ti], per * 1e3, gbs, gflops,
                       100.0 * gbs / ceil_read[threads[ti]]);
            }
            be->ops->destroy(be);
        }
    }
    free(x);
    free(y);
    free(big);
    return 0;
}

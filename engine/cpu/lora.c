/* lora.c: the CPU backend's LoRA op over a step's segments (SGMV-style shrink
 * then expand). Work is split over tiles of up to four rows of one segment,
 * so A and B^T are read once per tile (a small GEMM, not a GEMV per token);
 * within a row every sum runs in one fixed order, so a row's result is the
 * same whatever it is batched with and whichever thread runs it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../lp_common.h"
#include "cpu_internal.h"

#define TILE 4

struct lora_job {
    int isa;
    float *y;
    const float *x;
    int in, out;
    const struct lp_lora_seg *segs;
    int n_segs;
    float *tmp;                /* [rows, tmp_stride] */
    int tmp_stride;            /* the largest rank among the segments: rows never overlap */
    const int32_t *tile_seg;   /* [n_tiles] segment of each tile */
    const int32_t *tile_start; /* [n_tiles] first row of each tile */
};

/* y[o] += scale * acc[o], acc[o] = sum over k (increasing) of t[k] * bt[k, o]
 * with fused multiply-adds: the scalar and AVX2 versions give the same bits. */
static void expand_row_scalar(float *y, const float *t, const float *bt, int rank, int out,
                              int o_begin, float scale) {
    for (int o = o_begin; o < out; o++) {
        float acc = 0.0f;
        for (int k = 0; k < rank; k++)
            acc = fmaf(t[k], bt[(size_t)k * out + o], acc);
        y[o] += scale * acc;
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LORA_AVX2 1
__attribute__((target("avx2,fma"))) static void
expand_row_avx2(float *y, const float *t, const float *bt, int rank, int out, float scale) {
    const __m256 sv = _mm256_set1_ps(scale);
    int o = 0;
    for (; o + 32 <= out; o += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < rank; k++) {
            const float *b = bt + (size_t)k * out + o;
            __m256 tk = _mm256_set1_ps(t[k]);
            a0 = _mm256_fmadd_ps(tk, _mm256_loadu_ps(b), a0);
            a1 = _mm256_fmadd_ps(tk, _mm256_loadu_ps(b + 8), a1);
            a2 = _mm256_fmadd_ps(tk, _mm256_loadu_ps(b + 16), a2);
            a3 = _mm256_fmadd_ps(tk, _mm256_loadu_ps(b + 24), a3);
        }
        _mm256_storeu_ps(y + o, _mm256_add_ps(_mm256_loadu_ps(y + o), _mm256_mul_ps(sv, a0)));
        _mm256_storeu_ps(y + o + 8,
                         _mm256_add_ps(_mm256_loadu_ps(y + o + 8), _mm256_mul_ps(sv, a1)));
        _mm256_storeu_ps(y + o + 16,
                         _mm256_add_ps(_mm256_loadu_ps(y + o + 16), _mm256_mul_ps(sv, a2)));
        _mm256_storeu_ps(y + o + 24,
                         _mm256_add_ps(_mm256_loadu_ps(y + o + 24), _mm256_mul_ps(sv, a3)));
    }
    if (o < out) expand_row_scalar(y, t, bt, rank, out, o, scale);
}
#endif

static void expand_row(int isa, float *y, const float *t, const float *bt, int rank, int out,
                       float scale) {
#ifdef LORA_AVX2
    if (isa == LP_CPU_ISA_AVX2) {
        expand_row_avx2(y, t, bt, rank, out, scale);
        return;
    }
#endif
    (void)isa;
    expand_row_scalar(y, t, bt, rank, out, 0, scale);
}

static void lora_tile(const struct lora_job *j, int si, int r0) {
    const struct lp_lora_seg *s = &j->segs[si];
    int r1 = r0 + TILE < s->start + s->len ? r0 + TILE : s->start + s->len;
    /* shrink: t[row, k] = dot(x[row], A[k]) */
    for (int k = 0; k < s->rank; k++) {
        const float *ak = s->a + (size_t)k * j->in;
        for (int r = r0; r < r1; r++)
            j->tmp[(size_t)r * j->tmp_stride + k] =
                lp_cpu_dot_f32(j->isa, j->x + (size_t)r * j->in, ak, j->in);
    }
    /* expand: y[row] += scale * sum_k t[row, k] * B^T[k, :] */
    for (int r = r0; r < r1; r++)
        expand_row(j->isa, j->y + (size_t)r * j->out, j->tmp + (size_t)r * j->tmp_stride, s->bt,
                   s->rank, j->out, s->scale);
}

static void lora_task(void *ctx, int64_t begin, int64_t end) {
    const struct lora_job *j = ctx;
    for (int64_t t = begin; t < end; t++)
        lora_tile(j, j->tile_seg[t], j->tile_start[t]);
}

void lp_cpu_lora(struct lp_backend *be, float *y, const float *x, int in, int out,
                 const struct lp_lora_seg *segs, int n_segs, float *tmp) {
    struct lp_cpu_backend *c = (struct lp_cpu_backend *)be;
    int n_tiles = 0;
    for (int i = 0; i < n_segs; i++)
        n_tiles += (segs[i].len + TILE - 1) / TILE;
    if (n_tiles == 0) return;
    /* The tile list lives on the stack for small steps; large ones are rare
     * (prefill) and take one allocation. */
    int32_t stack_buf[2 * 256];
    int32_t *buf = n_tiles <= 256 ? stack_buf : xmalloc((size_t)n_tiles * 2 * sizeof(int32_t));
    int32_t *tile_seg = buf, *tile_start = buf + n_tiles;
    int t = 0;
    for (int i = 0; i < n_segs; i++)
        for (int r = segs[i].start; r < segs[i].start + segs[i].len; r += TILE) {
            tile_seg[t] = i;
            tile_start[t++] = r;
        }
    int stride = 0;
    for (int i = 0; i < n_segs; i++)
        if (segs[i].rank > stride) stride = segs[i].rank;
    struct lora_job j = {c->isa, y, x, in, out, segs, n_segs, tmp, stride, tile_seg, tile_start};
    lp_threadpool_run(c->pool, n_tiles, 1, lora_task, &j);
    if (buf != stack_buf) free(buf);
}

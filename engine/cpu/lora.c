/* lora.c: the CPU backend's LoRA op over a step's segments (SGMV-style shrink
 * then expand). Work is split over tiles of up to four rows of one segment,
 * so A and B^T are read once per tile (a small GEMM, not a GEMV per token);
 * within a row every sum runs in one fixed order, so a row's result is the
 * same whatever it is batched with and whichever thread runs it. */
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
    float *tmp;
    const int32_t *tile_seg;   /* [n_tiles] segment of each tile */
    const int32_t *tile_start; /* [n_tiles] first row of each tile */
};

static void lora_tile(const struct lora_job *j, int si, int r0) {
    const struct lp_lora_seg *s = &j->segs[si];
    int r1 = r0 + TILE < s->start + s->len ? r0 + TILE : s->start + s->len;
    /* shrink: t[row, k] = dot(x[row], A[k]) */
    for (int k = 0; k < s->rank; k++) {
        const float *ak = s->a + (size_t)k * j->in;
        for (int r = r0; r < r1; r++)
            j->tmp[(size_t)r * s->rank + k] =
                lp_cpu_dot_f32(j->isa, j->x + (size_t)r * j->in, ak, j->in);
    }
    /* expand: acc = sum_k t[row, k] * B^T[k, :] in increasing k, then
     * y[row] += scale * acc */
    for (int r = r0; r < r1; r++) {
        float *yr = j->y + (size_t)r * j->out;
        const float *t = j->tmp + (size_t)r * s->rank;
        for (int o0 = 0; o0 < j->out; o0 += 256) {
            int o1 = o0 + 256 < j->out ? o0 + 256 : j->out;
            float acc[256];
            memset(acc, 0, sizeof acc);
            for (int k = 0; k < s->rank; k++) {
                const float *bk = s->bt + (size_t)k * j->out;
                float tk = t[k];
                for (int o = o0; o < o1; o++)
                    acc[o - o0] += tk * bk[o];
            }
            for (int o = o0; o < o1; o++)
                yr[o] += s->scale * acc[o - o0];
        }
    }
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
    struct lora_job j = {c->isa, y, x, in, out, segs, n_segs, tmp, tile_seg, tile_start};
    lp_threadpool_run(c->pool, n_tiles, 1, lora_task, &j);
    if (buf != stack_buf) free(buf);
}

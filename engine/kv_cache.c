/* kv_cache.c: block allocator of the paged KV cache (free list as a stack). */
#include "kv_cache.h"

#include <stdlib.h>

#include "lp_common.h"

struct kv_cache {
    int n_blocks;
    int block_size;
    int32_t *free_list; /* [n_blocks] stack of free block ids */
    int n_free;
};

struct kv_cache *kv_cache_create(int n_blocks, int block_size) {
    ENSURE(n_blocks > 0 && block_size > 0);
    struct kv_cache *kv = xcalloc(1, sizeof *kv);
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->free_list = xmalloc((size_t)n_blocks * sizeof(int32_t));
    /* Lowest ids on top, so that allocation order is deterministic. */
    for (int i = 0; i < n_blocks; i++)
        kv->free_list[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    return kv;
}

void kv_cache_destroy(struct kv_cache *kv) {
    if (!kv) return;
    free(kv->free_list);
    free(kv);
}

int kv_cache_block_size(const struct kv_cache *kv) { return kv->block_size; }
int kv_cache_blocks_total(const struct kv_cache *kv) { return kv->n_blocks; }
int kv_cache_blocks_free(const struct kv_cache *kv) { return kv->n_free; }

void kv_seq_init(struct kv_seq *s) {
    s->blocks = NULL;
    s->n_blocks = s->cap = s->n_tokens = 0;
}

void kv_seq_clear(struct kv_cache *kv, struct kv_seq *s) {
    for (int i = s->n_blocks - 1; i >= 0; i--) {
        ENSURE(kv->n_free < kv->n_blocks);
        kv->free_list[kv->n_free++] = s->blocks[i];
    }
    free(s->blocks);
    kv_seq_init(s);
}

int kv_cache_blocks_needed(const struct kv_cache *kv, const struct kv_seq *s, int n_new) {
    long need_tokens = (long)s->n_tokens + n_new;
    long need_blocks = (need_tokens + kv->block_size - 1) / kv->block_size;
    return need_blocks > s->n_blocks ? (int)(need_blocks - s->n_blocks) : 0;
}

int kv_cache_seq_reserve(struct kv_cache *kv, struct kv_seq *s, int n_new) {
    if (n_new < 0) return LP_EINVAL;
    int extra = kv_cache_blocks_needed(kv, s, n_new);
    if (extra > kv->n_free) return LP_EBUSY;
    if (s->n_blocks + extra > s->cap) {
        int cap = s->cap ? s->cap : 4;
        while (cap < s->n_blocks + extra)
            cap *= 2;
        s->blocks = xrealloc(s->blocks, (size_t)cap * sizeof(int32_t));
        s->cap = cap;
    }
    for (int i = 0; i < extra; i++)
        s->blocks[s->n_blocks++] = kv->free_list[--kv->n_free];
    return LP_OK;
}

int32_t kv_seq_slot(const struct kv_cache *kv, const struct kv_seq *s, int pos) {
    ENSURE(pos >= 0 && pos / kv->block_size < s->n_blocks);
    return s->blocks[pos / kv->block_size] * kv->block_size + pos % kv->block_size;
}

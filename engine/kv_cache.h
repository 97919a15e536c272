/* kv_cache.h: the bookkeeping of the paged KV cache: a free list of fixed
 * size blocks and a block table per sequence. The memory itself is the
 * forward's (one K and one V array per layer on the device); this module only
 * hands out block ids, so it is the same for every backend. */
#ifndef LP_KV_CACHE_H
#define LP_KV_CACHE_H

#include <stdint.h>

struct kv_cache;

/* A sequence's view of the cache: caller storage (kv_seq_init/kv_seq_clear). */
struct kv_seq {
    int32_t *blocks; /* [n_blocks] physical block ids, owned */
    int n_blocks;
    int cap;
    int n_tokens; /* positions already written */
};

struct kv_cache *kv_cache_create(int n_blocks, int block_size);
void kv_cache_destroy(struct kv_cache *kv); /* NULL is a no-op */

int kv_cache_block_size(const struct kv_cache *kv);
int kv_cache_blocks_total(const struct kv_cache *kv);
int kv_cache_blocks_free(const struct kv_cache *kv);

void kv_seq_init(struct kv_seq *s);
/* Returns the sequence's blocks to the cache and empties it. */
void kv_seq_clear(struct kv_cache *kv, struct kv_seq *s);

/* Makes room for `n_new` more positions after s->n_tokens. All or nothing:
 * LP_EBUSY (and no change) if the free blocks do not suffice. */
int kv_cache_seq_reserve(struct kv_cache *kv, struct kv_seq *s, int n_new);

/* Blocks needed to hold `n_tokens` more positions after what s holds. */
int kv_cache_blocks_needed(const struct kv_cache *kv, const struct kv_seq *s, int n_new);

/* The cache slot of position `pos` (< reserved capacity) of s. */
int32_t kv_seq_slot(const struct kv_cache *kv, const struct kv_seq *s, int pos);

#endif

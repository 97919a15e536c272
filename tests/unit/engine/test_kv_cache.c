/* test_kv_cache.c: block accounting of the paged KV cache. */
#include "lp_test.h"

#include "kv_cache.h"
#include "lp_common.h"

static void test_reserve_and_release(void **state) {
    (void)state;
    struct kv_cache *kv = kv_cache_create(8, 16);
    struct kv_seq a, b;
    kv_seq_init(&a);
    kv_seq_init(&b);
    assert_int_equal(kv_cache_seq_reserve(kv, &a, 17), LP_OK); /* 2 blocks */
    assert_int_equal(a.n_blocks, 2);
    assert_int_equal(kv_cache_blocks_free(kv), 6);
    a.n_tokens = 17;
    assert_int_equal(kv_cache_blocks_needed(kv, &a, 15), 0);
    assert_int_equal(kv_cache_blocks_needed(kv, &a, 16), 1);
    assert_int_equal(kv_cache_seq_reserve(kv, &b, 6 * 16 + 1), LP_EBUSY); /* all or nothing */
    assert_int_equal(kv_cache_blocks_free(kv), 6);
    assert_int_equal(b.n_blocks, 0);
    assert_int_equal(kv_cache_seq_reserve(kv, &b, 6 * 16), LP_OK);
    assert_int_equal(kv_cache_blocks_free(kv), 0);
    /* slots map through the block table */
    int32_t s0 = kv_seq_slot(kv, &a, 0), s16 = kv_seq_slot(kv, &a, 16);
    assert_int_equal(s0 % 16, 0);
    assert_int_equal(s16, a.blocks[1] * 16);
    assert_int_not_equal(a.blocks[0], a.blocks[1]);
    for (int i = 0; i < b.n_blocks; i++) {
        assert_int_not_equal(b.blocks[i], a.blocks[0]);
        assert_int_not_equal(b.blocks[i], a.blocks[1]);
    }
    kv_seq_clear(kv, &a);
    kv_seq_clear(kv, &b);
    assert_int_equal(kv_cache_blocks_free(kv), 8);
    kv_cache_destroy(kv);
    kv_cache_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reserve_and_release)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

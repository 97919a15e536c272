/* test_cuda.c: the CUDA side answers cleanly with or without a GPU. Where a
 * GPU exists, the backend must come up; where none does, this says so. */
#include "lp_test.h"

#include "backend.h"
#include "lp_common.h"

static void test_device_enumeration(void **state) {
    (void)state;
    char err[LP_ERR_LEN] = "";
    int n = lp_cuda_device_count(err);
    assert_true(n >= 0);
    if (n == 0) {
        assert_true(err[0] != 0); /* a reason, not silence */
        struct lp_backend *be = lp_cuda_backend_create(0, err);
        assert_null(be);
        LP_SKIP("no CUDA device here (%s)", err);
    }
    struct lp_backend *be = lp_cuda_backend_create(0, err);
    if (!be) fail_msg("CUDA device present but backend failed: %s", err);
    be->ops->destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_device_enumeration)};
    LP_RUN_TESTS(tests);
}

/* lp_test.h: what the C unit tests share on top of cmocka: paths to the
 * project's test data, and the skip convention (print why, exit 77). */
#ifndef LP_TEST_H
#define LP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Root of the source tree (tests run from there; ctest sets LP_ROOT). */
static inline const char *lp_test_root(void) {
    const char *r = getenv("LP_ROOT");
    return r ? r : ".";
}

/* Path of a file under the source root, in a static buffer (one at a time). */
static inline const char *lp_test_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", lp_test_root(), rel);
    return buf;
}

static inline int lp_test_exists(const char *path) { return access(path, R_OK) == 0; }

/* Tests that skipped in this process (LP_SKIP), for LP_RUN_TESTS. */
static int lp_test_skipped __attribute__((unused));

/* A test that cannot run here says why and is reported as skipped. */
#define LP_SKIP(...)                                                                               \
    do {                                                                                           \
        lp_test_skipped++;                                                                         \
        printf("skipped: ");                                                                       \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        skip();                                                                                    \
    } while (0)

/* Runs a cmocka group; when every test skipped, exits 77 so that ctest
 * reports the file as skipped rather than passed. */
#define LP_RUN_TESTS(tests)                                                                        \
    do {                                                                                           \
        int lp_rc_ = cmocka_run_group_tests(tests, NULL, NULL);                                    \
        size_t lp_n_ = sizeof(tests) / sizeof((tests)[0]);                                         \
        return lp_rc_ ? lp_rc_                                                                     \
                      : (lp_test_skipped > 0 && (size_t)lp_test_skipped == lp_n_ ? 77 : 0);        \
    } while (0)

#endif

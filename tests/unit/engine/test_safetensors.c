/* test_safetensors.c: the safetensors reader on files built here from JSON
 * text (valid ones, then each lie a hostile header can tell), on a file and a
 * directory on disk, and on a sharded checkpoint with its index. */
#include "lp_test.h"

#include <sys/stat.h>

#include "lp_common.h"
#include "model/safetensors.h"

/* ---- building files -------------------------------------------------------- */

static uint8_t pattern(size_t j) { return (uint8_t)(j * 13 + 5); }

/* 8-byte length, `json`, `pad` spaces, then `nbytes` bytes of pattern. The
 * returned buffer is exactly *size bytes (so ASan sees over-reads). */
static uint8_t *st_build(const char *json, size_t pad, size_t nbytes, size_t *size) {
    size_t n = strlen(json) + pad;
    *size = 8 + n + nbytes;
    uint8_t *p = malloc(*size);
    assert_non_null(p);
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)((uint64_t)n >> (8 * k));
    memcpy(p + 8, json, strlen(json));
    memset(p + 8 + strlen(json), ' ', pad);
    for (size_t j = 0; j < nbytes; j++)
        p[8 + n + j] = pattern(j);
    return p;
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void write_st(const char *path, const char *json, size_t nbytes) {
    size_t size;
    uint8_t *p = st_build(json, 0, nbytes, &size);
    write_file(path, p, size);
    free(p);
}

/* `json` with `nbytes` of data must be refused; the message contains each
 * non-NULL string of want1/want2. */
static void expect_fail2(const char *json, size_t nbytes, const char *want1, const char *want2) {
    size_t size;
    uint8_t *p = st_build(json, 0, nbytes, &size);
    struct st_ctx *ctx = NULL;
    char err[LP_ERR_LEN] = "";
    int rc = st_open_memory(p, size, &ctx, err);
    if (rc == 0) fail_msg("accepted %s", json);
    assert_true(rc < 0);
    assert_null(ctx);
    if (want1 && !strstr(err, want1)) fail_msg("error '%s' does not mention '%s'", err, want1);
    if (want2 && !strstr(err, want2)) fail_msg("error '%s' does not mention '%s'", err, want2);
    free(p);
}
static void expect_fail(const char *json, size_t nbytes, const char *want) {
    expect_fail2(json, nbytes, want, NULL);
}

#define VALID_JSON                                                                                 \
    "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"ok\"},"                                       \
    "\"c\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[32,34]},"                             \
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"                           \
    "\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[34,34]},"                          \
    "\"b.w\":{\"dtype\":\"BF16\",\"shape\":[1,2,2,1],\"data_offsets\":[24,32]}}"
#define VALID_BYTES 34

static void check_valid(const struct st_ctx *ctx) {
    assert_int_equal(st_tensor_count(ctx), 4);
    assert_string_equal(st_metadata_get(ctx, "format"), "pt");
    assert_string_equal(st_metadata_get(ctx, "note"), "ok");
    assert_null(st_metadata_get(ctx, "nothing"));
    assert_int_equal(st_tensor_find(ctx, "missing"), -1);
    assert_int_equal(st_tensor_find(ctx, "__metadata__"), -1);
    struct lp_tensor t;
    int64_t i = st_tensor_find(ctx, "a");
    assert_true(i >= 0);
    st_tensor_get(ctx, i, &t);
    assert_string_equal(t.name, "a");
    assert_int_equal(t.type, LP_TYPE_F32);
    assert_int_equal(t.n_dims, 2);
    assert_int_equal(t.ne[0], 3); /* reversed: [2,3] -> ne = {3, 2} */
    assert_int_equal(t.ne[1], 2);
    assert_int_equal(t.ne[2], 1);
    assert_int_equal(t.nbytes, 24);
    const uint8_t *a_data = t.data;
    for (size_t j = 0; j < 24; j++)
        assert_int_equal(a_data[j], pattern(j));

    st_tensor_get(ctx, st_tensor_find(ctx, "b.w"), &t);
    assert_int_equal(t.type, LP_TYPE_BF16);
    assert_int_equal(t.n_dims, 4);
    assert_int_equal(t.ne[0], 1);
    assert_int_equal(t.ne[1], 2);
    assert_int_equal(t.ne[2], 2);
    assert_int_equal(t.ne[3], 1);
    assert_int_equal(t.nbytes, 8);
    assert_ptr_equal(t.data, a_data + 24);

    st_tensor_get(ctx, st_tensor_find(ctx, "c"), &t); /* a scalar */
    assert_int_equal(t.type, LP_TYPE_F16);
    assert_int_equal(t.n_dims, 1);
    assert_int_equal(t.ne[0], 1);
    assert_int_equal(t.nbytes, 2);
    assert_int_equal(((const uint8_t *)t.data)[1], pattern(33));

    st_tensor_get(ctx, st_tensor_find(ctx, "z"), &t); /* zero elements */
    assert_int_equal(t.n_dims, 2);
    assert_int_equal(t.ne[0], 5);
    assert_int_equal(t.ne[1], 0);
    assert_int_equal(t.nbytes, 0);
}

static void test_valid(void **state) {
    (void)state;
    for (size_t pad = 0; pad < 9; pad += 8) { /* writers pad the header with spaces */
        size_t size;
        uint8_t *p = st_build(VALID_JSON, pad, VALID_BYTES, &size);
        struct st_ctx *ctx;
        char err[LP_ERR_LEN] = "";
        int rc = st_open_memory(p, size, &ctx, err);
        if (rc != 0) fail_msg("open: %s", err);
        check_valid(ctx);
        st_close(ctx);
        free(p);
    }
    st_close(NULL);
    /* No tensors and no data is a valid (empty) file. */
    size_t size;
    uint8_t *p = st_build("{}", 0, 0, &size);
    struct st_ctx *ctx;
    char err[LP_ERR_LEN] = "";
    assert_int_equal(st_open_memory(p, size, &ctx, err), 0);
    assert_int_equal(st_tensor_count(ctx), 0);
    st_close(ctx);
    free(p);
    /* Non-ASCII names are fine when they are UTF-8. */
    p = st_build("{\"w\xc3\xa9\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4,
                 &size);
    assert_int_equal(st_open_memory(p, size, &ctx, err), 0);
    assert_int_equal(st_tensor_find(ctx, "w\xc3\xa9"), 0);
    st_close(ctx);
    free(p);
}

static void test_truncated_everywhere(void **state) {
    (void)state;
    size_t size;
    uint8_t *p = st_build(VALID_JSON, 0, VALID_BYTES, &size);
    for (size_t len = 0; len < size; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, p, len);
        struct st_ctx *ctx = NULL;
        char err[LP_ERR_LEN] = "";
        int rc = st_open_memory(copy, len, &ctx, err);
        if (rc == 0) fail_msg("accepted a file truncated to %zu of %zu bytes", len, size);
        assert_true(err[0] != '\0');
        free(copy);
    }
    /* Extra bytes after the last tensor are refused too. */
    uint8_t *longer = st_build(VALID_JSON, 0, VALID_BYTES + 1, &size);
    struct st_ctx *ctx = NULL;
    char err[LP_ERR_LEN] = "";
    assert_int_equal(st_open_memory(longer, size, &ctx, err), LP_EFORMAT);
    assert_non_null(strstr(err, "34"));
    free(longer);
    free(p);
}

static void test_header_length(void **state) {
    (void)state;
    size_t size;
    uint8_t *p = st_build("{}", 0, 0, &size);
    struct st_ctx *ctx;
    char err[LP_ERR_LEN];
    uint64_t lies[] = {3, 100000001, 1ull << 40, UINT64_MAX, 100000000};
    for (size_t l = 0; l < sizeof lies / sizeof lies[0]; l++) {
        for (int k = 0; k < 8; k++)
            p[k] = (uint8_t)(lies[l] >> (8 * k));
        int rc = st_open_memory(p, size, &ctx, err);
        if (rc == 0) fail_msg("accepted header length %llu", (unsigned long long)lies[l]);
        assert_non_null(strstr(err, "header length"));
    }
    free(p);
}

static void test_not_json(void **state) {
    (void)state;
    expect_fail("{\"a\xff\":{}}", 0, "UTF-8");
    expect_fail("{\"a\xc0\xaf\":{}}", 0, "UTF-8");     /* overlong '/' */
    expect_fail("{\"a\xed\xa0\x80\":{}}", 0, "UTF-8"); /* a surrogate */
    expect_fail("{\"a\xf4\x90\x80\x80\":{}}", 0, "UTF-8");
    expect_fail("{\"a\xe2\x82\":{}}", 0, "UTF-8"); /* cut short */
    {
        size_t size;
        uint8_t *p = st_build("{\"a\":{}}", 0, 0, &size);
        p[10] = 0; /* a NUL inside the header */
        struct st_ctx *ctx;
        char err[LP_ERR_LEN];
        assert_int_equal(st_open_memory(p, size, &ctx, err), LP_EFORMAT);
        free(p);
    }
    expect_fail("{", 0, "JSON");
    expect_fail("", 0, "JSON");
    expect_fail("[]", 0, "not a JSON object");
    expect_fail("{} x", 0, "after");
    expect_fail("{}{}", 0, "after");
    expect_fail("{\"a\":5}", 0, "tensor a");
}

static void test_duplicates(void **state) {
    (void)state;
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8, "tensor a: name appears twice");
    expect_fail("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "\"k\" appears twice");
    expect_fail("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__");
    expect_fail(
        "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "dtype");
}

static void test_dtypes(void **state) {
    (void)state;
    expect_fail2("{\"step\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "I64",
                 "step");
    expect_fail2("{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
                 "F8_E4M3", "tensor q");
    expect_fail2("{\"q\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "U8", "q");
    expect_fail2("{\"q\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "F64", "q");
    expect_fail2("{\"q\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                 "unknown dtype", "q");
    expect_fail("{\"q\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    expect_fail("{\"q\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    expect_fail("{\"q\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "f32");
}

static void test_shapes(void **state) {
    (void)state;
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "shape");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "shape");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, "shape");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                "5 dimensions");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                "\"data_offsets\":[0,4]}}",
                4, "overflow");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                "\"data_offsets\":[0,4]}}",
                4, "q");
}

static void test_offsets(void **state) {
    (void)state;
    /* Span differs from shape x dtype. */
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "needs 8");
    /* begin > end, negative, missing, wrong arity, non-numbers. */
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, "begin");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "begin");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
                "data_offsets");
    expect_fail("{\"q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 4,
                "data_offsets");
    /* Overlap, a gap, not starting at 0, past the end, short of the end. */
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, "tensor b: bytes 4..12 overlap");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                20, "tensor b: starts at 12");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "gap");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "end at");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 9, "end at");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                4, "overlap");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":[18446744073709551612,18446744073709551616]}}",
                4, "a");
}

static void test_metadata(void **state) {
    (void)state;
    expect_fail("{\"__metadata__\":{\"n\":5}}", 0, "\"n\" is not a string");
    expect_fail("{\"__metadata__\":{\"n\":null}}", 0, "n");
    expect_fail("{\"__metadata__\":{\"n\":{}}}", 0, "n");
    expect_fail("{\"__metadata__\":[\"x\"]}", 0, "__metadata__");
}

/* ---- files, directories and shards ------------------------------------------ */

struct tmpdir {
    char path[64];
};

static void tmpdir_make(struct tmpdir *d) {
    snprintf(d->path, sizeof d->path, "/tmp/test_st_XXXXXX");
    assert_non_null(mkdtemp(d->path));
}

static const char *tmpdir_file(const struct tmpdir *d, const char *name) {
    static char buf[2][256];
    static int which;
    which ^= 1;
    snprintf(buf[which], sizeof buf[which], "%s/%s", d->path, name);
    return buf[which];
}

static void tmpdir_remove(const struct tmpdir *d) {
    static const char *names[] = {"model.safetensors", "model.safetensors.index.json",
                                  "model-00001-of-00002.safetensors",
                                  "model-00002-of-00002.safetensors", "other.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(tmpdir_file(d, names[i]));
    rmdir(d->path);
}

static void test_open_file_and_dir(void **state) {
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct st_ctx *ctx;
    char err[LP_ERR_LEN] = "";
    assert_int_equal(st_open(d.path, &ctx, err), LP_ENOTFOUND);
    assert_non_null(strstr(err, "model.safetensors"));
    write_st(tmpdir_file(&d, "model.safetensors"), VALID_JSON, VALID_BYTES);
    int rc = st_open(tmpdir_file(&d, "model.safetensors"), &ctx, err);
    if (rc != 0) fail_msg("open file: %s", err);
    check_valid(ctx);
    st_close(ctx);
    rc = st_open(d.path, &ctx, err);
    if (rc != 0) fail_msg("open dir: %s", err);
    check_valid(ctx);
    st_close(ctx);
    /* A bad file on disk names its path. */
    write_st(tmpdir_file(&d, "model.safetensors"), VALID_JSON, VALID_BYTES - 1);
    assert_int_equal(st_open(d.path, &ctx, err), LP_EFORMAT);
    assert_non_null(strstr(err, d.path));
    assert_int_equal(st_open("/nonexistent/model.safetensors", &ctx, err), LP_ENOTFOUND);
    tmpdir_remove(&d);
}

#define SHARD1                                                                                     \
    "{\"__metadata__\":{\"format\":\"pt\"},"                                                       \
    "\"l0.w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"                        \
    "\"l0.b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[16,20]}}"
#define SHARD2 "{\"l1.w\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,12]}}"
#define S1 "model-00001-of-00002.safetensors"
#define S2 "model-00002-of-00002.safetensors"

static void write_index(const struct tmpdir *d, const char *weight_map) {
    char json[1024];
    snprintf(json, sizeof json, "{\"metadata\":{\"total_size\":32},\"weight_map\":{%s}}",
             weight_map);
    write_file(tmpdir_file(d, "model.safetensors.index.json"), (const uint8_t *)json, strlen(json));
}

static void expect_shard_fail(const struct tmpdir *d, const char *want) {
    struct st_ctx *ctx = NULL;
    char err[LP_ERR_LEN] = "";
    int rc = st_open(d->path, &ctx, err);
    if (rc == 0) fail_msg("accepted a bad shard set (want '%s')", want);
    assert_null(ctx);
    if (!strstr(err, want)) fail_msg("error '%s' does not mention '%s'", err, want);
}

static void test_sharded(void **state) {
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    write_st(tmpdir_file(&d, S1), SHARD1, 20);
    write_st(tmpdir_file(&d, S2), SHARD2, 12);
    write_index(&d, "\"l0.w\":\"" S1 "\",\"l1.w\":\"" S2 "\",\"l0.b\":\"" S1 "\"");
    struct st_ctx *ctx;
    char err[LP_ERR_LEN] = "";
    int rc = st_open(d.path, &ctx, err);
    if (rc != 0) fail_msg("open sharded dir: %s", err);
    assert_int_equal(st_tensor_count(ctx), 3);
    struct lp_tensor t;
    st_tensor_get(ctx, st_tensor_find(ctx, "l1.w"), &t);
    assert_int_equal(t.type, LP_TYPE_BF16);
    assert_int_equal(t.ne[0], 2);
    assert_int_equal(t.ne[1], 3);
    assert_int_equal(t.nbytes, 12);
    assert_int_equal(((const uint8_t *)t.data)[11], pattern(11));
    st_tensor_get(ctx, st_tensor_find(ctx, "l0.b"), &t);
    assert_int_equal(((const uint8_t *)t.data)[0], pattern(16));
    assert_string_equal(st_metadata_get(ctx, "format"), "pt");
    st_close(ctx);
    /* The index path itself works too. */
    rc = st_open(tmpdir_file(&d, "model.safetensors.index.json"), &ctx, err);
    if (rc != 0) fail_msg("open index: %s", err);
    assert_int_equal(st_tensor_count(ctx), 3);
    st_close(ctx);

    /* Shard names must be plain file names beside the index. */
    write_index(&d, "\"l0.w\":\"../" S1 "\"");
    expect_shard_fail(&d, "plain file name");
    write_index(&d, "\"l0.w\":\"/etc/passwd\"");
    expect_shard_fail(&d, "plain file name");
    write_index(&d, "\"l0.w\":\"..\"");
    expect_shard_fail(&d, "plain file name");
    write_index(&d, "\"l0.w\":5");
    expect_shard_fail(&d, "l0.w");
    /* A tensor the map names but no shard holds, or holds elsewhere. */
    write_index(&d, "\"l0.w\":\"" S1 "\",\"l9.w\":\"" S1 "\"");
    expect_shard_fail(&d, "tensor l9.w");
    write_index(&d, "\"l0.w\":\"" S1 "\",\"l1.w\":\"" S2 "\",\"l0.b\":\"" S2 "\"");
    expect_shard_fail(&d, "tensor l0.b");
    /* A shard that does not exist, and one that is broken. */
    write_index(&d, "\"l0.w\":\"other.safetensors\"");
    expect_shard_fail(&d, "other.safetensors");
    write_st(tmpdir_file(&d, "other.safetensors"), SHARD2, 11);
    write_index(&d, "\"l0.w\":\"" S1 "\",\"l1.w\":\"other.safetensors\"");
    expect_shard_fail(&d, "other.safetensors");
    /* The same tensor in two shards. */
    write_st(tmpdir_file(&d, "other.safetensors"), SHARD2, 12);
    write_index(&d, "\"l1.w\":\"" S2 "\",\"l0.w\":\"" S1 "\",\"x\":\"other.safetensors\"");
    expect_shard_fail(&d, "two shards");
    /* A map naming one tensor twice; a map that is not there. */
    write_index(&d, "\"l0.w\":\"" S1 "\",\"l0.w\":\"" S1 "\"");
    expect_shard_fail(&d, "twice");
    write_file(tmpdir_file(&d, "model.safetensors.index.json"), (const uint8_t *)"{\"a\":1}", 7);
    expect_shard_fail(&d, "weight_map");
    write_file(tmpdir_file(&d, "model.safetensors.index.json"), (const uint8_t *)"[", 1);
    expect_shard_fail(&d, "JSON");
    tmpdir_remove(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),         cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_header_length), cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_duplicates),    cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_shapes),        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_metadata),      cmocka_unit_test(test_open_file_and_dir),
        cmocka_unit_test(test_sharded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_quant.c: lp_dequant_row against gguf-py's dequantize, bit for bit, on
 * the goldens written by tests/reference/make_quant_goldens.py. */
#include "lp_test.h"

#include "tensor.h"

struct golden_case {
    uint32_t type, n_elems, n_bytes;
    const uint8_t *bytes;
    const float *want;
};

static uint8_t *golden_buf;
static struct golden_case cases[64];
static int n_cases;

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int load_goldens(void **state) {
    (void)state;
    const char *path = lp_test_path("tests/reference/goldens/quant.bin");
    FILE *f = fopen(path, "rb");
    if (!f) return 0; /* each test then skips */
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    golden_buf = malloc((size_t)size);
    if (fread(golden_buf, 1, (size_t)size, f) != (size_t)size) return -1;
    fclose(f);
    if (size < 12 || memcmp(golden_buf, "LPQG", 4) != 0 || rd32(golden_buf + 4) != 1) return -1;
    uint32_t n = rd32(golden_buf + 8);
    size_t off = 12;
    for (uint32_t i = 0; i < n && i < 64; i++) {
        if (off + 12 > (size_t)size) return -1;
        struct golden_case *c = &cases[n_cases++];
        c->type = rd32(golden_buf + off);
        c->n_elems = rd32(golden_buf + off + 4);
        c->n_bytes = rd32(golden_buf + off + 8);
        off += 12;
        if (off + c->n_bytes + 4 * (size_t)c->n_elems > (size_t)size) return -1;
        c->bytes = golden_buf + off;
        off += c->n_bytes;
        c->want = (const float *)(golden_buf + off); /* offsets are 4-aligned */
        off += 4 * (size_t)c->n_elems;
    }
    return 0;
}

static int free_goldens(void **state) {
    (void)state;
    free(golden_buf);
    return 0;
}

static void check_type(int type) {
    if (!golden_buf) LP_SKIP("tests/reference/goldens/quant.bin missing");
    int seen = 0;
    for (int i = 0; i < n_cases; i++) {
        const struct golden_case *c = &cases[i];
        if ((int)c->type != type) continue;
        seen++;
        assert_int_equal(lp_type_nbytes(type, c->n_elems), c->n_bytes);
        float *got = malloc(4 * (size_t)c->n_elems);
        lp_dequant_row(type, c->bytes, got, c->n_elems);
        for (uint32_t j = 0; j < c->n_elems; j++) {
            if (memcmp(&got[j], &c->want[j], 4) != 0) {
                print_error("%s case %d element %u: got %.9g want %.9g\n", lp_type_get(type)->name,
                            i, j, got[j], c->want[j]);
                fail();
            }
        }
        /* a row split at a block boundary dequantizes the same */
        int be = lp_type_get(type)->block_elems;
        size_t half_bytes = lp_type_nbytes(type, c->n_elems / 2);
        assert_true(c->n_elems / 2 % be == 0);
        lp_dequant_row(type, c->bytes + half_bytes, got, c->n_elems / 2);
        assert_memory_equal(got, c->want + c->n_elems / 2, 4 * (size_t)(c->n_elems / 2));
        free(got);
    }
    assert_true(seen >= 1);
}

static void test_f32(void **state) { (void)state, check_type(LP_TYPE_F32); }
static void test_f16(void **state) { (void)state, check_type(LP_TYPE_F16); }
static void test_bf16(void **state) { (void)state, check_type(LP_TYPE_BF16); }
static void test_q8_0(void **state) { (void)state, check_type(LP_TYPE_Q8_0); }
static void test_q4_0(void **state) { (void)state, check_type(LP_TYPE_Q4_0); }
static void test_q4_1(void **state) { (void)state, check_type(LP_TYPE_Q4_1); }
static void test_q4_k(void **state) { (void)state, check_type(LP_TYPE_Q4_K); }
static void test_q6_k(void **state) { (void)state, check_type(LP_TYPE_Q6_K); }

/* Hand-checked values, independent of the goldens. */
static void test_known_blocks(void **state) {
    (void)state;
    uint8_t q4_1[20] = {0};
    uint16_t d = lp_fp32_to_fp16(0.5f), m = lp_fp32_to_fp16(-1.0f);
    memcpy(q4_1, &d, 2);
    memcpy(q4_1 + 2, &m, 2);
    q4_1[4] = 0x3f; /* element 0 = 15, element 16 = 3 */
    float y[32];
    lp_dequant_row(LP_TYPE_Q4_1, q4_1, y, 32);
    assert_true(y[0] == 6.5f);
    assert_true(y[16] == 0.5f);
    assert_true(y[1] == -1.0f);

    uint8_t q8[34] = {0};
    d = lp_fp32_to_fp16(0.25f);
    memcpy(q8, &d, 2);
    q8[2] = (uint8_t)-128;
    q8[33] = 127;
    lp_dequant_row(LP_TYPE_Q8_0, q8, y, 32);
    assert_true(y[0] == -32.0f);
    assert_true(y[31] == 31.75f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32),          cmocka_unit_test(test_f16),
        cmocka_unit_test(test_bf16),         cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_q4_0),         cmocka_unit_test(test_q4_1),
        cmocka_unit_test(test_q4_k),         cmocka_unit_test(test_q6_k),
        cmocka_unit_test(test_known_blocks),
    };
    return cmocka_run_group_tests(tests, load_goldens, free_goldens);
}

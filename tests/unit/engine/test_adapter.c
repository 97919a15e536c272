/* test_adapter.c: LoRA adapter loading. PEFT directories written here (config
 * text + safetensors built byte by byte) load with the right ranks, scales and
 * values, or are refused with a message that names the key, tensor or module;
 * GGUF LoRA files likewise; q/k rows follow the base's rope layout; and the
 * reference adapters made by PEFT (tests/reference/adapters) load as their
 * configs say, their GGUF conversions equal to the PEFT originals. */
#include "lp_test.h"

#include <math.h>
#include <sys/stat.h>

#include "lp_common.h"
#include "lora/adapter.h"
#include "model/model.h"

/* tiny-llama: 2 layers, n_embd 64, 4 heads, 2 kv heads of 16, n_ff 128 */
#define N_EMBD 64
#define N_FF 128
#define KV_OUT 32

static struct lp_model *hf_base, *gguf_base;
static char tmpdir[64];

/* ---- writing adapters ---------------------------------------------------------- */

struct ts {
    char name[160];
    const char *dtype; /* "F32", "F16", "BF16" */
    int nd;
    int64_t shape[3];
    int seed;
    float poison; /* when non-zero, element 3 holds this value */
};

static float val(int seed, int64_t j) {
    return (float)((int)((j * 37 + seed * 11) % 97) - 48) / 64.0f; /* exact in f16 and bf16 */
}

static size_t dsize(const char *dt) { return strcmp(dt, "F32") == 0 ? 4 : 2; }

static int64_t numel(const struct ts *t) {
    int64_t n = 1;
    for (int d = 0; d < t->nd; d++)
        n *= t->shape[d];
    return n;
}

static void put(uint8_t *p, const char *dt, float v) {
    if (!strcmp(dt, "F32")) {
        memcpy(p, &v, 4);
    } else if (!strcmp(dt, "F16")) {
        uint16_t h = lp_fp32_to_fp16(v);
        memcpy(p, &h, 2);
    } else {
        uint32_t u;
        memcpy(&u, &v, 4);
        uint16_t h = (uint16_t)(u >> 16);
        memcpy(p, &h, 2);
    }
}

static void path_in(char *buf, size_t n, const char *file) {
    snprintf(buf, n, "%s/%s", tmpdir, file);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Writes adapter_model.safetensors with tensors t[0..n); `cut` bytes are
 * dropped from the end (a truncated file). */
static void write_st(const struct ts *t, int n, size_t cut) {
    char *json = malloc(65536);
    assert_non_null(json);
    size_t jl = 0, off = 0;
    jl += (size_t)snprintf(json + jl, 65536 - jl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t nb = (size_t)numel(&t[i]) * dsize(t[i].dtype);
        jl += (size_t)snprintf(json + jl, 65536 - jl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                               t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].nd; d++)
            jl += (size_t)snprintf(json + jl, 65536 - jl, "%s%lld", d ? "," : "",
                                   (long long)t[i].shape[d]);
        jl +=
            (size_t)snprintf(json + jl, 65536 - jl, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    jl += (size_t)snprintf(json + jl, 65536 - jl, "}");
    while (jl % 8)
        json[jl++] = ' ';
    size_t size = 8 + jl + off;
    uint8_t *p = calloc(1, size);
    assert_non_null(p);
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)((uint64_t)jl >> (8 * k));
    memcpy(p + 8, json, jl);
    uint8_t *d = p + 8 + jl;
    for (int i = 0; i < n; i++) {
        size_t es = dsize(t[i].dtype);
        for (int64_t j = 0; j < numel(&t[i]); j++, d += es)
            put(d, t[i].dtype, (t[i].poison != 0 && j == 3) ? t[i].poison : val(t[i].seed, j));
    }
    char path[256];
    path_in(path, sizeof path, "adapter_model.safetensors");
    write_bytes(path, p, size - cut);
    free(p);
    free(json);
}

static void write_cfg(const char *json) {
    char path[256];
    path_in(path, sizeof path, "adapter_config.json");
    write_bytes(path, json, strlen(json));
}

static void clean_dir(void) {
    const char *files[] = {"adapter_config.json", "adapter_model.safetensors", "adapter_model.bin",
                           "lora.gguf"};
    char path[256];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        path_in(path, sizeof path, files[i]);
        unlink(path);
    }
}

static const char *const projs[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                    "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                    "mlp.down_proj"};
static const int64_t p_in[] = {N_EMBD, N_EMBD, N_EMBD, N_EMBD, N_EMBD, N_EMBD, N_FF};
static const int64_t p_out[] = {N_EMBD, KV_OUT, KV_OUT, N_EMBD, N_FF, N_FF, N_EMBD};

/* Appends the A and B of (layer, proj) with `rank` to t at *n. */
static void add_pair(struct ts *t, int *n, int layer, int proj, int rank, const char *dtype) {
    for (int k = 0; k < 2; k++) {
        struct ts *x = &t[(*n)++];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "base_model.model.model.layers.%d.%s.lora_%c.weight",
                 layer, projs[proj], k ? 'B' : 'A');
        x->dtype = dtype;
        x->nd = 2;
        x->shape[0] = k ? p_out[proj] : rank;
        x->shape[1] = k ? rank : p_in[proj];
        x->seed = layer * 100 + proj * 10 + k;
    }
}

/* q and v of both layers, rank 4 (the config CFG_QV describes them). */
static int qv_tensors(struct ts *t, const char *dtype) {
    int n = 0;
    for (int l = 0; l < 2; l++) {
        add_pair(t, &n, l, LP_PROJ_Q, 4, dtype);
        add_pair(t, &n, l, LP_PROJ_V, 4, dtype);
    }
    return n;
}

#define CFG_HEAD "{\"peft_type\":\"LORA\",\"task_type\":\"CAUSAL_LM\",\"bias\":\"none\","
#define CFG_QV CFG_HEAD "\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\",\"v_proj\"]"

static struct lp_adapter *load_ok(const struct lp_model *base) {
    struct lp_adapter *a = NULL;
    char err[LP_ERR_LEN] = "";
    int rc = lp_adapter_load(tmpdir, base, &a, err);
    if (rc) fail_msg("refused: %s (%d)", err, rc);
    assert_non_null(a);
    return a;
}

/* The adapter in tmpdir must be refused; the message names want1 (and want2). */
static void refused(const char *want1, const char *want2) {
    struct lp_adapter *a = (struct lp_adapter *)1;
    char err[LP_ERR_LEN] = "";
    int rc = lp_adapter_load(tmpdir, hf_base, &a, err);
    if (rc == 0) fail_msg("accepted; wanted an error naming '%s'", want1);
    assert_null(a);
    if (want1 && !strstr(err, want1)) fail_msg("error '%s' does not name '%s'", err, want1);
    if (want2 && !strstr(err, want2)) fail_msg("error '%s' does not name '%s'", err, want2);
}

static void cfg_refused(const char *cfg, const char *want1, const char *want2) {
    struct ts t[8];
    int n = qv_tensors(t, "F32");
    write_st(t, n, 0);
    write_cfg(cfg);
    refused(want1, want2);
    clean_dir();
}

static void tensors_refused(const char *cfg, const struct ts *t, int n, const char *want1,
                            const char *want2) {
    write_st(t, n, 0);
    write_cfg(cfg);
    refused(want1, want2);
    clean_dir();
}

/* ---- setup ------------------------------------------------------------------------ */

static int setup(void **state) {
    (void)state;
    char err[LP_ERR_LEN];
    const char *p = lp_test_path("tests/reference/models/tiny-llama/model.safetensors");
    if (!lp_test_exists(p)) return 0; /* tests skip */
    if (lp_model_load(lp_test_path("tests/reference/models/tiny-llama"), &hf_base, err)) {
        fprintf(stderr, "tiny-llama: %s\n", err);
        return -1;
    }
    p = lp_test_path("tests/reference/models/tiny-llama.f32.gguf");
    if (lp_test_exists(p) && lp_model_load(p, &gguf_base, err)) {
        fprintf(stderr, "tiny-llama.f32.gguf: %s\n", err);
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lp_test_adapter_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    clean_dir();
    if (tmpdir[0]) rmdir(tmpdir);
    lp_model_destroy(hf_base);
    lp_model_destroy(gguf_base);
    return 0;
}

#define NEED_BASE()                                                                                \
    do {                                                                                           \
        if (!hf_base) LP_SKIP("tests/reference/models/tiny-llama not made");                       \
    } while (0)

/* ---- valid PEFT adapters ---------------------------------------------------------- */

static void check_values(const struct lp_lora_target *t, const struct ts *a, const struct ts *b) {
    for (int64_t j = 0; j < numel(a); j++)
        if (t->a[j] != val(a->seed, j)) fail_msg("%s[%lld] = %g", a->name, (long long)j, t->a[j]);
    for (int64_t j = 0; j < numel(b); j++)
        if (t->b[j] != val(b->seed, j)) fail_msg("%s[%lld] = %g", b->name, (long long)j, t->b[j]);
}

static void test_qv_f32_f16_bf16(void **state) {
    (void)state;
    NEED_BASE();
    const char *dts[] = {"F32", "F16", "BF16"};
    for (int d = 0; d < 3; d++) {
        struct ts t[8];
        int n = qv_tensors(t, dts[d]);
        write_st(t, n, 0);
        write_cfg(CFG_QV "}");
        struct lp_adapter *a = load_ok(hf_base);
        assert_int_equal(lp_adapter_max_rank(a), 4);
        /* per layer: q A 4x64 + B 64x4, v A 4x64 + B 32x4 */
        assert_int_equal(lp_adapter_bytes(a), 2 * (256 + 256 + 256 + 128) * sizeof(float));
        for (int l = 0; l < 2; l++)
            for (int p = 0; p < LP_PROJ_COUNT; p++) {
                const struct lp_lora_target *x = lp_adapter_target(a, l, p);
                if (p != LP_PROJ_Q && p != LP_PROJ_V) {
                    assert_null(x);
                    continue;
                }
                assert_non_null(x);
                assert_int_equal(x->rank, 4);
                assert_true(x->scale == 2.0f);
                int k = l * 4 + (p == LP_PROJ_V ? 2 : 0);
                check_values(x, &t[k], &t[k + 1]);
            }
        assert_null(lp_adapter_target(a, 2, LP_PROJ_Q));
        assert_null(lp_adapter_target(a, -1, LP_PROJ_Q));
        assert_null(lp_adapter_target(a, 0, LP_PROJ_COUNT));
        lp_adapter_destroy(a);
        clean_dir();
    }
    lp_adapter_destroy(NULL);
}

static void test_config_file_path_and_defaults(void **state) {
    (void)state;
    NEED_BASE();
    struct ts t[8];
    int n = qv_tensors(t, "F32");
    write_st(t, n, 0);
    /* no r / lora_alpha / target_modules: PEFT's defaults r 8, alpha 8, q+v ... */
    write_cfg("{\"r\":4}");
    char path[256];
    path_in(path, sizeof path, "adapter_config.json");
    struct lp_adapter *a = NULL;
    char err[LP_ERR_LEN] = "";
    assert_int_equal(lp_adapter_load(path, hf_base, &a, err), 0);
    assert_true(lp_adapter_target(a, 1, LP_PROJ_V)->scale == 2.0f); /* 8 / 4 */
    lp_adapter_destroy(a);
    clean_dir();
    assert_int_equal(lp_adapter_load("/nonexistent/adapter", hf_base, &a, err), LP_ENOTFOUND);
    assert_non_null(strstr(err, "/nonexistent/adapter"));
}

static void test_rslora_and_patterns(void **state) {
    (void)state;
    NEED_BASE();
    struct ts t[40];
    int n = 0;
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < LP_PROJ_COUNT; p++) {
            int r = 8;
            if (p == LP_PROJ_Q) r = 2;
            if (l == 1 && p == LP_PROJ_DOWN) r = 16;
            add_pair(t, &n, l, p, r, "F32");
        }
    write_st(t, n, 0);
    /* rank_pattern keys match like PEFT's get_pattern_key: (.*\.)?(KEY)$, first key wins */
    write_cfg(CFG_HEAD "\"r\":8,\"lora_alpha\":16,\"target_modules\":\"all-linear\","
                       "\"rank_pattern\":{\"q_proj\":2,\"model.layers.1.mlp.down_proj\":16},"
                       "\"alpha_pattern\":{\"v_proj\":32,\"layers.0.self_attn.o_proj\":4,"
                       "\"_proj\":1000}}");
    struct lp_adapter *a = load_ok(hf_base);
    assert_int_equal(lp_adapter_max_rank(a), 16);
    assert_int_equal(lp_adapter_target(a, 0, LP_PROJ_Q)->rank, 2);
    assert_true(lp_adapter_target(a, 0, LP_PROJ_Q)->scale == 8.0f); /* 16 / 2 */
    assert_true(lp_adapter_target(a, 1, LP_PROJ_V)->scale == 4.0f); /* 32 / 8 */
    assert_true(lp_adapter_target(a, 0, LP_PROJ_O)->scale == 0.5f); /* 4 / 8 */
    assert_true(lp_adapter_target(a, 1, LP_PROJ_O)->scale == 2.0f); /* "_proj" is no suffix key */
    assert_true(lp_adapter_target(a, 1, LP_PROJ_DOWN)->scale == 1.0f); /* 16 / 16 */
    lp_adapter_destroy(a);
    clean_dir();

    /* layer 0's down_proj is rank 8 in the file but "down_proj": 3 applies to it */
    n = 0;
    add_pair(t, &n, 0, LP_PROJ_DOWN, 8, "F32");
    add_pair(t, &n, 1, LP_PROJ_DOWN, 16, "F32");
    tensors_refused(CFG_HEAD "\"r\":8,\"target_modules\":[\"down_proj\"],\"rank_pattern\":{"
                             "\"model.layers.1.mlp.down_proj\":16,\"down_proj\":3}}",
                    t, n, "layers.0.mlp.down_proj.lora_A", "r = 3");

    n = 0;
    add_pair(t, &n, 0, LP_PROJ_UP, 16, "F32");
    add_pair(t, &n, 1, LP_PROJ_UP, 16, "F32");
    write_st(t, n, 0);
    write_cfg(CFG_HEAD "\"r\":16,\"lora_alpha\":8,\"use_rslora\":true,\"target_modules\":[\"up_"
                       "proj\"]}");
    a = load_ok(hf_base);
    assert_true(lp_adapter_target(a, 1, LP_PROJ_UP)->scale == 2.0f); /* 8 / sqrt(16) */
    lp_adapter_destroy(a);
    clean_dir();
}

static void test_layers_and_regex(void **state) {
    (void)state;
    NEED_BASE();
    struct ts t[16];
    int n = 0;
    add_pair(t, &n, 1, LP_PROJ_Q, 4, "F32");
    add_pair(t, &n, 1, LP_PROJ_K, 4, "F32");
    write_st(t, n, 0);
    const char *cfgs[] = {
        CFG_HEAD "\"r\":4,\"target_modules\":[\"q_proj\",\"k_proj\"],\"layers_to_transform\":1}",
        CFG_HEAD "\"r\":4,\"target_modules\":[\"q_proj\",\"k_proj\"],\"layers_to_transform\":[1],"
                 "\"layers_pattern\":\"layers\"}",
        CFG_HEAD "\"r\":4,\"target_modules\":[\"q_proj\",\"k_proj\"],\"layers_to_transform\":[1,7],"
                 "\"layers_pattern\":[\"h\",\"layers\"]}",
        /* a full name bypasses layers_to_transform, as in PEFT */
        CFG_HEAD "\"r\":4,\"target_modules\":[\"model.layers.1.self_attn.q_proj\",\"k_proj\"],"
                 "\"layers_to_transform\":[1]}",
        CFG_HEAD "\"r\":4,\"target_modules\":\".*\\\\.1\\\\.self_attn\\\\.[qk]_proj\"}",
        CFG_HEAD "\"r\":4,\"target_modules\":[\"q_proj\",\"k_proj\"],"
                 "\"exclude_modules\":\"model\\\\.layers\\\\.0\\\\..*\"}",
        CFG_HEAD "\"r\":4,\"target_modules\":[\"q_proj\",\"k_proj\"],"
                 "\"exclude_modules\":[\"layers.0.self_attn.q_proj\",\"model.layers.0.self_attn.k_"
                 "proj\"]}",
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; c++) {
        write_cfg(cfgs[c]);
        struct lp_adapter *a = load_ok(hf_base);
        for (int l = 0; l < 2; l++)
            for (int p = 0; p < LP_PROJ_COUNT; p++) {
                int want = l == 1 && (p == LP_PROJ_Q || p == LP_PROJ_K);
                if ((lp_adapter_target(a, l, p) != NULL) != want)
                    fail_msg("config %zu: layer %d proj %d targeted %d", c, l, p, !want);
            }
        lp_adapter_destroy(a);
    }
    /* re.fullmatch: a bare name as a regex string selects nothing */
    write_cfg(CFG_HEAD "\"r\":4,\"target_modules\":\"q_proj\"}");
    refused("selects no module", NULL);
    /* layers_pattern that never matches: nothing targeted */
    write_cfg(CFG_HEAD "\"r\":4,\"target_modules\":[\"q_proj\"],\"layers_to_transform\":[1],"
                       "\"layers_pattern\":\"blocks\"}");
    refused("selects no module", NULL);
    /* layer 0 targeted by the config but absent from the file */
    write_cfg(CFG_HEAD "\"r\":4,\"target_modules\":[\"q_proj\",\"k_proj\"]}");
    refused("model.layers.0.self_attn.q_proj", "targeted");
    clean_dir();
}

/* A PEFT adapter (HF row order) on the GGUF base: B rows of q/k are permuted
 * per head as convert_hf_to_gguf permutes q/k; A, v and the rest unchanged. */
static void test_qk_permutation(void **state) {
    (void)state;
    NEED_BASE();
    if (!gguf_base) LP_SKIP("tests/reference/models/tiny-llama.f32.gguf not made");
    assert_int_equal(gguf_base->cfg.rope_interleaved, 1);
    struct ts t[16];
    int n = 0;
    add_pair(t, &n, 0, LP_PROJ_Q, 4, "F32");
    add_pair(t, &n, 0, LP_PROJ_K, 4, "F32");
    add_pair(t, &n, 0, LP_PROJ_V, 4, "F32");
    write_st(t, n, 0);
    write_cfg(CFG_HEAD "\"r\":4,\"target_modules\":[\"q_proj\",\"k_proj\",\"v_proj\"],"
                       "\"layers_to_transform\":0}");
    struct lp_adapter *h = load_ok(hf_base), *g = load_ok(gguf_base);
    for (int p = LP_PROJ_Q; p <= LP_PROJ_V; p++) {
        const struct lp_lora_target *x = lp_adapter_target(h, 0, p),
                                    *y = lp_adapter_target(g, 0, p);
        assert_memory_equal(x->a, y->a, 4 * N_EMBD * sizeof(float));
        int out = p == LP_PROJ_Q ? N_EMBD : KV_OUT, hd = 16;
        for (int row = 0; row < out; row++) {
            int head = row / hd, i = row % hd;
            /* GGUF row (h, 2j + s) holds HF row (h, s * hd/2 + j) */
            int src = p == LP_PROJ_V ? row : head * hd + (i % 2) * (hd / 2) + i / 2;
            if (memcmp(y->b + row * 4, x->b + src * 4, 4 * sizeof(float)))
                fail_msg("proj %d row %d is not HF row %d", p, row, src);
        }
    }
    lp_adapter_destroy(h);
    lp_adapter_destroy(g);
    clean_dir();
}

/* ---- refused PEFT adapters -------------------------------------------------------- */

static void test_refused_options(void **state) {
    (void)state;
    NEED_BASE();
    cfg_refused(CFG_QV ",\"use_dora\":true}", "use_dora", NULL);
    cfg_refused(CFG_QV ",\"modules_to_save\":[\"lm_head\"]}", "modules_to_save", NULL);
    cfg_refused("{\"bias\":\"all\",\"r\":4,\"target_modules\":[\"q_proj\",\"v_proj\"]}", "bias",
                "all");
    cfg_refused(CFG_QV ",\"lora_bias\":true}", "lora_bias", NULL);
    cfg_refused("{\"peft_type\":\"IA3\",\"r\":4}", "peft_type", "IA3");
    cfg_refused(CFG_QV ",\"layer_replication\":[[0,2],[0,2]]}", "layer_replication", NULL);
    cfg_refused(CFG_QV ",\"trainable_token_indices\":[5]}", "trainable_token_indices", NULL);
    cfg_refused(CFG_QV ",\"alora_invocation_tokens\":[1,2]}", "alora_invocation_tokens", NULL);
    cfg_refused(CFG_QV ",\"init_lora_weights\":\"pissa_niter_4\"}", "init_lora_weights", "pissa");
    cfg_refused(CFG_QV ",\"use_something_new\":true}", "use_something_new", NULL);
    cfg_refused(CFG_HEAD "\"r\":4.5}", "r must be", NULL);
    cfg_refused(CFG_HEAD "\"r\":0}", "r must be", NULL);
    cfg_refused(CFG_HEAD "\"r\":4,\"lora_alpha\":\"big\"}", "lora_alpha", NULL);
    cfg_refused(CFG_HEAD "\"r\":4,\"target_modules\":[\"embed_tokens\",\"q_proj\"]}",
                "model.embed_tokens", NULL);
    cfg_refused(CFG_HEAD "\"r\":4,\"target_modules\":[\"lm_head\",\"q_proj\"]}", "lm_head", NULL);
    cfg_refused(CFG_HEAD "\"r\":4,\"target_modules\":[\"mlp\"]}", "model.layers.0.mlp",
                "not a linear");
    cfg_refused(CFG_HEAD "\"r\":4,\"target_modules\":\"q_proj(\"}", "target_modules",
                "not a valid regex");
    cfg_refused(CFG_QV ",\"rank_pattern\":{\"(v\":4}}", "rank_pattern", "(v");
    cfg_refused(CFG_QV ",\"rank_pattern\":{\"v_proj\":2000}}", "rank_pattern['v_proj']", NULL);
    cfg_refused(CFG_HEAD "\"r\":4,\"target_modules\":\"all-linear\",\"layers_to_transform\":[0]}",
                "layers_to_transform", NULL);
    cfg_refused(CFG_QV ",\"layers_pattern\":\"layers\"}", "layers_pattern", NULL);
    cfg_refused("[1,2]", "not a JSON object", NULL);
    /* Python keeps the last duplicate, cJSON the first: neither is trusted */
    cfg_refused(CFG_QV ",\"bias\":\"all\"}", "'bias' appears twice", NULL);
    cfg_refused(CFG_QV ",\"rank_pattern\":{\"q_proj\":2,\"q_proj\":4}}", "'q_proj' appears twice",
                NULL);
    /* accepted: fan_in_fan_out (A and B are nn.Linear either way), eva/loftq leftovers */
    struct ts t[8];
    int n = qv_tensors(t, "F32");
    write_st(t, n, 0);
    write_cfg(CFG_QV ",\"fan_in_fan_out\":true,\"loftq_config\":{},\"eva_config\":null,"
                     "\"init_lora_weights\":\"gaussian\",\"lora_dropout\":0.1}");
    struct lp_adapter *a = load_ok(hf_base);
    check_values(lp_adapter_target(a, 0, LP_PROJ_Q), &t[0], &t[1]);
    lp_adapter_destroy(a);
    clean_dir();
}

static void test_refused_tensors(void **state) {
    (void)state;
    NEED_BASE();
    struct ts t[12];
    int n = qv_tensors(t, "F32");
    /* missing B, missing A */
    tensors_refused(CFG_QV "}", t, n - 1, "layers.1.self_attn.v_proj.lora_A", "no matching lora_B");
    struct ts u[12];
    memcpy(u, t, sizeof u);
    u[6] = u[7];
    tensors_refused(CFG_QV "}", u, n - 1, "layers.1.self_attn.v_proj.lora_B", "no matching lora_A");
    /* wrong in / out features, rank disagreement, rank != r */
    memcpy(u, t, sizeof u);
    u[0].shape[1] = 32;
    tensors_refused(CFG_QV "}", u, n, "layers.0.self_attn.q_proj.lora_A", "takes 64 inputs");
    memcpy(u, t, sizeof u);
    u[3].shape[0] = 64;
    tensors_refused(CFG_QV "}", u, n, "layers.0.self_attn.v_proj.lora_B", "32 outputs");
    memcpy(u, t, sizeof u);
    u[1].shape[1] = 5;
    tensors_refused(CFG_QV "}", u, n, "rank 4 vs 5", NULL);
    n = 0;
    for (int l = 0; l < 2; l++) {
        add_pair(u, &n, l, LP_PROJ_Q, 8, "F32");
        add_pair(u, &n, l, LP_PROJ_V, 8, "F32");
    }
    tensors_refused(CFG_QV "}", u, n, "rank 8", "r = 4");
    /* three dimensions */
    n = qv_tensors(u, "F32");
    u[0].nd = 3;
    u[0].shape[2] = 1;
    tensors_refused(CFG_QV "}", u, n, "layers.0.self_attn.q_proj.lora_A", "3 dimensions");
    /* a layer the base does not have; an unknown module; a module not targeted */
    n = qv_tensors(u, "F32");
    add_pair(u, &n, 5, LP_PROJ_Q, 4, "F32");
    tensors_refused(CFG_QV "}", u, n, "layer 5", "2 layers");
    n = qv_tensors(u, "F32");
    u[n] = u[0];
    strcpy(u[n].name, "base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight");
    n++;
    tensors_refused(CFG_QV "}", u, n, "qkv_proj", "unknown module");
    n = qv_tensors(u, "F32");
    add_pair(u, &n, 0, LP_PROJ_K, 4, "F32");
    tensors_refused(CFG_QV "}", u, n, "layers.0.self_attn.k_proj.lora_A", "does not target");
    n = qv_tensors(u, "F32");
    u[n] = u[0];
    strcpy(u[n++].name, "base_model.model.model.layers.00.self_attn.q_proj.lora_A.weight");
    tensors_refused(CFG_QV "}", u, n, "layers.00", "unknown module");
    /* DoRA magnitude, lora bias, embeddings, stray tensors */
    const char *stray[][2] = {
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", "use_dora"},
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias", "lora_bias"},
        {"base_model.model.model.embed_tokens.lora_embedding_A", "embed_tokens"},
        {"base_model.model.lm_head.lora_A.weight", "lm_head"},
        {"base_model.model.model.embed_tokens.weight", "embed_tokens"},
        {"base_model.model.model.norm.weight", "not a lora_A/lora_B"},
        {"model.layers.0.self_attn.q_proj.lora_A.weight", "does not start with"},
    };
    for (size_t i = 0; i < sizeof stray / sizeof *stray; i++) {
        n = qv_tensors(u, "F32");
        u[n] = u[0];
        snprintf(u[n++].name, sizeof u[0].name, "%s", stray[i][0]);
        tensors_refused(CFG_QV "}", u, n, stray[i][1], NULL);
    }
    /* a NaN */
    n = qv_tensors(u, "F32");
    u[5].poison = NAN;
    tensors_refused(CFG_QV "}", u, n, "NaN", "layers.1.self_attn.q_proj");
}

static void test_refused_files(void **state) {
    (void)state;
    NEED_BASE();
    char path[256];
    /* pickle only */
    write_cfg(CFG_QV "}");
    path_in(path, sizeof path, "adapter_model.bin");
    write_bytes(path, "\x80\x02}q\x00.", 6);
    refused("adapter_model.bin is a pickle; convert it to safetensors (never unpickled)", NULL);
    assert_int_equal(lp_adapter_load(path, hf_base, &(struct lp_adapter *){NULL}, NULL),
                     LP_EUNSUPPORTED);
    clean_dir();
    /* no config, no weights */
    refused("no adapter_config.json", NULL);
    write_cfg(CFG_QV "}");
    refused("no adapter_model.safetensors", NULL);
    clean_dir();
    /* truncated safetensors; a header that lies about a tensor's bytes */
    struct ts t[8];
    int n = qv_tensors(t, "F32");
    write_st(t, n, 10);
    write_cfg(CFG_QV "}");
    refused("adapter_model.safetensors", NULL);
    clean_dir();
    n = qv_tensors(t, "F32");
    /* the header's byte ranges end before the file does */
    write_st(t, n, 0);
    path_in(path, sizeof path, "adapter_model.safetensors");
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fwrite("\0\0\0\0\0\0\0\0", 1, 8, f); /* trailing bytes nobody claims */
    fclose(f);
    write_cfg(CFG_QV "}");
    refused("adapter_model.safetensors", NULL);
    clean_dir();
    /* a config that is not JSON, and one too large */
    n = qv_tensors(t, "F32");
    write_st(t, n, 0);
    write_cfg("{\"r\": 4,");
    refused("not a JSON object", NULL);
    char *big = malloc((1 << 20) + 16);
    assert_non_null(big);
    memset(big, ' ', (1 << 20) + 15);
    big[0] = '{';
    big[(1 << 20) + 14] = '}';
    big[(1 << 20) + 15] = 0;
    write_cfg(big);
    free(big);
    refused("larger than", NULL);
    clean_dir();
}

/* ---- GGUF LoRA ---------------------------------------------------------------------- */

struct gt {
    char name[96];
    int64_t ne0, ne1;
    int seed;
};

static void wb(uint8_t **p, size_t *n, size_t *cap, const void *d, size_t k) {
    if (*n + k > *cap) {
        *cap = (*n + k) * 2;
        *p = realloc(*p, *cap);
        assert_non_null(*p);
    }
    memcpy(*p + *n, d, k);
    *n += k;
}
static void wu32(uint8_t **p, size_t *n, size_t *c, uint32_t v) { wb(p, n, c, &v, 4); }
static void wu64(uint8_t **p, size_t *n, size_t *c, uint64_t v) { wb(p, n, c, &v, 8); }
static void wstr(uint8_t **p, size_t *n, size_t *c, const char *s) {
    wu64(p, n, c, strlen(s));
    wb(p, n, c, s, strlen(s));
}
static void wkv_str(uint8_t **p, size_t *n, size_t *c, const char *k, const char *v) {
    wstr(p, n, c, k);
    wu32(p, n, c, 8);
    wstr(p, n, c, v);
}

/* A GGUF v3 LoRA file in tmpdir/lora.gguf with F32 tensors. */
static void write_gguf(const char *gtype, const char *arch, float alpha, const struct gt *t,
                       int nt) {
    uint8_t *p = NULL;
    size_t n = 0, cap = 0;
    wb(&p, &n, &cap, "GGUF", 4);
    wu32(&p, &n, &cap, 3);
    wu64(&p, &n, &cap, (uint64_t)nt);
    wu64(&p, &n, &cap, 4);
    wkv_str(&p, &n, &cap, "general.type", gtype);
    wkv_str(&p, &n, &cap, "general.architecture", arch);
    wkv_str(&p, &n, &cap, "adapter.type", "lora");
    wstr(&p, &n, &cap, "adapter.lora.alpha");
    wu32(&p, &n, &cap, 6);
    wb(&p, &n, &cap, &alpha, 4);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        wstr(&p, &n, &cap, t[i].name);
        wu32(&p, &n, &cap, 2);
        wu64(&p, &n, &cap, (uint64_t)t[i].ne0);
        wu64(&p, &n, &cap, (uint64_t)t[i].ne1);
        wu32(&p, &n, &cap, 0); /* F32 */
        wu64(&p, &n, &cap, off);
        off += (uint64_t)(t[i].ne0 * t[i].ne1 * 4 + 31) / 32 * 32;
    }
    while (n % 32)
        wb(&p, &n, &cap, "", 1);
    for (int i = 0; i < nt; i++) {
        size_t start = n;
        for (int64_t j = 0; j < t[i].ne0 * t[i].ne1; j++) {
            float v = val(t[i].seed, j);
            wb(&p, &n, &cap, &v, 4);
        }
        while ((n - start) % 32)
            wb(&p, &n, &cap, "", 1);
    }
    char path[256];
    path_in(path, sizeof path, "lora.gguf");
    write_bytes(path, p, n);
    free(p);
}

static int gguf_load(const struct lp_model *base, struct lp_adapter **a, char *err) {
    char path[256];
    path_in(path, sizeof path, "lora.gguf");
    return lp_adapter_load(path, base, a, err);
}

static void test_gguf_lora(void **state) {
    (void)state;
    NEED_BASE();
    struct gt t[6] = {
        {"blk.0.attn_q.weight.lora_a", N_EMBD, 4, 1},
        {"blk.0.attn_q.weight.lora_b", 4, N_EMBD, 2},
        {"blk.1.ffn_down.weight.lora_a", N_FF, 8, 3},
        {"blk.1.ffn_down.weight.lora_b", 8, N_EMBD, 4},
        {"blk.1.attn_k.weight.lora_a", N_EMBD, 2, 5},
        {"blk.1.attn_k.weight.lora_b", 2, KV_OUT, 6},
    };
    write_gguf("adapter", "llama", 16.0f, t, 6);
    struct lp_adapter *a = NULL;
    char err[LP_ERR_LEN] = "";
    if (gguf_base) {
        /* GGUF adapter on GGUF base: rows as stored */
        assert_int_equal(gguf_load(gguf_base, &a, err), 0);
        const struct lp_lora_target *q = lp_adapter_target(a, 0, LP_PROJ_Q);
        assert_int_equal(q->rank, 4);
        assert_true(q->scale == 4.0f); /* alpha / rank as llama.cpp */
        for (int j = 0; j < 4 * N_EMBD; j++) {
            assert_true(q->a[j] == val(1, j));
            assert_true(q->b[j] == val(2, j));
        }
        assert_true(lp_adapter_target(a, 1, LP_PROJ_DOWN)->scale == 2.0f);
        assert_int_equal(lp_adapter_max_rank(a), 8);
        assert_null(lp_adapter_target(a, 1, LP_PROJ_Q));
        lp_adapter_destroy(a);
    }
    /* on the HF base the permutation is undone: HF row (h, s*8 + j) = GGUF row (h, 2j + s) */
    assert_int_equal(gguf_load(hf_base, &a, err), 0);
    const struct lp_lora_target *k = lp_adapter_target(a, 1, LP_PROJ_K);
    for (int row = 0; row < KV_OUT; row++) {
        int h = row / 16, i = row % 16, g = h * 16 + 2 * (i % 8) + i / 8;
        for (int c = 0; c < 2; c++)
            if (k->b[row * 2 + c] != val(6, g * 2 + c))
                fail_msg("k row %d is not GGUF row %d", row, g);
    }
    lp_adapter_destroy(a);

    /* alpha 0: scale 1 (llama.cpp) */
    write_gguf("adapter", "llama", 0.0f, t, 2);
    assert_int_equal(gguf_load(hf_base, &a, err), 0);
    assert_true(lp_adapter_target(a, 0, LP_PROJ_Q)->scale == 1.0f);
    lp_adapter_destroy(a);

    struct {
        const char *gtype, *arch;
        int drop; /* leave out tensor index, or -1 */
        const char *rename, *want;
    } bad[] = {
        {"model", "llama", -1, NULL, "general.type"},
        {"adapter", "qwen2", -1, NULL, "general.architecture"},
        {"adapter", "llama", 1, NULL, "no matching lora_B"},
        {"adapter", "llama", -1, "token_embd.weight.lora_a", "token_embd"},
        {"adapter", "llama", -1, "blk.0.attn_norm.weight", "norm"},
        {"adapter", "llama", -1, "blk.2.attn_q.weight.lora_a", "2 layers"},
        {"adapter", "llama", -1, "blk.0.attn_qkv.weight.lora_a", "blk.0.attn_qkv"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct gt u[6];
        memcpy(u, t, sizeof u);
        int nt = 6;
        if (bad[i].drop >= 0) {
            u[bad[i].drop] = u[5];
            nt--;
        }
        if (bad[i].rename) snprintf(u[4].name, sizeof u[4].name, "%s", bad[i].rename);
        write_gguf(bad[i].gtype, bad[i].arch, 8.0f, u, nt);
        a = (struct lp_adapter *)1;
        if (gguf_load(hf_base, &a, err) == 0) fail_msg("case %zu accepted", i);
        assert_null(a);
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: '%s' does not name '%s'", i, err, bad[i].want);
    }
    /* wrong shape: lora_a with 32 inputs for attn_q */
    struct gt u[2] = {{"blk.0.attn_q.weight.lora_a", 32, 4, 1},
                      {"blk.0.attn_q.weight.lora_b", 4, N_EMBD, 2}};
    write_gguf("adapter", "llama", 8.0f, u, 2);
    assert_int_not_equal(gguf_load(hf_base, &a, err), 0);
    assert_non_null(strstr(err, "blk.0.attn_q.weight.lora_a"));
    clean_dir();
}

/* ---- the reference adapters made by PEFT ------------------------------------------ */

static struct lp_adapter *ref_load(const char *name, const struct lp_model *base) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/reference/adapters/%s", name);
    struct lp_adapter *a = NULL;
    char err[LP_ERR_LEN] = "";
    int rc = lp_adapter_load(lp_test_path(rel), base, &a, err);
    if (rc) fail_msg("%s: %s", name, err);
    return a;
}

static void test_reference_adapters(void **state) {
    (void)state;
    NEED_BASE();
    if (!lp_test_exists(lp_test_path("tests/reference/adapters/tl-patterns/adapter_config.json")))
        LP_SKIP("tests/reference/adapters not made (make_adapter_goldens.py)");
    struct lp_adapter *a = ref_load("tl-patterns", hf_base);
    assert_int_equal(lp_adapter_target(a, 0, LP_PROJ_Q)->rank, 4);
    assert_true(lp_adapter_target(a, 0, LP_PROJ_Q)->scale == 4.0f); /* 16 / 4 */
    assert_int_equal(lp_adapter_target(a, 1, LP_PROJ_DOWN)->rank, 16);
    assert_int_equal(lp_adapter_target(a, 0, LP_PROJ_DOWN)->rank, 8);
    assert_true(lp_adapter_target(a, 1, LP_PROJ_V)->scale == 4.0f); /* 32 / 8 */
    assert_true(lp_adapter_target(a, 0, LP_PROJ_O)->scale == 0.5f); /* 4 / 8 */
    assert_true(lp_adapter_target(a, 1, LP_PROJ_O)->scale == 2.0f);
    lp_adapter_destroy(a);

    a = ref_load("tl-layers", hf_base);
    for (int p = 0; p < LP_PROJ_COUNT; p++) {
        assert_null(lp_adapter_target(a, 0, p));
        assert_true((lp_adapter_target(a, 1, p) != NULL) == (p <= LP_PROJ_O));
    }
    lp_adapter_destroy(a);

    a = ref_load("tl-regex-r12", hf_base);
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < LP_PROJ_COUNT; p++)
            assert_true((lp_adapter_target(a, l, p) != NULL) ==
                        (l == 0 && (p == LP_PROJ_Q || p == LP_PROJ_K || p == LP_PROJ_UP)));
    assert_true(lp_adapter_target(a, 0, LP_PROJ_UP)->scale == 0.5f);
    lp_adapter_destroy(a);

    a = ref_load("tl-all-r64-rslora-bf16", hf_base);
    assert_int_equal(lp_adapter_max_rank(a), 64);
    assert_true(lp_adapter_target(a, 1, LP_PROJ_DOWN)->scale == 4.0f); /* 32 / sqrt(64) */
    lp_adapter_destroy(a);

    a = ref_load("tl-mlp-r16-rslora", hf_base);
    assert_null(lp_adapter_target(a, 0, LP_PROJ_Q));
    assert_true(lp_adapter_target(a, 0, LP_PROJ_GATE)->scale == 4.0f); /* 16 / sqrt(16) */
    lp_adapter_destroy(a);

    /* the converted GGUF equals the PEFT original, on either base */
    const char *conv[] = {"tl-qv-r4", "tl-all-r8"};
    const struct lp_model *bases[] = {hf_base, gguf_base};
    for (int c = 0; c < 2; c++) {
        char gname[64];
        snprintf(gname, sizeof gname, "%s.gguf", conv[c]);
        if (!lp_test_exists(lp_test_path("tests/reference/adapters/tl-all-r8.gguf"))) break;
        for (int bi = 0; bi < 2; bi++) {
            if (!bases[bi]) continue;
            struct lp_adapter *x = ref_load(conv[c], bases[bi]), *y = ref_load(gname, bases[bi]);
            assert_int_equal(lp_adapter_bytes(x), lp_adapter_bytes(y));
            for (int l = 0; l < 2; l++)
                for (int p = 0; p < LP_PROJ_COUNT; p++) {
                    const struct lp_lora_target *u = lp_adapter_target(x, l, p),
                                                *v = lp_adapter_target(y, l, p);
                    assert_true((u == NULL) == (v == NULL));
                    if (!u) continue;
                    assert_int_equal(u->rank, v->rank);
                    assert_true(u->scale == v->scale);
                    int64_t in = p == LP_PROJ_DOWN ? N_FF : N_EMBD;
                    int64_t out = p == LP_PROJ_K || p == LP_PROJ_V         ? KV_OUT
                                  : (p == LP_PROJ_GATE || p == LP_PROJ_UP) ? N_FF
                                                                           : N_EMBD;
                    assert_memory_equal(u->a, v->a, (size_t)(u->rank * in) * sizeof(float));
                    assert_memory_equal(u->b, v->b, (size_t)(u->rank * out) * sizeof(float));
                }
            lp_adapter_destroy(x);
            lp_adapter_destroy(y);
        }
    }
}

static void test_reference_smollm2(void **state) {
    (void)state;
    char mp[4096];
    snprintf(mp, sizeof mp, "%s", lp_test_path("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if (!lp_test_exists(mp)) LP_SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf not present");
    if (!lp_test_exists(lp_test_path("tests/reference/adapters/sm-qv-r8/adapter_config.json")))
        LP_SKIP("tests/reference/adapters/sm-* not made (make_adapter_goldens.py)");
    struct lp_model *m = NULL;
    char err[LP_ERR_LEN];
    if (lp_model_load(mp, &m, err)) fail_msg("%s", err);
    struct lp_adapter *a = ref_load("sm-qv-r8", m);
    assert_int_equal(lp_adapter_target(a, 29, LP_PROJ_V)->rank, 8);
    assert_null(lp_adapter_target(a, 29, LP_PROJ_K));
    lp_adapter_destroy(a);
    a = ref_load("sm-mlp-r16-layers", m);
    for (int l = 0; l < 30; l++)
        assert_true((lp_adapter_target(a, l, LP_PROJ_UP) != NULL) == (l == 0 || l == 7 || l == 29));
    lp_adapter_destroy(a);
    a = ref_load("sm-all-r4-rslora-bf16", m);
    assert_true(lp_adapter_target(a, 15, LP_PROJ_O)->scale == 4.0f); /* 8 / sqrt(4) */
    lp_adapter_destroy(a);
    lp_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qv_f32_f16_bf16),
        cmocka_unit_test(test_config_file_path_and_defaults),
        cmocka_unit_test(test_rslora_and_patterns),
        cmocka_unit_test(test_layers_and_regex),
        cmocka_unit_test(test_qk_permutation),
        cmocka_unit_test(test_refused_options),
        cmocka_unit_test(test_refused_tensors),
        cmocka_unit_test(test_refused_files),
        cmocka_unit_test(test_gguf_lora),
        cmocka_unit_test(test_reference_adapters),
        cmocka_unit_test(test_reference_smollm2),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

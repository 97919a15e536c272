/* test_tokenizer.c: every tokenizer against the Hugging Face goldens made by
 * tests/reference/make_tokenizer_goldens.py (ids with and without special-token
 * parsing, decode with and without special tokens, incremental detok equal to
 * the whole decode), for SmolLM2 from its GGUF, and for the small SPM,
 * Metaspace and Llama-3-style tokenizers from their tokenizer.json and GGUF
 * copies; then error paths, UTF-8 safety of detok, and encode speed. */
#include "lp_test.h"

#include <cjson/cJSON.h>
#include <time.h>

#include "lp_common.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

#define SMOLLM2 "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define GOLD "tests/reference/goldens/"

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

static struct lp_tokenizer *load_json(const char *rel) {
    size_t n;
    char *j = read_file(lp_test_path(rel), &n);
    if (!j) return NULL;
    struct lp_tokenizer *t = NULL;
    char err[LP_ERR_LEN] = "";
    int rc = lp_tokenizer_from_hf_json(j, n, NULL, 0, &t, err);
    free(j);
    if (rc) print_error("%s: %s\n", rel, err);
    assert_int_equal(rc, LP_OK);
    return t;
}

static struct lp_tokenizer *load_gguf(const char *rel, struct gguf_ctx **g) {
    char err[LP_ERR_LEN] = "";
    if (!lp_test_exists(lp_test_path(rel))) return NULL;
    int rc = gguf_open(lp_test_path(rel), g, err);
    if (rc) print_error("%s: %s\n", rel, err);
    assert_int_equal(rc, LP_OK);
    struct lp_tokenizer *t = NULL;
    rc = lp_tokenizer_from_gguf(*g, &t, err);
    if (rc) print_error("%s: %s\n", rel, err);
    assert_int_equal(rc, LP_OK);
    return t;
}

/* ---- comparing with a golden file ---------------------------------------- */

static int ids_equal(const int32_t *a, size_t n, const cJSON *arr) {
    if ((size_t)cJSON_GetArraySize(arr) != n) return 0;
    size_t i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) {
        if ((int32_t)c->valuedouble != a[i++]) return 0;
    }
    return 1;
}

static void print_ids(const char *what, const int32_t *a, size_t n) {
    print_message("    %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++)
        print_message(" %d", a[i]);
    print_message("%s\n", n > 40 ? " ..." : "");
}

static int32_t *json_ids(const cJSON *arr, size_t *n) {
    *n = (size_t)cJSON_GetArraySize(arr);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    size_t i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) v[i++] = (int32_t)c->valuedouble;
    return v;
}

static char *detok_all(const struct lp_tokenizer *t, const int32_t *ids, size_t n, int skip) {
    size_t cap = 64 + n * 800, len = 0;
    char *s = malloc(cap);
    struct lp_detok d;
    lp_detok_init(&d);
    for (size_t i = 0; i < n; i++) {
        char out[LP_DETOK_MAX + 8];
        size_t k = lp_detok_push(t, &d, ids[i], skip, out, sizeof out);
        assert_true(k <= sizeof out);
        /* never half a character: each push is valid UTF-8 on its own */
        out[k] = 0;
        memcpy(s + len, out, k);
        len += k;
    }
    len += lp_detok_flush(&d, s + len, LP_DETOK_MAX + 8);
    s[len] = 0;
    return s;
}

static const char *str_or(const cJSON *rec, const char *key, const char *dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* 1 if any id of arr is a special token (decoding it skipping specials
 * gives less text than keeping them). */
static int has_special(const struct lp_tokenizer *t, const cJSON *arr) {
    const cJSON *c;
    int found = 0;
    cJSON_ArrayForEach(c, arr) {
        int32_t id = (int32_t)c->valuedouble;
        char *keep = NULL, *skip = NULL;
        assert_int_equal(lp_tokenizer_decode(t, &id, 1, 0, &keep, NULL), LP_OK);
        assert_int_equal(lp_tokenizer_decode(t, &id, 1, 1, &skip, NULL), LP_OK);
        found |= strcmp(keep, skip) != 0;
        free(keep);
        free(skip);
    }
    return found;
}

/* Runs one tokenizer over a golden file; lines whose text contains `skip_if`,
 * or (skip_special_ids) whose plain-text ids hold a special token, are left
 * out (a feature the format cannot carry). */
static void check_golden(const struct lp_tokenizer *t, const char *name, const char *golden,
                         const char *skip_if, int skip_special_ids) {
    char *data = read_file(lp_test_path(golden), NULL);
    assert_non_null(data);
    int lines = 0, bad = 0, skipped = 0;
    size_t total_ids = 0;
    char err[LP_ERR_LEN];
    for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *rec = cJSON_Parse(line);
        assert_non_null(rec);
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(rec, "meta");
        if (meta) {
            const cJSON *bos = cJSON_GetObjectItemCaseSensitive(meta, "bos");
            if (cJSON_IsNumber(bos)) assert_int_equal(lp_tokenizer_bos(t), bos->valueint);
            const cJSON *ex = cJSON_GetObjectItemCaseSensitive(meta, "add_special_example");
            const char *tx = str_or(ex, "text", "");
            int32_t *ids;
            size_t n;
            assert_int_equal(lp_tokenizer_encode(t, tx, strlen(tx), 1, 1, &ids, &n, err), LP_OK);
            if (!ids_equal(ids, n, cJSON_GetObjectItemCaseSensitive(ex, "ids"))) {
                print_error("%s: add_special example differs\n", name);
                print_ids("got", ids, n);
                bad++;
            }
            free(ids);
            cJSON_Delete(rec);
            continue;
        }
        const cJSON *g_ids0 = cJSON_GetObjectItemCaseSensitive(rec, "ids");
        const char *text = str_or(rec, "text", NULL);
        assert_non_null(text);
        if ((skip_if && strstr(text, skip_if)) || (skip_special_ids && has_special(t, g_ids0))) {
            skipped++;
            cJSON_Delete(rec);
            continue;
        }
        lines++;
        const cJSON *g_ids = cJSON_GetObjectItemCaseSensitive(rec, "ids");
        const cJSON *g_sp = cJSON_GetObjectItemCaseSensitive(rec, "ids_special");
        if (!g_sp) g_sp = g_ids;
        const char *g_dec = str_or(rec, "decoded", text);
        const char *g_plain = str_or(rec, "decoded_plain", text);
        const char *g_skip = str_or(rec, "decoded_skip", g_dec);
        int line_bad = 0;

        int32_t *ids = NULL, *sp = NULL;
        size_t n = 0, nsp = 0;
        int rc = lp_tokenizer_encode(t, text, strlen(text), 0, 0, &ids, &n, err);
        assert_int_equal(rc, LP_OK);
        rc = lp_tokenizer_encode(t, text, strlen(text), 0, 1, &sp, &nsp, err);
        assert_int_equal(rc, LP_OK);
        total_ids += n;
        if (!ids_equal(ids, n, g_ids)) line_bad |= 1;
        if (!ids_equal(sp, nsp, g_sp)) line_bad |= 2;

        /* Decode the golden ids (not ours), so decode is tested on its own. */
        size_t gn, gsn;
        int32_t *gi = json_ids(g_ids, &gn), *gs = json_ids(g_sp, &gsn);
        char *d_sp, *d_plain, *d_skip;
        assert_int_equal(lp_tokenizer_decode(t, gs, gsn, 0, &d_sp, err), LP_OK);
        assert_int_equal(lp_tokenizer_decode(t, gi, gn, 0, &d_plain, err), LP_OK);
        assert_int_equal(lp_tokenizer_decode(t, gs, gsn, 1, &d_skip, err), LP_OK);
        if (strcmp(d_sp, g_dec)) line_bad |= 4;
        if (strcmp(d_plain, g_plain)) line_bad |= 8;
        if (strcmp(d_skip, g_skip)) line_bad |= 16;
        char *inc = detok_all(t, gs, gsn, 0), *inc_skip = detok_all(t, gs, gsn, 1);
        if (strcmp(inc, d_sp)) line_bad |= 32;
        if (strcmp(inc_skip, d_skip)) line_bad |= 64;
        if (line_bad) {
            if (bad < 8) {
                print_error("%s: line %d differs (mask %d): text \"%.80s\"\n", name, lines,
                            line_bad, text);
                if (line_bad & 1) print_ids("ids", ids, n), print_ids("want", gi, gn);
                if (line_bad & 2) print_ids("ids_special", sp, nsp), print_ids("want", gs, gsn);
                if (line_bad & 4)
                    print_error("    decoded \"%.80s\" want \"%.80s\"\n", d_sp, g_dec);
                if (line_bad & 8)
                    print_error("    decoded_plain \"%.80s\" want \"%.80s\"\n", d_plain, g_plain);
                if (line_bad & 16)
                    print_error("    decoded_skip \"%.80s\" want \"%.80s\"\n", d_skip, g_skip);
                if (line_bad & 96) print_error("    detok \"%.80s\"\n", inc);
            }
            bad++;
        }
        free(ids);
        free(sp);
        free(gi);
        free(gs);
        free(d_sp);
        free(d_plain);
        free(d_skip);
        free(inc);
        free(inc_skip);
        cJSON_Delete(rec);
    }
    free(data);
    print_message("%s: %d lines (%d left out), %zu ids, %d differ\n", name, lines, skipped,
                  total_ids, bad);
    assert_true(lines >= 1000);
    assert_int_equal(bad, 0);
}

/* ---- the goldens --------------------------------------------------------- */

static void test_smollm2_gguf(void **state) {
    (void)state;
    if (!lp_test_exists(lp_test_path(SMOLLM2))) LP_SKIP("%s not present", SMOLLM2);
    struct gguf_ctx *g = NULL;
    struct lp_tokenizer *t = load_gguf(SMOLLM2, &g);
    assert_int_equal(lp_tokenizer_n_vocab(t), 49152);
    assert_int_equal(lp_tokenizer_bos(t), 1);
    assert_int_equal(lp_tokenizer_eos(t), 2);
    assert_int_equal(lp_tokenizer_find(t, "<|im_start|>"), 1);
    assert_string_equal(lp_tokenizer_token_text(t, 2), "<|im_end|>");
    assert_true(lp_tokenizer_is_eog(t, 2));
    assert_true(lp_tokenizer_is_eog(t, 0)); /* <|endoftext|> */
    assert_false(lp_tokenizer_is_eog(t, 1));
    assert_null(lp_tokenizer_token_text(t, 49152));
    check_golden(t, "smollm2 (gguf)", GOLD "tokenizer_smollm2.jsonl", NULL, 0);
    lp_tokenizer_destroy(t);
    gguf_close(g);
}

static void test_spm_json(void **state) {
    (void)state;
    struct lp_tokenizer *t = load_json(GOLD "tok_spm/tokenizer.json");
    check_golden(t, "spm (tokenizer.json)", GOLD "tokenizer_spm.jsonl", NULL, 0);
    lp_tokenizer_destroy(t);
}

static void test_spm_gguf(void **state) {
    (void)state;
    struct gguf_ctx *g = NULL;
    struct lp_tokenizer *t = load_gguf(GOLD "tok_spm/tok_spm.gguf", &g);
    assert_non_null(t);
    /* GGUF has no "normalized" flag for added tokens: [TOOL] (normalized in
     * the tokenizer.json) is matched in raw text there. And the HF trainer
     * learned merges that build </s> and <unk> from plain text, which
     * SentencePiece (and so a GGUF "llama" model) never does: such lines are
     * left out. */
    check_golden(t, "spm (gguf, score merges)", GOLD "tokenizer_spm.jsonl", "[TOOL]", 1);
    lp_tokenizer_destroy(t);
    gguf_close(g);
}

static void test_spm_meta_json(void **state) {
    (void)state;
    struct lp_tokenizer *t = load_json(GOLD "tok_spm_meta/tokenizer.json");
    check_golden(t, "spm metaspace (tokenizer.json)", GOLD "tokenizer_spm_meta.jsonl", NULL, 0);
    lp_tokenizer_destroy(t);
}

static void test_llama3_json(void **state) {
    (void)state;
    struct lp_tokenizer *t = load_json(GOLD "tok_llama3/tokenizer.json");
    check_golden(t, "llama3 (tokenizer.json)", GOLD "tokenizer_llama3.jsonl", NULL, 0);
    lp_tokenizer_destroy(t);
}

static void test_llama3_gguf(void **state) {
    (void)state;
    struct gguf_ctx *g = NULL;
    struct lp_tokenizer *t = load_gguf(GOLD "tok_llama3/tok_llama3.gguf", &g);
    assert_non_null(t);
    /* GGUF cannot say lstrip/rstrip: <mask> is matched without them there. */
    check_golden(t, "llama3 (gguf)", GOLD "tokenizer_llama3.jsonl", "<mask>", 0);
    lp_tokenizer_destroy(t);
    gguf_close(g);
}

/* Tiny tokenizers (the fuzz seeds) for Split's behaviours, grouped Digits,
 * lstrip/rstrip/single_word added tokens and Metaspace splitting. */
static void test_small_cases(void **state) {
    (void)state;
    char *g = read_file(lp_test_path(GOLD "tok_small_cases.json"), NULL);
    assert_non_null(g);
    cJSON *cases = cJSON_Parse(g), *c;
    free(g);
    assert_non_null(cases);
    int n = 0, bad = 0;
    char err[LP_ERR_LEN];
    cJSON_ArrayForEach(c, cases) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/fuzz/corpus/tokenizer_json/%s", str_or(c, "file", ""));
        size_t len;
        char *data = read_file(lp_test_path(rel), &len);
        assert_non_null(data);
        size_t jl = strlen(data);
        const char *text = data + jl + 1;
        struct lp_tokenizer *t = NULL;
        int rc = lp_tokenizer_from_hf_json(data, jl, NULL, 0, &t, err);
        if (rc) print_error("%s: %s\n", rel, err);
        assert_int_equal(rc, LP_OK);
        for (int ps = 0; ps < 2; ps++) {
            int32_t *ids;
            size_t k;
            assert_int_equal(lp_tokenizer_encode(t, text, len - jl - 1, 1, ps, &ids, &k, err),
                             LP_OK);
            char *d;
            assert_int_equal(lp_tokenizer_decode(t, ids, k, 0, &d, err), LP_OK);
            const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, ps ? "ids_special" : "ids");
            const char *wd = str_or(c, ps ? "decoded_special" : "decoded", "");
            if (!ids_equal(ids, k, want) || strcmp(d, wd)) {
                print_error("%s (parse_special %d) differs: decoded \"%s\" want \"%s\"\n", rel, ps,
                            d, wd);
                print_ids("got", ids, k);
                bad++;
            }
            n++;
            free(ids);
            free(d);
        }
        lp_tokenizer_destroy(t);
        free(data);
    }
    cJSON_Delete(cases);
    print_message("small cases: %d encodes, %d differ\n", n, bad);
    assert_true(n >= 30);
    assert_int_equal(bad, 0);
}

/* ---- behaviour ----------------------------------------------------------- */

static void test_invalid_utf8(void **state) {
    (void)state;
    struct lp_tokenizer *t = load_json(GOLD "tok_llama3/tokenizer.json");
    const char *bad[] = {"\xff", "a\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"};
    char err[LP_ERR_LEN];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(lp_tokenizer_encode(t, bad[i], strlen(bad[i]), 1, 1, &ids, &n, err),
                         LP_EINVAL);
        assert_null(ids);
    }
    int32_t *ids;
    size_t n;
    assert_int_equal(lp_tokenizer_encode(t, "", 0, 0, 1, &ids, &n, err), LP_OK);
    assert_int_equal(n, 0);
    free(ids);
    int32_t oob = (int32_t)lp_tokenizer_n_vocab(t);
    char *s;
    assert_int_equal(lp_tokenizer_decode(t, &oob, 1, 0, &s, err), LP_EINVAL);
    lp_tokenizer_destroy(t);
}

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t L = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (c >= 0x80 && c < 0xC2) return 0;
        if (i + L > n) return 0;
        for (size_t k = 1; k < L; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) return 0;
        i += L;
    }
    return 1;
}

/* Byte-level tokens that split characters: detok holds the partial bytes back
 * and never emits half a character; a cut-off tail becomes U+FFFD. */
static void test_detok_partial_chars(void **state) {
    (void)state;
    struct lp_tokenizer *t = load_json(GOLD "tok_llama3/tokenizer.json");
    /* GPT-2 stand-ins: byte 0xF0 -> 'ð', 0x9F -> 'Ł', 0x98 -> 'ĺ', 0x80 -> 'Ģ' */
    const char *chars[] = {"ð", "Ł", "ĺ", "Ģ"};
    int32_t ids[4];
    for (int i = 0; i < 4; i++) {
        ids[i] = lp_tokenizer_find(t, chars[i]);
        assert_true(ids[i] >= 0);
    }
    struct lp_detok d;
    lp_detok_init(&d);
    char out[LP_DETOK_MAX + 8], all[64] = "";
    size_t len = 0;
    for (int i = 0; i < 4; i++) {
        size_t k = lp_detok_push(t, &d, ids[i], 0, out, sizeof out);
        assert_true(valid_utf8(out, k));
        if (i < 3) assert_int_equal(k, 0);
        memcpy(all + len, out, k);
        len += k;
    }
    len += lp_detok_flush(&d, all + len, sizeof all - len);
    assert_int_equal(len, 4);
    assert_memory_equal(all, "\xf0\x9f\x98\x80", 4);
    /* cut short: the held bytes become one U+FFFD at flush (HF's lossy UTF-8) */
    lp_detok_init(&d);
    assert_int_equal(lp_detok_push(t, &d, ids[0], 0, out, sizeof out), 0);
    assert_int_equal(lp_detok_push(t, &d, ids[1], 0, out, sizeof out), 0);
    size_t k = lp_detok_flush(&d, out, sizeof out);
    assert_int_equal(k, 3);
    assert_memory_equal(out, "\xef\xbf\xbd", 3);
    /* an interrupted sequence: U+FFFD, then the next character */
    int32_t a = lp_tokenizer_find(t, "a");
    lp_detok_init(&d);
    lp_detok_push(t, &d, ids[0], 0, out, sizeof out);
    k = lp_detok_push(t, &d, a, 0, out, sizeof out);
    assert_int_equal(k, 4);
    assert_memory_equal(out,
                        "\xef\xbf\xbd"
                        "a",
                        4);
    lp_tokenizer_destroy(t);
}

static void test_hf_json_errors(void **state) {
    (void)state;
    struct lp_tokenizer *t = NULL;
    char err[LP_ERR_LEN];
    const char *uni = "{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}";
    assert_int_equal(lp_tokenizer_from_hf_json(uni, strlen(uni), NULL, 0, &t, err),
                     LP_EUNSUPPORTED);
    assert_null(t);
    assert_non_null(strstr(err, "Unigram"));
    const char *bad = "{\"model\":";
    assert_int_equal(lp_tokenizer_from_hf_json(bad, strlen(bad), NULL, 0, &t, err), LP_EFORMAT);
    /* Unicode normalizers are utf8proc's; other normalizers are refused by name */
    const char *nfc = "{\"normalizer\":{\"type\":\"NFC\"},\"model\":{\"type\":\"BPE\","
                      "\"vocab\":{\"a\":0},\"merges\":[]}}";
    assert_int_equal(lp_tokenizer_from_hf_json(nfc, strlen(nfc), NULL, 0, &t, err), LP_OK);
    lp_tokenizer_destroy(t);
    t = NULL;
    const char *bert = "{\"normalizer\":{\"type\":\"BertNormalizer\"},\"model\":{\"type\":"
                       "\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
    assert_int_equal(lp_tokenizer_from_hf_json(bert, strlen(bert), NULL, 0, &t, err),
                     LP_EUNSUPPORTED);
    assert_null(t);
    assert_non_null(strstr(err, "BertNormalizer"));
    const char *merge = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},"
                        "\"merges\":[\"a b\"]}}";
    assert_int_equal(lp_tokenizer_from_hf_json(merge, strlen(merge), NULL, 0, &t, err), LP_EFORMAT);
    /* a minimal valid one, with the config naming BOS and asking for it */
    const char *ok = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,"
                     "\"<s>\":3},\"merges\":[[\"a\",\"b\"]]},\"added_tokens\":[{\"id\":3,"
                     "\"content\":\"<s>\",\"special\":true}]}";
    const char *cfg = "{\"add_bos_token\":true,\"bos_token\":{\"content\":\"<s>\"}}";
    assert_int_equal(lp_tokenizer_from_hf_json(ok, strlen(ok), cfg, strlen(cfg), &t, err), LP_OK);
    int32_t *ids;
    size_t n;
    assert_int_equal(lp_tokenizer_encode(t, "abab<s>", 7, 1, 1, &ids, &n, err), LP_OK);
    int32_t want[] = {3, 2, 2, 3};
    assert_int_equal(n, 4);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    char *s;
    /* no decoder: tokens joined with spaces, as HF does */
    assert_int_equal(lp_tokenizer_decode(t, want, 4, 1, &s, err), LP_OK);
    assert_string_equal(s, "ab ab");
    free(s);
    lp_tokenizer_destroy(t);
}

/* Encoding 1 MB of mixed text must take well under a second (it prints the
 * time; the bound here only catches a quadratic slip). */
static void test_encode_speed(void **state) {
    (void)state;
    struct lp_tokenizer *t = NULL;
    struct gguf_ctx *g = NULL;
    const char *name = "smollm2";
    if (lp_test_exists(lp_test_path(SMOLLM2))) {
        t = load_gguf(SMOLLM2, &g);
    } else {
        t = load_json(GOLD "tok_llama3/tokenizer.json");
        name = "llama3-style";
    }
    static const char para[] =
        "The quick brown fox jumps over the lazy dog, 1234567 times! Ünïcödé, 日本語, "
        "emoji 👨‍👩‍👧 and code: for (int i = 0; i < n; i++) { x += a[i]; }\n\t  ";
    size_t want = 1 << 20, len = 0;
    char *text = malloc(want + sizeof para);
    while (len < want) {
        memcpy(text + len, para, sizeof para - 1);
        len += sizeof para - 1;
    }
    int32_t *ids;
    size_t n;
    char err[LP_ERR_LEN];
    double t0 = lp_time_now();
    assert_int_equal(lp_tokenizer_encode(t, text, len, 0, 1, &ids, &n, err), LP_OK);
    double dt = lp_time_now() - t0;
    print_message("encode %s: %zu bytes -> %zu ids in %.3f s (%.1f MB/s)\n", name, len, n, dt,
                  (double)len / dt / 1e6);
    char *back;
    assert_int_equal(lp_tokenizer_decode(t, ids, n, 0, &back, err), LP_OK);
    assert_int_equal(strlen(back), len);
    assert_memory_equal(back, text, len);
    /* one long word: the merge heap, not a quadratic rescan */
    memset(text, 'a', len);
    free(ids);
    t0 = lp_time_now();
    assert_int_equal(lp_tokenizer_encode(t, text, len, 0, 1, &ids, &n, err), LP_OK);
    dt = lp_time_now() - t0;
    print_message("encode %s: 1 MB of 'a' -> %zu ids in %.3f s\n", name, n, dt);
    assert_true(dt < 20.0);
    free(ids);
    free(back);
    free(text);
    lp_tokenizer_destroy(t);
    gguf_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smollm2_gguf),
        cmocka_unit_test(test_spm_json),
        cmocka_unit_test(test_spm_gguf),
        cmocka_unit_test(test_spm_meta_json),
        cmocka_unit_test(test_llama3_json),
        cmocka_unit_test(test_llama3_gguf),
        cmocka_unit_test(test_small_cases),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_detok_partial_chars),
        cmocka_unit_test(test_hf_json_errors),
        cmocka_unit_test(test_encode_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_chat_template.c: template recognition, and rendering compared with the
 * strings transformers' apply_chat_template produced for the same messages
 * (tests/reference/goldens/tok_chat_templates.json, from SmolLM2's real
 * template and the Llama 3 / Llama 2 templates). */
#include "lp_test.h"

#include <cjson/cJSON.h>

#include "lp_common.h"
#include "tokenizer/chat_template.h"

#define GOLDEN "tests/reference/goldens/tok_chat_templates.json"

static cJSON *load_golden(void) {
    FILE *f = fopen(lp_test_path(GOLDEN), "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    cJSON *j = cJSON_Parse(b);
    free(b);
    assert_non_null(j);
    return j;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_render_goldens(void **state) {
    (void)state;
    cJSON *g = load_golden();
    const cJSON *templates = cJSON_GetObjectItemCaseSensitive(g, "templates");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(g, "cases"), *c;
    int n = 0, bad = 0;
    char err[LP_ERR_LEN];
    cJSON_ArrayForEach(c, cases) {
        const char *name = jstr(c, "template");
        const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(templates, name);
        struct lp_chat_template t;
        int rc = lp_chat_template_detect(jstr(tpl, "template"), jstr(tpl, "bos"), jstr(tpl, "eos"),
                                         &t, err);
        if (rc) print_error("%s: %s\n", name, err);
        assert_int_equal(rc, LP_OK);
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(c, "messages"), *m;
        struct lp_chat_msg mv[16];
        int nm = 0;
        cJSON_ArrayForEach(m, msgs) {
            assert_true(nm < 16);
            mv[nm].role = jstr(m, "role");
            mv[nm].content = jstr(m, "content");
            nm++;
        }
        int gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
        char *out = NULL;
        rc = lp_chat_template_render(&t, mv, nm, gen, &out, err);
        const char *want = jstr(c, "rendered");
        n++;
        if (want) {
            if (rc != LP_OK || strcmp(out, want)) {
                print_error("%s (%d messages, gen %d): rc %d\n  got  \"%s\"\n  want \"%s\"\n", name,
                            nm, gen, rc, rc ? err : out, want);
                bad++;
            }
        } else if (rc == LP_OK) {
            print_error("%s (%d messages): transformers refused (%s), we rendered \"%s\"\n", name,
                        nm, jstr(c, "error"), out);
            bad++;
        }
        free(out);
        lp_chat_template_clear(&t);
    }
    cJSON_Delete(g);
    print_message("%d renders compared with transformers, %d differ\n", n, bad);
    assert_true(n >= 60);
    assert_int_equal(bad, 0);
}

static void test_detect(void **state) {
    (void)state;
    cJSON *g = load_golden();
    const cJSON *templates = cJSON_GetObjectItemCaseSensitive(g, "templates");
    struct lp_chat_template t;
    char err[LP_ERR_LEN];
    const char *smol =
        jstr(cJSON_GetObjectItemCaseSensitive(templates, "chatml_smollm2"), "template");
    assert_int_equal(lp_chat_template_detect(smol, "<|im_start|>", "<|im_end|>", &t, err), LP_OK);
    assert_int_equal(t.kind, LP_CHAT_CHATML);
    assert_non_null(t.default_system);
    assert_string_equal(t.default_system,
                        "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
    lp_chat_template_clear(&t);

    const char *plain = jstr(cJSON_GetObjectItemCaseSensitive(templates, "chatml"), "template");
    assert_int_equal(lp_chat_template_detect(plain, NULL, NULL, &t, err), LP_OK);
    assert_int_equal(t.kind, LP_CHAT_CHATML);
    assert_null(t.default_system);
    lp_chat_template_clear(&t);

    /* a default system prompt written with Jinja escapes */
    const char *esc = "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe "
                      "\\'kind\\'.<|im_end|>\\n' }}{% endif %}{% for m in messages %}"
                      "{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}"
                      "{% endfor %}";
    assert_int_equal(lp_chat_template_detect(esc, NULL, NULL, &t, err), LP_OK);
    assert_string_equal(t.default_system, "Be 'kind'.");
    lp_chat_template_clear(&t);
    const char *esc2 = "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe "
                       "kind.\\tNow.<|im_end|>\\n' }}{% endif %}<|im_start|>";
    assert_int_equal(lp_chat_template_detect(esc2, NULL, NULL, &t, err), LP_OK);
    assert_string_equal(t.default_system, "Be kind.\tNow.");
    lp_chat_template_clear(&t);

    const char *l3 = jstr(cJSON_GetObjectItemCaseSensitive(templates, "llama3"), "template");
    assert_int_equal(lp_chat_template_detect(l3, "<|begin_of_text|>", NULL, &t, err), LP_OK);
    assert_int_equal(t.kind, LP_CHAT_LLAMA3);
    assert_string_equal(t.bos_text, "<|begin_of_text|>");
    lp_chat_template_clear(&t);
    const char *l2 = jstr(cJSON_GetObjectItemCaseSensitive(templates, "llama2"), "template");
    assert_int_equal(lp_chat_template_detect(l2, "<s>", "</s>", &t, err), LP_OK);
    assert_int_equal(t.kind, LP_CHAT_LLAMA2);
    lp_chat_template_clear(&t);

    /* refused, with a reason */
    assert_int_equal(lp_chat_template_detect(NULL, NULL, NULL, &t, err), LP_EUNSUPPORTED);
    assert_int_equal(t.kind, LP_CHAT_UNKNOWN);
    assert_int_equal(lp_chat_template_detect("", NULL, NULL, &t, err), LP_EUNSUPPORTED);
    assert_int_equal(lp_chat_template_detect("{{ messages }}", NULL, NULL, &t, err),
                     LP_EUNSUPPORTED);
    assert_non_null(strstr(err, "unrecognised"));
    const char *mistral = "{{ bos_token }}{% for message in messages %}{% if message['role'] == "
                          "'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
                          "{% endfor %}";
    assert_int_equal(lp_chat_template_detect(mistral, NULL, NULL, &t, err), LP_EUNSUPPORTED);
    assert_non_null(strstr(err, "Mistral"));
    const char *l31 = "<|start_header_id|><|end_header_id|><|eot_id|>Cutting Knowledge Date";
    assert_int_equal(lp_chat_template_detect(l31, NULL, NULL, &t, err), LP_EUNSUPPORTED);
    cJSON_Delete(g);
}

static void test_from_name_and_errors(void **state) {
    (void)state;
    struct lp_chat_template t;
    char err[LP_ERR_LEN];
    char *out = NULL;
    assert_int_equal(lp_chat_template_from_name("mistral", "<s>", "</s>", &t, err), LP_OK);
    assert_int_equal(t.kind, LP_CHAT_LLAMA2);
    struct lp_chat_msg two_users[] = {{"user", "a"}, {"user", "b"}};
    assert_int_equal(lp_chat_template_render(&t, two_users, 2, 1, &out, err), LP_EINVAL);
    assert_null(out);
    struct lp_chat_msg tool[] = {{"user", "a"}, {"tool", "b"}};
    assert_int_equal(lp_chat_template_render(&t, tool, 2, 1, &out, err), LP_EINVAL);
    lp_chat_template_clear(&t);

    assert_int_equal(lp_chat_template_from_name("chatml", NULL, NULL, &t, err), LP_OK);
    struct lp_chat_msg one[] = {{"tool", "x"}};
    assert_int_equal(lp_chat_template_render(&t, one, 1, 0, &out, err), LP_OK);
    assert_string_equal(out, "<|im_start|>tool\nx<|im_end|>\n");
    free(out);
    struct lp_chat_msg nul[] = {{"user", NULL}};
    assert_int_equal(lp_chat_template_render(&t, nul, 1, 0, &out, err), LP_EINVAL);
    lp_chat_template_clear(&t);
    assert_int_equal(lp_chat_template_from_name("vicuna", NULL, NULL, &t, err), LP_EUNSUPPORTED);
    lp_chat_template_clear(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_goldens),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_from_name_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

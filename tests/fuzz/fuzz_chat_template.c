/* fuzz_chat_template.c: recognising a model's (or a user's) Jinja chat
 * template and rendering messages with it. The input is the template text,
 * then a NUL, then message contents separated by NULs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_common.h"
#include "tokenizer/chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    const char *tmpl = buf;
    size_t tl = strlen(tmpl);
    struct lp_chat_msg msgs[6];
    static const char *const roles[] = {"system", "user", "assistant", "user", "assistant", "user"};
    int n = 0;
    size_t off = tl + 1;
    while (off <= size && n < 6) {
        msgs[n].role = roles[n];
        msgs[n].content = buf + off;
        off += strlen(buf + off) + 1;
        n++;
    }
    if (n == 0) {
        msgs[0] = (struct lp_chat_msg){"user", "hello"};
        n = 1;
    }
    char err[LP_ERR_LEN];
    struct lp_chat_template t;
    if (lp_chat_template_detect(tmpl, "<s>", "</s>", &t, err) == LP_OK) {
        for (int first = 0; first < 2; first++) { /* with and without a system turn */
            char *out = NULL;
            if (lp_chat_template_render(&t, msgs + first, n - first, 1, &out, err) == LP_OK) {
                ENSURE(out != NULL);
                free(out);
            }
        }
        lp_chat_template_clear(&t);
    }
    free(buf);
    return 0;
}

/* fuzz_tokenizer_json.c: the input is a tokenizer.json, a NUL byte, then text.
 * The JSON is either refused with a reason or yields a tokenizer; the text is
 * encoded (with and without special-token parsing), decoded whole and
 * incrementally, and the two decodes must agree; valid UTF-8 text must come
 * back from a byte-level tokenizer unchanged when nothing was lost. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_common.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t tlen = nul ? size - jlen - 1 : 0;
    struct lp_tokenizer *t = NULL;
    char err[LP_ERR_LEN] = "";
    if (lp_tokenizer_from_hf_json((const char *)data, jlen, NULL, 0, &t, err) != LP_OK) {
        ENSURE(t == NULL && err[0] != '\0');
        return 0;
    }
    for (int parse_special = 0; parse_special < 2; parse_special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (lp_tokenizer_encode(t, text, tlen, 1, parse_special, &ids, &n, err) != LP_OK) {
            ENSURE(ids == NULL);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            ENSURE(ids[i] >= 0 && ids[i] < lp_tokenizer_n_vocab(t));
        for (int skip = 0; skip < 2; skip++) {
            char *whole = NULL;
            ENSURE(lp_tokenizer_decode(t, ids, n, skip, &whole, err) == LP_OK);
            size_t wl = strlen(whole), len = 0;
            char *inc = malloc(n * (3 * (LP_DETOK_MAX + 8)) + 3 * (LP_DETOK_MAX + 8));
            ENSURE(inc != NULL);
            struct lp_detok d;
            lp_detok_init(&d);
            for (size_t i = 0; i < n; i++)
                len += lp_detok_push(t, &d, ids[i], skip, inc + len, 3 * (LP_DETOK_MAX + 8));
            len += lp_detok_flush(&d, inc + len, 3 * (LP_DETOK_MAX + 8));
            /* decode returns a C string: text holding NUL compares up to it */
            ENSURE(strnlen(inc, len) == wl && memcmp(inc, whole, wl) == 0);
            free(inc);
            free(whole);
        }
        free(ids);
    }
    (void)lp_tokenizer_bos(t);
    (void)lp_tokenizer_is_eog(t, lp_tokenizer_eos(t));
    (void)lp_tokenizer_find(t, "a");
    lp_tokenizer_destroy(t);
    return 0;
}

/* fuzz_model_config.c: Hugging Face config.json as the model loader reads it
 * (hyper-parameter ranges, rope scaling). Includes model.c to reach its
 * static parser, as curl's unit tests do. */
#include "../../engine/model/model.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *cfg = cJSON_ParseWithLength((const char *)data, size);
    if (!cfg) return 0;
    struct lp_model m;
    memset(&m, 0, sizeof m);
    m.path = "fuzz";
    char err[LP_ERR_LEN];
    if (cJSON_IsObject(cfg) && parse_hf_config(&m, cfg, err) == LP_OK) {
        /* what the parser accepted must be usable: sane sizes, finite frequencies */
        ENSURE(m.cfg.n_head % m.cfg.n_head_kv == 0 && m.cfg.rot_dim <= m.cfg.head_dim);
        for (int i = 0; i < m.cfg.rot_dim / 2; i++)
            ENSURE(!isnan(m.inv_freq[i]));
    }
    free(m.inv_freq);
    cJSON_Delete(cfg);
    return 0;
}

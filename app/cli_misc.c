/* cli_misc.c: `loraplex devices` and the command line of `loraplex serve`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "backend.h"
#include "lp_common.h"
#include "server.h"

int cli_devices(int argc, char **argv) {
    (void)argc;
    (void)argv;
    char err[LP_ERR_LEN] = "";
    int n = lp_cuda_device_count(err);
    printf("cpu: available\n");
    if (n > 0)
        printf("cuda: %d device(s)\n", n);
    else
        printf("cuda: no GPU (%s)\n", err);
    return 0;
}

int cli_serve(int argc, char **argv) {
    struct server_config cfg = {.host = "127.0.0.1", .port = 8080, .model_path = NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--host") && v) {
            cfg.host = v;
            i++;
        } else if (!strcmp(a, "--port") && v) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*end || p < 0 || p > 65535) {
                fprintf(stderr, "loraplex serve: bad --port '%s'\n", v);
                return 2;
            }
            cfg.port = (int)p;
            i++;
        } else if (!strcmp(a, "--model") && v) {
            const char *eq = strchr(v, '=');
            cfg.model_path = eq ? eq + 1 : v; /* NAME=PATH: names come with the control plane */
            i++;
        } else if (!strcmp(a, "--threads") && v) {
            cfg.threads = atoi(v);
            i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: loraplex serve [--host H] [--port P] [--model [NAME=]PATH] [--threads "
                   "N]\n");
            return 0;
        } else {
            fprintf(stderr, "loraplex serve: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }
    if (!cfg.model_path) cfg.model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    return server_run(&cfg);
}

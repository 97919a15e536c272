/* cli_stub.c: subcommands whose engine parts are still being built. */
#include <stdio.h>

#include "cli.h"
#include "backend.h"
#include "lp_common.h"

int cli_generate(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "loraplex generate: not built yet\n");
    return 1;
}

int cli_tokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "loraplex tokenize: not built yet\n");
    return 1;
}

int cli_devices(int argc, char **argv) {
    (void)argc; (void)argv;
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
    (void)argc; (void)argv;
    fprintf(stderr, "loraplex serve: the HTTP server is not built yet\n");
    return 1;
}

/* cli_misc.c: `loraplex devices` and, until the HTTP server lands, `serve`. */
#include <stdio.h>

#include "cli.h"
#include "backend.h"
#include "lp_common.h"

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
    (void)argc;
    (void)argv;
    fprintf(stderr, "loraplex serve: the HTTP server is not built yet\n");
    return 1;
}

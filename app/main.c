/* main.c: the loraplex command line. One binary: `serve` runs the appliance,
 * `generate` and `tokenize` drive the engine directly for scripts and checks. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: loraplex <command> [options]\n"
               "\n"
               "commands:\n"
               "  serve      run the appliance (HTTP API, console)\n"
               "  generate   generate text from a model (see: loraplex generate --help)\n"
               "  tokenize   print the token ids of a text\n"
               "  devices    list compute devices (CPU, CUDA)\n"
               "\n"
               "options:\n"
               "  -h, --help     this text\n"
               "  -V, --version  print the version\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("loraplex %s\n", LP_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "generate")) return cli_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cli_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "devices")) return cli_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cli_serve(argc - 1, argv + 1);
    fprintf(stderr, "loraplex: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}

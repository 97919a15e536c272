/* replay_main.c: runs a fuzz target's LLVMFuzzerTestOneInput over every file
 * of a corpus directory (or the files named), so that ordinary (gcc, ASan)
 * builds exercise the fuzz targets as tests. Prints "N passed, 0 failed". */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int count = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) {
            fprintf(stderr, "no such corpus: %s\n", argv[a]);
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[a]);
            struct dirent *e;
            while (d && (e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.') continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
                if (run_file(path) != 0) return 1;
                count++;
            }
            if (d) closedir(d);
        } else {
            if (run_file(argv[a]) != 0) return 1;
            count++;
        }
    }
    if (count == 0) {
        fprintf(stderr, "empty corpus: a replay that runs nothing proves nothing\n");
        return 1;
    }
    printf("%d passed, 0 failed\n", count);
    return 0;
}

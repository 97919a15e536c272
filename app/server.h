/* server.h: the HTTP server on the libuv loop. */
#ifndef LP_SERVER_H
#define LP_SERVER_H

struct server_config {
    const char *host;       /* address to bind, e.g. "127.0.0.1" */
    int port;               /* 0 picks a free port (printed) */
    const char *model_path; /* default base model */
    int threads;            /* CPU threads for the engine, 0 = all cores */
};

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int server_run(const struct server_config *cfg);

#endif

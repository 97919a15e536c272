/* server.c: the HTTP/1.1 front door on the libuv loop, parsed by llhttp in
 * strict mode. Today it serves /healthz and /readyz while the default model
 * loads off the loop; the inference and control-plane routes come with the
 * server and control-plane work. Each connection owns its parser and is freed
 * only in its close callback (libuv's rule). */
#include "server.h"

#include <llhttp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lp_common.h"
#include "model/model.h"

#define MAX_URL 8192
#define MAX_HEADER_BYTES (64 * 1024)

struct server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    uv_work_t load_work;
    const char *model_path;
    struct lp_model *model;
    char load_err[LP_ERR_LEN];
    int ready; /* 1 once the model loaded */
    int stopping;
    int n_conns;
};

struct conn {
    uv_tcp_t tcp; /* first: the handle's data points back here too */
    struct server *srv;
    llhttp_t parser;
    llhttp_settings_t settings;
    char url[MAX_URL];
    size_t url_len;
    size_t header_bytes;
    int url_too_long;
    int closing;
};

struct write_req {
    uv_write_t req;
    char *buf;
    int close_after;
};

static void conn_close_cb(uv_handle_t *h) {
    struct conn *c = h->data;
    c->srv->n_conns--;
    free(c);
}

static void conn_close(struct conn *c) {
    if (c->closing) return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

static void write_cb(uv_write_t *req, int status) {
    struct write_req *w = (struct write_req *)req;
    struct conn *c = req->handle->data;
    if (status < 0 || w->close_after) conn_close(c);
    free(w->buf);
    free(w);
}

/* Queues a complete response; the body is copied. */
static void respond(struct conn *c, int code, const char *reason, const char *ctype,
                    const char *body, int close_after) {
    if (c->closing) return;
    size_t blen = strlen(body);
    size_t cap = blen + 256;
    struct write_req *w = xcalloc(1, sizeof *w);
    w->buf = xmalloc(cap);
    int n = snprintf(w->buf, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n%s", code,
                     reason, ctype, blen, close_after ? "Connection: close\r\n" : "", body);
    w->close_after = close_after;
    uv_buf_t b = uv_buf_init(w->buf, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
        free(w->buf);
        free(w);
        conn_close(c);
    }
}

static void respond_error(struct conn *c, int code, const char *reason, const char *type,
                          const char *msg, int close_after) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":null}}", msg,
             type);
    respond(c, code, reason, "application/json", body, close_after);
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    struct conn *c = p->data;
    if (c->url_len + len >= MAX_URL) {
        c->url_too_long = 1;
        return HPE_USER;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = 0;
    return 0;
}

static int on_header_bytes(llhttp_t *p, const char *at, size_t len) {
    struct conn *c = p->data;
    (void)at;
    c->header_bytes += len;
    return c->header_bytes > MAX_HEADER_BYTES ? HPE_USER : 0;
}

static int on_message_begin(llhttp_t *p) {
    struct conn *c = p->data;
    c->url_len = 0;
    c->url[0] = 0;
    c->header_bytes = 0;
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    struct conn *c = p->data;
    struct server *s = c->srv;
    int keep = llhttp_should_keep_alive(p) && !s->stopping;
    int method = llhttp_get_method(p);
    char *q = strchr(c->url, '?');
    if (q) *q = 0;
    if (!strcmp(c->url, "/healthz")) {
        if (method != HTTP_GET && method != HTTP_HEAD)
            respond_error(c, 405, "Method Not Allowed", "invalid_request_error", "use GET", !keep);
        else
            respond(c, 200, "OK", "application/json", "{\"status\":\"ok\"}", !keep);
    } else if (!strcmp(c->url, "/readyz")) {
        if (s->ready)
            respond(c, 200, "OK", "application/json", "{\"status\":\"ready\"}", !keep);
        else if (s->load_err[0])
            respond_error(c, 503, "Service Unavailable", "server_error",
                          "the default model failed to load", !keep);
        else
            respond(c, 503, "Service Unavailable", "application/json", "{\"status\":\"loading\"}",
                    !keep);
    } else {
        respond_error(c, 404, "Not Found", "invalid_request_error", "no such route", !keep);
    }
    return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    struct conn *c = stream->data;
    if (nread < 0) {
        conn_close(c);
    } else if (nread > 0 && !c->closing) {
        llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
        if (e != HPE_OK) {
            uv_read_stop(stream);
            if (c->url_too_long)
                respond_error(c, 414, "URI Too Long", "invalid_request_error", "URL too long", 1);
            else if (c->header_bytes > MAX_HEADER_BYTES)
                respond_error(c, 431, "Request Header Fields Too Large", "invalid_request_error",
                              "headers too large", 1);
            else
                respond_error(c, 400, "Bad Request", "invalid_request_error",
                              "malformed HTTP request", 1);
        }
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *listener, int status) {
    struct server *s = listener->data;
    if (status < 0) return;
    struct conn *c = xcalloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    s->n_conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    llhttp_settings_init(&c->settings);
    c->settings.on_message_begin = on_message_begin;
    c->settings.on_url = on_url;
    c->settings.on_header_field = on_header_bytes;
    c->settings.on_header_value = on_header_bytes;
    c->settings.on_message_complete = on_message_complete;
    llhttp_init(&c->parser, HTTP_REQUEST, &c->settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void load_work(uv_work_t *w) {
    struct server *s = w->data;
    lp_model_load(s->model_path, &s->model, s->load_err);
}

static void load_done(uv_work_t *w, int status) {
    struct server *s = w->data;
    if (status == 0 && s->model) {
        s->ready = 1;
        LP_INFO("model loaded: %s (%d layers, vocab %d)", s->model_path, s->model->cfg.n_layer,
                s->model->cfg.n_vocab);
    } else {
        LP_ERROR("model %s failed to load: %s", s->model_path, s->load_err);
    }
}

static void walk_close(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) {
        if (h->type == UV_TCP && h->data && h->data != arg) {
            conn_close(h->data);
        } else {
            uv_close(h, NULL);
        }
    }
}

static void on_signal(uv_signal_t *sig, int signum) {
    struct server *s = sig->data;
    LP_INFO("signal %d: stopping", signum);
    s->stopping = 1;
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_walk(s->loop, walk_close, s);
}

int server_run(const struct server_config *cfg) {
    struct server s;
    memset(&s, 0, sizeof s);
    s.loop = uv_default_loop();
    s.model_path = cfg->model_path;
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr);
    if (rc != 0) rc = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr);
    if (rc != 0) {
        fprintf(stderr, "loraplex serve: bad host '%s'\n", cfg->host);
        return 2;
    }
    uv_tcp_init(s.loop, &s.listener);
    s.listener.data = &s;
    if ((rc = uv_tcp_bind(&s.listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s.listener, 511, on_connection)) != 0) {
        fprintf(stderr, "loraplex serve: cannot listen on %s:%d: %s\n", cfg->host, cfg->port,
                uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&s.listener, (struct sockaddr *)&bound, &blen);
    int port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    printf("loraplex %s listening on http://%s:%d\n", LP_VERSION, cfg->host, port);
    printf("  health: http://%s:%d/healthz   ready: http://%s:%d/readyz\n", cfg->host, port,
           cfg->host, port);
    printf("  model:  %s (loading)\n", cfg->model_path);
    fflush(stdout);
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    s.sigterm.data = s.sigint.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    s.load_work.data = &s;
    uv_queue_work(s.loop, &s.load_work, load_work, load_done);
    uv_run(s.loop, UV_RUN_DEFAULT);
    uv_loop_close(s.loop);
    lp_model_destroy(s.model);
    return 0;
}

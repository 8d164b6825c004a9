/* http.c - libmicrohttpd in external epoll mode on a libuv loop (see
 * http.h for the model). MHD rules this file keeps (PITFALLS.md): suspend
 * only from the access or content-reader callbacks, resume only what is
 * suspended, never call MHD_run from inside an MHD callback, and resume
 * everything before stopping the daemon. */
#include "http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum {
  EX_READING = 0, /* headers and body arriving */
  EX_ANSWERED,    /* a response is queued */
  EX_DEFERRED,    /* suspended until http_reply* */
  EX_READY,       /* deferred answer ready, queued on the next callback */
  EX_STREAMING,   /* chunked body from ex->out */
};

struct http_server {
  struct MHD_Daemon *d;
  uv_poll_t poll;
  uv_timer_t timer;
  int handles_open;
  http_limits lim;
  char *cors;
  http_handler handler;
  http_done_hook done;
  void *app;
  http_exchange *head;
  int n_active;
  int quiesced;
  int port;
  int in_run, kick_pending;
};

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- driving MHD from libuv ---- */

static void on_timer(uv_timer_t *t);

static void run_mhd(http_server *hs) {
  if (hs->in_run) {
    hs->kick_pending = 1;
    return;
  }
  hs->in_run = 1;
  do {
    hs->kick_pending = 0;
    MHD_run(hs->d);
  } while (hs->kick_pending);
  hs->in_run = 0;
  MHD_UNSIGNED_LONG_LONG to = 0;
  if (MHD_get_timeout(hs->d, &to) == MHD_YES)
    uv_timer_start(&hs->timer, on_timer, to, 0);
  else
    uv_timer_stop(&hs->timer);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  run_mhd(p->data);
}

static void on_timer(uv_timer_t *t) {
  run_mhd(t->data);
}

void http_server_kick(http_server *hs) {
  if (hs && hs->d) run_mhd(hs);
}

/* ---- responses ---- */

static int origin_allowed(const http_server *hs, const char *origin) {
  if (!hs->cors || !origin) return 0;
  if (!strcmp(hs->cors, "*")) return 1;
  size_t n = strlen(origin);
  for (const char *p = hs->cors; *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    while (len && *p == ' ')
      p++, len--;
    while (len && p[len - 1] == ' ')
      len--;
    if (len == n && !strncmp(p, origin, n)) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

static void add_common_headers(http_exchange *ex, struct MHD_Response *r) {
  const char *origin = http_header(ex, "Origin");
  if (origin_allowed(ex->hs, origin)) {
    MHD_add_response_header(r, "Access-Control-Allow-Origin",
                            strcmp(ex->hs->cors, "*") ? origin : "*");
    MHD_add_response_header(r, "Vary", "Origin");
  }
  if (ex->request_id[0])
    MHD_add_response_header(r, "X-Request-Id", ex->request_id);
  if (ex->hs->quiesced) MHD_add_response_header(r, "Connection", "close");
}

static void queue(http_exchange *ex, unsigned status, struct MHD_Response *r) {
  MHD_queue_response(ex->conn, status, r);
  MHD_destroy_response(r); /* MHD holds its own reference until sent */
  ex->state = EX_ANSWERED;
}

void http_reply(http_exchange *ex, int status, const char *content_type,
                const char *body, size_t len, const char *extra_header,
                const char *extra_value) {
  if (ex->state != EX_READING && ex->state != EX_DEFERRED) return;
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return; /* out of memory: MHD closes the connection */
  MHD_add_response_header(r, "Content-Type", content_type);
  if (extra_header) MHD_add_response_header(r, extra_header, extra_value);
  add_common_headers(ex, r);
  ex->status = status;
  if (ex->in_handler) {
    queue(ex, (unsigned)status, r);
    return;
  }
  /* deferred: the next access callback after the resume queues it */
  ex->pending = r;
  ex->pending_status = (unsigned)status;
  ex->state = EX_READY;
  if (ex->suspended) {
    ex->suspended = 0;
    MHD_resume_connection(ex->conn);
  }
  http_server_kick(ex->hs);
}

void http_reply_json(http_exchange *ex, int status, json_t *json) {
  char *s = json ? json_dumps(json, JSON_COMPACT) : NULL;
  json_decref(json);
  if (!s) {
    static const char oom[] =
        "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
        "\"param\":null,\"code\":null}}";
    http_reply(ex, 500, "application/json", oom, sizeof oom - 1, NULL, NULL);
    return;
  }
  http_reply(ex, status, "application/json", s, strlen(s), NULL, NULL);
  free(s);
}

json_t *http_error_json(const char *type, const char *message,
                        const char *param, const char *code) {
  return json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message,
                   "type", type, "param", param, "code", code);
}

void http_reply_error(http_exchange *ex, int status, const char *type,
                      const char *message, const char *param,
                      const char *code) {
  json_t *e = http_error_json(type, message, param, code);
  char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
  json_decref(e);
  const char *body = s ? s : "{\"error\":{\"message\":\"out of memory\"}}";
  int retry = status == 429 || status == 503;
  http_reply(ex, status, "application/json", body, strlen(body),
             retry ? "Retry-After" : NULL, retry ? "1" : NULL);
  free(s);
}

void http_defer(http_exchange *ex) {
  if (ex->state != EX_READING || !ex->in_handler) return;
  ex->state = EX_DEFERRED;
  ex->suspended = 1;
  MHD_suspend_connection(ex->conn);
}

/* ---- streaming ---- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  http_exchange *ex = cls;
  size_t avail = ex->out.n - ex->out_off;
  if (avail > 0) {
    size_t n = avail < max ? avail : max;
    memcpy(buf, ex->out.p + ex->out_off, n);
    ex->out_off += n;
    if (ex->out_off == ex->out.n) ex->out.n = ex->out_off = 0;
    return (ssize_t)n;
  }
  if (ex->stream_ended) return MHD_CONTENT_READER_END_OF_STREAM;
  /* nothing to send: sleep until http_stream_write wakes us, instead of
   * being asked again on every MHD_run */
  ex->suspended = 1;
  MHD_suspend_connection(ex->conn);
  return 0;
}

void http_stream_start(http_exchange *ex) {
  if (ex->state != EX_READING || !ex->in_handler) return;
  struct MHD_Response *r = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, ex, NULL);
  if (!r) return;
  MHD_add_response_header(r, "Content-Type", "text/event-stream");
  MHD_add_response_header(r, "Cache-Control", "no-cache");
  MHD_add_response_header(r, "X-Accel-Buffering", "no");
  add_common_headers(ex, r);
  ex->status = 200;
  queue(ex, 200, r);
  ex->state = EX_STREAMING;
  ex->t_last_write = mono_now();
}

static void wake(http_exchange *ex) {
  if (!ex->suspended) return;
  ex->suspended = 0;
  MHD_resume_connection(ex->conn);
}

int http_stream_write(http_exchange *ex, const char *data, size_t len) {
  if (ex->state != EX_STREAMING || ex->stream_ended) return R1D_ESTATE;
  int rc = r1d_buf_append(&ex->out, data, len);
  if (rc) return rc;
  ex->t_last_write = mono_now();
  wake(ex);
  return 0;
}

void http_stream_end(http_exchange *ex) {
  if (ex->state != EX_STREAMING) return;
  ex->stream_ended = 1;
  wake(ex);
}

/* ---- MHD callbacks ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  (void)version;
  http_server *hs = cls;
  http_exchange *ex = *con_cls;
  if (!ex) {
    ex = calloc(1, sizeof *ex);
    if (!ex) return MHD_NO;
    ex->path = strdup(url);
    if (!ex->path) {
      free(ex);
      return MHD_NO;
    }
    ex->hs = hs;
    ex->conn = c;
    ex->ttft = -1;
    ex->route = "other";
    ex->t_start = mono_now();
    snprintf(ex->method, sizeof ex->method, "%s", method);
    ex->next = hs->head;
    if (hs->head) hs->head->prev = ex;
    hs->head = ex;
    hs->n_active++;
    *con_cls = ex;
    const char *cl = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > hs->lim.max_body) {
      /* refuse before reading a byte of it */
      char msg[160];
      snprintf(msg, sizeof msg,
               "request body of %s bytes is larger than the limit of %zu "
               "bytes",
               cl, hs->lim.max_body);
      ex->in_handler = 1;
      http_reply_error(ex, 413, "invalid_request_error", msg, NULL,
                       "request_too_large");
      ex->in_handler = 0;
    }
    return MHD_YES;
  }
  if (*upload_size) {
    if (ex->state == EX_READING && !ex->body_too_large) {
      if (ex->body.n + *upload_size > hs->lim.max_body) {
        ex->body_too_large = 1;
        r1d_buf_free(&ex->body);
      } else if (r1d_buf_append(&ex->body, upload, *upload_size)) {
        return MHD_NO;
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  ex->in_handler = 1;
  if (ex->state == EX_READING) {
    if (r1d_buf_reserve(&ex->body, 1) == 0) ex->body.p[ex->body.n] = '\0';
    if (ex->body_too_large) {
      char msg[128];
      snprintf(msg, sizeof msg,
               "request body is larger than the limit of %zu bytes",
               hs->lim.max_body);
      http_reply_error(ex, 413, "invalid_request_error", msg, NULL,
                       "request_too_large");
    } else if (!strcmp(method, "OPTIONS") && hs->cors) {
      if (origin_allowed(hs, http_header(ex, "Origin"))) {
        ex->route = "preflight";
        http_reply(ex, 204, "text/plain", "", 0, NULL, NULL);
      } else {
        http_reply_error(ex, 403, "permission_error",
                         "origin not allowed by CORS", NULL, NULL);
      }
    } else {
      hs->handler(hs->app, ex);
      if (ex->state == EX_READING) /* a handler that did not answer */
        http_reply_error(ex, 500, "server_error", "no answer was produced",
                         NULL, NULL);
    }
  } else if (ex->state == EX_READY) {
    struct MHD_Response *r = ex->pending;
    ex->pending = NULL;
    queue(ex, ex->pending_status, r);
  }
  ex->in_handler = 0;
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)c;
  http_server *hs = cls;
  http_exchange *ex = *con_cls;
  if (!ex) return;
  *con_cls = NULL;
  int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
  if (ex->on_close) ex->on_close(ex->user, ex, ok);
  if (!ok && ex->status < 400) ex->status = ex->status ? ex->status : 499;
  if (hs->done) hs->done(hs->app, ex);
  if (ex->pending) MHD_destroy_response(ex->pending);
  if (ex->prev)
    ex->prev->next = ex->next;
  else
    hs->head = ex->next;
  if (ex->next) ex->next->prev = ex->prev;
  hs->n_active--;
  r1d_buf_free(&ex->body);
  r1d_buf_free(&ex->out);
  free(ex->path);
  free(ex);
}

/* ---- lifecycle ---- */

int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const http_limits *lim, const char *cors,
                      http_handler handler, http_done_hook done, void *app,
                      http_server **out, r1d_error *err) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  int gai = getaddrinfo(host, NULL, &hints, &ai);
  if (gai || !ai)
    return r1d_fail(err, R1D_EINVAL, "serve: cannot resolve host '%s': %s",
                    host, gai_strerror(gai));
  struct sockaddr_storage sa;
  memset(&sa, 0, sizeof sa);
  memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
  int v6 = ai->ai_family == AF_INET6;
  freeaddrinfo(ai);
  if (v6)
    ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);

  http_server *hs = calloc(1, sizeof *hs);
  if (!hs) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  hs->lim = *lim;
  hs->handler = handler;
  hs->done = done;
  hs->app = app;
  if (cors && !(hs->cors = strdup(cors))) {
    free(hs);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
  if (v6) flags |= MHD_USE_IPv6;
  hs->d = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, on_request, hs, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, hs,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)lim->idle_timeout,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)lim->max_connections,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
  if (!hs->d) {
    free(hs->cors);
    free(hs);
    return r1d_fail(err, R1D_EIO,
                    "serve: cannot listen on %s port %d (in use, or not an "
                    "address of this machine?)",
                    host, port);
  }
  const union MHD_DaemonInfo *pi =
      MHD_get_daemon_info(hs->d, MHD_DAEMON_INFO_BIND_PORT);
  hs->port = pi ? pi->port : port;
  const union MHD_DaemonInfo *ei =
      MHD_get_daemon_info(hs->d, MHD_DAEMON_INFO_EPOLL_FD);
  if (!ei || uv_poll_init(loop, &hs->poll, ei->epoll_fd) ||
      uv_timer_init(loop, &hs->timer)) {
    MHD_stop_daemon(hs->d);
    free(hs->cors);
    free(hs);
    return r1d_fail(err, R1D_EIO, "serve: cannot watch the HTTP daemon");
  }
  hs->poll.data = hs;
  hs->timer.data = hs;
  hs->handles_open = 2;
  uv_poll_start(&hs->poll, UV_READABLE, on_poll);
  run_mhd(hs);
  *out = hs;
  return 0;
}

int http_server_port(const http_server *hs) {
  return hs->port;
}

void http_server_quiesce(http_server *hs) {
  if (!hs || hs->quiesced) return;
  hs->quiesced = 1;
  MHD_socket s = MHD_quiesce_daemon(hs->d);
  if (s != MHD_INVALID_SOCKET) close(s);
}

int http_server_active(const http_server *hs) {
  return hs->n_active;
}

http_exchange *http_server_first(http_server *hs) {
  return hs->head;
}

static void on_handle_closed(uv_handle_t *h) {
  http_server *hs = h->data;
  if (--hs->handles_open == 0) {
    free(hs->cors);
    free(hs);
  }
}

void http_server_stop(http_server *hs) {
  if (!hs) return;
  for (http_exchange *ex = hs->head; ex; ex = ex->next) {
    if (ex->stream_ended == 0 && ex->state == EX_STREAMING)
      ex->stream_ended = 1;
    wake(ex);
    if (ex->state == EX_DEFERRED && ex->suspended) {
      ex->suspended = 0;
      MHD_resume_connection(ex->conn);
    }
  }
  MHD_run(hs->d);
  uv_poll_stop(&hs->poll); /* MHD closes the epoll descriptor next */
  uv_timer_stop(&hs->timer);
  MHD_stop_daemon(hs->d);
  hs->d = NULL;
  uv_close((uv_handle_t *)&hs->poll, on_handle_closed);
  uv_close((uv_handle_t *)&hs->timer, on_handle_closed);
}

const char *http_header(http_exchange *ex, const char *name) {
  return MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, name);
}

const char *http_query_arg(http_exchange *ex, const char *name) {
  return MHD_lookup_connection_value(ex->conn, MHD_GET_ARGUMENT_KIND, name);
}

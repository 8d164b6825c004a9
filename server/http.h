/* http.h - HTTP/1.1 on libmicrohttpd, driven from a libuv loop.
 *
 * The daemon runs in MHD's external-polling epoll mode: libuv watches MHD's
 * epoll descriptor and its timeout, and calls MHD_run on the loop thread, so
 * every MHD callback, every route handler and every response write happens
 * on that one thread (no locks on the HTTP side, no thread per connection).
 *
 * An exchange is one request/response. Its handler, called once the body is
 * complete, does one of three things:
 *   - answers at once (http_reply_json / http_reply_error / http_reply_text);
 *   - defers: http_defer suspends the connection, and a later
 *     http_complete_json (from a wake-up on the loop) resumes it with the
 *     answer;
 *   - streams: http_stream_start answers 200 with a chunked body read from
 *     the exchange's byte buffer; http_stream_write appends and resumes the
 *     connection if the reader had suspended it for lack of bytes;
 *     http_stream_end finishes the body once the buffer drains.
 * When the exchange ends (answered, or the client went away) its on_close
 * hook runs with completed = 0 when the client did not get the whole
 * answer, then the access-log line is written. Closing the daemon resumes
 * every suspended connection first (MHD requires it). */
#ifndef R1D_SERVER_HTTP_H
#define R1D_SERVER_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../common/buf.h"
#include "../common/status.h"

typedef struct http_server http_server;
typedef struct http_exchange http_exchange;

typedef void (*http_handler)(void *app, http_exchange *ex);
typedef void (*http_close_hook)(void *user, http_exchange *ex, int completed);
/* Called after each exchange ends, for the access log and metrics. */
typedef void (*http_done_hook)(void *app, http_exchange *ex);

typedef struct http_limits {
  size_t max_body;       /* larger bodies get 413 */
  unsigned idle_timeout; /* seconds before an idle keep-alive closes */
  unsigned max_connections;
} http_limits;

struct http_exchange {
  http_server *hs;
  void *conn; /* struct MHD_Connection */
  char method[16];
  char *path; /* MHD strips the query; see http_query_arg */
  r1d_buf body;
  int body_too_large;
  double t_start; /* monotonic seconds */
  /* set by handlers, read by the access log */
  int status;
  char request_id[48];
  const char *route;  /* route label for metrics ("other" when unknown) */
  const char *key_id; /* points into a keyring; valid during the exchange */
  int prompt_tokens, completion_tokens;
  double ttft; /* seconds to the first token, < 0 when none */
  /* deferred and streamed answers */
  int state;
  int in_handler; /* inside MHD's access callback: answers queue at once */
  int suspended;
  void *pending; /* struct MHD_Response queued on resume */
  unsigned pending_status;
  r1d_buf out;
  size_t out_off;
  int stream_ended;
  double t_last_write;
  void *user;
  http_close_hook on_close;
  http_exchange *prev, *next; /* every live exchange */
};

/* Starts listening on host:port (port 0: a free one). handler and done get
 * `app`. cors: comma-separated allowed origins, "*", or NULL. */
int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const http_limits *lim, const char *cors,
                      http_handler handler, http_done_hook done, void *app,
                      http_server **out, r1d_error *err);
/* The bound port. */
int http_server_port(const http_server *hs);
/* Stops accepting connections (SIGTERM); answers then carry
 * "Connection: close". Exchanges in progress go on. */
void http_server_quiesce(http_server *hs);
/* Live exchanges (being read, handled, deferred or streamed). */
int http_server_active(const http_server *hs);
/* The first live exchange, for walks: for (ex = first; ex; ex = ex->next). */
http_exchange *http_server_first(http_server *hs);
/* Runs MHD once (after resumes, so they take effect without a wait). */
void http_server_kick(http_server *hs);
/* Resumes everything, stops the daemon, frees it. Safe with NULL. The loop
 * must then run once more so libuv can close its handles. */
void http_server_stop(http_server *hs);

/* Request header (case-insensitive), or NULL. */
const char *http_header(http_exchange *ex, const char *name);
/* Query argument, or NULL. */
const char *http_query_arg(http_exchange *ex, const char *name);

/* Answers now (from the handler) or completes a deferred exchange. The
 * body is copied. extra_header/value may be NULL. */
void http_reply(http_exchange *ex, int status, const char *content_type,
                const char *body, size_t len, const char *extra_header,
                const char *extra_value);
/* A JSON answer; json is stolen. */
void http_reply_json(http_exchange *ex, int status, json_t *json);
/* An OpenAI error answer {"error":{message,type,param,code}}; param and
 * code may be NULL. 429 and 503 add Retry-After: 1. */
void http_reply_error(http_exchange *ex, int status, const char *type,
                      const char *message, const char *param, const char *code);
/* The error object itself (for in-stream errors). */
json_t *http_error_json(const char *type, const char *message,
                        const char *param, const char *code);

/* Suspends the connection until http_reply* completes it. */
void http_defer(http_exchange *ex);

/* Starts a 200 text/event-stream answer (from the handler only). */
void http_stream_start(http_exchange *ex);
int http_stream_write(http_exchange *ex, const char *data, size_t len);
void http_stream_end(http_exchange *ex);

#endif

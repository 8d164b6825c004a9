/* admin_http.h - the HTTP client side of `r1d admin`: one request to a
 * running `r1d serve`, made with libcurl's easy interface, the answer's
 * status and body collected in memory. Kept apart from cmd_admin.c so the
 * subcommands read as "ask the server, print the answer" and the transport
 * details (timeouts, headers, the admin key) sit in one place. */
#ifndef R1D_SERVER_ADMIN_HTTP_H
#define R1D_SERVER_ADMIN_HTTP_H

#include <stddef.h>

#include "../common/status.h"

/* Where the server is and how to prove the caller may use /admin/. */
typedef struct admin_conn {
  const char *url;       /* base URL, "http://127.0.0.1:8000" (a trailing
                            slash is ignored) */
  const char *admin_key; /* sent as "Authorization: Bearer KEY"; NULL or ""
                            sends none (a loopback server without keys) */
} admin_conn;

enum {
  ADMIN_CONNECT_TIMEOUT_S = 5,
  ADMIN_TOTAL_TIMEOUT_S = 60,
};

/* Calls libcurl's global init; once per process, before any request.
 * R1D_ENOMEM (with a message) when libcurl cannot start. */
int admin_http_init(r1d_error *err);
void admin_http_cleanup(void);

/* Sends METHOD c->url + path (path starts with '/', query included) with
 * body[0..len) (body NULL: none; content_type names it) and waits for the
 * answer, at most ADMIN_TOTAL_TIMEOUT_S seconds. Any HTTP answer, 4xx and
 * 5xx included, is a success: *status is its code and *resp (malloc'ed,
 * NUL-terminated, *resp_len bytes before the NUL) its body, which the
 * caller frees. R1D_EIO when no answer came ("cannot reach URL: why"),
 * R1D_ENOMEM, R1D_EINVAL for a URL libcurl refuses; *resp is NULL then. */
int admin_request(const admin_conn *c, const char *method, const char *path,
                  const char *body, size_t len, const char *content_type,
                  long *status, char **resp, size_t *resp_len, r1d_error *err);

/* s with every byte outside [A-Za-z0-9-._~] percent-encoded: one path
 * segment or query value. malloc'ed; NULL when out of memory. */
char *admin_escape(const char *s);

#endif

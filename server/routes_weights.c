/* routes_weights.c - the hot-swap admin routes (design/API.md):
 *   GET  /admin/v1/weights            the loaded versions, live and previous
 *   POST /admin/v1/weights/swap       {"path": DIR} or {"version": "ckpt-…"}
 *                                     [, "abort_in_flight": bool]
 *   POST /admin/v1/weights/rollback   [{"abort_in_flight": bool}]
 *
 * A swap loads a model folder, which takes from milliseconds (the tiny
 * model) to seconds (a 1.5B one): it runs on libuv's thread pool
 * (uv_queue_work), one at a time, while the loop keeps serving; the answer
 * is sent from the loop when the new version is live. New requests take the
 * new version from that moment; requests in flight finish on theirs
 * (engine/serve/versions.h). A second swap while one runs is a 409. */
#include <stdlib.h>
#include <string.h>

#include "../storage/checkpoints.h"
#include "json_api.h"
#include "server.h"

typedef struct swap_work {
  uv_work_t req; /* first: the work request's data is this */
  r1d_server *s;
  http_exchange *ex; /* NULL once the client went away */
  char dir[4096];
  int abort, rollback;
  int rc;
  r1d_error err;
  r1d_swap_result res;
} swap_work;

static void swap_on_close(void *user, http_exchange *ex, int completed) {
  (void)ex;
  (void)completed;
  swap_work *w = user;
  w->ex = NULL; /* the swap goes on; nobody to answer */
}

/* Thread pool: the slow part. */
static void swap_run(uv_work_t *req) {
  swap_work *w = req->data;
  w->rc = w->rollback ? r1d_versions_rollback(w->s->versions, w->abort, &w->res,
                                              &w->err)
                      : r1d_versions_swap(w->s->versions, w->dir, w->abort,
                                          &w->res, &w->err);
}

static json_t *swap_json(const swap_work *w) {
  const r1d_swap_result *r = &w->res;
  return json_pack("{s:s, s:I, s:I, s:i, s:i, s:f, s:f, s:f}", "object",
                   w->rollback ? "weights.rollback" : "weights.swap",
                   "old_weight_version", (json_int_t)r->old_version,
                   "new_weight_version", (json_int_t)r->new_version,
                   "in_flight_requests", r->in_flight, "aborted_requests",
                   r->aborted, "stage_seconds", r->stage_seconds,
                   "flip_seconds", r->flip_seconds, "seconds",
                   r->stage_seconds + r->flip_seconds);
}

/* Loop thread: answer, count, log. */
static void swap_done(uv_work_t *req, int status) {
  swap_work *w = req->data;
  r1d_server *s = w->s;
  s->swap_busy = 0;
  if (status == 0 && w->rc == 0) {
    r1d_log_msg(&s->log, R1D_LOG_INFO, "weights",
                "%s: weight version %llu -> %llu (%d requests finishing on "
                "the old one, %d aborted; stage %.3f s, flip %.6f s)",
                w->rollback ? "rollback" : "swap",
                (unsigned long long)w->res.old_version,
                (unsigned long long)w->res.new_version, w->res.in_flight,
                w->res.aborted, w->res.stage_seconds, w->res.flip_seconds);
  }
  if (w->ex) {
    http_exchange *ex = w->ex;
    ex->on_close = NULL;
    ex->user = NULL;
    if (status != 0)
      http_reply_error(ex, 500, "server_error", "the swap could not run", NULL,
                       NULL);
    else if (w->rc == 0)
      http_reply_json(ex, 200, swap_json(w));
    else if (w->rc == R1D_ENOTFOUND)
      http_reply_error(ex, 404, "invalid_request_error", w->err.msg,
                       w->rollback ? NULL : "path", "not_found");
    else if (w->rc == R1D_ENOMEM || w->rc == R1D_EBACKEND)
      http_reply_error(ex, 503, "server_error", w->err.msg, NULL,
                       "insufficient_memory");
    else
      http_reply_error(ex, 400, "invalid_request_error", w->err.msg,
                       w->rollback ? NULL : "path", "invalid_weights");
  }
  free(w);
  http_server_kick(s->http);
}

typedef struct ckpt_path {
  const char *version;
  char *dir;
  size_t cap;
} ckpt_path;

static int find_ckpt(r1d_txn *t, void *arg, r1d_error *err) {
  ckpt_path *c = arg;
  json_t *rec = NULL;
  int rc = r1d_ckpt_get(t, c->version, &rec, err);
  if (rc == 0) {
    const char *p = json_string_value(json_object_get(rec, "path"));
    if (!p || strlen(p) >= c->cap)
      rc = r1d_fail(err, R1D_EFORMAT, "checkpoint %s has no usable path",
                    c->version);
    else
      snprintf(c->dir, c->cap, "%s", p);
  }
  json_decref(rec);
  return rc;
}

/* Reads the body into w (path or registry version, abort flag). 0 or
 * answered with 400/404. */
static int read_body(r1d_server *s, http_exchange *ex, swap_work *w) {
  api_error e = {0};
  json_t *body = NULL;
  if (ex->body.n == 0 && w->rollback) return 0; /* rollback takes no body */
  if (api_parse_object(ex->body.p, ex->body.n, &body, &e) ||
      api_get_bool(body, "abort_in_flight", &w->abort, NULL, &e)) {
    api_reply(ex, &e);
    json_decref(body);
    return -1;
  }
  if (w->rollback) {
    json_decref(body);
    return 0;
  }
  json_t *path = json_object_get(body, "path");
  json_t *version = json_object_get(body, "version");
  int rc = 0;
  if (!!path + !!version != 1) {
    http_reply_error(ex, 400, "invalid_request_error",
                     "give one of \"path\" (a model folder) or \"version\" "
                     "(a registered checkpoint)",
                     "path", "missing_field");
    rc = -1;
  } else if (path && (!json_is_string(path) || !json_string_length(path) ||
                      json_string_length(path) >= sizeof w->dir)) {
    http_reply_error(ex, 400, "invalid_request_error",
                     "path must be a non-empty string (a model folder)", "path",
                     "invalid_type");
    rc = -1;
  } else if (path) {
    snprintf(w->dir, sizeof w->dir, "%s", json_string_value(path));
  } else if (!json_is_string(version)) {
    http_reply_error(ex, 400, "invalid_request_error",
                     "version must be a string (ckpt-…)", "version",
                     "invalid_type");
    rc = -1;
  } else if (!s->db) {
    http_reply_error(ex, 400, "invalid_request_error",
                     "swapping by version needs the checkpoints registry: "
                     "start the server with a data dir",
                     "version", "storage_disabled");
    rc = -1;
  } else {
    r1d_error err = {0};
    ckpt_path c = {json_string_value(version), w->dir, sizeof w->dir};
    int rrc = r1d_db_read(s->db, find_ckpt, &c, &err);
    if (rrc) {
      http_reply_error(ex, rrc == R1D_ENOTFOUND ? 404 : 400,
                       "invalid_request_error", err.msg, "version",
                       rrc == R1D_ENOTFOUND ? "not_found" : "invalid_value");
      rc = -1;
    }
  }
  json_decref(body);
  return rc;
}

static void start(r1d_server *s, http_exchange *ex, int rollback) {
  if (s->swap_busy) {
    http_reply_error(ex, 409, "invalid_request_error",
                     "a weight swap or rollback is already running", NULL,
                     "swap_in_progress");
    return;
  }
  if (s->draining) {
    http_reply_error(ex, 503, "server_error", "the server is shutting down",
                     NULL, "shutting_down");
    return;
  }
  swap_work *w = calloc(1, sizeof *w);
  if (!w) {
    http_reply_error(ex, 500, "server_error", "out of memory", NULL, NULL);
    return;
  }
  w->s = s;
  w->rollback = rollback;
  if (read_body(s, ex, w)) {
    free(w);
    return;
  }
  w->ex = ex;
  w->req.data = w;
  if (uv_queue_work(&s->loop, &w->req, swap_run, swap_done)) {
    http_reply_error(ex, 500, "server_error", "cannot start the swap", NULL,
                     NULL);
    free(w);
    return;
  }
  s->swap_busy = 1;
  ex->user = w;
  ex->on_close = swap_on_close;
  http_defer(ex);
}

void r1d_routes_admin_swap(r1d_server *s, http_exchange *ex) {
  start(s, ex, 0);
}

void r1d_routes_admin_rollback(r1d_server *s, http_exchange *ex) {
  start(s, ex, 1);
}

void r1d_routes_admin_weights(r1d_server *s, http_exchange *ex) {
  enum { CAP = 16 };
  r1d_version_info info[CAP];
  int n = r1d_versions_list(s->versions, info, CAP);
  uint64_t swaps;
  double seconds;
  r1d_versions_swap_totals(s->versions, &swaps, &seconds);
  json_t *list = json_array(), *live = json_null(), *prev = json_null();
  for (int i = 0; i < n && i < CAP; i++) {
    json_array_append_new(
        list,
        json_pack("{s:I, s:s, s:s, s:i, s:i}", "weight_version",
                  (json_int_t)info[i].id, "source", info[i].source, "state",
                  r1d_version_state_name(info[i].state), "holders",
                  info[i].holders, "requests", info[i].requests));
    if (info[i].state == R1D_VERSION_LIVE)
      live = json_integer((json_int_t)info[i].id);
    if (info[i].state == R1D_VERSION_PREVIOUS)
      prev = json_integer((json_int_t)info[i].id);
  }
  http_reply_json(ex, 200,
                  json_pack("{s:s, s:o, s:o, s:o, s:I, s:b}", "object",
                            "weights", "live", live, "previous", prev,
                            "versions", list, "swaps", (json_int_t)swaps,
                            "swap_in_progress", s->swap_busy));
}

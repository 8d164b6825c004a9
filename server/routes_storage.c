/* routes_storage.c - the routes over storage: POST /v1/feedback, and the
 * admin routes for tasks (POST/GET /admin/v1/tasks, GET/DELETE
 * /admin/v1/tasks/{id}) and logged interactions (GET /admin/v1/interactions
 * as JSONL, GET /admin/v1/interactions/{id}) and the checkpoints registry
 * (GET /admin/v1/checkpoints, GET /admin/v1/checkpoints/{version}). Writes go through the writer
 * like interaction records and are answered after their commit; reads are
 * short read transactions on the loop thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../storage/checkpoints.h"
#include "../storage/interactions.h"
#include "../storage/tasks.h"
#include "json_api.h"
#include "server.h"

enum { LIST_DEFAULT = 100, TASKS_MAX_LIST = 1000, IA_MAX_LIST = 10000 };

static int storage_off(r1d_server *s, http_exchange *ex) {
  if (s->writer) return 0;
  http_reply_error(ex, 503, "server_error",
                   "storage is off (start r1d serve with --data-dir)", NULL,
                   "storage_disabled");
  return 1;
}

/* A storage failure as an HTTP answer: full or I/O is the server's (503),
 * anything else was a bad request. */
static void reply_store_error(http_exchange *ex, int code, const char *msg) {
  if (code == R1D_EFULL)
    http_reply_error(ex, 503, "server_error", msg, NULL, "storage_full");
  else if (code == R1D_EIO || code == R1D_ENOMEM || code == R1D_ESTATE)
    http_reply_error(ex, 503, "server_error", msg, NULL, "storage_error");
  else
    http_reply_error(ex, 400, "invalid_request_error", msg, NULL, NULL);
}

/* ---- a write the exchange waits for ---- */

typedef struct http_store {
  store_req base;    /* first */
  http_exchange *ex; /* NULL once the client is gone */
  void (*reply)(struct http_store *h, http_exchange *ex);
  json_t *feedback;
  r1d_task_batch batch;
  int strict;
  size_t stored;
  char id[R1D_TASK_ID_MAX + 1];
} http_store;

static void store_on_close(void *user, http_exchange *ex, int completed) {
  (void)ex;
  (void)completed;
  http_store *h = user;
  h->ex = NULL;
}

static void store_free(http_store *h) {
  json_decref(h->feedback);
  r1d_task_batch_free(&h->batch);
  free(h);
}

static void store_on_done(r1d_server *s, store_req *base) {
  (void)s;
  http_store *h = (http_store *)base;
  http_exchange *ex = h->ex;
  if (ex) {
    ex->on_close = NULL;
    ex->user = NULL;
    h->reply(h, ex);
  }
  store_free(h);
}

/* Queues h (its base.op.apply set) and defers the exchange; on failure
 * answers now and frees h. */
static void store_and_defer(r1d_server *s, http_exchange *ex, http_store *h) {
  h->ex = ex;
  h->base.on_done = store_on_done;
  h->base.op.arg = h;
  if (r1d_server_store(s, &h->base)) {
    http_reply_error(ex, 503, "server_error", "the server is shutting down",
                     NULL, "shutting_down");
    store_free(h);
    return;
  }
  ex->user = h;
  ex->on_close = store_on_close;
  http_defer(ex);
}

/* ---- POST /v1/feedback ---- */

static int feedback_apply(r1d_txn *t, void *arg, r1d_error *err) {
  http_store *h = arg;
  return r1d_feedback_put(t, h->feedback, NULL, err);
}

static void feedback_reply(http_store *h, http_exchange *ex) {
  const char *id = json_string_value(json_object_get(h->feedback, "id"));
  if (h->base.op.status == R1D_ENOTFOUND) {
    char msg[200];
    snprintf(msg, sizeof msg, "No answer with id `%.120s` was logged.", id);
    http_reply_error(ex, 404, "invalid_request_error", msg, "id",
                     "interaction_not_found");
  } else if (h->base.op.status) {
    reply_store_error(ex, h->base.op.status, h->base.op.err.msg);
  } else {
    json_t *o = json_deep_copy(h->feedback);
    json_object_set_new(o, "object", json_string("feedback"));
    http_reply_json(ex, 200, o);
  }
}

void r1d_routes_feedback(r1d_server *s, http_exchange *ex) {
  if (storage_off(s, ex)) return;
  api_error e = {0};
  json_t *body = NULL;
  if (api_parse_object(ex->body.p, ex->body.n, &body, &e)) {
    api_reply(ex, &e);
    return;
  }
  json_t *fb = NULL;
  r1d_error err = {0};
  if (r1d_feedback_normalize(body, &fb, &err)) {
    /* the message starts with the field's name */
    char param[64] = {0};
    const char *colon = strchr(err.msg, ':');
    if (colon && (size_t)(colon - err.msg) < sizeof param)
      memcpy(param, err.msg, (size_t)(colon - err.msg));
    http_reply_error(ex, 400, "invalid_request_error", err.msg,
                     param[0] ? param : NULL, "invalid_value");
    json_decref(body);
    return;
  }
  json_decref(body);
  json_object_set_new(fb, "key_id",
                      ex->key_id ? json_string(ex->key_id) : json_null());
  http_store *h = calloc(1, sizeof *h);
  if (!h) {
    json_decref(fb);
    http_reply_error(ex, 500, "server_error", "out of memory", NULL, NULL);
    return;
  }
  h->feedback = fb;
  h->reply = feedback_reply;
  h->base.op.apply = feedback_apply;
  store_and_defer(s, ex, h);
}

/* ---- tasks ---- */

static int tasks_apply(r1d_txn *t, void *arg, r1d_error *err) {
  http_store *h = arg;
  return r1d_tasks_store(t, &h->batch, h->strict, &h->stored, err);
}

static json_t *task_errors_json(const r1d_task_batch *b) {
  json_t *a = json_array();
  for (size_t i = 0; i < b->n_errors; i++)
    json_array_append_new(a, json_pack("{s:I, s:s, s:s}", "line",
                                       (json_int_t)b->errors[i].line, "code",
                                       b->errors[i].code == R1D_EEXIST
                                           ? "duplicate_id"
                                           : "invalid_task",
                                       "message", b->errors[i].msg));
  return a;
}

static void tasks_reply(http_store *h, http_exchange *ex) {
  int st = h->base.op.status;
  if (st && st != R1D_EINVAL) {
    reply_store_error(ex, st, h->base.op.err.msg);
    return;
  }
  json_t *errors = task_errors_json(&h->batch);
  if (st == R1D_EINVAL || (h->stored == 0 && h->batch.n_errors)) {
    /* strict with a bad line, or nothing good at all: a 400 that still
     * lists every bad line */
    char msg[400];
    snprintf(msg, sizeof msg, "%zu bad task line(s)%s; line %zu: %s",
             h->batch.n_errors,
             st == R1D_EINVAL ? " (strict: nothing stored)" : "",
             h->batch.errors[0].line, h->batch.errors[0].msg);
    /* http_error_json is already {"error": {...}} */
    json_t *o =
        http_error_json("invalid_request_error", msg, NULL, "invalid_task");
    json_object_set_new(o, "errors", errors);
    json_object_set_new(o, "added", json_integer(0));
    http_reply_json(ex, 400, o);
    return;
  }
  json_t *ids = json_array();
  for (size_t i = 0; i < h->batch.n; i++)
    if (h->batch.tasks[i].key) /* stored */
      json_array_append_new(ids, json_string(h->batch.tasks[i].id));
  http_reply_json(ex, 200,
                  json_pack("{s:s, s:I, s:o, s:o}", "object", "tasks.import",
                            "added", (json_int_t)h->stored, "ids", ids,
                            "errors", errors));
}

static void tasks_post(r1d_server *s, http_exchange *ex) {
  if (storage_off(s, ex)) return;
  http_store *h = calloc(1, sizeof *h);
  r1d_error err = {0};
  if (!h || r1d_tasks_parse(ex->body.p ? ex->body.p : "", ex->body.n, &h->batch,
                            &err)) {
    if (h) store_free(h);
    http_reply_error(ex, 500, "server_error", "out of memory", NULL, NULL);
    return;
  }
  const char *strict = http_query_arg(ex, "strict");
  h->strict = strict && (!strcmp(strict, "true") || !strcmp(strict, "1"));
  if (h->batch.n == 0 && h->batch.n_errors == 0) {
    store_free(h);
    http_reply_error(ex, 400, "invalid_request_error",
                     "the body has no task (one JSON object or JSONL)", NULL,
                     "missing_field");
    return;
  }
  h->reply = tasks_reply;
  h->base.op.apply = tasks_apply;
  store_and_defer(s, ex, h);
}

typedef struct list_ctx {
  json_t *data;
  size_t limit;
  int more;
  const char *last;
} list_ctx;

static int list_one(void *arg, uint64_t key, const char *json, size_t len) {
  (void)key;
  list_ctx *l = arg;
  if (json_array_size(l->data) == l->limit) {
    l->more = 1;
    return 1;
  }
  json_t *o = json_loadb(json, len, 0, NULL);
  if (o) json_array_append_new(l->data, o);
  return 0;
}

typedef struct tasks_list_req {
  const char *split, *after;
  list_ctx *l;
} tasks_list_req;

static int tasks_list_txn(r1d_txn *t, void *arg, r1d_error *err) {
  tasks_list_req *q = arg;
  return r1d_tasks_list(t, q->split, q->after, q->l->limit + 1, list_one, q->l,
                        err);
}

/* ?limit= in [1, max]; 0 and a message when malformed. */
static size_t query_limit(http_exchange *ex, size_t max, api_error *e) {
  const char *v = http_query_arg(ex, "limit");
  if (!v) return LIST_DEFAULT;
  char *end;
  long long n = strtoll(v, &end, 10);
  if (end == v || *end || n < 1 || n > (long long)max) {
    api_fail(e, 400, "limit", "invalid_value",
             "limit: expected an integer in [1, %zu], got '%.40s'", max, v);
    return 0;
  }
  return (size_t)n;
}

/* What every list route checks first: storage on, ?limit= in [1, max].
 * 1 when it has answered (an error). */
static int list_start(r1d_server *s, http_exchange *ex, size_t max,
                      size_t *limit) {
  if (storage_off(s, ex)) return 1;
  api_error e = {0};
  *limit = query_limit(ex, max, &e);
  if (!*limit) {
    api_reply(ex, &e);
    return 1;
  }
  return 0;
}

static void tasks_get(r1d_server *s, http_exchange *ex) {
  size_t limit;
  if (list_start(s, ex, TASKS_MAX_LIST, &limit)) return;
  const char *split = http_query_arg(ex, "split");
  if (split && !*split) split = NULL;
  if (split && strcmp(split, "train") && strcmp(split, "eval")) {
    http_reply_error(ex, 400, "invalid_request_error",
                     "split: expected train or eval", "split", "invalid_value");
    return;
  }
  list_ctx l = {.data = json_array(), .limit = limit};
  tasks_list_req q = {split, http_query_arg(ex, "after"), &l};
  r1d_error err = {0};
  int rc = r1d_db_read(s->db, tasks_list_txn, &q, &err);
  if (rc) {
    json_decref(l.data);
    if (rc == R1D_ENOTFOUND)
      http_reply_error(ex, 400, "invalid_request_error", err.msg, "after",
                       "invalid_value");
    else
      reply_store_error(ex, rc, err.msg);
    return;
  }
  size_t n = json_array_size(l.data);
  json_t *last =
      n ? json_object_get(json_array_get(l.data, n - 1), "id") : NULL;
  http_reply_json(ex, 200,
                  json_pack("{s:s, s:o, s:b, s:O?}", "object", "list", "data",
                            l.data, "has_more", l.more, "last_id", last));
}

void r1d_routes_admin_tasks(r1d_server *s, http_exchange *ex) {
  if (!strcmp(ex->method, "POST"))
    tasks_post(s, ex);
  else
    tasks_get(s, ex);
}

/* The {id} after a route's prefix; NULL when empty or too long. */
static const char *path_tail(http_exchange *ex, const char *prefix) {
  const char *id = ex->path + strlen(prefix);
  if (!*id || strlen(id) > R1D_TASK_ID_MAX || strchr(id, '/')) return NULL;
  return id;
}

typedef struct get_req {
  const char *id;
  char *json;
} get_req;

static int task_get_txn(r1d_txn *t, void *arg, r1d_error *err) {
  get_req *g = arg;
  return r1d_tasks_get(t, g->id, &g->json, err);
}

static int task_delete_apply(r1d_txn *t, void *arg, r1d_error *err) {
  http_store *h = arg;
  return r1d_tasks_delete(t, h->id, err);
}

static void task_delete_reply(http_store *h, http_exchange *ex) {
  if (h->base.op.status == R1D_ENOTFOUND) {
    char msg[200];
    snprintf(msg, sizeof msg, "No task with id `%s`.", h->id);
    http_reply_error(ex, 404, "invalid_request_error", msg, NULL,
                     "task_not_found");
  } else if (h->base.op.status) {
    reply_store_error(ex, h->base.op.status, h->base.op.err.msg);
  } else {
    http_reply_json(ex, 200,
                    json_pack("{s:s, s:s, s:b}", "id", h->id, "object", "task",
                              "deleted", 1));
  }
}

void r1d_routes_admin_task(r1d_server *s, http_exchange *ex) {
  if (storage_off(s, ex)) return;
  const char *id = path_tail(ex, "/admin/v1/tasks/");
  if (!id) {
    http_reply_error(ex, 404, "invalid_request_error",
                     "expected /admin/v1/tasks/{id}", NULL, "not_found");
    return;
  }
  if (!strcmp(ex->method, "DELETE")) {
    http_store *h = calloc(1, sizeof *h);
    if (!h) {
      http_reply_error(ex, 500, "server_error", "out of memory", NULL, NULL);
      return;
    }
    snprintf(h->id, sizeof h->id, "%s", id);
    h->reply = task_delete_reply;
    h->base.op.apply = task_delete_apply;
    store_and_defer(s, ex, h);
    return;
  }
  get_req g = {id, NULL};
  r1d_error err = {0};
  int rc = r1d_db_read(s->db, task_get_txn, &g, &err);
  if (rc == R1D_ENOTFOUND) {
    char msg[200];
    snprintf(msg, sizeof msg, "No task with id `%s`.", id);
    http_reply_error(ex, 404, "invalid_request_error", msg, NULL,
                     "task_not_found");
  } else if (rc) {
    reply_store_error(ex, rc, err.msg);
  } else {
    http_reply(ex, 200, "application/json", g.json, strlen(g.json), NULL, NULL);
  }
  free(g.json);
}

/* ---- interactions ---- */

typedef struct ia_export {
  r1d_buf out;
  size_t n, limit;
  int more;
  uint64_t last;
  r1d_txn *t;
} ia_export;

static int ia_one(void *arg, uint64_t key, const char *json, size_t len) {
  ia_export *x = arg;
  if (x->n == x->limit) {
    x->more = 1;
    return 1;
  }
  /* the record as stored, plus its feedback when there is any */
  json_t *fb = NULL;
  if (r1d_feedback_list(x->t, key, &fb, NULL) == 0 && json_array_size(fb)) {
    json_t *rec = json_loadb(json, len, JSON_ALLOW_NUL, NULL);
    if (rec) {
      json_object_set_new(rec, "feedback", fb);
      fb = NULL;
      char *s = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
      json_decref(rec);
      if (!s || r1d_buf_append(&x->out, s, strlen(s))) {
        free(s);
        return R1D_ENOMEM;
      }
      free(s);
      goto line_done;
    }
  }
  if (r1d_buf_append(&x->out, json, len)) {
    json_decref(fb);
    return R1D_ENOMEM;
  }
line_done:
  json_decref(fb);
  x->n++;
  x->last = key;
  return r1d_buf_append(&x->out, "\n", 1) ? R1D_ENOMEM : 0;
}

typedef struct ia_list_req {
  uint64_t after;
  ia_export *x;
} ia_list_req;

static int ia_list_txn(r1d_txn *t, void *arg, r1d_error *err) {
  ia_list_req *q = arg;
  q->x->t = t;
  return r1d_interactions_scan(t, q->after, ia_one, q->x, err);
}

void r1d_routes_admin_interactions(r1d_server *s, http_exchange *ex) {
  size_t limit;
  if (list_start(s, ex, IA_MAX_LIST, &limit)) return;
  /* after: a response id (resume after it) */
  uint64_t after = 0;
  const char *a = http_query_arg(ex, "after");
  if (a && *a && r1d_response_id_key(a, &after)) {
    http_reply_error(ex, 400, "invalid_request_error",
                     "after: expected a response id (chatcmpl-... or "
                     "cmpl-...)",
                     "after", "invalid_value");
    return;
  }
  ia_export x = {.limit = limit};
  ia_list_req q = {after, &x};
  r1d_error err = {0};
  int rc = r1d_db_read(s->db, ia_list_txn, &q, &err);
  if (rc) {
    r1d_buf_free(&x.out);
    reply_store_error(ex, rc, err.msg[0] ? err.msg : r1d_strerror(rc));
    return;
  }
  /* one record per line; the cursor for the next page in a header */
  char more[8];
  snprintf(more, sizeof more, "%s", x.more ? "true" : "false");
  http_reply(ex, 200, "application/x-ndjson", x.out.p ? x.out.p : "", x.out.n,
             "X-Has-More", more);
  r1d_buf_free(&x.out);
}

typedef struct ia_get {
  const char *id;
  json_t *rec;
} ia_get;

static int ia_get_txn(r1d_txn *t, void *arg, r1d_error *err) {
  ia_get *g = arg;
  int rc = r1d_interaction_get(t, g->id, &g->rec, err);
  if (rc) return rc;
  uint64_t key;
  r1d_response_id_key(g->id, &key);
  json_t *fb = NULL;
  if ((rc = r1d_feedback_list(t, key, &fb, err))) return rc;
  json_object_set_new(g->rec, "feedback", fb);
  return 0;
}

void r1d_routes_admin_interaction(r1d_server *s, http_exchange *ex) {
  if (storage_off(s, ex)) return;
  const char *id = path_tail(ex, "/admin/v1/interactions/");
  ia_get g = {id, NULL};
  r1d_error err = {0};
  int rc = id ? r1d_db_read(s->db, ia_get_txn, &g, &err) : R1D_ENOTFOUND;
  if (rc == R1D_ENOTFOUND) {
    char msg[200];
    snprintf(msg, sizeof msg, "No answer with id `%.120s` was logged.",
             id ? id : "");
    http_reply_error(ex, 404, "invalid_request_error", msg, NULL,
                     "interaction_not_found");
  } else if (rc) {
    reply_store_error(ex, rc, err.msg);
  } else {
    http_reply_json(ex, 200, g.rec);
    g.rec = NULL;
  }
  json_decref(g.rec);
}

/* ---- the checkpoints registry ---- */

typedef struct ckpt_read {
  const char *status, *version;
  size_t limit;
  json_t *out;
} ckpt_read;

static int ckpt_list_txn(r1d_txn *t, void *arg, r1d_error *err) {
  ckpt_read *q = arg;
  return r1d_ckpt_list(t, q->status, q->limit, &q->out, err);
}

static int ckpt_get_txn(r1d_txn *t, void *arg, r1d_error *err) {
  ckpt_read *q = arg;
  return r1d_ckpt_get(t, q->version, &q->out, err);
}

void r1d_routes_admin_checkpoints(r1d_server *s, http_exchange *ex) {
  size_t limit;
  if (list_start(s, ex, TASKS_MAX_LIST, &limit)) return;
  ckpt_read q = {.status = http_query_arg(ex, "status"), .limit = limit};
  if (q.status && !*q.status) q.status = NULL;
  r1d_error err = {0};
  int rc = r1d_db_read(s->db, ckpt_list_txn, &q, &err);
  if (rc == R1D_EINVAL) {
    http_reply_error(ex, 400, "invalid_request_error", err.msg, "status",
                     "invalid_value");
    return;
  }
  if (rc) {
    reply_store_error(ex, rc, err.msg);
    return;
  }
  http_reply_json(ex, 200,
                  json_pack("{s:s, s:o}", "object", "list", "data", q.out));
}

void r1d_routes_admin_checkpoint(r1d_server *s, http_exchange *ex) {
  if (storage_off(s, ex)) return;
  ckpt_read q = {.version = path_tail(ex, "/admin/v1/checkpoints/")};
  r1d_error err = {0};
  int rc =
      q.version ? r1d_db_read(s->db, ckpt_get_txn, &q, &err) : R1D_ENOTFOUND;
  if (rc == R1D_EINVAL || rc == R1D_ENOTFOUND) {
    http_reply_error(ex, 404, "invalid_request_error",
                     q.version ? err.msg
                               : "expected /admin/v1/checkpoints/{version}",
                     NULL, "not_found");
    return;
  }
  if (rc) {
    reply_store_error(ex, rc, err.msg);
    return;
  }
  http_reply_json(ex, 200, q.out);
}

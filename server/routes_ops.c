/* routes_ops.c - the dispatcher (route table, API and admin keys) and the
 * operational routes: /health, /ready, /metrics, /version and
 * /admin/v1/server. Public routes need an API key when keys are configured
 * (the admin key works there too); /health, /ready, /metrics and /version
 * stay open for load balancers and scrapers. /admin/ routes need the admin
 * key; without one configured they are served only on a loopback bind. */
#include <stdio.h>
#include <string.h>

#include "json_api.h"
#include "server.h"

#ifndef R1D_GIT_HASH
#define R1D_GIT_HASH "unknown"
#endif

static void route_health(r1d_server *s, http_exchange *ex) {
  r1d_engine_stats st;
  r1d_versions_stats(s->versions, &st);
  if (st.failed) {
    http_reply_error(ex, 503, "server_error",
                     "the engine failed (a backend error); restart the "
                     "server",
                     NULL, "engine_failed");
    return;
  }
  /* storage failing (full map, I/O) is reported, but the server is alive
   * and answering: a 503 here would only take it out of its pool */
  json_t *o = json_pack("{s:s}", "status", "ok");
  char msg[512];
  if (s->db && r1d_db_failing(s->db, msg, sizeof msg)) {
    json_object_set_new(o, "status", json_string("degraded"));
    json_object_set_new(o, "storage",
                        json_pack("{s:b, s:s}", "ok", 0, "error", msg));
  }
  http_reply_json(ex, 200, o);
}

static void route_ready(r1d_server *s, http_exchange *ex) {
  r1d_engine_stats st;
  r1d_versions_stats(s->versions, &st);
  if (st.failed || !s->ready_state || s->draining) {
    http_reply_error(ex, 503, "server_error",
                     s->draining ? "the server is shutting down"
                                 : "the server is not ready",
                     NULL, "not_ready");
    return;
  }
  http_reply_json(ex, 200, json_pack("{s:s}", "status", "ready"));
}

static void storage_metrics(r1d_server *s, r1d_storage_metrics *m) {
  m->logged = s->logged;
  m->log_failed = s->log_failed;
  if (!s->db) return;
  m->enabled = 1;
  r1d_db_stats st;
  if (r1d_db_stat(s->db, &st, NULL) == 0) {
    m->map_used = st.file_bytes;
    m->map_size = st.map_size;
    m->map_max = st.map_max;
    m->data_bytes = st.data_bytes;
    m->write_errors = st.write_errors;
  }
  m->failing = r1d_db_failing(s->db, NULL, 0);
  if (s->writer) {
    r1d_writer_stats ws;
    r1d_writer_stats_get(s->writer, &ws);
    m->commits = ws.batches;
    m->commit_seconds = ws.commit_seconds;
    m->pruned = ws.pruned;
    m->prune_errors = ws.prune_errors;
    m->queued = ws.queued;
  }
}

static void route_metrics(r1d_server *s, http_exchange *ex) {
  r1d_engine_stats st;
  r1d_versions_stats(s->versions, &st);
  r1d_versions_swap_totals(s->versions, &s->metrics.weight_swaps,
                           &s->metrics.weight_swap_seconds);
  r1d_buf out = {0};
  r1d_storage_metrics sm = {0};
  storage_metrics(s, &sm);
  if (r1d_metrics_render(&s->metrics, &st, s->model_id, &out) ||
      r1d_metrics_render_storage(&sm, &out) ||
      r1d_trainer_render_metrics(s, &out)) {
    r1d_buf_free(&out);
    http_reply_error(ex, 500, "server_error", "out of memory", NULL, NULL);
    return;
  }
  http_reply(ex, 200, "text/plain; version=0.0.4", out.p ? out.p : "", out.n,
             NULL, NULL);
  r1d_buf_free(&out);
}

static void route_version(r1d_server *s, http_exchange *ex) {
  r1d_engine_stats st;
  r1d_versions_stats(s->versions, &st);
  http_reply_json(ex, 200,
                  json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "version",
                            R1D_VERSION, "git", R1D_GIT_HASH, "backend",
                            s->be_is_cuda ? "cuda" : "cpu", "device",
                            s->backend_desc, "model", s->model_id,
                            "weight_version", (json_int_t)st.weight_version));
}

static void route_admin_server(r1d_server *s, http_exchange *ex) {
  r1d_engine_stats st;
  r1d_versions_stats(s->versions, &st);
  const r1d_engine_config *ec = &s->engine_cfg;
  json_t *engine = json_pack(
      "{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:f, s:f}",
      "running", st.running, "waiting", st.waiting, "requests", st.requests,
      "kv_blocks_total", st.kv_blocks_total, "kv_blocks_used",
      st.kv_blocks_used, "kv_blocks_cached", st.kv_blocks_cached, "block_size",
      st.block_size, "failed", st.failed, "steps", (json_int_t)st.steps,
      "preemptions", (json_int_t)st.preemptions, "generated_tokens",
      (json_int_t)st.generated_tokens, "prompt_tokens",
      (json_int_t)st.prompt_tokens, "runner_seconds", st.runner_seconds,
      "host_seconds", st.host_seconds);
  json_t *limits = json_pack(
      "{s:i, s:i, s:i, s:i, s:i, s:b, s:I, s:f, s:f, s:f}", "max_model_len",
      ec->max_model_len, "max_num_seqs", ec->max_num_seqs, "max_batch_tokens",
      ec->max_batch_tokens, "kv_blocks", ec->n_blocks, "max_queued",
      ec->max_waiting, "prefix_cache", ec->prefix_cache, "max_body",
      (json_int_t)s->cfg.max_body, "request_timeout", s->cfg.request_timeout,
      "drain_timeout", s->cfg.drain_timeout, "keepalive", s->cfg.keepalive);
  json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:o, s:o, s:i, s:i, s:f}",
                        "model", s->model_id, "model_dir", s->cfg.model,
                        "backend", s->be_is_cuda ? "cuda" : "cpu", "port",
                        http_server_port(s->http), "reasoning_field",
                        s->cfg.reasoning_field, "engine", engine, "limits",
                        limits, "api_keys", (int)r1d_keyring_count(s->api_keys),
                        "http_active", http_server_active(s->http),
                        "uptime_seconds", r1d_server_now() - s->t_started);
  json_object_set_new(o, "storage", r1d_server_storage_json(s));
  http_reply_json(ex, 200, o);
}

typedef void (*route_fn)(r1d_server *s, http_exchange *ex);
typedef enum { ACCESS_OPEN, ACCESS_API, ACCESS_ADMIN } access_kind;

/* A path ending in "/{id}" matches any one segment there (its label, with
 * "{id}", names it in metrics and logs). */
typedef struct route {
  const char *method, *path;
  access_kind access;
  route_fn fn;
} route;

static const route routes[] = {
    {"POST", "/v1/chat/completions", ACCESS_API, r1d_routes_openai_chat},
    {"POST", "/v1/completions", ACCESS_API, r1d_routes_openai_completions},
    {"GET", "/v1/models", ACCESS_API, r1d_routes_openai_models},
    {"POST", "/tokenize", ACCESS_API, r1d_routes_tokenize},
    {"POST", "/detokenize", ACCESS_API, r1d_routes_detokenize},
    {"GET", "/health", ACCESS_OPEN, route_health},
    {"GET", "/ready", ACCESS_OPEN, route_ready},
    {"GET", "/metrics", ACCESS_OPEN, route_metrics},
    {"GET", "/version", ACCESS_OPEN, route_version},
    {"POST", "/v1/feedback", ACCESS_API, r1d_routes_feedback},
    {"GET", "/admin/v1/server", ACCESS_ADMIN, route_admin_server},
    {"POST", "/admin/v1/tasks", ACCESS_ADMIN, r1d_routes_admin_tasks},
    {"GET", "/admin/v1/tasks", ACCESS_ADMIN, r1d_routes_admin_tasks},
    {"GET", "/admin/v1/tasks/{id}", ACCESS_ADMIN, r1d_routes_admin_task},
    {"DELETE", "/admin/v1/tasks/{id}", ACCESS_ADMIN, r1d_routes_admin_task},
    {"GET", "/admin/v1/interactions", ACCESS_ADMIN,
     r1d_routes_admin_interactions},
    {"GET", "/admin/v1/interactions/{id}", ACCESS_ADMIN,
     r1d_routes_admin_interaction},
    {"GET", "/admin/v1/checkpoints", ACCESS_ADMIN,
     r1d_routes_admin_checkpoints},
    {"GET", "/admin/v1/checkpoints/{id}", ACCESS_ADMIN,
     r1d_routes_admin_checkpoint},
    {"GET", "/admin/v1/weights", ACCESS_ADMIN, r1d_routes_admin_weights},
    {"POST", "/admin/v1/weights/swap", ACCESS_ADMIN, r1d_routes_admin_swap},
    {"POST", "/admin/v1/weights/rollback", ACCESS_ADMIN,
     r1d_routes_admin_rollback},
    {"POST", "/admin/v1/jobs", ACCESS_ADMIN, r1d_routes_admin_jobs},
    {"GET", "/admin/v1/jobs", ACCESS_ADMIN, r1d_routes_admin_jobs},
    {"GET", "/admin/v1/jobs/{id}", ACCESS_ADMIN, r1d_routes_admin_job},
    {"POST", "/admin/v1/jobs/{id}/cancel", ACCESS_ADMIN,
     r1d_routes_admin_job_cancel},
    {"GET", "/admin/v1/trainer", ACCESS_ADMIN, r1d_routes_admin_trainer},
    {"PUT", "/admin/v1/trainer", ACCESS_ADMIN, r1d_routes_admin_trainer},
};

/* 1 when path matches the route's path ("{id}" standing for one
 * non-empty segment, anywhere in it). */
static int path_matches(const char *pattern, const char *path) {
  const char *brace = strstr(pattern, "{id}");
  if (!brace) return strcmp(pattern, path) == 0;
  size_t n = (size_t)(brace - pattern);
  if (strncmp(pattern, path, n)) return 0;
  const char *seg = path + n;
  size_t len = strcspn(seg, "/");
  return len > 0 && strcmp(seg + len, brace + 4) == 0;
}
enum { N_ROUTES = sizeof routes / sizeof routes[0] };

/* 0 when the request may go on; else answered with 401/403. */
static int check_access(r1d_server *s, http_exchange *ex, access_kind access) {
  const char *auth = http_header(ex, "Authorization");
  const char *id = NULL;
  if (access == ACCESS_OPEN) return 0;
  if (access == ACCESS_ADMIN) {
    if (!s->admin_keys) {
      if (r1d_host_is_loopback(s->cfg.host)) return 0;
      http_reply_error(ex, 403, "permission_error",
                       "admin routes are disabled: no admin key is "
                       "configured and the server is not bound to loopback",
                       NULL, "admin_disabled");
      return -1;
    }
    if (r1d_keyring_check(s->admin_keys, auth, &id)) {
      ex->key_id = id;
      return 0;
    }
    if (r1d_keyring_check(s->api_keys, auth, &id)) {
      ex->key_id = id;
      http_reply_error(ex, 403, "permission_error",
                       "this route needs the admin key; an API key is not "
                       "enough",
                       NULL, "admin_key_required");
      return -1;
    }
    http_reply_error(ex, 401, "authentication_error",
                     auth ? "invalid admin key"
                          : "missing admin key "
                            "(Authorization: Bearer KEY)",
                     NULL, "invalid_api_key");
    return -1;
  }
  if (!s->api_keys) return 0;
  if (r1d_keyring_check(s->api_keys, auth, &id) ||
      r1d_keyring_check(s->admin_keys, auth, &id)) {
    ex->key_id = id;
    return 0;
  }
  http_reply_error(ex, 401, "authentication_error",
                   auth ? "Incorrect API key provided."
                        : "Missing API key: send Authorization: Bearer KEY.",
                   NULL, "invalid_api_key");
  return -1;
}

void r1d_server_handle(void *app, http_exchange *ex) {
  r1d_server *s = app;
  const route *match = NULL;
  int path_known = 0;
  for (int i = 0; i < N_ROUTES; i++)
    if (path_matches(routes[i].path, ex->path)) {
      path_known = 1;
      ex->route = routes[i].path;
      if (!strcmp(routes[i].method, ex->method)) match = &routes[i];
    }
  if (!path_known && !strncmp(ex->path, "/admin/", 7)) {
    /* unknown admin paths still need the admin key: no probing */
    if (check_access(s, ex, ACCESS_ADMIN)) return;
  }
  if (!match) {
    char msg[300];
    if (path_known) {
      snprintf(msg, sizeof msg, "method %s is not allowed on %s", ex->method,
               ex->path);
      http_reply_error(ex, 405, "invalid_request_error", msg, NULL,
                       "method_not_allowed");
    } else {
      snprintf(msg, sizeof msg, "no route %s %.200s", ex->method, ex->path);
      http_reply_error(ex, 404, "invalid_request_error", msg, NULL,
                       "not_found");
    }
    return;
  }
  if (check_access(s, ex, match->access)) return;
  if (s->draining && match->access == ACCESS_API) {
    http_reply_error(ex, 503, "server_error", "the server is shutting down",
                     NULL, "shutting_down");
    return;
  }
  match->fn(s, ex);
}

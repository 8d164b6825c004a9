/* storage_io.c - the server's side of storage: opens the data dir's
 * database, runs the group-commit writer, and brings each commit's outcome
 * back to the loop thread, where whoever waited on it (an answer's last
 * bytes, a feedback reply) goes on. The writer thread only appends to
 * `stored_list` and wakes the loop; every HTTP object is touched on the
 * loop alone (server.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void handle_stored(r1d_server *s) {
  pthread_mutex_lock(&s->stored_mu);
  store_req *list = s->stored_list;
  s->stored_list = NULL;
  pthread_mutex_unlock(&s->stored_mu);
  /* the list is LIFO: reverse it so answers go out in commit order */
  store_req *fifo = NULL;
  while (list) {
    store_req *next = list->next_done;
    list->next_done = fifo;
    fifo = list;
    list = next;
  }
  while (fifo) {
    store_req *next = fifo->next_done;
    fifo->on_done(s, fifo);
    fifo = next;
  }
}

static void on_stored(uv_async_t *a) {
  r1d_server *s = a->data;
  handle_stored(s);
  http_server_kick(s->http);
}

/* Writer thread: hand the request back to the loop. */
static void store_done(r1d_write_op *op) {
  store_req *r = op->user;
  r1d_server *s = r->srv;
  pthread_mutex_lock(&s->stored_mu);
  r->next_done = s->stored_list;
  s->stored_list = r;
  int wake = s->stored_open;
  pthread_mutex_unlock(&s->stored_mu);
  if (wake) uv_async_send(&s->stored);
}

int r1d_server_store(r1d_server *s, store_req *r) {
  if (!s->writer) return R1D_ESTATE;
  r->srv = s;
  r->op.done = store_done;
  r->op.user = r;
  return r1d_writer_submit(s->writer, &r->op);
}

static int read_last_key(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_txn_last_key(t, R1D_T_INTERACTIONS, arg, err);
}

int r1d_server_storage_open(r1d_server *s, r1d_error *err) {
  uv_async_init(&s->loop, &s->stored, on_stored);
  s->stored.data = s;
  s->stored_open = s->stored_inited = 1;
  if (!s->cfg.data_dir || !*s->cfg.data_dir) return 0;
  r1d_db_options o = {.map_size = (size_t)s->cfg.db_map_size,
                      .map_max = (size_t)s->cfg.db_map_max};
  int rc = r1d_db_open(s->cfg.data_dir, &o, &s->db, err);
  if (rc) return rc;
  /* response ids must stay above every key already stored, even when the
   * clock went back across a restart */
  if ((rc = r1d_db_read(s->db, read_last_key, &s->ids.last, err))) return rc;
  r1d_writer_options wo = {
      .retention = {.max_age_s = (double)s->cfg.retain_days * 86400.0,
                    .max_bytes = (size_t)s->cfg.retain_bytes}};
  return r1d_writer_start(s->db, &wo, &s->writer, err);
}

void r1d_server_storage_stop(r1d_server *s) {
  if (!s->stored_inited) return;
  if (s->writer) {
    r1d_writer_stop(s->writer); /* commits what is queued; dones listed */
    s->writer = NULL;
  }
  pthread_mutex_lock(&s->stored_mu);
  s->stored_open = 0;
  pthread_mutex_unlock(&s->stored_mu);
  handle_stored(s);
  if (!uv_is_closing((uv_handle_t *)&s->stored))
    uv_close((uv_handle_t *)&s->stored, NULL);
}

void r1d_server_storage_free(r1d_server *s) {
  r1d_db_close(s->db);
  s->db = NULL;
  pthread_mutex_destroy(&s->stored_mu);
}

json_t *r1d_server_storage_json(r1d_server *s) {
  if (!s->db) return json_pack("{s:b}", "enabled", 0);
  r1d_db_stats st;
  r1d_error err = {0};
  if (r1d_db_stat(s->db, &st, &err))
    return json_pack("{s:b, s:b, s:s}", "enabled", 1, "ok", 0, "error",
                     err.msg);
  char msg[512];
  int failing = r1d_db_failing(s->db, msg, sizeof msg);
  r1d_writer_stats ws = {0};
  if (s->writer) r1d_writer_stats_get(s->writer, &ws);
  json_t *counts = json_object();
  for (int i = 0; i < R1D_T_COUNT; i++)
    json_object_set_new(counts, r1d_table_name((r1d_table)i),
                        json_integer((json_int_t)st.entries[i]));
  json_t *o = json_pack(
      "{s:b, s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, "
      "s:I, s:f}",
      "enabled", 1, "ok", !failing, "dir", r1d_db_dir(s->db), "map_size",
      (json_int_t)st.map_size, "map_max", (json_int_t)st.map_max, "map_used",
      (json_int_t)st.file_bytes, "data_bytes", (json_int_t)st.data_bytes,
      "schema_version", (json_int_t)st.schema_version, "entries", counts,
      "logged", (json_int_t)s->logged, "log_failed", (json_int_t)s->log_failed,
      "write_errors", (json_int_t)st.write_errors, "commits",
      (json_int_t)ws.batches, "pruned", (json_int_t)ws.pruned, "commit_seconds",
      ws.commit_seconds);
  if (failing) json_object_set_new(o, "error", json_string(msg));
  return o;
}

/* server.h - the state of one `r1d serve` process, shared by its modules
 * (no globals: everything hangs off r1d_server). Ownership by thread:
 *   - the libuv loop thread owns everything here except the job queue;
 *   - the engine thread calls gen_job's callback, which only appends to a
 *     job's event list and to `ready` under `ready_mu`, then wakes the loop
 *     with uv_async_send (which coalesces: the loop drains the whole list). */
#ifndef R1D_SERVER_SERVER_H
#define R1D_SERVER_SERVER_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "../common/rng.h"
#include "../config/serve_config.h"
#include "../engine/model/model.h"
#include "../engine/serve/engine.h"
#include "../engine/serve/versions.h"
#include "../engine/text/template.h"
#include "../engine/text/tokenizer.h"
#include "../storage/db.h"
#include "../storage/writer.h"
#include "auth.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

typedef struct gen_job gen_job;
typedef struct store_req store_req;

typedef struct r1d_server {
  r1d_serve_config cfg;
  int argc;
  char **argv; /* kept for SIGHUP reloads */
  uv_loop_t loop;
  http_server *http;
  r1d_log log;
  r1d_metrics metrics;

  /* the model and its text handling */
  r1d_backend be, cpu_be;
  int be_is_cuda;
  r1d_tokenizer *tok;
  r1d_template *tpl; /* NULL: the folder has no chat template */
  /* the weight versions, each with its engine (engine/serve/versions.h):
   * a request pins the live one for its whole life */
  r1d_versions *versions;
  r1d_config model_cfg;         /* shapes and generation defaults: every
                                  version has the same (versions.h) */
  r1d_engine_config engine_cfg; /* the resolved limits, shared likewise */
  int swap_busy;                /* a swap or rollback is running */
  struct r1d_trainer *trainer;  /* training jobs (trainer.h) */
  char model_id[256];
  char backend_desc[256];
  int64_t created; /* Unix time the model was loaded */
  int max_model_len;
  int32_t think_start_id, think_end_id; /* -1 when not single tokens */

  /* auth: swapped whole on SIGHUP (loop thread only, so no refcounts) */
  r1d_keyring *api_keys, *admin_keys;

  /* engine -> loop wake-ups */
  uv_async_t wake;
  pthread_mutex_t ready_mu;
  gen_job *ready; /* jobs with new events (LIFO; order does not matter) */

  /* storage (storage_io.c): NULL db when the data dir is off. The writer
   * thread commits; its dones come back to the loop through `stored`. */
  r1d_db *db;
  r1d_writer *writer;
  r1d_keygen ids; /* response ids = interaction keys (loop thread) */
  uv_async_t stored;
  pthread_mutex_t stored_mu;
  store_req *stored_list; /* committed (or failed), not yet handled */
  int stored_open;        /* the async handle may be signalled */
  int stored_inited;      /* the async handle exists */
  uint64_t logged, log_failed;
  int logged_since_failure; /* log one line per failing streak */

  /* lifecycle */
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_timer_t tick; /* keep-alive comments, timeouts, watchdog, drain */
  uint64_t watchdog_usec;
  double last_watchdog;
  int ready_state; /* 1 once serving */
  int draining;    /* SIGTERM seen */
  double drain_deadline;
  int drain_cancelled; /* the deadline passed: what was left is cancelled */
  int exit_status;
  r1d_rng rng; /* seeds for requests without one, ids */
  double t_started;
} r1d_server;

double r1d_server_now(void); /* monotonic seconds */

/* Routes (routes_openai.c, routes_ops.c): dispatch by path and method. */
void r1d_server_handle(void *app, http_exchange *ex);
void r1d_routes_openai_chat(r1d_server *s, http_exchange *ex);
void r1d_routes_openai_completions(r1d_server *s, http_exchange *ex);
void r1d_routes_openai_models(r1d_server *s, http_exchange *ex);
void r1d_routes_tokenize(r1d_server *s, http_exchange *ex);
void r1d_routes_detokenize(r1d_server *s, http_exchange *ex);

/* Storage on the loop (storage_io.c). A store_req is one write the loop
 * waits for: `apply` runs on the writer thread inside the batch; `on_done`
 * runs back on the loop thread after the commit with op.status set, and
 * owns (frees) the request. */
typedef void (*store_done_fn)(r1d_server *s, store_req *r);
struct store_req {
  r1d_write_op op; /* op.apply, op.arg: the caller's; op.done: ours */
  r1d_server *srv;
  store_done_fn on_done;
  store_req *next_done;
};
/* Opens the data dir's database and starts the writer (no data dir: no
 * storage). Needs the loop; stored_mu is initialised by the caller. */
int r1d_server_storage_open(r1d_server *s, r1d_error *err);
/* Flushes the writer, handles the last dones, closes the handle (in
 * shut_down, after the HTTP server stopped). The db stays open. */
void r1d_server_storage_stop(r1d_server *s);
void r1d_server_storage_free(r1d_server *s);
/* Queues r; R1D_ESTATE when storage is off or stopping (on_done not
 * called). */
int r1d_server_store(r1d_server *s, store_req *r);
void r1d_routes_feedback(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_tasks(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_task(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_interactions(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_interaction(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_checkpoints(r1d_server *s, http_exchange *ex);
/* routes_weights.c: hot swap and rollback, the loaded versions */
void r1d_routes_admin_weights(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_swap(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_rollback(r1d_server *s, http_exchange *ex);
/* routes_jobs.c: the online trainer's jobs and schedule (trainer.h) */
void r1d_routes_admin_jobs(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_job(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_job_cancel(r1d_server *s, http_exchange *ex);
void r1d_routes_admin_trainer(r1d_server *s, http_exchange *ex);
int r1d_trainer_render_metrics(r1d_server *s, r1d_buf *out);
void r1d_routes_admin_checkpoint(r1d_server *s, http_exchange *ex);
/* Storage health and counters for /health, /metrics, /admin/v1/server. */
json_t *r1d_server_storage_json(r1d_server *s);

/* Called on the loop thread when the async handle fires: hands every job's
 * new events to its response builder (gen_job.c). */
void r1d_server_drain_jobs(r1d_server *s);
/* Once a tick: keep-alive comments and timeouts of live jobs. */
void r1d_server_tick_jobs(r1d_server *s, double now);
/* Cancels every live job (drain deadline passed). */
void r1d_server_cancel_jobs(r1d_server *s, const char *why);

#endif

/* cmd_serve.c - `r1d serve`: loads the model, starts the engine and the
 * HTTP server on a libuv loop, and runs the process lifecycle systemd
 * expects (see server.h for threads):
 *   - READY=1 once listening; WATCHDOG=1 every half interval when asked;
 *   - SIGTERM/SIGINT: STOPPING=1, stop accepting, let requests in flight
 *     finish up to --drain-timeout, cancel what is left, exit 0;
 *   - SIGHUP: re-read the config file's log level and the key files (a
 *     failed reload keeps the old keys and says why). */
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/file.h"
#include "../kernels/cpu/cpu_backend.h"
#include "../kernels/cuda/cuda_backend.h"
#include "cli.h"
#include "sdnotify.h"
#include "server.h"
#include "trainer.h"

const char cmd_serve_help[] =
    "usage: r1d serve --model DIR [OPTIONS]\n"
    "\n"
    "Serves the model over an OpenAI-compatible HTTP API (/v1/chat/"
    "completions,\n"
    "/v1/completions, /v1/models, /tokenize, /detokenize, /health, /ready,\n"
    "/metrics, /version, /v1/feedback; /admin/v1/server, /admin/v1/tasks and\n"
    "/admin/v1/interactions and /admin/v1/checkpoints with the admin key). "
    "Every answer is stored in\n"
    "the data dir (LMDB) before its last byte is sent. Logs are JSON\n"
    "lines on stderr. Every option may also be set in the --config file "
    "(same\n"
    "name with '_', e.g. \"max_num_seqs\": 32); flags override the file.\n"
    "API keys may also come from R1D_API_KEYS and admin keys from\n"
    "R1D_ADMIN_KEYS (comma-separated); no other environment variable is "
    "read.\n"
    "\n";

double r1d_server_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- keys ---- */

static int load_ring(const char *file, const char *env, r1d_keyring **out,
                     r1d_error *err) {
  const char *list = getenv(env);
  if (list && !*list) list = NULL;
  *out = NULL;
  if (!file && !list) return 0;
  return r1d_keyring_load(file, list, out, err);
}

static int load_keys(r1d_server *s, r1d_error *err) {
  r1d_keyring *api = NULL, *admin = NULL;
  int rc = load_ring(s->cfg.api_key_file, "R1D_API_KEYS", &api, err);
  if (rc == 0)
    rc = load_ring(s->cfg.admin_key_file, "R1D_ADMIN_KEYS", &admin, err);
  if (rc) {
    r1d_keyring_free(api);
    return rc;
  }
  /* every check runs on this (the loop) thread: swapping is enough */
  r1d_keyring_free(s->api_keys);
  r1d_keyring_free(s->admin_keys);
  s->api_keys = api;
  s->admin_keys = admin;
  return 0;
}

/* ---- access log ---- */

static void on_exchange_done(void *app, http_exchange *ex) {
  r1d_server *s = app;
  double latency = r1d_server_now() - ex->t_start;
  r1d_metrics_count_request(&s->metrics, ex->route, ex->status);
  r1d_histogram_observe(&s->metrics.request_duration, latency);
  json_t *o =
      json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:s?}", "request_id",
                ex->request_id[0] ? ex->request_id : "-", "method", ex->method,
                "route", ex->path, "status", ex->status, "prompt_tokens",
                ex->prompt_tokens, "completion_tokens", ex->completion_tokens,
                "latency_ms", latency * 1e3, "key_id", ex->key_id);
  if (o && ex->ttft >= 0)
    json_object_set_new(o, "ttft_ms", json_real(ex->ttft * 1e3));
  r1d_log_json(&s->log, ex->status >= 500 ? R1D_LOG_WARN : R1D_LOG_INFO,
               "request", o);
}

/* ---- lifecycle ---- */

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void shut_down(r1d_server *s) {
  http_server_stop(s->http); /* closes every exchange: their jobs cancel */
  s->http = NULL;
  /* the cancelled requests' last events still wake the loop: let them land
   * while the async handle is open */
  /* a running job stops at its step boundary (its checkpoint written) */
  r1d_trainer_destroy(s->trainer);
  s->trainer = NULL;
  if (s->versions) r1d_versions_wait_idle(s->versions);
  /* records of the answers cut just now, and any still queued, commit
   * before the process goes */
  r1d_server_storage_stop(s);
  close_handle((uv_handle_t *)&s->sig_term);
  close_handle((uv_handle_t *)&s->sig_int);
  close_handle((uv_handle_t *)&s->sig_hup);
  close_handle((uv_handle_t *)&s->tick);
  close_handle((uv_handle_t *)&s->wake);
}

static void on_wake(uv_async_t *a) {
  r1d_server *s = a->data;
  r1d_server_drain_jobs(s);
  http_server_kick(s->http);
}

static void on_tick(uv_timer_t *t) {
  r1d_server *s = t->data;
  double now = r1d_server_now();
  if (s->watchdog_usec &&
      now - s->last_watchdog >= (double)s->watchdog_usec * 0.5e-6) {
    r1d_sd_notify("WATCHDOG=1");
    s->last_watchdog = now;
  }
  r1d_server_tick_jobs(s, now);
  /* retired weight versions nobody holds: their engines are idle, so the
   * join is quick */
  r1d_versions_reap(s->versions);
  if (s->trainer) r1d_trainer_tick(s->trainer, now);
  if (s->draining) {
    if (http_server_active(s->http) == 0) {
      r1d_log_msg(&s->log, R1D_LOG_INFO, "stopped", "drained; exiting");
      shut_down(s);
      return;
    }
    if (now > s->drain_deadline) {
      if (s->drain_cancelled) { /* cancelled streams had their grace */
        shut_down(s);
        return;
      }
      r1d_log_msg(&s->log, R1D_LOG_WARN, "drain_timeout",
                  "%d requests still running after %g s; cancelling them",
                  http_server_active(s->http), s->cfg.drain_timeout);
      r1d_server_cancel_jobs(s, "the server is shutting down");
      s->drain_cancelled = 1;
      s->drain_deadline = now + 2.0;
    }
  }
  http_server_kick(s->http);
}

static void on_signal(uv_signal_t *h, int signum) {
  r1d_server *s = h->data;
  if (signum == SIGHUP) {
    r1d_error err = {0};
    if (r1d_serve_config_reload(&s->cfg, s->argc, s->argv, &err) ||
        load_keys(s, &err)) {
      r1d_log_msg(&s->log, R1D_LOG_ERROR, "reload_failed",
                  "reload failed, keeping the old settings: %s", err.msg);
      return;
    }
    int lvl = r1d_log_level_parse(s->cfg.log_level);
    if (lvl >= 0) s->log.level = (r1d_log_level)lvl;
    r1d_log_json(&s->log, R1D_LOG_INFO, "reloaded",
                 json_pack("{s:s, s:i, s:i}", "log_level", s->cfg.log_level,
                           "api_keys", (int)r1d_keyring_count(s->api_keys),
                           "admin_keys",
                           (int)r1d_keyring_count(s->admin_keys)));
    return;
  }
  if (s->draining) return;
  s->draining = 1;
  s->drain_deadline = r1d_server_now() + s->cfg.drain_timeout;
  r1d_sd_notify("STOPPING=1");
  r1d_log_json(&s->log, R1D_LOG_INFO, "draining",
               json_pack("{s:s, s:i, s:f}", "signal", strsignal(signum),
                         "in_flight", http_server_active(s->http),
                         "drain_timeout", s->cfg.drain_timeout));
  http_server_quiesce(s->http);
}

static int setup_backend(r1d_server *s, r1d_error *err) {
  int threads = (int)s->cfg.threads;
  r1d_cpu_backend_init(&s->cpu_be, threads);
  const char *want = s->cfg.backend;
  if (strcmp(want, "cpu")) {
    r1d_error cerr = {0};
    if (r1d_cuda_backend_init(&s->be, 0, &cerr) == 0) {
      s->be_is_cuda = 1;
      r1d_cuda_backend_describe(&s->be, s->backend_desc,
                                sizeof s->backend_desc);
      return 0;
    }
    if (!strcmp(want, "cuda"))
      return r1d_fail(err, R1D_EUNSUPPORTED, "serve: --backend cuda: %s",
                      cerr.msg);
    r1d_log_msg(&s->log, R1D_LOG_INFO, "backend",
                "CUDA not available (%s); using the CPU", cerr.msg);
  }
  r1d_cpu_backend_init(&s->be, threads);
  snprintf(s->backend_desc, sizeof s->backend_desc, "cpu");
  return 0;
}

static int load_model(r1d_server *s, r1d_error *err) {
  int rc = r1d_tokenizer_load_dir(s->cfg.model, &s->tok, err);
  if (rc) return rc;
  r1d_model *model = NULL;
  if ((rc = r1d_model_load(s->cfg.model, &s->cpu_be, &model, err))) return rc;
  s->model_cfg = model->cfg;
  r1d_error terr = {0};
  rc = r1d_template_load_dir_as(s->cfg.model, s->cfg.template_name, &s->tpl,
                                &terr);
  if (rc) {
    if (s->cfg.template_name) {
      r1d_model_free(model);
      return r1d_fail(err, rc, "%s", terr.msg);
    }
    r1d_log_msg(&s->log, R1D_LOG_WARN, "no_chat_template",
                "chat completions are off: %s", terr.msg);
    s->tpl = NULL;
  }
  s->think_start_id = r1d_tokenizer_token_to_id(s->tok, "<think>");
  s->think_end_id = r1d_tokenizer_token_to_id(s->tok, "</think>");
  if (s->cfg.served_model_name) {
    snprintf(s->model_id, sizeof s->model_id, "%s", s->cfg.served_model_name);
  } else {
    char path[4096];
    snprintf(path, sizeof path, "%s", s->cfg.model);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
      path[--n] = '\0';
    snprintf(s->model_id, sizeof s->model_id, "%s", basename(path));
    for (char *p = s->model_id; *p; p++) /* keep it a safe label */
      if ((unsigned char)*p < 0x21 || *p == '"' || *p == '\\') *p = '_';
  }
  s->created = (int64_t)time(NULL);

  r1d_engine_config ec;
  r1d_engine_config_default(&ec);
  ec.max_model_len = (int)s->cfg.max_model_len;
  ec.n_blocks = (int)s->cfg.kv_blocks;
  ec.kv_memory = (size_t)s->cfg.kv_memory;
  ec.max_num_seqs = (int)s->cfg.max_num_seqs;
  ec.max_batch_tokens = (int)s->cfg.max_batch_tokens;
  ec.max_waiting = (int)s->cfg.max_queued;
  ec.prefix_cache = s->cfg.prefix_cache;
  if (ec.max_batch_tokens < ec.max_num_seqs)
    ec.max_batch_tokens = ec.max_num_seqs; /* every decode fits one step */
  if ((rc = r1d_versions_create(model, s->cfg.model, &s->cpu_be, &s->be, s->tok,
                                &ec, &s->versions, err)))
    return rc;
  s->engine_cfg = *r1d_versions_engine_config(s->versions);
  s->max_model_len = s->engine_cfg.max_model_len;
  return 0;
}

static void server_free(r1d_server *s) {
  r1d_versions_destroy(s->versions);
  r1d_template_free(s->tpl);
  r1d_tokenizer_free(s->tok);
  if (s->be_is_cuda)
    r1d_cuda_backend_destroy(&s->be);
  else if (s->be.ctx)
    r1d_cpu_backend_destroy(&s->be);
  r1d_cpu_backend_destroy(&s->cpu_be);
  r1d_keyring_free(s->api_keys);
  r1d_keyring_free(s->admin_keys);
  r1d_server_storage_free(s);
  r1d_serve_config_free(&s->cfg);
  pthread_mutex_destroy(&s->ready_mu);
  free(s);
}

int cmd_serve(int argc, char **argv) {
  r1d_server *s = calloc(1, sizeof *s);
  if (!s) return cli_usage_error("out of memory");
  s->argc = argc;
  s->argv = argv;
  s->log.level = R1D_LOG_INFO;
  s->log.out = stderr;
  s->t_started = r1d_server_now();
  pthread_mutex_init(&s->ready_mu, NULL);
  pthread_mutex_init(&s->stored_mu, NULL);
  r1d_metrics_init(&s->metrics);
  r1d_rng_seed(&s->rng, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
                            (uint64_t)(s->t_started * 1e9));
  r1d_error err = {0};
  int status = CLI_EXIT_OK;
  int rc = r1d_serve_config_load(&s->cfg, argc, argv, &err);
  if (rc == 1) {
    fputs(cmd_serve_help, stdout);
    r1d_serve_config_print_help(stdout);
    server_free(s);
    return CLI_EXIT_OK;
  }
  if (rc) {
    status = cli_report(&err);
    server_free(s);
    return status;
  }
  s->log.level = (r1d_log_level)r1d_log_level_parse(s->cfg.log_level);
  if (load_keys(s, &err) ||
      (s->cfg.data_dir && r1d_mkdir_p(s->cfg.data_dir, &err)) ||
      setup_backend(s, &err) || load_model(s, &err)) {
    status = cli_report(&err);
    server_free(s);
    return status;
  }
  signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error, not a kill */
  uv_loop_init(&s->loop);
  uv_async_init(&s->loop, &s->wake, on_wake);
  uv_timer_init(&s->loop, &s->tick);
  uv_signal_init(&s->loop, &s->sig_term);
  uv_signal_init(&s->loop, &s->sig_int);
  uv_signal_init(&s->loop, &s->sig_hup);
  s->wake.data = s->tick.data = s->sig_term.data = s->sig_int.data =
      s->sig_hup.data = s;
  http_limits lim = {.max_body = (size_t)s->cfg.max_body,
                     .idle_timeout = 120,
                     .max_connections = 4096};
  /* storage before listening: no request may arrive without it */
  if (r1d_server_storage_open(s, &err) ||
      r1d_trainer_create(s, &s->trainer, &err) ||
      http_server_start(&s->loop, s->cfg.host, (int)s->cfg.port, &lim,
                        s->cfg.cors_origins, r1d_server_handle,
                        on_exchange_done, s, &s->http, &err)) {
    status = cli_report(&err);
    shut_down(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    server_free(s);
    return status;
  }
  uv_signal_start(&s->sig_term, on_signal, SIGTERM);
  uv_signal_start(&s->sig_int, on_signal, SIGINT);
  uv_signal_start(&s->sig_hup, on_signal, SIGHUP);
  uv_timer_start(&s->tick, on_tick, 100, 100);
  if (r1d_sd_watchdog_usec(&s->watchdog_usec) == 0) s->watchdog_usec = 0;
  s->ready_state = 1;
  r1d_log_json(&s->log, R1D_LOG_INFO, "listening",
               json_pack("{s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:b, s:b}",
                         "host", s->cfg.host, "port", http_server_port(s->http),
                         "model", s->model_id, "backend",
                         s->be_is_cuda ? "cuda" : "cpu", "version", R1D_VERSION,
                         "max_model_len", s->max_model_len, "kv_blocks",
                         s->engine_cfg.n_blocks, "auth", s->api_keys != NULL,
                         "admin", s->admin_keys != NULL));
  if (s->db)
    r1d_log_json(&s->log, R1D_LOG_INFO, "storage",
                 json_pack("{s:s, s:b, s:b}", "dir", r1d_db_dir(s->db),
                           "log_interactions", s->cfg.log_interactions,
                           "log_logprobs", s->cfg.log_logprobs));
  r1d_sd_notify("READY=1");
  uv_run(&s->loop, UV_RUN_DEFAULT);
  r1d_server_drain_jobs(s); /* frees jobs queued after the last wake-up */
  uv_loop_close(&s->loop);
  status = s->exit_status;
  server_free(s);
  return status;
}

/* routes_jobs.c - the online trainer's admin routes (design/API.md):
 *   POST /admin/v1/jobs               {"type": "grpo"|"sft"|"eval", "config": {…},
 *                                      "swap": "auto"|"never",
 *                                      "min_improvement": x}
 *   GET  /admin/v1/jobs               every job, newest first
 *   GET  /admin/v1/jobs/{id}          state, progress, live metrics, eval
 *                                     before/after, the decision
 *   POST /admin/v1/jobs/{id}/cancel   stop at the next step boundary
 *   GET  /admin/v1/trainer            the schedule
 *   PUT  /admin/v1/trainer            change it
 * The work is server/trainer.c's; this file is the HTTP side of it. */
#include <stdio.h>
#include <string.h>

#include "json_api.h"
#include "server.h"
#include "trainer.h"

/* 400 with `param` = the field the message starts with ("config.beta must
 * be ..." -> "config.beta"). */
static void reply_invalid(http_exchange *ex, const r1d_error *err) {
  char param[96] = {0};
  size_t n = strcspn(err->msg, " :");
  if (n && n < sizeof param) memcpy(param, err->msg, n);
  http_reply_error(ex, 400, "invalid_request_error", err->msg,
                   param[0] ? param : NULL, "invalid_value");
}

/* The {id} of /admin/v1/jobs/{id}[/cancel], copied into id. */
static int job_id(http_exchange *ex, char *id, size_t cap) {
  const char *p = ex->path + strlen("/admin/v1/jobs/");
  size_t n = strcspn(p, "/");
  if (n == 0 || n >= cap) return -1;
  memcpy(id, p, n);
  id[n] = 0;
  return 0;
}

void r1d_routes_admin_jobs(r1d_server *s, http_exchange *ex) {
  if (!strcmp(ex->method, "GET")) {
    http_reply_json(ex, 200,
                    json_pack("{s:s, s:o}", "object", "list", "data",
                              r1d_trainer_jobs(s->trainer)));
    return;
  }
  api_error e = {0};
  json_t *body = NULL;
  if (api_parse_object(ex->body.p, ex->body.n, &body, &e)) {
    api_reply(ex, &e);
    return;
  }
  json_t *job = NULL;
  r1d_error err = {0};
  int rc = r1d_trainer_submit(s->trainer, body, &job, &err);
  json_decref(body);
  if (rc == R1D_ESTATE)
    http_reply_error(ex, 400, "invalid_request_error", err.msg, NULL,
                     "storage_disabled");
  else if (rc == R1D_EINVAL)
    reply_invalid(ex, &err);
  else if (rc)
    http_reply_error(ex, 500, "server_error", err.msg, NULL, NULL);
  else
    http_reply_json(ex, 200, job);
}

void r1d_routes_admin_job(r1d_server *s, http_exchange *ex) {
  char id[64];
  json_t *job = NULL;
  if (job_id(ex, id, sizeof id) == 0) job = r1d_trainer_job(s->trainer, id);
  if (!job) {
    http_reply_error(ex, 404, "invalid_request_error", "no such job", NULL,
                     "not_found");
    return;
  }
  http_reply_json(ex, 200, job);
}

void r1d_routes_admin_job_cancel(r1d_server *s, http_exchange *ex) {
  char id[64];
  r1d_error err = {0};
  int rc = job_id(ex, id, sizeof id)
               ? r1d_fail(&err, R1D_ENOTFOUND, "no such job")
               : r1d_trainer_cancel(s->trainer, id, &err);
  if (rc == R1D_ENOTFOUND)
    http_reply_error(ex, 404, "invalid_request_error", err.msg, NULL,
                     "not_found");
  else if (rc)
    http_reply_error(ex, 409, "invalid_request_error", err.msg, NULL,
                     "job_finished");
  else
    http_reply_json(ex, 200, r1d_trainer_job(s->trainer, id));
}

void r1d_routes_admin_trainer(r1d_server *s, http_exchange *ex) {
  if (!strcmp(ex->method, "PUT")) {
    api_error e = {0};
    json_t *body = NULL;
    if (api_parse_object(ex->body.p, ex->body.n, &body, &e)) {
      api_reply(ex, &e);
      return;
    }
    r1d_error err = {0};
    int rc = r1d_trainer_schedule_set(s->trainer, body, &err);
    json_decref(body);
    if (rc) {
      reply_invalid(ex, &err);
      return;
    }
  }
  http_reply_json(ex, 200, r1d_trainer_schedule(s->trainer));
}

int r1d_trainer_render_metrics(r1d_server *s, r1d_buf *out) {
  if (!s->trainer) return 0;
  r1d_trainer_metrics m;
  r1d_trainer_metrics_get(s->trainer, &m);
  char text[2048];
  int n = snprintf(
      text, sizeof text,
      "# HELP r1d_trainer_step Step of the running (or last) training job\n"
      "# TYPE r1d_trainer_step gauge\nr1d_trainer_step %ld\n"
      "# HELP r1d_trainer_reward_mean Mean reward of its last step\n"
      "# TYPE r1d_trainer_reward_mean gauge\nr1d_trainer_reward_mean %.9g\n"
      "# HELP r1d_trainer_eval_accuracy The last held-out pass@1 measured\n"
      "# TYPE r1d_trainer_eval_accuracy gauge\n"
      "r1d_trainer_eval_accuracy %.9g\n"
      "# HELP r1d_trainer_jobs Training jobs by state\n"
      "# TYPE r1d_trainer_jobs gauge\n"
      "r1d_trainer_jobs{state=\"running\"} %d\n"
      "r1d_trainer_jobs{state=\"queued\"} %d\n"
      "# HELP r1d_trainer_jobs_total Training jobs ended, by outcome\n"
      "# TYPE r1d_trainer_jobs_total counter\n"
      "r1d_trainer_jobs_total{outcome=\"done\"} %ld\n"
      "r1d_trainer_jobs_total{outcome=\"failed\"} %ld\n"
      "# HELP r1d_trainer_swaps_total Candidates the trainer made live\n"
      "# TYPE r1d_trainer_swaps_total counter\nr1d_trainer_swaps_total %ld\n",
      m.step, m.reward_mean, m.eval_accuracy, m.running, m.queued, m.jobs_done,
      m.jobs_failed, m.swaps);
  if (n < 0 || (size_t)n >= sizeof text) return -1;
  return r1d_buf_append(out, text, (size_t)n);
}

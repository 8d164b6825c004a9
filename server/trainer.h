/* trainer.h - the online trainer of `r1d serve`: training jobs run on a
 * thread of their own while the server keeps serving.
 *
 * A "grpo" job trains a candidate from the LIVE weights on the data dir's
 * tasks (split "train"), through rl/grpo_run.h (its rollouts use an engine
 * of their own at background priority), evaluating on the held-out split
 * before and after. The candidate goes live (a hot swap, versions.h) only
 * when its held-out pass@1 beats the live weights' by more than the job's
 * min_improvement and it passes the sanity checks: a finite loss, a format
 * rate not below min_format_ratio (default 0.5) of the live one, a mean
 * completion length not below min_length_ratio (0.25) of the live one. An
 * "sft" job fine-tunes the live weights on a JSONL file of the server's
 * disk (TRL's formats, rl/sft.h) and goes through the same evaluation and
 * gate. Otherwise it stays a candidate ("rejected" in the
 * checkpoints registry, with its scores). An "eval" job only evaluates the
 * live weights. One job runs at a time; the others queue.
 *
 * The schedule (GET/PUT /admin/v1/trainer) starts a grpo job by itself
 * every interval_s seconds once min_new_tasks tasks have been added since
 * the last scheduled one.
 *
 * Faults (a NaN, out of memory, a checker that cannot run) fail that job
 * with its reason; serving goes on. Jobs live in memory: a restart forgets
 * their list, not their checkpoints (the registry keeps those). */
#ifndef R1D_SERVER_TRAINER_H
#define R1D_SERVER_TRAINER_H

#include <jansson.h>

#include "../common/status.h"

typedef struct r1d_server r1d_server;
typedef struct r1d_trainer r1d_trainer;

/* Starts the trainer's thread. */
int r1d_trainer_create(r1d_server *s, r1d_trainer **out, r1d_error *err);
/* Cancels the running job (it stops at its next step boundary, saving) and
 * every queued one, joins the thread. */
void r1d_trainer_destroy(r1d_trainer *t);

/* Validates a POST /admin/v1/jobs body {"type": "grpo"|"sft"|"eval", "config":
 * {...}, "swap": "auto"|"never", "min_improvement": x} and queues the job.
 * *job (a new reference) is its JSON. R1D_EINVAL with err->msg starting
 * with the field's name ("config.beta must be ..."); R1D_ESTATE when the
 * server has no data dir (jobs read their tasks from it). */
int r1d_trainer_submit(r1d_trainer *t, const json_t *body, json_t **job,
                       r1d_error *err);
/* The job's JSON (a new reference) or NULL when there is none. */
json_t *r1d_trainer_job(r1d_trainer *t, const char *id);
/* Every job, newest first (a new reference). */
json_t *r1d_trainer_jobs(r1d_trainer *t);
/* Asks job id to stop: a queued one is cancelled at once, a running one at
 * its next step boundary. R1D_ENOTFOUND, or R1D_ESTATE when it ended. */
int r1d_trainer_cancel(r1d_trainer *t, const char *id, r1d_error *err);

/* The schedule as JSON, and a change of it (PUT: the fields given). */
json_t *r1d_trainer_schedule(r1d_trainer *t);
int r1d_trainer_schedule_set(r1d_trainer *t, const json_t *body,
                             r1d_error *err);
/* Called from the loop's timer: starts a scheduled job when it is due. */
void r1d_trainer_tick(r1d_trainer *t, double now);

/* For /metrics. */
typedef struct r1d_trainer_metrics {
  long step;            /* of the running job, or the last one */
  double reward_mean;   /* its last training step's */
  double eval_accuracy; /* the last held-out pass@1 measured */
  int running, queued;
  long jobs_done, jobs_failed, swaps;
} r1d_trainer_metrics;
void r1d_trainer_metrics_get(r1d_trainer *t, r1d_trainer_metrics *m);

#endif

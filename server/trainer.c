/* trainer.c - training jobs inside `r1d serve` (trainer.h): a queue, one
 * worker thread, the gate that decides whether a candidate goes live, and
 * the schedule. The worker only touches the server through thread-safe
 * pieces: the weight versions (versions.h), the database (LMDB allows
 * readers and one writer from any thread) and the read-only tokenizer and
 * template. Job state is shared with the loop under t->mu. */
#include "trainer.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/file.h"
#include "../rl/align.h"
#include "../rl/grpo_run.h"
#include "../rl/sft.h"
#include "../storage/checkpoints.h"
#include "../storage/feedback_pairs.h"
#include "../storage/interactions.h"
#include "../storage/tasks.h"
#include "server.h"

typedef enum job_state {
  JOB_QUEUED,
  JOB_RUNNING,
  JOB_SUCCEEDED,
  JOB_FAILED,
  JOB_CANCELLED,
} job_state;

static const char *const state_names[] = {"queued", "running", "succeeded",
                                          "failed", "cancelled"};

typedef struct job {
  char id[32];
  char type[8]; /* "grpo" | "eval" */
  job_state state;
  volatile int cancel; /* polled by the run between steps */
  int swap_auto;
  double min_improvement;
  double min_format_ratio, min_length_ratio; /* the sanity checks */
  /* align: the reward model's preference is what it gains; on the
   * held-out tasks it only has to keep pass@1 within this of the live */
  double max_regression;
  int scheduled;           /* started by the schedule */
  r1d_grpo_run_config cfg; /* grpo; for sft and eval, the evaluation's */
  r1d_sft_config sft;      /* sft: the run (paths filled in at the start) */
  char sft_data[1024];     /* sft: the JSONL file */
  int sft_max_len;
  /* align: the reward model trained first from /v1/feedback's pairs */
  long rm_steps, min_pairs;
  double rm_lr, w_pref, pref_start;
  json_t *reward_model;              /* its summary, once trained */
  json_t *config;                    /* as given */
  double created, started, finished; /* unix seconds; 0: not yet */
  long step, total_steps;
  int n_train, n_from_chats, n_eval; /* the tasks it read */
  json_t *metrics;                   /* the last training step */
  json_t *eval_before, *eval_after;
  double loss;    /* the last step's */
  json_t *result; /* decision, checkpoint, weight version */
  char error[512];
  struct job *next; /* newest first */
} job;

struct r1d_trainer {
  r1d_server *s;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  int started, stop;
  job *jobs;
  long next_id;
  r1d_trainer_metrics m;
  /* the schedule */
  int enabled;
  double interval_s;
  long min_new_tasks;
  json_t *sched_body; /* the job body scheduled runs submit */
  double last_sched;  /* monotonic */
  double last_check;  /* the last count of the tasks (monotonic) */
  long tasks_at_last; /* tasks stored when the last scheduled job started */
};

static double unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static json_t *time_or_null(double t) {
  return t > 0 ? json_real(t) : json_null();
}

/* Under t->mu. */
static json_t *job_json(const job *j) {
  json_t *o = json_pack(
      "{s:s, s:s, s:s, s:s, s:b, s:O, s:s, s:f, s:f, s:f, s:o, s:o, s:o, "
      "s:{s:I, s:I}}",
      "id", j->id, "object", "job", "type", j->type, "status",
      state_names[j->state], "scheduled", j->scheduled, "config", j->config,
      "swap", j->swap_auto ? "auto" : "never", "min_improvement",
      j->min_improvement, "min_format_ratio", j->min_format_ratio,
      "min_length_ratio", j->min_length_ratio, "created_at",
      time_or_null(j->created), "started_at", time_or_null(j->started),
      "finished_at", time_or_null(j->finished), "progress", "step",
      (json_int_t)j->step, "total_steps", (json_int_t)j->total_steps);
  if (!o) return NULL;
  json_object_set(o, "metrics", j->metrics ? j->metrics : json_null());
  json_object_set_new(o, "eval",
                      json_pack("{s:O, s:O}", "before",
                                j->eval_before ? j->eval_before : json_null(),
                                "after",
                                j->eval_after ? j->eval_after : json_null()));
  json_object_set(o, "result", j->result ? j->result : json_null());
  if (!strcmp(j->type, "align")) {
    json_object_set(o, "reward_model",
                    j->reward_model ? j->reward_model : json_null());
    json_object_set_new(o, "max_regression", json_real(j->max_regression));
  }
  json_object_set_new(o, "tasks",
                      json_pack("{s:i, s:i, s:i}", "train", j->n_train,
                                "from_chats", j->n_from_chats, "eval",
                                j->n_eval));
  json_object_set_new(o, "error",
                      j->error[0] ? json_string(j->error) : json_null());
  return o;
}

static void job_free(job *j) {
  json_decref(j->config);
  json_decref(j->metrics);
  json_decref(j->eval_before);
  json_decref(j->eval_after);
  json_decref(j->result);
  json_decref(j->reward_model);
  free(j);
}

/* ---- the run's hooks (worker thread) ---------------------------------- */

typedef struct hook_ctx {
  r1d_trainer *t;
  job *j;
  int eval_is_after; /* an eval-only run of the candidate (sft jobs) */
} hook_ctx;

static void on_metrics(void *user, const r1d_grpo_metrics *m) {
  hook_ctx *h = user;
  json_t *o;
  if (m->is_eval)
    o = json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:i}", "step",
                  (json_int_t)m->step, "pass1", m->eval_pass1, "pass1_ci95",
                  m->eval_pass1_ci, "gain", m->eval_gain, "gain_ci95",
                  m->eval_gain_ci, "format_rate", m->eval_format,
                  "completion_len", m->eval_len, "tasks", m->eval_tasks, "k",
                  m->eval_k);
  else
    o = json_pack(
        "{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:i, s:f, "
        "s:f, s:f, s:f, s:f}",
        "step", (json_int_t)m->step, "reward", m->reward_mean, "accuracy",
        m->accuracy, "format_rate", m->format_rate, "completion_len",
        m->completion_len, "loss", m->loss, "kl", m->kl, "clip_ratio",
        m->clip_ratio, "lr", m->lr, "grad_norm", m->grad_norm, "groups",
        m->groups, "flat_groups", m->flat_groups, "t_rollout", m->t_rollout,
        "t_ref", m->t_ref, "t_backward", m->t_backward, "t_optim", m->t_optim,
        "t_step", m->t_step);
  if (!m->is_eval && isfinite(m->preference))
    json_object_set_new(o, "preference", json_real(m->preference));
  pthread_mutex_lock(&h->t->mu);
  job *j = h->j;
  if (m->is_eval) {
    json_t **slot =
        m->step == 0 && !h->eval_is_after ? &j->eval_before : &j->eval_after;
    json_decref(*slot);
    *slot = o;
    h->t->m.eval_accuracy = m->eval_pass1;
  } else {
    json_decref(j->metrics);
    j->metrics = o;
    j->step = m->step;
    j->loss = m->loss;
    h->t->m.step = m->step;
    h->t->m.reward_mean = m->reward_mean;
  }
  pthread_mutex_unlock(&h->t->mu);
}

static void on_sft_metrics(void *user, const r1d_sft_metrics *m) {
  hook_ctx *h = user;
  json_t *o =
      json_pack("{s:I, s:f, s:f, s:f, s:I, s:f, s:b}", "step",
                (json_int_t)m->step, "loss", m->loss, "lr", m->lr, "grad_norm",
                m->grad_norm, "tokens", (json_int_t)m->tokens, "tokens_per_s",
                m->tokens_per_s, "is_eval", m->is_eval);
  pthread_mutex_lock(&h->t->mu);
  json_decref(h->j->metrics);
  h->j->metrics = o;
  if (!m->is_eval) {
    h->j->step = m->step;
    h->j->total_steps = m->total_steps;
    h->j->loss = m->loss;
    h->t->m.step = m->step;
  }
  pthread_mutex_unlock(&h->t->mu);
}

/* ---- tasks from the data dir ------------------------------------------ */

typedef struct task_list {
  r1d_grpo_task *v;
  int n, cap;
  const r1d_server *s;
  int rc;
  r1d_error *err;
} task_list;

static int collect_task(void *arg, uint64_t key, const char *text, size_t len) {
  (void)key;
  task_list *l = arg;
  json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
  if (!j) return 0; /* the table holds only parsed tasks: skip, never stop */
  r1d_grpo_task task;
  r1d_error terr = {0};
  int rc = r1d_grpo_task_prepare(j, l->s->tpl, l->s->tok, &task, &terr);
  json_decref(j);
  if (rc == R1D_ENOMEM) return rc;
  if (rc) return 0; /* e.g. a prompt this template cannot render: left out */
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    r1d_grpo_task *v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) {
      r1d_grpo_task_free(&task);
      return R1D_ENOMEM;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = task;
  return 0;
}

typedef struct load_args {
  task_list *train, *eval;
  int from_interactions; /* training tasks found in logged chats */
} load_args;

/* A logged chat whose request carried a "checker" (an r1d extension field
 * of /v1/chat/completions, logged with the request as sent) is a training
 * task too: its messages and that checker, validated by the tasks parser
 * exactly as an imported task would be. */
static int collect_interaction(void *arg, uint64_t key, const char *text,
                               size_t len) {
  load_args *a = arg;
  /* answers may hold U+0000 (storage/interactions.c loads them the same) */
  json_t *rec = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
  json_t *req = json_object_get(rec, "request");
  json_t *checker = json_object_get(req, "checker");
  json_t *msgs = json_object_get(req, "messages");
  int rc = 0;
  if (json_is_object(checker) && json_is_array(msgs)) {
    char id[32];
    snprintf(id, sizeof id, "ix-%016llx", (unsigned long long)key);
    json_t *task = json_pack("{s:s, s:O, s:O, s:s, s:s}", "id", id, "messages",
                             msgs, "checker", checker, "split", "train",
                             "source", "interaction");
    char *line = task ? json_dumps(task, JSON_COMPACT) : NULL;
    r1d_task_batch b = {0};
    r1d_error perr = {0};
    if (line && r1d_tasks_parse(line, strlen(line), &b, &perr) == 0 &&
        b.n == 1 && b.n_errors == 0) {
      int before = a->train->n;
      rc = collect_task(a->train, 0, b.tasks[0].json, strlen(b.tasks[0].json));
      a->from_interactions += a->train->n - before;
    }
    r1d_task_batch_free(&b);
    free(line);
    json_decref(task);
  }
  json_decref(rec);
  return rc;
}

static int load_fn(r1d_txn *t, void *arg, r1d_error *err) {
  load_args *a = arg;
  int rc = r1d_tasks_list(t, "train", NULL, 0, collect_task, a->train, err);
  if (rc == 0)
    rc = r1d_tasks_list(t, "eval", NULL, 0, collect_task, a->eval, err);
  if (rc == 0) rc = r1d_interactions_scan(t, 0, collect_interaction, a, err);
  return rc;
}

static void task_list_free(task_list *l) {
  for (int i = 0; i < l->n; i++)
    r1d_grpo_task_free(&l->v[i]);
  free(l->v);
}

/* ---- the gate and the registry ---------------------------------------- */

typedef struct ckpt_update {
  const char *version, *status;
  json_t *eval;
} ckpt_update;

static int update_fn(r1d_txn *t, void *arg, r1d_error *err) {
  ckpt_update *u = arg;
  return r1d_ckpt_update(t, u->version, u->status, u->eval, err);
}

static double num(const json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The decision on a finished grpo job's candidate at dir (worker thread).
 * Returns the result object. */
static json_t *decide(r1d_trainer *t, job *j, const char *dir) {
  r1d_server *s = t->s;
  pthread_mutex_lock(&t->mu);
  json_t *before = json_incref(j->eval_before);
  json_t *after = json_incref(j->eval_after);
  double loss = j->loss;
  long step = j->step;
  pthread_mutex_unlock(&t->mu);
  const char *decision = "rejected";
  char reason[256] = "";
  double gain = NAN;
  if (!before || !after || num(before, "tasks") <= 0) {
    snprintf(reason, sizeof reason,
             "no held-out tasks (split \"eval\"): nothing to compare with");
  } else {
    double b = num(before, "pass1"), a = num(after, "pass1");
    gain = a - b;
    if (!isfinite(loss))
      snprintf(reason, sizeof reason, "the loss is not finite");
    else if (num(after, "format_rate") <
             j->min_format_ratio * num(before, "format_rate"))
      snprintf(reason, sizeof reason,
               "the format rate collapsed (%.3f -> %.3f)",
               num(before, "format_rate"), num(after, "format_rate"));
    else if (num(after, "completion_len") <
             j->min_length_ratio * num(before, "completion_len"))
      snprintf(reason, sizeof reason,
               "the completion length collapsed (%.1f -> %.1f)",
               num(before, "completion_len"), num(after, "completion_len"));
    else if (!strcmp(j->type, "align") && !(gain >= -j->max_regression))
      snprintf(reason, sizeof reason,
               "held-out pass@1 %.4f -> %.4f drops by more than %g (an align "
               "job may cost at most max_regression)",
               b, a, j->max_regression);
    else if (strcmp(j->type, "align") && !(gain > j->min_improvement))
      snprintf(reason, sizeof reason,
               "held-out pass@1 %.4f -> %.4f does not beat the live weights "
               "by more than %g",
               b, a, j->min_improvement);
    else if (!j->swap_auto)
      decision = "passed", snprintf(reason, sizeof reason, "swap is \"never\"");
    else
      decision = "swapped";
  }
  json_t *res = json_pack("{s:s, s:s, s:s, s:I}", "checkpoint", dir, "decision",
                          decision, "reason", reason, "step", (json_int_t)step);
  json_object_set_new(res, "pass1_gain",
                      isfinite(gain) ? json_real(gain) : json_null());
  if (!strcmp(decision, "swapped")) {
    r1d_swap_result sr;
    r1d_error err = {0};
    if (r1d_versions_swap(s->versions, dir, 0, &sr, &err)) {
      json_object_set_new(res, "decision", json_string("rejected"));
      json_object_set_new(res, "reason", json_string(err.msg));
    } else {
      json_object_set_new(res, "weight_version",
                          json_integer((json_int_t)sr.new_version));
      json_object_set_new(res, "swap_seconds",
                          json_real(sr.stage_seconds + sr.flip_seconds));
      pthread_mutex_lock(&t->mu);
      t->m.swaps++;
      pthread_mutex_unlock(&t->mu);
      r1d_log_msg(&s->log, R1D_LOG_INFO, "trainer",
                  "job %s: candidate %s is live as weight version %llu "
                  "(held-out pass@1 +%.4f)",
                  j->id, dir, (unsigned long long)sr.new_version, gain);
    }
  }
  /* the registry: the candidate with its scores and the decision */
  if (s->db) {
    char version[R1D_CKPT_VERSION_MAX];
    r1d_error err = {0};
    r1d_ckpt_info in = {.path = dir,
                        .kind = j->type,
                        .step = step,
                        .train_loss = loss,
                        .eval_loss = NAN,
                        .base = s->cfg.model,
                        .job = j->id};
    if (r1d_ckpt_register(s->db, &in, version, &err) == 0) {
      const char *d = json_string_value(json_object_get(res, "decision"));
      /* swapped: live; passed the gate but swap "never": a candidate */
      const char *status = !strcmp(d, "swapped")  ? "live"
                           : !strcmp(d, "passed") ? "candidate"
                                                  : "rejected";
      ckpt_update u = {version, status,
                       json_pack("{s:O, s:O, s:s}", "before",
                                 before ? before : json_null(), "after",
                                 after ? after : json_null(), "decision", d)};
      if (r1d_db_write(s->db, update_fn, &u, &err) == 0)
        json_object_set_new(res, "registry_version", json_string(version));
      json_decref(u.eval);
    }
    if (err.msg[0])
      r1d_log_msg(&s->log, R1D_LOG_WARN, "trainer",
                  "job %s: checkpoint %s not registered: %s", j->id, dir,
                  err.msg);
  }
  json_decref(before);
  json_decref(after);
  return res;
}

/* ---- one job (worker thread) ------------------------------------------ */

/* An sft job's training: the live weights fine-tuned on the job's JSONL
 * (TRL's formats, the server's tokenizer and chat template), checkpoints in
 * out. */
static int run_sft(r1d_trainer *t, job *j, r1d_version *v, const char *out,
                   hook_ctx *h, r1d_error *err) {
  r1d_server *s = t->s;
  const r1d_model *m = r1d_version_model(v);
  r1d_data_opts dopt = {.max_len = j->sft_max_len,
                        .tok = s->tok,
                        .tmpl = s->tpl,
                        .eos_id = m->cfg.n_eos ? m->cfg.eos_token_ids[0] : -1,
                        .bos_id = r1d_tokenizer_bos_to_add(s->tok)};
  r1d_dataset train = {0}, eval = {0};
  r1d_train_model *tm = NULL;
  int rc = r1d_dataset_load_jsonl(j->sft_data, &dopt, &train, err);
  if (rc == 0 && train.n_docs == 0)
    rc = r1d_fail(err, R1D_EINVAL, "config.data: %s has no usable example",
                  j->sft_data);
  if (rc == 0) rc = r1d_train_model_create(m, &tm, err);
  if (rc == 0) {
    r1d_sft_config c = j->sft;
    c.src_dir = r1d_version_source(v);
    c.out_dir = out;
    c.kind = "sft";
    r1d_sft_hooks hooks = {
        .on_metrics = on_sft_metrics, .stop = &j->cancel, .user = h};
    long final = 0;
    rc = r1d_sft_run(&c, tm, &train, &eval, &hooks, &final, err);
  }
  r1d_train_model_free(tm);
  r1d_dataset_free(&train);
  return rc;
}

/* The candidate in out/last evaluated as the live weights were. */
static int eval_candidate(r1d_trainer *t, job *j, const char *out,
                          const task_list *eval, hook_ctx *h, r1d_error *err) {
  char last[4096 + 8];
  snprintf(last, sizeof last, "%s/last", out);
  r1d_model *m = NULL;
  int rc = r1d_model_load(last, &t->s->cpu_be, &m, err);
  if (rc == 0) {
    r1d_grpo_run_config c = j->cfg;
    c.max_steps = 0;
    c.src_dir = last;
    c.out_dir = out;
    h->eval_is_after = 1;
    r1d_grpo_hooks hooks = {.on_metrics = on_metrics, .user = h};
    rc = r1d_grpo_run(&c, m, t->s->tok, NULL, 0, eval->v, eval->n, &hooks, err);
  }
  r1d_model_free(m);
  return rc;
}

/* An align job's first half: the preference pairs of /v1/feedback
 * (storage/feedback_pairs.h) train a reward model that starts from the live
 * weights (out/reward-model), and the pairs' prompts join the training
 * tasks as general prompts that only the reward model judges. */
static int prepare_align(r1d_trainer *t, job *j, r1d_version *v,
                         const char *out, task_list *train,
                         r1d_reward_model **rm, r1d_error *err) {
  r1d_server *s = t->s;
  json_t *rows = NULL;
  r1d_pref_set pairs = {0};
  int rc = r1d_feedback_pairs_collect(s->db, 100000, &rows, err);
  if (rc == 0) rc = r1d_pref_add_json_array(rows, 0, NULL, NULL, &pairs, err);
  json_decref(rows);
  if (rc == 0 && (long)pairs.n < j->min_pairs)
    rc = r1d_fail(err, R1D_ESTATE,
                  "an align job needs at least %ld preference pairs from "
                  "/v1/feedback (a \"preferred\" answer, or two answers to "
                  "one prompt rated differently); the data dir has %zu",
                  j->min_pairs, pairs.n);
  if (rc == 0) {
    r1d_rm_options ro = {0};
    rc = r1d_reward_model_load_ex(r1d_version_source(v), &ro, rm, err);
  }
  char dir[4096 + 16];
  snprintf(dir, sizeof dir, "%s/reward-model", out);
  r1d_rm_result res = {0};
  if (rc == 0) {
    r1d_rm_config rc_cfg = {.out_dir = dir,
                            .save = 1,
                            .lr = j->rm_lr,
                            .max_steps = j->rm_steps,
                            .warmup_ratio = 0.1,
                            .clip = 1.0,
                            .seed = j->cfg.seed};
    r1d_rm_hooks hooks = {.stop = &j->cancel};
    r1d_log_msg(&s->log, R1D_LOG_INFO, "trainer",
                "job %s: a reward model from %zu feedback pairs, %ld steps",
                j->id, pairs.n, j->rm_steps);
    rc = r1d_rm_train(&rc_cfg, *rm, pairs.pairs, pairs.n, NULL, 0, &hooks, &res,
                      err);
  }
  if (rc == 0)
    rc = r1d_align_general_tasks(pairs.pairs, pairs.n, 100000, s->tpl, s->tok,
                                 &train->v, &train->n, &train->cap, err);
  if (rc == 0) {
    json_t *summary = json_pack(
        "{s:s, s:I, s:I, s:f, s:f}", "path", dir, "pairs", (json_int_t)pairs.n,
        "steps", (json_int_t)res.steps, "train_loss",
        isfinite(res.train_loss) ? res.train_loss : -1.0, "train_accuracy",
        isfinite(res.train_accuracy) ? res.train_accuracy : -1.0);
    pthread_mutex_lock(&t->mu);
    json_decref(j->reward_model);
    j->reward_model = summary;
    j->n_train = train->n;
    pthread_mutex_unlock(&t->mu);
  }
  r1d_pref_set_free(&pairs);
  return rc;
}

static int run_job(r1d_trainer *t, job *j, r1d_error *err) {
  r1d_server *s = t->s;
  task_list train = {.s = s}, eval = {.s = s};
  load_args la = {&train, &eval, 0};
  int rc = r1d_db_read(s->db, load_fn, &la, err);
  char out[4096] = "";
  if (rc == 0) {
    int n = snprintf(out, sizeof out, "%s/jobs/%s", s->cfg.data_dir, j->id);
    if (n < 0 || (size_t)n >= sizeof out)
      rc = r1d_fail(err, R1D_EINVAL, "the data dir's path is too long");
  }
  if (rc == 0) rc = r1d_mkdir_p(out, err);
  r1d_version *v = rc == 0 ? r1d_versions_acquire(s->versions) : NULL;
  if (rc == 0) {
    r1d_grpo_run_config c = j->cfg;
    c.src_dir = r1d_version_source(v);
    c.out_dir = out;
    hook_ctx h = {t, j, 0};
    pthread_mutex_lock(&t->mu);
    j->n_train = train.n;
    j->n_from_chats = la.from_interactions;
    j->n_eval = eval.n;
    pthread_mutex_unlock(&t->mu);
    r1d_grpo_hooks hooks = {
        .on_metrics = on_metrics, .stop = &j->cancel, .user = &h};
    r1d_log_msg(&s->log, R1D_LOG_INFO, "trainer",
                "job %s (%s) starts from weight version %llu: %d train (%d "
                "of them logged chats with a checker) and %d held-out tasks",
                j->id, j->type, (unsigned long long)r1d_version_id(v), train.n,
                la.from_interactions, eval.n);
    r1d_reward_model *rm = NULL;
    if (!strcmp(j->type, "align")) {
      rc = prepare_align(t, j, v, out, &train, &rm, err);
      c.preference = r1d_align_score;
      c.preference_user = rm;
      c.w_preference = j->w_pref;
      c.preference_start = j->pref_start;
    }
    if (rc) {
      /* the reward model could not be trained: nothing to run */
    } else if (!strcmp(j->type, "sft")) {
      c.max_steps = 0; /* the live weights' evaluation, then the SFT run */
      rc = r1d_grpo_run(&c, r1d_version_model(v), s->tok, NULL, 0, eval.v,
                        eval.n, &hooks, err);
      if (rc == 0) rc = run_sft(t, j, v, out, &h, err);
      if (rc == 0 && !j->cancel) rc = eval_candidate(t, j, out, &eval, &h, err);
    } else {
      rc = r1d_grpo_run(&c, r1d_version_model(v), s->tok, train.v, train.n,
                        eval.v, eval.n, &hooks, err);
    }
    r1d_reward_model_free(rm);
  }
  r1d_versions_release(s->versions, v);
  task_list_free(&train);
  task_list_free(&eval);
  if (rc || !strcmp(j->type, "eval") || j->cancel) return rc;
  char last[4096 + 8], dir[PATH_MAX];
  snprintf(last, sizeof last, "%s/last", out);
  if (!realpath(last, dir))
    return r1d_fail(err, R1D_EIO, "job %s wrote no checkpoint", j->id);
  json_t *res = decide(t, j, dir);
  pthread_mutex_lock(&t->mu);
  json_decref(j->result);
  j->result = res;
  pthread_mutex_unlock(&t->mu);
  return 0;
}

static void *worker(void *arg) {
  r1d_trainer *t = arg;
  pthread_mutex_lock(&t->mu);
  for (;;) {
    job *next = NULL;
    for (job *j = t->jobs; j; j = j->next) /* the oldest queued */
      if (j->state == JOB_QUEUED) next = j;
    if (t->stop) break;
    if (!next) {
      pthread_cond_wait(&t->cv, &t->mu);
      continue;
    }
    next->state = JOB_RUNNING;
    next->started = unix_now();
    t->m.running = 1;
    pthread_mutex_unlock(&t->mu);
    r1d_error err = {0};
    int rc = run_job(t, next, &err);
    pthread_mutex_lock(&t->mu);
    next->finished = unix_now();
    next->state = rc             ? JOB_FAILED
                  : next->cancel ? JOB_CANCELLED
                                 : JOB_SUCCEEDED;
    if (rc) snprintf(next->error, sizeof next->error, "%s", err.msg);
    t->m.running = 0;
    if (rc)
      t->m.jobs_failed++;
    else
      t->m.jobs_done++;
    pthread_mutex_unlock(&t->mu);
    r1d_log_msg(&t->s->log, rc ? R1D_LOG_WARN : R1D_LOG_INFO, "trainer",
                "job %s %s%s%s", next->id, state_names[next->state],
                rc ? ": " : "", rc ? err.msg : "");
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

/* ---- the API ---------------------------------------------------------- */

/* The next job number: past every DATA_DIR/jobs/job-N of earlier runs, so
 * a restarted server never writes into an old job's checkpoints. */
static long first_job_id(const r1d_server *s) {
  long next = 1;
  char path[4096];
  if (!s->cfg.data_dir) return next;
  snprintf(path, sizeof path, "%s/jobs", s->cfg.data_dir);
  DIR *d = opendir(path);
  if (!d) return next;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    if (strncmp(e->d_name, "job-", 4)) continue;
    long n = strtol(e->d_name + 4, &end, 10);
    if (*end == 0 && n >= next) next = n + 1;
  }
  closedir(d);
  return next;
}

int r1d_trainer_create(r1d_server *s, r1d_trainer **out, r1d_error *err) {
  r1d_trainer *t = calloc(1, sizeof *t);
  if (!t) return r1d_fail(err, R1D_ENOMEM, "trainer: out of memory");
  t->s = s;
  t->next_id = first_job_id(s);
  t->interval_s = 3600;
  t->min_new_tasks = 1;
  t->sched_body = json_pack("{s:s, s:{}}", "type", "grpo", "config");
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  if (pthread_create(&t->thread, NULL, worker, t)) {
    r1d_trainer_destroy(t);
    return r1d_fail(err, R1D_ENOMEM, "trainer: cannot start its thread");
  }
  t->started = 1;
  *out = t;
  return R1D_OK;
}

void r1d_trainer_destroy(r1d_trainer *t) {
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  t->stop = 1;
  for (job *j = t->jobs; j; j = j->next)
    j->cancel = 1;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  if (t->started) pthread_join(t->thread, NULL);
  while (t->jobs) {
    job *n = t->jobs->next;
    job_free(t->jobs);
    t->jobs = n;
  }
  json_decref(t->sched_body);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* Parses body into a new job (not queued). */
/* An sft job's config: {"data": "FILE.jsonl" (TRL's formats, on the
 * server's disk), "max_len", "max_tokens", "epochs", "max_steps",
 * "learning_rate", "weight_decay", "warmup_ratio", "lr_scheduler_type",
 * "max_grad_norm", "grad_accum", "seed", and for the held-out evaluation
 * "eval_samples", "eval_temperature", "max_completion_length"}. */
static int sft_from_json(const json_t *config, job *j, r1d_error *err) {
  struct {
    const char *key;
    double lo, hi;
    int integer;
    double val;
    int given;
  } f[] = {{"max_len", 2, 1 << 20, 1, 1024, 0},
           {"max_tokens", 0, 1 << 22, 1, 0, 0},
           {"epochs", 1e-6, 1e6, 0, 1, 0},
           {"max_steps", 0, 1e12, 1, 0, 0},
           {"learning_rate", 1e-12, 10, 0, 2e-5, 0},
           {"weight_decay", 0, 10, 0, 0, 0},
           {"warmup_ratio", 0, 0.999, 0, 0, 0},
           {"max_grad_norm", 0, 1e9, 0, 1, 0},
           {"grad_accum", 1, 1 << 16, 1, 1, 0},
           {"seed", 0, 9e15, 1, 42, 0},
           {"eval_samples", 1, 64, 1, 4, 0},
           {"eval_temperature", 0, 2, 0, 0.6, 0},
           {"max_completion_length", 1, 1 << 20, 1, 256, 0}};
  enum { N = sizeof f / sizeof f[0] };
  const char *data = NULL, *sched = "cosine";
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)config, key, v) {
    int known = -1;
    for (int i = 0; i < N; i++)
      if (!strcmp(key, f[i].key)) known = i;
    if (!strcmp(key, "data")) {
      data = json_string_value(v);
      if (!data || !data[0] || strlen(data) >= sizeof j->sft_data)
        return r1d_fail(err, R1D_EINVAL,
                        "config.data must be the path of a JSONL file");
    } else if (!strcmp(key, "lr_scheduler_type")) {
      sched = json_string_value(v);
      if (!sched || (strcmp(sched, "cosine") && strcmp(sched, "constant")))
        return r1d_fail(err, R1D_EINVAL,
                        "config.lr_scheduler_type must be \"cosine\" or "
                        "\"constant\"");
    } else if (known < 0) {
      return r1d_fail(err, R1D_EINVAL, "config.%s is not a known sft setting",
                      key);
    } else {
      double x = json_is_number(v) ? json_number_value(v) : NAN;
      if (!json_is_number(v) || (f[known].integer && !json_is_integer(v)) ||
          !(x >= f[known].lo && x <= f[known].hi))
        return r1d_fail(err, R1D_EINVAL, "config.%s must be %s in [%g, %g]",
                        key, f[known].integer ? "an integer" : "a number",
                        f[known].lo, f[known].hi);
      f[known].val = x;
      f[known].given = 1;
    }
  }
  if (!data)
    return r1d_fail(err, R1D_EINVAL,
                    "config.data is required: the JSONL file to train on");
  snprintf(j->sft_data, sizeof j->sft_data, "%s", data);
  j->sft_max_len = (int)f[0].val;
  r1d_sft_config *c = &j->sft;
  memset(c, 0, sizeof *c);
  c->max_tokens = f[1].given ? (int)f[1].val : j->sft_max_len;
  if (c->max_tokens < j->sft_max_len)
    return r1d_fail(err, R1D_EINVAL,
                    "config.max_tokens must hold max_len (a document must "
                    "fit a pack)");
  c->epochs = f[2].val;
  c->max_steps = (long)f[3].val;
  r1d_adamw_config_default(&c->adamw);
  c->adamw.lr = f[4].val;
  c->adamw.weight_decay = f[5].val;
  c->sched.kind =
      strcmp(sched, "cosine") ? R1D_LR_WARMUP_CONSTANT : R1D_LR_WARMUP_COSINE;
  c->sched.lr = f[4].val;
  c->warmup_ratio = f[6].val;
  c->clip = f[7].val;
  c->grad_accum = (int)f[8].val;
  c->seed = (uint64_t)f[9].val;
  j->cfg.eval_samples = (int)f[10].val;
  j->cfg.eval_temperature = (float)f[11].val;
  j->cfg.grpo.max_completion_len = (int)f[12].val;
  return R1D_OK;
}

/* An align job's own settings, taken out of config (the rest is GRPO's):
 * "rm_steps" (reward-model steps, 50), "rm_learning_rate" (1e-4),
 * "min_pairs" (2), "preference_weight" (W of W * sigmoid(score), 1),
 * "preference_start" (share of the steps before the reward model counts,
 * 0). */
static int align_from_json(json_t *config, job *j, r1d_error *err) {
  struct {
    const char *key;
    double lo, hi, val;
  } f[] = {{"rm_steps", 1, 1e6, 50},
           {"rm_learning_rate", 1e-9, 1, 1e-4},
           {"min_pairs", 1, 1e9, 2},
           {"preference_weight", 0, 100, 1},
           {"preference_start", 0, 1, 0}};
  for (size_t i = 0; config && i < sizeof f / sizeof f[0]; i++) {
    json_t *v = json_object_get(config, f[i].key);
    if (!v) continue;
    if (!json_is_number(v) || !(json_number_value(v) >= f[i].lo) ||
        json_number_value(v) > f[i].hi)
      return r1d_fail(err, R1D_EINVAL, "config.%s must be a number in [%g, %g]",
                      f[i].key, f[i].lo, f[i].hi);
    f[i].val = json_number_value(v);
    json_object_del(config, f[i].key);
  }
  j->rm_steps = (long)f[0].val;
  j->rm_lr = f[1].val;
  j->min_pairs = (long)f[2].val;
  j->w_pref = f[3].val;
  j->pref_start = f[4].val;
  return R1D_OK;
}

static int job_from_body(const json_t *body, job **out, r1d_error *err) {
  if (!json_is_object(body))
    return r1d_fail(err, R1D_EINVAL, "the body must be a JSON object");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "type") && strcmp(key, "config") && strcmp(key, "swap") &&
        strcmp(key, "min_improvement") && strcmp(key, "min_format_ratio") &&
        strcmp(key, "min_length_ratio") && strcmp(key, "max_regression"))
      return r1d_fail(err, R1D_EINVAL,
                      "%s is not a job field (type, config, swap, "
                      "min_improvement, min_format_ratio, min_length_ratio, "
                      "max_regression)",
                      key);
  }
  const char *type = json_string_value(json_object_get(body, "type"));
  if (!type || (strcmp(type, "grpo") && strcmp(type, "eval") &&
                strcmp(type, "sft") && strcmp(type, "align")))
    return r1d_fail(err, R1D_EINVAL,
                    "type must be \"grpo\", \"sft\", \"align\" or \"eval\" "
                    "(distill jobs are not served: use r1d distill)");
  json_t *config = json_object_get(body, "config");
  if (config && !json_is_object(config))
    return r1d_fail(err, R1D_EINVAL, "config must be an object");
  job *j = calloc(1, sizeof *j);
  if (!j) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  snprintf(j->type, sizeof j->type, "%s", type);
  j->swap_auto = 1;
  json_t *swap = json_object_get(body, "swap");
  const char *sw = json_string_value(swap);
  int rc = 0;
  if (swap && (!sw || (strcmp(sw, "auto") && strcmp(sw, "never"))))
    rc = r1d_fail(err, R1D_EINVAL, "swap must be \"auto\" or \"never\"");
  else if (sw)
    j->swap_auto = strcmp(sw, "auto") == 0;
  j->min_format_ratio = 0.5;
  j->min_length_ratio = 0.25;
  j->max_regression = 0.02;
  struct {
    const char *key;
    double *dst;
  } gates[] = {{"min_improvement", &j->min_improvement},
               {"min_format_ratio", &j->min_format_ratio},
               {"min_length_ratio", &j->min_length_ratio},
               {"max_regression", &j->max_regression}};
  for (size_t i = 0; !rc && i < sizeof gates / sizeof gates[0]; i++) {
    json_t *g = json_object_get(body, gates[i].key);
    if (g && (!json_is_number(g) || !(json_number_value(g) >= 0) ||
              json_number_value(g) > 1))
      rc = r1d_fail(err, R1D_EINVAL, "%s must be a number in [0, 1]",
                    gates[i].key);
    else if (g)
      *gates[i].dst = json_number_value(g);
  }
  r1d_grpo_run_config_default(&j->cfg);
  j->cfg.max_steps = strcmp(type, "eval") ? 20 : 0;
  j->cfg.sched.lr = j->cfg.adamw.lr = 1e-5;
  r1d_error cerr = {0};
  json_t *grpo_config = config ? json_deep_copy(config) : NULL;
  if (!rc && !strcmp(type, "align")) rc = align_from_json(grpo_config, j, err);
  if (!rc && !strcmp(type, "sft"))
    rc = sft_from_json(config, j, err);
  else if (!rc && grpo_config &&
           r1d_grpo_run_config_from_json(grpo_config, &j->cfg, &cerr))
    rc = r1d_fail(err, R1D_EINVAL, "config.%s", cerr.msg);
  json_decref(grpo_config);
  int trains = !strcmp(type, "grpo") || !strcmp(type, "align");
  if (!rc && !trains) j->cfg.max_steps = 0;
  if (!rc && j->cfg.max_steps < 1 && trains)
    rc =
        r1d_fail(err, R1D_EINVAL, "config.max_steps must be >= 1 for %s", type);
  if (rc) {
    free(j);
    return rc;
  }
  j->config = config ? json_deep_copy(config) : json_object();
  j->total_steps = strcmp(type, "sft") ? j->cfg.max_steps : j->sft.max_steps;
  *out = j;
  return R1D_OK;
}

static int submit(r1d_trainer *t, const json_t *body, int scheduled,
                  json_t **out, r1d_error *err) {
  if (!t->s->db)
    return r1d_fail(err, R1D_ESTATE,
                    "training jobs read their tasks from the data dir: start "
                    "the server with storage on");
  job *j;
  int rc = job_from_body(body, &j, err);
  if (rc) return rc;
  j->scheduled = scheduled;
  j->created = unix_now();
  pthread_mutex_lock(&t->mu);
  snprintf(j->id, sizeof j->id, "job-%ld", t->next_id++);
  j->next = t->jobs;
  t->jobs = j;
  if (out) *out = job_json(j);
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  return R1D_OK;
}

int r1d_trainer_submit(r1d_trainer *t, const json_t *body, json_t **out,
                       r1d_error *err) {
  return submit(t, body, 0, out, err);
}

json_t *r1d_trainer_job(r1d_trainer *t, const char *id) {
  json_t *o = NULL;
  pthread_mutex_lock(&t->mu);
  for (job *j = t->jobs; j && !o; j = j->next)
    if (!strcmp(j->id, id)) o = job_json(j);
  pthread_mutex_unlock(&t->mu);
  return o;
}

json_t *r1d_trainer_jobs(r1d_trainer *t) {
  json_t *a = json_array();
  pthread_mutex_lock(&t->mu);
  for (job *j = t->jobs; j; j = j->next)
    json_array_append_new(a, job_json(j));
  pthread_mutex_unlock(&t->mu);
  return a;
}

int r1d_trainer_cancel(r1d_trainer *t, const char *id, r1d_error *err) {
  int rc = r1d_fail(err, R1D_ENOTFOUND, "no job %s", id);
  pthread_mutex_lock(&t->mu);
  for (job *j = t->jobs; j; j = j->next) {
    if (strcmp(j->id, id)) continue;
    if (j->state == JOB_QUEUED) {
      j->state = JOB_CANCELLED;
      j->finished = unix_now();
      rc = 0;
    } else if (j->state == JOB_RUNNING) {
      j->cancel = 1;
      rc = 0;
    } else {
      rc = r1d_fail(err, R1D_ESTATE, "job %s already %s", id,
                    state_names[j->state]);
    }
    break;
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

/* ---- the schedule ----------------------------------------------------- */

json_t *r1d_trainer_schedule(r1d_trainer *t) {
  pthread_mutex_lock(&t->mu);
  json_t *o =
      json_pack("{s:s, s:b, s:f, s:I, s:O}", "object", "trainer", "enabled",
                t->enabled, "interval_s", t->interval_s, "min_new_tasks",
                (json_int_t)t->min_new_tasks, "job", t->sched_body);
  pthread_mutex_unlock(&t->mu);
  return o;
}

int r1d_trainer_schedule_set(r1d_trainer *t, const json_t *body,
                             r1d_error *err) {
  if (!json_is_object(body))
    return r1d_fail(err, R1D_EINVAL, "the body must be a JSON object");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    if (strcmp(key, "enabled") && strcmp(key, "interval_s") &&
        strcmp(key, "min_new_tasks") && strcmp(key, "job"))
      return r1d_fail(err, R1D_EINVAL,
                      "%s is not a trainer setting (enabled, interval_s, "
                      "min_new_tasks, job)",
                      key);
  }
  json_t *en = json_object_get(body, "enabled");
  json_t *iv = json_object_get(body, "interval_s");
  json_t *mn = json_object_get(body, "min_new_tasks");
  json_t *jb = json_object_get(body, "job");
  if (en && !json_is_boolean(en))
    return r1d_fail(err, R1D_EINVAL, "enabled must be true or false");
  if (iv && (!json_is_number(iv) || !(json_number_value(iv) >= 1) ||
             json_number_value(iv) > 1e8))
    return r1d_fail(err, R1D_EINVAL,
                    "interval_s must be a number of seconds "
                    "in [1, 1e8]");
  if (mn && (!json_is_integer(mn) || json_integer_value(mn) < 0))
    return r1d_fail(err, R1D_EINVAL, "min_new_tasks must be an integer >= 0");
  if (jb) { /* validated as a job would be now, not when it fires */
    job *probe;
    int rc = job_from_body(jb, &probe, err);
    if (rc) return r1d_fail(err, rc, "job.%s", err->msg);
    job_free(probe);
  }
  pthread_mutex_lock(&t->mu);
  if (en) t->enabled = json_is_true(en);
  if (iv) t->interval_s = json_number_value(iv);
  if (mn) t->min_new_tasks = (long)json_integer_value(mn);
  if (jb) {
    json_decref(t->sched_body);
    t->sched_body = json_deep_copy(jb);
  }
  pthread_mutex_unlock(&t->mu);
  return R1D_OK;
}

static int count_tasks(r1d_txn *t, void *arg, r1d_error *err) {
  json_t *st = NULL;
  int rc = r1d_tasks_stats(t, &st, err);
  if (rc == 0)
    *(long *)arg = (long)json_integer_value(json_object_get(st, "total"));
  json_decref(st);
  return rc;
}

void r1d_trainer_tick(r1d_trainer *t, double now) {
  pthread_mutex_lock(&t->mu);
  int due = t->enabled && !t->m.running && now - t->last_sched >= t->interval_s;
  for (job *j = t->jobs; due && j; j = j->next)
    due = j->state != JOB_QUEUED;
  /* counting the tasks reads the table: at most every 5 s while waiting
   * for min_new_tasks */
  due = due && now - t->last_check >= 5.0;
  if (due) t->last_check = now;
  json_t *body = due ? json_incref(t->sched_body) : NULL;
  long since = t->tasks_at_last;
  pthread_mutex_unlock(&t->mu);
  if (!due || !t->s->db) {
    json_decref(body);
    return;
  }
  long total = 0;
  r1d_error err = {0};
  if (r1d_db_read(t->s->db, count_tasks, &total, &err) ||
      total - since < t->min_new_tasks) {
    json_decref(body);
    return;
  }
  pthread_mutex_lock(&t->mu);
  t->last_sched = now;
  t->tasks_at_last = total;
  pthread_mutex_unlock(&t->mu);
  if (submit(t, body, 1, NULL, &err))
    r1d_log_msg(&t->s->log, R1D_LOG_WARN, "trainer",
                "the scheduled job was refused: %s", err.msg);
  json_decref(body);
}

void r1d_trainer_metrics_get(r1d_trainer *t, r1d_trainer_metrics *m) {
  pthread_mutex_lock(&t->mu);
  *m = t->m;
  m->queued = 0;
  for (job *j = t->jobs; j; j = j->next)
    m->queued += j->state == JOB_QUEUED;
  pthread_mutex_unlock(&t->mu);
}

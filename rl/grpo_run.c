/* grpo_run.c - the offline GRPO loop (grpo_run.h): rollouts through the
 * engine on a view of the trainer's own parameters, rule rewards, group
 * advantages, the GRPO update, evaluation and checkpoints. */
#include "grpo_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/rng.h"
#include "../engine/model/checkpoint.h"
#include "../engine/model/train.h"
#include "../engine/serve/engine.h"
#include "../engine/text/reasoning.h"
#include "grpo_train.h"
#include "rollout.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- tasks ------------------------------------------------------------ */

static int task_prepare(const json_t *task, const r1d_template *tmpl,
                        const r1d_tokenizer *tok, int general,
                        r1d_grpo_task *out, r1d_error *err) {
  memset(out, 0, sizeof *out);
  const char *id = json_string_value(json_object_get(task, "id"));
  snprintf(out->id, sizeof out->id, "%s", id ? id : "?");
  json_t *checker = json_object_get(task, "checker");
  if (general && (!checker || json_is_null(checker)))
    checker = NULL;
  else if (!json_is_object(checker))
    return r1d_fail(err, R1D_EINVAL, "task %s: no checker object", out->id);
  if (!tmpl)
    return r1d_fail(err, R1D_EINVAL,
                    "task %s: the model has no chat template r1d knows "
                    "(choose one with --template)",
                    out->id);
  json_t *msgs = json_object_get(task, "messages");
  json_t *prompt = json_object_get(task, "prompt");
  json_t *built = NULL;
  if (!msgs && json_is_string(prompt)) {
    built = json_pack("[{s:s, s:O}]", "role", "user", "content", prompt);
    msgs = built;
  }
  if (!json_is_array(msgs)) {
    json_decref(built);
    return r1d_fail(err, R1D_EINVAL, "task %s: no prompt or messages", out->id);
  }
  char *text = json_dumps(msgs, JSON_COMPACT), *rendered = NULL;
  r1d_chat_message *m = NULL;
  size_t n = 0;
  r1d_ids ids = {0};
  int rc = text ? r1d_chat_messages_parse(text, &m, &n, err)
                : r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (rc == 0) rc = r1d_template_render(tmpl, m, n, 1, &rendered, err);
  if (rc == 0)
    rc = r1d_tokenizer_encode(tok, rendered, strlen(rendered), &ids, err);
  if (rc == 0 && ids.n == 0)
    rc =
        r1d_fail(err, R1D_EINVAL, "task %s: the prompt has no tokens", out->id);
  if (rc == 0) {
    out->prompt = ids.v;
    out->n_prompt = (int)ids.n;
    ids.v = NULL;
    out->prompt_in_think =
        r1d_reasoning_prompt_opens(rendered, strlen(rendered));
    out->checker = checker ? json_incref(checker) : NULL;
    out->messages = json_incref(msgs);
  } else if (rc != R1D_ENOMEM) {
    r1d_fail(err, rc, "task %s: %s", out->id, err ? err->msg : "");
  }
  r1d_ids_free(&ids);
  json_decref(built);
  free(text);
  free(rendered);
  free(m);
  return rc;
}

int r1d_grpo_task_prepare(const json_t *task, const r1d_template *tmpl,
                          const r1d_tokenizer *tok, r1d_grpo_task *out,
                          r1d_error *err) {
  return task_prepare(task, tmpl, tok, 0, out, err);
}

int r1d_grpo_task_prepare_general(const json_t *task, const r1d_template *tmpl,
                                  const r1d_tokenizer *tok, r1d_grpo_task *out,
                                  r1d_error *err) {
  return task_prepare(task, tmpl, tok, 1, out, err);
}

void r1d_grpo_task_free(r1d_grpo_task *t) {
  if (!t) return;
  free(t->prompt);
  json_decref(t->checker);
  json_decref(t->messages);
  memset(t, 0, sizeof *t);
}

/* ---- configuration ---------------------------------------------------- */

void r1d_grpo_run_config_default(r1d_grpo_run_config *c) {
  memset(c, 0, sizeof *c);
  r1d_grpo_config_default(&c->grpo);
  r1d_reward_config_default(&c->reward);
  r1d_adamw_config_default(&c->adamw);
  c->adamw.weight_decay = 0.0;
  c->sched.kind = R1D_LR_CONSTANT;
  c->sched.lr = 1e-5;
  c->clip = 1.0;
  c->prompts_per_step = 8;
  c->max_steps = 100;
  c->num_iterations = 1;
  c->temperature = 1.0f;
  c->top_p = 1.0f;
  c->eval_samples = 4;
  c->eval_temperature = 0.6f;
  c->seed = 1;
}

/* One numeric field of a job config: obj[key] within [lo, hi]. */
static int num_field(const json_t *obj, const char *key, double lo, double hi,
                     int integer, double *out, int *given, r1d_error *err) {
  json_t *v = json_object_get(obj, key);
  *given = v != NULL;
  if (!v) return R1D_OK;
  double x = json_is_number(v) ? json_number_value(v) : NAN;
  if (!json_is_number(v) || (integer && !json_is_integer(v)) || !(x >= lo) ||
      !(x <= hi))
    return r1d_fail(err, R1D_EINVAL, "%s must be %s in [%g, %g]", key,
                    integer ? "an integer" : "a number", lo, hi);
  *out = x;
  return R1D_OK;
}

int r1d_grpo_run_config_from_json(const json_t *obj, r1d_grpo_run_config *c,
                                  r1d_error *err) {
  static const char *const grpo_keys[] = {
      "num_generations", "max_completion_length",
      "loss_type",       "scale_rewards",
      "epsilon",         "epsilon_low",
      "epsilon_high",    "beta",
      "rewards",         "lr_scheduler_type",
      "dynamic_sampling"};
  struct {
    const char *key;
    double lo, hi;
    int integer;
  } nums[] = {
      {"learning_rate", 1e-12, 10, 0},
      {"warmup_ratio", 0, 1, 0},
      {"weight_decay", 0, 10, 0},
      {"max_grad_norm", 0, 1e9, 0},
      {"max_steps", 0, 1e9, 1},
      {"prompts_per_step", 1, 4096, 1},
      {"num_iterations", 1, 64, 1},
      {"ref_refresh_steps", 0, 1e9, 1},
      {"temperature", 1e-3, 2, 0},
      {"top_p", 1e-6, 1, 0},
      {"eval_samples", 1, R1D_ENGINE_MAX_N, 1},
      {"eval_temperature", 0, 2, 0},
      {"eval_steps", 0, 1e9, 1},
      {"save_steps", 0, 1e9, 1},
      {"seed", 0, 9e15, 1},
      {"max_tokens", 0, 1 << 22, 1},
  };
  enum { N_NUMS = sizeof nums / sizeof nums[0] };
  if (!json_is_object(obj))
    return r1d_fail(err, R1D_EINVAL, "config must be a JSON object");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    int known = 0;
    for (size_t i = 0; i < sizeof grpo_keys / sizeof grpo_keys[0]; i++)
      known |= strcmp(key, grpo_keys[i]) == 0;
    for (int i = 0; i < N_NUMS; i++)
      known |= strcmp(key, nums[i].key) == 0;
    if (!known)
      return r1d_fail(err, R1D_EINVAL, "%s is not a known setting", key);
  }
  r1d_grpo_run_config n = *c; /* c changes only when all of it is good */
  int rc = r1d_grpo_config_from_json(obj, &n.grpo, err);
  json_t *rw = json_object_get(obj, "rewards");
  if (rc == 0 && rw) rc = r1d_reward_config_from_json(rw, &n.reward, err);
  if (rc) return rc;
  double val[N_NUMS];
  int given[N_NUMS];
  for (int i = 0; i < N_NUMS; i++)
    if ((rc = num_field(obj, nums[i].key, nums[i].lo, nums[i].hi,
                        nums[i].integer, &val[i], &given[i], err)))
      return rc;
  /* in the order of nums[] */
  if (given[0]) n.adamw.lr = n.sched.lr = val[0];
  if (given[1]) n.warmup_ratio = val[1];
  if (given[2]) n.adamw.weight_decay = val[2];
  if (given[3]) n.clip = val[3];
  if (given[4]) n.max_steps = (long)val[4];
  if (given[5]) n.prompts_per_step = (int)val[5];
  if (given[6]) n.num_iterations = (int)val[6];
  if (given[7]) n.ref_refresh = (long)val[7];
  if (given[8]) n.temperature = (float)val[8];
  if (given[9]) n.top_p = (float)val[9];
  if (given[10]) n.eval_samples = (int)val[10];
  if (given[11]) n.eval_temperature = (float)val[11];
  if (given[12]) n.eval_every = (long)val[12];
  if (given[13]) n.save_every = (long)val[13];
  if (given[14]) n.seed = (uint64_t)val[14];
  if (given[15]) n.max_tokens = (int)val[15];
  json_t *ds = json_object_get(obj, "dynamic_sampling");
  if (ds && !json_is_boolean(ds))
    return r1d_fail(err, R1D_EINVAL, "dynamic_sampling must be true or false");
  if (ds) n.dynamic_sampling = json_is_true(ds);
  json_t *sch = json_object_get(obj, "lr_scheduler_type");
  if (sch) {
    const char *s = json_string_value(sch);
    if (!s || (strcmp(s, "constant") && strcmp(s, "cosine")))
      return r1d_fail(err, R1D_EINVAL,
                      "lr_scheduler_type must be \"constant\" or \"cosine\"");
    n.sched.kind = strcmp(s, "cosine") ? R1D_LR_CONSTANT : R1D_LR_WARMUP_COSINE;
  }
  if (n.sched.kind == R1D_LR_CONSTANT && n.warmup_ratio > 0)
    n.sched.kind = R1D_LR_WARMUP_CONSTANT;
  n.reward.overlong_max_tokens = n.reward.overlong_max_tokens
                                     ? n.reward.overlong_max_tokens
                                     : (size_t)n.grpo.max_completion_len;
  *c = n;
  return R1D_OK;
}

static int check_config(const r1d_grpo_run_config *c, int n_train,
                        r1d_error *err) {
  int rc = r1d_grpo_config_check(&c->grpo, err);
  if (rc) return rc;
  if (n_train < 1 && c->max_steps > 0)
    return r1d_fail(err, R1D_EINVAL, "no training tasks (split \"train\")");
  if (c->prompts_per_step < 1 || c->prompts_per_step > 4096)
    return r1d_fail(err, R1D_EINVAL,
                    "prompts_per_step must be 1..4096 (got %d)",
                    c->prompts_per_step);
  if (c->grpo.group_size > R1D_ENGINE_MAX_N)
    return r1d_fail(err, R1D_EINVAL, "num_generations must be at most %d",
                    R1D_ENGINE_MAX_N);
  if (c->max_steps < 0)
    return r1d_fail(err, R1D_EINVAL, "max_steps must be >= 0");
  if (c->num_iterations < 1 || c->num_iterations > 64)
    return r1d_fail(err, R1D_EINVAL, "num_iterations must be 1..64");
  if (!(c->temperature > 0 && c->temperature <= 2))
    return r1d_fail(err, R1D_EINVAL, "temperature must be in (0, 2]");
  if (!(c->top_p > 0 && c->top_p <= 1))
    return r1d_fail(err, R1D_EINVAL, "top_p must be in (0, 1]");
  if (!(c->eval_temperature >= 0 && c->eval_temperature <= 2))
    return r1d_fail(err, R1D_EINVAL, "eval_temperature must be in [0, 2]");
  if (c->eval_samples < 1 || c->eval_samples > R1D_ENGINE_MAX_N)
    return r1d_fail(err, R1D_EINVAL, "eval_samples must be 1..%d",
                    R1D_ENGINE_MAX_N);
  if (c->ref_refresh < 0 || c->save_every < 0 || c->eval_every < 0)
    return r1d_fail(err, R1D_EINVAL,
                    "ref_refresh, save_every and eval_every must be >= 0");
  if (!(c->clip >= 0) || !(c->warmup_ratio >= 0 && c->warmup_ratio <= 1))
    return r1d_fail(err, R1D_EINVAL,
                    "max_grad_norm must be >= 0 and warmup_ratio in [0, 1]");
  return r1d_adamw_config_check(&c->adamw, err);
}

/* ---- the run's state -------------------------------------------------- */

typedef struct run {
  const r1d_grpo_run_config *c;
  const r1d_tokenizer *tok;
  r1d_train_model *tm, *ref;
  r1d_train_plan *plan, *ref_plan;
  r1d_model view; /* m with the trainer's parameters as its weights */
  r1d_engine *engine;
  r1d_optim *opt;
  r1d_optim_tensor *opt_list;
  r1d_lr_schedule sched;
  int *order; /* the train tasks' order in the current epoch */
  int n_train, epoch, cursor;
  r1d_rng rng;
  char last_good[4096];
  double t0;
  double *eval_base; /* each eval task's pass@1 at step 0 */
} run;

static void run_free(run *r) {
  if (r->engine) r1d_engine_destroy(r->engine);
  r1d_optim_destroy(r->opt);
  free(r->opt_list);
  r1d_train_plan_free(r->plan);
  r1d_train_plan_free(r->ref_plan);
  r1d_train_model_free(r->tm);
  r1d_train_model_free(r->ref);
  free(r->order);
  free(r->eval_base);
}

/* The next P train tasks: a seeded permutation per epoch. */
static void next_tasks(run *r, int *pick, int p) {
  for (int i = 0; i < p; i++) {
    if (r->cursor == 0) {
      for (int j = 0; j < r->n_train; j++)
        r->order[j] = j;
      for (int j = r->n_train - 1; j > 0; j--) {
        int k = (int)(r1d_rng_next(&r->rng) % (uint64_t)(j + 1));
        int t = r->order[j];
        r->order[j] = r->order[k];
        r->order[k] = t;
      }
    }
    pick[i] = r->order[r->cursor];
    if (++r->cursor == r->n_train) r->cursor = 0, r->epoch++;
  }
}

static int setup(run *r, const r1d_model *m, const r1d_grpo_task *train,
                 int n_train, const r1d_grpo_task *eval, int n_eval,
                 r1d_error *err) {
  const r1d_grpo_run_config *c = r->c;
  int max_prompt = 0;
  for (int i = 0; i < n_train; i++)
    if (train[i].n_prompt > max_prompt) max_prompt = train[i].n_prompt;
  for (int i = 0; i < n_eval; i++)
    if (eval[i].n_prompt > max_prompt) max_prompt = eval[i].n_prompt;
  int longest = max_prompt + c->grpo.max_completion_len;
  if (longest > m->cfg.max_position_embeddings)
    return r1d_fail(err, R1D_EINVAL,
                    "the longest prompt (%d tokens) plus max_completion_length "
                    "(%d) exceeds the model's context of %d",
                    max_prompt, c->grpo.max_completion_len,
                    m->cfg.max_position_embeddings);
  int max_tokens = c->max_tokens > 0 ? c->max_tokens : 4 * longest;
  if (max_tokens < longest)
    return r1d_fail(err, R1D_EINVAL,
                    "max_tokens (%d) must hold the longest prompt plus "
                    "completion (%d)",
                    max_tokens, longest);
  int rc = r1d_train_model_create(m, &r->tm, err);
  if (rc == 0) rc = r1d_train_plan_create(r->tm, max_tokens, 0, &r->plan, err);
  if (rc == 0) r->plan->row_invariant = 1; /* logprobs of any packing */
  if (rc == 0 && c->grpo.beta > 0) {
    rc = r1d_train_model_create(m, &r->ref, err);
    if (rc == 0)
      rc = r1d_train_plan_create(r->ref, max_tokens, 0, &r->ref_plan, err);
    if (rc == 0) r->ref_plan->row_invariant = 1;
  }
  size_t n_list = 0;
  if (rc == 0) rc = r1d_train_optim_tensors(r->tm, &r->opt_list, &n_list, err);
  if (rc == 0)
    rc = r1d_optim_create(&c->adamw, r->opt_list, n_list, &r->opt, err);
  if (rc) return rc;

  r->view = *m;
  r->view.w = r->tm->param;
  r1d_engine_config ec;
  r1d_engine_config_default(&ec);
  ec.prefix_cache = 0; /* cached KV would be of older weights */
  ec.max_model_len = longest;
  int seqs = c->prompts_per_step * c->grpo.group_size;
  int eval_seqs = n_eval * c->eval_samples;
  if (eval_seqs > seqs) seqs = eval_seqs;
  ec.max_num_seqs = seqs < 64 ? seqs : 64;
  rc = r1d_engine_create(&r->view, &r->view.be, r->tok, &ec, &r->engine, err);
  if (rc) return rc;

  r->sched = c->sched;
  r->sched.total_steps = c->max_steps > 0 ? c->max_steps : 1;
  if (c->warmup_ratio > 0)
    r->sched.warmup_steps = (long)ceil(c->warmup_ratio * (double)c->max_steps);
  if ((rc = r1d_lr_schedule_check(&r->sched, err))) return rc;
  r->n_train = n_train;
  r->order = malloc((size_t)(n_train > 0 ? n_train : 1) * sizeof *r->order);
  if (!r->order) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  r1d_rng_seed(&r->rng, c->seed);
  return R1D_OK;
}

/* ---- rollouts and rewards --------------------------------------------- */

static void gen_params(r1d_gen_params *p, float temperature, float top_p,
                       int max_tokens, uint64_t seed) {
  memset(p, 0, sizeof *p);
  r1d_sampling_params_default(&p->sampling);
  p->sampling.temperature = temperature;
  p->sampling.top_p = top_p;
  p->sampling.seed = seed;
  p->max_tokens = max_tokens;
}

/* Samples k completions of each task in ids[0..n) and scores them:
 * rewards[i*k + j] and per-sample verdicts into rw. */
static int sample_and_score(run *r, const r1d_grpo_task *tasks, const int *ids,
                            int n, int k, float temperature, float top_p,
                            uint64_t seed, r1d_rollout *ro, r1d_reward *rw,
                            double *t_rollout, double *t_reward,
                            r1d_error *err) {
  const r1d_grpo_run_config *c = r->c;
  r1d_rollout_prompt *pr = malloc((size_t)n * sizeof *pr);
  if (!pr) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  for (int i = 0; i < n; i++)
    pr[i] = (r1d_rollout_prompt){tasks[ids[i]].prompt, tasks[ids[i]].n_prompt};
  r1d_gen_params gp;
  gen_params(&gp, temperature, top_p, c->grpo.max_completion_len, seed);
  double t0 = now_s();
  int rc = r1d_rollout_run(r->engine, r->tok, pr, n, k, &gp, 0, ro, err);
  free(pr);
  double t1 = now_s();
  for (int i = 0; rc == 0 && i < n * k; i++) {
    const r1d_grpo_task *t = &tasks[ids[i / k]];
    r1d_completion_info info = {t->prompt_in_think, (size_t)ro[i].n,
                                ro[i].finish == R1D_FINISH_LENGTH};
    rc = r1d_reward_compute(&c->reward, t->checker, ro[i].text, &info, &rw[i],
                            err);
    if (rc) r1d_fail(err, rc, "reward of task %s: %s", t->id, err->msg);
  }
  *t_rollout = t1 - t0;
  *t_reward = now_s() - t1;
  if (rc) r1d_rollout_free(ro, n * k);
  return rc;
}

/* Alignment RL: adds w_preference * sigmoid(score) of the preference
 * scorer to each completion's rule reward; *mean gets the mean sigmoid. The
 * sigmoid keeps an unbounded reward-model score on the rule rewards' 0..1
 * scale, so no weight has to be retuned per reward model. */
static int add_preference(run *r, const r1d_grpo_task *tasks, const int *pick,
                          int P, int G, const r1d_rollout *ro, double *rewards,
                          double *mean, r1d_error *err) {
  const r1d_grpo_run_config *c = r->c;
  const char **texts = malloc((size_t)G * sizeof *texts);
  double *scores = malloc((size_t)G * sizeof *scores);
  int rc = texts && scores ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  double sum = 0;
  for (int g = 0; rc == 0 && g < P; g++) {
    for (int j = 0; j < G; j++)
      texts[j] = ro[g * G + j].text ? ro[g * G + j].text : "";
    rc = c->preference(c->preference_user, &tasks[pick[g]], texts, G, scores,
                       err);
    for (int j = 0; rc == 0 && j < G; j++) {
      if (!isfinite(scores[j])) {
        rc = r1d_fail(err, R1D_ERANGE,
                      "the reward model's score of task %s is not finite",
                      tasks[pick[g]].id);
        break;
      }
      double sg = 1.0 / (1.0 + exp(-scores[j]));
      rewards[g * G + j] += c->w_preference * sg;
      sum += sg;
    }
  }
  if (rc == 0) *mean = sum / (double)(P * G);
  free(texts);
  free(scores);
  return rc;
}

/* ---- evaluation ------------------------------------------------------- */

static int evaluate(run *r, const r1d_grpo_task *eval, int n_eval, long step,
                    const r1d_grpo_hooks *h, r1d_error *err) {
  int k = r->c->eval_samples, total = n_eval * k;
  if (n_eval == 0) return R1D_OK;
  int *ids = calloc((size_t)n_eval, sizeof *ids);
  r1d_rollout *ro = calloc((size_t)total, sizeof *ro);
  r1d_reward *rw = calloc((size_t)total, sizeof *rw);
  int rc = ids && ro && rw ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  for (int i = 0; rc == 0 && i < n_eval; i++)
    ids[i] = i;
  double tr, tw;
  if (rc == 0)
    rc = sample_and_score(r, eval, ids, n_eval, k, r->c->eval_temperature,
                          0.95f, r->c->seed ^ 0x5eedULL, ro, rw, &tr, &tw, err);
  if (rc == 0) {
    r1d_grpo_metrics mt = {.step = step,
                           .total_steps = r->c->max_steps,
                           .is_eval = 1,
                           .eval_tasks = n_eval,
                           .eval_k = k};
    double sum = 0, sq = 0, dsum = 0, dsq = 0;
    if (!r->eval_base) r->eval_base = calloc((size_t)n_eval, sizeof(double));
    for (int i = 0; i < n_eval; i++) {
      double acc = 0;
      for (int j = 0; j < k; j++) {
        acc += rw[i * k + j].correct;
        mt.eval_format += rw[i * k + j].format_ok;
        mt.eval_len += ro[i * k + j].n;
      }
      acc /= k;
      sum += acc;
      sq += acc * acc;
      if (step == 0 && r->eval_base) r->eval_base[i] = acc;
      double d = r->eval_base ? acc - r->eval_base[i] : 0;
      dsum += d;
      dsq += d * d;
    }
    /* the gain over step 0, paired task by task: its 95% interval is far
     * narrower than the two evals' own, whose task-to-task spread it
     * cancels */
    double dvar = n_eval > 1 ? (dsq - dsum * dsum / n_eval) / (n_eval - 1) : 0;
    mt.eval_gain = r->eval_base && step > 0 ? dsum / n_eval : 0;
    mt.eval_gain_ci = r->eval_base && step > 0
                          ? 1.96 * sqrt(dvar > 0 ? dvar / n_eval : 0)
                          : 0;
    mt.eval_pass1 = sum / n_eval;
    mt.eval_format /= total;
    mt.eval_len /= total;
    /* 95% interval over tasks (the samples of one task are correlated) */
    double var = n_eval > 1 ? (sq - sum * sum / n_eval) / (n_eval - 1) : 0;
    mt.eval_pass1_ci = 1.96 * sqrt(var > 0 ? var / n_eval : 0);
    mt.elapsed_s = now_s() - r->t0;
    if (h && h->on_metrics) h->on_metrics(h->user, &mt);
    r1d_rollout_free(ro, total);
  }
  free(ids);
  free(ro);
  free(rw);
  return rc;
}

/* ---- checkpoints ------------------------------------------------------ */

static int save(run *r, long step, const r1d_grpo_metrics *last,
                const r1d_grpo_hooks *h, r1d_error *err) {
  const r1d_grpo_run_config *c = r->c;
  char dir[4096], name[64];
  int rc =
      r1d_checkpoint_step_dir(c->out_dir, step, dir, sizeof dir, name, err);
  if (rc) return rc;
  json_t *st = json_pack(
      "{s:s, s:I, s:I, s:{s:f, s:f, s:f, s:f}, s:{s:i, s:s, s:s, s:f, s:f, "
      "s:f, s:i}, s:I}",
      "kind", "grpo", "step", (json_int_t)step, "max_steps",
      (json_int_t)c->max_steps, "last", "reward_mean",
      last ? last->reward_mean : 0.0, "accuracy", last ? last->accuracy : 0.0,
      "loss", last ? last->loss : 0.0, "kl", last ? last->kl : 0.0, "grpo",
      "num_generations", c->grpo.group_size, "loss_type",
      r1d_grpo_loss_name(c->grpo.loss_type), "scale_rewards",
      r1d_grpo_scale_name(c->grpo.scale_rewards), "beta", c->grpo.beta,
      "epsilon_low", c->grpo.eps_low, "epsilon_high", c->grpo.eps_high,
      "max_completion_length", c->grpo.max_completion_len, "seed",
      (json_int_t)c->seed);
  char *state = st ? json_dumps(st, JSON_INDENT(1)) : NULL;
  json_decref(st);
  if (!state) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  r1d_checkpoint_file extra = {"trainer_state.json", state, strlen(state)};
  rc = r1d_checkpoint_write_extra(c->src_dir, &r->tm->cfg, &r->tm->param, 0,
                                  &extra, 1, dir, err);
  free(state);
  if (rc == 0) rc = r1d_checkpoint_link_last(c->out_dir, name, err);
  if (rc) {
    if (r->last_good[0])
      return r1d_fail(err, rc, "step %ld: %s; the checkpoint %s is intact",
                      step, err->msg, r->last_good);
    return rc;
  }
  snprintf(r->last_good, sizeof r->last_good, "%s", dir);
  if (h && h->on_checkpoint) h->on_checkpoint(h->user, dir, step);
  return R1D_OK;
}

/* ---- one step --------------------------------------------------------- */

static double group_std(const double *x, int n) {
  double mean = 0, ss = 0;
  for (int i = 0; i < n; i++)
    mean += x[i];
  mean /= n;
  for (int i = 0; i < n; i++)
    ss += (x[i] - mean) * (x[i] - mean);
  return n > 1 ? sqrt(ss / n) : 0;
}

static int train_step(run *r, const r1d_grpo_task *train, long step,
                      r1d_grpo_metrics *mt, r1d_error *err) {
  const r1d_grpo_run_config *c = r->c;
  int P = c->prompts_per_step, G = c->grpo.group_size, N = P * G;
  int *pick = malloc((size_t)P * sizeof *pick);
  r1d_rollout *ro = calloc((size_t)N, sizeof *ro);
  r1d_reward *rw = calloc((size_t)N, sizeof *rw);
  double *rewards = malloc((size_t)N * sizeof *rewards);
  double *adv = malloc((size_t)N * sizeof *adv);
  r1d_grpo_sample *s = calloc((size_t)N, sizeof *s);
  float **lp_ref = calloc((size_t)N, sizeof *lp_ref);
  float **lp_old = calloc((size_t)N, sizeof *lp_old);
  int rc = pick && ro && rw && rewards && adv && s && lp_ref && lp_old
               ? 0
               : r1d_fail(err, R1D_ENOMEM, "out of memory");
  int sampled = 0, n_s = 0;
  double t_start = now_s();
  if (rc) goto done;
  next_tasks(r, pick, P);
  rc = sample_and_score(r, train, pick, P, G, c->temperature, c->top_p,
                        c->seed + (uint64_t)step * 7919u, ro, rw,
                        &mt->t_rollout, &mt->t_reward, err);
  if (rc) goto done;
  sampled = 1;
  for (int i = 0; i < N; i++)
    rewards[i] = rw[i].total;
  mt->preference = NAN;
  if (c->preference &&
      step > (long)(c->preference_start * (double)c->max_steps)) {
    rc =
        add_preference(r, train, pick, P, G, ro, rewards, &mt->preference, err);
    if (rc) goto done;
  }
  long gen_tokens = 0;
  for (int i = 0; i < N; i++) {
    mt->accuracy += rw[i].correct;
    mt->format_rate += rw[i].format_ok;
    mt->completion_len += ro[i].n;
    mt->truncated_rate += ro[i].finish == R1D_FINISH_LENGTH;
    gen_tokens += ro[i].n;
  }
  mt->reward_mean = 0;
  for (int i = 0; i < N; i++)
    mt->reward_mean += rewards[i];
  mt->reward_mean /= N;
  mt->reward_std = group_std(rewards, N);
  mt->accuracy /= N;
  mt->format_rate /= N;
  mt->completion_len /= N;
  mt->truncated_rate /= N;
  mt->rollout_tokens_per_s =
      mt->t_rollout > 0 ? (double)gen_tokens / mt->t_rollout : 0;
  r1d_grpo_advantages(&c->grpo, rewards, P, adv, &mt->flat_groups);
  mt->groups = P;

  /* the samples to train on: every one, or only the groups with signal */
  for (int g = 0; g < P; g++) {
    int flat = 1;
    for (int j = 1; j < G; j++)
      flat &= rewards[g * G + j] == rewards[g * G];
    if (flat && c->dynamic_sampling) continue;
    for (int j = 0; j < G; j++) {
      int i = g * G + j;
      if (ro[i].n == 0) continue;
      s[n_s++] = (r1d_grpo_sample){train[pick[g]].prompt,
                                   train[pick[g]].n_prompt,
                                   ro[i].ids,
                                   ro[i].n,
                                   adv[i],
                                   NULL,
                                   NULL};
    }
  }
  for (int i = 0; i < n_s; i++)
    mt->tokens += s[i].n_completion;
  mt->lr = r1d_lr_at(&r->sched, step - 1);
  if (n_s == 0) goto done; /* no signal this step: nothing to update */

  double t0 = now_s();
  if (c->grpo.beta > 0) {
    for (int i = 0; rc == 0 && i < n_s; i++)
      if (!(lp_ref[i] = malloc((size_t)s[i].n_completion * sizeof(float))))
        rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    if (rc == 0)
      rc = r1d_grpo_logprobs(r->ref, r->ref_plan, s, n_s, lp_ref, err);
    for (int i = 0; rc == 0 && i < n_s; i++)
      s[i].lp_ref = lp_ref[i];
  }
  if (rc == 0 && c->num_iterations > 1) {
    /* pi_old: the policy that sampled, before this step's first update */
    for (int i = 0; rc == 0 && i < n_s; i++)
      if (!(lp_old[i] = malloc((size_t)s[i].n_completion * sizeof(float))))
        rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    if (rc == 0) rc = r1d_grpo_logprobs(r->tm, r->plan, s, n_s, lp_old, err);
    for (int i = 0; rc == 0 && i < n_s; i++)
      s[i].lp_old = lp_old[i];
  }
  mt->t_ref = now_s() - t0;
  for (int it = 0; rc == 0 && it < c->num_iterations; it++) {
    r1d_grpo_stats st = {0};
    double tb = now_s();
    r1d_train_zero_grad(r->tm);
    rc = r1d_grpo_accumulate(&c->grpo, r->tm, r->plan, s, n_s, &st, err);
    double to = now_s();
    mt->t_backward += to - tb;
    if (rc) break;
    double norm = r1d_optim_grad_norm(r->opt);
    if (!isfinite(norm))
      rc = r1d_fail(err, R1D_ERANGE, "the gradient norm is not finite");
    else if (c->clip > 0)
      rc = r1d_optim_clip_grad_norm(r->opt, c->clip, &norm, err);
    if (rc == 0) rc = r1d_optim_step(r->opt, mt->lr, err);
    mt->t_optim += now_s() - to;
    mt->loss = st.loss;
    mt->kl = st.tokens ? st.kl_sum / (double)st.tokens : 0;
    mt->clip_ratio = st.tokens ? (double)(st.clipped_low + st.clipped_high) /
                                     (double)st.tokens
                               : 0;
    mt->grad_norm = norm;
  }
  if (rc == 0 && r->ref && c->ref_refresh > 0 && step % c->ref_refresh == 0)
    memcpy(r->ref->params, r->tm->params, r->tm->n_floats * sizeof(float));
done:
  mt->t_step = now_s() - t_start;
  if (sampled) r1d_rollout_free(ro, N);
  for (int i = 0; lp_ref && lp_old && i < N; i++) {
    free(lp_ref[i]);
    free(lp_old[i]);
  }
  free(lp_ref);
  free(lp_old);
  free(s);
  free(adv);
  free(rewards);
  free(rw);
  free(ro);
  free(pick);
  return rc;
}

int r1d_grpo_run(const r1d_grpo_run_config *c, const r1d_model *m,
                 const r1d_tokenizer *tok, const r1d_grpo_task *train,
                 int n_train, const r1d_grpo_task *eval, int n_eval,
                 const r1d_grpo_hooks *h, r1d_error *err) {
  int rc = check_config(c, n_train, err);
  if (rc) return rc;
  run r = {.c = c, .tok = tok, .t0 = now_s()};
  if ((rc = setup(&r, m, train, n_train, eval, n_eval, err))) goto out;
  if ((rc = evaluate(&r, eval, n_eval, 0, h, err))) goto out;
  r1d_grpo_metrics last = {0};
  long step = 1;
  for (; step <= c->max_steps; step++) {
    r1d_grpo_metrics mt = {.step = step, .total_steps = c->max_steps};
    rc = train_step(&r, train, step, &mt, err);
    if (rc) {
      if (rc == R1D_ERANGE)
        r1d_fail(err, rc, "step %ld: %s; stopped, %s", step, err->msg,
                 r.last_good[0] ? r.last_good : "no checkpoint was written");
      goto out;
    }
    mt.elapsed_s = now_s() - r.t0;
    mt.eta_s = mt.elapsed_s / (double)step * (double)(c->max_steps - step);
    if (h && h->on_metrics) h->on_metrics(h->user, &mt);
    last = mt;
    int stop = h && h->stop && *h->stop;
    int final = step == c->max_steps || stop;
    if (!final && c->eval_every > 0 && step % c->eval_every == 0 &&
        (rc = evaluate(&r, eval, n_eval, step, h, err)))
      goto out;
    if ((final || (c->save_every > 0 && step % c->save_every == 0)) &&
        (rc = save(&r, step, &last, h, err)))
      goto out;
    if (stop) break;
  }
  if (c->max_steps > 0) /* 0: the evaluation at step 0 was the job */
    rc = evaluate(&r, eval, n_eval, step > c->max_steps ? c->max_steps : step,
                  h, err);
out:
  run_free(&r);
  return rc;
}

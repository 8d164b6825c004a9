/* cmd_grpo.c - `r1d grpo`: the command line of the offline GRPO run in
 * rl/grpo_run.h. It reads rule-verifiable tasks (the JSONL of `r1d tasks
 * import`, validated by the same parser), renders and tokenizes their
 * prompts, and shows progress: a one-line bar on a terminal, JSON lines
 * otherwise, and always OUT/metrics.jsonl. SIGINT/SIGTERM stop at the next
 * step boundary after a checkpoint. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/file.h"
#include "../engine/model/model.h"
#include "../kernels/cpu/cpu_backend.h"
#include "../rl/align.h"
#include "../rl/grpo_run.h"
#include "../rl/task_gen.h"
#include "../storage/tasks.h"
#include "cli.h"

const char cmd_grpo_help[] =
    "usage: r1d grpo --model DIR (--tasks FILE.jsonl | --task-gen NAME) --out "
    "DIR [options]\n"
    "\n"
    "Group-relative policy optimisation on rule-verifiable tasks (CPU). Each\n"
    "step samples --num-generations completions of --prompts-per-step\n"
    "training prompts through the serving engine on the policy's current\n"
    "weights, rewards them with the tasks' checkers, and updates the policy.\n"
    "FILE holds tasks as `r1d tasks import` takes them (prompt or messages,\n"
    "checker, split); split \"eval\" tasks are held out for evaluation.\n"
    "  --model DIR              Hugging Face folder (Qwen2 or Llama)\n"
    "  --tasks FILE             tasks JSONL; --eval-tasks FILE adds held-out\n"
    "                           ones\n"
    "  --task-gen NAME[:LEVEL]  generated tasks instead: addition[:digits],\n"
    "                           multistep[:operations], countdown[:numbers];\n"
    "                           --task-count N (1000) train and --eval-count "
    "M\n"
    "                           (200) held-out, never the same problem, from\n"
    "                           --seed\n"
    "  --out DIR                DIR/checkpoint-STEP, DIR/last, "
    "DIR/metrics.jsonl\n"
    "  --template NAME          chat template override (r1-zero for the\n"
    "                           R1-Zero prompt; see r1d template)\n"
    "GRPO (TRL's names):\n"
    "  --num-generations G      completions per prompt (default 8)\n"
    "  --prompts-per-step P     prompts per step (default 8)\n"
    "  --max-steps N            optimizer steps (default 100)\n"
    "  --max-completion-length L  tokens per completion (default 256)\n"
    "  --temperature T --top-p P  sampling of the rollouts (1.0, 1.0)\n"
    "  --loss-type grpo|dapo|dr_grpo   reduction (default dapo)\n"
    "  --scale-rewards group|batch|none  advantage scaling (default group)\n"
    "  --beta X                 KL weight to the reference model (default 0)\n"
    "  --epsilon X --epsilon-high X    clip range (0.2, 0.2)\n"
    "  --num-iterations K       updates per batch of rollouts (default 1)\n"
    "  --ref-refresh N          reference := policy every N steps (0 never)\n"
    "  --dynamic-sampling       drop groups whose rewards are all equal\n"
    "Rewards (weights of the sum):\n"
    "  --reward-accuracy W (1) --reward-format W (0) --reward-language W (0)\n"
    "  --language SCRIPT        script of the thought (default latin)\n"
    "  --answer-style think|tags  answer after </think> (default) or in\n"
    "                           <answer> tags (R1-Zero)\n"
    "  --overlong W --overlong-buffer N  soft penalty in the last N tokens\n"
    "  --strict-format          accuracy counts only well-formed answers\n"
    "Optimizer: --lr X (1e-5) --min-lr X --schedule constant|cosine\n"
    "  --warmup-ratio R --weight-decay X (0) --clip X (1, 0 off)\n"
    "Evaluation: --eval-every N (0: start and end only) --eval-samples k (4)\n"
    "  --eval-temperature T (0.6, top-p 0.95): pass@1 over k samples per\n"
    "  held-out task with a 95% interval\n"
    "Other: --save-every N --seed S (1) --threads N --max-tokens N (tokens\n"
    "  per training pack) --progress bar|json\n"
    "Exit status: 0 done (or stopped by a signal after a checkpoint), 1 a\n"
    "failure (a non-finite loss names the last good checkpoint), 2 bad\n"
    "arguments or tasks.\n";

const char cmd_align_help[] =
    "usage: r1d align --model DIR --reward-model RMDIR (--tasks FILE.jsonl |\n"
    "       --task-gen NAME) [--general FILE.jsonl] --out DIR [options]\n"
    "\n"
    "Alignment RL, the R1 recipe's last stage: GRPO whose reward is the rule\n"
    "reward on reasoning tasks (their checkers, as in r1d grpo) plus\n"
    "W * sigmoid(score) of a preference reward model trained by `r1d rm`\n"
    "(e.g. from /v1/feedback) on every completion. --general adds prompts\n"
    "without a checker ({\"prompt\": ...} or {\"messages\": [...]} per line)\n"
    "that only the reward model judges. Every option of r1d grpo applies.\n"
    "  --reward-model RMDIR     the reward model folder (r1d rm --out)\n"
    "  --reward-preference W    its weight (default 1)\n"
    "  --preference-start F     share of the steps before the reward model\n"
    "                           is switched on (default 0; R1 used it only\n"
    "                           in the last steps, as longer runs hacked it)\n"
    "  --general FILE           general prompts, mixed into the training\n"
    "                           tasks\n";

typedef struct grpo_opts {
  const char *model, *tasks, *eval_tasks, *out, *template_name, *progress;
  const char *task_gen;
  long long task_count, eval_count;
  const char *loss_type, *scale_rewards, *schedule, *language, *answer_style;
  long long G, P, max_steps, max_len, n_iter, ref_refresh, eval_every;
  long long eval_samples, save_every, seed, threads, max_tokens, overlong_buf;
  double temperature, top_p, beta, eps, eps_high, lr, min_lr, warmup_ratio;
  double wd, clip, w_acc, w_fmt, w_lang, w_overlong, eval_temperature;
  int dynamic, strict_format;
  /* r1d align */
  int align;
  const char *reward_model, *general;
  double w_pref, pref_start;
} grpo_opts;

typedef struct num_opt {
  const char *name;
  double lo, hi;
  long long *i; /* one of the two */
  double *f;
} num_opt;

static int parse_args(int argc, char **argv, grpo_opts *o) {
  const char *cmd = o->align ? "align" : "grpo";
  const num_opt nums[] = {
      {"num-generations", 2, 64, &o->G, NULL},
      {"prompts-per-step", 1, 4096, &o->P, NULL},
      {"max-steps", 1, 1e12, &o->max_steps, NULL},
      {"max-completion-length", 1, 1 << 20, &o->max_len, NULL},
      {"num-iterations", 1, 64, &o->n_iter, NULL},
      {"ref-refresh", 0, 1e12, &o->ref_refresh, NULL},
      {"eval-every", 0, 1e12, &o->eval_every, NULL},
      {"eval-samples", 1, 64, &o->eval_samples, NULL},
      {"save-every", 0, 1e12, &o->save_every, NULL},
      {"seed", 0, 4e18, &o->seed, NULL},
      {"threads", 1, 1024, &o->threads, NULL},
      {"max-tokens", 2, 1 << 22, &o->max_tokens, NULL},
      {"overlong-buffer", 0, 1 << 20, &o->overlong_buf, NULL},
      {"task-count", 1, 1000000, &o->task_count, NULL},
      {"eval-count", 0, 1000000, &o->eval_count, NULL},
      {"temperature", 1e-3, 2, NULL, &o->temperature},
      {"top-p", 1e-6, 1, NULL, &o->top_p},
      {"beta", 0, 100, NULL, &o->beta},
      {"epsilon", 0, 0.999, NULL, &o->eps},
      {"epsilon-high", 0, 10, NULL, &o->eps_high},
      {"lr", 1e-12, 10, NULL, &o->lr},
      {"min-lr", 0, 10, NULL, &o->min_lr},
      {"warmup-ratio", 0, 1, NULL, &o->warmup_ratio},
      {"weight-decay", 0, 10, NULL, &o->wd},
      {"clip", 0, 1e9, NULL, &o->clip},
      {"reward-accuracy", 0, 1e3, NULL, &o->w_acc},
      {"reward-format", 0, 1e3, NULL, &o->w_fmt},
      {"reward-language", 0, 1e3, NULL, &o->w_lang},
      {"overlong", 0, 1e3, NULL, &o->w_overlong},
      {"eval-temperature", 0, 2, NULL, &o->eval_temperature},
      {"reward-preference", 0, 1e3, NULL, &o->w_pref},
      {"preference-start", 0, 1, NULL, &o->pref_start},
  };
  enum { N_NUM = sizeof nums / sizeof nums[0], OPT_NUM = 1000 };
  const struct option named[] = {
      {"model", required_argument, 0, 'm'},
      {"tasks", required_argument, 0, 't'},
      {"task-gen", required_argument, 0, 'g'},
      {"eval-tasks", required_argument, 0, 'e'},
      {"out", required_argument, 0, 'o'},
      {"template", required_argument, 0, 'T'},
      {"progress", required_argument, 0, 'p'},
      {"loss-type", required_argument, 0, 'l'},
      {"scale-rewards", required_argument, 0, 's'},
      {"schedule", required_argument, 0, 'S'},
      {"language", required_argument, 0, 'L'},
      {"answer-style", required_argument, 0, 'a'},
      {"dynamic-sampling", no_argument, 0, 'd'},
      {"strict-format", no_argument, 0, 'f'},
      {"reward-model", required_argument, 0, 'R'},
      {"general", required_argument, 0, 'G'},
      {"help", no_argument, 0, 'h'},
  };
  enum { N_NAMED = sizeof named / sizeof named[0] };
  struct option opts[N_NUM + N_NAMED + 1];
  for (int i = 0; i < N_NUM; i++)
    opts[i] = (struct option){nums[i].name, required_argument, 0, OPT_NUM + i};
  for (int i = 0; i < N_NAMED; i++)
    opts[N_NUM + i] = named[i];
  opts[N_NUM + N_NAMED] = (struct option){0, 0, 0, 0};
  int c, idx = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
    if (c >= OPT_NUM && c < OPT_NUM + N_NUM) {
      const num_opt *n = &nums[c - OPT_NUM];
      int bad =
          n->i ? cli_parse_int(optarg, (long long)n->lo, (long long)n->hi, n->i)
               : cli_parse_float(optarg, n->lo, n->hi, n->f);
      if (bad)
        return cli_usage_error("%s --%s: expected %s in [%g, %g], got '%s'",
                               cmd, n->name, n->i ? "an integer" : "a number",
                               n->lo, n->hi, optarg);
      continue;
    }
    switch (c) {
    case 'm': o->model = optarg; break;
    case 't': o->tasks = optarg; break;
    case 'g': o->task_gen = optarg; break;
    case 'e': o->eval_tasks = optarg; break;
    case 'o': o->out = optarg; break;
    case 'T': o->template_name = optarg; break;
    case 'p': o->progress = optarg; break;
    case 'l': o->loss_type = optarg; break;
    case 's': o->scale_rewards = optarg; break;
    case 'S': o->schedule = optarg; break;
    case 'L': o->language = optarg; break;
    case 'a': o->answer_style = optarg; break;
    case 'd': o->dynamic = 1; break;
    case 'f': o->strict_format = 1; break;
    case 'R': o->reward_model = optarg; break;
    case 'G': o->general = optarg; break;
    case 'h':
      fputs(o->align ? cmd_align_help : cmd_grpo_help, stdout);
      return -1;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc)
    return cli_usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
  if (!o->align && (o->reward_model || o->general))
    return cli_usage_error("grpo: --reward-model and --general belong to r1d "
                           "align");
  if (o->align && !o->reward_model)
    return cli_usage_error("align: --reward-model RMDIR is required");
  if (!o->model || !o->out || !!o->tasks + !!o->task_gen != 1)
    return cli_usage_error("%s: --model DIR, --out DIR and one of --tasks "
                           "FILE or --task-gen NAME are required",
                           cmd);
  if (r1d_grpo_loss_parse(o->loss_type) < 0)
    return cli_usage_error("%s --loss-type: grpo, dapo or dr_grpo, not '%s'",
                           cmd, o->loss_type);
  if (r1d_grpo_scale_parse(o->scale_rewards) < 0)
    return cli_usage_error("%s --scale-rewards: group, batch or none, not '%s'",
                           cmd, o->scale_rewards);
  if (strcmp(o->schedule, "constant") && strcmp(o->schedule, "cosine"))
    return cli_usage_error("%s --schedule: constant or cosine, not '%s'", cmd,
                           o->schedule);
  if (strcmp(o->answer_style, "think") && strcmp(o->answer_style, "tags"))
    return cli_usage_error("%s --answer-style: think or tags, not '%s'", cmd,
                           o->answer_style);
  if (o->progress && strcmp(o->progress, "bar") && strcmp(o->progress, "json"))
    return cli_usage_error("%s --progress: bar or json, not '%s'", cmd,
                           o->progress);
  if (o->min_lr > o->lr)
    return cli_usage_error("%s: --min-lr %g is above --lr %g", cmd, o->min_lr,
                           o->lr);
  if (strlen(o->language) >= sizeof((r1d_reward_config *)0)->language)
    return cli_usage_error("%s --language: '%s' is too long", cmd, o->language);
  return 0;
}

/* ---- tasks ------------------------------------------------------------ */

typedef struct task_set {
  r1d_grpo_task *v;
  int n, cap;
} task_set;

static int task_push(task_set *s, const r1d_grpo_task *t) {
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    r1d_grpo_task *v = realloc(s->v, (size_t)cap * sizeof *v);
    if (!v) return R1D_ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = *t;
  return R1D_OK;
}

static void task_set_free(task_set *s) {
  for (int i = 0; i < s->n; i++)
    r1d_grpo_task_free(&s->v[i]);
  free(s->v);
}

/* Parses the tasks of text (JSONL from `path`; bad lines reported by number,
 * then refused: a training run on half a file is a surprise) into train or
 * eval by split; all into eval when force_eval. */
static int parse_tasks(const char *text, size_t len, const char *path,
                       int force_eval, const r1d_template *tm,
                       const r1d_tokenizer *tok, task_set *train,
                       task_set *eval, r1d_error *err) {
  r1d_task_batch b = {0};
  int rc = r1d_tasks_parse(text, len, &b, err);
  for (size_t i = 0; rc == 0 && i < b.n_errors; i++)
    fprintf(stderr, "r1d: %s:%zu: %s\n", path, b.errors[i].line,
            b.errors[i].msg);
  if (rc == 0 && b.n_errors)
    rc = r1d_fail(err, R1D_EINVAL, "%s: %zu bad task lines (listed above)",
                  path, b.n_errors);
  for (size_t i = 0; rc == 0 && i < b.n; i++) {
    json_error_t je;
    json_t *j = json_loads(b.tasks[i].json, 0, &je);
    r1d_grpo_task t;
    r1d_error terr = {0};
    if (!j) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s:%zu: %s", path, b.tasks[i].line,
                    je.text);
      break;
    }
    const char *split = json_string_value(json_object_get(j, "split"));
    int is_eval = force_eval || (split && !strcmp(split, "eval"));
    rc = r1d_grpo_task_prepare(j, tm, tok, &t, &terr);
    json_decref(j);
    if (rc) {
      r1d_fail(err, rc, "%s:%zu: %s", path, b.tasks[i].line, terr.msg);
      break;
    }
    if (task_push(is_eval ? eval : train, &t)) {
      r1d_grpo_task_free(&t);
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    }
  }
  r1d_task_batch_free(&b);
  return rc;
}

static int load_tasks(const char *path, int force_eval, const r1d_template *tm,
                      const r1d_tokenizer *tok, task_set *train, task_set *eval,
                      r1d_error *err) {
  char *text = NULL;
  size_t len = 0;
  int rc = r1d_read_file(path, &text, &len, err);
  if (rc == 0)
    rc = parse_tasks(text, len, path, force_eval, tm, tok, train, eval, err);
  free(text);
  return rc;
}

/* --task-gen: the generator's tasks, through the same parser. */
static int gen_tasks(const char *spec, long long n_train, long long n_eval,
                     long long seed, const r1d_template *tm,
                     const r1d_tokenizer *tok, task_set *train, task_set *eval,
                     r1d_error *err) {
  json_t *arr = NULL;
  int rc =
      r1d_task_gen(spec, (int)n_train, (int)n_eval, (uint64_t)seed, &arr, err);
  if (rc) return rc;
  size_t i;
  json_t *t;
  r1d_buf text = {0};
  json_array_foreach(arr, i, t) {
    char *line = json_dumps(t, JSON_COMPACT);
    if (!line || r1d_buf_append(&text, line, strlen(line)) ||
        r1d_buf_append(&text, "\n", 1))
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    free(line);
    if (rc) break;
  }
  json_decref(arr);
  if (rc == 0)
    rc = parse_tasks(text.p ? text.p : "", text.n, spec, 0, tm, tok, train,
                     eval, err);
  r1d_buf_free(&text);
  return rc;
}

/* --general: prompts without a checker, one JSON object per line, for the
 * reward model alone to judge. */
static int load_general(const char *path, const r1d_template *tm,
                        const r1d_tokenizer *tok, task_set *train,
                        r1d_error *err) {
  char *text = NULL;
  size_t len = 0;
  int rc = r1d_read_file(path, &text, &len, err);
  long line = 0;
  size_t pos = 0, n;
  const char *c;
  while (rc == 0 && r1d_next_line(text, len, &pos, &c, &n)) {
    line++;
    if (n == 0) continue;
    json_error_t je;
    json_t *j = json_loadb(c, n, 0, &je);
    if (!json_is_object(j)) {
      json_decref(j);
      rc = r1d_fail(err, R1D_EINVAL, "%s:%ld: not a JSON object (%s)", path,
                    line, j ? "" : je.text);
      break;
    }
    if (!json_object_get(j, "id")) {
      char id[64];
      snprintf(id, sizeof id, "general-%ld", line);
      json_object_set_new(j, "id", json_string(id));
    }
    r1d_grpo_task t;
    r1d_error terr = {0};
    rc = r1d_grpo_task_prepare_general(j, tm, tok, &t, &terr);
    json_decref(j);
    if (rc) {
      r1d_fail(err, rc, "%s:%ld: %s", path, line, terr.msg);
      break;
    }
    if (task_push(train, &t)) {
      r1d_grpo_task_free(&t);
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    }
  }
  free(text);
  return rc;
}

/* ---- progress --------------------------------------------------------- */

typedef struct progress {
  int bar;
  FILE *metrics_file;
} progress;

static void print_json(FILE *f, const r1d_grpo_metrics *m) {
  char pref[48] = "";
  if (isfinite(m->preference))
    snprintf(pref, sizeof pref, ", \"preference\": %.6g", m->preference);
  if (m->is_eval)
    fprintf(f,
            "{\"step\": %ld, \"eval_pass1\": %.6g, \"eval_pass1_ci95\": "
            "%.6g, \"eval_gain\": %.6g, \"eval_gain_ci95\": %.6g, "
            "\"eval_format_rate\": %.6g, \"eval_completion_len\": %.4g, "
            "\"eval_tasks\": %d, \"eval_k\": %d, \"elapsed_s\": %.3f}\n",
            m->step, m->eval_pass1, m->eval_pass1_ci, m->eval_gain,
            m->eval_gain_ci, m->eval_format, m->eval_len, m->eval_tasks,
            m->eval_k, m->elapsed_s);
  else
    fprintf(f,
            "{\"step\": %ld, \"total_steps\": %ld, \"reward\": %.6g, "
            "\"reward_std\": %.6g, \"accuracy\": %.6g, \"format_rate\": %.6g, "
            "\"completion_len\": %.4g, \"truncated_rate\": %.4g, \"groups\": "
            "%d, \"flat_groups\": %d, \"loss\": %.9g, \"kl\": %.6g, "
            "\"clip_ratio\": %.6g, \"lr\": %.6g, \"grad_norm\": %.6g, "
            "\"tokens\": %ld, \"t_rollout\": %.4f, \"t_reward\": %.4f, "
            "\"t_ref\": %.4f, \"t_backward\": %.4f, \"t_optim\": %.4f, "
            "\"t_step\": %.4f, \"rollout_tokens_per_s\": %.1f, "
            "\"elapsed_s\": %.3f, \"eta_s\": %.1f%s}\n",
            m->step, m->total_steps, m->reward_mean, m->reward_std, m->accuracy,
            m->format_rate, m->completion_len, m->truncated_rate, m->groups,
            m->flat_groups, m->loss, m->kl, m->clip_ratio, m->lr, m->grad_norm,
            m->tokens, m->t_rollout, m->t_reward, m->t_ref, m->t_backward,
            m->t_optim, m->t_step, m->rollout_tokens_per_s, m->elapsed_s,
            m->eta_s, pref);
  fflush(f);
}

static void on_metrics(void *user, const r1d_grpo_metrics *m) {
  progress *p = user;
  if (p->metrics_file) print_json(p->metrics_file, m);
  if (!p->bar) {
    print_json(stdout, m);
    return;
  }
  if (m->is_eval) {
    fprintf(stderr,
            "\r\033[K  eval at step %ld: pass@1 %.3f +- %.3f (%d tasks x %d; "
            "%+.3f +- %.3f since step 0), format %.2f, length %.1f\n",
            m->step, m->eval_pass1, m->eval_pass1_ci, m->eval_tasks, m->eval_k,
            m->eval_gain, m->eval_gain_ci, m->eval_format, m->eval_len);
    return;
  }
  char bar[20 + 1], eta[32];
  cli_progress_bar(bar, 20, m->step, m->total_steps);
  cli_fmt_duration(m->eta_s, eta, sizeof eta);
  fprintf(stderr,
          "\r\033[K[%s] step %ld/%ld  reward %.3f  acc %.2f  fmt %.2f  len "
          "%.0f  kl %.3g  %.1fs/step  ETA %s",
          bar, m->step, m->total_steps, m->reward_mean, m->accuracy,
          m->format_rate, m->completion_len, m->kl, m->t_step, eta);
  fflush(stderr);
}

static void on_checkpoint(void *user, const char *path, long step) {
  progress *p = user;
  (void)step;
  if (p->bar) fprintf(stderr, "\r\033[K  saved %s\n", path);
}

/* ---- the command ------------------------------------------------------ */

static int grpo_main(int argc, char **argv, int align) {
  grpo_opts o = {.align = align,
                 .w_pref = 1.0,
                 .G = 8,
                 .task_count = 1000,
                 .eval_count = 200,
                 .P = 8,
                 .max_steps = 100,
                 .max_len = 256,
                 .n_iter = 1,
                 .eval_samples = 4,
                 .seed = 1,
                 .temperature = 1.0,
                 .top_p = 1.0,
                 .eps = 0.2,
                 .eps_high = -1,
                 .lr = 1e-5,
                 .clip = 1.0,
                 .w_acc = 1.0,
                 .eval_temperature = 0.6,
                 .loss_type = "dapo",
                 .scale_rewards = "group",
                 .schedule = "constant",
                 .language = "latin",
                 .answer_style = "think"};
  int st = parse_args(argc, argv, &o);
  if (st == -1) return CLI_EXIT_OK;
  if (st) return st;

  r1d_error err = {0};
  r1d_backend be;
  r1d_cpu_backend_init(&be, (int)o.threads);
  r1d_tokenizer *tok = NULL;
  r1d_template *tmpl = NULL;
  r1d_model *model = NULL;
  r1d_reward_model *rm = NULL;
  task_set train = {0}, eval = {0};
  progress prog = {0};
  int status = CLI_EXIT_FAIL;

  if (r1d_tokenizer_load_dir(o.model, &tok, &err) ||
      (o.template_name
           ? r1d_template_load_dir_as(o.model, o.template_name, &tmpl, &err)
           : r1d_template_load_dir(o.model, &tmpl, &err)) ||
      (o.tasks ? load_tasks(o.tasks, 0, tmpl, tok, &train, &eval, &err)
               : gen_tasks(o.task_gen, o.task_count, o.eval_count, o.seed, tmpl,
                           tok, &train, &eval, &err)) ||
      (o.eval_tasks &&
       load_tasks(o.eval_tasks, 1, tmpl, tok, &train, &eval, &err)) ||
      (o.general && load_general(o.general, tmpl, tok, &train, &err)) ||
      (o.reward_model &&
       r1d_reward_model_load(o.reward_model, (int)o.threads, &rm, &err)) ||
      r1d_model_load(o.model, &be, &model, &err)) {
    status = cli_report(&err);
    goto done;
  }
  fprintf(stderr, "r1d: %d training tasks, %d held-out tasks\n", train.n,
          eval.n);

  r1d_grpo_run_config c;
  r1d_grpo_run_config_default(&c);
  c.src_dir = o.model;
  c.out_dir = o.out;
  c.grpo.group_size = (int)o.G;
  c.grpo.loss_type = (r1d_grpo_loss_type)r1d_grpo_loss_parse(o.loss_type);
  c.grpo.scale_rewards = (r1d_grpo_scale)r1d_grpo_scale_parse(o.scale_rewards);
  c.grpo.beta = o.beta;
  c.grpo.eps_low = o.eps;
  c.grpo.eps_high = o.eps_high >= 0 ? o.eps_high : o.eps;
  c.grpo.max_completion_len = (int)o.max_len;
  c.reward.w_accuracy = o.w_acc;
  c.reward.w_format = o.w_fmt;
  c.reward.w_language = o.w_lang;
  c.reward.style =
      strcmp(o.answer_style, "tags") ? R1D_ANSWER_AFTER_THINK : R1D_ANSWER_TAGS;
  snprintf(c.reward.language, sizeof c.reward.language, "%s", o.language);
  c.reward.w_overlong = o.w_overlong;
  c.reward.overlong_max_tokens = (size_t)o.max_len;
  c.reward.overlong_buffer = (size_t)o.overlong_buf;
  c.reward.strict_format = o.strict_format;
  c.adamw.lr = o.lr;
  c.adamw.weight_decay = o.wd;
  c.sched.kind =
      strcmp(o.schedule, "cosine") ? R1D_LR_CONSTANT : R1D_LR_WARMUP_COSINE;
  if (c.sched.kind == R1D_LR_CONSTANT && o.warmup_ratio > 0)
    c.sched.kind = R1D_LR_WARMUP_CONSTANT;
  c.sched.lr = o.lr;
  c.sched.min_lr = o.min_lr;
  c.warmup_ratio = o.warmup_ratio;
  c.clip = o.clip;
  c.prompts_per_step = (int)o.P;
  c.max_steps = (long)o.max_steps;
  c.num_iterations = (int)o.n_iter;
  c.ref_refresh = (long)o.ref_refresh;
  c.dynamic_sampling = o.dynamic;
  c.temperature = (float)o.temperature;
  c.top_p = (float)o.top_p;
  c.max_tokens = (int)o.max_tokens;
  c.save_every = (long)o.save_every;
  c.eval_every = (long)o.eval_every;
  c.eval_samples = (int)o.eval_samples;
  c.eval_temperature = (float)o.eval_temperature;
  c.seed = (uint64_t)o.seed;
  if (rm) {
    c.preference = r1d_align_score;
    c.preference_user = rm;
    c.w_preference = o.w_pref;
    c.preference_start = o.pref_start;
  }

  if (r1d_mkdir_p(o.out, &err)) {
    status = cli_report(&err);
    goto done;
  }
  prog.metrics_file = cli_open_metrics(o.out);
  prog.bar = o.progress ? strcmp(o.progress, "bar") == 0 : isatty(2);
  r1d_grpo_hooks hooks = {.on_metrics = on_metrics,
                          .on_checkpoint = on_checkpoint,
                          .stop = cli_stop_flag(),
                          .user = &prog};
  cli_catch_stop_signals();
  int rc = r1d_grpo_run(&c, model, tok, train.v, train.n, eval.v, eval.n,
                        &hooks, &err);
  if (prog.bar) fputc('\n', stderr);
  if (rc) {
    status = rc == R1D_EINVAL ? cli_report(&err) : CLI_EXIT_FAIL;
    if (rc != R1D_EINVAL) fprintf(stderr, "r1d: %s\n", err.msg);
    goto done;
  }
  fprintf(stderr, "r1d: %s; the model is %s/last\n",
          *cli_stop_flag() ? "stopped by a signal" : "done", o.out);
  status = CLI_EXIT_OK;
done:
  if (prog.metrics_file) fclose(prog.metrics_file);
  task_set_free(&train);
  task_set_free(&eval);
  r1d_model_free(model);
  r1d_reward_model_free(rm);
  r1d_template_free(tmpl);
  r1d_tokenizer_free(tok);
  return status;
}

int cmd_grpo(int argc, char **argv) {
  return grpo_main(argc, argv, 0);
}

int cmd_align(int argc, char **argv) {
  return grpo_main(argc, argv, 1);
}

/* cmd_rm.c - `r1d rm` (train a preference reward model, rl/reward_model.h)
 * and `r1d rm score` (score prompt/completion rows with one). Training
 * reads chosen/rejected pairs from TRL-style JSONL files and/or from the
 * feedback logged in a data dir (storage/feedback_pairs.h), holds out an
 * eval split, shows progress like `r1d sft` (a bar on a terminal, text
 * lines otherwise), stops cleanly on SIGINT/SIGTERM (the model trained so
 * far is saved), and writes the folder plus metrics.jsonl. */
#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/file.h"
#include "../rl/reward_model.h"
#include "../storage/feedback_pairs.h"
#include "cli.h"

const char cmd_rm_help[] =
    "usage: r1d rm --model DIR (--data PAIRS.jsonl | --data-dir DATADIR) "
    "--out DIR\n"
    "              [options]\n"
    "       r1d rm score --model RMDIR --data ROWS.jsonl [--threads N] "
    "[--batch N]\n"
    "\n"
    "Trains a reward model for alignment RL from preference pairs. The model\n"
    "is a causal LM used as a judge: the chat template's rendering of the\n"
    "prompt and the answer, then a judge suffix (\"\\nGood answer?\"), and "
    "the\n"
    "score is logit(\"Y\") - logit(\"N\") at the last position. Only the "
    "text\n"
    "after </think> is scored (the whole text when there is none). Loss:\n"
    "Bradley-Terry, -log sigmoid(score(chosen) - score(rejected)).\n"
    "Pairs (JSONL, TRL RewardTrainer's formats):\n"
    "  {\"chosen\": \"...\", \"rejected\": \"...\"[, \"prompt\": \"...\"]}\n"
    "  {\"prompt\": [messages], \"chosen\": [assistant message], "
    "\"rejected\": [...]}\n"
    "  {\"chosen\": [messages], \"rejected\": [messages]} (shared prefix = "
    "prompt)\n"
    "--data-dir DIR adds the pairs of r1d serve's logged feedback (a\n"
    "\"preferred\" text beats the answer; differently rated answers to one\n"
    "prompt pair up), as `r1d logs export --format pairs` shows them.\n"
    "  --model DIR          the starting model (any folder r1d loads, or a\n"
    "                       reward model to train further)\n"
    "  --out DIR            the reward model folder (weights, "
    "reward_model.json,\n"
    "                       rm_state.json, metrics.jsonl)\n"
    "  --eval-data FILE | --eval-fraction F   held-out pairs (default 0.1 "
    "of\n"
    "                       the data when there are >= 10 pairs)\n"
    "  --lr X (1e-4) --min-lr X (0) --schedule cosine|constant\n"
    "  --warmup-ratio R (0.05) --weight-decay X (0) --clip X (1, 0 off)\n"
    "  --epochs E (1) --max-steps N (overrides) --batch N (8 pairs a step)\n"
    "  --center-coef X      + X (r_chosen + r_rejected)^2 keeps scores near "
    "0\n"
    "                       (default 0.01)\n"
    "  --eval-every N       eval steps (default: at start and end)\n"
    "  --max-len N          tokens per scored text, longer ones keep their "
    "end\n"
    "                       (default 512)\n"
    "  --suffix S           the judge suffix for a fresh model\n"
    "  --template NAME      chat template override (see r1d template)\n"
    "  --seed S (42) --threads N --strict (a bad line stops the run)\n"
    "  --metrics FILE       JSON lines per step and eval as they happen\n"
    "                       (else OUT/metrics.jsonl at the end)\n"
    "  --progress bar|text  default: bar on a terminal\n"
    "  --json               the summary as one JSON object on stdout\n"
    "score: rows {\"prompt\": string or messages (optional), "
    "\"completion\":\n"
    "\"...\"}; prints {\"score\": r} per row, in order.\n"
    "Exit status: 0 done, 1 a failure, 2 bad arguments or data.\n";

typedef struct rm_opts {
  const char *model, *data, *data_dir, *out, *eval_data, *metrics;
  const char *schedule, *progress, *suffix, *template_name;
  long long max_steps, batch, seed, threads, eval_every, max_len;
  double lr, min_lr, epochs, warmup_ratio, weight_decay, clip, center_coef;
  double eval_fraction;
  int json, strict, eval_fraction_set;
} rm_opts;

/* ---- progress ---------------------------------------------------------- */

typedef struct progress {
  int bar;
  FILE *metrics; /* --metrics, streamed */
  char *buf;     /* else the lines, for OUT/metrics.jsonl */
  size_t len, cap;
} progress;

static void add_line(progress *p, const char *s) {
  if (p->metrics) {
    fputs(s, p->metrics);
    fflush(p->metrics);
    return;
  }
  size_t n = strlen(s);
  if (p->len + n + 1 > p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 4096;
    while (cap < p->len + n + 1)
      cap *= 2;
    char *q = realloc(p->buf, cap);
    if (!q) return; /* metrics are a convenience: keep training */
    p->buf = q;
    p->cap = cap;
  }
  memcpy(p->buf + p->len, s, n + 1);
  p->len += n;
}

static void on_metrics(void *user, const r1d_rm_metrics *m) {
  progress *p = user;
  char line[768];
  if (m->is_eval) {
    snprintf(line, sizeof line,
             "{\"step\": %ld, \"eval_accuracy\": %.6g, \"eval_lo\": %.6g, "
             "\"eval_hi\": %.6g, \"eval_loss\": %.9g, \"eval_margin\": "
             "%.6g, \"eval_score_mean\": %.6g, \"eval_pairs\": %ld}\n",
             m->step, m->eval.accuracy, m->eval.lo, m->eval.hi, m->eval.loss,
             m->eval.margin, m->eval.score_mean, m->eval.pairs);
    add_line(p, line);
    fprintf(stderr,
            "%s  eval at step %ld: accuracy %.3f [%.3f, %.3f] over %ld "
            "pairs, loss %.4f, margin %.3f\n",
            p->bar ? "\r\033[K" : "", m->step, m->eval.accuracy, m->eval.lo,
            m->eval.hi, m->eval.pairs, m->eval.loss, m->eval.margin);
    return;
  }
  snprintf(line, sizeof line,
           "{\"step\": %ld, \"total_steps\": %ld, \"epoch\": %.4f, \"loss\": "
           "%.9g, \"accuracy\": %.6g, \"margin\": %.6g, \"lr\": %.6g, "
           "\"grad_norm\": %.6g, \"pairs\": %ld, \"tokens\": %ld, "
           "\"pairs_per_s\": %.2f, \"elapsed_s\": %.3f, \"eta_s\": %.1f}\n",
           m->step, m->total_steps, m->epoch, m->loss, m->accuracy, m->margin,
           m->lr, m->grad_norm, m->pairs, m->tokens, m->pairs_per_s,
           m->elapsed_s, m->eta_s);
  add_line(p, line);
  if (p->bar) {
    char bar[25], eta[32];
    cli_progress_bar(bar, 24, m->step, m->total_steps);
    cli_fmt_duration(m->eta_s, eta, sizeof eta);
    fprintf(stderr,
            "\r\033[K[%s] step %ld/%ld  loss %.4f  acc %.2f  margin %.2f  lr "
            "%.2e  %.1f pairs/s  ETA %s",
            bar, m->step, m->total_steps, m->loss, m->accuracy, m->margin,
            m->lr, m->pairs_per_s, eta);
    if (m->step == m->total_steps) fputc('\n', stderr);
    fflush(stderr);
  } else if (m->step == 1 || m->step == m->total_steps || m->step % 10 == 0) {
    fprintf(stderr,
            "r1d: step %ld/%ld loss %.4f accuracy %.3f margin %.3f lr %.3g\n",
            m->step, m->total_steps, m->loss, m->accuracy, m->margin, m->lr);
  }
}

/* ---- arguments --------------------------------------------------------- */

static int parse_args(int argc, char **argv, rm_opts *o) {
  enum {
    O_LR = 1000,
    O_MIN_LR,
    O_EPOCHS,
    O_MAX_STEPS,
    O_BATCH,
    O_SEED,
    O_THREADS,
    O_WARMUP,
    O_WD,
    O_CLIP,
    O_CENTER,
    O_EVAL_EVERY,
    O_MAX_LEN,
    O_EVAL_FRACTION
  };
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},
      {"data", required_argument, 0, 'd'},
      {"data-dir", required_argument, 0, 'D'},
      {"out", required_argument, 0, 'o'},
      {"eval-data", required_argument, 0, 'E'},
      {"metrics", required_argument, 0, 'M'},
      {"schedule", required_argument, 0, 'S'},
      {"progress", required_argument, 0, 'P'},
      {"suffix", required_argument, 0, 'x'},
      {"template", required_argument, 0, 'T'},
      {"json", no_argument, 0, 'j'},
      {"strict", no_argument, 0, 's'},
      {"help", no_argument, 0, 'h'},
      {"lr", required_argument, 0, O_LR},
      {"min-lr", required_argument, 0, O_MIN_LR},
      {"epochs", required_argument, 0, O_EPOCHS},
      {"max-steps", required_argument, 0, O_MAX_STEPS},
      {"batch", required_argument, 0, O_BATCH},
      {"seed", required_argument, 0, O_SEED},
      {"threads", required_argument, 0, O_THREADS},
      {"warmup-ratio", required_argument, 0, O_WARMUP},
      {"weight-decay", required_argument, 0, O_WD},
      {"clip", required_argument, 0, O_CLIP},
      {"center-coef", required_argument, 0, O_CENTER},
      {"eval-every", required_argument, 0, O_EVAL_EVERY},
      {"max-len", required_argument, 0, O_MAX_LEN},
      {"eval-fraction", required_argument, 0, O_EVAL_FRACTION},
      {0, 0, 0, 0}};
  struct {
    int id;
    const char *name;
    long long lo, hi;
    long long *dst;
  } ints[] = {{O_MAX_STEPS, "max-steps", 1, 1LL << 40, &o->max_steps},
              {O_BATCH, "batch", 1, 1 << 16, &o->batch},
              {O_SEED, "seed", 0, 1LL << 62, &o->seed},
              {O_THREADS, "threads", 1, 1024, &o->threads},
              {O_EVAL_EVERY, "eval-every", 1, 1LL << 40, &o->eval_every},
              {O_MAX_LEN, "max-len", 8, 1 << 20, &o->max_len}};
  struct {
    int id;
    const char *name;
    double lo, hi;
    double *dst;
  } floats[] = {{O_LR, "lr", 1e-12, 10, &o->lr},
                {O_MIN_LR, "min-lr", 0, 10, &o->min_lr},
                {O_EPOCHS, "epochs", 1e-9, 1e6, &o->epochs},
                {O_WARMUP, "warmup-ratio", 0, 0.999999, &o->warmup_ratio},
                {O_WD, "weight-decay", 0, 10, &o->weight_decay},
                {O_CLIP, "clip", 0, 1e9, &o->clip},
                {O_CENTER, "center-coef", 0, 100, &o->center_coef},
                {O_EVAL_FRACTION, "eval-fraction", 0, 0.9, &o->eval_fraction}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    int done = 0;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !done; i++)
      if (ints[i].id == c) {
        if (cli_parse_int(optarg, ints[i].lo, ints[i].hi, ints[i].dst))
          return cli_usage_error(
              "rm --%s: expected an integer in [%lld, %lld], got '%s'",
              ints[i].name, ints[i].lo, ints[i].hi, optarg);
        done = 1;
      }
    for (size_t i = 0; i < sizeof floats / sizeof floats[0] && !done; i++)
      if (floats[i].id == c) {
        if (cli_parse_float(optarg, floats[i].lo, floats[i].hi, floats[i].dst))
          return cli_usage_error(
              "rm --%s: expected a number in [%g, %g], got '%s'",
              floats[i].name, floats[i].lo, floats[i].hi, optarg);
        if (c == O_EVAL_FRACTION) o->eval_fraction_set = 1;
        done = 1;
      }
    if (done) continue;
    switch (c) {
    case 'm': o->model = optarg; break;
    case 'd': o->data = optarg; break;
    case 'D': o->data_dir = optarg; break;
    case 'o': o->out = optarg; break;
    case 'E': o->eval_data = optarg; break;
    case 'M': o->metrics = optarg; break;
    case 'S': o->schedule = optarg; break;
    case 'P': o->progress = optarg; break;
    case 'x': o->suffix = optarg; break;
    case 'T': o->template_name = optarg; break;
    case 'j': o->json = 1; break;
    case 's': o->strict = 1; break;
    case 'h': fputs(cmd_rm_help, stdout); return -1;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc)
    return cli_usage_error("rm: unexpected argument '%s'", argv[optind]);
  if (!o->model) return cli_usage_error("rm: --model DIR is required");
  if (!o->out) return cli_usage_error("rm: --out DIR is required");
  if (!o->data && !o->data_dir)
    return cli_usage_error(
        "rm: give --data PAIRS.jsonl or --data-dir DATADIR (or both)");
  if (o->eval_data && o->eval_fraction_set)
    return cli_usage_error("rm: give --eval-data or --eval-fraction, not both");
  if (strcmp(o->schedule, "cosine") && strcmp(o->schedule, "constant"))
    return cli_usage_error("rm --schedule: cosine or constant, not '%s'",
                           o->schedule);
  if (o->progress && strcmp(o->progress, "bar") && strcmp(o->progress, "text"))
    return cli_usage_error("rm --progress: bar or text, not '%s'", o->progress);
  if (o->min_lr > o->lr)
    return cli_usage_error("rm: --min-lr %g is above --lr %g", o->min_lr,
                           o->lr);
  return 0;
}

/* ---- data -------------------------------------------------------------- */

typedef struct bad_ctx {
  const char *path;
} bad_ctx;

static void on_bad(void *user, long line, const char *msg) {
  const bad_ctx *b = user;
  fprintf(stderr, "r1d: %s:%ld: %s\n", b->path, line, msg);
}

/* The pairs of the feedback logged in a data dir. */
static int load_data_dir(const char *dir, int strict, r1d_pref_set *set,
                         r1d_error *err) {
  r1d_db_options dbo = {.read_only = 1};
  r1d_db *db = NULL;
  json_t *rows = NULL;
  int rc = r1d_db_open(dir, &dbo, &db, err);
  if (rc == 0) rc = r1d_feedback_pairs_collect(db, 0, &rows, err);
  r1d_db_close(db);
  if (rc) return rc;
  char label[4200];
  snprintf(label, sizeof label, "%s (feedback pair", dir);
  bad_ctx b = {label};
  size_t before = set->n;
  rc = r1d_pref_add_json_array(rows, strict, on_bad, &b, set, err);
  if (rc == 0)
    fprintf(stderr, "r1d: %s: %zu pairs from logged feedback\n", dir,
            set->n - before);
  json_decref(rows);
  return rc;
}

/* An existing --out must be empty or a reward model: saving replaces it. */
static int check_out(const char *out) {
  DIR *d = opendir(out);
  if (!d) return 0;
  int entries = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
  closedir(d);
  char *rmj = r1d_path_join(out, "reward_model.json");
  int is_rm = rmj && r1d_file_exists(rmj);
  free(rmj);
  if (entries && !is_rm)
    return cli_usage_error("rm: --out %s exists and is not a reward model "
                           "folder; it would be replaced (choose another "
                           "folder)",
                           out);
  return 0;
}

static json_t *eval_obj(const r1d_rm_eval *e) {
  return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "pairs",
                   (json_int_t)e->pairs, "accuracy", e->accuracy, "lo", e->lo,
                   "hi", e->hi, "loss", e->loss, "margin", e->margin);
}

static int train_main(int argc, char **argv) {
  rm_opts o = {.lr = 1e-4,
               .epochs = 1.0,
               .batch = 8,
               .seed = 42,
               .warmup_ratio = 0.05,
               .clip = 1.0,
               .center_coef = 0.01,
               .eval_fraction = 0.1,
               .max_len = 512,
               .schedule = "cosine"};
  int st = parse_args(argc, argv, &o);
  if (st == -1) return CLI_EXIT_OK;
  if (st) return st;
  if ((st = check_out(o.out))) return st;

  r1d_error err = {0};
  r1d_pref_set train = {0}, eval = {0};
  r1d_reward_model *rm = NULL;
  progress prog = {0};
  int status = CLI_EXIT_FAIL;
  bad_ctx bd = {o.data}, be = {o.eval_data};
  if ((o.data &&
       r1d_pref_load_jsonl(o.data, o.strict, on_bad, &bd, &train, &err)) ||
      (o.data_dir && load_data_dir(o.data_dir, o.strict, &train, &err)) ||
      (o.eval_data &&
       r1d_pref_load_jsonl(o.eval_data, o.strict, on_bad, &be, &eval, &err))) {
    status = cli_report(&err);
    goto done;
  }
  if (!o.eval_data && (o.eval_fraction_set || train.n >= 10) &&
      r1d_pref_split(&train, o.eval_fraction, (uint64_t)o.seed, &eval, &err)) {
    status = cli_report(&err);
    goto done;
  }
  if (train.n == 0) {
    status = cli_usage_error("rm: no usable training pair");
    goto done;
  }
  r1d_rm_options ro = {.threads = (int)o.threads,
                       .max_len = (int)o.max_len,
                       .suffix = o.suffix,
                       .template_name = o.template_name};
  if (r1d_reward_model_load_ex(o.model, &ro, &rm, &err)) {
    status = cli_report(&err);
    goto done;
  }
  /* after the model: an error is then the only line printed */
  fprintf(stderr,
          "r1d: %zu train pairs, %zu eval pairs (%ld bad lines skipped)\n",
          train.n, eval.n, train.bad_lines + eval.bad_lines);
  if (o.metrics && !(prog.metrics = fopen(o.metrics, "a"))) {
    status = cli_usage_error("rm --metrics %s: cannot write", o.metrics);
    goto done;
  }
  prog.bar = o.progress ? !strcmp(o.progress, "bar") : isatty(2);
  r1d_rm_config cfg = {.out_dir = o.out,
                       .save = 1,
                       .lr = o.lr,
                       .min_lr = o.min_lr,
                       .constant_lr = !strcmp(o.schedule, "constant"),
                       .warmup_ratio = o.warmup_ratio,
                       .weight_decay = o.weight_decay,
                       .epochs = o.epochs,
                       .max_steps = (long)o.max_steps,
                       .batch_pairs = (int)o.batch,
                       .clip = o.clip,
                       .center_coef = o.center_coef,
                       .seed = (uint64_t)o.seed,
                       .eval_every = (long)o.eval_every};
  r1d_rm_hooks hooks = {
      .on_metrics = on_metrics, .stop = cli_stop_flag(), .user = &prog};
  cli_catch_stop_signals();
  r1d_rm_result res;
  int rc = r1d_rm_train(&cfg, rm, train.pairs, train.n, eval.pairs, eval.n,
                        &hooks, &res, &err);
  if (prog.bar) fputc('\n', stderr);
  if (rc) {
    status = rc == R1D_EINVAL ? cli_report(&err) : CLI_EXIT_FAIL;
    if (rc != R1D_EINVAL) fprintf(stderr, "r1d: %s\n", err.msg);
    goto done;
  }
  if (!prog.metrics && prog.len) {
    char *path = r1d_path_join(o.out, "metrics.jsonl");
    if (!path || r1d_write_file_atomic(path, prog.buf, prog.len, &err))
      fprintf(stderr, "r1d: metrics.jsonl not written: %s\n", err.msg);
    free(path);
  }
  fprintf(stderr, "r1d: %s after %ld steps; the reward model is %s\n",
          *cli_stop_flag() ? "stopped by a signal" : "done", res.steps, o.out);
  if (o.json) {
    json_t *s =
        json_pack("{s:s, s:I, s:I, s:I, s:f, s:f}", "out", o.out, "steps",
                  (json_int_t)res.steps, "train_pairs", (json_int_t)train.n,
                  "eval_pairs", (json_int_t)eval.n, "train_loss",
                  res.train_loss, "train_accuracy", res.train_accuracy);
    if (s && res.has_eval) {
      json_object_set_new(s, "eval_before", eval_obj(&res.eval_before));
      json_object_set_new(s, "eval_after", eval_obj(&res.eval_after));
    }
    char *text = s ? json_dumps(s, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                       JSON_REAL_PRECISION(9))
                   : NULL;
    if (text) puts(text);
    free(text);
    json_decref(s);
  } else if (res.has_eval) {
    printf("eval accuracy %.4f -> %.4f [95%% CI %.4f, %.4f] over %ld pairs; "
           "train accuracy %.4f (last step)\n",
           res.eval_before.accuracy, res.eval_after.accuracy, res.eval_after.lo,
           res.eval_after.hi, res.eval_after.pairs, res.train_accuracy);
  } else {
    printf("train accuracy %.4f, loss %.4f (last step; no eval pairs)\n",
           res.train_accuracy, res.train_loss);
  }
  status = CLI_EXIT_OK;
done:
  if (prog.metrics) fclose(prog.metrics);
  free(prog.buf);
  r1d_reward_model_free(rm);
  r1d_pref_set_free(&train);
  r1d_pref_set_free(&eval);
  return status;
}

/* ---- r1d rm score ------------------------------------------------------ */

/* The completion text of a row: a string, or a list of one assistant
 * message (its content). NULL when neither. */
static const char *row_completion(json_t *row) {
  json_t *c = json_object_get(row, "completion");
  if (json_is_string(c)) return json_string_value(c);
  if (json_is_array(c) && json_array_size(c) == 1) {
    json_t *m = json_array_get(c, 0);
    const char *role = json_string_value(json_object_get(m, "role"));
    json_t *content = json_object_get(m, "content");
    if (role && !strcmp(role, "assistant") && json_is_string(content))
      return json_string_value(content);
  }
  return NULL;
}

typedef struct score_batch {
  json_t *rows[64];
  const json_t *prompts[64];
  const char *comps[64];
  int n;
} score_batch;

static int flush_batch(r1d_reward_model *rm, score_batch *b, long first_line,
                       r1d_error *err) {
  double s[64];
  int rc = r1d_reward_model_score(rm, b->prompts, b->comps, b->n, s, err);
  if (rc)
    rc = r1d_fail(err, rc, "rows from line %ld: %s", first_line, err->msg);
  for (int i = 0; rc == 0 && i < b->n; i++)
    printf("{\"score\": %.9g}\n", s[i]);
  for (int i = 0; i < b->n; i++)
    json_decref(b->rows[i]);
  b->n = 0;
  return rc;
}

static int score_main(int argc, char **argv) {
  static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                       {"data", required_argument, 0, 'd'},
                                       {"threads", required_argument, 0, 't'},
                                       {"batch", required_argument, 0, 'b'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *model = NULL, *data = NULL;
  long long threads = 0, batch = 16;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'm': model = optarg; break;
    case 'd': data = optarg; break;
    case 't':
      if (cli_parse_int(optarg, 1, 1024, &threads))
        return cli_usage_error("rm score --threads: expected 1..1024");
      break;
    case 'b':
      if (cli_parse_int(optarg, 1, 64, &batch))
        return cli_usage_error("rm score --batch: expected 1..64");
      break;
    case 'h': fputs(cmd_rm_help, stdout); return CLI_EXIT_OK;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc)
    return cli_usage_error("rm score: unexpected argument '%s'", argv[optind]);
  if (!model || !data)
    return cli_usage_error("rm score: --model RMDIR and --data F.jsonl are "
                           "required");
  FILE *f = strcmp(data, "-") ? fopen(data, "r") : stdin;
  if (!f) return cli_usage_error("rm score: cannot read %s", data);
  r1d_error err = {0};
  r1d_reward_model *rm = NULL;
  if (r1d_reward_model_load(model, (int)threads, &rm, &err)) {
    if (f != stdin) fclose(f);
    return cli_report(&err);
  }
  score_batch b = {.n = 0};
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long no = 0, first = 0, rows = 0;
  int status = CLI_EXIT_OK;
  while ((len = getline(&line, &cap, f)) != -1) {
    no++;
    int blank = 1;
    for (ssize_t i = 0; i < len && blank; i++)
      blank = strchr(" \t\r\n", line[i]) != NULL;
    if (blank) continue;
    json_error_t jerr;
    json_t *row = json_loadb(line, (size_t)len, 0, &jerr);
    const char *comp = row ? row_completion(row) : NULL;
    json_t *prompt = row ? json_object_get(row, "prompt") : NULL;
    if (!row || !comp ||
        (prompt && !json_is_string(prompt) && !json_is_array(prompt) &&
         !json_is_null(prompt))) {
      status = cli_usage_error(
          "%s:%ld: %s", data, no,
          !row ? jerr.text
               : "expected {\"prompt\": string or messages (optional), "
                 "\"completion\": \"...\"}");
      json_decref(row);
      break;
    }
    if (b.n == 0) first = no;
    b.rows[b.n] = row;
    b.prompts[b.n] = prompt;
    b.comps[b.n] = comp;
    rows++;
    if (++b.n == batch && flush_batch(rm, &b, first, &err)) {
      status = cli_report(&err);
      break;
    }
  }
  if (status == CLI_EXIT_OK && b.n && flush_batch(rm, &b, first, &err))
    status = cli_report(&err);
  for (int i = 0; i < b.n; i++)
    json_decref(b.rows[i]);
  free(line);
  if (f != stdin) fclose(f);
  r1d_reward_model_free(rm);
  if (status == CLI_EXIT_OK) fprintf(stderr, "r1d: scored %ld rows\n", rows);
  return status;
}

int cmd_rm(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "score"))
    return score_main(argc - 1, argv + 1);
  return train_main(argc, argv);
}

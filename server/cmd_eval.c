/* cmd_eval.c - `r1d eval`: the command line of rl/eval.h. It loads a model
 * and rule-verifiable tasks (a JSONL file or a generator), samples k
 * completions per task through the engine, and reports pass@1 (agnostic and
 * strict), cons@k, pass@k, format, language and length with 95% intervals:
 * a table for people, one JSON object with --json, and a result row for
 * `r1d pipeline`'s results table (--out writes it, --append adds it as one
 * line to a JSONL file).
 *
 * cli_tasks_read lives here because rejection-sample and distill read tasks
 * the same way (declared in cli.h). */
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../common/file.h"
#include "../rl/eval.h"
#include "../rl/task_gen.h"
#include "../storage/tasks.h"
#include "cli.h"

const char cmd_eval_help[] =
    "usage: r1d eval --model DIR (--tasks FILE.jsonl | --task-gen SPEC) "
    "[options]\n"
    "\n"
    "Evaluates a model on rule-verifiable tasks as the R1 paper does: k\n"
    "sampled completions per task (temperature 0.6, top-p 0.95), scored by\n"
    "the tasks' checkers. Reports, each with a 95% interval over tasks:\n"
    "  pass@1        accuracy over the k samples, answer taken best-effort\n"
    "                even from a malformed completion\n"
    "  strict pass@1 correct and well formed (one closed thought, an answer)\n"
    "  cons@k        the majority answer of the k (numbers compared after\n"
    "                normalisation; ties to the answer seen first) is right\n"
    "  pass@k        any of the k is right\n"
    "  format, language (consistency of the thoughts), readable (well\n"
    "  formed and single-script), mean length, truncated share\n"
    "Intervals: Wilson where each task scores 0 or 1 (cons@k, pass@k, all\n"
    "rates with k 1), else normal over the per-task means.\n"
    "  --model DIR              Hugging Face folder (Qwen2 or Llama)\n"
    "  --tasks FILE             tasks JSONL (as `r1d tasks import` takes);\n"
    "                           --split eval|train|all (default: eval when\n"
    "                           the file has eval tasks, else all)\n"
    "  --task-gen NAME[:LEVEL]  generated tasks (addition, multistep,\n"
    "                           countdown): --count N (200) held-out tasks\n"
    "                           after --task-count M training ones, from\n"
    "                           --seed, as `r1d grpo --task-gen` splits them\n"
    "                           (default M: 1000 as grpo's, less when the\n"
    "                           generator has fewer problems; --split train:\n"
    "                           the first N training tasks)\n"
    "  --k K                    samples per task (8, at most 64)\n"
    "  --temperature T --top-p P   sampling (0.6, 0.95)\n"
    "  --max-tokens N           tokens per completion (256)\n"
    "  --template NAME          chat template override (r1-zero: the R1-Zero\n"
    "                           prompt; see r1d template)\n"
    "  --answer-style think|tags  answer after </think>, or in <answer> tags\n"
    "                           (default: tags for r1-zero, else think)\n"
    "  --language SCRIPT        script of the thoughts (latin)\n"
    "  --seed S                 sampling and --task-gen seed (1)\n"
    "  --threads N              CPU threads (default: all cores)\n"
    "Output:\n"
    "  --json                   one JSON object on stdout instead of a table\n"
    "  --out FILE               write the result row (JSON) to FILE\n"
    "  --append FILE            append the row as one line to FILE (JSONL)\n"
    "  --label NAME             the row's label (default: the model path)\n"
    "  --samples FILE           every sample as a JSONL line (completion,\n"
    "                           answer, vote key, verdicts)\n"
    "Exit status: 0 done, 1 a failure, 2 bad arguments, model or tasks.\n";

/* ---- tasks (shared with rejection-sample and distill) ------------------- */

static int keep_split(const char *want, const char *split) {
  if (!strcmp(want, "all")) return 1;
  return !strcmp(want, split ? split : "train");
}

static int read_file_tasks(const char *path, const char *split,
                           const char *dflt, json_t *out, r1d_error *err) {
  char *text = NULL;
  size_t len = 0;
  int rc = r1d_read_file(path, &text, &len, err);
  if (rc) return rc;
  r1d_task_batch b = {0};
  rc = r1d_tasks_parse(text, len, &b, err);
  free(text);
  for (size_t i = 0; rc == 0 && i < b.n_errors; i++)
    fprintf(stderr, "r1d: %s:%zu: %s\n", path, b.errors[i].line,
            b.errors[i].msg);
  if (rc == 0 && b.n_errors)
    rc = r1d_fail(err, R1D_EINVAL, "%s: %zu bad task lines (listed above)",
                  path, b.n_errors);
  json_t *all = json_array();
  if (!all && rc == 0) rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  int has_dflt = 0;
  for (size_t i = 0; rc == 0 && i < b.n; i++) {
    json_error_t je;
    json_t *j = json_loads(b.tasks[i].json, 0, &je);
    if (!j) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s:%zu: %s", path, b.tasks[i].line,
                    je.text);
      break;
    }
    const char *s = json_string_value(json_object_get(j, "split"));
    has_dflt |= dflt && keep_split(dflt, s);
    json_array_append_new(all, j);
  }
  r1d_task_batch_free(&b);
  if (rc == 0) {
    const char *want = split ? split : has_dflt ? dflt : "all";
    size_t i;
    json_t *t;
    json_array_foreach(all, i, t) {
      if (keep_split(want, json_string_value(json_object_get(t, "split"))))
        json_array_append(out, t);
    }
  }
  json_decref(all);
  return rc;
}

int cli_tasks_read(const char *path, const char *gen_spec,
                   long long train_count, long long count, long long seed,
                   const char *split, const char *dflt, struct json_t **out,
                   r1d_error *err) {
  *out = NULL;
  if (split && strcmp(split, "train") && strcmp(split, "eval") &&
      strcmp(split, "all"))
    return r1d_fail(err, R1D_EINVAL, "--split: eval, train or all, not '%s'",
                    split);
  json_t *arr = json_array();
  if (!arr) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  int rc;
  if (path) {
    rc = read_file_tasks(path, split, dflt, arr, err);
  } else {
    const char *want = split ? split : dflt ? dflt : "all";
    json_t *gen = NULL;
    int train_only = !strcmp(want, "train");
    /* train_count < 0: `r1d grpo`'s default of 1000, or as many as the
     * generator has room for beside the held-out ones (addition:1 has
     * only 100 problems) */
    long long tc = train_count < 0 ? 1000 : train_count;
    for (;;) {
      rc = r1d_task_gen(gen_spec, (int)(train_only ? count : tc),
                        (int)(train_only ? 0 : count), (uint64_t)seed, &gen,
                        err);
      if (rc != R1D_ERANGE || train_only || train_count >= 0 || tc == 0) break;
      tc /= 2;
    }
    if (rc == 0 && !train_only && train_count < 0 && tc != 1000)
      fprintf(stderr,
              "r1d: note: %s has room for %lld training problems before the "
              "held-out ones (not 1000)\n",
              gen_spec, tc);
    size_t i;
    json_t *t;
    if (rc == 0) json_array_foreach(gen, i, t) {
        if (keep_split(want, json_string_value(json_object_get(t, "split"))))
          json_array_append(arr, t);
      }
    json_decref(gen);
  }
  if (rc == 0 && json_array_size(arr) == 0)
    rc = r1d_fail(err, R1D_EINVAL, "%s: no tasks%s%s", path ? path : gen_spec,
                  split ? " of split " : "", split ? split : "");
  if (rc) {
    json_decref(arr);
    return rc;
  }
  *out = arr;
  return R1D_OK;
}

/* ---- options ------------------------------------------------------------ */

typedef struct eval_opts {
  const char *model, *tasks, *task_gen, *split, *template_name, *style;
  const char *language, *samples, *out, *append, *label;
  long long k, max_tokens, threads, seed, count, task_count;
  double temperature, top_p;
  int json;
} eval_opts;

static int parse_args(int argc, char **argv, eval_opts *o) {
  const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                {"tasks", required_argument, 0, 't'},
                                {"task-gen", required_argument, 0, 'g'},
                                {"split", required_argument, 0, 's'},
                                {"count", required_argument, 0, 'c'},
                                {"eval-count", required_argument, 0, 'c'},
                                {"task-count", required_argument, 0, 'C'},
                                {"k", required_argument, 0, 'k'},
                                {"temperature", required_argument, 0, 'T'},
                                {"top-p", required_argument, 0, 'p'},
                                {"max-tokens", required_argument, 0, 'M'},
                                {"template", required_argument, 0, 'P'},
                                {"answer-style", required_argument, 0, 'a'},
                                {"language", required_argument, 0, 'L'},
                                {"threads", required_argument, 0, 'n'},
                                {"seed", required_argument, 0, 'S'},
                                {"samples", required_argument, 0, 'x'},
                                {"out", required_argument, 0, 'o'},
                                {"append", required_argument, 0, 'A'},
                                {"label", required_argument, 0, 'l'},
                                {"json", no_argument, 0, 'j'},
                                {"help", no_argument, 0, 'h'},
                                {0, 0, 0, 0}};
  int c, idx = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
    const char *name = idx >= 0 && c != '?' ? opts[idx].name : "";
    int bad = 0;
    switch (c) {
    case 'm': o->model = optarg; break;
    case 't': o->tasks = optarg; break;
    case 'g': o->task_gen = optarg; break;
    case 's': o->split = optarg; break;
    case 'c': bad = cli_parse_int(optarg, 1, 1000000, &o->count); break;
    case 'C': bad = cli_parse_int(optarg, 0, 1000000, &o->task_count); break;
    case 'k': bad = cli_parse_int(optarg, 1, R1D_ENGINE_MAX_N, &o->k); break;
    case 'T': bad = cli_parse_float(optarg, 0, 2, &o->temperature); break;
    case 'p': bad = cli_parse_float(optarg, 1e-6, 1, &o->top_p); break;
    case 'M': bad = cli_parse_int(optarg, 1, 1 << 20, &o->max_tokens); break;
    case 'P': o->template_name = optarg; break;
    case 'a': o->style = optarg; break;
    case 'L': o->language = optarg; break;
    case 'n': bad = cli_parse_int(optarg, 1, 1024, &o->threads); break;
    case 'S': bad = cli_parse_int(optarg, 0, 1LL << 62, &o->seed); break;
    case 'x': o->samples = optarg; break;
    case 'o': o->out = optarg; break;
    case 'A': o->append = optarg; break;
    case 'l': o->label = optarg; break;
    case 'j': o->json = 1; break;
    case 'h': fputs(cmd_eval_help, stdout); return -1;
    default: return CLI_EXIT_USAGE;
    }
    if (bad)
      return cli_usage_error("eval --%s: '%s' is out of range or not a number",
                             name, optarg);
    idx = -1;
  }
  if (optind < argc)
    return cli_usage_error("eval: unexpected argument '%s'", argv[optind]);
  if (!o->model || !!o->tasks + !!o->task_gen != 1)
    return cli_usage_error("eval: --model DIR and one of --tasks FILE or "
                           "--task-gen SPEC are required");
  if (o->split && strcmp(o->split, "eval") && strcmp(o->split, "train") &&
      strcmp(o->split, "all"))
    return cli_usage_error("eval --split: eval, train or all, not '%s'",
                           o->split);
  if (o->style && strcmp(o->style, "think") && strcmp(o->style, "tags"))
    return cli_usage_error("eval --answer-style: think or tags, not '%s'",
                           o->style);
  if (strlen(o->language) >= sizeof((r1d_eval_config *)0)->language)
    return cli_usage_error("eval --language: '%s' is too long", o->language);
  return 0;
}

/* ---- output ------------------------------------------------------------- */

static void on_progress(void *user, int done, int n, double elapsed) {
  (void)user;
  char bar[24 + 1], eta[32];
  cli_progress_bar(bar, 24, done, n);
  cli_fmt_duration(done ? elapsed * (n - done) / done : 0, eta, sizeof eta);
  fprintf(stderr, "\r\033[K[%s] %d/%d tasks  ETA %s", bar, done, n, eta);
  if (done == n) fputs("\r\033[K", stderr);
  fflush(stderr);
}

static void print_table(const eval_opts *o, const char *label,
                        const r1d_eval_result *r) {
  const struct {
    const char *name;
    const r1d_eval_metric *m;
  } rows[] = {{"pass@1", &r->pass1},
              {"strict pass@1", &r->strict_pass1},
              {"cons@k", &r->cons},
              {"pass@k", &r->pass_k},
              {"format rate", &r->format_rate},
              {"language", &r->language},
              {"readable", &r->readable},
              {"mean length", &r->mean_len},
              {"truncated", &r->truncated_rate}};
  printf("%s: %d tasks x %lld samples (temperature %g, top-p %g, max %lld "
         "tokens)\n",
         label, r->n_tasks, o->k, o->temperature, o->top_p, o->max_tokens);
  printf("  %-14s %9s   %s\n", "metric", "value", "95% interval");
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    int len = rows[i].m == &r->mean_len;
    printf(len ? "  %-14s %9.1f   +- %.1f\n" : "  %-14s %9.4f   +- %.4f\n",
           rows[i].name, rows[i].m->value, rows[i].m->ci);
  }
  printf("  %.1f s, %ld tokens, %.0f tokens/s\n", r->wall_s, r->tokens,
         r->tokens_per_s);
}

static int write_samples(const char *path, const r1d_grpo_task *tasks,
                         const r1d_eval_result *r, r1d_error *err) {
  FILE *f = fopen(path, "w");
  if (!f) return r1d_fail(err, R1D_EIO, "%s: cannot write", path);
  int rc = R1D_OK;
  for (int i = 0; rc == 0 && i < r->n_tasks; i++) {
    const r1d_eval_task_result *tr = &r->tasks[i];
    const char *maj = tr->majority >= 0
                          ? r->samples[(size_t)i * r->k + tr->majority].key
                          : NULL;
    for (int j = 0; rc == 0 && j < r->k; j++) {
      const r1d_eval_sample *s = &r->samples[(size_t)i * r->k + j];
      json_t *o = json_pack(
          "{s:s, s:i, s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:i, s:f, s:b, s:s}",
          "task", tasks[i].id, "sample", j, "completion", s->text, "answer",
          s->answer, "key", s->key, "correct", s->o.correct, "strict",
          s->o.correct && s->o.format_ok, "format_ok", s->o.format_ok,
          "truncated", s->o.truncated, "n_tokens", s->o.n_tokens, "language",
          s->o.language, "voted", maj && !strcmp(maj, s->key), "detail",
          s->detail);
      char *line =
          o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
      if (!line || fprintf(f, "%s\n", line) < 0)
        rc = r1d_fail(err, R1D_EIO, "%s: write failed", path);
      free(line);
      json_decref(o);
    }
  }
  if (fclose(f) && rc == 0)
    rc = r1d_fail(err, R1D_EIO, "%s: write failed", path);
  return rc;
}

/* One write(2) of the whole line with O_APPEND: rows appended by
 * concurrent evaluations do not interleave. */
static int append_line(const char *path, const char *line, r1d_error *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return r1d_fail(err, R1D_EIO, "%s: cannot open", path);
  size_t n = strlen(line);
  char *buf = malloc(n + 1);
  int rc = R1D_OK;
  if (!buf) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  } else {
    memcpy(buf, line, n);
    buf[n] = '\n';
    if (write(fd, buf, n + 1) != (ssize_t)(n + 1))
      rc = r1d_fail(err, R1D_EIO, "%s: write failed", path);
  }
  free(buf);
  if (close(fd) && rc == 0)
    rc = r1d_fail(err, R1D_EIO, "%s: write failed", path);
  return rc;
}

/* ---- the command ------------------------------------------------------- */

int cmd_eval(int argc, char **argv) {
  eval_opts o = {.k = 8,
                 .max_tokens = 256,
                 .seed = 1,
                 .count = 200,
                 .task_count = -1,
                 .temperature = 0.6,
                 .top_p = 0.95,
                 .language = "latin"};
  int st = parse_args(argc, argv, &o);
  if (st == -1) return CLI_EXIT_OK;
  if (st) return st;

  r1d_error err = {0};
  r1d_eval_model em = {0};
  json_t *task_json = NULL, *row = NULL;
  r1d_grpo_task *tasks = NULL;
  int n_tasks = 0, status = CLI_EXIT_FAIL;
  r1d_eval_result res = {0};

  if (r1d_eval_model_open(o.model, o.template_name, (int)o.threads, &em,
                          &err) ||
      cli_tasks_read(o.tasks, o.task_gen, o.task_count, o.count, o.seed,
                     o.split, "eval", &task_json, &err) ||
      r1d_eval_tasks_prepare(task_json, em.tmpl, em.tok, &tasks, &n_tasks,
                             &err)) {
    status = cli_report(&err);
    goto done;
  }
  int max_prompt = 0;
  for (int i = 0; i < n_tasks; i++)
    if (tasks[i].n_prompt > max_prompt) max_prompt = tasks[i].n_prompt;
  if (r1d_eval_model_start(&em, max_prompt, (int)o.max_tokens, &err)) {
    status = cli_report(&err);
    goto done;
  }
  const char *tmpl_name = r1d_template_name(em.tmpl);
  if (!o.style) o.style = !strcmp(tmpl_name, "r1-zero") ? "tags" : "think";

  r1d_eval_config cfg;
  r1d_eval_config_default(&cfg);
  cfg.k = (int)o.k;
  cfg.temperature = (float)o.temperature;
  cfg.top_p = (float)o.top_p;
  cfg.max_tokens = (int)o.max_tokens;
  cfg.seed = (uint64_t)o.seed;
  cfg.style =
      strcmp(o.style, "tags") ? R1D_ANSWER_AFTER_THINK : R1D_ANSWER_TAGS;
  snprintf(cfg.language, sizeof cfg.language, "%s", o.language);
  cfg.keep_samples = o.samples != NULL;
  int bar = isatty(2);
  if (bar)
    fprintf(stderr, "r1d: %d tasks x %d samples, %s template, answers %s\n",
            n_tasks, cfg.k, tmpl_name,
            cfg.style == R1D_ANSWER_TAGS ? "in <answer> tags"
                                         : "after </think>");
  int rc = r1d_eval_run(em.engine, em.tok, tasks, n_tasks, &cfg,
                        bar ? on_progress : NULL, NULL, &res, &err);
  if (rc) {
    status = rc == R1D_EINVAL ? cli_report(&err) : CLI_EXIT_FAIL;
    if (rc != R1D_EINVAL) fprintf(stderr, "r1d: %s\n", err.msg);
    goto done;
  }

  const char *label = o.label ? o.label : o.model;
  row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:I, s:I}", "label",
                  label, "model", o.model, "tasks",
                  o.tasks ? o.tasks : o.task_gen, "split", "all", "template",
                  tmpl_name, "answer_style", o.style, "temperature",
                  o.temperature, "top_p", o.top_p, "max_tokens",
                  (json_int_t)o.max_tokens, "seed", (json_int_t)o.seed);
  if (!row || r1d_eval_result_to_json(&res, row)) {
    fprintf(stderr, "r1d: out of memory\n");
    goto done;
  }
  /* the split the tasks came from, after the default was applied */
  const char *split = NULL;
  size_t ti;
  json_t *tv;
  json_array_foreach(task_json, ti, tv) {
    const char *s = json_string_value(json_object_get(tv, "split"));
    s = s ? s : "train";
    split = !split || !strcmp(split, s) ? s : "all";
  }
  json_object_set_new(row, "split", json_string(split ? split : "all"));
  char *line = json_dumps(row, JSON_COMPACT | JSON_REAL_PRECISION(6));
  if (!line) {
    fprintf(stderr, "r1d: out of memory\n");
    goto done;
  }
  rc = R1D_OK;
  if (o.out) {
    char *pretty = json_dumps(row, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    size_t pn = pretty ? strlen(pretty) : 0;
    if (pretty) pretty[pn] = '\n';
    rc = pretty ? r1d_write_file_atomic(o.out, pretty, pn + 1, &err)
                : r1d_fail(&err, R1D_ENOMEM, "out of memory");
    free(pretty);
  }
  if (rc == 0 && o.append) rc = append_line(o.append, line, &err);
  if (rc == 0 && o.samples) rc = write_samples(o.samples, tasks, &res, &err);
  if (o.json)
    printf("%s\n", line);
  else
    print_table(&o, label, &res);
  free(line);
  if (rc) {
    status = cli_report(&err);
    goto done;
  }
  status = CLI_EXIT_OK;
done:
  json_decref(row);
  r1d_eval_result_free(&res);
  r1d_eval_tasks_free(tasks, n_tasks);
  json_decref(task_json);
  r1d_eval_model_close(&em);
  return status;
}

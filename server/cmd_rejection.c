/* cmd_rejection.c - `r1d rejection-sample` and `r1d distill`, the R1
 * recipe's third stage and its distillation (RL.md): a model samples k
 * completions per task, only correct, well-formed, complete, single-script
 * and distinct ones are kept (rl/rejection.h) as SFT rows in the R1-distill
 * chat form; `distill` then fine-tunes a student on those rows in the same
 * process (rl/sft.h, no RL), which needs teacher and student to share the
 * tokenizer: the rows are text, but a student whose tokenizer splits the
 * teacher's <think> markers differently learns a different format. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../common/file.h"
#include "../engine/model/model.h"
#include "../engine/model/train.h"
#include "../kernels/cpu/cpu_backend.h"
#include "../rl/rejection.h"
#include "../rl/sft.h"
#include "../rl/sft_data.h"
#include "cli.h"

#define SAMPLING_HELP                                                          \
  "  --tasks FILE             tasks JSONL (as `r1d tasks import` takes);\n"    \
  "                           --split train|eval|all (default: train when\n"   \
  "                           the file has training tasks, else all)\n"        \
  "  --task-gen NAME[:LEVEL]  generated tasks (addition, multistep,\n"         \
  "                           countdown): the first --count N (1000)\n"        \
  "                           training problems from --seed, the ones\n"       \
  "                           `r1d grpo --task-gen` trains on\n"               \
  "  --k K                    samples per prompt (4, at most 64)\n"            \
  "  --keep N                 at most N kept per prompt (1)\n"                 \
  "  --temperature T --top-p P   sampling (0.7, 0.95)\n"                       \
  "  --max-tokens N           tokens per completion (256)\n"                   \
  "  --template NAME          the sampling model's chat template override\n"   \
  "                           (r1-zero: the R1-Zero prompt)\n"                 \
  "  --answer-style think|tags  answer after </think>, or in <answer> tags\n"  \
  "                           (default: tags for r1-zero, else think)\n"       \
  "  --language SCRIPT        script the thoughts must be in (latin)\n"        \
  "  --min-language X         least language consistency kept (1.0: every\n"   \
  "                           word of the thought in that script)\n"           \
  "  --seed S                 sampling (and --task-gen) seed (1)\n"            \
  "  --threads N              CPU threads (default: all cores)\n"              \
  "  --json                   the statistics as one JSON object on stdout\n"

const char cmd_rejection_sample_help[] =
    "usage: r1d rejection-sample --model DIR (--tasks FILE | --task-gen SPEC)\n"
    "                            --out SFT.jsonl [options]\n"
    "\n"
    "Samples k completions per prompt and keeps those that are correct (the\n"
    "task's checker), well formed (one closed thought, an answer), not cut\n"
    "by the length limit, single-language and distinct, up to --keep per\n"
    "prompt. Kept samples become SFT rows in the R1-distill chat form:\n"
    "  {\"messages\": [{\"role\": \"user\", \"content\": PROMPT},\n"
    "                {\"role\": \"assistant\", \"content\":\n"
    "                 \"<think>\\nTHOUGHT\\n</think>\\n\\nANSWER\"}]}\n"
    "also when the model answered in R1-Zero <answer> tags; `r1d sft --data`\n"
    "trains on them. Prints how many were kept and why the others were not.\n"
    "  --model DIR              Hugging Face folder (Qwen2 or Llama)\n"
    "  --out FILE               the SFT rows (JSONL)\n"
    "  --pairs FILE             also preference pairs for r1d rm: per prompt\n"
    "                           a kept answer (chosen) against a wrong,\n"
    "                           malformed or mixed-language one "
    "(rejected)\n" SAMPLING_HELP
    "Exit status: 0 done (also when nothing was kept), 1 a failure, 2 bad\n"
    "arguments, model or tasks.\n";

const char cmd_distill_help[] =
    "usage: r1d distill --teacher DIR --student DIR (--tasks FILE | "
    "--task-gen\n"
    "                   SPEC) --out DIR [options]\n"
    "\n"
    "Distillation as in the R1 paper: the teacher rejection-samples the\n"
    "tasks (see r1d rejection-sample) into OUT/distill_data.jsonl, then the\n"
    "student is fine-tuned on those rows (SFT only, no RL) into\n"
    "OUT/checkpoint-STEP with OUT/last the final model. Teacher and student\n"
    "may differ in size but must share the tokenizer.\n"
    "  --teacher DIR --student DIR   Hugging Face folders\n"
    "  --out DIR                the data, checkpoints and metrics.jsonl\n"
    "  --mix-in FILE            SFT rows added to the teacher's (R1's 800k\n"
    "                           distillation rows held non-reasoning ones)\n"
    "Sampling (the teacher):\n" SAMPLING_HELP "Fine-tuning (the student):\n"
    "  --epochs E               passes over the kept rows (2, as R1)\n"
    "  --max-steps N            optimizer steps (overrides --epochs)\n"
    "  --lr X                   peak learning rate (2e-5), cosine decay\n"
    "  --warmup-ratio R         warmup share of the steps (0)\n"
    "  --grad-accum K (--batch K)  packs per optimizer step (1)\n"
    "  --pack-tokens N          tokens per packed micro-batch (default: the\n"
    "                           longest row)\n"
    "  --student-template NAME  the student's chat template override\n"
    "  --sft-seed S             data order (42)\n"
    "  --metrics FILE           training metrics JSONL (default\n"
    "                           OUT/metrics.jsonl)\n"
    "Exit status: 0 done, 1 a failure (also: no sample kept), 2 bad\n"
    "arguments, models, tokenizers that differ, or tasks.\n";

typedef struct rs_opts {
  int distill;
  const char *model, *student, *tasks, *task_gen, *split, *out;
  const char *template_name, *student_template, *style, *language, *metrics;
  const char *pairs;  /* rejection-sample --pairs FILE */
  const char *mix_in; /* rejection-sample --mix-in FILE */
  long long k, keep, max_tokens, threads, seed, count;
  long long max_steps, grad_accum, pack_tokens, sft_seed;
  double temperature, top_p, min_language, epochs, lr, warmup_ratio;
  int json;
} rs_opts;

static int parse_args(int argc, char **argv, rs_opts *o) {
  const char *cmd = o->distill ? "distill" : "rejection-sample";
  const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                {"teacher", required_argument, 0, 'm'},
                                {"student", required_argument, 0, 'u'},
                                {"tasks", required_argument, 0, 't'},
                                {"task-gen", required_argument, 0, 'g'},
                                {"split", required_argument, 0, 's'},
                                {"count", required_argument, 0, 'c'},
                                {"out", required_argument, 0, 'o'},
                                {"k", required_argument, 0, 'k'},
                                {"keep", required_argument, 0, 'K'},
                                {"temperature", required_argument, 0, 'T'},
                                {"top-p", required_argument, 0, 'p'},
                                {"max-tokens", required_argument, 0, 'M'},
                                {"template", required_argument, 0, 'P'},
                                {"student-template", required_argument, 0, 'Q'},
                                {"answer-style", required_argument, 0, 'a'},
                                {"language", required_argument, 0, 'L'},
                                {"min-language", required_argument, 0, 'l'},
                                {"seed", required_argument, 0, 'S'},
                                {"threads", required_argument, 0, 'n'},
                                {"json", no_argument, 0, 'j'},
                                {"epochs", required_argument, 0, 'e'},
                                {"max-steps", required_argument, 0, 'x'},
                                {"lr", required_argument, 0, 'r'},
                                {"warmup-ratio", required_argument, 0, 'w'},
                                {"grad-accum", required_argument, 0, 'G'},
                                {"batch", required_argument, 0, 'G'},
                                {"pack-tokens", required_argument, 0, 'X'},
                                {"sft-seed", required_argument, 0, 'E'},
                                {"metrics", required_argument, 0, 'F'},
                                {"pairs", required_argument, 0, 'R'},
                                {"mix-in", required_argument, 0, 'I'},
                                {"help", no_argument, 0, 'h'},
                                {0, 0, 0, 0}};
  int c, idx = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
    const char *name = opts[idx].name;
    /* the SFT options are distill's; the student is distill's */
    if (!o->distill && strchr("uQexrwGXEF", c) && c != 0)
      return cli_usage_error("rejection-sample: --%s is an option of distill",
                             name);
    if (o->distill && c == 'm' && !strcmp(name, "model"))
      return cli_usage_error("distill: use --teacher DIR, not --model");
    if (!o->distill && c == 'm' && !strcmp(name, "teacher"))
      return cli_usage_error("rejection-sample: use --model DIR");
    int bad = 0;
    switch (c) {
    case 'm': o->model = optarg; break;
    case 'u': o->student = optarg; break;
    case 't': o->tasks = optarg; break;
    case 'g': o->task_gen = optarg; break;
    case 's': o->split = optarg; break;
    case 'c': bad = cli_parse_int(optarg, 1, 1000000, &o->count); break;
    case 'o': o->out = optarg; break;
    case 'k': bad = cli_parse_int(optarg, 1, R1D_ENGINE_MAX_N, &o->k); break;
    case 'K': bad = cli_parse_int(optarg, 1, R1D_ENGINE_MAX_N, &o->keep); break;
    case 'T': bad = cli_parse_float(optarg, 0, 2, &o->temperature); break;
    case 'p': bad = cli_parse_float(optarg, 1e-6, 1, &o->top_p); break;
    case 'M': bad = cli_parse_int(optarg, 1, 1 << 20, &o->max_tokens); break;
    case 'P': o->template_name = optarg; break;
    case 'Q': o->student_template = optarg; break;
    case 'a': o->style = optarg; break;
    case 'L': o->language = optarg; break;
    case 'l': bad = cli_parse_float(optarg, 0, 1, &o->min_language); break;
    case 'S': bad = cli_parse_int(optarg, 0, 1LL << 62, &o->seed); break;
    case 'n': bad = cli_parse_int(optarg, 1, 1024, &o->threads); break;
    case 'j': o->json = 1; break;
    case 'e': bad = cli_parse_float(optarg, 1e-9, 1e6, &o->epochs); break;
    case 'x': bad = cli_parse_int(optarg, 1, 1LL << 40, &o->max_steps); break;
    case 'r': bad = cli_parse_float(optarg, 1e-12, 10, &o->lr); break;
    case 'w':
      bad = cli_parse_float(optarg, 0, 0.999999, &o->warmup_ratio);
      break;
    case 'G': bad = cli_parse_int(optarg, 1, 1 << 16, &o->grad_accum); break;
    case 'X': bad = cli_parse_int(optarg, 2, 1 << 22, &o->pack_tokens); break;
    case 'E': bad = cli_parse_int(optarg, 0, 1LL << 62, &o->sft_seed); break;
    case 'F': o->metrics = optarg; break;
    case 'R':
      if (o->distill)
        return cli_usage_error("distill: --pairs is an option of "
                               "rejection-sample");
      o->pairs = optarg;
      break;
    case 'I': o->mix_in = optarg; break;
    case 'h':
      fputs(o->distill ? cmd_distill_help : cmd_rejection_sample_help, stdout);
      return -1;
    default: return CLI_EXIT_USAGE;
    }
    if (bad)
      return cli_usage_error("%s --%s: '%s' is out of range or not a number",
                             cmd, name, optarg);
  }
  if (optind < argc)
    return cli_usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
  if (o->distill && (!o->model || !o->student || !o->out))
    return cli_usage_error(
        "distill: --teacher DIR, --student DIR and --out DIR are required");
  if (!o->distill && (!o->model || !o->out))
    return cli_usage_error(
        "rejection-sample: --model DIR and --out FILE are required");
  if (!!o->tasks + !!o->task_gen != 1)
    return cli_usage_error("%s: give one of --tasks FILE or --task-gen SPEC",
                           cmd);
  if (o->split && strcmp(o->split, "eval") && strcmp(o->split, "train") &&
      strcmp(o->split, "all"))
    return cli_usage_error("%s --split: train, eval or all, not '%s'", cmd,
                           o->split);
  if (o->style && strcmp(o->style, "think") && strcmp(o->style, "tags"))
    return cli_usage_error("%s --answer-style: think or tags, not '%s'", cmd,
                           o->style);
  if (strlen(o->language) >= sizeof((r1d_eval_config *)0)->language)
    return cli_usage_error("%s --language: '%s' is too long", cmd, o->language);
  if (o->keep > o->k)
    return cli_usage_error("%s: --keep %lld is more than --k %lld", cmd,
                           o->keep, o->k);
  return 0;
}

/* ---- sampling ------------------------------------------------------------ */

static void on_progress(void *user, int done, int n, double elapsed) {
  const char *what = user;
  char bar[24 + 1], eta[32];
  cli_progress_bar(bar, 24, done, n);
  cli_fmt_duration(done ? elapsed * (n - done) / done : 0, eta, sizeof eta);
  fprintf(stderr, "\r\033[K%s [%s] %d/%d prompts  ETA %s", what, bar, done, n,
          eta);
  if (done == n) fputs("\r\033[K", stderr);
  fflush(stderr);
}

static void print_stats(const r1d_reject_stats *s, const char *out) {
  fprintf(stderr,
          "r1d: %ld prompts, %ld samples, %ld accepted (%.1f%%), %ld prompts "
          "with at least one kept; rows in %s\n",
          s->prompts, s->samples, s->accepted,
          s->samples ? 100.0 * (double)s->accepted / (double)s->samples : 0.0,
          s->prompts_kept, out);
  fprintf(stderr, "r1d: rejected:");
  for (int r = 1; r < R1D_REJECT_N; r++)
    fprintf(stderr, " %s %ld%s", r1d_reject_reason_name((r1d_reject_reason)r),
            s->reasons[r], r + 1 < R1D_REJECT_N ? "," : "\n");
}

/* Loads the sampling model and the tasks, rejection-samples them into
 * out_path. The model is closed before returning (a student trains next). */
static int sample_rows(rs_opts *o, const char *out_path, r1d_reject_stats *st,
                       r1d_error *err) {
  r1d_eval_model em = {0};
  json_t *task_json = NULL;
  r1d_grpo_task *tasks = NULL;
  int n = 0;
  int rc = r1d_eval_model_open(o->model, o->template_name, (int)o->threads, &em,
                               err);
  if (rc == 0)
    rc = cli_tasks_read(o->tasks, o->task_gen, -1, o->count, o->seed, o->split,
                        "train", &task_json, err);
  if (rc == 0)
    rc = r1d_eval_tasks_prepare(task_json, em.tmpl, em.tok, &tasks, &n, err);
  int max_prompt = 0;
  for (int i = 0; i < n; i++)
    if (tasks[i].n_prompt > max_prompt) max_prompt = tasks[i].n_prompt;
  if (rc == 0)
    rc = r1d_eval_model_start(&em, max_prompt, (int)o->max_tokens, err);
  FILE *f = NULL, *pf = NULL;
  if (rc == 0 && !(f = fopen(out_path, "w")))
    rc = r1d_fail(err, R1D_EIO, "%s: cannot write", out_path);
  if (rc == 0 && o->pairs && !(pf = fopen(o->pairs, "w")))
    rc = r1d_fail(err, R1D_EIO, "%s: cannot write", o->pairs);
  if (rc == 0) {
    const char *tmpl_name = r1d_template_name(em.tmpl);
    if (!o->style) o->style = !strcmp(tmpl_name, "r1-zero") ? "tags" : "think";
    r1d_reject_config cfg;
    r1d_reject_config_default(&cfg);
    cfg.sample.k = (int)o->k;
    cfg.sample.temperature = (float)o->temperature;
    cfg.sample.top_p = (float)o->top_p;
    cfg.sample.max_tokens = (int)o->max_tokens;
    cfg.sample.seed = (uint64_t)o->seed;
    cfg.sample.style =
        strcmp(o->style, "tags") ? R1D_ANSWER_AFTER_THINK : R1D_ANSWER_TAGS;
    snprintf(cfg.sample.language, sizeof cfg.sample.language, "%s",
             o->language);
    cfg.keep = (int)o->keep;
    cfg.min_language = o->min_language;
    cfg.pairs = pf;
    int bar = isatty(2);
    if (bar)
      fprintf(stderr,
              "r1d: %d prompts x %d samples (%s template, answers %s)\n", n,
              cfg.sample.k, tmpl_name,
              cfg.sample.style == R1D_ANSWER_TAGS ? "in <answer> tags"
                                                  : "after </think>");
    rc = r1d_rejection_run(em.engine, em.tok, tasks, task_json, n, &cfg,
                           bar ? on_progress : NULL, (void *)"sampling", f, st,
                           err);
  }
  if (f && fclose(f) && rc == 0)
    rc = r1d_fail(err, R1D_EIO, "%s: write failed", out_path);
  if (pf && fclose(pf) && rc == 0)
    rc = r1d_fail(err, R1D_EIO, "%s: write failed", o->pairs);
  r1d_eval_tasks_free(tasks, n);
  json_decref(task_json);
  r1d_eval_model_close(&em);
  return rc;
}

static int report(int rc, const r1d_error *err) {
  if (rc == R1D_EINVAL || rc == R1D_ENOTFOUND || rc == R1D_EIO ||
      rc == R1D_EFORMAT || rc == R1D_EUNSUPPORTED || rc == R1D_ERANGE)
    return cli_report(err);
  fprintf(stderr, "r1d: %s\n", err->msg);
  return CLI_EXIT_FAIL;
}

static void rs_defaults(rs_opts *o, int distill) {
  *o = (rs_opts){.distill = distill,
                 .k = 4,
                 .keep = 1,
                 .max_tokens = 256,
                 .seed = 1,
                 .count = 1000,
                 .temperature = 0.7,
                 .top_p = 0.95,
                 .min_language = 1.0,
                 .language = "latin",
                 .epochs = 2,
                 .lr = 2e-5,
                 .grad_accum = 1,
                 .sft_seed = 42};
}

/* --mix-in: the non-blank lines of src appended to dst (each must be a
 * JSON object; the SFT loader checks the rest). */
static int append_rows(const char *src, const char *dst, long *n,
                       r1d_error *err) {
  char *text = NULL;
  size_t len = 0;
  int rc = r1d_read_file(src, &text, &len, err);
  if (rc) return rc;
  FILE *f = fopen(dst, "a");
  if (!f) rc = r1d_fail(err, R1D_EIO, "%s: cannot append", dst);
  long line = 0;
  size_t pos = 0, len_line;
  const char *c;
  while (rc == 0 && r1d_next_line(text, len, &pos, &c, &len_line)) {
    line++;
    if (len_line == 0) continue;
    json_t *j = json_loadb(c, len_line, 0, NULL);
    int ok = json_is_object(j);
    json_decref(j);
    if (!ok)
      rc = r1d_fail(err, R1D_EINVAL, "%s:%ld: not a JSON object", src, line);
    else if (fwrite(c, 1, len_line, f) != len_line || fputc('\n', f) == EOF)
      rc = r1d_fail(err, R1D_EIO, "%s: write failed", dst);
    else
      (*n)++;
  }
  if (f && fclose(f) && rc == 0)
    rc = r1d_fail(err, R1D_EIO, "%s: write failed", dst);
  free(text);
  return rc;
}

int cmd_rejection_sample(int argc, char **argv) {
  rs_opts o;
  rs_defaults(&o, 0);
  int st = parse_args(argc, argv, &o);
  if (st == -1) return CLI_EXIT_OK;
  if (st) return st;
  r1d_error err = {0};
  r1d_reject_stats stats;
  int rc = sample_rows(&o, o.out, &stats, &err);
  long mixed = 0;
  if (rc == 0 && o.mix_in) rc = append_rows(o.mix_in, o.out, &mixed, &err);
  if (rc) return report(rc, &err);
  print_stats(&stats, o.out);
  if (o.mix_in)
    fprintf(stderr, "r1d: %ld rows of %s mixed in\n", mixed, o.mix_in);
  if (o.json) {
    json_t *j = r1d_reject_stats_json(&stats);
    char *line =
        j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (line) printf("%s\n", line);
    free(line);
    json_decref(j);
  }
  return CLI_EXIT_OK;
}

/* ---- distill ------------------------------------------------------------ */

/* The rows are text, so any student can read them; but they only teach the
 * teacher's format when both tokenizers cut it the same way. Vocabulary
 * size, the thought markers and a probe text must agree. */
static int same_tokenizer(const char *teacher, const char *student,
                          r1d_error *err) {
  static const char probe[] =
      "<think>\nWhat is 347 + 285? 7 + 5 = 12, carry 1.\n</think>\n\n"
      "<answer>632</answer> \\boxed{632} Ünïcödé, 数学, числа.";
  r1d_tokenizer *a = NULL, *b = NULL;
  r1d_ids ia = {0}, ib = {0};
  int rc = r1d_tokenizer_load_dir(teacher, &a, err);
  if (rc == 0) rc = r1d_tokenizer_load_dir(student, &b, err);
  if (rc == 0) rc = r1d_tokenizer_encode(a, probe, strlen(probe), &ia, err);
  if (rc == 0) rc = r1d_tokenizer_encode(b, probe, strlen(probe), &ib, err);
  if (rc == 0) {
    int va = r1d_tokenizer_vocab_size(a), vb = r1d_tokenizer_vocab_size(b);
    if (va != vb)
      rc = r1d_fail(err, R1D_EINVAL,
                    "teacher and student tokenizers differ (%d vs %d "
                    "tokens); distillation needs the same tokenizer",
                    va, vb);
    else if (ia.n != ib.n || memcmp(ia.v, ib.v, ia.n * sizeof *ia.v) != 0 ||
             r1d_tokenizer_token_to_id(a, "</think>") !=
                 r1d_tokenizer_token_to_id(b, "</think>"))
      rc = r1d_fail(err, R1D_EINVAL,
                    "teacher and student tokenizers differ (they encode a "
                    "probe text differently); distillation needs the same "
                    "tokenizer");
  }
  r1d_ids_free(&ia);
  r1d_ids_free(&ib);
  r1d_tokenizer_free(a);
  r1d_tokenizer_free(b);
  return rc;
}

typedef struct sft_progress {
  int bar;
  FILE *metrics;
  double last_loss;
} sft_progress;

static void on_sft_metrics(void *user, const r1d_sft_metrics *m) {
  sft_progress *p = user;
  if (m->is_eval) return;
  p->last_loss = m->loss;
  if (p->metrics) {
    fprintf(p->metrics,
            "{\"step\": %ld, \"total_steps\": %ld, \"epoch\": %.4f, "
            "\"loss\": %.9g, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens\": "
            "%ld, \"tokens_per_s\": %.1f, \"elapsed_s\": %.3f}\n",
            m->step, m->total_steps, m->epoch, m->loss, m->lr, m->grad_norm,
            m->tokens, m->tokens_per_s, m->elapsed_s);
    fflush(p->metrics);
  }
  if (!p->bar) return;
  char bar[24 + 1], eta[32];
  cli_progress_bar(bar, 24, m->step, m->total_steps);
  cli_fmt_duration(m->eta_s, eta, sizeof eta);
  fprintf(stderr, "\r\033[Kstudent [%s] step %ld/%ld  loss %.4f  ETA %s", bar,
          m->step, m->total_steps, m->loss, eta);
  if (m->step == m->total_steps) fputc('\n', stderr);
  fflush(stderr);
}

static int train_student(const rs_opts *o, const char *data, long *steps,
                         double *loss, r1d_error *err) {
  r1d_backend be;
  r1d_cpu_backend_init(&be, (int)o->threads);
  r1d_tokenizer *tok = NULL;
  r1d_template *tmpl = NULL;
  r1d_model *model = NULL;
  r1d_train_model *tm = NULL;
  r1d_dataset ds = {0};
  sft_progress prog = {.bar = isatty(2), .last_loss = NAN};
  int rc = r1d_tokenizer_load_dir(o->student, &tok, err);
  if (rc == 0)
    rc = o->student_template ? r1d_template_load_dir_as(
                                   o->student, o->student_template, &tmpl, err)
                             : r1d_template_load_dir(o->student, &tmpl, err);
  if (rc == 0) rc = r1d_model_load(o->student, &be, &model, err);
  if (rc) goto done;
  int max_len = model->cfg.max_position_embeddings;
  if (max_len > 4096) max_len = 4096; /* rows are prompt + max_tokens */
  r1d_data_opts dopt = {.max_len = max_len,
                        .tok = tok,
                        .tmpl = tmpl,
                        .eos_id =
                            model->cfg.n_eos ? model->cfg.eos_token_ids[0] : -1,
                        .bos_id = r1d_tokenizer_bos_to_add(tok),
                        .strict = 1};
  rc = r1d_dataset_load_jsonl(data, &dopt, &ds, err);
  if (rc) goto done;
  if (ds.n_docs == 0) {
    rc = r1d_fail(err, R1D_ERANGE, "%s: no usable row", data);
    goto done;
  }
  int longest = 2;
  for (size_t i = 0; i < ds.n_docs; i++)
    if (ds.docs[i].n > longest) longest = ds.docs[i].n;
  int pack = o->pack_tokens ? (int)o->pack_tokens : longest;
  if (pack < longest) {
    rc = r1d_fail(err, R1D_EINVAL,
                  "--pack-tokens %d is below the longest row (%d tokens)", pack,
                  longest);
    goto done;
  }
  fprintf(stderr,
          "r1d: student data: %zu rows, %ld tokens (%ld with loss), %ld "
          "truncated\n",
          ds.n_docs, ds.tokens, ds.loss_tokens, ds.truncated);
  if ((rc = r1d_train_model_create(model, &tm, err))) goto done;
  r1d_model_free(model);
  model = NULL;
  prog.metrics = o->metrics ? fopen(o->metrics, "a") : cli_open_metrics(o->out);
  if (o->metrics && !prog.metrics) {
    rc = r1d_fail(err, R1D_EIO, "%s: cannot write", o->metrics);
    goto done;
  }
  r1d_sft_config cfg = {
      .src_dir = o->student,
      .out_dir = o->out,
      .kind = "distill",
      .max_tokens = pack,
      .grad_accum = (int)o->grad_accum,
      .epochs = o->epochs,
      .max_steps = (long)o->max_steps,
      .adamw = {.lr = o->lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
      .sched = {.kind = R1D_LR_WARMUP_COSINE, .lr = o->lr},
      .warmup_ratio = o->warmup_ratio,
      .clip = 1.0,
      .seed = (uint64_t)o->sft_seed};
  r1d_sft_hooks hooks = {
      .on_metrics = on_sft_metrics, .stop = cli_stop_flag(), .user = &prog};
  cli_catch_stop_signals();
  rc = r1d_sft_run(&cfg, tm, &ds, NULL, &hooks, steps, err);
  *loss = prog.last_loss;
done:
  if (prog.metrics) fclose(prog.metrics);
  r1d_dataset_free(&ds);
  r1d_train_model_free(tm);
  r1d_model_free(model);
  r1d_template_free(tmpl);
  r1d_tokenizer_free(tok);
  return rc;
}

int cmd_distill(int argc, char **argv) {
  rs_opts o;
  rs_defaults(&o, 1);
  int st = parse_args(argc, argv, &o);
  if (st == -1) return CLI_EXIT_OK;
  if (st) return st;
  r1d_error err = {0};
  int rc = same_tokenizer(o.model, o.student, &err);
  if (rc == 0) rc = r1d_mkdir_p(o.out, &err);
  if (rc) return report(rc, &err);
  char *data = r1d_path_join(o.out, "distill_data.jsonl");
  if (!data) return report(r1d_fail(&err, R1D_ENOMEM, "out of memory"), &err);
  r1d_reject_stats stats;
  rc = sample_rows(&o, data, &stats, &err);
  if (rc) {
    free(data);
    return report(rc, &err);
  }
  print_stats(&stats, data);
  long mixed = 0;
  if (o.mix_in && (rc = append_rows(o.mix_in, data, &mixed, &err))) {
    free(data);
    return report(rc, &err);
  }
  if (o.mix_in)
    fprintf(stderr, "r1d: %ld rows of %s mixed in\n", mixed, o.mix_in);
  if (stats.accepted + mixed == 0) {
    fprintf(stderr,
            "r1d: the teacher kept no sample: nothing to train the student "
            "on (more --k, a longer --max-tokens, or a better teacher)\n");
    free(data);
    return CLI_EXIT_FAIL;
  }
  long steps = 0;
  double loss = NAN;
  rc = train_student(&o, data, &steps, &loss, &err);
  if (rc) {
    free(data);
    return report(rc, &err);
  }
  char last[4096] = "";
  r1d_sft_last_checkpoint(o.out, last, sizeof last, &err);
  fprintf(stderr, "r1d: %s after %ld steps (loss %.4f); the student is %s\n",
          *cli_stop_flag() ? "stopped by a signal" : "done", steps, loss, last);
  if (o.json) {
    json_t *j = r1d_reject_stats_json(&stats);
    json_t *out =
        j ? json_pack("{s:o, s:s, s:I, s:f, s:s}", "rejection", j, "data", data,
                      "steps", (json_int_t)steps, "loss",
                      isfinite(loss) ? loss : 0.0, "model", last)
          : NULL;
    char *line =
        out ? json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (line) printf("%s\n", line);
    free(line);
    json_decref(out);
  }
  free(data);
  return CLI_EXIT_OK;
}

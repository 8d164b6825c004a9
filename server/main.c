/* main.c - the r1d binary: subcommand dispatch and `r1d help CMD`. Each
 * subcommand lives in its own cmd_*.c file and returns the process status. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/file.h"
#include "../config/serve_config.h"
#include "cli.h"

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
  const char *summary;
  void (*print_options)(FILE *f); /* options listed after help, or NULL */
} command;

static const command commands[] = {
    {"serve", cmd_serve, cmd_serve_help,
     "serve the model over an OpenAI-compatible HTTP API",
     r1d_serve_config_print_help},
    {"generate", cmd_generate, cmd_generate_help,
     "generate text from a prompt or chat messages", NULL},
    {"tokenize", cmd_tokenize, cmd_tokenize_help,
     "encode JSON strings to token ids (or decode)", NULL},
    {"template", cmd_template, cmd_template_help,
     "render chat messages with the model's chat template", NULL},
    {"model", cmd_model, cmd_model_help,
     "model folders: `r1d model init` makes a random one", NULL},
    {"tasks", cmd_tasks, cmd_tasks_help,
     "rule-verifiable tasks: import, export, list, stats", NULL},
    {"logs", cmd_logs, cmd_logs_help,
     "logged interactions: `r1d logs export` as JSONL", NULL},
    {"db", cmd_db, cmd_db_help, "the data dir's database: `r1d db stat`", NULL},
    {"sft", cmd_sft, cmd_sft_help,
     "supervised fine-tuning on JSONL (messages or prompt/completion)", NULL},
    {"pretrain", cmd_pretrain, cmd_pretrain_help,
     "language-model training on text", NULL},
    {"grpo", cmd_grpo, cmd_grpo_help,
     "GRPO on rule-verifiable tasks (reasoning RL)", NULL},
    {"checkpoints", cmd_checkpoints, cmd_checkpoints_help,
     "the checkpoints registry: list, show, verify", NULL},
    {"admin", cmd_admin, cmd_admin_help,
     "a running server's admin API: tasks, jobs, weights, trainer", NULL},
    {"tokenizer", cmd_tokenizer, cmd_tokenizer_help,
     "tokenizers: `r1d tokenizer train` (byte-level BPE)", NULL},
    {"eval", cmd_eval, cmd_eval_help,
     "pass@1 over k samples, cons@k, strict and format-agnostic accuracy",
     NULL},
    {"rejection-sample", cmd_rejection_sample, cmd_rejection_sample_help,
     "sample k per prompt, keep checked answers, write SFT JSONL", NULL},
    {"distill", cmd_distill, cmd_distill_help,
     "teacher samples with rejection, the student is SFT'd on them", NULL},
    {"rm", cmd_rm, cmd_rm_help,
     "train a preference reward model from chosen/rejected pairs", NULL},
    {"align", cmd_align, cmd_align_help,
     "alignment RL: rule rewards plus a reward model", NULL},
    {"pipeline", cmd_pipeline, cmd_pipeline_help,
     "run the R1 recipe's stages from RECIPE.json, resumable", NULL},
    {"plot", cmd_plot, cmd_plot_help,
     "SVG training curves and results tables from metrics JSONL", NULL},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void print_usage(FILE *f) {
  fprintf(f,
          "r1d %s - serve and train DeepSeek-R1-style reasoning models\n\n"
          "usage: r1d COMMAND [OPTIONS]\n\ncommands:\n",
          R1D_VERSION);
  for (int i = 0; i < n_commands; i++)
    fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "  %-17s %s\n", "help", "r1d help COMMAND prints its options");
  fprintf(f, "  %-17s %s\n", "version", "print the version");
}

static const command *find_command(const char *name) {
  for (int i = 0; i < n_commands; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

int cli_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("r1d: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_EXIT_USAGE;
}

int cli_report(const r1d_error *err) {
  fprintf(stderr, "r1d: %s\n",
          err->msg[0] ? err->msg : r1d_strerror(err->code));
  return err->code == R1D_ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
}

/* The one piece of process state a signal handler may touch. */
static volatile int stop_requested;

static void on_stop_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

void cli_catch_stop_signals(void) {
  struct sigaction sa = {.sa_handler = on_stop_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

volatile int *cli_stop_flag(void) {
  return &stop_requested;
}

void cli_progress_bar(char *bar, int width, long step, long total) {
  int filled = total > 0 ? (int)(width * (double)step / (double)total) : 0;
  for (int i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : '-';
  bar[width] = 0;
}

FILE *cli_open_metrics(const char *out_dir) {
  char *path = r1d_path_join(out_dir, "metrics.jsonl");
  FILE *f = path ? fopen(path, "a") : NULL;
  free(path);
  return f;
}

void cli_fmt_duration(double s, char *out, size_t n) {
  if (!isfinite(s) || s < 0) s = 0;
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(out, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else if (t >= 60)
    snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
  else
    snprintf(out, n, "%lds", t);
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
  char *end = NULL;
  if (!s || !*s) return -1;
  long long v = strtoll(s, &end, 10);
  if (*end != '\0' || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int cli_parse_float(const char *s, double lo, double hi, double *out) {
  char *end = NULL;
  if (!s || !*s) return -1;
  double v = strtod(s, &end);
  if (*end != '\0' || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 ||
      strcmp(name, "-h") == 0) {
    if (argc < 3) {
      print_usage(stdout);
      return CLI_EXIT_OK;
    }
    const command *c = find_command(argv[2]);
    if (!c) return cli_usage_error("unknown command '%s'", argv[2]);
    fputs(c->help, stdout);
    if (c->print_options) c->print_options(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
    printf("r1d %s\n", R1D_VERSION);
    return CLI_EXIT_OK;
  }
  const command *c = find_command(name);
  if (!c) {
    cli_usage_error("unknown command '%s' (try `r1d help`)", name);
    return CLI_EXIT_USAGE;
  }
  /* Subcommands parse argv[1..] so that getopt sees their name as argv[0]. */
  return c->run(argc - 1, argv + 1);
}

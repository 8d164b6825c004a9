/* cli.h - what the subcommands share: their entry points, help texts, and the
 * one-line error convention (message on stderr, exit status 2 for bad input
 * or files, 1 for internal failures). */
#ifndef R1D_SERVER_CLI_H
#define R1D_SERVER_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "../common/status.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_db(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_grpo(int argc, char **argv);
int cmd_checkpoints(int argc, char **argv);
int cmd_admin(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_rejection_sample(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_align(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);
int cmd_plot(int argc, char **argv);

extern const char cmd_generate_help[];
extern const char cmd_tokenize_help[];
extern const char cmd_template_help[];
extern const char cmd_model_help[];
extern const char cmd_serve_help[];
extern const char cmd_tasks_help[];
extern const char cmd_logs_help[];
extern const char cmd_db_help[];
extern const char cmd_sft_help[];
extern const char cmd_pretrain_help[];
extern const char cmd_grpo_help[];
extern const char cmd_checkpoints_help[];
extern const char cmd_admin_help[];
extern const char cmd_tokenizer_help[];
extern const char cmd_eval_help[];
extern const char cmd_rejection_sample_help[];
extern const char cmd_distill_help[];
extern const char cmd_rm_help[];
extern const char cmd_align_help[];
extern const char cmd_pipeline_help[];
extern const char cmd_plot_help[];

/* Prints "r1d: <msg>" and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "r1d: <err->msg>" and returns the exit status for err->code. */
int cli_report(const r1d_error *err);
/* Parses a whole decimal/float argument; 0 on success. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);
int cli_parse_float(const char *s, double lo, double hi, double *out);
/* Training runs: SIGINT/SIGTERM set the flag (polled between steps). */
void cli_catch_stop_signals(void);
volatile int *cli_stop_flag(void);
/* bar[0..width) = '#' for the done share of total steps, '-' for the rest;
 * bar needs width + 1 bytes. */
void cli_progress_bar(char *bar, int width, long step, long total);
/* OUT/metrics.jsonl opened for appending, or NULL. */
FILE *cli_open_metrics(const char *out_dir);
/* "42s", "3m05s", "1h02m": an ETA for progress bars. */
void cli_fmt_duration(double s, char *out, size_t n);
/* eval, rejection-sample, distill (cmd_eval.c): a JSON array of the
 * normalised tasks of --tasks PATH (JSONL as `r1d tasks import` takes it;
 * bad lines listed, then refused) or of --task-gen SPEC, keeping split
 * "train", "eval" or "all" (NULL: dflt when the file has such tasks, else
 * all). Generated: "train" = the first `count` problems from seed, "eval"
 * = `count` held out after train_count training ones (as `r1d grpo
 * --task-count`; < 0: 1000, or fewer when the generator has too few
 * problems), "all" = both. */
struct json_t;
int cli_tasks_read(const char *path, const char *gen_spec,
                   long long train_count, long long count, long long seed,
                   const char *split, const char *dflt, struct json_t **out,
                   r1d_error *err);

#endif

/* cmd_logs.c - `r1d logs export`: the logged interactions as JSONL, either
 * as training rows that TRL and Hugging Face datasets read unchanged
 * ({"messages": [...]}, one row per chat choice), as the raw records with
 * their feedback, or as the preference pairs users' feedback implies
 * (storage/feedback_pairs.h, what `r1d rm` trains on). Opens the database
 * read-only, so it runs beside a live server and sees every answer
 * committed so far. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../storage/feedback_pairs.h"
#include "../storage/interactions.h"
#include "cli.h"

const char cmd_logs_help[] =
    "usage: r1d logs export [--since T] [--format messages|raw|pairs] "
    "[-o FILE]\n"
    "                       [--data-dir DIR] [--max-pairs N]\n"
    "\n"
    "Writes the interactions r1d serve logged, oldest first, as JSONL.\n"
    "--format messages (default): one row per choice of each successful chat\n"
    "  answer, {\"messages\": [...the request's messages, {\"role\":\n"
    "  \"assistant\", \"content\", \"reasoning_content\"}], \"id\", "
    "\"created\",\n"
    "  \"model\", \"weight_version\", \"finish_reason\", \"rating\"}, the "
    "shape\n"
    "  TRL's SFT and reward trainers and datasets.load_dataset(\"json\") "
    "read.\n"
    "--format raw: every record as stored (chat and completions, errors and\n"
    "  cancelled ones too), with a \"feedback\" list when there is feedback.\n"
    "--format pairs: preference pairs from users' feedback, one\n"
    "  {\"prompt\": [messages], \"chosen\", \"rejected\", \"source\":\n"
    "  \"preferred\"|\"ratings\", \"ids\"} per line (TRL RewardTrainer's "
    "shape,\n"
    "  what `r1d rm --data` reads): a \"preferred\" text beats the logged\n"
    "  answer; answers to the same prompt with different ratings pair up "
    "(the\n"
    "  higher-rated chosen, at most 16 per prompt); a lone rating gives "
    "none.\n"
    "  --max-pairs N stops after N; --since does not apply.\n"
    "--since T: only answers from T on; T is Unix seconds, 2026-12-01,\n"
    "  2026-12-01T08:00:00Z, or an age such as 30m, 24h, 7d.\n"
    "--data-dir DIR is the data dir of r1d serve (default r1d-data).\n";

/* T as milliseconds since the epoch; -1 when malformed. */
static long long parse_since(const char *t) {
  char *end;
  size_t n = strlen(t);
  if (n >= 2 && strchr("smhd", t[n - 1]) && isdigit((unsigned char)t[0])) {
    double v = strtod(t, &end);
    if (end != t + n - 1 || v < 0) return -1;
    double unit = t[n - 1] == 's'   ? 1
                  : t[n - 1] == 'm' ? 60
                  : t[n - 1] == 'h' ? 3600
                                    : 86400;
    long long now = (long long)r1d_now_ms();
    long long ago = (long long)(v * unit * 1000.0);
    return ago > now ? 0 : now - ago;
  }
  struct tm tm = {0};
  const char *rest = strptime(t, "%Y-%m-%d", &tm);
  if (rest) {
    if (*rest == 'T' || *rest == ' ') {
      const char *r2 = strptime(rest + 1, "%H:%M:%S", &tm);
      if (!r2) r2 = strptime(rest + 1, "%H:%M", &tm);
      if (!r2) return -1;
      rest = r2;
    }
    if (*rest == 'Z') rest++;
    if (*rest) return -1;
    return (long long)timegm(&tm) * 1000;
  }
  long long secs = strtoll(t, &end, 10);
  if (end == t || *end || secs < 0) return -1;
  return secs * 1000;
}

typedef struct export_ctx {
  FILE *out;
  int raw;
  r1d_txn *t;
  size_t rows, records;
  int write_failed;
} export_ctx;

static int put_line(export_ctx *x, json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (!s) return R1D_ENOMEM;
  int bad = fputs(s, x->out) == EOF || fputc('\n', x->out) == EOF;
  free(s);
  if (bad) {
    x->write_failed = 1;
    return R1D_EIO;
  }
  x->rows++;
  return 0;
}

static int export_one(void *arg, uint64_t key, const char *json, size_t len) {
  export_ctx *x = arg;
  x->records++;
  json_t *rec = json_loadb(json, len, JSON_ALLOW_NUL, NULL);
  if (!rec) return 0; /* not ours to judge here; `r1d db stat` counts */
  json_t *fb = NULL;
  int rc = r1d_feedback_list(x->t, key, &fb, NULL);
  if (rc) {
    json_decref(rec);
    return rc;
  }
  if (x->raw) {
    if (json_array_size(fb)) json_object_set(rec, "feedback", fb);
    rc = put_line(x, rec);
  } else {
    size_t n = json_array_size(json_object_get(rec, "choices"));
    for (size_t i = 0; i < n && rc == 0; i++) {
      json_t *row = NULL;
      if (r1d_interaction_to_messages(rec, (int)i, fb, &row, NULL) == 0) {
        rc = put_line(x, row);
        json_decref(row);
      }
    }
  }
  json_decref(fb);
  json_decref(rec);
  return rc;
}

typedef struct export_req {
  uint64_t after;
  export_ctx *x;
} export_req;

static int export_txn(r1d_txn *t, void *arg, r1d_error *err) {
  export_req *q = arg;
  q->x->t = t;
  return r1d_interactions_scan(t, q->after, export_one, q->x, err);
}

/* --format pairs: storage/feedback_pairs.h's pairs, one per line. */
static int export_pairs(const char *dir, const char *out_path, long max_pairs) {
  r1d_db_options o = {.read_only = 1};
  r1d_db *db = NULL;
  r1d_error err = {0};
  json_t *pairs = NULL;
  if (r1d_db_open(dir, &o, &db, &err)) return cli_report(&err);
  int rc = r1d_feedback_pairs_collect(db, max_pairs, &pairs, &err);
  r1d_db_close(db);
  if (rc) return cli_report(&err);
  FILE *out = stdout;
  if (out_path && !(out = fopen(out_path, "w"))) {
    json_decref(pairs);
    return cli_usage_error("%s: cannot write", out_path);
  }
  export_ctx x = {.out = out};
  size_t i;
  json_t *p;
  long sources[2] = {0, 0};
  json_array_foreach(pairs, i, p) {
    const char *src = json_string_value(json_object_get(p, "source"));
    sources[src && !strcmp(src, "ratings")]++;
    if (put_line(&x, p)) break;
  }
  json_decref(pairs);
  if (fflush(out) == EOF) x.write_failed = 1;
  if (out != stdout && fclose(out) == EOF) x.write_failed = 1;
  if (x.write_failed)
    return cli_usage_error("%s: write failed", out_path ? out_path : "stdout");
  fprintf(stderr,
          "r1d: exported %zu pairs (%ld from preferred texts, %ld from "
          "ratings)\n",
          x.rows, sources[0], sources[1]);
  return CLI_EXIT_OK;
}

static int logs_export(int argc, char **argv) {
  static const struct option opts[] = {{"since", required_argument, 0, 's'},
                                       {"format", required_argument, 0, 'f'},
                                       {"output", required_argument, 0, 'o'},
                                       {"data-dir", required_argument, 0, 'd'},
                                       {"max-pairs", required_argument, 0, 'p'},
                                       {0, 0, 0, 0}};
  const char *dir = "r1d-data", *out_path = NULL, *format = "messages";
  long long since_ms = 0, max_pairs = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      if ((since_ms = parse_since(optarg)) < 0)
        return cli_usage_error("--since: expected Unix seconds, a date "
                               "(2026-12-01[T08:00:00Z]) or an age (24h, 7d), "
                               "got '%s'",
                               optarg);
      break;
    case 'f': format = optarg; break;
    case 'o': out_path = optarg; break;
    case 'd': dir = optarg; break;
    case 'p':
      if (cli_parse_int(optarg, 1, 1LL << 40, &max_pairs))
        return cli_usage_error("--max-pairs: expected a positive integer, got "
                               "'%s'",
                               optarg);
      break;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc)
    return cli_usage_error("logs export: unexpected argument '%s'",
                           argv[optind]);
  int raw = !strcmp(format, "raw"), pairs = !strcmp(format, "pairs");
  if (!raw && !pairs && strcmp(format, "messages"))
    return cli_usage_error(
        "--format: expected messages, raw or pairs, got '%s'", format);
  if (pairs && since_ms)
    return cli_usage_error("--since does not apply to --format pairs");
  if (max_pairs && !pairs)
    return cli_usage_error("--max-pairs needs --format pairs");
  if (pairs) return export_pairs(dir, out_path, (long)max_pairs);
  r1d_db_options o = {.read_only = 1};
  r1d_db *db = NULL;
  r1d_error err = {0};
  if (r1d_db_open(dir, &o, &db, &err)) return cli_report(&err);
  FILE *out = stdout;
  if (out_path && !(out = fopen(out_path, "w"))) {
    r1d_db_close(db);
    return cli_usage_error("%s: cannot write", out_path);
  }
  export_ctx x = {.out = out, .raw = raw};
  /* keys are (ms << 16 | seq): everything from since_ms on */
  export_req q = {since_ms > 0 ? ((uint64_t)since_ms << 16) - 1 : 0, &x};
  int rc = r1d_db_read(db, export_txn, &q, &err);
  if (fflush(out) == EOF) x.write_failed = 1;
  if (out != stdout && fclose(out) == EOF) x.write_failed = 1;
  r1d_db_close(db);
  if (x.write_failed)
    return cli_usage_error("%s: write failed", out_path ? out_path : "stdout");
  if (rc && !err.msg[0])
    r1d_fail(&err, rc, "logs export: %s", r1d_strerror(rc));
  if (rc) return cli_report(&err);
  fprintf(stderr, "r1d: exported %zu rows from %zu interactions\n", x.rows,
          x.records);
  return CLI_EXIT_OK;
}

int cmd_logs(int argc, char **argv) {
  if (argc < 2)
    return cli_usage_error("logs: expected `export` (see r1d help logs)");
  if (!strcmp(argv[1], "export")) return logs_export(argc - 1, argv + 1);
  return cli_usage_error("logs: unknown subcommand '%s' (try `r1d help logs`)",
                         argv[1]);
}

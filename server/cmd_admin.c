/* cmd_admin.c - `r1d admin ...`: the admin routes of a running `r1d serve`
 * (design/API.md) from the shell, so that operators add tasks, start and
 * watch training jobs, swap weights and set the trainer's schedule without
 * hand-written curl. Each action is one request (a watch polls), made by
 * admin_http.c; this file parses the arguments and prints the answers.
 *
 *   r1d admin tasks add tasks.jsonl [--strict]
 *   r1d admin jobs start --type grpo --set max_steps=16 --swap never --watch
 *   r1d admin jobs list | show ID | cancel ID | watch ID
 *   r1d admin checkpoints list
 *   r1d admin weights | weights swap --version ckpt-... | weights rollback
 *   r1d admin trainer | trainer set --enabled true --interval 3600
 *
 * Global options (anywhere on the line): --url URL (default $R1D_URL or
 * http://127.0.0.1:8000), --admin-key KEY (default $R1D_ADMIN_KEY), --json
 * (print the server's JSON answer instead of a table or a line).
 *
 * Errors are one line on stderr: the server's {"error": {...}} as
 * `r1d: HTTP 400: message (param: x)`, exit status 2 for 4xx (the request
 * was wrong) and 1 for 5xx or an unreachable server. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/file.h"
#include "admin_http.h"
#include "cli.h"

const char cmd_admin_help[] =
    "usage: r1d admin [--url URL] [--admin-key KEY] [--json] GROUP ACTION "
    "...\n"
    "\n"
    "Talks to a running `r1d serve` over its admin routes (/admin/v1/...).\n"
    "  tasks add FILE [--strict]      POST /admin/v1/tasks: add the JSONL "
    "tasks\n"
    "                                 of FILE (- for stdin); prints `added N\n"
    "                                 tasks, M bad lines` and `FILE:LINE: "
    "why`\n"
    "                                 per bad line (exit 2 when any); "
    "--strict\n"
    "                                 stores none when a line is bad\n"
    "  jobs start --type grpo|sft|eval [--config FILE.json] [--set "
    "KEY=VALUE]...\n"
    "       [--swap auto|never] [--min-improvement X] [--watch]\n"
    "                                 POST /admin/v1/jobs; prints the job id.\n"
    "                                 --set values are JSON when they parse,\n"
    "                                 else strings; a.b=1 sets {\"a\": "
    "{\"b\": 1}};\n"
    "                                 they apply over --config's object\n"
    "  jobs list | show ID | cancel ID\n"
    "  jobs watch ID                  polls the job every 0.5 s: a progress "
    "bar\n"
    "                                 on a terminal (stderr), else one JSON "
    "line\n"
    "                                 per change; then the eval before/after "
    "and\n"
    "                                 the decision. Exit 0 when it succeeded "
    "or\n"
    "                                 was cancelled, 1 when it failed\n"
    "  checkpoints [list] [--status S] [--limit N]\n"
    "                                 the registry: version, status, kind, "
    "step,\n"
    "                                 path\n"
    "  weights                        the loaded weight versions\n"
    "  weights swap (--path DIR | --version ckpt-...) [--abort-in-flight]\n"
    "  weights rollback [--abort-in-flight]\n"
    "                                 hot swap (or back to the previous "
    "version);\n"
    "                                 requests in flight finish on their "
    "weights\n"
    "                                 unless --abort-in-flight\n"
    "  trainer                        the online trainer's schedule\n"
    "  trainer set [--enabled true|false] [--interval S] [--min-new-tasks N]\n"
    "       [--job FILE.json]         change it (PUT /admin/v1/trainer)\n"
    "\n"
    "  --url URL        the server (default $R1D_URL or "
    "http://127.0.0.1:8000)\n"
    "  --admin-key KEY  sent as Authorization: Bearer KEY (default "
    "$R1D_ADMIN_KEY;\n"
    "                   a server without admin keys answers admin routes on\n"
    "                   loopback only)\n"
    "                   (prefer the variable: arguments show in ps)\n"
    "  --json           print the server's JSON answer (errors too) instead "
    "of\n"
    "                   tables and lines\n"
    "\n"
    "Exit status: 0 done, 2 bad arguments or a 4xx answer (the message is\n"
    "the server's: `r1d: HTTP 400: message (param: x)`), 1 a 5xx answer, an\n"
    "unreachable server or a failed job.\n";

static const char default_url[] = "http://127.0.0.1:8000";

enum {
  POLL_MS = 500,
  BAR_WIDTH = 20,
  TABLE_COLS = 6,
  CELL = 256,
};

/* What every action needs: where the server is, how to print. */
typedef struct admin_ctx {
  admin_conn conn;
  int json; /* --json */
} admin_ctx;

/* One HTTP answer. */
typedef struct answer {
  long status;
  char *raw;
  size_t len;
  json_t *json; /* the body parsed, or NULL */
} answer;

static void answer_free(answer *ans) {
  free(ans->raw);
  json_decref(ans->json);
  *ans = (answer){0};
}

/* ---- requests --------------------------------------------------------- */

static int out_of_memory(void) {
  fputs("r1d: out of memory\n", stderr);
  return CLI_EXIT_FAIL;
}

/* The raw body on stdout, ending in a newline. */
static void print_raw(const answer *ans) {
  fwrite(ans->raw, 1, ans->len, stdout);
  if (ans->len == 0 || ans->raw[ans->len - 1] != '\n') fputc('\n', stdout);
}

/* Sends the request; 0 when any answer came (ans filled), else the exit
 * status after printing why. */
static int send_raw(const admin_ctx *a, const char *method, const char *path,
                    const char *body, size_t len, const char *content_type,
                    answer *ans) {
  r1d_error err = {0};
  *ans = (answer){0};
  int rc = admin_request(&a->conn, method, path, body, len, content_type,
                         &ans->status, &ans->raw, &ans->len, &err);
  if (rc) {
    fprintf(stderr, "r1d: %s\n", err.msg);
    return rc == R1D_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
  }
  ans->json = json_loadb(ans->raw, ans->len, 0, NULL);
  return 0;
}

/* Prints a non-2xx answer as one line; returns 2 for 4xx, 1 otherwise. */
static int report_http_error(const admin_ctx *a, const answer *ans) {
  const json_t *e = json_object_get(ans->json, "error");
  const char *msg = json_string_value(json_object_get(e, "message"));
  const char *param = json_string_value(json_object_get(e, "param"));
  if (a->json && ans->len) print_raw(ans);
  if (msg) {
    fprintf(stderr, "r1d: HTTP %ld: %s", ans->status, msg);
    if (param) fprintf(stderr, " (param: %s)", param);
    fputc('\n', stderr);
  } else {
    /* not r1d's error shape (a proxy, another server): its first line */
    size_t n = strcspn(ans->raw ? ans->raw : "", "\r\n");
    if (n == 0)
      fprintf(stderr,
              "r1d: HTTP %ld: (an answer without a message; is %s "
              "r1d serve?)\n",
              ans->status, a->conn.url);
    else
      fprintf(stderr, "r1d: HTTP %ld: %.*s\n", ans->status,
              (int)(n > 200 ? 200 : n), ans->raw);
  }
  return ans->status >= 400 && ans->status < 500 ? CLI_EXIT_USAGE
                                                 : CLI_EXIT_FAIL;
}

/* A JSON request (body NULL: none) that must answer 2xx with a JSON
 * object. 0 with ans filled, else the exit status, already reported. */
static int call(const admin_ctx *a, const char *method, const char *path,
                const json_t *body, answer *ans) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  if (body && !text) return out_of_memory();
  int st = send_raw(a, method, path, text, text ? strlen(text) : 0,
                    "application/json", ans);
  free(text);
  if (st) return st;
  if (ans->status < 200 || ans->status >= 300) {
    st = report_http_error(a, ans);
  } else if (!json_is_object(ans->json)) {
    fprintf(stderr,
            "r1d: %s %s: the answer is not a JSON object (is %s "
            "r1d serve?)\n",
            method, path, a->conn.url);
    st = CLI_EXIT_FAIL;
  }
  if (st) answer_free(ans);
  return st;
}

/* "/admin/v1/jobs/" + id escaped + tail; NULL when out of memory. */
static char *id_path(const char *prefix, const char *id, const char *tail) {
  char *esc = admin_escape(id);
  if (!esc) return NULL;
  size_t n = strlen(prefix) + strlen(esc) + strlen(tail) + 1;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s%s%s", prefix, esc, tail);
  free(esc);
  return p;
}

/* ---- arguments -------------------------------------------------------- */

/* A getopt_long failure ('?' or ':', optstring starting with ':') as one
 * line. */
static int bad_option(const char *what, int c, char **argv) {
  const char *arg = argv[optind - 1];
  if (c == ':') return cli_usage_error("%s: %s needs a value", what, arg);
  return cli_usage_error("%s: unknown option '%s' (see r1d help admin)", what,
                         arg);
}

static int no_more_args(const char *what, int argc, char **argv) {
  if (optind < argc)
    return cli_usage_error("%s: unexpected argument '%s'", what, argv[optind]);
  return 0;
}

/* The action's one positional argument (a job id, a file). */
static int one_arg(const char *what, const char *name, int argc, char **argv,
                   const char **out) {
  if (optind != argc - 1)
    return cli_usage_error("%s: expected one %s", what, name);
  *out = argv[optind];
  return 0;
}

/* The options of an action that takes none: any is an error. */
static int parse_plain(const char *what, int argc, char **argv) {
  static const struct option none[] = {{0, 0, 0, 0}};
  optind = 1;
  opterr = 0;
  int c = getopt_long(argc, argv, ":", none, NULL);
  return c == -1 ? 0 : bad_option(what, c, argv);
}

/* A JSON file as a new reference; NULL after printing why. */
static json_t *load_json_object(const char *opt, const char *path) {
  json_error_t e;
  json_t *v = json_load_file(path, 0, &e);
  if (!v) {
    if (e.line > 0)
      cli_usage_error("%s: %s:%d:%d: %s", opt, path, e.line, e.column, e.text);
    else
      cli_usage_error("%s: %s: %s", opt, path, e.text);
    return NULL;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    cli_usage_error("%s: %s: expected a JSON object", opt, path);
    return NULL;
  }
  return v;
}

static int read_stream(FILE *f, char **data, size_t *len, r1d_error *err) {
  r1d_buf b = {0};
  for (;;) {
    if (r1d_buf_reserve(&b, 1 << 16)) {
      r1d_buf_free(&b);
      return r1d_fail(err, R1D_ENOMEM, "stdin: out of memory");
    }
    size_t n = fread(b.p + b.n, 1, b.cap - b.n - 1, f);
    b.n += n;
    if (n == 0) break;
  }
  if (ferror(f)) {
    r1d_buf_free(&b);
    return r1d_fail(err, R1D_EIO, "stdin: %s", strerror(errno));
  }
  b.p[b.n] = '\0';
  *data = b.p;
  *len = b.n;
  return 0;
}

/* ---- printing --------------------------------------------------------- */

static const char *str_or(const json_t *v, const char *dflt) {
  const char *s = json_string_value(v);
  return s ? s : dflt;
}

/* v printed with fmt when a number, "?" otherwise. */
static const char *num_str(const json_t *v, const char *fmt, char *out,
                           size_t n) {
  if (json_is_number(v))
    snprintf(out, n, fmt, json_number_value(v));
  else
    snprintf(out, n, "?");
  return out;
}

static long long int_or(const json_t *v, long long dflt) {
  return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

/* One row of a table from one item of a list answer. */
typedef void (*row_fn)(const json_t *item, char cells[][CELL]);

/* Prints heads and a row per item, columns padded to their widest cell
 * (the last one not). */
static void print_table(const char *const *heads, int ncols,
                        const json_t *items, row_fn row) {
  size_t width[TABLE_COLS] = {0};
  char cells[TABLE_COLS][CELL];
  for (int c = 0; c < ncols; c++)
    width[c] = strlen(heads[c]);
  for (size_t i = 0; i < json_array_size(items); i++) {
    row(json_array_get(items, i), cells);
    for (int c = 0; c < ncols; c++)
      if (strlen(cells[c]) > width[c]) width[c] = strlen(cells[c]);
  }
  for (int c = 0; c < ncols; c++)
    if (c + 1 < ncols)
      printf("%-*s  ", (int)width[c], heads[c]);
    else
      printf("%s\n", heads[c]);
  for (size_t i = 0; i < json_array_size(items); i++) {
    row(json_array_get(items, i), cells);
    for (int c = 0; c < ncols; c++)
      if (c + 1 < ncols)
        printf("%-*s  ", (int)width[c], cells[c]);
      else
        printf("%s\n", cells[c]);
  }
}

/* ---- tasks ------------------------------------------------------------ */

static int tasks_add(const admin_ctx *a, int argc, char **argv) {
  static const struct option opts[] = {{"strict", no_argument, 0, 's'},
                                       {0, 0, 0, 0}};
  int strict = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if (c != 's') return bad_option("tasks add", c, argv);
    strict = 1;
  }
  const char *file = NULL;
  int st = one_arg("tasks add", "FILE (- for stdin)", argc, argv, &file);
  if (st) return st;
  const int from_stdin = strcmp(file, "-") == 0;
  const char *shown = from_stdin ? "stdin" : file;
  char *text = NULL;
  size_t len = 0;
  r1d_error err = {0};
  int rc = from_stdin ? read_stream(stdin, &text, &len, &err)
                      : r1d_read_file(file, &text, &len, &err);
  if (rc) return cli_report(&err);
  answer ans;
  st = send_raw(a, "POST",
                strict ? "/admin/v1/tasks?strict=true" : "/admin/v1/tasks",
                text, len, "application/x-ndjson", &ans);
  free(text);
  if (st) return st;
  /* a 400 that lists bad lines (strict, or none good) is still the
   * per-line report */
  const json_t *errors = json_object_get(ans.json, "errors");
  int listed = ans.status == 400 && json_array_size(errors) > 0;
  if ((ans.status < 200 || ans.status >= 300) && !listed) {
    st = report_http_error(a, &ans);
  } else if (!json_is_object(ans.json)) {
    fprintf(stderr, "r1d: POST /admin/v1/tasks: the answer is not JSON\n");
    st = CLI_EXIT_FAIL;
  } else {
    size_t bad = json_array_size(errors);
    if (a->json) {
      print_raw(&ans);
    } else {
      for (size_t i = 0; i < bad; i++) {
        const json_t *e = json_array_get(errors, i);
        fprintf(stderr, "r1d: %s:%lld: %s\n", shown,
                int_or(json_object_get(e, "line"), 0),
                str_or(json_object_get(e, "message"), "bad line"));
      }
      printf("added %lld tasks, %zu bad lines%s\n",
             int_or(json_object_get(ans.json, "added"), 0), bad,
             listed && strict ? " (strict: nothing stored)" : "");
    }
    st = bad ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  }
  answer_free(&ans);
  return st;
}

/* ---- jobs ------------------------------------------------------------- */

/* Sets root[k1][k2]... = val for the dotted key "k1.k2..." (val stolen),
 * making the objects on the way. 0, or prints why and returns 2. */
static int set_dotted(json_t *root, const char *key, json_t *val) {
  json_t *obj = root;
  const char *p = key;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    char part[128];
    if (n == 0 || n >= sizeof part) {
      json_decref(val);
      return cli_usage_error("--set %s: expected KEY=VALUE with a key like "
                             "a or a.b",
                             key);
    }
    memcpy(part, p, n);
    part[n] = '\0';
    if (!dot) {
      if (json_object_set_new(obj, part, val)) return out_of_memory();
      return 0;
    }
    json_t *next = json_object_get(obj, part);
    if (!next) {
      if (json_object_set_new(obj, part, next = json_object())) {
        json_decref(val);
        return out_of_memory();
      }
    } else if (!json_is_object(next)) {
      json_decref(val);
      return cli_usage_error("--set %s: %.*s is already set to a value that "
                             "is not an object",
                             key, (int)(dot - key), key);
    }
    obj = next;
    p = dot + 1;
  }
}

/* Applies one --set KEY=VALUE to config. */
static int apply_set(json_t *config, const char *arg) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg)
    return cli_usage_error("--set: expected KEY=VALUE, got '%s'", arg);
  char key[256];
  size_t n = (size_t)(eq - arg);
  if (n >= sizeof key) return cli_usage_error("--set: key too long");
  memcpy(key, arg, n);
  key[n] = '\0';
  json_t *val = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
  if (!val) val = json_string(eq + 1); /* not JSON: the text itself */
  if (!val)
    return cli_usage_error("--set %s: the value is not UTF-8 text", key);
  return set_dotted(config, key, val);
}

static double unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int job_ended(const char *status) {
  return !strcmp(status, "succeeded") || !strcmp(status, "failed") ||
         !strcmp(status, "cancelled");
}

/* "7/16" (or "-" before a step is known for an eval job). */
static void job_step(const json_t *job, char *out, size_t n) {
  const json_t *pr = json_object_get(job, "progress");
  long long step = int_or(json_object_get(pr, "step"), 0);
  long long total = int_or(json_object_get(pr, "total_steps"), 0);
  if (total > 0)
    snprintf(out, n, "%lld/%lld", step, total);
  else
    snprintf(out, n, "-");
}

/* A finished (or running) job in a few lines: what, how far, the eval
 * before/after, the decision and the candidate, the error. */
static void print_job(FILE *f, const json_t *job) {
  const char *id = str_or(json_object_get(job, "id"), "?");
  const char *status = str_or(json_object_get(job, "status"), "?");
  char step[64], dur[32] = "", b[32], af[32];
  job_step(job, step, sizeof step);
  const json_t *t0 = json_object_get(job, "started_at");
  const json_t *t1 = json_object_get(job, "finished_at");
  if (json_is_number(t0)) {
    double end = json_is_number(t1) ? json_number_value(t1) : unix_now();
    cli_fmt_duration(end - json_number_value(t0), dur, sizeof dur);
  }
  fprintf(f, "%s (%s) %s", id, str_or(json_object_get(job, "type"), "?"),
          status);
  if (strcmp(step, "-"))
    fprintf(f, "%s step %s", !strcmp(status, "cancelled") ? " at" : ":", step);
  if (dur[0]) fprintf(f, " in %s", dur);
  fputc('\n', f);
  const json_t *ev = json_object_get(job, "eval");
  const json_t *before = json_object_get(ev, "before");
  const json_t *after = json_object_get(ev, "after");
  if (json_is_object(before) || json_is_object(after)) {
    const json_t *any = json_is_object(before) ? before : after;
    fprintf(f, "eval pass@1: %s",
            num_str(json_object_get(before, "pass1"), "%.4f", b, sizeof b));
    /* an eval job measures once; a grpo job before and after training */
    if (strcmp(str_or(json_object_get(job, "type"), ""), "eval"))
      fprintf(f, " -> %s",
              num_str(json_object_get(after, "pass1"), "%.4f", af, sizeof af));
    fprintf(f, " (%lld tasks, k=%lld)\n",
            int_or(json_object_get(any, "tasks"), 0),
            int_or(json_object_get(any, "k"), 0));
  }
  const json_t *res = json_object_get(job, "result");
  if (json_is_object(res)) {
    const char *d = str_or(json_object_get(res, "decision"), "?");
    const char *reason = str_or(json_object_get(res, "reason"), "");
    fprintf(f, "decision: %s%s%s", d, reason[0] ? ": " : "", reason);
    if (json_is_integer(json_object_get(res, "weight_version")))
      fprintf(f, " (live as weight version %lld)",
              int_or(json_object_get(res, "weight_version"), 0));
    fputc('\n', f);
    const char *ver =
        json_string_value(json_object_get(res, "registry_version"));
    const char *ck = json_string_value(json_object_get(res, "checkpoint"));
    if (ver || ck)
      fprintf(f, "candidate: %s%s%s\n", ver ? ver : "", ver && ck ? " " : "",
              ck ? ck : "");
  }
  const char *error = json_string_value(json_object_get(job, "error"));
  if (error) fprintf(f, "error: %s\n", error);
}

/* The part of a job a watcher follows, as one compact JSON line; NULL when
 * out of memory. */
static char *watch_line(const json_t *job) {
  json_t *o = json_pack(
      "{s:O?, s:O?, s:O?, s:O?, s:O?}", "id", json_object_get(job, "id"),
      "status", json_object_get(job, "status"), "progress",
      json_object_get(job, "progress"), "metrics",
      json_object_get(job, "metrics"), "eval", json_object_get(job, "eval"));
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  return s;
}

/* The progress bar's state across polls: for the ETA. */
typedef struct bar_state {
  double t_first;
  long long step_first;
  int seen;
} bar_state;

static void draw_bar(const json_t *job, bar_state *bs) {
  const char *status = str_or(json_object_get(job, "status"), "?");
  const json_t *pr = json_object_get(job, "progress");
  long long step = int_or(json_object_get(pr, "step"), 0);
  long long total = int_or(json_object_get(pr, "total_steps"), 0);
  const json_t *m = json_object_get(job, "metrics");
  const json_t *ev = json_object_get(job, "eval");
  char bar[BAR_WIDTH + 1], r[32], acc[32], kl[32], b[32], af[32], eta[32];
  if (!strcmp(status, "queued")) {
    fprintf(stderr, "\r\033[K%s queued",
            str_or(json_object_get(job, "id"), "?"));
    fflush(stderr);
    return;
  }
  cli_progress_bar(bar, BAR_WIDTH, (long)step, (long)total);
  fprintf(stderr, "\r\033[K[%s] ", bar);
  if (total > 0)
    fprintf(stderr, "step %lld/%lld  reward %s  acc %s  kl %s  ", step, total,
            num_str(json_object_get(m, "reward"), "%.2f", r, sizeof r),
            num_str(json_object_get(m, "accuracy"), "%.2f", acc, sizeof acc),
            num_str(json_object_get(m, "kl"), "%.3g", kl, sizeof kl));
  fprintf(stderr, "eval %s -> %s",
          num_str(json_object_get(json_object_get(ev, "before"), "pass1"),
                  "%.2f", b, sizeof b),
          num_str(json_object_get(json_object_get(ev, "after"), "pass1"),
                  "%.2f", af, sizeof af));
  double now = mono_now();
  if (!bs->seen && step > 0) {
    bs->seen = 1;
    bs->t_first = now;
    bs->step_first = step;
  } else if (bs->seen && step > bs->step_first && step < total) {
    double per = (now - bs->t_first) / (double)(step - bs->step_first);
    cli_fmt_duration(per * (double)(total - step), eta, sizeof eta);
    fprintf(stderr, "  ETA %s", eta);
  }
  fflush(stderr);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* Polls job id until it ends. */
static int watch_job(const admin_ctx *a, const char *id) {
  char *path = id_path("/admin/v1/jobs/", id, "");
  if (!path) return out_of_memory();
  const int tty = isatty(STDERR_FILENO);
  char *last = NULL;
  bar_state bs = {0};
  answer ans = {0};
  int st;
  for (;;) {
    if ((st = call(a, "GET", path, NULL, &ans))) break;
    const char *status = str_or(json_object_get(ans.json, "status"), "?");
    if (tty) {
      draw_bar(ans.json, &bs);
    } else {
      char *line = watch_line(ans.json);
      if (line && (!last || strcmp(line, last))) {
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
        free(last);
        last = line;
      } else {
        free(line);
      }
    }
    if (job_ended(status)) break;
    answer_free(&ans);
    sleep_ms(POLL_MS);
  }
  if (tty) fputc('\n', stderr);
  free(last);
  free(path);
  if (st) return st;
  const char *status = str_or(json_object_get(ans.json, "status"), "?");
  if (a->json)
    print_raw(&ans);
  else
    print_job(stdout, ans.json);
  if (!strcmp(status, "failed")) {
    fprintf(stderr, "r1d: job %s failed: %s\n", id,
            str_or(json_object_get(ans.json, "error"), "(no reason given)"));
    st = CLI_EXIT_FAIL;
  }
  answer_free(&ans);
  return st;
}

typedef struct start_opts {
  const char *type, *config_file, *swap;
  double min_improvement;
  int has_min_improvement, watch;
} start_opts;

/* The POST /admin/v1/jobs body from the options into *out; 0, or the exit
 * status after printing why. */
static int job_body(const start_opts *o, char **sets, int n_sets,
                    json_t **out) {
  json_t *config = o->config_file ? load_json_object("--config", o->config_file)
                                  : json_object();
  if (!config) return o->config_file ? CLI_EXIT_USAGE : out_of_memory();
  for (int i = 0; i < n_sets; i++) {
    int st = apply_set(config, sets[i]);
    if (st) {
      json_decref(config);
      return st;
    }
  }
  json_t *body = json_pack("{s:s, s:o}", "type", o->type, "config", config);
  if (!body) return out_of_memory(); /* json_pack took config either way */
  if ((o->swap && json_object_set_new(body, "swap", json_string(o->swap))) ||
      (o->has_min_improvement &&
       json_object_set_new(body, "min_improvement",
                           json_real(o->min_improvement)))) {
    json_decref(body);
    return out_of_memory();
  }
  *out = body;
  return 0;
}

static int jobs_start(const admin_ctx *a, int argc, char **argv) {
  static const struct option opts[] = {
      {"type", required_argument, 0, 't'},
      {"config", required_argument, 0, 'c'},
      {"set", required_argument, 0, 's'},
      {"swap", required_argument, 0, 'w'},
      {"min-improvement", required_argument, 0, 'm'},
      {"watch", no_argument, 0, 'W'},
      {0, 0, 0, 0}};
  start_opts o = {0};
  char **sets = calloc((size_t)argc + 1, sizeof *sets);
  int n_sets = 0, c, st = 0;
  if (!sets) return out_of_memory();
  optind = 1;
  opterr = 0;
  while (!st && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch (c) {
    case 't':
      if (strcmp(optarg, "grpo") && strcmp(optarg, "sft") &&
          strcmp(optarg, "eval"))
        st = cli_usage_error("--type: expected grpo, sft or eval, got '%s'",
                             optarg);
      o.type = optarg;
      break;
    case 'c': o.config_file = optarg; break;
    case 's': sets[n_sets++] = optarg; break;
    case 'w':
      if (strcmp(optarg, "auto") && strcmp(optarg, "never"))
        st =
            cli_usage_error("--swap: expected auto or never, got '%s'", optarg);
      o.swap = optarg;
      break;
    case 'm':
      if (cli_parse_float(optarg, 0, 1, &o.min_improvement))
        st = cli_usage_error("--min-improvement: expected a number in "
                             "[0, 1], got '%s'",
                             optarg);
      o.has_min_improvement = 1;
      break;
    case 'W': o.watch = 1; break;
    default: st = bad_option("jobs start", c, argv);
    }
  }
  if (!st) st = no_more_args("jobs start", argc, argv);
  if (!st && !o.type)
    st = cli_usage_error("jobs start: --type grpo|sft|eval is required");
  json_t *body = NULL;
  if (!st) st = job_body(&o, sets, n_sets, &body);
  free(sets);
  if (st) return st;
  answer ans;
  st = call(a, "POST", "/admin/v1/jobs", body, &ans);
  json_decref(body);
  if (st) return st;
  char id[128];
  snprintf(id, sizeof id, "%s", str_or(json_object_get(ans.json, "id"), ""));
  if (!a->json)
    printf("%s\n", id);
  else if (!o.watch)
    print_raw(&ans); /* with --watch, the watch prints the final job */
  fflush(stdout);
  answer_free(&ans);
  if (!id[0]) {
    fprintf(stderr, "r1d: POST /admin/v1/jobs: the answer has no job id\n");
    return CLI_EXIT_FAIL;
  }
  return o.watch ? watch_job(a, id) : CLI_EXIT_OK;
}

static void job_row(const json_t *job, char cells[][CELL]) {
  const json_t *res = json_object_get(job, "result");
  snprintf(cells[0], CELL, "%s", str_or(json_object_get(job, "id"), "?"));
  snprintf(cells[1], CELL, "%s", str_or(json_object_get(job, "type"), "?"));
  snprintf(cells[2], CELL, "%s", str_or(json_object_get(job, "status"), "?"));
  job_step(job, cells[3], CELL);
  snprintf(cells[4], CELL, "%s", str_or(json_object_get(res, "decision"), "-"));
}

static int jobs_list(const admin_ctx *a, int argc, char **argv) {
  static const char *const heads[] = {"ID", "TYPE", "STATUS", "STEP",
                                      "DECISION"};
  int st = parse_plain("jobs list", argc, argv);
  if (st || (st = no_more_args("jobs list", argc, argv))) return st;
  answer ans;
  if ((st = call(a, "GET", "/admin/v1/jobs", NULL, &ans))) return st;
  if (a->json)
    print_raw(&ans);
  else
    print_table(heads, 5, json_object_get(ans.json, "data"), job_row);
  answer_free(&ans);
  return CLI_EXIT_OK;
}

static int jobs_show(const admin_ctx *a, int argc, char **argv) {
  const char *id = NULL;
  int st = parse_plain("jobs show", argc, argv);
  if (st || (st = one_arg("jobs show", "job ID", argc, argv, &id))) return st;
  char *path = id_path("/admin/v1/jobs/", id, "");
  if (!path) return out_of_memory();
  answer ans;
  st = call(a, "GET", path, NULL, &ans);
  free(path);
  if (st) return st;
  if (a->json) {
    print_raw(&ans);
  } else {
    print_job(stdout, ans.json);
    char *config = json_dumps(json_object_get(ans.json, "config"),
                              JSON_COMPACT | JSON_PRESERVE_ORDER);
    char gain[32];
    printf("config: %s\nswap: %s, min_improvement %s\n", config ? config : "{}",
           str_or(json_object_get(ans.json, "swap"), "?"),
           num_str(json_object_get(ans.json, "min_improvement"), "%g", gain,
                   sizeof gain));
    free(config);
  }
  answer_free(&ans);
  return CLI_EXIT_OK;
}

static int jobs_cancel(const admin_ctx *a, int argc, char **argv) {
  const char *id = NULL;
  int st = parse_plain("jobs cancel", argc, argv);
  if (st || (st = one_arg("jobs cancel", "job ID", argc, argv, &id))) return st;
  char *path = id_path("/admin/v1/jobs/", id, "/cancel");
  if (!path) return out_of_memory();
  answer ans;
  st = call(a, "POST", path, NULL, &ans);
  free(path);
  if (st) return st;
  if (a->json) {
    print_raw(&ans);
  } else {
    char step[64];
    job_step(ans.json, step, sizeof step);
    if (!strcmp(str_or(json_object_get(ans.json, "status"), ""), "cancelled"))
      printf("job %s cancelled\n", id);
    else
      printf("job %s stops at its next step boundary (now at step %s)\n", id,
             step);
  }
  answer_free(&ans);
  return CLI_EXIT_OK;
}

static int jobs_watch(const admin_ctx *a, int argc, char **argv) {
  const char *id = NULL;
  int st = parse_plain("jobs watch", argc, argv);
  if (st || (st = one_arg("jobs watch", "job ID", argc, argv, &id))) return st;
  return watch_job(a, id);
}

/* ---- checkpoints ------------------------------------------------------ */

static void ckpt_row(const json_t *ck, char cells[][CELL]) {
  const json_t *step = json_object_get(ck, "step");
  snprintf(cells[0], CELL, "%s", str_or(json_object_get(ck, "version"), "?"));
  snprintf(cells[1], CELL, "%s", str_or(json_object_get(ck, "status"), "?"));
  snprintf(cells[2], CELL, "%s", str_or(json_object_get(ck, "kind"), "?"));
  if (json_is_integer(step))
    snprintf(cells[3], CELL, "%lld", (long long)json_integer_value(step));
  else
    snprintf(cells[3], CELL, "-");
  snprintf(cells[4], CELL, "%s", str_or(json_object_get(ck, "path"), "?"));
}

static int checkpoints_list(const admin_ctx *a, int argc, char **argv) {
  static const struct option opts[] = {{"status", required_argument, 0, 's'},
                                       {"limit", required_argument, 0, 'l'},
                                       {0, 0, 0, 0}};
  static const char *const heads[] = {"VERSION", "STATUS", "KIND", "STEP",
                                      "PATH"};
  const char *status = NULL;
  long long limit = 0;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if (c == 's') {
      status = optarg;
    } else if (c == 'l') {
      if (cli_parse_int(optarg, 1, 1000, &limit))
        return cli_usage_error("--limit: expected an integer in [1, 1000], "
                               "got '%s'",
                               optarg);
    } else {
      return bad_option("checkpoints list", c, argv);
    }
  }
  int st = no_more_args("checkpoints list", argc, argv);
  if (st) return st;
  char *esc = admin_escape(status ? status : "");
  char path[512];
  if (!esc) return out_of_memory();
  int n = snprintf(path, sizeof path, "/admin/v1/checkpoints?limit=%lld%s%s",
                   limit ? limit : 1000, status ? "&status=" : "", esc);
  free(esc);
  if (n < 0 || (size_t)n >= sizeof path)
    return cli_usage_error("--status: too long");
  answer ans;
  if ((st = call(a, "GET", path, NULL, &ans))) return st;
  if (a->json)
    print_raw(&ans);
  else
    print_table(heads, 5, json_object_get(ans.json, "data"), ckpt_row);
  answer_free(&ans);
  return CLI_EXIT_OK;
}

/* ---- weights ---------------------------------------------------------- */

static void version_row(const json_t *v, char cells[][CELL]) {
  snprintf(cells[0], CELL, "%lld",
           int_or(json_object_get(v, "weight_version"), 0));
  snprintf(cells[1], CELL, "%s", str_or(json_object_get(v, "state"), "?"));
  snprintf(cells[2], CELL, "%lld", int_or(json_object_get(v, "requests"), 0));
  snprintf(cells[3], CELL, "%s", str_or(json_object_get(v, "source"), "?"));
}

static void version_str(const json_t *v, char *out, size_t n) {
  if (json_is_integer(v))
    snprintf(out, n, "%lld", (long long)json_integer_value(v));
  else
    snprintf(out, n, "-");
}

static int weights_show(const admin_ctx *a, int argc, char **argv) {
  static const char *const heads[] = {"VERSION", "STATE", "REQUESTS", "SOURCE"};
  int st = parse_plain("weights", argc, argv);
  if (st || (st = no_more_args("weights", argc, argv))) return st;
  answer ans;
  if ((st = call(a, "GET", "/admin/v1/weights", NULL, &ans))) return st;
  if (a->json) {
    print_raw(&ans);
  } else {
    char live[32], prev[32];
    version_str(json_object_get(ans.json, "live"), live, sizeof live);
    version_str(json_object_get(ans.json, "previous"), prev, sizeof prev);
    printf("live: %s  previous: %s  swaps: %lld%s\n", live, prev,
           int_or(json_object_get(ans.json, "swaps"), 0),
           json_is_true(json_object_get(ans.json, "swap_in_progress"))
               ? "  (a swap is running)"
               : "");
    print_table(heads, 4, json_object_get(ans.json, "versions"), version_row);
  }
  answer_free(&ans);
  return CLI_EXIT_OK;
}

/* "weight version A -> B in X s (N requests finishing on A)". */
static void print_swap(const json_t *r) {
  long long old = int_or(json_object_get(r, "old_weight_version"), 0);
  long long in_flight = int_or(json_object_get(r, "in_flight_requests"), 0);
  long long aborted = int_or(json_object_get(r, "aborted_requests"), 0);
  char secs[32];
  printf("weight version %lld -> %lld in %s s (%lld requests finishing on "
         "%lld",
         old, int_or(json_object_get(r, "new_weight_version"), 0),
         num_str(json_object_get(r, "seconds"), "%.3f", secs, sizeof secs),
         in_flight, old);
  if (aborted) printf(", %lld aborted", aborted);
  printf(")\n");
}

/* swap (rollback = 0) or rollback. */
static int weights_change(const admin_ctx *a, int argc, char **argv,
                          int rollback) {
  static const struct option opts[] = {{"path", required_argument, 0, 'p'},
                                       {"version", required_argument, 0, 'v'},
                                       {"abort-in-flight", no_argument, 0, 'a'},
                                       {0, 0, 0, 0}};
  const char *what = rollback ? "weights rollback" : "weights swap";
  const char *dir = NULL, *version = NULL;
  int abort_in_flight = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    if (c == 'a')
      abort_in_flight = 1;
    else if (c == 'p' && !rollback)
      dir = optarg;
    else if (c == 'v' && !rollback)
      version = optarg;
    else
      return bad_option(what, c, argv);
  }
  int st = no_more_args(what, argc, argv);
  if (st) return st;
  if (!rollback && !!dir + !!version != 1)
    return cli_usage_error("weights swap: give one of --path DIR or "
                           "--version ckpt-...");
  json_t *body = NULL;
  if (!rollback || abort_in_flight) {
    body = json_pack("{s:b}", "abort_in_flight", abort_in_flight);
    /* the server reads the folder: a local relative path is made absolute
     * when it exists here, else sent as given (the server's own path) */
    char abs[PATH_MAX];
    if (body && dir)
      json_object_set_new(body, "path",
                          json_string(realpath(dir, abs) ? abs : dir));
    if (body && version)
      json_object_set_new(body, "version", json_string(version));
    if (!body) return out_of_memory();
  }
  answer ans;
  st = call(a, "POST",
            rollback ? "/admin/v1/weights/rollback" : "/admin/v1/weights/swap",
            body, &ans);
  json_decref(body);
  if (st) return st;
  if (a->json)
    print_raw(&ans);
  else
    print_swap(ans.json);
  answer_free(&ans);
  return CLI_EXIT_OK;
}

static int weights_swap(const admin_ctx *a, int argc, char **argv) {
  return weights_change(a, argc, argv, 0);
}

static int weights_rollback(const admin_ctx *a, int argc, char **argv) {
  return weights_change(a, argc, argv, 1);
}

/* ---- trainer ---------------------------------------------------------- */

static void print_schedule(const json_t *s) {
  char iv[32];
  char *job =
      json_dumps(json_object_get(s, "job"), JSON_COMPACT | JSON_PRESERVE_ORDER);
  printf("enabled: %s\ninterval: %s s\nmin new tasks: %lld\njob: %s\n",
         json_is_true(json_object_get(s, "enabled")) ? "true" : "false",
         num_str(json_object_get(s, "interval_s"), "%g", iv, sizeof iv),
         int_or(json_object_get(s, "min_new_tasks"), 0), job ? job : "?");
  free(job);
}

/* GET (body NULL) or PUT the schedule, and print it. */
static int trainer_call(const admin_ctx *a, const json_t *body) {
  answer ans;
  int st = call(a, body ? "PUT" : "GET", "/admin/v1/trainer", body, &ans);
  if (st) return st;
  if (a->json)
    print_raw(&ans);
  else
    print_schedule(ans.json);
  answer_free(&ans);
  return CLI_EXIT_OK;
}

static int trainer_show(const admin_ctx *a, int argc, char **argv) {
  int st = parse_plain("trainer", argc, argv);
  if (st || (st = no_more_args("trainer", argc, argv))) return st;
  return trainer_call(a, NULL);
}

static int trainer_set(const admin_ctx *a, int argc, char **argv) {
  static const struct option opts[] = {
      {"enabled", required_argument, 0, 'e'},
      {"interval", required_argument, 0, 'i'},
      {"min-new-tasks", required_argument, 0, 'n'},
      {"job", required_argument, 0, 'j'},
      {0, 0, 0, 0}};
  json_t *body = json_object();
  int c, st = 0;
  double iv;
  long long mn;
  if (!body) return out_of_memory();
  optind = 1;
  opterr = 0;
  while (!st && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch (c) {
    case 'e':
      if (strcmp(optarg, "true") && strcmp(optarg, "false"))
        st = cli_usage_error("--enabled: expected true or false, got '%s'",
                             optarg);
      else
        json_object_set_new(body, "enabled",
                            json_boolean(!strcmp(optarg, "true")));
      break;
    case 'i':
      if (cli_parse_float(optarg, 1, 1e8, &iv))
        st = cli_usage_error("--interval: expected seconds in [1, 1e8], got "
                             "'%s'",
                             optarg);
      else
        json_object_set_new(body, "interval_s", json_real(iv));
      break;
    case 'n':
      if (cli_parse_int(optarg, 0, LLONG_MAX, &mn))
        st = cli_usage_error("--min-new-tasks: expected an integer >= 0, "
                             "got '%s'",
                             optarg);
      else
        json_object_set_new(body, "min_new_tasks", json_integer(mn));
      break;
    case 'j': {
      json_t *job = load_json_object("--job", optarg);
      if (!job)
        st = CLI_EXIT_USAGE;
      else
        json_object_set_new(body, "job", job);
      break;
    }
    default: st = bad_option("trainer set", c, argv);
    }
  }
  if (!st) st = no_more_args("trainer set", argc, argv);
  if (!st && json_object_size(body) == 0)
    st = cli_usage_error("trainer set: give --enabled, --interval, "
                         "--min-new-tasks or --job");
  if (!st) st = trainer_call(a, body);
  json_decref(body);
  return st;
}

/* ---- dispatch --------------------------------------------------------- */

typedef int (*action_fn)(const admin_ctx *a, int argc, char **argv);

/* name NULL: the group's action when none is named. */
typedef struct action {
  const char *group, *name;
  action_fn fn;
} action;

static const action actions[] = {
    {"tasks", "add", tasks_add},
    {"jobs", "start", jobs_start},
    {"jobs", "list", jobs_list},
    {"jobs", "show", jobs_show},
    {"jobs", "cancel", jobs_cancel},
    {"jobs", "watch", jobs_watch},
    {"checkpoints", NULL, checkpoints_list},
    {"checkpoints", "list", checkpoints_list},
    {"weights", NULL, weights_show},
    {"weights", "show", weights_show},
    {"weights", "swap", weights_swap},
    {"weights", "rollback", weights_rollback},
    {"trainer", NULL, trainer_show},
    {"trainer", "show", trainer_show},
    {"trainer", "set", trainer_set},
};
enum { N_ACTIONS = sizeof actions / sizeof actions[0] };

/* Takes the global options out of argv[1..argc) (they may come anywhere
 * before a "--"); what is left goes to rest[0..*n_rest). */
static int parse_globals(int argc, char **argv, admin_ctx *a, char **rest,
                         int *n_rest) {
  int n = 0, i = 1;
  for (; i < argc; i++) {
    const char *s = argv[i];
    const char **dst = NULL;
    const char *val = NULL;
    if (!strcmp(s, "--")) break;
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      rest[0] = "help"; /* `r1d admin jobs start --help`: the help */
      *n_rest = 1;
      return 0;
    }
    if (!strcmp(s, "--json")) {
      a->json = 1;
      continue;
    }
    if (!strcmp(s, "--url") || !strncmp(s, "--url=", 6))
      dst = &a->conn.url;
    else if (!strcmp(s, "--admin-key") || !strncmp(s, "--admin-key=", 12))
      dst = &a->conn.admin_key;
    if (!dst) {
      rest[n++] = argv[i];
      continue;
    }
    const char *eq = strchr(s, '=');
    if (eq) {
      val = eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      return cli_usage_error("admin: %s needs a value", s);
    }
    *dst = val;
  }
  for (; i < argc; i++) /* after "--": positional, as given */
    rest[n++] = argv[i];
  *n_rest = n;
  const char *u = a->conn.url;
  if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8))
    return cli_usage_error("--url: expected http://HOST:PORT, got '%s'", u);
  return 0;
}

static int dispatch(const admin_ctx *a, int n, char **rest) {
  if (n == 0)
    return cli_usage_error("admin: expected tasks, jobs, checkpoints, "
                           "weights or trainer (see r1d help admin)");
  const char *group = rest[0];
  if (!strcmp(group, "help") || !strcmp(group, "--help") ||
      !strcmp(group, "-h")) {
    fputs(cmd_admin_help, stdout);
    return CLI_EXIT_OK;
  }
  int known = 0;
  const char *name = n > 1 && rest[1][0] != '-' ? rest[1] : NULL;
  for (int i = 0; i < N_ACTIONS; i++) {
    if (strcmp(actions[i].group, group)) continue;
    known = 1;
    if (name && actions[i].name && !strcmp(actions[i].name, name))
      return actions[i].fn(a, n - 1, rest + 1); /* argv[0]: the action */
    if (!name && !actions[i].name) return actions[i].fn(a, n, rest);
  }
  if (!known)
    return cli_usage_error("admin: unknown group '%s' (expected tasks, jobs, "
                           "checkpoints, weights or trainer)",
                           group);
  if (name)
    return cli_usage_error("admin %s: unknown action '%s' (see r1d help "
                           "admin)",
                           group, name);
  return cli_usage_error("admin %s: expected an action (see r1d help admin)",
                         group);
}

int cmd_admin(int argc, char **argv) {
  const char *url = getenv("R1D_URL");
  const char *key = getenv("R1D_ADMIN_KEY");
  admin_ctx a = {
      .conn = {.url = url && *url ? url : default_url, .admin_key = key}};
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  int n = 0;
  if (!rest) return out_of_memory();
  int st = parse_globals(argc, argv, &a, rest, &n);
  r1d_error err = {0};
  if (!st && admin_http_init(&err)) {
    fprintf(stderr, "r1d: %s\n", err.msg);
    st = CLI_EXIT_FAIL;
  } else if (!st) {
    st = dispatch(&a, n, rest);
    fflush(stdout);
    admin_http_cleanup();
  }
  free(rest);
  return st;
}

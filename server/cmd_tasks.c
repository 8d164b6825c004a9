/* cmd_tasks.c - `r1d tasks import|export|list|stats`: the rule-verifiable
 * tasks in the data dir's database (storage/tasks.h), from the shell. Import
 * is one write transaction, so an interrupted import leaves nothing behind;
 * the readers open the database read-only, beside a running server. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/file.h"
#include "../common/rng.h"
#include "../common/utf8.h"
#include "../engine/text/template.h"
#include "../rl/task_gen.h"
#include "../storage/tasks.h"
#include "cli.h"

const char cmd_tasks_help[] =
    "usage: r1d tasks import FILE [--strict] [--data-dir DIR]\n"
    "       r1d tasks export [--split train|eval] [-o FILE] [--data-dir DIR]\n"
    "       r1d tasks list [--split S] [--limit N] [--after ID] "
    "[--data-dir DIR]\n"
    "       r1d tasks stats [--data-dir DIR]\n"
    "       r1d tasks gen NAME[:LEVEL][:STYLE] [--count N] [--eval-count M]\n"
    "             [--seed S] [--format tasks|sft|text] [--mix MIX]\n"
    "             [--prompt-style natural|plain] [--split train|eval]\n"
    "             [--import [--data-dir DIR]]\n"
    "\n"
    "Rule-verifiable tasks for training: a prompt (or chat messages) and the\n"
    "checker that scores an answer. One task is a JSON object:\n"
    "  {\"id\": \"gsm-1\", \"prompt\": \"...\", \"checker\": {\"type\": "
    "\"math\", \"answer\": \"72\"},\n"
    "   \"split\": \"train\", \"source\": \"gsm8k\", \"tags\": [], "
    "\"created\": 1700000000}\n"
    "id (default task-<hex>), split (train or eval, default train), source,\n"
    "tags and created (unix seconds, default now) are optional; \"messages\":\n"
    "[{\"role\", \"content\"}] may replace \"prompt\". Checker types and "
    "their\n"
    "fields: math (answer, tolerance), exact (answer, case_sensitive, "
    "strip),\n"
    "regex (pattern, flags of imsx), countdown (numbers, target, answer), "
    "code\n"
    "(tests [{input, output}], language python, time_limit_s). \"checker\":\n"
    "\"math\" with a top-level \"answer\" is accepted too.\n"
    "\n"
    "import reads JSONL, one task per line (FILE - reads stdin; blank lines\n"
    "are skipped), or one JSON object. Each bad line (invalid JSON or task,\n"
    "an id used twice or already stored) is printed to stderr as\n"
    "`r1d: FILE:LINE: message`, then stdout gets `imported N tasks, M bad\n"
    "lines (K skipped)`, K being the good tasks that --strict left out. The\n"
    "import is one transaction. Exit status: 0 when every line was good, 2\n"
    "when any was bad; the good tasks are stored anyway unless --strict, "
    "which\n"
    "stores none when any line is bad.\n"
    "export writes the stored tasks as JSONL in insertion order, each line\n"
    "byte for byte as import stored it, to stdout or -o FILE.\n"
    "list prints id, split, checker, source and the prompt's start, --limit\n"
    "(default 50, 0: all) at a time; --after ID continues after that task.\n"
    "stats prints task counts by split, checker type and source as JSON.\n"
    "--data-dir DIR is the data dir of r1d serve (default r1d-data).\n"
    "\n"
    "gen writes generated tasks as JSONL to stdout (seeded; every problem\n"
    "distinct, by its operands whatever the wording; --count train tasks,\n"
    "default 1000, then --eval-count eval tasks, default 200, never sharing\n"
    "a problem; --seed default 1). Generators and levels:\n"
    "  addition[:D]   D-digit + D-digit, D 1..9 (default 2), carries at\n"
    "                 every level\n"
    "  multiply[:D]   D-digit times one digit 2..9, D 1..6 (default 2)\n"
    "  multistep[:N]  N operations of + - * with precedence, N 1..8 (default\n"
    "                 3)\n"
    "  countdown[:N]  N numbers 1..25 and a reachable target, N 2..6\n"
    "                 (default 4), countdown checker; the others math\n"
    "Prompts are natural (\"What is 347 + 285?\", \"Use 3, 7, 25, 4 to make\n"
    "31 with + - * /, each once.\"); --prompt-style plain or a :plain suffix\n"
    "gives the terse \"347+285=\". Every task carries a worked solution:\n"
    "\"solution\": {\"thought\": \"7 + 5 = 12, write 2 carry 1\\n...\", "
    "\"answer\":\n"
    "\"632\"}: one step per line, the answer the checker accepts.\n"
    "--format picks what each line is:\n"
    "  tasks  the task (default; all splits unless --split)\n"
    "  sft    rows for r1d sft (cold start): {\"messages\": [user PROMPT,\n"
    "         assistant \"<think>\\nTHOUGHT\\n</think>\\n\\nANSWER\"]}\n"
    "  text   {\"text\": ...} for r1d pretrain --data, each document in one\n"
    "         style drawn by the seed with --mix's weights (default\n"
    "         direct=0.4,english=0.3,chinese=0.15,zero=0.15; names left out\n"
    "         weigh 0; the weights are shares of their sum):\n"
    "           direct   \"What is 347 + 285? 632\"\n"
    "           english  the question, the thought, \"Answer: 632\"\n"
    "           chinese  the same with Chinese connective words in the\n"
    "                    thought (\"7 加 5 得 12，写 2 进 1\"): the\n"
    "                    mixed-language thoughts that cold-start SFT and\n"
    "                    the language reward are there to fix\n"
    "           zero     the R1-Zero template's prompt then \" <think> "
    "THOUGHT\n"
    "                    </think> <answer> ANSWER </answer>\"; 40% of them\n"
    "                    with a one-sentence thought (\"I add the "
    "numbers.\"),\n"
    "                    40% of the rest with the Chinese one, and a quarter\n"
    "                    with the answer bare after </think> (no tags): the\n"
    "                    unevenness of web text that R1-Zero starts from\n"
    "sft and text use the train split unless --split eval says otherwise.\n"
    "--import (format tasks) stores the tasks in --data-dir's database as\n"
    "import does and prints its summary instead of the tasks.\n";

static const char default_data_dir[] = "r1d-data";

enum { LIST_DEFAULT_LIMIT = 50, PROMPT_CHARS = 60, SOURCE_COLUMN_MAX = 20 };

/* Opens DIR's database: read-only for the readers, which then report a
 * missing database in one line rather than creating an empty one.
 * map_size: the initial map (0: the default). */
static int open_db(const char *dir, int read_only, size_t map_size, r1d_db **db,
                   r1d_error *err) {
  r1d_db_options o = {.read_only = read_only, .map_size = map_size};
  if (read_only) {
    char *sub = r1d_path_join(dir, "db");
    char *file = sub ? r1d_path_join(sub, "data.mdb") : NULL;
    int exists = file && r1d_file_exists(file);
    free(sub);
    free(file);
    if (!exists)
      return r1d_fail(err, R1D_ENOTFOUND,
                      "no database in %s (start r1d serve or import tasks "
                      "first)",
                      dir);
  }
  return r1d_db_open(dir, &o, db, err);
}

/* The initial map for importing input_len bytes. r1d_db_write reruns the
 * whole import transaction each time the map fills and doubles, so the
 * import starts with room for it: 4 times the input (the stored tasks, the
 * id index and their B-tree pages), at least the default 64 MiB, in whole
 * MiB, at most the default cap of 16 GiB (db.h). */
static size_t import_map_size(size_t input_len) {
  const size_t mib = (size_t)1 << 20;
  const size_t least = (size_t)64 << 20, most = (size_t)16 << 30;
  if (input_len > most / 4) return most;
  size_t want = (input_len * 4 + mib - 1) / mib * mib;
  return want < least ? least : want;
}

static int read_stdin(char **data, size_t *len, r1d_error *err) {
  r1d_buf b = {0};
  for (;;) {
    if (r1d_buf_reserve(&b, 1 << 16)) {
      r1d_buf_free(&b);
      return r1d_fail(err, R1D_ENOMEM, "stdin: out of memory");
    }
    size_t n = fread(b.p + b.n, 1, b.cap - b.n - 1, stdin);
    b.n += n;
    if (n == 0) break;
  }
  if (ferror(stdin)) {
    r1d_buf_free(&b);
    return r1d_fail(err, R1D_EIO, "stdin: %s", strerror(errno));
  }
  b.p[b.n] = '\0';
  *data = b.p;
  *len = b.n;
  return 0;
}

/* Imports text[0..len) into DIR's database in one transaction and reports
 * as `tasks import` does (each bad line to stderr as `r1d: SHOWN:LINE:
 * msg`, then the counts on stdout). Returns the exit status. */
static int import_text(const char *dir, const char *shown, const char *text,
                       size_t len, int strict) {
  size_t stored = 0;
  r1d_db *db = NULL;
  r1d_task_batch b = {0};
  r1d_error err = {0};
  int status = CLI_EXIT_OK;
  int rc = open_db(dir, 0, import_map_size(len), &db, &err);
  if (rc) goto fail;
  rc = r1d_tasks_import(db, text, len, strict, &b, &stored, &err);
  /* strict refusing the batch is the bad lines' outcome, reported below */
  int refused = rc == R1D_EINVAL && strict && b.n_errors;
  if (rc && !refused) goto fail;
  size_t skipped = refused ? b.n : 0; /* less the duplicates, below */
  for (size_t i = 0; i < b.n_errors; i++) {
    fprintf(stderr, "r1d: %s:%zu: %s\n", shown, b.errors[i].line,
            b.errors[i].msg);
    if (refused && b.errors[i].code == R1D_EEXIST) skipped--;
  }
  printf("imported %zu tasks, %zu bad lines (%zu skipped)\n", stored,
         b.n_errors, skipped);
  status = b.n_errors ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  rc = 0;
fail:
  if (rc) status = cli_report(&err);
  r1d_task_batch_free(&b);
  r1d_db_close(db);
  return status;
}

static int tasks_import(int argc, char **argv) {
  static const struct option opts[] = {{"strict", no_argument, 0, 's'},
                                       {"data-dir", required_argument, 0, 'd'},
                                       {0, 0, 0, 0}};
  const char *dir = default_data_dir;
  int strict = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 's': strict = 1; break;
    case 'd': dir = optarg; break;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind != argc - 1)
    return cli_usage_error("tasks import: expected one FILE (- for stdin)");
  const char *path = argv[optind];
  const char *shown = strcmp(path, "-") == 0 ? "stdin" : path;
  char *text = NULL;
  size_t len = 0;
  r1d_error err = {0};
  int rc = strcmp(path, "-") == 0 ? read_stdin(&text, &len, &err)
                                  : r1d_read_file(path, &text, &len, &err);
  int status =
      rc ? cli_report(&err) : import_text(dir, shown, text, len, strict);
  free(text);
  return status;
}

/* Options every reader takes; -o only export, --limit/--after only list. */
typedef struct reader_args {
  const char *dir, *split, *out, *after;
  long long limit;
} reader_args;

static int parse_reader_args(int argc, char **argv, const char *what,
                             const char *allowed, reader_args *a) {
  static const struct option opts[] = {{"data-dir", required_argument, 0, 'd'},
                                       {"split", required_argument, 0, 's'},
                                       {"out", required_argument, 0, 'o'},
                                       {"limit", required_argument, 0, 'l'},
                                       {"after", required_argument, 0, 'a'},
                                       {0, 0, 0, 0}};
  int c, idx;
  *a = (reader_args){.dir = default_data_dir, .limit = LIST_DEFAULT_LIMIT};
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:", opts, &idx)) != -1) {
    if (c == '?') return CLI_EXIT_USAGE;
    if (!strchr(allowed, c)) {
      const char *name = "?";
      for (const struct option *o = opts; o->name; o++)
        if (o->val == c) name = o->name;
      return cli_usage_error("tasks %s takes no --%s", what, name);
    }
    switch (c) {
    case 'd': a->dir = optarg; break;
    case 'o': a->out = optarg; break;
    case 'a': a->after = optarg; break;
    case 's':
      if (strcmp(optarg, "train") != 0 && strcmp(optarg, "eval") != 0)
        return cli_usage_error("--split: expected train or eval, got '%s'",
                               optarg);
      a->split = optarg;
      break;
    case 'l':
      if (cli_parse_int(optarg, 0, 1LL << 40, &a->limit))
        return cli_usage_error(
            "--limit: expected a non-negative integer, got '%s'", optarg);
      break;
    }
  }
  if (optind != argc)
    return cli_usage_error("tasks %s: unexpected argument '%s'", what,
                           argv[optind]);
  return 0;
}

typedef struct export_run {
  const char *split, *name;
  FILE *f;
} export_run;

static int write_line(void *arg, uint64_t key, const char *json, size_t len) {
  (void)key;
  export_run *r = arg;
  if (fwrite(json, 1, len, r->f) != len || fputc('\n', r->f) == EOF)
    return R1D_EIO;
  return 0;
}

static int export_txn(r1d_txn *t, void *arg, r1d_error *err) {
  export_run *r = arg;
  int rc = r1d_tasks_list(t, r->split, NULL, 0, write_line, r, err);
  if (rc == R1D_EIO && ferror(r->f))
    return r1d_fail(err, rc, "%s: write failed: %s", r->name, strerror(errno));
  return rc;
}

static int tasks_export(int argc, char **argv) {
  reader_args a;
  int status = parse_reader_args(argc, argv, "export", "dso", &a);
  if (status) return status;
  r1d_db *db = NULL;
  r1d_error err = {0};
  export_run r = {
      .split = a.split, .name = a.out ? a.out : "stdout", .f = stdout};
  int rc = open_db(a.dir, 1, 0, &db, &err);
  if (rc) goto fail;
  if (a.out && !(r.f = fopen(a.out, "w"))) {
    r.f = NULL;
    rc = r1d_fail(&err, R1D_EIO, "%s: %s", a.out, strerror(errno));
    goto fail;
  }
  rc = r1d_db_read(db, export_txn, &r, &err);
  if (fflush(r.f) != 0 && !rc)
    rc = r1d_fail(&err, R1D_EIO, "%s: write failed: %s", r.name,
                  strerror(errno));
fail:
  if (r.f && r.f != stdout) {
    if (fclose(r.f) != 0 && !rc)
      rc = r1d_fail(&err, R1D_EIO, "%s: write failed: %s", r.name,
                    strerror(errno));
    if (rc) unlink(a.out); /* no half-written export */
  }
  r1d_db_close(db);
  return rc ? cli_report(&err) : CLI_EXIT_OK;
}

/* One row of `tasks list`, cut to fit a terminal line. */
typedef struct list_row {
  char *id, *split, *checker, *source, *prompt;
} list_row;

typedef struct list_run {
  list_row *rows;
  size_t n, cap;
  size_t want; /* rows to show; one more is fetched to know of a next page */
  int more;    /* that one came */
} list_run;

/* The first `chars` characters of s with control characters as spaces. */
static char *cut_text(const char *s, size_t chars) {
  r1d_buf b = {0};
  size_t n = strlen(s), i = 0;
  for (size_t k = 0; k < chars && i < n; k++) {
    uint32_t cp = 0xFFFD;
    int l = r1d_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (l <= 0) l = 1;
    if (cp < 0x20 || cp == 0x7f) {
      if (r1d_buf_append(&b, " ", 1)) goto fail;
    } else if (r1d_buf_append(&b, s + i, (size_t)l)) {
      goto fail;
    }
    i += (size_t)l;
  }
  if (r1d_buf_append(&b, "", 1)) goto fail;
  return b.p;
fail:
  r1d_buf_free(&b);
  return NULL;
}

/* What a chat task asks: its last user message. */
static const char *prompt_text(const json_t *task) {
  const json_t *p = json_object_get(task, "prompt");
  if (p) return json_string_value(p);
  const json_t *m = json_object_get(task, "messages");
  for (size_t i = json_array_size(m); i-- > 0;) {
    const json_t *e = json_array_get(m, i);
    const char *role = json_string_value(json_object_get(e, "role"));
    if (role && strcmp(role, "user") == 0)
      return json_string_value(json_object_get(e, "content"));
  }
  return "";
}

static const char *str_or(const json_t *v, const char *dflt) {
  const char *s = json_string_value(v);
  return s ? s : dflt;
}

static int collect_row(void *arg, uint64_t key, const char *json, size_t len) {
  (void)key;
  list_run *r = arg;
  if (r->n == r->want) {
    r->more = 1;
    return 1;
  }
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    list_row *rows = realloc(r->rows, cap * sizeof *rows);
    if (!rows) return R1D_ENOMEM;
    r->rows = rows;
    r->cap = cap;
  }
  json_t *task = json_loadb(json, len, 0, NULL);
  if (!task) return R1D_EFORMAT;
  const json_t *checker = json_object_get(task, "checker");
  const char *prompt = prompt_text(task);
  list_row row = {
      .id = strdup(str_or(json_object_get(task, "id"), "?")),
      .split = strdup(str_or(json_object_get(task, "split"), "?")),
      .checker = strdup(str_or(json_object_get(checker, "type"), "?")),
      .source = cut_text(str_or(json_object_get(task, "source"), ""),
                         SOURCE_COLUMN_MAX),
      .prompt = cut_text(prompt ? prompt : "", PROMPT_CHARS),
  };
  json_decref(task);
  r->rows[r->n++] = row;
  if (!row.id || !row.split || !row.checker || !row.source || !row.prompt)
    return R1D_ENOMEM;
  return 0;
}

typedef struct list_args {
  const reader_args *a;
  list_run *run;
} list_args;

static int list_txn(r1d_txn *t, void *arg, r1d_error *err) {
  list_args *l = arg;
  size_t fetch = l->a->limit ? (size_t)l->a->limit + 1 : 0;
  int rc = r1d_tasks_list(t, l->a->split, l->a->after, fetch, collect_row,
                          l->run, err);
  if (rc == R1D_ENOMEM) return r1d_fail(err, rc, "tasks list: out of memory");
  if (rc == R1D_EFORMAT && !err->msg[0])
    return r1d_fail(err, rc, "tasks list: a stored task is not valid JSON");
  return rc;
}

/* The text width of s in characters (what a terminal column counts). */
static size_t text_width(const char *s) {
  size_t w = 0;
  for (; *s; s++)
    w += ((unsigned char)*s & 0xC0) != 0x80;
  return w;
}

static void print_cell(const char *s, size_t width) {
  fputs(s, stdout);
  for (size_t w = text_width(s); w < width + 2; w++)
    fputc(' ', stdout);
}

static int tasks_list(int argc, char **argv) {
  reader_args a;
  int status = parse_reader_args(argc, argv, "list", "dsla", &a);
  if (status) return status;
  r1d_db *db = NULL;
  r1d_error err = {0};
  list_run run = {.want = a.limit ? (size_t)a.limit : SIZE_MAX};
  list_args l = {.a = &a, .run = &run};
  int rc = open_db(a.dir, 1, 0, &db, &err);
  if (rc || (rc = r1d_db_read(db, list_txn, &l, &err))) goto fail;
  size_t w_id = 2, w_source = 6;
  for (size_t i = 0; i < run.n; i++) {
    if (text_width(run.rows[i].id) > w_id) w_id = text_width(run.rows[i].id);
    if (text_width(run.rows[i].source) > w_source)
      w_source = text_width(run.rows[i].source);
  }
  print_cell("ID", w_id);
  print_cell("SPLIT", 5);
  print_cell("CHECKER", 9);
  print_cell("SOURCE", w_source);
  printf("PROMPT\n");
  for (size_t i = 0; i < run.n; i++) {
    print_cell(run.rows[i].id, w_id);
    print_cell(run.rows[i].split, 5);
    print_cell(run.rows[i].checker, 9);
    print_cell(run.rows[i].source, w_source);
    printf("%s\n", run.rows[i].prompt);
  }
  if (run.more)
    fprintf(stderr, "r1d: more tasks follow: r1d tasks list --after %s\n",
            run.rows[run.n - 1].id);
fail:
  for (size_t i = 0; i < run.n; i++) {
    free(run.rows[i].id);
    free(run.rows[i].split);
    free(run.rows[i].checker);
    free(run.rows[i].source);
    free(run.rows[i].prompt);
  }
  free(run.rows);
  r1d_db_close(db);
  return rc ? cli_report(&err) : CLI_EXIT_OK;
}

static int stats_txn(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_tasks_stats(t, (json_t **)arg, err);
}

static int tasks_stats(int argc, char **argv) {
  reader_args a;
  int status = parse_reader_args(argc, argv, "stats", "d", &a);
  if (status) return status;
  r1d_db *db = NULL;
  r1d_error err = {0};
  json_t *stats = NULL;
  char *text = NULL;
  int rc = open_db(a.dir, 1, 0, &db, &err);
  if (rc || (rc = r1d_db_read(db, stats_txn, &stats, &err))) goto fail;
  if (!(text = json_dumps(stats, JSON_INDENT(2)))) {
    rc = r1d_fail(&err, R1D_ENOMEM, "tasks stats: out of memory");
    goto fail;
  }
  printf("%s\n", text);
fail:
  free(text);
  json_decref(stats);
  r1d_db_close(db);
  return rc ? cli_report(&err) : CLI_EXIT_OK;
}

/* ---- r1d tasks gen ---- */

/* The styles of a pretraining document (--format text), in --mix order. */
enum { DOC_DIRECT, DOC_ENGLISH, DOC_CHINESE, DOC_ZERO, N_DOC_STYLES };
static const char *const doc_style_names[N_DOC_STYLES] = {"direct", "english",
                                                          "chinese", "zero"};
static const char default_mix[] = "direct=0.4,english=0.3,chinese=0.15,"
                                  "zero=0.15";

/* --mix NAME=W,...: weights >= 0 of the styles named (others 0), not all
 * 0; they need not sum to 1 (each is its share of the sum). Returns 0, or
 * the usage error's exit status after printing it. */
static int parse_mix(const char *text, double w[N_DOC_STYLES]) {
  char buf[256];
  if (strlen(text) >= sizeof buf) return cli_usage_error("--mix: too long");
  snprintf(buf, sizeof buf, "%s", text);
  int given[N_DOC_STYLES] = {0};
  double sum = 0;
  for (int i = 0; i < N_DOC_STYLES; i++)
    w[i] = 0;
  char *save = NULL;
  for (char *item = strtok_r(buf, ",", &save); item;
       item = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(item, '=');
    if (!eq)
      return cli_usage_error("--mix: expected NAME=WEIGHT, got '%s' (names: "
                             "direct, english, chinese, zero)",
                             item);
    *eq = '\0';
    int k = -1;
    for (int i = 0; i < N_DOC_STYLES; i++)
      if (strcmp(item, doc_style_names[i]) == 0) k = i;
    if (k < 0)
      return cli_usage_error("--mix: unknown style '%s' (direct, english, "
                             "chinese, zero)",
                             item);
    if (given[k]) return cli_usage_error("--mix: %s given twice", item);
    given[k] = 1;
    if (cli_parse_float(eq + 1, 0, 1e9, &w[k]))
      return cli_usage_error("--mix: %s: expected a weight >= 0, got '%s'",
                             item, eq + 1);
    sum += w[k];
  }
  if (!(sum > 0))
    return cli_usage_error("--mix: the weights must not all be 0 (got '%s')",
                           text);
  return 0;
}

/* Appends printf output to b; R1D_ENOMEM on failure. */
static int buf_printf(r1d_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int buf_printf(r1d_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (k < 0 || r1d_buf_reserve(b, (size_t)k + 1)) return R1D_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)k;
  return 0;
}

typedef struct gen_args {
  long long count, eval_count, seed;
  const char *format; /* tasks, sft or text */
  const char *split;  /* NULL: the format's default */
  const char *dir;    /* with --import */
  int import;
  r1d_prompt_style style;
  double mix[N_DOC_STYLES];
} gen_args;

static const char *str_of(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

/* The R1-Zero rendering of one question and its worked reply, from the
 * template code itself so that the bytes are the ones GRPO will prompt
 * with: "A conversation between User and Assistant. ... User: PROMPT.
 * Assistant: <think> THOUGHT </think> <answer> ANSWER </answer>". */
static int zero_doc(const r1d_template *tm, const char *prompt,
                    const char *thought, const char *answer, int untagged,
                    r1d_buf *doc, r1d_error *err) {
  r1d_chat_message q = {.role = "user", .content = prompt};
  r1d_chat_message a = {
      .role = "assistant", .content = answer, .reasoning_content = thought};
  char *head = NULL, *tail = NULL;
  int rc = r1d_template_render(tm, &q, 1, 1, &head, err);
  if (!rc && untagged) { /* the answer without its <answer> tags */
    r1d_buf b = {0};
    if (buf_printf(&b, " <think> %s </think> %s", thought, answer))
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    tail = b.p;
  } else if (!rc) {
    rc = r1d_template_render_reply(tm, &a, &tail, err);
  }
  if (!rc && (r1d_buf_append(doc, head, strlen(head)) ||
              r1d_buf_append(doc, tail, strlen(tail))))
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  free(head);
  free(tail);
  return rc;
}

/* How a zero document's reply looks: the thought is the one-sentence one,
 * the worked one, or the worked one in Chinese; the answer is in <answer>
 * tags or, sloppily, bare after </think>. Web text is that uneven, and the
 * R1 paper's R1-Zero findings (poor readability, language mixing, format
 * that the format reward has to teach) need a base model that saw it. */
typedef struct zero_variant {
  int short_thought, chinese, untagged;
} zero_variant;

/* One pretraining document of style `style` for task t into doc. */
static int text_doc(const json_t *t, int style, zero_variant zv,
                    const r1d_template *tm, r1d_buf *doc, r1d_error *err) {
  const json_t *sol = json_object_get(t, "solution");
  const char *prompt = str_of(t, "prompt"), *answer = str_of(sol, "answer");
  const char *thought =
      str_of(sol, style == DOC_CHINESE || (style == DOC_ZERO && zv.chinese)
                      ? "thought_zh"
                      : "thought");
  /* the terse "347+285=" prompt reads on straight into its answer */
  size_t plen = strlen(prompt);
  int glued = plen && prompt[plen - 1] == '=';
  int rc = 0;
  switch (style) {
  case DOC_DIRECT:
    rc = buf_printf(doc, "%s%s%s", prompt, glued ? "" : " ", answer);
    break;
  case DOC_ENGLISH:
  case DOC_CHINESE:
    rc = buf_printf(doc, "%s\n%s\nAnswer: %s", prompt, thought, answer);
    break;
  default:
    return zero_doc(tm, prompt,
                    zv.short_thought ? str_of(sol, "thought_short") : thought,
                    answer, zv.untagged, doc, err);
  }
  return rc ? r1d_fail(err, R1D_ENOMEM, "out of memory") : 0;
}

/* One output line for task t in the chosen format, appended to line. */
static int gen_line(const gen_args *a, const json_t *t, r1d_rng *rng,
                    const r1d_template *tm, r1d_buf *line, r1d_error *err) {
  json_t *row = NULL;
  int rc = 0;
  if (strcmp(a->format, "sft") == 0) {
    const json_t *sol = json_object_get(t, "solution");
    r1d_buf reply = {0};
    if (buf_printf(&reply, "<think>\n%s\n</think>\n\n%s",
                   str_of(sol, "thought"), str_of(sol, "answer")) == 0)
      row = json_pack("{s:[{s:s, s:s}, {s:s, s:s%}]}", "messages", "role",
                      "user", "content", str_of(t, "prompt"), "role",
                      "assistant", "content", reply.p, reply.n);
    r1d_buf_free(&reply);
  } else if (strcmp(a->format, "text") == 0) {
    double total = 0, u;
    int style = 0;
    for (int i = 0; i < N_DOC_STYLES; i++)
      total += a->mix[i];
    u = r1d_rng_uniform(rng) * total;
    /* the first style whose cumulative weight passes u; a zero weight is
     * never picked, even at u == 0 */
    for (style = 0; style < N_DOC_STYLES - 1; style++) {
      if (a->mix[style] > 0 && u < a->mix[style]) break;
      u -= a->mix[style];
    }
    while (a->mix[style] <= 0)
      style--;
    zero_variant zv;
    zv.short_thought = r1d_rng_uniform(rng) < 0.4;
    zv.chinese = r1d_rng_uniform(rng) < 0.4;
    zv.untagged = r1d_rng_uniform(rng) < 0.25;
    r1d_buf doc = {0};
    rc = text_doc(t, style, zv, tm, &doc, err);
    if (!rc) row = json_pack("{s:s%}", "text", doc.p ? doc.p : "", doc.n);
    r1d_buf_free(&doc);
    if (rc) return rc;
  } else {
    row = json_incref((json_t *)t);
  }
  char *s = row ? json_dumps(row, JSON_COMPACT) : NULL;
  json_decref(row);
  if (!s || r1d_buf_append(line, s, strlen(s)) || r1d_buf_append(line, "\n", 1))
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  free(s);
  return rc;
}

static int parse_gen_args(int argc, char **argv, gen_args *a) {
  static const struct option opts[] = {
      {"count", required_argument, 0, 'c'},
      {"eval-count", required_argument, 0, 'e'},
      {"seed", required_argument, 0, 's'},
      {"format", required_argument, 0, 'f'},
      {"mix", required_argument, 0, 'm'},
      {"prompt-style", required_argument, 0, 'p'},
      {"split", required_argument, 0, 'S'},
      {"import", no_argument, 0, 'i'},
      {"data-dir", required_argument, 0, 'd'},
      {0, 0, 0, 0}};
  *a = (gen_args){
      .count = 1000, .eval_count = 200, .seed = 1, .format = "tasks"};
  const char *mix = NULL;
  int c, idx, rc;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
    switch (c) {
    case 'c':
    case 'e':
    case 's': {
      long long *dst = c == 'c'   ? &a->count
                       : c == 'e' ? &a->eval_count
                                  : &a->seed;
      if (cli_parse_int(optarg, 0, c == 's' ? (1LL << 62) : 1000000, dst))
        return cli_usage_error("tasks gen --%s: expected a non-negative "
                               "integer, got '%s'",
                               opts[idx].name, optarg);
      break;
    }
    case 'f':
      if (strcmp(optarg, "tasks") && strcmp(optarg, "sft") &&
          strcmp(optarg, "text"))
        return cli_usage_error("tasks gen --format: expected tasks, sft or "
                               "text, got '%s'",
                               optarg);
      a->format = optarg;
      break;
    case 'm': mix = optarg; break;
    case 'p':
      if (strcmp(optarg, "natural") && strcmp(optarg, "plain"))
        return cli_usage_error("tasks gen --prompt-style: expected natural or "
                               "plain, got '%s'",
                               optarg);
      a->style = optarg[0] == 'p' ? R1D_PROMPT_PLAIN : R1D_PROMPT_NATURAL;
      break;
    case 'S':
      if (strcmp(optarg, "train") && strcmp(optarg, "eval"))
        return cli_usage_error("--split: expected train or eval, got '%s'",
                               optarg);
      a->split = optarg;
      break;
    case 'i': a->import = 1; break;
    case 'd': a->dir = optarg; break;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind != argc - 1)
    return cli_usage_error("tasks gen: expected one generator: addition[:D], "
                           "multiply[:D], multistep[:N] or countdown[:N]");
  int text = strcmp(a->format, "text") == 0;
  if (mix && !text)
    return cli_usage_error("tasks gen: --mix is for --format text");
  if ((rc = parse_mix(mix ? mix : default_mix, a->mix))) return rc;
  if (a->import && strcmp(a->format, "tasks") != 0)
    return cli_usage_error("tasks gen: --import stores tasks: it takes no "
                           "--format %s",
                           a->format);
  if (a->dir && !a->import)
    return cli_usage_error("tasks gen: --data-dir goes with --import");
  if (!a->dir) a->dir = default_data_dir;
  /* SFT rows and pretraining text come from the training problems only:
   * held-out problems in them would leak into the eval split */
  if (!a->split && strcmp(a->format, "tasks") != 0) a->split = "train";
  return 0;
}

/* r1d tasks gen SPEC: generated tasks (rl/task_gen.h) as JSONL on stdout
 * in one of three formats, or stored with --import. */
typedef struct gen_run {
  const gen_args *a;
  r1d_rng rng;
  const r1d_template *tm;
  r1d_buf out;
} gen_run;

static int gen_one(void *user, json_t *task, r1d_error *err) {
  gen_run *g = user;
  if (g->a->split && strcmp(str_of(task, "split"), g->a->split) != 0) return 0;
  return gen_line(g->a, task, &g->rng, g->tm, &g->out, err);
}

static int tasks_gen(int argc, char **argv) {
  gen_args a;
  int status = parse_gen_args(argc, argv, &a);
  if (status) return status;
  gen_run g = {.a = &a};
  r1d_template *tm = NULL;
  r1d_error err = {0};
  r1d_task_gen_opts o = {.style = a.style,
                         .extra_thoughts = strcmp(a.format, "text") == 0};
  int rc = 0;
  if (strcmp(a.format, "text") == 0)
    rc = r1d_template_from_name("r1-zero", "", "", &tm, &err);
  g.tm = tm;
  /* the documents' styles from a stream of their own, so the tasks drawn
   * for a seed stay the same whatever the format */
  r1d_rng_seed(&g.rng, (uint64_t)a.seed ^ 0x6d69782d7374796cULL);
  /* all lines are held (a few hundred bytes a task) and written at the end,
   * so that a generator short of distinct problems prints nothing */
  if (!rc)
    rc = r1d_task_gen_each(argv[optind], (int)a.count, (int)a.eval_count,
                           (uint64_t)a.seed, &o, gen_one, &g, &err);
  if (rc)
    status = cli_report(&err);
  else if (a.import)
    status =
        import_text(a.dir, "tasks gen", g.out.p ? g.out.p : "", g.out.n, 0);
  else if (fwrite(g.out.p ? g.out.p : "", 1, g.out.n, stdout) != g.out.n ||
           fflush(stdout) != 0) {
    fprintf(stderr, "r1d: stdout: write failed: %s\n", strerror(errno));
    status = CLI_EXIT_FAIL;
  }
  r1d_buf_free(&g.out);
  r1d_template_free(tm);
  return status;
}

int cmd_tasks(int argc, char **argv) {
  if (argc < 2)
    return cli_usage_error("tasks: expected import, export, list or stats "
                           "(see r1d help tasks)");
  const char *what = argv[1];
  if (strcmp(what, "import") == 0) return tasks_import(argc - 1, argv + 1);
  if (strcmp(what, "export") == 0) return tasks_export(argc - 1, argv + 1);
  if (strcmp(what, "list") == 0) return tasks_list(argc - 1, argv + 1);
  if (strcmp(what, "stats") == 0) return tasks_stats(argc - 1, argv + 1);
  if (strcmp(what, "gen") == 0) return tasks_gen(argc - 1, argv + 1);
  return cli_usage_error("tasks: unknown action '%s' (expected import, "
                         "export, list, stats or gen)",
                         what);
}

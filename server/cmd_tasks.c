/* cmd_tasks.c - `r1d tasks import|export|list|stats`: the rule-verifiable
 * tasks in the data dir's database (storage/tasks.h), from the shell. Import
 * is one write transaction, so an interrupted import leaves nothing behind;
 * the readers open the database read-only, beside a running server. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/file.h"
#include "../common/utf8.h"
#include "../rl/task_gen.h"
#include "../storage/tasks.h"
#include "cli.h"

const char cmd_tasks_help[] =
    "usage: r1d tasks import FILE [--strict] [--data-dir DIR]\n"
    "       r1d tasks export [--split train|eval] [-o FILE] [--data-dir DIR]\n"
    "       r1d tasks list [--split S] [--limit N] [--after ID] "
    "[--data-dir DIR]\n"
    "       r1d tasks stats [--data-dir DIR]\n"
    "       r1d tasks gen NAME[:LEVEL] [--count N] [--eval-count M] [--seed "
    "S]\n"
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
    "--data-dir DIR is the data dir of r1d serve (default r1d-data).\n";

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
  size_t len = 0, stored = 0;
  r1d_db *db = NULL;
  r1d_task_batch b = {0};
  r1d_error err = {0};
  int status = CLI_EXIT_OK;
  int rc = strcmp(path, "-") == 0 ? read_stdin(&text, &len, &err)
                                  : r1d_read_file(path, &text, &len, &err);
  if (rc || (rc = open_db(dir, 0, import_map_size(len), &db, &err))) goto fail;
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

/* r1d tasks gen NAME[:LEVEL]: generated tasks (rl/task_gen.h) as JSONL on
 * stdout, ready for `r1d tasks import` or `r1d grpo --tasks`. */
static int tasks_gen(int argc, char **argv) {
  static const struct option opts[] = {
      {"count", required_argument, 0, 'c'},
      {"eval-count", required_argument, 0, 'e'},
      {"seed", required_argument, 0, 's'},
      {0, 0, 0, 0}};
  long long count = 1000, eval_count = 200, seed = 1;
  int c, idx;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
    long long *dst = c == 'c' ? &count : c == 'e' ? &eval_count : &seed;
    if (c == '?') return CLI_EXIT_USAGE;
    if (cli_parse_int(optarg, 0, c == 's' ? (1LL << 62) : 1000000, dst))
      return cli_usage_error("tasks gen --%s: expected a non-negative "
                             "integer, got '%s'",
                             opts[c == 'c'   ? 0
                                  : c == 'e' ? 1
                                             : 2]
                                 .name,
                             optarg);
  }
  if (optind != argc - 1)
    return cli_usage_error("tasks gen: expected one generator: addition[:D], "
                           "multistep[:N] or countdown[:N]");
  json_t *arr = NULL;
  r1d_error err = {0};
  if (r1d_task_gen(argv[optind], (int)count, (int)eval_count, (uint64_t)seed,
                   &arr, &err))
    return cli_report(&err);
  size_t i;
  json_t *t;
  json_array_foreach(arr, i, t) {
    char *line = json_dumps(t, JSON_COMPACT);
    if (line) puts(line);
    free(line);
  }
  json_decref(arr);
  return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
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

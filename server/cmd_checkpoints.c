/* cmd_checkpoints.c - `r1d checkpoints list|show|verify`: the registry of
 * weight versions (storage/checkpoints.h) read from the data dir, beside a
 * live server (read-only transactions). verify re-hashes a registered
 * folder, so a user can prove a checkpoint is the one that was evaluated. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/file.h"
#include "../storage/checkpoints.h"
#include "../storage/db.h"
#include "cli.h"

const char cmd_checkpoints_help[] =
    "usage: r1d checkpoints list [--status S] [--limit N] [--json] "
    "[--data-dir DIR]\n"
    "       r1d checkpoints show VERSION|PATH [--data-dir DIR]\n"
    "       r1d checkpoints verify VERSION|PATH [--data-dir DIR]\n"
    "\n"
    "The checkpoints registry of the data dir: every checkpoint a training\n"
    "run registered (r1d sft/pretrain --data-dir) or the online trainer\n"
    "wrote, newest first.\n"
    "  list     one line each: version, status, kind, step, train and eval\n"
    "           loss, parent, path (--json: one record per line); --status\n"
    "           candidate|live|retired|rejected filters, --limit N (default\n"
    "           50, 0 all)\n"
    "  show     the record as JSON (files with sizes and SHA-256)\n"
    "  verify   re-hashes the folder's files against the record; exit 1 and\n"
    "           the first file that differs when one does\n"
    "--data-dir DIR is the data dir of r1d serve (default r1d-data).\n";

typedef struct ckpt_args {
  const char *dir, *status, *target;
  long long limit;
  int json;
} ckpt_args;

static int parse(int argc, char **argv, const char *what, int takes_target,
                 ckpt_args *a) {
  static const struct option opts[] = {{"data-dir", required_argument, 0, 'd'},
                                       {"status", required_argument, 0, 's'},
                                       {"limit", required_argument, 0, 'l'},
                                       {"json", no_argument, 0, 'j'},
                                       {0, 0, 0, 0}};
  *a = (ckpt_args){.dir = "r1d-data", .limit = 50};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == '?') return CLI_EXIT_USAGE;
    if (takes_target && c != 'd')
      return cli_usage_error("checkpoints %s takes only --data-dir", what);
    switch (c) {
    case 'd': a->dir = optarg; break;
    case 's': a->status = optarg; break;
    case 'j': a->json = 1; break;
    case 'l':
      if (cli_parse_int(optarg, 0, 1LL << 40, &a->limit))
        return cli_usage_error(
            "--limit: expected a non-negative integer, got '%s'", optarg);
      break;
    }
  }
  if (takes_target) {
    if (optind != argc - 1)
      return cli_usage_error("checkpoints %s: give one VERSION or PATH", what);
    a->target = argv[optind];
  } else if (optind != argc) {
    return cli_usage_error("checkpoints %s: unexpected argument '%s'", what,
                           argv[optind]);
  }
  return 0;
}

static int open_reader(const char *dir, r1d_db **db, r1d_error *err) {
  char *sub = r1d_path_join(dir, "db");
  char *file = sub ? r1d_path_join(sub, "data.mdb") : NULL;
  int exists = file && r1d_file_exists(file);
  free(sub);
  free(file);
  if (!exists) return r1d_fail(err, R1D_ENOTFOUND, "no database in %s", dir);
  r1d_db_options o = {.read_only = 1};
  return r1d_db_open(dir, &o, db, err);
}

typedef struct read_args {
  const ckpt_args *a;
  json_t *out;
} read_args;

static int list_fn(r1d_txn *t, void *arg, r1d_error *err) {
  read_args *r = arg;
  return r1d_ckpt_list(t, r->a->status, (size_t)r->a->limit, &r->out, err);
}

/* A target is a version when it looks like one, else a folder. */
static int find_fn(r1d_txn *t, void *arg, r1d_error *err) {
  read_args *r = arg;
  uint64_t key;
  if (r1d_ckpt_version_key(r->a->target, &key) == 0)
    return r1d_ckpt_get(t, r->a->target, &r->out, err);
  return r1d_ckpt_find_path(t, r->a->target, &r->out, err);
}

static void print_loss(json_t *v) {
  if (json_is_number(v))
    printf("  %10.4f", json_number_value(v));
  else
    printf("  %10s", "-");
}

static void print_table(json_t *list) {
  printf("%-21s  %-9s  %-8s  %7s  %10s  %10s  %-21s  %s\n", "VERSION", "STATUS",
         "KIND", "STEP", "TRAIN_LOSS", "EVAL_LOSS", "PARENT", "PATH");
  size_t i;
  json_t *rec;
  json_array_foreach(list, i, rec) {
    const char *parent = json_string_value(json_object_get(rec, "parent"));
    json_t *step = json_object_get(rec, "step");
    printf("%-21s  %-9s  %-8s",
           json_string_value(json_object_get(rec, "version")),
           json_string_value(json_object_get(rec, "status")),
           json_string_value(json_object_get(rec, "kind")));
    if (json_is_integer(step))
      printf("  %7lld", (long long)json_integer_value(step));
    else
      printf("  %7s", "-");
    print_loss(json_object_get(rec, "train_loss"));
    print_loss(json_object_get(rec, "eval_loss"));
    printf("  %-21s  %s\n", parent ? parent : "-",
           json_string_value(json_object_get(rec, "path")));
  }
}

int cmd_checkpoints(int argc, char **argv) {
  if (argc < 2) {
    fputs(cmd_checkpoints_help, stderr);
    return CLI_EXIT_USAGE;
  }
  const char *what = argv[1];
  int is_list = strcmp(what, "list") == 0;
  if (!is_list && strcmp(what, "show") != 0 && strcmp(what, "verify") != 0)
    return cli_usage_error(
        "checkpoints: unknown command '%s' (list, show or verify)", what);
  ckpt_args a;
  int st = parse(argc - 1, argv + 1, what, !is_list, &a);
  if (st) return st;
  r1d_error err = {0};
  r1d_db *db = NULL;
  read_args r = {.a = &a};
  int rc = open_reader(a.dir, &db, &err);
  if (rc == 0) rc = r1d_db_read(db, is_list ? list_fn : find_fn, &r, &err);
  r1d_db_close(db);
  if (rc) return cli_report(&err);
  int status = CLI_EXIT_OK;
  if (is_list && !a.json) {
    print_table(r.out);
  } else if (is_list) {
    size_t i;
    json_t *rec;
    json_array_foreach(r.out, i, rec) {
      char *s = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                    JSON_REAL_PRECISION(17));
      if (s) puts(s);
      free(s);
    }
  } else if (strcmp(what, "show") == 0) {
    char *s = json_dumps(r.out, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                    JSON_REAL_PRECISION(17));
    if (s) puts(s);
    free(s);
  } else {
    const char *version = json_string_value(json_object_get(r.out, "version"));
    if (r1d_ckpt_verify(r.out, &err)) {
      fprintf(stderr, "r1d: %s\n", err.msg);
      status = CLI_EXIT_FAIL;
    } else {
      printf("%s: %zu files match\n", version,
             json_array_size(json_object_get(r.out, "files")));
    }
  }
  json_decref(r.out);
  return status;
}

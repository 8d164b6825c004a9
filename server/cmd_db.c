/* cmd_db.c - `r1d db stat`: what the data dir's database holds (entries
 * and bytes per table), how much of the LMDB map is used, and its schema
 * version. Read-only, so it runs beside a live server. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../storage/db.h"
#include "cli.h"

const char cmd_db_help[] =
    "usage: r1d db stat [--json] [--data-dir DIR]\n"
    "\n"
    "Prints the database of the data dir: entries and bytes of each table\n"
    "(interactions, tasks, task_ids, feedback, rollouts, jobs, checkpoints,\n"
    "meta), the bytes in use, the file's high-water mark, the map size and\n"
    "the schema version. --json prints one JSON object instead of a table.\n"
    "--data-dir DIR is the data dir of r1d serve (default r1d-data).\n";

static double mib(size_t b) {
  return (double)b / (1024.0 * 1024.0);
}

static int db_stat(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                       {"data-dir", required_argument, 0, 'd'},
                                       {0, 0, 0, 0}};
  const char *dir = "r1d-data";
  int as_json = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'j': as_json = 1; break;
    case 'd': dir = optarg; break;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc)
    return cli_usage_error("db stat: unexpected argument '%s'", argv[optind]);
  r1d_db_options o = {.read_only = 1};
  r1d_db *db = NULL;
  r1d_error err = {0};
  if (r1d_db_open(dir, &o, &db, &err)) return cli_report(&err);
  r1d_db_stats st;
  int rc = r1d_db_stat(db, &st, &err);
  if (rc) {
    r1d_db_close(db);
    return cli_report(&err);
  }
  if (as_json) {
    json_t *tables = json_object();
    for (int i = 0; i < R1D_T_COUNT; i++)
      json_object_set_new(tables, r1d_table_name((r1d_table)i),
                          json_pack("{s:I, s:I}", "entries",
                                    (json_int_t)st.entries[i], "bytes",
                                    (json_int_t)st.bytes[i]));
    json_t *out = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:o}", "dir",
                            r1d_db_dir(db), "schema_version", st.schema_version,
                            "data_bytes", (json_int_t)st.data_bytes,
                            "file_bytes", (json_int_t)st.file_bytes, "map_size",
                            (json_int_t)st.map_size, "page_size",
                            (json_int_t)st.page_size, "tables", tables);
    char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(out);
    if (s) puts(s);
    free(s);
  } else {
    printf("%s: schema version %d, page size %zu\n", r1d_db_dir(db),
           st.schema_version, st.page_size);
    printf("%-14s %12s %12s\n", "table", "entries", "MiB");
    for (int i = 0; i < R1D_T_COUNT; i++)
      printf("%-14s %12zu %12.3f\n", r1d_table_name((r1d_table)i),
             st.entries[i], mib(st.bytes[i]));
    printf("in use %.3f MiB; file high-water mark %.3f MiB; map %.1f MiB "
           "(%.1f%% used)\n",
           mib(st.data_bytes), mib(st.file_bytes), mib(st.map_size),
           st.map_size ? 100.0 * (double)st.file_bytes / (double)st.map_size
                       : 0.0);
  }
  r1d_db_close(db);
  return CLI_EXIT_OK;
}

int cmd_db(int argc, char **argv) {
  if (argc < 2) return cli_usage_error("db: expected `stat` (see r1d help db)");
  if (!strcmp(argv[1], "stat")) return db_stat(argc - 1, argv + 1);
  return cli_usage_error("db: unknown action '%s' (expected stat)", argv[1]);
}

/* serve_config.h - the settings of `r1d serve`: one table of options read
 * from a JSON config file (keys in snake_case, see config/r1d.json) and from
 * command-line flags (the same names in kebab-case), flags overriding the
 * file. Environment variables set nothing here except the key lists
 * R1D_API_KEYS and R1D_ADMIN_KEYS, read by the server (documented in the
 * help text). Unknown keys in the file are errors, so a typo cannot silently
 * leave a default in place. */
#ifndef R1D_CONFIG_SERVE_CONFIG_H
#define R1D_CONFIG_SERVE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "../common/status.h"

enum { R1D_MAX_CORS_ORIGINS = 16 };

typedef struct r1d_serve_config {
  char *config_path;       /* --config, NULL when none */
  char *model;             /* model folder (required) */
  char *served_model_name; /* id in the API; NULL: the folder's name */
  char *template_name;     /* override of the detected chat template */
  char *host;
  long long port;
  char *api_key_file, *admin_key_file;
  char *data_dir;
  int log_interactions, log_logprobs;
  long long db_map_size, db_map_max, retain_days, retain_bytes;
  char *backend; /* cpu | cuda | auto */
  long long threads;
  long long max_model_len, kv_blocks, kv_memory, max_num_seqs;
  long long max_batch_tokens, max_queued, max_body;
  double request_timeout, drain_timeout, keepalive;
  int prefix_cache;
  char *reasoning_field; /* reasoning_content | reasoning */
  char *cors_origins;    /* comma-separated allow-list, NULL: CORS off */
  char *log_level;       /* error | warn | info | debug */
} r1d_serve_config;

/* Fills defaults, then the file named by --config (if any), then the flags.
 * argv[0] is the subcommand's name. Returns 0; 1 when --help was asked (help
 * printed); or an error code with err naming the flag or the file's key. */
int r1d_serve_config_load(r1d_serve_config *c, int argc, char **argv,
                          r1d_error *err);

/* Re-reads only the reloadable settings (log_level, key files) from the
 * config file, keeping flags' values: used on SIGHUP. */
int r1d_serve_config_reload(r1d_serve_config *c, int argc, char **argv,
                            r1d_error *err);

void r1d_serve_config_free(r1d_serve_config *c);

/* "4MiB", "512M", "2G", "65536" -> bytes; -1 when malformed. */
long long r1d_parse_size(const char *s);

/* 1 when host names a loopback address (127.0.0.0/8, ::1, localhost). */
int r1d_host_is_loopback(const char *host);

void r1d_serve_config_print_help(FILE *f);

#endif

/* serve_config.c - defaults, config file and flags of `r1d serve` (see
 * serve_config.h). One table lists every option once: its file key, flag,
 * type, range and help line, so the file, the flags and `r1d help serve`
 * cannot drift apart. */
#include "serve_config.h"

#include <ctype.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum opt_type {
  OPT_STR,
  OPT_INT,
  OPT_SIZE,
  OPT_SECONDS,
  OPT_BOOL
} opt_type;

typedef struct opt_def {
  const char *key; /* file key; the flag is the same with '-' for '_' */
  opt_type type;
  size_t offset;
  long long lo, hi;
  const char *arg, *help;
} opt_def;

#define OFF(f) offsetof(r1d_serve_config, f)
static const opt_def opts[] = {
    {"config", OPT_STR, OFF(config_path), 0, 0, "FILE",
     "JSON config file (keys as below, with '_'); flags override it"},
    {"model", OPT_STR, OFF(model), 0, 0, "DIR",
     "Hugging Face model folder (Qwen2 or Llama) [required]"},
    {"served_model_name", OPT_STR, OFF(served_model_name), 0, 0, "NAME",
     "model id in the API (default: the folder's name)"},
    {"template", OPT_STR, OFF(template_name), 0, 0, "NAME",
     "chat template override (r1-distill, chatml, llama3, ...)"},
    {"host", OPT_STR, OFF(host), 0, 0, "ADDR",
     "address to listen on (default 127.0.0.1)"},
    {"port", OPT_INT, OFF(port), 0, 65535, "N",
     "TCP port (default 8000; 0 picks a free one, logged at start)"},
    {"api_key_file", OPT_STR, OFF(api_key_file), 0, 0, "FILE",
     "API keys, one per line (also R1D_API_KEYS=k1,k2); none: no auth"},
    {"admin_key_file", OPT_STR, OFF(admin_key_file), 0, 0, "FILE",
     "admin keys for /admin/ (also R1D_ADMIN_KEYS); none: admin routes "
     "only on a loopback bind"},
    {"data_dir", OPT_STR, OFF(data_dir), 0, 0, "DIR",
     "state folder, created if missing: LMDB storage in DIR/db (default "
     "r1d-data)"},
    {"log_interactions", OPT_BOOL, OFF(log_interactions), 0, 1, "true|false",
     "store every answer in the data dir before its last byte is sent "
     "(default true)"},
    {"log_logprobs", OPT_BOOL, OFF(log_logprobs), 0, 1, "true|false",
     "store the sampled tokens' ids and logprobs too (default false)"},
    {"db_map_size", OPT_SIZE, OFF(db_map_size), 64 << 10, 1LL << 46, "SIZE",
     "initial LMDB map size; grown by doubling as it fills (default 64MiB)"},
    {"db_map_max", OPT_SIZE, OFF(db_map_max), 64 << 10, 1LL << 46, "SIZE",
     "cap of the LMDB map: beyond it writes fail, serving goes on (default "
     "16GiB)"},
    {"retain_days", OPT_INT, OFF(retain_days), 0, 36500, "N",
     "prune logged interactions older than N days (default 0: keep)"},
    {"retain_bytes", OPT_SIZE, OFF(retain_bytes), 0, 1LL << 46, "SIZE",
     "prune the oldest interactions while storage holds more (default 0: no "
     "cap); tasks are never pruned"},
    {"backend", OPT_STR, OFF(backend), 0, 0, "cpu|cuda|auto",
     "compute backend (default auto: cuda when built and a GPU answers)"},
    {"threads", OPT_INT, OFF(threads), 0, 4096, "N",
     "CPU threads (default: all cores)"},
    {"max_model_len", OPT_INT, OFF(max_model_len), 0, 1 << 24, "N",
     "prompt + output token cap (default: the model's context)"},
    {"kv_blocks", OPT_INT, OFF(kv_blocks), 0, 1 << 26, "N",
     "KV cache size in blocks of 16 tokens (default: from --kv-memory)"},
    {"kv_memory", OPT_SIZE, OFF(kv_memory), 0, 1LL << 50, "SIZE",
     "KV cache size in bytes, e.g. 2GiB (default: max_num_seqs sequences "
     "of up to 1024 tokens)"},
    {"max_num_seqs", OPT_INT, OFF(max_num_seqs), 1, 4096, "N",
     "sequences running at once (default 64)"},
    {"max_batch_tokens", OPT_INT, OFF(max_batch_tokens), 1, 1 << 20, "N",
     "tokens per engine step (default 512)"},
    {"max_queued", OPT_INT, OFF(max_queued), 0, 1 << 24, "N",
     "requests waiting beyond which new ones get 429 (default 256; 0: no "
     "limit)"},
    {"max_body", OPT_SIZE, OFF(max_body), 1024, 1LL << 32, "SIZE",
     "largest request body (default 4MiB; larger: 413)"},
    {"request_timeout", OPT_SECONDS, OFF(request_timeout), 0, 86400 * 7, "SEC",
     "cancel a generation after SEC seconds (default 600; 0: never)"},
    {"drain_timeout", OPT_SECONDS, OFF(drain_timeout), 0, 86400, "SEC",
     "on SIGTERM, wait this long for requests in flight (default 30)"},
    {"keepalive", OPT_SECONDS, OFF(keepalive), 0, 3600, "SEC",
     "': keep-alive' comment interval of idle streams (default 5)"},
    {"prefix_cache", OPT_BOOL, OFF(prefix_cache), 0, 1, "true|false",
     "reuse KV blocks of equal prompt prefixes (default true)"},
    {"reasoning_field", OPT_STR, OFF(reasoning_field), 0, 0,
     "reasoning_content|reasoning",
     "name of the thought's field (default reasoning_content)"},
    {"cors_origins", OPT_STR, OFF(cors_origins), 0, 0, "LIST",
     "origins allowed by CORS, comma-separated, or * (default: CORS off)"},
    {"log_level", OPT_STR, OFF(log_level), 0, 0, "LEVEL",
     "error, warn, info (default) or debug; reloaded on SIGHUP"},
};
#undef OFF
enum { N_OPTS = sizeof opts / sizeof opts[0] };

static char **str_at(r1d_serve_config *c, const opt_def *o) {
  return (char **)((char *)c + o->offset);
}
static long long *int_at(r1d_serve_config *c, const opt_def *o) {
  return (long long *)((char *)c + o->offset);
}
static double *sec_at(r1d_serve_config *c, const opt_def *o) {
  return (double *)((char *)c + o->offset);
}
static int *bool_at(r1d_serve_config *c, const opt_def *o) {
  return (int *)((char *)c + o->offset);
}

long long r1d_parse_size(const char *s) {
  if (!s || !*s) return -1;
  char *end = NULL;
  double v = strtod(s, &end);
  if (end == s || !(v >= 0)) return -1;
  while (*end == ' ')
    end++;
  double mul = 1;
  if (*end) {
    char u = (char)toupper((unsigned char)*end++);
    const char *units = "KMGT";
    const char *at = strchr(units, u);
    if (!at) return -1;
    int k = (int)(at - units) + 1;
    /* K, KB and KiB all mean 1024: nobody sizes caches in powers of 10 */
    if (*end == 'i' || *end == 'I') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return -1;
    for (int i = 0; i < k; i++)
      mul *= 1024.0;
  }
  v *= mul;
  if (v > 9.0e18) return -1;
  return (long long)v;
}

int r1d_host_is_loopback(const char *host) {
  if (!host) return 0;
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
         strcmp(host, "localhost") == 0;
}

static void defaults(r1d_serve_config *c) {
  memset(c, 0, sizeof *c);
  c->port = 8000;
  c->max_num_seqs = 64;
  c->max_batch_tokens = 512;
  c->max_queued = 256;
  c->max_body = 4LL << 20;
  c->request_timeout = 600;
  c->drain_timeout = 30;
  c->keepalive = 5;
  c->prefix_cache = 1;
  c->log_interactions = 1;
  c->db_map_size = 64LL << 20;
  c->db_map_max = 16LL << 30;
}

/* Fills the string fields left NULL with their defaults (after file and
 * flags, so "was it given" stays visible until then). */
static int fill_string_defaults(r1d_serve_config *c) {
  struct {
    char **at;
    const char *v;
  } d[] = {{&c->host, "127.0.0.1"},
           {&c->data_dir, "r1d-data"},
           {&c->backend, "auto"},
           {&c->reasoning_field, "reasoning_content"},
           {&c->log_level, "info"}};
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
    if (!*d[i].at && !(*d[i].at = strdup(d[i].v))) return R1D_ENOMEM;
  return 0;
}

/* Sets option o from text (a flag's argument) or a JSON value. */
static int set_value(r1d_serve_config *c, const opt_def *o, const char *text,
                     json_t *jv, const char *where, r1d_error *err) {
  char flagname[64];
  snprintf(flagname, sizeof flagname, "%s", o->key);
  for (char *p = flagname; *p; p++)
    if (*p == '_' && !jv) *p = '-';
  const char *what = jv ? "key" : "flag";
  const char *dash = jv ? "" : "--";
  char numbuf[64];
  if (jv && o->type != OPT_STR && o->type != OPT_BOOL && json_is_number(jv)) {
    snprintf(numbuf, sizeof numbuf, "%.17g", json_number_value(jv));
    text = numbuf;
  } else if (jv && json_is_string(jv)) {
    text = json_string_value(jv);
  } else if (jv && o->type == OPT_BOOL && json_is_boolean(jv)) {
    text = json_is_true(jv) ? "true" : "false";
  } else if (jv) {
    return r1d_fail(err, R1D_EINVAL, "%s: %s \"%s\": expected %s", where, what,
                    o->key, o->arg);
  }
  switch (o->type) {
  case OPT_STR: {
    char *s = strdup(text);
    if (!s) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    free(*str_at(c, o));
    *str_at(c, o) = s;
    return 0;
  }
  case OPT_INT: {
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || v < o->lo || v > o->hi)
      return r1d_fail(err, R1D_EINVAL,
                      "%s: %s %s%s: expected an integer in [%lld, %lld], got "
                      "'%s'",
                      where, what, dash, flagname, o->lo, o->hi, text);
    *int_at(c, o) = v;
    return 0;
  }
  case OPT_SIZE: {
    long long v = r1d_parse_size(text);
    if (v < o->lo || v > o->hi)
      return r1d_fail(err, R1D_EINVAL,
                      "%s: %s %s%s: expected a size such as 4MiB (at least "
                      "%lld bytes), got '%s'",
                      where, what, dash, flagname, o->lo, text);
    *int_at(c, o) = v;
    return 0;
  }
  case OPT_SECONDS: {
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end || !(v >= (double)o->lo && v <= (double)o->hi))
      return r1d_fail(err, R1D_EINVAL,
                      "%s: %s %s%s: expected seconds in [%lld, %lld], got "
                      "'%s'",
                      where, what, dash, flagname, o->lo, o->hi, text);
    *sec_at(c, o) = v;
    return 0;
  }
  case OPT_BOOL:
    if (!strcmp(text, "true") || !strcmp(text, "1"))
      *bool_at(c, o) = 1;
    else if (!strcmp(text, "false") || !strcmp(text, "0"))
      *bool_at(c, o) = 0;
    else
      return r1d_fail(err, R1D_EINVAL,
                      "%s: %s %s%s: expected true or false, got '%s'", where,
                      what, dash, flagname, text);
    return 0;
  }
  return R1D_EINVAL;
}

static int load_file(r1d_serve_config *c, const char *path, r1d_error *err) {
  json_error_t je;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return r1d_fail(err, R1D_EFORMAT, "%s: line %d column %d: %s", path,
                    je.line, je.column, je.text);
  int rc = 0;
  if (!json_is_object(root)) {
    rc = r1d_fail(err, R1D_EFORMAT, "%s: expected a JSON object", path);
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (key[0] == '_' || !strcmp(key, "comment")) continue; /* notes */
    const opt_def *o = NULL;
    for (int i = 0; i < N_OPTS; i++)
      if (!strcmp(opts[i].key, key)) o = &opts[i];
    if (!o || o->offset == offsetof(r1d_serve_config, config_path)) {
      rc = r1d_fail(err, R1D_EINVAL, "%s: unknown key \"%s\"", path, key);
      goto done;
    }
    if (json_is_null(v)) continue;
    if (o->offset == offsetof(r1d_serve_config, cors_origins) &&
        json_is_array(v)) { /* a list is accepted for the allow-list too */
      char buf[4096] = "";
      size_t i;
      json_t *e;
      json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
          rc = r1d_fail(err, R1D_EINVAL, "%s: cors_origins: expected strings",
                        path);
          goto done;
        }
        if (i) strncat(buf, ",", sizeof buf - strlen(buf) - 1);
        strncat(buf, json_string_value(e), sizeof buf - strlen(buf) - 1);
      }
      rc = set_value(c, o, buf, NULL, path, err);
    } else {
      rc = set_value(c, o, NULL, v, path, err);
    }
    if (rc) goto done;
  }
done:
  json_decref(root);
  return rc;
}

static int parse_flags(r1d_serve_config *c, int argc, char **argv,
                       int config_only, r1d_error *err) {
  struct option lo[N_OPTS + 2];
  char names[N_OPTS][64];
  for (int i = 0; i < N_OPTS; i++) {
    snprintf(names[i], sizeof names[i], "%s", opts[i].key);
    for (char *p = names[i]; *p; p++)
      if (*p == '_') *p = '-';
    lo[i] = (struct option){names[i], required_argument, 0, 1000 + i};
  }
  lo[N_OPTS] = (struct option){"help", no_argument, 0, 'h'};
  lo[N_OPTS + 1] = (struct option){0, 0, 0, 0};
  optind = 1;
  opterr = 0;
  int ch, idx = 0;
  while ((ch = getopt_long(argc, argv, ":", lo, &idx)) != -1) {
    if (ch == 'h') return 1;
    if (ch == '?')
      return r1d_fail(err, R1D_EINVAL, "serve: unknown option '%s'",
                      argv[optind - 1]);
    if (ch == ':')
      return r1d_fail(err, R1D_EINVAL, "serve: option '%s' needs a value",
                      argv[optind - 1]);
    const opt_def *o = &opts[ch - 1000];
    int is_config = o->offset == offsetof(r1d_serve_config, config_path);
    if (config_only != is_config) continue;
    int rc = set_value(c, o, optarg, NULL, "serve", err);
    if (rc) return rc;
  }
  if (optind < argc)
    return r1d_fail(err, R1D_EINVAL, "serve: unexpected argument '%s'",
                    argv[optind]);
  return 0;
}

static int validate(r1d_serve_config *c, r1d_error *err) {
  if (!c->model)
    return r1d_fail(err, R1D_EINVAL, "serve: --model DIR is required");
  if (strcmp(c->backend, "cpu") && strcmp(c->backend, "cuda") &&
      strcmp(c->backend, "auto"))
    return r1d_fail(err, R1D_EINVAL,
                    "serve: --backend: expected cpu, cuda or auto, got '%s'",
                    c->backend);
  if (strcmp(c->reasoning_field, "reasoning_content") &&
      strcmp(c->reasoning_field, "reasoning"))
    return r1d_fail(err, R1D_EINVAL,
                    "serve: --reasoning-field: expected reasoning_content or "
                    "reasoning, got '%s'",
                    c->reasoning_field);
  if (strcmp(c->log_level, "error") && strcmp(c->log_level, "warn") &&
      strcmp(c->log_level, "info") && strcmp(c->log_level, "debug"))
    return r1d_fail(err, R1D_EINVAL,
                    "serve: --log-level: expected error, warn, info or "
                    "debug, got '%s'",
                    c->log_level);
  if (c->kv_blocks && c->kv_memory)
    return r1d_fail(err, R1D_EINVAL,
                    "serve: give --kv-blocks or --kv-memory, not both");
  if (c->served_model_name) {
    const char *s = c->served_model_name;
    if (!*s || strlen(s) > 200)
      return r1d_fail(err, R1D_EINVAL,
                      "serve: --served-model-name: 1 to 200 characters");
    for (; *s; s++)
      if ((unsigned char)*s < 0x21 || *s == '"' || *s == '\\' || *s == 0x7f)
        return r1d_fail(err, R1D_EINVAL,
                        "serve: --served-model-name: no spaces, quotes, "
                        "backslashes or control characters");
  }
  return 0;
}

int r1d_serve_config_load(r1d_serve_config *c, int argc, char **argv,
                          r1d_error *err) {
  defaults(c);
  int rc = parse_flags(c, argc, argv, 1, err);
  if (rc) return rc;
  if (c->config_path && (rc = load_file(c, c->config_path, err))) return rc;
  if ((rc = parse_flags(c, argc, argv, 0, err))) return rc;
  if ((rc = fill_string_defaults(c))) return r1d_fail(err, rc, "out of memory");
  return validate(c, err);
}

int r1d_serve_config_reload(r1d_serve_config *c, int argc, char **argv,
                            r1d_error *err) {
  r1d_serve_config fresh;
  int rc = r1d_serve_config_load(&fresh, argc, argv, err);
  if (rc == 0) {
    char **fields[][2] = {{&c->log_level, &fresh.log_level},
                          {&c->api_key_file, &fresh.api_key_file},
                          {&c->admin_key_file, &fresh.admin_key_file}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
      char *t = *fields[i][0];
      *fields[i][0] = *fields[i][1];
      *fields[i][1] = t;
    }
  }
  r1d_serve_config_free(&fresh);
  return rc < 0 ? rc : 0;
}

void r1d_serve_config_free(r1d_serve_config *c) {
  for (int i = 0; i < N_OPTS; i++)
    if (opts[i].type == OPT_STR) {
      free(*str_at(c, &opts[i]));
      *str_at(c, &opts[i]) = NULL;
    }
}

void r1d_serve_config_print_help(FILE *f) {
  for (int i = 0; i < N_OPTS; i++) {
    char flag[96];
    snprintf(flag, sizeof flag, "--%s %s", opts[i].key, opts[i].arg);
    for (char *p = flag + 2; *p && *p != ' '; p++)
      if (*p == '_') *p = '-';
    fprintf(f, "  %-34s %s\n", flag, opts[i].help);
  }
}

/* checkpoints.c - the checkpoints table: building a record from a folder
 * (file list with sizes and SHA-256), storing it under a fresh time key,
 * lookups by version and by path, listing, status/eval updates and the
 * re-hash that proves a folder unchanged (see checkpoints.h). Hashing runs
 * before the write transaction: r1d_db_write may rerun its function, and a
 * multi-gigabyte hash has no business holding LMDB's writer lock. */
#include "checkpoints.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/sha256.h"

static const char *const statuses[] = {"candidate", "live", "retired",
                                       "rejected"};

void r1d_ckpt_version(uint64_t key, char out[R1D_CKPT_VERSION_MAX]) {
  snprintf(out, R1D_CKPT_VERSION_MAX, "ckpt-%016" PRIx64, key);
}

int r1d_ckpt_version_key(const char *version, uint64_t *key) {
  if (!version || strncmp(version, "ckpt-", 5) != 0 ||
      strlen(version) != 5 + 16)
    return R1D_EINVAL;
  uint64_t k = 0;
  for (const char *p = version + 5; *p; p++) {
    int d = *p >= '0' && *p <= '9'   ? *p - '0'
            : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                                     : -1;
    if (d < 0) return R1D_EINVAL;
    k = k << 4 | (uint64_t)d;
  }
  *key = k;
  return 0;
}

/* ---- the folder ---- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of dir's regular files that a record lists, sorted. */
static int list_names(const char *dir, char ***names, size_t *n,
                      r1d_error *err) {
  DIR *d = opendir(dir);
  if (!d) return r1d_fail(err, R1D_EIO, "%s: %s", dir, strerror(errno));
  char **v = NULL;
  size_t len = 0, cap = 0;
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, "optimizer.bin") == 0)
      continue;
    char path[PATH_MAX];
    struct stat st;
    int pn = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (pn < 0 || (size_t)pn >= sizeof path) {
      rc = r1d_fail(err, R1D_EINVAL, "%s/%s: path too long", dir, e->d_name);
      break;
    }
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (len == cap) {
      size_t nc = cap ? cap * 2 : 16;
      char **nv = realloc(v, nc * sizeof *nv);
      if (!nv) {
        rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
        break;
      }
      v = nv;
      cap = nc;
    }
    if (!(v[len] = strdup(e->d_name)))
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    else
      len++;
  }
  closedir(d);
  if (rc) {
    for (size_t i = 0; i < len; i++)
      free(v[i]);
    free(v);
    return rc;
  }
  if (len) qsort(v, len, sizeof *v, cmp_str);
  *names = v;
  *n = len;
  return 0;
}

static int has_name(char **names, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return 1;
  return 0;
}

int r1d_ckpt_files(const char *dir, json_t **out, r1d_error *err) {
  char **names = NULL;
  size_t n = 0;
  int rc = list_names(dir, &names, &n, err);
  if (rc) return rc;
  if (!has_name(names, n, "model.safetensors") &&
      !has_name(names, n, "model.safetensors.index.json"))
    rc = r1d_fail(err, R1D_EINVAL,
                  "%s: not a checkpoint (no model.safetensors or "
                  "model.safetensors.index.json)",
                  dir);
  json_t *files = rc ? NULL : json_array();
  if (!rc && !files) rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char path[PATH_MAX], hex[R1D_SHA256_HEX + 1];
    uint64_t bytes = 0;
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    rc = r1d_sha256_file(path, hex, &bytes, err);
    if (rc) break;
    json_t *f = json_pack("{s:s, s:I, s:s}", "name", names[i], "bytes",
                          (json_int_t)bytes, "sha256", hex);
    if (!f || json_array_append_new(files, f) != 0)
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  if (rc) {
    json_decref(files);
    return rc;
  }
  *out = files;
  return 0;
}

/* ---- the table ---- */

static json_t *str_or_null(const char *s) {
  return s ? json_string(s) : json_null();
}

static json_t *real_or_null(double x) {
  return isfinite(x) ? json_real(x) : json_null();
}

typedef struct put_args {
  json_t *rec; /* without version, which the key decides */
  char version[R1D_CKPT_VERSION_MAX];
} put_args;

static int put_fn(r1d_txn *t, void *arg, r1d_error *err) {
  put_args *a = arg;
  uint64_t key;
  int rc = r1d_txn_next_key(t, R1D_T_CHECKPOINTS, &key, err);
  if (rc) return rc;
  r1d_ckpt_version(key, a->version);
  /* version first: the object keeps insertion order, so rebuild it */
  json_t *rec = json_pack("{s:s}", "version", a->version);
  if (!rec || json_object_update(rec, a->rec) != 0) {
    json_decref(rec);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  char *s = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                JSON_REAL_PRECISION(17));
  json_decref(rec);
  if (!s) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  uint8_t kb[R1D_KEY_BYTES];
  r1d_key_encode(key, kb);
  rc = r1d_txn_put(t, R1D_T_CHECKPOINTS, kb, sizeof kb, s, strlen(s),
                   R1D_PUT_NOOVERWRITE, err);
  free(s);
  return rc;
}

int r1d_ckpt_register(r1d_db *db, const r1d_ckpt_info *in,
                      char version[R1D_CKPT_VERSION_MAX], r1d_error *err) {
  char *abs = realpath(in->path, NULL);
  if (!abs) return r1d_fail(err, R1D_EIO, "%s: %s", in->path, strerror(errno));
  json_t *files = NULL;
  int rc = r1d_ckpt_files(abs, &files, err);
  if (rc) {
    free(abs);
    return rc;
  }
  json_t *rec = json_object();
  if (!rec || json_object_set_new(rec, "path", json_string(abs)) ||
      json_object_set_new(rec, "files", files) ||
      json_object_set_new(rec, "kind",
                          json_string(in->kind ? in->kind : "unknown")) ||
      json_object_set_new(
          rec, "step", in->step >= 0 ? json_integer(in->step) : json_null()) ||
      json_object_set_new(rec, "train_loss", real_or_null(in->train_loss)) ||
      json_object_set_new(rec, "eval_loss", real_or_null(in->eval_loss)) ||
      json_object_set_new(rec, "parent", str_or_null(in->parent)) ||
      json_object_set_new(rec, "base", str_or_null(in->base)) ||
      json_object_set_new(rec, "job", str_or_null(in->job)) ||
      json_object_set_new(rec, "created", json_integer((json_int_t)time(0))) ||
      json_object_set_new(rec, "status", json_string("candidate")) ||
      json_object_set_new(rec, "eval", json_object()))
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  free(abs);
  put_args a = {.rec = rec};
  if (rc == 0) rc = r1d_db_write(db, put_fn, &a, err);
  json_decref(rec);
  if (rc == 0 && version) memcpy(version, a.version, sizeof a.version);
  return rc;
}

static int parse_value(const void *val, size_t vlen, json_t **out,
                       r1d_error *err) {
  json_error_t jerr;
  json_t *rec = json_loadb(val, vlen, 0, &jerr);
  if (!rec || !json_is_object(rec)) {
    json_decref(rec);
    return r1d_fail(err, R1D_EIO, "checkpoints: a stored record is not JSON");
  }
  *out = rec;
  return 0;
}

int r1d_ckpt_get(r1d_txn *t, const char *version, json_t **out,
                 r1d_error *err) {
  uint64_t key;
  if (r1d_ckpt_version_key(version, &key))
    return r1d_fail(err, R1D_EINVAL,
                    "version: `%s` is not a checkpoint version "
                    "(ckpt- and 16 hex digits)",
                    version ? version : "");
  uint8_t kb[R1D_KEY_BYTES];
  r1d_key_encode(key, kb);
  const void *v;
  size_t vlen;
  int rc = r1d_txn_get(t, R1D_T_CHECKPOINTS, kb, sizeof kb, &v, &vlen, err);
  if (rc == R1D_ENOTFOUND)
    return r1d_fail(err, rc, "no checkpoint has version %s", version);
  if (rc) return rc;
  return parse_value(v, vlen, out, err);
}

/* Collects records, newest first, whose member `field` equals `want`
 * (want NULL: all), up to limit (0: all). */
typedef struct scan_args {
  const char *field, *want;
  size_t limit;
  json_t *list;
  r1d_error *err; /* where a parse failure goes */
} scan_args;

static int scan_cb(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen) {
  scan_args *a = arg;
  (void)key;
  (void)klen;
  json_t *rec;
  int rc = parse_value(val, vlen, &rec, a->err);
  if (rc) return rc;
  const char *s = json_string_value(json_object_get(rec, a->field));
  if (a->want && (!s || strcmp(s, a->want) != 0)) {
    json_decref(rec);
    return 0;
  }
  if (json_array_append_new(a->list, rec) != 0)
    return r1d_fail(a->err, R1D_ENOMEM, "out of memory");
  return a->limit && json_array_size(a->list) >= a->limit ? 1 : 0;
}

static int scan(r1d_txn *t, const char *field, const char *want, size_t limit,
                json_t **out, r1d_error *err) {
  scan_args a = {field, want, limit, json_array(), err};
  if (!a.list) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  int rc = r1d_txn_scan(t, R1D_T_CHECKPOINTS, NULL, 0, 1, scan_cb, &a, err);
  if (rc) {
    json_decref(a.list);
    return rc;
  }
  *out = a.list;
  return 0;
}

int r1d_ckpt_find_path(r1d_txn *t, const char *path, json_t **out,
                       r1d_error *err) {
  char *abs = realpath(path, NULL);
  json_t *list = NULL;
  int rc = scan(t, "path", abs ? abs : path, 1, &list, err);
  free(abs);
  if (rc) return rc;
  if (json_array_size(list) == 0) {
    json_decref(list);
    return r1d_fail(err, R1D_ENOTFOUND, "no checkpoint is registered at %s",
                    path);
  }
  *out = json_incref(json_array_get(list, 0));
  json_decref(list);
  return 0;
}

static int valid_status(const char *s) {
  for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
    if (strcmp(s, statuses[i]) == 0) return 1;
  return 0;
}

int r1d_ckpt_list(r1d_txn *t, const char *status, size_t limit, json_t **out,
                  r1d_error *err) {
  if (status && !valid_status(status))
    return r1d_fail(err, R1D_EINVAL,
                    "status: `%s` is not candidate, live, retired or rejected",
                    status);
  return scan(t, "status", status, limit, out, err);
}

int r1d_ckpt_update(r1d_txn *t, const char *version, const char *status,
                    json_t *eval, r1d_error *err) {
  if (status && !valid_status(status))
    return r1d_fail(err, R1D_EINVAL,
                    "status: `%s` is not candidate, live, retired or rejected",
                    status);
  if (eval && !json_is_object(eval))
    return r1d_fail(err, R1D_EINVAL, "eval: must be an object");
  json_t *rec;
  int rc = r1d_ckpt_get(t, version, &rec, err);
  if (rc) return rc;
  if (status) json_object_set_new(rec, "status", json_string(status));
  if (eval) {
    json_t *e = json_object_get(rec, "eval");
    if (!json_is_object(e)) {
      e = json_object();
      json_object_set_new(rec, "eval", e);
    }
    if (!e || json_object_update(e, eval) != 0) rc = R1D_ENOMEM;
  }
  char *s = rc ? NULL
               : json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                     JSON_REAL_PRECISION(17));
  json_decref(rec);
  if (!s) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  uint64_t key;
  r1d_ckpt_version_key(version, &key);
  uint8_t kb[R1D_KEY_BYTES];
  r1d_key_encode(key, kb);
  rc = r1d_txn_put(t, R1D_T_CHECKPOINTS, kb, sizeof kb, s, strlen(s), 0, err);
  free(s);
  return rc;
}

int r1d_ckpt_verify(const json_t *rec, r1d_error *err) {
  const char *path = json_string_value(json_object_get(rec, "path"));
  const char *version = json_string_value(json_object_get(rec, "version"));
  json_t *files = json_object_get(rec, "files");
  if (!path || !json_is_array(files))
    return r1d_fail(err, R1D_EINVAL, "checkpoint record without path/files");
  if (!version) version = "(unversioned)";
  size_t i;
  json_t *f;
  json_array_foreach(files, i, f) {
    const char *name = json_string_value(json_object_get(f, "name"));
    const char *want = json_string_value(json_object_get(f, "sha256"));
    json_int_t bytes = json_integer_value(json_object_get(f, "bytes"));
    if (!name || !want)
      return r1d_fail(err, R1D_EINVAL, "%s: a file entry without name/sha256",
                      version);
    char fp[PATH_MAX], hex[R1D_SHA256_HEX + 1];
    snprintf(fp, sizeof fp, "%s/%s", path, name);
    struct stat st;
    if (stat(fp, &st) != 0)
      return r1d_fail(err, R1D_EINVAL, "%s: %s is missing (%s)", version, fp,
                      strerror(errno));
    if ((json_int_t)st.st_size != bytes)
      return r1d_fail(err, R1D_EINVAL,
                      "%s: %s has %lld bytes, the record says %lld", version,
                      fp, (long long)st.st_size, (long long)bytes);
    uint64_t got = 0;
    int rc = r1d_sha256_file(fp, hex, &got, err);
    if (rc) return rc;
    if (strcmp(hex, want) != 0)
      return r1d_fail(err, R1D_EINVAL,
                      "%s: %s changed since it was registered (sha256 %s, "
                      "recorded %s)",
                      version, fp, hex, want);
  }
  return 0;
}

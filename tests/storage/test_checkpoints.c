/* test_checkpoints.c - the checkpoints registry: a record's fields and file
 * list (sizes and SHA-256 of the bytes on disk, optimizer.bin left out),
 * lookups by version and by a relative path, newest-first listing with a
 * status filter and limit, status/eval updates, refusals (bad versions and
 * statuses, a folder with no weights, a missing folder), verify catching a
 * changed, resized or deleted file, and records surviving a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sha256.h"
#include "storage/checkpoints.h"
#include "storage/db.h"

#include "db_fixture.h"

static void write_file(const char *dir, const char *name, const char *text) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
  assert_int_equal(fclose(f), 0);
}

/* DIR/NAME holding a fake checkpoint: the registry never parses weights. */
static void make_ckpt(const char *dir, const char *name, const char *weights) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  assert_int_equal(mkdir(path, 0755), 0);
  write_file(path, "model.safetensors", weights);
  write_file(path, "config.json", "{\"model_type\": \"qwen2\"}");
  write_file(path, "optimizer.bin", "moments");
}

static void sha_hex(const char *text, char out[R1D_SHA256_HEX + 1]) {
  unsigned char d[R1D_SHA256_BYTES];
  r1d_sha256(text, strlen(text), d);
  r1d_sha256_hex(d, out);
}

static void register_ok(r1d_db *db, const char *path, const char *kind,
                        long step, const char *parent,
                        char version[R1D_CKPT_VERSION_MAX]) {
  r1d_ckpt_info in = {.path = path,
                      .kind = kind,
                      .step = step,
                      .train_loss = 1.25,
                      .eval_loss = NAN,
                      .parent = parent,
                      .base = "/models/tiny"};
  r1d_error err = {0};
  int rc = r1d_ckpt_register(db, &in, version, &err);
  if (rc) fprintf(stderr, "register: %s\n", err.msg);
  assert_int_equal(rc, 0);
}

/* DIR/checkpoint-1..3, registered in order, each the parent of the next. */
static void register_three(const char *dir, r1d_db *db, const char *kind,
                           char v[3][R1D_CKPT_VERSION_MAX]) {
  for (int i = 0; i < 3; i++) {
    char name[32], w[32], path[PATH_MAX];
    snprintf(name, sizeof name, "checkpoint-%d", i + 1);
    snprintf(w, sizeof w, "w%d", i + 1);
    make_ckpt(dir, name, w);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    register_ok(db, path, kind, i + 1, i ? v[i - 1] : NULL, v[i]);
  }
}

typedef struct get_args {
  const char *version, *path;
  json_t *rec;
  int rc;
} get_args;

static int get_fn(r1d_txn *t, void *arg, r1d_error *err) {
  get_args *a = arg;
  a->rc = a->version ? r1d_ckpt_get(t, a->version, &a->rec, err)
                     : r1d_ckpt_find_path(t, a->path, &a->rec, err);
  return 0;
}

static json_t *get(r1d_db *db, const char *version, const char *path,
                   int want_rc) {
  get_args a = {.version = version, .path = path};
  r1d_error err = {0};
  assert_int_equal(r1d_db_read(db, get_fn, &a, &err), 0);
  if (a.rc != want_rc) fprintf(stderr, "get: %s\n", err.msg);
  assert_int_equal(a.rc, want_rc);
  return a.rec;
}

static void test_register_record(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  make_ckpt(f->dir, "checkpoint-10", "weights-10");
  char path[PATH_MAX], version[R1D_CKPT_VERSION_MAX];
  snprintf(path, sizeof path, "%s/checkpoint-10", f->dir);
  register_ok(db, path, "sft", 10, NULL, version);
  uint64_t key;
  assert_int_equal(r1d_ckpt_version_key(version, &key), 0);
  assert_true(key > 0);

  json_t *rec = get(db, version, NULL, 0);
  assert_string_equal(json_string_value(json_object_get(rec, "version")),
                      version);
  char *abs = realpath(path, NULL);
  assert_string_equal(json_string_value(json_object_get(rec, "path")), abs);
  free(abs);
  assert_string_equal(json_string_value(json_object_get(rec, "kind")), "sft");
  assert_int_equal(json_integer_value(json_object_get(rec, "step")), 10);
  assert_true(json_real_value(json_object_get(rec, "train_loss")) == 1.25);
  assert_true(json_is_null(json_object_get(rec, "eval_loss")));
  assert_true(json_is_null(json_object_get(rec, "parent")));
  assert_string_equal(json_string_value(json_object_get(rec, "base")),
                      "/models/tiny");
  assert_string_equal(json_string_value(json_object_get(rec, "status")),
                      "candidate");
  assert_true(json_integer_value(json_object_get(rec, "created")) > 0);

  /* sorted by name, optimizer.bin left out, hashes of the bytes */
  json_t *files = json_object_get(rec, "files");
  assert_int_equal(json_array_size(files), 2);
  json_t *f0 = json_array_get(files, 0), *f1 = json_array_get(files, 1);
  assert_string_equal(json_string_value(json_object_get(f0, "name")),
                      "config.json");
  assert_string_equal(json_string_value(json_object_get(f1, "name")),
                      "model.safetensors");
  assert_int_equal(json_integer_value(json_object_get(f1, "bytes")),
                   strlen("weights-10"));
  char hex[R1D_SHA256_HEX + 1];
  sha_hex("weights-10", hex);
  assert_string_equal(json_string_value(json_object_get(f1, "sha256")), hex);
  r1d_error err = {0};
  assert_int_equal(r1d_ckpt_verify(rec, &err), 0);
  json_decref(rec);
  r1d_db_close(db);
}

static void test_lookup(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  char v[3][R1D_CKPT_VERSION_MAX];
  register_three(f->dir, db, "sft", v);
  assert_true(strcmp(v[0], v[1]) < 0 && strcmp(v[1], v[2]) < 0);

  /* by a relative path to the same folder */
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(f->dir), 0);
  json_t *rec = get(db, NULL, "./checkpoint-2", 0);
  assert_int_equal(chdir(cwd), 0);
  assert_string_equal(json_string_value(json_object_get(rec, "version")), v[1]);
  assert_string_equal(json_string_value(json_object_get(rec, "parent")), v[0]);
  json_decref(rec);
  assert_null(get(db, NULL, "/nowhere/checkpoint-9", R1D_ENOTFOUND));
  assert_null(get(db, "ckpt-00000000000000ff", NULL, R1D_ENOTFOUND));
  assert_null(get(db, "ckpt-XYZ", NULL, R1D_EINVAL));
  assert_null(get(db, "model", NULL, R1D_EINVAL));

  r1d_db_close(db);
}

typedef struct update_args {
  const char *version, *status;
  json_t *eval;
  int rc;
} update_args;

static int update_fn(r1d_txn *t, void *arg, r1d_error *err) {
  update_args *a = arg;
  a->rc = r1d_ckpt_update(t, a->version, a->status, a->eval, err);
  return a->rc;
}

static int update(r1d_db *db, const char *version, const char *status,
                  json_t *eval, char *msg, size_t n) {
  update_args a = {version, status, eval, 0};
  r1d_error err = {0};
  int rc = r1d_db_write(db, update_fn, &a, &err);
  if (msg) snprintf(msg, n, "%s", err.msg);
  return rc;
}

typedef struct list_args {
  const char *status;
  size_t limit;
  json_t *out;
  int rc;
} list_args;

static int list_fn(r1d_txn *t, void *arg, r1d_error *err) {
  list_args *a = arg;
  a->rc = r1d_ckpt_list(t, a->status, a->limit, &a->out, err);
  return 0;
}

static json_t *list(r1d_db *db, const char *status, size_t limit) {
  list_args a = {status, limit, NULL, 0};
  r1d_error err = {0};
  assert_int_equal(r1d_db_read(db, list_fn, &a, &err), 0);
  assert_int_equal(a.rc, 0);
  return a.out;
}

static const char *version_at(json_t *list, size_t i) {
  return json_string_value(json_object_get(json_array_get(list, i), "version"));
}

static void test_list_and_update(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  char v[3][R1D_CKPT_VERSION_MAX];
  register_three(f->dir, db, "grpo", v);
  json_t *all = list(db, NULL, 0);
  assert_int_equal(json_array_size(all), 3);
  assert_string_equal(version_at(all, 0), v[2]);
  assert_string_equal(version_at(all, 2), v[0]);
  json_decref(all);
  json_t *two = list(db, NULL, 2);
  assert_int_equal(json_array_size(two), 2);
  assert_string_equal(version_at(two, 1), v[1]);
  json_decref(two);

  json_t *eval = json_pack("{s:f, s:i}", "accuracy", 0.5, "n", 64);
  assert_int_equal(update(db, v[1], "live", eval, NULL, 0), 0);
  json_decref(eval);
  eval = json_pack("{s:f}", "format_rate", 0.9);
  assert_int_equal(update(db, v[1], NULL, eval, NULL, 0), 0);
  json_decref(eval);
  assert_int_equal(update(db, v[0], "retired", NULL, NULL, 0), 0);

  json_t *live = list(db, "live", 0);
  assert_int_equal(json_array_size(live), 1);
  json_t *rec = json_array_get(live, 0);
  assert_string_equal(json_string_value(json_object_get(rec, "version")), v[1]);
  json_t *e = json_object_get(rec, "eval");
  assert_true(json_real_value(json_object_get(e, "accuracy")) == 0.5);
  assert_int_equal(json_integer_value(json_object_get(e, "n")), 64);
  assert_true(json_real_value(json_object_get(e, "format_rate")) == 0.9);
  json_decref(live);
  json_t *cand = list(db, "candidate", 0);
  assert_int_equal(json_array_size(cand), 1);
  assert_string_equal(version_at(cand, 0), v[2]);
  json_decref(cand);

  /* refusals change nothing */
  char msg[512];
  assert_int_equal(update(db, v[2], "best", NULL, msg, sizeof msg), R1D_EINVAL);
  assert_non_null(strstr(msg, "status: `best`"));
  assert_int_equal(
      update(db, "ckpt-00000000000000ff", "live", NULL, msg, sizeof msg),
      R1D_ENOTFOUND);
  json_t *bad = json_integer(3);
  assert_int_equal(update(db, v[2], NULL, bad, msg, sizeof msg), R1D_EINVAL);
  json_decref(bad);
  list_args la = {"best", 0, NULL, 0};
  r1d_error err = {0};
  assert_int_equal(r1d_db_read(db, list_fn, &la, &err), 0);
  assert_int_equal(la.rc, R1D_EINVAL);

  /* reopened: all still there, statuses kept */
  r1d_db_close(db);
  db = open_db(f, 0, 0);
  json_t *re = list(db, NULL, 0);
  assert_int_equal(json_array_size(re), 3);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(re, 1), "status")),
      "live");
  json_decref(re);
  r1d_db_close(db);
}

static void test_refusals_and_verify(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  char path[PATH_MAX], version[R1D_CKPT_VERSION_MAX];
  r1d_error err = {0};

  /* no weights in the folder; no folder at all */
  snprintf(path, sizeof path, "%s/empty", f->dir);
  assert_int_equal(mkdir(path, 0755), 0);
  write_file(path, "config.json", "{}");
  r1d_ckpt_info in = {.path = path, .kind = "sft", .step = -1};
  assert_int_equal(r1d_ckpt_register(db, &in, version, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "not a checkpoint"));
  in.path = "/nonexistent/r1d-ckpt";
  assert_int_equal(r1d_ckpt_register(db, &in, version, &err), R1D_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent/r1d-ckpt"));
  json_t *none = list(db, NULL, 0);
  assert_int_equal(json_array_size(none), 0);
  json_decref(none);

  /* verify: same size other bytes; other size; deleted */
  make_ckpt(f->dir, "ck", "abcdef");
  snprintf(path, sizeof path, "%s/ck", f->dir);
  register_ok(db, path, NULL, -1, NULL, version);
  json_t *rec = get(db, version, NULL, 0);
  assert_string_equal(json_string_value(json_object_get(rec, "kind")),
                      "unknown");
  assert_true(json_is_null(json_object_get(rec, "step")));
  write_file(path, "optimizer.bin", "other moments"); /* not vouched for */
  assert_int_equal(r1d_ckpt_verify(rec, &err), 0);
  write_file(path, "model.safetensors", "abcdeX");
  assert_int_equal(r1d_ckpt_verify(rec, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "changed since it was registered"));
  write_file(path, "model.safetensors", "abc");
  assert_int_equal(r1d_ckpt_verify(rec, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "has 3 bytes, the record says 6"));
  char fp[PATH_MAX + 16];
  snprintf(fp, sizeof fp, "%s/config.json", path);
  assert_int_equal(unlink(fp), 0);
  assert_int_equal(r1d_ckpt_verify(rec, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "config.json is missing"));
  json_decref(rec);
  r1d_db_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_register_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_and_update, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refusals_and_verify, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_db.c - the LMDB layer: every table opens, keys sort by time, scans
 * go both ways, nested writes lose only themselves, the schema version is
 * stamped, migrated and refused when newer, the map grows and then fails
 * cleanly at its cap with the data intact, and retention prunes the oldest
 * interactions (with their feedback) and never tasks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/db.h"
#include "storage/interactions.h"

#include "db_fixture.h"

/* ---- keys ---- */

static void test_keys_sort_by_time(void **state) {
  (void)state;
  r1d_keygen g = {0};
  uint64_t a = r1d_keygen_next(&g, 1000);
  uint64_t b = r1d_keygen_next(&g, 1000); /* same ms: seq + 1 */
  uint64_t c = r1d_keygen_next(&g, 999);  /* clock went back */
  uint64_t d = r1d_keygen_next(&g, 2000);
  assert_true(a < b && b < c && c < d);
  assert_int_equal(r1d_key_ms(a), 1000);
  assert_int_equal(b, a + 1);
  assert_int_equal(r1d_key_ms(d), 2000);
  /* byte order is numeric order */
  uint8_t ka[8], kb[8];
  r1d_key_encode(0x00ff000000000000ull, ka);
  r1d_key_encode(0x0100000000000000ull, kb);
  assert_true(memcmp(ka, kb, 8) < 0);
  assert_int_equal(r1d_key_decode(kb), 0x0100000000000000ull);
  uint64_t now = r1d_now_ms();
  assert_true(now > 1700000000000ull); /* after 2023 */
}

/* ---- tables, put/get, scans ---- */

typedef struct put_arg {
  r1d_table tb;
  uint64_t keys[16];
  int n;
  const char *val;
} put_arg;

static int put_keys(r1d_txn *t, void *arg, r1d_error *err) {
  put_arg *p = arg;
  for (int i = 0; i < p->n; i++) {
    uint8_t k[8];
    r1d_key_encode(p->keys[i], k);
    int rc = r1d_txn_put(t, p->tb, k, 8, p->val, strlen(p->val),
                         R1D_PUT_NOOVERWRITE, err);
    if (rc) return rc;
  }
  return 0;
}

typedef struct collect {
  uint64_t keys[64];
  int n, stop_at;
} collect;

static int collect_keys(void *arg, const void *key, size_t klen,
                        const void *val, size_t vlen) {
  (void)val;
  (void)vlen;
  collect *c = arg;
  assert_int_equal(klen, 8);
  c->keys[c->n++] = r1d_key_decode(key);
  return c->stop_at && c->n == c->stop_at;
}

typedef struct scan_req {
  r1d_table tb;
  const uint8_t *from;
  int reverse;
  collect *c;
} scan_req;

static int do_scan(r1d_txn *t, void *arg, r1d_error *err) {
  scan_req *s = arg;
  return r1d_txn_scan(t, s->tb, s->from, s->from ? 8 : 0, s->reverse,
                      collect_keys, s->c, err);
}

static void test_every_table_orders_keys(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  r1d_error err = {0};
  for (int tb = 0; tb < R1D_T_COUNT; tb++) {
    if (tb == R1D_T_META) continue;
    /* written out of order, read back in order */
    put_arg p = {.tb = (r1d_table)tb,
                 .keys = {30, 10, 20, (5ull << 40), 11},
                 .n = 5,
                 .val = "{\"v\":1}"};
    assert_int_equal(r1d_db_write(db, put_keys, &p, &err), 0);
    collect c = {0};
    scan_req s = {(r1d_table)tb, NULL, 0, &c};
    assert_int_equal(r1d_db_read(db, do_scan, &s, &err), 0);
    assert_int_equal(c.n, 5);
    uint64_t want[] = {10, 11, 20, 30, 5ull << 40};
    for (int i = 0; i < 5; i++)
      assert_int_equal(c.keys[i], want[i]);
    /* from a key, both directions; a stop from the callback */
    uint8_t from[8];
    r1d_key_encode(15, from);
    collect up = {0}, down = {0}, one = {.stop_at = 1};
    scan_req su = {(r1d_table)tb, from, 0, &up};
    scan_req sd = {(r1d_table)tb, from, 1, &down};
    scan_req so = {(r1d_table)tb, NULL, 1, &one};
    assert_int_equal(r1d_db_read(db, do_scan, &su, &err), 0);
    assert_int_equal(r1d_db_read(db, do_scan, &sd, &err), 0);
    assert_int_equal(r1d_db_read(db, do_scan, &so, &err), 0);
    assert_int_equal(up.n, 3);
    assert_int_equal(up.keys[0], 20);
    assert_int_equal(down.n, 2);
    assert_int_equal(down.keys[0], 11);
    assert_int_equal(down.keys[1], 10);
    assert_int_equal(one.n, 1);
    assert_int_equal(one.keys[0], 5ull << 40);
    /* exact start key going down includes it */
    r1d_key_encode(20, from);
    collect d2 = {0};
    scan_req sd2 = {(r1d_table)tb, from, 1, &d2};
    assert_int_equal(r1d_db_read(db, do_scan, &sd2, &err), 0);
    assert_int_equal(d2.n, 3);
    assert_int_equal(d2.keys[0], 20);
    /* no overwrite */
    put_arg dup = {.tb = (r1d_table)tb, .keys = {20}, .n = 1, .val = "x"};
    assert_int_equal(r1d_db_write(db, put_keys, &dup, &err), R1D_EEXIST);
    /* a caller's mistake is not a storage failure */
    assert_int_equal(r1d_db_failing(db, NULL, 0), 0);
  }
  r1d_db_stats st;
  assert_int_equal(r1d_db_stat(db, &st, &err), 0);
  assert_int_equal(st.schema_version, R1D_DB_SCHEMA_VERSION);
  assert_int_equal(st.entries[R1D_T_TASKS], 5);
  assert_true(st.data_bytes > 0 && st.file_bytes >= st.data_bytes);
  r1d_db_close(db);

  /* reopened read-only: everything is there, writes are refused */
  r1d_db_options ro = {.read_only = 1};
  assert_int_equal(r1d_db_open(f->dir, &ro, &db, &err), 0);
  collect c = {0};
  scan_req s = {R1D_T_ROLLOUTS, NULL, 0, &c};
  assert_int_equal(r1d_db_read(db, do_scan, &s, &err), 0);
  assert_int_equal(c.n, 5);
  put_arg p = {.tb = R1D_T_JOBS, .keys = {99}, .n = 1, .val = "{}"};
  assert_int_equal(r1d_db_write(db, put_keys, &p, &err), R1D_ESTATE);
  r1d_db_close(db);
  assert_string_equal(r1d_table_name(R1D_T_CHECKPOINTS), "checkpoints");
}

static void test_read_only_open_of_missing_db(void **state) {
  fixture *f = *state;
  char dir[128];
  snprintf(dir, sizeof dir, "%s/nothing-here", f->dir);
  r1d_db_options ro = {.read_only = 1};
  r1d_db *db = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_db_open(dir, &ro, &db, &err), R1D_ENOTFOUND);
  assert_null(db);
  assert_non_null(strstr(err.msg, "no database in"));
}

/* ---- nested writes ---- */

static int put_one_then_fail(r1d_txn *t, void *arg, r1d_error *err) {
  uint8_t k[8];
  r1d_key_encode(*(uint64_t *)arg, k);
  int rc = r1d_txn_put(t, R1D_T_JOBS, k, 8, "{}", 2, 0, err);
  if (rc) return rc;
  return r1d_fail(err, R1D_EINVAL, "this item is bad");
}

static int put_one(r1d_txn *t, void *arg, r1d_error *err) {
  uint8_t k[8];
  r1d_key_encode(*(uint64_t *)arg, k);
  return r1d_txn_put(t, R1D_T_JOBS, k, 8, "{}", 2, 0, err);
}

static int nested_batch(r1d_txn *t, void *arg, r1d_error *err) {
  (void)arg;
  uint64_t a = 1, b = 2, c = 3;
  r1d_error e1 = {0};
  assert_int_equal(r1d_txn_nested(t, put_one, &a, err), 0);
  assert_int_equal(r1d_txn_nested(t, put_one_then_fail, &b, &e1), R1D_EINVAL);
  assert_string_equal(e1.msg, "this item is bad");
  assert_int_equal(r1d_txn_nested(t, put_one, &c, err), 0);
  return 0;
}

static void test_nested_write_loses_only_itself(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  r1d_error err = {0};
  assert_int_equal(r1d_db_write(db, nested_batch, NULL, &err), 0);
  collect c = {0};
  scan_req s = {R1D_T_JOBS, NULL, 0, &c};
  assert_int_equal(r1d_db_read(db, do_scan, &s, &err), 0);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.keys[0], 1);
  assert_int_equal(c.keys[1], 3);
  r1d_db_close(db);
}

/* ---- schema ---- */

static int get_version(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_txn_meta_get_int(t, "schema_version", arg, err);
}

static int set_version(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_txn_meta_set_int(t, "schema_version", *(long long *)arg, err);
}

static int step_marks(r1d_txn *t, void *arg, r1d_error *err) {
  (void)arg;
  long long v;
  int rc = r1d_txn_meta_get_int(t, "steps_run", &v, err);
  if (rc == R1D_ENOTFOUND) v = 0, rc = 0;
  if (rc) return rc;
  return r1d_txn_meta_set_int(t, "steps_run", v + 1, err);
}

static int get_steps(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_txn_meta_get_int(t, "steps_run", arg, err);
}

static void test_schema_stamp_migrate_refuse(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  r1d_error err = {0};
  long long v = 0;
  assert_int_equal(r1d_db_read(db, get_version, &v, &err), 0);
  assert_int_equal(v, R1D_DB_SCHEMA_VERSION);
  /* pretend the file is older: steps 1->2->3 run in order, once each */
  r1d_db_migration steps[] = {{2, "second", step_marks},
                              {1, "first", step_marks}};
  assert_int_equal(r1d_db_migrate(db, steps, 2, 3, &err), 0);
  assert_int_equal(r1d_db_read(db, get_version, &v, &err), 0);
  assert_int_equal(v, 3);
  long long n = 0;
  assert_int_equal(r1d_db_read(db, get_steps, &n, &err), 0);
  assert_int_equal(n, 2);
  /* again: nothing to do */
  assert_int_equal(r1d_db_migrate(db, steps, 2, 3, &err), 0);
  assert_int_equal(r1d_db_read(db, get_steps, &n, &err), 0);
  assert_int_equal(n, 2);
  /* a gap in the steps is an error, not a silent skip */
  long long one = 1;
  assert_int_equal(r1d_db_write(db, set_version, &one, &err), 0);
  r1d_db_migration gap[] = {{2, "second", step_marks}};
  assert_int_equal(r1d_db_migrate(db, gap, 1, 3, &err), R1D_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "no migration from schema version 1"));
  /* a newer file is refused by open */
  long long newer = R1D_DB_SCHEMA_VERSION + 5;
  assert_int_equal(r1d_db_write(db, set_version, &newer, &err), 0);
  r1d_db_close(db);
  r1d_db_options o = {.no_sync = 1};
  assert_int_equal(r1d_db_open(f->dir, &o, &db, &err), R1D_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "newer than this r1d"));
}

/* ---- map growth and a full map ---- */

typedef struct blob_arg {
  uint64_t key;
  size_t len;
} blob_arg;

static int put_blob(r1d_txn *t, void *arg, r1d_error *err) {
  blob_arg *b = arg;
  char *v = malloc(b->len);
  memset(v, 'x', b->len);
  int rc = r1d_interaction_put(t, b->key, v, b->len, err);
  free(v);
  return rc;
}

static int write_nothing(r1d_txn *t, void *arg, r1d_error *err) {
  (void)t;
  (void)arg;
  (void)err;
  return 0;
}

static void test_map_grows_then_fails_at_cap(void **state) {
  fixture *f = *state;
  /* start at 256 KiB, cap 2 MiB: 8 KiB values */
  r1d_db *db = open_db(f, 256 << 10, 2 << 20);
  r1d_error err = {0};
  r1d_db_stats st;
  int stored = 0, rc = 0;
  for (int i = 1; i <= 1000; i++) {
    blob_arg b = {(uint64_t)i, 8192};
    rc = r1d_db_write(db, put_blob, &b, &err);
    if (rc) break;
    stored++;
  }
  assert_int_equal(rc, R1D_EFULL);
  assert_true(stored > 64); /* well past the first 256 KiB */
  assert_non_null(strstr(err.msg, "storage full"));
  char msg[512];
  assert_int_equal(r1d_db_failing(db, msg, sizeof msg), 1);
  assert_non_null(strstr(msg, "storage full"));
  assert_non_null(strstr(msg, "cap of 2048 KiB"));
  /* a commit that stored nothing does not clear the failure */
  assert_int_equal(r1d_db_write(db, write_nothing, NULL, &err), 0);
  assert_int_equal(r1d_db_failing(db, NULL, 0), 1);
  assert_int_equal(r1d_db_stat(db, &st, &err), 0);
  assert_int_equal(st.map_size, 2 << 20);
  assert_int_equal(st.full, 1);
  assert_true(st.write_errors >= 1);
  /* what was stored is intact and readable */
  assert_int_equal(st.entries[R1D_T_INTERACTIONS], (size_t)stored);
  /* a small write may still fit; room made by retention lets writes go on */
  r1d_retention r = {.max_bytes = 1 << 20};
  size_t pruned = 0;
  assert_int_equal(r1d_db_prune(db, &r, &pruned, &err), 0);
  assert_true(pruned > 0);
  blob_arg b = {100000, 8192};
  assert_int_equal(r1d_db_write(db, put_blob, &b, &err), 0);
  assert_int_equal(r1d_db_failing(db, NULL, 0), 0);
  r1d_db_close(db);
  /* reopened with a smaller initial size, the map still holds the file */
  db = open_db(f, 256 << 10, 256 << 10);
  assert_int_equal(r1d_db_stat(db, &st, &err), 0);
  assert_true(st.map_size >= st.file_bytes && st.map_size > (256 << 10));
  r1d_db_close(db);
}

/* ---- retention ---- */

static int put_fb(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_feedback_put(t, arg, NULL, err);
}

static void test_retention_by_age_keeps_tasks(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  r1d_error err = {0};
  uint64_t now = r1d_now_ms();
  /* three old interactions (2 days), two recent; a task from long ago */
  uint64_t keys[] = {
      (now - 2 * 86400000ull) << 16, ((now - 2 * 86400000ull) << 16) + 1,
      (now - 2 * 86400000ull + 5) << 16, (now - 1000) << 16, now << 16};
  for (int i = 0; i < 5; i++) {
    char id[R1D_RESPONSE_ID_MAX], json[128];
    r1d_response_id("chatcmpl-", keys[i], 7, id, sizeof id);
    snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
    put_arg p = {
        .tb = R1D_T_INTERACTIONS, .keys = {keys[i]}, .n = 1, .val = json};
    assert_int_equal(r1d_db_write(db, put_keys, &p, &err), 0);
    json_t *fb = json_pack("{s:s, s:i}", "id", id, "rating", 1);
    assert_int_equal(r1d_db_write(db, put_fb, fb, &err), 0);
    json_decref(fb);
  }
  put_arg task = {.tb = R1D_T_TASKS, .keys = {1}, .n = 1, .val = "{}"};
  assert_int_equal(r1d_db_write(db, put_keys, &task, &err), 0);
  r1d_retention r = {.max_age_s = 86400};
  size_t pruned = 0;
  assert_int_equal(r1d_db_prune(db, &r, &pruned, &err), 0);
  assert_int_equal(pruned, 3);
  r1d_db_stats st;
  assert_int_equal(r1d_db_stat(db, &st, &err), 0);
  assert_int_equal(st.entries[R1D_T_INTERACTIONS], 2);
  assert_int_equal(st.entries[R1D_T_FEEDBACK], 2); /* went with them */
  assert_int_equal(st.entries[R1D_T_TASKS], 1);
  collect c = {0};
  scan_req s = {R1D_T_INTERACTIONS, NULL, 0, &c};
  assert_int_equal(r1d_db_read(db, do_scan, &s, &err), 0);
  assert_int_equal(c.keys[0], keys[3]);
  r1d_db_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keys_sort_by_time),
      cmocka_unit_test_setup_teardown(test_every_table_orders_keys, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_read_only_open_of_missing_db, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_nested_write_loses_only_itself,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_schema_stamp_migrate_refuse, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_map_grows_then_fails_at_cap, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_retention_by_age_keeps_tasks, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

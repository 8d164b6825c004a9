/* test_interactions.c - response ids carry their record's key, records and
 * feedback round-trip, feedback is checked field by field and refused for
 * unknown answers, chat records become TRL "messages" rows, and the
 * group-commit writer stores everything queued from many threads, fails
 * only the bad operation of a batch, and reports a full map to each op. */
#include <pthread.h>
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
#include "storage/writer.h"

#include "db_fixture.h"

static void test_response_ids(void **state) {
  (void)state;
  char id[R1D_RESPONSE_ID_MAX];
  uint64_t key = 0x0123456789abcdefull, back = 0;
  r1d_response_id("chatcmpl-", key, 0xdeadbeef, id, sizeof id);
  assert_string_equal(id, "chatcmpl-0123456789abcdefdeadbeef");
  assert_int_equal(r1d_response_id_key(id, &back), 0);
  assert_int_equal(back, key);
  r1d_response_id("cmpl-", 5, 1, id, sizeof id);
  assert_int_equal(r1d_response_id_key(id, &back), 0);
  assert_int_equal(back, 5);
  assert_int_equal(r1d_response_id_key("chatcmpl-xyz", &back), R1D_EINVAL);
  assert_int_equal(
      r1d_response_id_key("chatcmpl-0123456789abcdefdeadbeeg", &back),
      R1D_EINVAL);
  assert_int_equal(r1d_response_id_key("nodash", &back), R1D_EINVAL);
  assert_int_equal(r1d_response_id_key(NULL, &back), R1D_EINVAL);
}

typedef struct rec_arg {
  uint64_t key;
  const char *json;
} rec_arg;

static int put_rec(r1d_txn *t, void *arg, r1d_error *err) {
  rec_arg *r = arg;
  return r1d_interaction_put(t, r->key, r->json, strlen(r->json), err);
}

typedef struct get_arg {
  const char *id;
  json_t *out;
} get_arg;

static int get_rec(r1d_txn *t, void *arg, r1d_error *err) {
  get_arg *g = arg;
  return r1d_interaction_get(t, g->id, &g->out, err);
}

static int put_fb(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_feedback_put(t, arg, NULL, err);
}

typedef struct list_arg {
  uint64_t key;
  json_t *out;
} list_arg;

static int list_fb(r1d_txn *t, void *arg, r1d_error *err) {
  list_arg *l = arg;
  return r1d_feedback_list(t, l->key, &l->out, err);
}

static const char *chat_record(char *buf, size_t n, const char *id) {
  snprintf(buf, n,
           "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":1,"
           "\"model\":\"tiny\",\"weight_version\":0,\"status\":\"ok\","
           "\"request\":{\"messages\":[{\"role\":\"user\",\"content\":"
           "\"hi\"},{\"role\":\"assistant\",\"content\":\"a\","
           "\"reasoning_content\":\"old\"},{\"role\":\"user\",\"content\":"
           "\"2+2?\"}]},\"choices\":[{\"index\":0,\"reasoning_content\":"
           "\"add\",\"content\":\"4\",\"finish_reason\":\"stop\"}]}",
           id);
  return buf;
}

static void test_records_and_feedback(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  r1d_error err = {0};
  char id[R1D_RESPONSE_ID_MAX], other[R1D_RESPONSE_ID_MAX], json[1024];
  uint64_t key = (r1d_now_ms() << 16) | 3;
  r1d_response_id("chatcmpl-", key, 0x1234, id, sizeof id);
  rec_arg r = {key, chat_record(json, sizeof json, id)};
  assert_int_equal(r1d_db_write(db, put_rec, &r, &err), 0);
  /* the same key again is refused, not overwritten */
  assert_int_equal(r1d_db_write(db, put_rec, &r, &err), R1D_EEXIST);

  get_arg g = {id, NULL};
  assert_int_equal(r1d_db_read(db, get_rec, &g, &err), 0);
  assert_string_equal(json_string_value(json_object_get(g.out, "id")), id);
  json_decref(g.out);
  /* right key, wrong nonce; unknown key; not an id */
  r1d_response_id("chatcmpl-", key, 0x9999, other, sizeof other);
  get_arg g2 = {other, NULL};
  assert_int_equal(r1d_db_read(db, get_rec, &g2, &err), R1D_ENOTFOUND);
  r1d_response_id("chatcmpl-", key + 1, 0x1234, other, sizeof other);
  g2.id = other;
  assert_int_equal(r1d_db_read(db, get_rec, &g2, &err), R1D_ENOTFOUND);
  g2.id = "hello";
  assert_int_equal(r1d_db_read(db, get_rec, &g2, &err), R1D_ENOTFOUND);

  /* feedback: normalised, stored, listed in order; unknown id refused */
  json_t *body =
      json_pack("{s:s, s:i, s:s}", "id", id, "rating", -1, "comment", "wrong");
  json_t *fb = NULL;
  assert_int_equal(r1d_feedback_normalize(body, &fb, &err), 0);
  assert_non_null(json_object_get(fb, "created"));
  assert_int_equal(r1d_db_write(db, put_fb, fb, &err), 0);
  json_decref(fb);
  json_decref(body);
  body = json_pack("{s:s, s:i}", "id", id, "rating", 5);
  assert_int_equal(r1d_feedback_normalize(body, &fb, &err), 0);
  assert_int_equal(r1d_db_write(db, put_fb, fb, &err), 0);
  json_decref(fb);
  json_decref(body);
  body = json_pack("{s:s, s:i}", "id", other, "rating", 1);
  assert_int_equal(r1d_feedback_normalize(body, &fb, &err), 0);
  assert_int_equal(r1d_db_write(db, put_fb, fb, &err), R1D_ENOTFOUND);
  json_decref(fb);
  json_decref(body);
  /* many in one millisecond: each gets its own key, in order */
  for (int i = 0; i < 50; i++) {
    body = json_pack("{s:s, s:s}", "id", id, "comment", "again");
    assert_int_equal(r1d_feedback_normalize(body, &fb, &err), 0);
    assert_int_equal(r1d_db_write(db, put_fb, fb, &err), 0);
    json_decref(fb);
    json_decref(body);
  }
  list_arg l = {key, NULL};
  assert_int_equal(r1d_db_read(db, list_fb, &l, &err), 0);
  assert_int_equal(json_array_size(l.out), 52);
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(l.out, 0), "rating")),
      -1);

  /* the training row: earlier reasoning dropped, the answer appended, the
   * latest rating */
  g.out = NULL;
  assert_int_equal(r1d_db_read(db, get_rec, &g, &err), 0);
  json_t *row = NULL;
  assert_int_equal(r1d_interaction_to_messages(g.out, 0, l.out, &row, &err), 0);
  json_t *msgs = json_object_get(row, "messages");
  assert_int_equal(json_array_size(msgs), 4);
  assert_null(json_object_get(json_array_get(msgs, 1), "reasoning_content"));
  json_t *last = json_array_get(msgs, 3);
  assert_string_equal(json_string_value(json_object_get(last, "role")),
                      "assistant");
  assert_string_equal(json_string_value(json_object_get(last, "content")), "4");
  assert_string_equal(
      json_string_value(json_object_get(last, "reasoning_content")), "add");
  assert_int_equal(json_integer_value(json_object_get(row, "rating")), 5);
  assert_string_equal(json_string_value(json_object_get(row, "finish_reason")),
                      "stop");
  json_decref(row);
  assert_int_equal(r1d_interaction_to_messages(g.out, 1, l.out, &row, &err),
                   R1D_ENOTFOUND);
  json_decref(g.out);
  json_decref(l.out);
  r1d_db_close(db);
}

static void expect_bad_feedback(const char *body_json, const char *field) {
  json_t *body = json_loads(body_json, 0, NULL);
  assert_non_null(body);
  json_t *fb = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_feedback_normalize(body, &fb, &err), R1D_EINVAL);
  assert_null(fb);
  size_t n = strlen(field);
  if (strncmp(err.msg, field, n) != 0 || err.msg[n] != ':')
    fail_msg("expected an error about %s, got: %s", field, err.msg);
  json_decref(body);
}

static void test_feedback_validation(void **state) {
  (void)state;
  expect_bad_feedback("{\"rating\":1}", "id");
  expect_bad_feedback("{\"id\":\"\",\"rating\":1}", "id");
  expect_bad_feedback("{\"id\":\"chatcmpl-x\",\"rating\":6}", "rating");
  expect_bad_feedback("{\"id\":\"chatcmpl-x\",\"rating\":-2}", "rating");
  expect_bad_feedback("{\"id\":\"chatcmpl-x\",\"rating\":\"good\"}", "rating");
  expect_bad_feedback("{\"id\":\"chatcmpl-x\"}", "rating");
  expect_bad_feedback("{\"id\":\"chatcmpl-x\",\"comment\":3}", "comment");
  expect_bad_feedback("{\"id\":\"chatcmpl-x\",\"preferred\":[]}", "preferred");
  expect_bad_feedback("{\"id\":\"chatcmpl-x\",\"stars\":3}", "stars");
  json_t *ok = json_loads(
      "{\"id\":\"chatcmpl-x\",\"rating\":4.5,\"preferred\":\"better\"}", 0,
      NULL);
  json_t *fb = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_feedback_normalize(ok, &fb, &err), 0);
  assert_true(json_real_value(json_object_get(fb, "rating")) == 4.5);
  json_decref(fb);
  json_decref(ok);
}

/* ---- the writer ---- */

typedef struct op_slot {
  r1d_write_op op;
  uint64_t key;
  char json[160];
  int done_calls;
  int status;
} op_slot;

static int apply_slot(r1d_txn *t, void *arg, r1d_error *err) {
  op_slot *s = arg;
  return r1d_interaction_put(t, s->key, s->json, strlen(s->json), err);
}

static void slot_done(r1d_write_op *op) {
  op_slot *s = op->user;
  s->status = op->status;
  /* the full-map test polls this from the main thread */
  __atomic_fetch_add(&s->done_calls, 1, __ATOMIC_RELEASE);
}

enum { N_THREADS = 4, PER_THREAD = 500 };

typedef struct thread_arg {
  r1d_writer *w;
  op_slot *slots;
  int first;
} thread_arg;

static void *submit_many(void *arg) {
  thread_arg *a = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    op_slot *s = &a->slots[a->first + i];
    if (r1d_writer_submit(a->w, &s->op)) return (void *)1;
  }
  return NULL;
}

static int count_scan(void *arg, uint64_t key, const char *json, size_t len) {
  (void)key;
  (void)json;
  (void)len;
  (*(size_t *)arg)++;
  return 0;
}

static int count_all(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_interactions_scan(t, 0, count_scan, arg, err);
}

static void test_writer_group_commit(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 0, 0);
  r1d_error err = {0};
  r1d_writer *w = NULL;
  r1d_writer_options wo = {.max_batch = 64};
  assert_int_equal(r1d_writer_start(db, &wo, &w, &err), 0);
  int n = N_THREADS * PER_THREAD;
  op_slot *slots = calloc((size_t)n, sizeof *slots);
  for (int i = 0; i < n; i++) {
    slots[i].key = (uint64_t)(i + 1);
    /* every 100th reuses key 1: a duplicate, which fails alone */
    if (i % 100 == 99) slots[i].key = 1;
    snprintf(slots[i].json, sizeof slots[i].json, "{\"i\":%d}", i);
    slots[i].op = (r1d_write_op){.apply = apply_slot,
                                 .arg = &slots[i],
                                 .done = slot_done,
                                 .user = &slots[i]};
  }
  pthread_t th[N_THREADS];
  thread_arg ta[N_THREADS];
  for (int t = 0; t < N_THREADS; t++) {
    ta[t] = (thread_arg){w, slots, t * PER_THREAD};
    assert_int_equal(pthread_create(&th[t], NULL, submit_many, &ta[t]), 0);
  }
  for (int t = 0; t < N_THREADS; t++) {
    void *ret;
    pthread_join(th[t], &ret);
    assert_null(ret);
  }
  r1d_writer_stats ws;
  r1d_writer_stop(w); /* commits what is queued, then returns */
  int ok = 0, dup = 0;
  for (int i = 0; i < n; i++) {
    assert_int_equal(slots[i].done_calls, 1);
    if (slots[i].status == 0)
      ok++;
    else if (slots[i].status == R1D_EEXIST)
      dup++;
    else
      fail_msg("op %d: status %d", i, slots[i].status);
  }
  /* key 1 was written by slot 0 or by whichever duplicate came first */
  assert_int_equal(ok + dup, n);
  assert_int_equal(dup, n / 100);
  size_t count = 0;
  assert_int_equal(r1d_db_read(db, count_all, &count, &err), 0);
  assert_int_equal(count, (size_t)ok);
  free(slots);

  /* a stopped writer refuses work instead of losing it */
  assert_int_equal(r1d_writer_start(db, &wo, &w, &err), 0);
  r1d_writer_stats_get(w, &ws);
  assert_int_equal(ws.ops, 0);
  r1d_writer_stop(w);
  r1d_db_close(db);
}

static void test_writer_full_map(void **state) {
  fixture *f = *state;
  r1d_db *db = open_db(f, 128 << 10, 256 << 10);
  r1d_error err = {0};
  r1d_writer *w = NULL;
  assert_int_equal(r1d_writer_start(db, NULL, &w, &err), 0);
  enum { N = 3000 };
  op_slot *slots = calloc(N, sizeof *slots);
  for (int i = 0; i < N; i++) {
    slots[i].key = (uint64_t)(i + 1);
    /* ~160 bytes each: 3000 of them (~480 KiB) cannot fit 256 KiB */
    memset(slots[i].json, 'y', sizeof slots[i].json - 1);
    slots[i].op = (r1d_write_op){.apply = apply_slot,
                                 .arg = &slots[i],
                                 .done = slot_done,
                                 .user = &slots[i]};
  }
  /* one at a time, so batches stay small and the failure point is sharp */
  int full = 0, stored = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(r1d_writer_submit(w, &slots[i].op), 0);
    while (!__atomic_load_n(&slots[i].done_calls, __ATOMIC_ACQUIRE))
      usleep(100);
    if (slots[i].status == R1D_EFULL)
      full++;
    else if (slots[i].status == 0)
      stored++;
    else
      fail_msg("op %d: status %d", i, slots[i].status);
  }
  r1d_writer_stop(w);
  assert_true(full > 0);
  assert_true(stored > 100);
  assert_non_null(strstr(slots[N - 1].op.err.msg, "storage full"));
  assert_int_equal(r1d_db_failing(db, NULL, 0), 1);
  size_t count = 0;
  assert_int_equal(r1d_db_read(db, count_all, &count, &err), 0);
  assert_int_equal(count, (size_t)stored);
  free(slots);
  r1d_db_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_response_ids),
      cmocka_unit_test(test_feedback_validation),
      cmocka_unit_test_setup_teardown(test_records_and_feedback, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_writer_group_commit, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_writer_full_map, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

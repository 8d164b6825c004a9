/* test_feedback_pairs.c - preference pairs from logged answers and their
 * feedback (storage/feedback_pairs.h), everything written through the
 * storage API as the server writes it:
 *  - a "preferred" text pairs against the logged answer (content only);
 *  - answers to the same prompt with different ratings pair every couple,
 *    the higher-rated chosen, the latest rating counting; equal ratings and
 *    equal texts give nothing;
 *  - a lone rating, a comment, an error record, a text completion and an
 *    unrated answer give nothing;
 *  - the per-prompt cap and max_pairs hold; an empty database gives []. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/db.h"
#include "storage/feedback_pairs.h"
#include "storage/interactions.h"

#include "db_fixture.h"

typedef struct log_ctx {
  r1d_db *db;
  uint64_t key;
} log_ctx;

typedef struct rec_arg {
  uint64_t key;
  char *json;
} rec_arg;

static int put_rec(r1d_txn *t, void *arg, r1d_error *err) {
  rec_arg *r = arg;
  return r1d_interaction_put(t, r->key, r->json, strlen(r->json), err);
}

static int put_fb(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_feedback_put(t, arg, NULL, err);
}

/* Logs a chat answer to `question` (after one earlier turn whose reasoning
 * must not matter) and returns its response id in id. */
static void log_answer(log_ctx *l, const char *question, const char *answer,
                       const char *object, const char *status, char *id) {
  uint64_t key = l->key++;
  r1d_response_id("chatcmpl-", key, 0x77, id, R1D_RESPONSE_ID_MAX);
  json_t *rec = json_pack(
      "{s:s, s:s, s:i, s:s, s:i, s:s, s:{s:[{s:s, s:s}, {s:s, s:s, s:s}, "
      "{s:s, s:s}]}, s:[{s:i, s:s, s:s, s:s}]}",
      "id", id, "object", object, "created", 1, "model", "tiny",
      "weight_version", 0, "status", status, "request", "messages", "role",
      "user", "content", "hi", "role", "assistant", "content", "hello",
      "reasoning_content", (key & 1) ? "odd thoughts" : "even thoughts", "role",
      "user", "content", question, "choices", "index", 0, "reasoning_content",
      "let me think", "content", answer, "finish_reason", "stop");
  rec_arg r = {key, json_dumps(rec, JSON_COMPACT)};
  r1d_error err = {0};
  int rc = r1d_db_write(l->db, put_rec, &r, &err);
  if (rc) fail_msg("put: %s", err.msg);
  free(r.json);
  json_decref(rec);
}

static void feedback(log_ctx *l, const char *id, const char *body_fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, body_fmt);
  vsnprintf(buf, sizeof buf, body_fmt, ap);
  va_end(ap);
  json_t *body = json_loads(buf, 0, NULL);
  assert_non_null(body);
  json_object_set_new(body, "id", json_string(id));
  json_t *fb = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_feedback_normalize(body, &fb, &err), 0);
  assert_int_equal(r1d_db_write(l->db, put_fb, fb, &err), 0);
  json_decref(fb);
  json_decref(body);
}

static const char *str(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

/* The pair with these texts, or NULL. */
static json_t *find(json_t *pairs, const char *chosen, const char *rejected) {
  size_t i;
  json_t *p;
  json_array_foreach(pairs, i, p) {
    if (!strcmp(str(p, "chosen"), chosen) &&
        !strcmp(str(p, "rejected"), rejected))
      return p;
  }
  return NULL;
}

static void test_pairs(void **state) {
  fixture *f = *state;
  log_ctx l = {open_db(f, 0, 0), (r1d_now_ms() << 16)};
  char a[R1D_RESPONSE_ID_MAX], b[R1D_RESPONSE_ID_MAX], c[R1D_RESPONSE_ID_MAX],
      d[R1D_RESPONSE_ID_MAX], e[R1D_RESPONSE_ID_MAX], x[R1D_RESPONSE_ID_MAX],
      y[R1D_RESPONSE_ID_MAX], z[R1D_RESPONSE_ID_MAX], w[R1D_RESPONSE_ID_MAX];
  /* (a) preferred */
  log_answer(&l, "Capital of France?", "Lyon", "chat.completion", "ok", a);
  feedback(&l, a, "{\"rating\": -1, \"preferred\": \"Paris\"}");
  /* (b) three answers to one prompt, rated 5, 1 (then 3: latest wins), 1;
   * a fourth unrated */
  log_answer(&l, "2+2?", "4", "chat.completion", "ok", b);
  log_answer(&l, "2+2?", "five", "chat.completion", "ok", c);
  log_answer(&l, "2+2?", "22", "chat.completion", "ok", d);
  log_answer(&l, "2+2?", "unrated", "chat.completion", "ok", e);
  feedback(&l, b, "{\"rating\": 5}");
  feedback(&l, c, "{\"rating\": 1}");
  feedback(&l, c, "{\"rating\": 3}");
  feedback(&l, d, "{\"rating\": 1, \"comment\": \"no\"}");
  /* (c) a lone rating; a comment alone; equal ratings; an error record and
   * a text completion with feedback */
  log_answer(&l, "Lone?", "yes", "chat.completion", "ok", x);
  feedback(&l, x, "{\"rating\": 1}");
  log_answer(&l, "Tie?", "one", "chat.completion", "ok", y);
  log_answer(&l, "Tie?", "two", "chat.completion", "ok", z);
  feedback(&l, y, "{\"rating\": 1, \"comment\": \"fine\"}");
  feedback(&l, z, "{\"rating\": 1}");
  log_answer(&l, "Broken?", "", "chat.completion", "error", w);
  feedback(&l, w, "{\"preferred\": \"something\"}");
  char t[R1D_RESPONSE_ID_MAX];
  log_answer(&l, "Text?", "abc", "text_completion", "ok", t);
  feedback(&l, t, "{\"preferred\": \"xyz\"}");
  /* a preferred text equal to the answer says nothing */
  char s[R1D_RESPONSE_ID_MAX];
  log_answer(&l, "Same?", "same", "chat.completion", "ok", s);
  feedback(&l, s, "{\"preferred\": \"same\"}");

  json_t *pairs = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_feedback_pairs_collect(l.db, 0, &pairs, &err), 0);
  assert_int_equal(json_array_size(pairs), 4);

  json_t *p = find(pairs, "Paris", "Lyon");
  assert_non_null(p);
  assert_string_equal(str(p, "source"), "preferred");
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(p, "ids"), 0)), a);
  json_t *prompt = json_object_get(p, "prompt");
  assert_int_equal(json_array_size(prompt), 3);
  assert_string_equal(str(json_array_get(prompt, 2), "content"),
                      "Capital of France?");
  assert_null(json_object_get(json_array_get(prompt, 1), "reasoning_content"));

  /* ratings 5 (b), 3 (c, latest), 1 (d): b>c, b>d, c>d; biggest gap first */
  json_t *bd = find(pairs, "4", "22"), *bc = find(pairs, "4", "five"),
         *cd = find(pairs, "five", "22");
  assert_non_null(bd);
  assert_non_null(bc);
  assert_non_null(cd);
  assert_string_equal(str(bd, "source"), "ratings");
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(bd, "ids"), 0)), b);
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(bd, "ids"), 1)), d);
  assert_int_equal(
      json_integer_value(json_array_get(json_object_get(bc, "ratings"), 1)), 3);
  assert_ptr_equal(json_array_get(pairs, 1), bd);
  /* the prompts of the same question are equal whatever the earlier turn's
   * reasoning was */
  assert_true(
      json_equal(json_object_get(bd, "prompt"), json_object_get(cd, "prompt")));
  assert_null(find(pairs, "4", "unrated"));
  json_decref(pairs);

  /* max_pairs */
  assert_int_equal(r1d_feedback_pairs_collect(l.db, 2, &pairs, &err), 0);
  assert_int_equal(json_array_size(pairs), 2);
  json_decref(pairs);
  r1d_db_close(l.db);
}

static void test_cap_and_empty(void **state) {
  fixture *f = *state;
  log_ctx l = {open_db(f, 0, 0), (r1d_now_ms() << 16)};
  json_t *pairs = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_feedback_pairs_collect(l.db, 0, &pairs, &err), 0);
  assert_int_equal(json_array_size(pairs), 0);
  json_decref(pairs);
  /* 12 answers with 12 ratings: 66 couples, capped per prompt */
  for (int i = 0; i < 12; i++) {
    char id[R1D_RESPONSE_ID_MAX], ans[32];
    snprintf(ans, sizeof ans, "answer %d", i);
    log_answer(&l, "Many?", ans, "chat.completion", "ok", id);
    feedback(&l, id, "{\"rating\": %g}", 1.0 + i / 3.0);
  }
  assert_int_equal(r1d_feedback_pairs_collect(l.db, 0, &pairs, &err), 0);
  assert_int_equal(json_array_size(pairs), R1D_FEEDBACK_PAIRS_PER_PROMPT);
  /* the most distant ratings come first */
  json_t *first = json_array_get(pairs, 0);
  assert_string_equal(str(first, "chosen"), "answer 11");
  assert_string_equal(str(first, "rejected"), "answer 0");
  json_decref(pairs);
  r1d_db_close(l.db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pairs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cap_and_empty, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

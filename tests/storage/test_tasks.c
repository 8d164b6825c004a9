/* test_tasks.c - rule-verifiable tasks: each checker type's validation (good
 * specs and every bad one with its message), the "checker": "math" form, the
 * normalised byte form, JSONL and single-object input, duplicate ids within
 * a batch and against the table, strict and non-strict stores, listing
 * (order, split, after, limit), get, delete, stats, and that a store retried
 * after an aborted transaction (what r1d_db_write does when the map fills)
 * reports and stores exactly what one try would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "storage/db.h"
#include "storage/tasks.h"

typedef struct fixture {
  char dir[64];
  r1d_db *db;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/r1d-test-tasks-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  r1d_db_options o = {.no_sync = 1};
  r1d_error err = {0};
  if (r1d_db_open(f->dir, &o, &f->db, &err)) {
    fprintf(stderr, "open: %s\n", err.msg);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  char cmd[128];
  r1d_db_close(f->db);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0) return -1;
  free(f);
  return 0;
}

/* ---- parsing and validation (no database) ---- */

static r1d_task_batch parse(const char *text) {
  r1d_task_batch b;
  r1d_error err = {0};
  assert_int_equal(r1d_tasks_parse(text, strlen(text), &b, &err), 0);
  return b;
}

/* One line that must normalise to exactly `want`. */
static void expect_json(const char *line, const char *want) {
  r1d_task_batch b = parse(line);
  if (b.n_errors) fprintf(stderr, "unexpected: %s\n", b.errors[0].msg);
  assert_int_equal(b.n_errors, 0);
  assert_int_equal(b.n, 1);
  assert_string_equal(b.tasks[0].json, want);
  assert_int_equal(b.tasks[0].len, strlen(want));
  r1d_task_batch_free(&b);
}

/* One line that must be refused with a message containing `want`. */
static void expect_error(const char *line, const char *want) {
  r1d_task_batch b = parse(line);
  assert_int_equal(b.n, 0);
  assert_int_equal(b.n_errors, 1);
  assert_int_equal(b.errors[0].line, 1);
  assert_int_equal(b.errors[0].code, R1D_EINVAL);
  if (!strstr(b.errors[0].msg, want))
    fail_msg("message \"%s\" lacks \"%s\"", b.errors[0].msg, want);
  r1d_task_batch_free(&b);
}

/* The defaults of a task that gives none of split, source, tags. */
#define TAIL_OPEN                                                              \
  ",\"split\":\"train\",\"source\":\"\",\"tags\":[],\"created\":5"
#define TAIL TAIL_OPEN "}"
#define MATH1 "\"checker\":{\"type\":\"math\",\"answer\":\"1\"}"

static void test_normalised_form(void **state) {
  (void)state;
  /* known keys first in a fixed order, checker fields too; other keys
   * after them in input order; escapes as jansson's; reals shortest */
  expect_json(
      "{\"zeta\": [1, 2.5, {\"b\": null}], \"created\": 7, \"tags\": [\"x\"],"
      " \"checker\": {\"tolerance\": 0.1, \"answer\": \"3\", \"type\": "
      "\"math\"}, \"source\": \"s\", \"split\": \"eval\", \"prompt\": "
      "\"caf\\u00e9\\n\\\"q\\\"\\u0001\\/\", \"id\": \"a-1\", \"alpha\": true}",
      "{\"id\":\"a-1\",\"prompt\":\"café\\n\\\"q\\\"\\u0001/\",\"checker\":{"
      "\"type\":\"math\",\"answer\":\"3\",\"tolerance\":0.1},\"split\":"
      "\"eval\",\"source\":\"s\",\"tags\":[\"x\"],\"created\":7,\"zeta\":[1,"
      "2.5,{\"b\":null}],\"alpha\":true}");
  expect_json("{\"id\":\"r\",\"prompt\":\"p\",\"checker\":{\"type\":\"math\","
              "\"answer\":\"1\",\"tolerance\":1e-06},\"created\":5,\"x\":[2.0,"
              "1e300,-0.30000000000000004,1.5e-300,1e3,1.5e16,1e17]}",
              "{\"id\":\"r\",\"prompt\":\"p\",\"checker\":{\"type\":\"math\","
              "\"answer\":\"1\",\"tolerance\":1e-6}" TAIL_OPEN
              ",\"x\":[2.0,1e300,-0.30000000000000004,1.5e-300,1000.0,"
              "15000000000000000.0,1e17]}");
  /* an extra key sits after created: the tail is not the last thing */
  r1d_task_batch b =
      parse("{\"id\":\"r\",\"prompt\":\"p\"," MATH1 ",\"created\":5,\"x\":1}");
  assert_string_equal(b.tasks[0].json,
                      "{\"id\":\"r\",\"prompt\":\"p\"," MATH1
                      ",\"split\":\"train\",\"source\":\"\",\"tags\":[],"
                      "\"created\":5,\"x\":1}");
  r1d_task_batch_free(&b);
  /* the normalised form normalises to itself */
  const char *canon = "{\"id\":\"m\",\"messages\":[{\"role\":\"system\","
                      "\"content\":\"be brief\"},{\"role\":\"user\","
                      "\"content\":\"2+2?\"}]," MATH1 TAIL;
  expect_json(canon, canon);
  expect_json("{\"messages\":[{\"content\":\"be brief\",\"role\":\"system\"},"
              "{\"content\":\"2+2?\",\"role\":\"user\"}],\"id\":\"m\","
              "\"created\":5," MATH1 "}",
              canon);
}

static void test_defaults_and_generated_id(void **state) {
  (void)state;
  long long t0 = (long long)time(NULL);
  r1d_task_batch b = parse("{\"prompt\":\"p\"," MATH1 "}");
  long long t1 = (long long)time(NULL);
  assert_int_equal(b.n, 1);
  assert_true(b.tasks[0].id_generated);
  assert_string_equal(b.tasks[0].id, "task-0000000000000000");
  json_t *v = json_loadb(b.tasks[0].json, b.tasks[0].len, 0, NULL);
  assert_non_null(v);
  long long created = json_integer_value(json_object_get(v, "created"));
  assert_true(created >= t0 && created <= t1);
  assert_string_equal(json_string_value(json_object_get(v, "split")), "train");
  assert_string_equal(json_string_value(json_object_get(v, "source")), "");
  assert_int_equal(json_array_size(json_object_get(v, "tags")), 0);
  assert_true(json_is_array(json_object_get(v, "tags")));
  json_decref(v);
  r1d_task_batch_free(&b);
}

static void test_math_checker(void **state) {
  (void)state;
  const char *pre = "{\"id\":\"a\",\"prompt\":\"p\",\"created\":5,";
  char in[512], want[512];
#define MATH_OK(checker_in, checker_out)                                       \
  do {                                                                         \
    snprintf(in, sizeof in, "%s\"checker\":%s}", pre, checker_in);             \
    snprintf(want, sizeof want,                                                \
             "{\"id\":\"a\",\"prompt\":\"p\",\"checker\":%s" TAIL,             \
             checker_out);                                                     \
    expect_json(in, want);                                                     \
  } while (0)
#define BAD(checker_in, message)                                               \
  do {                                                                         \
    snprintf(in, sizeof in, "%s\"checker\":%s}", pre, checker_in);             \
    expect_error(in, message);                                                 \
  } while (0)
  MATH_OK("{\"type\":\"math\",\"answer\":\"\\\\frac{1}{2}\"}",
          "{\"type\":\"math\",\"answer\":\"\\\\frac{1}{2}\"}");
  /* numbers become their JSON text */
  MATH_OK("{\"type\":\"math\",\"answer\":72}",
          "{\"type\":\"math\",\"answer\":\"72\"}");
  MATH_OK("{\"type\":\"math\",\"answer\":-2.50}",
          "{\"type\":\"math\",\"answer\":\"-2.5\"}");
  MATH_OK("{\"type\":\"math\",\"answer\":1e3}",
          "{\"type\":\"math\",\"answer\":\"1000\"}");
  MATH_OK("{\"answer\":\"3\",\"tolerance\":0,\"type\":\"math\"}",
          "{\"type\":\"math\",\"answer\":\"3\",\"tolerance\":0}");
  BAD("{\"type\":\"math\"}", "checker.answer is required for a math checker");
  BAD("{\"type\":\"math\",\"answer\":true}",
      "checker.answer: expected a string or a number, got a boolean");
  BAD("{\"type\":\"math\",\"answer\":\"\"}",
      "checker.answer: must not be empty");
  BAD("{\"type\":\"math\",\"answer\":\"1\",\"tolerance\":-0.5}",
      "checker.tolerance: expected a number >= 0, got a negative number");
  BAD("{\"type\":\"math\",\"answer\":\"1\",\"tolerance\":\"0.1\"}",
      "checker.tolerance: expected a number >= 0, got a string");
  BAD("{\"type\":\"math\",\"answer\":\"1\",\"tol\":1}",
      "checker: unknown field \"tol\" for a math checker (expected answer, "
      "tolerance)");
  BAD("{\"type\":\"mathh\",\"answer\":\"1\"}",
      "checker.type \"mathh\" is not one of math, countdown, exact, regex, "
      "code");
  BAD("{\"answer\":\"1\"}", "checker.type is required");
  BAD("{\"type\":3}", "checker.type: expected a string, got an integer");
  BAD("[\"math\"]", "checker: expected an object or a type name, got a list");

  /* exact */
  MATH_OK("{\"strip\":false,\"case_sensitive\":true,\"answer\":\"Paris\","
          "\"type\":\"exact\"}",
          "{\"type\":\"exact\",\"answer\":\"Paris\",\"case_sensitive\":true,"
          "\"strip\":false}");
  BAD("{\"type\":\"exact\"}", "checker.answer is required for an exact");
  BAD("{\"type\":\"exact\",\"answer\":4}",
      "checker.answer: expected a string, got an integer");
  BAD("{\"type\":\"exact\",\"answer\":\"a\",\"case_sensitive\":\"no\"}",
      "checker.case_sensitive: expected true or false, got a string");
  BAD("{\"type\":\"exact\",\"answer\":\"a\",\"strip\":1}",
      "checker.strip: expected true or false, got an integer");
  BAD("{\"type\":\"exact\",\"answer\":\"a\",\"tolerance\":1}",
      "checker: unknown field \"tolerance\" for an exact checker");

  /* regex: compiled with PCRE2, which names the problem and where */
  MATH_OK("{\"flags\":\"ix\",\"pattern\":\"^\\\\d+ (apples)?$\","
          "\"type\":\"regex\"}",
          "{\"type\":\"regex\",\"pattern\":\"^\\\\d+ (apples)?$\","
          "\"flags\":\"ix\"}");
  BAD("{\"type\":\"regex\",\"pattern\":\"a(b\"}",
      "checker.pattern: bad regex at offset 3: missing closing parenthesis");
  BAD("{\"type\":\"regex\",\"pattern\":\"a[\"}",
      "checker.pattern: bad regex at offset 2: missing terminating ]");
  BAD("{\"type\":\"regex\"}", "checker.pattern is required for a regex");
  BAD("{\"type\":\"regex\",\"pattern\":[]}",
      "checker.pattern: expected a string, got a list");
  BAD("{\"type\":\"regex\",\"pattern\":\"a\",\"flags\":\"iq\"}",
      "checker.flags: expected distinct letters of imsx, got \"iq\"");
  BAD("{\"type\":\"regex\",\"pattern\":\"a\",\"flags\":\"ii\"}",
      "checker.flags: expected distinct letters of imsx");
  /* the x flag changes what is valid: "a #(" is a comment under x */
  MATH_OK("{\"type\":\"regex\",\"pattern\":\"a #(\",\"flags\":\"x\"}",
          "{\"type\":\"regex\",\"pattern\":\"a #(\",\"flags\":\"x\"}");
  BAD("{\"type\":\"regex\",\"pattern\":\"a #(\"}", "bad regex at offset 4");

  /* countdown */
  MATH_OK("{\"target\":24,\"numbers\":[3,8,1,1],\"type\":\"countdown\","
          "\"answer\":\"3*8*1*1\"}",
          "{\"type\":\"countdown\",\"numbers\":[3,8,1,1],\"target\":24,"
          "\"answer\":\"3*8*1*1\"}");
  BAD("{\"type\":\"countdown\",\"numbers\":[],\"target\":1}",
      "checker.numbers: expected a list of 1 to 16 integers");
  BAD("{\"type\":\"countdown\",\"numbers\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,"
      "15,16,17],\"target\":1}",
      "checker.numbers: expected a list of 1 to 16 integers");
  BAD("{\"type\":\"countdown\",\"numbers\":[1,2.5],\"target\":1}",
      "checker.numbers: expected a list of 1 to 16 integers");
  BAD("{\"type\":\"countdown\",\"numbers\":[1,2]}",
      "checker.target is required for a countdown checker");
  BAD("{\"type\":\"countdown\",\"numbers\":[1,2],\"target\":3.5}",
      "checker.target: expected an integer, got a real number");
  BAD("{\"type\":\"countdown\",\"target\":3}",
      "checker.numbers is required for a countdown checker");
  BAD("{\"type\":\"countdown\",\"numbers\":[1],\"target\":1,\"answer\":1}",
      "checker.answer: expected a string, got an integer");

  /* code */
  MATH_OK("{\"time_limit_s\":2.5,\"tests\":[{\"output\":\"3\\n\",\"input\":"
          "\"1 2\\n\"}],\"language\":\"python\",\"type\":\"code\"}",
          "{\"type\":\"code\",\"language\":\"python\",\"tests\":[{\"input\":"
          "\"1 2\\n\",\"output\":\"3\\n\"}],\"time_limit_s\":2.5}");
  MATH_OK("{\"type\":\"code\",\"tests\":[{\"input\":\"\",\"output\":\"\"}],"
          "\"time_limit_s\":60}",
          "{\"type\":\"code\",\"tests\":[{\"input\":\"\",\"output\":\"\"}],"
          "\"time_limit_s\":60}");
  BAD("{\"type\":\"code\"}", "checker.tests is required for a code checker");
  BAD("{\"type\":\"code\",\"tests\":[]}",
      "checker.tests: expected a non-empty list of {\"input\", \"output\"}, "
      "got an empty list");
  BAD("{\"type\":\"code\",\"tests\":[{\"input\":\"1\"}]}",
      "checker.tests[0].output is required");
  BAD("{\"type\":\"code\",\"tests\":[{\"input\":\"1\",\"output\":\"1\"},"
      "{\"input\":1,\"output\":\"1\"}]}",
      "checker.tests[1].input: expected a string, got an integer");
  BAD("{\"type\":\"code\",\"tests\":[{\"input\":\"1\",\"output\":\"1\","
      "\"stdin\":\"\"}]}",
      "checker.tests[0]: unknown field \"stdin\" (expected input, output)");
  BAD("{\"type\":\"code\",\"tests\":[\"1\"]}",
      "checker.tests[0]: expected an object, got a string");
  BAD("{\"type\":\"code\",\"language\":\"js\",\"tests\":[{\"input\":\"\","
      "\"output\":\"\"}]}",
      "checker.language \"js\" is not supported (only python)");
  BAD("{\"type\":\"code\",\"tests\":[{\"input\":\"\",\"output\":\"\"}],"
      "\"time_limit_s\":0}",
      "checker.time_limit_s: expected a number in (0, 60]");
  BAD("{\"type\":\"code\",\"tests\":[{\"input\":\"\",\"output\":\"\"}],"
      "\"time_limit_s\":60.5}",
      "checker.time_limit_s: expected a number in (0, 60]");
#undef MATH_OK
#undef BAD
}

static void test_string_checker(void **state) {
  (void)state;
  /* GSM8K-shaped rows: the answer moves into the checker */
  expect_json("{\"id\":\"g\",\"prompt\":\"p\",\"answer\":72,\"checker\":"
              "\"math\",\"created\":5}",
              "{\"id\":\"g\",\"prompt\":\"p\",\"checker\":{\"type\":\"math\","
              "\"answer\":\"72\"}" TAIL);
  expect_json("{\"id\":\"g\",\"prompt\":\"p\",\"checker\":\"exact\","
              "\"answer\":\"x\",\"created\":5}",
              "{\"id\":\"g\",\"prompt\":\"p\",\"checker\":{\"type\":\"exact\","
              "\"answer\":\"x\"}" TAIL);
  expect_error("{\"id\":\"g\",\"prompt\":\"p\",\"checker\":\"math\"}",
               "answer is required with \"checker\": \"math\"");
  expect_error("{\"prompt\":\"p\",\"checker\":\"exact\",\"answer\":5}",
               "answer: expected a string, got an integer");
  expect_error("{\"prompt\":\"p\",\"checker\":\"regex\",\"answer\":\"5\"}",
               "answer: a regex checker takes no answer");
  expect_error("{\"prompt\":\"p\",\"checker\":\"regex\"}",
               "pattern is required with \"checker\": \"regex\"");
  expect_error("{\"prompt\":\"p\",\"checker\":\"mathh\",\"answer\":\"5\"}",
               "checker \"mathh\" is not one of math, countdown, exact, "
               "regex, code");
  /* with a checker object a top-level answer is ambiguous */
  expect_error("{\"prompt\":\"p\",\"checker\":{\"type\":\"math\",\"answer\":"
               "\"1\"},\"answer\":\"2\"}",
               "answer: a top-level answer goes with \"checker\": \"TYPE\"");
}

static void test_top_level_fields(void **state) {
  (void)state;
  expect_error("{\"id\":\"a/b\",\"prompt\":\"p\"," MATH1 "}",
               "id: expected 1 to 128 printable ASCII characters without "
               "'/' or whitespace");
  expect_error("{\"id\":\"a b\",\"prompt\":\"p\"," MATH1 "}", "id: expected");
  expect_error("{\"id\":\"\",\"prompt\":\"p\"," MATH1 "}", "id: expected");
  expect_error("{\"id\":\"caf\\u00e9\",\"prompt\":\"p\"," MATH1 "}",
               "id: expected");
  expect_error("{\"id\":7,\"prompt\":\"p\"," MATH1 "}",
               "id: expected a string, got an integer");
  char in[512];
  snprintf(in, sizeof in, "{\"id\":\"%0128d\",\"prompt\":\"p\"," MATH1 "}", 1);
  r1d_task_batch b = parse(in); /* 128 characters: the longest allowed */
  assert_int_equal(b.n, 1);
  assert_int_equal(strlen(b.tasks[0].id), 128);
  r1d_task_batch_free(&b);
  snprintf(in, sizeof in, "{\"id\":\"%0129d\",\"prompt\":\"p\"," MATH1 "}", 1);
  expect_error(in, "id: expected 1 to 128");

  expect_error("{\"prompt\":\"\"," MATH1 "}", "prompt: is empty");
  expect_error("{\"prompt\":[\"x\"]," MATH1 "}",
               "prompt: expected a string, got a list");
  expect_error("{" MATH1 "}", "prompt or messages is required");
  expect_error("{\"prompt\":\"p\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}]," MATH1 "}",
               "prompt and messages: give one, not both");
  expect_error("{\"messages\":[]," MATH1 "}",
               "messages: expected a non-empty list of {\"role\", "
               "\"content\"}, got an empty list");
  expect_error("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
               "{\"role\":\"tool\",\"content\":\"y\"}]," MATH1 "}",
               "messages[1].role \"tool\" is not one of system, user, "
               "assistant");
  expect_error("{\"messages\":[{\"role\":\"user\"}]," MATH1 "}",
               "messages[0].content is required");
  expect_error("{\"messages\":[{\"role\":\"user\",\"content\":3}]," MATH1 "}",
               "messages[0].content: expected a string, got an integer");
  expect_error("{\"messages\":[{\"content\":\"x\"}]," MATH1 "}",
               "messages[0].role is required");
  expect_error("{\"messages\":[{\"role\":\"user\",\"content\":\"x\","
               "\"name\":\"n\"}]," MATH1 "}",
               "messages[0]: unknown field \"name\" (expected role, content)");
  expect_error("{\"messages\":[\"hi\"]," MATH1 "}",
               "messages[0]: expected an object, got a string");
  expect_error("{\"prompt\":\"p\"}", "checker is required");

  expect_error("{\"prompt\":\"p\"," MATH1 ",\"split\":\"test\"}",
               "split \"test\" is not one of train, eval");
  expect_error("{\"prompt\":\"p\"," MATH1 ",\"split\":null}",
               "split: expected a string, got null");
  expect_error("{\"prompt\":\"p\"," MATH1 ",\"source\":1}",
               "source: expected a string, got an integer");
  expect_error("{\"prompt\":\"p\"," MATH1 ",\"tags\":\"a\"}",
               "tags: expected a list of strings, got a string");
  expect_error("{\"prompt\":\"p\"," MATH1 ",\"tags\":[\"a\",2]}",
               "tags[1]: expected a string, got an integer");
  expect_error("{\"prompt\":\"p\"," MATH1 ",\"created\":1.5e9}",
               "created: expected unix seconds (an integer >= 0), got a real "
               "number");
  expect_error("{\"prompt\":\"p\"," MATH1 ",\"created\":-1}",
               "created: expected unix seconds (an integer >= 0), got a "
               "negative one");

  expect_error("[1, 2]", "a task must be a JSON object, got a list");
  expect_error("{\"prompt\": \"p\",", "invalid JSON at column");
  expect_error("{\"prompt\":\"p\",\"prompt\":\"q\"," MATH1 "}",
               "duplicate object key");
}

static void test_size_limit(void **state) {
  (void)state;
  const size_t big = R1D_TASK_MAX_BYTES;
  const char *head = "{\"prompt\":\"", *tail = "\"," MATH1 "}";
  size_t nh = strlen(head), nt = strlen(tail);
  char *line = malloc(nh + big + nt + 1);
  assert_non_null(line);
  /* the line itself over the limit */
  memcpy(line, head, nh);
  /* a loop, not memset: GCC's -O1 bounds check misreads the offset there */
  for (size_t i = 0; i < big; i++)
    line[nh + i] = 'x';
  memcpy(line + nh + big, tail, nt + 1);
  expect_error(line, "over the 1 MiB limit");
  /* under the limit as input, but not once the defaults are added */
  size_t fill = big - nh - nt - 8;
  memcpy(line + nh + fill, tail, nt + 1);
  assert_true(strlen(line) <= big);
  expect_error(line, "bytes once normalised, over the 1 MiB limit");
  free(line);
}

static void test_jsonl_lines(void **state) {
  (void)state;
  const char *text = "\n"
                     "{\"id\":\"a\",\"prompt\":\"p\"," MATH1 "}\r\n"
                     "   \t\n"
                     "not json\n"
                     "{\"id\":\"b\",\"prompt\":\"p\"," MATH1 "}\n"
                     "{\"id\":\"c\",\"prompt\":\"p\",\"checker\":{\"type\":"
                     "\"nope\"}}\n"
                     "{\"id\":\"d\",\"prompt\":\"p\"," MATH1 "}";
  r1d_task_batch b = parse(text);
  assert_int_equal(b.n, 3);
  assert_string_equal(b.tasks[0].id, "a");
  assert_int_equal(b.tasks[0].line, 2);
  assert_string_equal(b.tasks[1].id, "b");
  assert_int_equal(b.tasks[1].line, 5);
  assert_string_equal(b.tasks[2].id, "d");
  assert_int_equal(b.tasks[2].line, 7);
  assert_int_equal(b.n_errors, 2);
  assert_int_equal(b.errors[0].line, 4);
  assert_non_null(strstr(b.errors[0].msg, "invalid JSON"));
  assert_int_equal(b.errors[1].line, 6);
  assert_non_null(strstr(b.errors[1].msg, "checker.type \"nope\""));
  r1d_task_batch_free(&b);

  /* one pretty-printed object, as the admin API may get it */
  b = parse("\n{\n  \"id\": \"one\",\n  \"prompt\": \"p\",\n  \"checker\": "
            "{\"type\": \"math\", \"answer\": \"1\"}\n}\n\n");
  assert_int_equal(b.n_errors, 0);
  assert_int_equal(b.n, 1);
  assert_string_equal(b.tasks[0].id, "one");
  assert_int_equal(b.tasks[0].line, 2);
  r1d_task_batch_free(&b);

  /* an unfinished first line that the rest does not complete: JSONL */
  b = parse("{\"id\":\"x\",\n{\"id\":\"y\",\"prompt\":\"p\"," MATH1 "}\n");
  assert_int_equal(b.n, 1);
  assert_string_equal(b.tasks[0].id, "y");
  assert_int_equal(b.n_errors, 1);
  assert_int_equal(b.errors[0].line, 1);
  r1d_task_batch_free(&b);

  b = parse("");
  assert_int_equal(b.n + b.n_errors, 0);
  r1d_task_batch_free(&b);
}

/* ---- the table ---- */

typedef struct store_call {
  r1d_task_batch *b;
  int strict;
  size_t stored;
  int fail_after; /* return this (non-zero) after storing: an aborted try */
} store_call;

static int store_fn(r1d_txn *t, void *arg, r1d_error *err) {
  store_call *c = arg;
  int rc = r1d_tasks_store(t, c->b, c->strict, &c->stored, err);
  return rc ? rc : c->fail_after;
}

/* Imports text; returns r1d_db_write's result, *b keeps the report. */
static int store_text(r1d_db *db, const char *text, int strict,
                      r1d_task_batch *b, size_t *stored) {
  r1d_error err = {0};
  return r1d_tasks_import(db, text, strlen(text), strict, b, stored, &err);
}

static void import_ok(r1d_db *db, const char *text, size_t want_stored) {
  r1d_task_batch b;
  size_t stored = 0;
  assert_int_equal(store_text(db, text, 0, &b, &stored), 0);
  for (size_t i = 0; i < b.n_errors; i++)
    fprintf(stderr, "line %zu: %s\n", b.errors[i].line, b.errors[i].msg);
  assert_int_equal(b.n_errors, 0);
  assert_int_equal(stored, want_stored);
  r1d_task_batch_free(&b);
}

typedef struct get_call {
  const char *id;
  char *json;
  int rc;
} get_call;

static int get_fn(r1d_txn *t, void *arg, r1d_error *err) {
  get_call *g = arg;
  g->rc = r1d_tasks_get(t, g->id, &g->json, err);
  return 0;
}

/* The stored JSON of id (malloc'ed), or NULL when there is none. */
static char *get_task(r1d_db *db, const char *id) {
  get_call g = {.id = id};
  r1d_error err = {0};
  assert_int_equal(r1d_db_read(db, get_fn, &g, &err), 0);
  if (g.rc == R1D_ENOTFOUND) {
    assert_non_null(strstr(err.msg, "no task with id"));
    return NULL;
  }
  assert_int_equal(g.rc, 0);
  return g.json;
}

typedef struct list_call {
  const char *split, *after;
  size_t limit;
  char ids[64][R1D_TASK_ID_MAX + 1];
  size_t n;
  int rc;
} list_call;

static int collect_id(void *arg, uint64_t key, const char *json, size_t len) {
  list_call *l = arg;
  assert_true(key != 0);
  json_t *v = json_loadb(json, len, 0, NULL);
  assert_non_null(v);
  assert_true(l->n < 64);
  snprintf(l->ids[l->n++], sizeof l->ids[0], "%s",
           json_string_value(json_object_get(v, "id")));
  json_decref(v);
  return 0;
}

static int list_fn(r1d_txn *t, void *arg, r1d_error *err) {
  list_call *l = arg;
  l->rc = r1d_tasks_list(t, l->split, l->after, l->limit, collect_id, l, err);
  return 0;
}

/* The ids listed, joined by spaces. */
static const char *list_ids(r1d_db *db, const char *split, const char *after,
                            size_t limit, char *out, size_t n) {
  list_call *l = calloc(1, sizeof *l);
  assert_non_null(l);
  l->split = split;
  l->after = after;
  l->limit = limit;
  r1d_error err = {0};
  assert_int_equal(r1d_db_read(db, list_fn, l, &err), 0);
  out[0] = '\0';
  if (l->rc) snprintf(out, n, "error %d", l->rc);
  for (size_t i = 0; !l->rc && i < l->n; i++) {
    if (i) strncat(out, " ", n - strlen(out) - 1);
    strncat(out, l->ids[i], n - strlen(out) - 1);
  }
  free(l);
  return out;
}

#define TASK(id, split)                                                        \
  "{\"id\":\"" id "\",\"prompt\":\"p\"," MATH1 ",\"split\":\"" split "\"}\n"

static void test_store_get_and_duplicates(void **state) {
  fixture *f = *state;
  import_ok(f->db, TASK("a", "train") TASK("b", "eval"), 2);
  char *a = get_task(f->db, "a");
  assert_non_null(a);
  assert_non_null(strstr(a, "{\"id\":\"a\",\"prompt\":\"p\","));
  free(a);
  assert_null(get_task(f->db, "zz"));

  /* duplicates within the batch and against the table, not strict: the
   * rest is stored, each duplicate reported on its line */
  r1d_task_batch b;
  size_t stored = 9;
  assert_int_equal(store_text(f->db,
                              TASK("c", "train") TASK("a", "train") "\n" TASK(
                                  "c", "eval") "bad\n" TASK("d", "train"),
                              0, &b, &stored),
                   0);
  assert_int_equal(stored, 2);
  assert_int_equal(b.n_errors, 3);
  assert_int_equal(b.errors[0].line, 2);
  assert_int_equal(b.errors[0].code, R1D_EEXIST);
  assert_string_equal(b.errors[0].msg, "id \"a\" is already stored");
  assert_int_equal(b.errors[1].line, 4);
  assert_string_equal(b.errors[1].msg, "duplicate id \"c\" (first on line 1)");
  assert_int_equal(b.errors[2].line, 5);
  assert_int_equal(b.errors[2].code, R1D_EINVAL);
  assert_true(b.tasks[0].key != 0);             /* c */
  assert_true(b.tasks[1].key == 0);             /* a, taken */
  assert_true(b.tasks[2].key == 0);             /* c again */
  assert_true(b.tasks[3].key > b.tasks[0].key); /* d after c */
  r1d_task_batch_free(&b);
  char ids[256];
  assert_string_equal(list_ids(f->db, NULL, NULL, 0, ids, sizeof ids),
                      "a b c d");
  /* the second c was not stored: c is still the train one */
  char *c = get_task(f->db, "c");
  assert_non_null(strstr(c, "\"split\":\"train\""));
  free(c);
}

static void test_strict(void **state) {
  fixture *f = *state;
  import_ok(f->db, TASK("a", "train"), 1);
  r1d_task_batch b;
  size_t stored = 9;
  r1d_error err = {0};
  /* a duplicate alone refuses the batch */
  const char *dup = TASK("x", "train") TASK("a", "eval");
  assert_int_equal(
      r1d_tasks_import(f->db, dup, strlen(dup), 1, &b, &stored, &err),
      R1D_EINVAL);
  assert_int_equal(stored, 0);
  assert_int_equal(b.n_errors, 1);
  assert_true(b.tasks[0].key == 0);
  assert_string_equal(err.msg,
                      "line 2: id \"a\" is already stored; nothing stored");
  r1d_task_batch_free(&b);
  /* so does a bad line; every error is still reported */
  const char *bad = TASK("y", "train") "{\n" TASK("a", "eval");
  assert_int_equal(
      r1d_tasks_import(f->db, bad, strlen(bad), 1, &b, &stored, &err),
      R1D_EINVAL);
  assert_int_equal(b.n_errors, 2);
  assert_int_equal(b.errors[0].line, 2);
  assert_int_equal(b.errors[1].line, 3);
  assert_non_null(strstr(err.msg, "line 2: invalid JSON"));
  assert_non_null(strstr(err.msg, "(and 1 more bad lines); nothing stored"));
  r1d_task_batch_free(&b);
  char ids[256];
  assert_string_equal(list_ids(f->db, NULL, NULL, 0, ids, sizeof ids), "a");
  /* a clean batch goes in whole */
  assert_int_equal(
      store_text(f->db, TASK("x", "train") TASK("y", "eval"), 1, &b, &stored),
      0);
  assert_int_equal(stored, 2);
  r1d_task_batch_free(&b);
  assert_string_equal(list_ids(f->db, NULL, NULL, 0, ids, sizeof ids), "a x y");
}

static void test_generated_ids(void **state) {
  fixture *f = *state;
  /* someone took the id the first generated task would get */
  r1d_task_batch b;
  size_t stored;
  const char *two =
      "{\"prompt\":\"p\"," MATH1 "}\n{\"prompt\":\"q\"," MATH1 "}\n";
  assert_int_equal(store_text(f->db, two, 0, &b, &stored), 0);
  assert_int_equal(stored, 2);
  for (size_t i = 0; i < 2; i++) {
    char want[64];
    snprintf(want, sizeof want, "task-%016llx",
             (unsigned long long)b.tasks[i].key);
    assert_string_equal(b.tasks[i].id, want);
    char *json = get_task(f->db, want);
    assert_non_null(json);
    assert_string_equal(json, b.tasks[i].json);
    assert_int_equal(strncmp(json, "{\"id\":\"task-", 12), 0);
    free(json);
  }
  assert_true(b.tasks[1].key > b.tasks[0].key);
  r1d_task_batch_free(&b);
}

/* r1d_db_write calls its fn again after growing the map: here the first
 * try is aborted by hand after r1d_tasks_store did all its work. The
 * second try must report the same errors once, hand out fresh keys and
 * store everything; the first try must leave no trace. */
static void test_store_retry_is_clean(void **state) {
  fixture *f = *state;
  import_ok(f->db, TASK("old", "train"), 1);
  const char *text = TASK("n1", "train") TASK("old", "eval")
      TASK("n1", "eval") "{\"prompt\":\"gen\"," MATH1 "}\n"
                         "oops\n";
  r1d_task_batch b;
  r1d_error err = {0};
  assert_int_equal(r1d_tasks_parse(text, strlen(text), &b, &err), 0);
  assert_int_equal(b.n, 4);
  assert_int_equal(b.n_errors, 1);
  store_call c = {.b = &b, .fail_after = R1D_EBUSY};
  assert_int_equal(r1d_db_write(f->db, store_fn, &c, &err), R1D_EBUSY);
  assert_int_equal(c.stored, 2);
  assert_int_equal(b.n_errors, 3);
  char first_gen[32];
  snprintf(first_gen, sizeof first_gen, "%s", b.tasks[3].id);
  char ids[256];
  assert_string_equal(list_ids(f->db, NULL, NULL, 0, ids, sizeof ids), "old");
  assert_null(get_task(f->db, first_gen));
  assert_null(get_task(f->db, "n1"));

  c.fail_after = 0;
  assert_int_equal(r1d_db_write(f->db, store_fn, &c, &err), 0);
  assert_int_equal(c.stored, 2);
  assert_int_equal(b.n_errors, 3); /* not 5: the first try's are gone */
  assert_int_equal(b.errors[0].line, 2);
  assert_int_equal(b.errors[1].line, 3);
  assert_int_equal(b.errors[2].line, 5);
  assert_string_equal(b.errors[2].msg,
                      "invalid JSON at column 4: invalid token near 'oops'");
  char want[64];
  snprintf(want, sizeof want, "task-%016llx",
           (unsigned long long)b.tasks[3].key);
  assert_string_equal(b.tasks[3].id, want);
  assert_int_equal(strncmp(b.tasks[3].json + 7, want, strlen(want)), 0);
  char expect[256];
  snprintf(expect, sizeof expect, "old n1 %s", want);
  assert_string_equal(list_ids(f->db, NULL, NULL, 0, ids, sizeof ids), expect);
  r1d_task_batch_free(&b);
}

/* The real thing: a map too small for the batch makes r1d_db_write grow it
 * and call r1d_tasks_store again, maybe several times. */
static void test_import_through_map_growth(void **state) {
  fixture *f = *state;
  r1d_db_close(f->db);
  r1d_db_options o = {.map_size = 256 << 10, .no_sync = 1};
  r1d_error err = {0};
  assert_int_equal(r1d_db_open(f->dir, &o, &f->db, &err), 0);
  r1d_buf text = {0};
  enum { N = 4000 };
  for (int i = 0; i < N; i++) {
    char line[256];
    int n = snprintf(line, sizeof line,
                     "%s{\"prompt\":\"question %d, padded to take room in "
                     "the map\"," MATH1 "}\n",
                     i % 10 == 0 ? "x\n" : "", i);
    assert_int_equal(r1d_buf_append(&text, line, (size_t)n), 0);
  }
  r1d_task_batch b;
  size_t stored = 0;
  assert_int_equal(
      r1d_tasks_import(f->db, text.p, text.n, 0, &b, &stored, &err), 0);
  assert_int_equal(stored, N);
  assert_int_equal(b.n_errors, N / 10);
  r1d_db_stats st;
  assert_int_equal(r1d_db_stat(f->db, &st, &err), 0);
  assert_true(st.map_size > (256 << 10)); /* it did grow */
  assert_int_equal(st.entries[R1D_T_TASKS], N);
  assert_int_equal(st.entries[R1D_T_TASK_IDS], N);
  for (size_t i = 1; i < b.n; i++)
    assert_true(b.tasks[i].key > b.tasks[i - 1].key);
  char *last = get_task(f->db, b.tasks[N - 1].id);
  assert_non_null(last);
  assert_string_equal(last, b.tasks[N - 1].json);
  free(last);
  r1d_task_batch_free(&b);
  r1d_buf_free(&text);
}

static void test_list(void **state) {
  fixture *f = *state;
  import_ok(f->db,
            TASK("t1", "train") TASK("e1", "eval") TASK("t2", "train")
                TASK("e2", "eval") TASK("t3", "train"),
            5);
  char ids[256];
  assert_string_equal(list_ids(f->db, NULL, NULL, 0, ids, sizeof ids),
                      "t1 e1 t2 e2 t3");
  assert_string_equal(list_ids(f->db, "train", NULL, 0, ids, sizeof ids),
                      "t1 t2 t3");
  assert_string_equal(list_ids(f->db, "eval", NULL, 0, ids, sizeof ids),
                      "e1 e2");
  assert_string_equal(list_ids(f->db, NULL, NULL, 2, ids, sizeof ids), "t1 e1");
  assert_string_equal(list_ids(f->db, NULL, "e1", 2, ids, sizeof ids), "t2 e2");
  /* after counts in the whole table, the split only filters */
  assert_string_equal(list_ids(f->db, "train", "e1", 0, ids, sizeof ids),
                      "t2 t3");
  assert_string_equal(list_ids(f->db, "train", "t2", 1, ids, sizeof ids), "t3");
  assert_string_equal(list_ids(f->db, NULL, "t3", 0, ids, sizeof ids), "");
  char want[32];
  snprintf(want, sizeof want, "error %d", R1D_ENOTFOUND);
  assert_string_equal(list_ids(f->db, NULL, "nope", 0, ids, sizeof ids), want);
  /* the split is read from its place in the stored form, not from text
   * that merely looks like it or from extra keys after it */
  import_ok(
      f->db,
      "{\"id\":\"trick\",\"prompt\":\"\\\",\\\"split\\\":\\\"eval\\\"\","
      "\"checker\":{\"type\":\"exact\",\"answer\":\",\\\"split\\\":\\\"eval\"},"
      "\"x\":{\"split\":\"eval\"}}\n",
      1);
  assert_string_equal(list_ids(f->db, "eval", NULL, 0, ids, sizeof ids),
                      "e1 e2");
  assert_string_equal(list_ids(f->db, "train", "t3", 0, ids, sizeof ids),
                      "trick");
  /* a later import lists after the earlier ones */
  import_ok(f->db, TASK("e0", "eval"), 1);
  assert_string_equal(list_ids(f->db, "eval", NULL, 0, ids, sizeof ids),
                      "e1 e2 e0");
  assert_string_equal(list_ids(f->db, NULL, "trick", 0, ids, sizeof ids), "e0");
}

typedef struct delete_call {
  const char *id;
  int rc;
} delete_call;

static int delete_fn(r1d_txn *t, void *arg, r1d_error *err) {
  delete_call *d = arg;
  d->rc = r1d_tasks_delete(t, d->id, err);
  return 0;
}

static int delete_task(r1d_db *db, const char *id) {
  delete_call d = {.id = id};
  r1d_error err = {0};
  assert_int_equal(r1d_db_write(db, delete_fn, &d, &err), 0);
  return d.rc;
}

static void test_delete(void **state) {
  fixture *f = *state;
  import_ok(f->db, TASK("a", "train") TASK("b", "train") TASK("c", "eval"), 3);
  assert_int_equal(delete_task(f->db, "b"), 0);
  assert_int_equal(delete_task(f->db, "b"), R1D_ENOTFOUND);
  assert_int_equal(delete_task(f->db, "never"), R1D_ENOTFOUND);
  assert_null(get_task(f->db, "b"));
  char ids[256];
  assert_string_equal(list_ids(f->db, NULL, NULL, 0, ids, sizeof ids), "a c");
  r1d_db_stats st;
  r1d_error err = {0};
  assert_int_equal(r1d_db_stat(f->db, &st, &err), 0);
  assert_int_equal(st.entries[R1D_T_TASKS], 2);
  assert_int_equal(st.entries[R1D_T_TASK_IDS], 2);
  /* the id is free again */
  import_ok(f->db, TASK("b", "eval"), 1);
  assert_string_equal(list_ids(f->db, NULL, NULL, 0, ids, sizeof ids), "a c b");
}

static int stats_fn(r1d_txn *t, void *arg, r1d_error *err) {
  return r1d_tasks_stats(t, (json_t **)arg, err);
}

static char *stats_text(r1d_db *db) {
  json_t *s = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_db_read(db, stats_fn, &s, &err), 0);
  char *text = json_dumps(s, JSON_COMPACT);
  json_decref(s);
  return text;
}

static void test_stats(void **state) {
  fixture *f = *state;
  char *s = stats_text(f->db);
  assert_string_equal(s, "{\"total\":0,\"by_split\":{\"train\":0,\"eval\":0},"
                         "\"by_checker\":{\"math\":0,\"countdown\":0,"
                         "\"exact\":0,\"regex\":0,\"code\":0},"
                         "\"by_source\":{}}");
  free(s);
  import_ok(f->db,
            "{\"prompt\":\"p\"," MATH1 ",\"source\":\"gsm8k\"}\n"
            "{\"prompt\":\"p\",\"checker\":{\"type\":\"exact\",\"answer\":"
            "\"x\"},\"split\":\"eval\",\"source\":\"gsm8k\"}\n"
            "{\"prompt\":\"p\",\"checker\":{\"type\":\"regex\",\"pattern\":"
            "\"x\"}}\n"
            "{\"prompt\":\"p\",\"checker\":\"math\",\"answer\":1,\"source\":"
            "\"cd\"}\n"
            /* escaped sources take the full parse; so does this prompt */
            "{\"prompt\":\"\\\",\\\"source\\\":\\\"fake\",\"checker\":\"math\","
            "\"answer\":1,\"source\":\"q\\\"s \\u00e9\"}\n"
            "{\"prompt\":\"p\",\"checker\":\"math\",\"answer\":1,\"source\":"
            "\"cd\",\"x\":{\"source\":\"no\"}}\n",
            6);
  s = stats_text(f->db);
  assert_string_equal(s, "{\"total\":6,\"by_split\":{\"train\":5,\"eval\":1},"
                         "\"by_checker\":{\"math\":4,\"countdown\":0,"
                         "\"exact\":1,\"regex\":1,\"code\":0},"
                         "\"by_source\":{\"gsm8k\":2,\"\":1,\"cd\":2,"
                         "\"q\\\"s é\":1}}");
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normalised_form),
      cmocka_unit_test(test_defaults_and_generated_id),
      cmocka_unit_test(test_math_checker),
      cmocka_unit_test(test_string_checker),
      cmocka_unit_test(test_top_level_fields),
      cmocka_unit_test(test_size_limit),
      cmocka_unit_test(test_jsonl_lines),
      cmocka_unit_test_setup_teardown(test_store_get_and_duplicates, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_strict, setup, teardown),
      cmocka_unit_test_setup_teardown(test_generated_ids, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_retry_is_clean, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_import_through_map_growth, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

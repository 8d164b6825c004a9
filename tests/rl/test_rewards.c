/* test_rewards.c - the reward of one completion (rl/rewards.h):
 *  - config defaults and r1d_reward_config_from_json, every error naming
 *    its field (rewards.X ...) and leaving the config untouched;
 *  - r1d_completion_split in both styles: well-formed thought and answer,
 *    two </think>, a second <think>, missing </think>, empty answer,
 *    text around <answer>, and the best-effort answer when malformed;
 *  - r1d_language_consistency on English, Chinese, mixed, Japanese,
 *    Cyrillic, Devanagari (marks), text with only math, invalid UTF-8;
 *  - the overlong penalty at its boundaries;
 *  - r1d_reward_compute: the weighted sum, strict format, checker errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl/rewards.h"

/* ---- configuration --------------------------------------------------- */

static void test_config_default(void **state) {
  (void)state;
  r1d_reward_config c;
  memset(&c, 0x5A, sizeof c);
  r1d_reward_config_default(&c);
  assert_true(c.w_accuracy == 1.0);
  assert_true(c.w_format == 0.0);
  assert_true(c.w_language == 0.0);
  assert_true(c.w_overlong == 0.0);
  assert_int_equal(c.style, R1D_ANSWER_AFTER_THINK);
  assert_string_equal(c.language, "latin");
  assert_int_equal(c.overlong_max_tokens, 0);
  assert_int_equal(c.overlong_buffer, 0);
  assert_int_equal(c.strict_format, 0);
}

static void test_config_from_json(void **state) {
  (void)state;
  r1d_reward_config c;
  r1d_reward_config_default(&c);
  r1d_error err = {0};
  json_t *j = json_loads(
      "{\"accuracy\": 2, \"format\": 0.5, \"language\": 0.1, "
      "\"language_target\": \"chinese\", \"answer_style\": \"tags\", "
      "\"overlong\": 1.5, \"overlong_max_tokens\": 4096, "
      "\"overlong_buffer\": 512, \"strict_format\": true}",
      0, NULL);
  assert_non_null(j);
  assert_int_equal(r1d_reward_config_from_json(j, &c, &err), 0);
  json_decref(j);
  assert_true(c.w_accuracy == 2.0);
  assert_true(c.w_format == 0.5);
  assert_true(c.w_language == 0.1);
  assert_string_equal(c.language, "han");
  assert_int_equal(c.style, R1D_ANSWER_TAGS);
  assert_true(c.w_overlong == 1.5);
  assert_int_equal(c.overlong_max_tokens, 4096);
  assert_int_equal(c.overlong_buffer, 512);
  assert_int_equal(c.strict_format, 1);
  /* absent keys keep their values */
  j = json_loads("{\"format\": 1, \"answer_style\": \"think\"}", 0, NULL);
  assert_int_equal(r1d_reward_config_from_json(j, &c, &err), 0);
  json_decref(j);
  assert_true(c.w_format == 1.0);
  assert_true(c.w_accuracy == 2.0);
  assert_int_equal(c.style, R1D_ANSWER_AFTER_THINK);
  assert_string_equal(c.language, "han");
  /* an empty object changes nothing */
  j = json_object();
  assert_int_equal(r1d_reward_config_from_json(j, &c, &err), 0);
  json_decref(j);
  assert_true(c.w_format == 1.0);
}

typedef struct bad_config {
  const char *json;
  const char *prefix; /* err.msg must start with it */
} bad_config;

static const bad_config bad_configs[] = {
    {"{\"format\": -1}", "rewards.format must be a number >= 0"},
    {"{\"format\": \"1\"}", "rewards.format must be a number >= 0"},
    {"{\"accuracy\": null}", "rewards.accuracy must be a number"},
    {"{\"language\": true}", "rewards.language must be a number"},
    {"{\"overlong\": -0.5}", "rewards.overlong must be a number"},
    {"{\"bogus\": 1}", "rewards.bogus is not a known key"},
    {"{\"format\": 1, \"Format\": 1}", "rewards.Format is not a known key"},
    {"{\"answer_style\": \"xml\"}", "rewards.answer_style must be"},
    {"{\"answer_style\": 1}", "rewards.answer_style must be"},
    {"{\"language_target\": \"klingon\"}", "rewards.language_target"},
    {"{\"language_target\": 3}", "rewards.language_target"},
    {"{\"strict_format\": 1}", "rewards.strict_format must be true or false"},
    {"{\"overlong_max_tokens\": -1}", "rewards.overlong_max_tokens must be"},
    {"{\"overlong_max_tokens\": 1.5}", "rewards.overlong_max_tokens must be"},
    {"{\"overlong_buffer\": \"10\"}", "rewards.overlong_buffer must be"},
    {"{\"overlong_max_tokens\": 50, \"overlong_buffer\": 100}",
     "rewards.overlong_buffer must be <= overlong_max_tokens"},
    {"[]", "rewards must be an object"},
};

static void test_config_errors(void **state) {
  (void)state;
  int bad = 0;
  for (size_t i = 0; i < sizeof bad_configs / sizeof *bad_configs; i++) {
    r1d_reward_config c;
    r1d_reward_config_default(&c);
    r1d_error err = {0};
    json_t *j = json_loads(bad_configs[i].json, 0, NULL);
    assert_non_null(j);
    int rc = r1d_reward_config_from_json(j, &c, &err);
    json_decref(j);
    const char *p = bad_configs[i].prefix;
    if (rc != R1D_EINVAL || strncmp(err.msg, p, strlen(p)) != 0) {
      print_message("config %s: rc %d, msg \"%s\", want prefix \"%s\"\n",
                    bad_configs[i].json, rc, err.msg, p);
      bad++;
    }
    /* a failed read leaves the config as it was */
    assert_true(c.w_format == 0.0 && c.w_accuracy == 1.0);
    assert_int_equal(c.overlong_buffer, 0);
  }
  assert_int_equal(bad, 0);
  /* the unknown key's message lists the known ones */
  r1d_reward_config c;
  r1d_reward_config_default(&c);
  r1d_error err = {0};
  json_t *j = json_loads("{\"langauge\": 1}", 0, NULL);
  assert_int_equal(r1d_reward_config_from_json(j, &c, &err), R1D_EINVAL);
  json_decref(j);
  assert_non_null(strstr(err.msg, "langauge"));
  assert_non_null(strstr(err.msg, "language_target"));
}

/* ---- splitting ------------------------------------------------------- */

typedef struct split_case {
  const char *completion;
  r1d_answer_style style;
  int prompt_in_think;
  int ok;
  const char *thought, *answer;
} split_case;

static const split_case split_cases[] = {
    /* R1 chat, the prompt ends inside <think> */
    {"reason</think>\n\nThe answer is 5.", R1D_ANSWER_AFTER_THINK, 1, 1,
     "reason", "The answer is 5."},
    {"\nreason\n</think>answer", R1D_ANSWER_AFTER_THINK, 1, 1, "reason",
     "answer"},
    {"reason</think>", R1D_ANSWER_AFTER_THINK, 1, 0, "reason", ""},
    {"reason</think>  \n\t", R1D_ANSWER_AFTER_THINK, 1, 0, "reason", ""},
    {"reason without end", R1D_ANSWER_AFTER_THINK, 1, 0, "reason without end",
     "reason without end"},
    {"a</think>b</think>c", R1D_ANSWER_AFTER_THINK, 1, 0, "a</think>b", "c"},
    {"<think>a</think>b", R1D_ANSWER_AFTER_THINK, 1, 0, "<think>a", "b"},
    {"a</think>b<think>c", R1D_ANSWER_AFTER_THINK, 1, 0, "a", "b<think>c"},
    {"</think>answer", R1D_ANSWER_AFTER_THINK, 1, 1, "", "answer"},
    /* the completion opens the thought itself */
    {"<think>r</think>a", R1D_ANSWER_AFTER_THINK, 0, 1, "r", "a"},
    {"  \n<think>\nr\n</think>\n\na\n", R1D_ANSWER_AFTER_THINK, 0, 1, "r", "a"},
    {"r</think>a", R1D_ANSWER_AFTER_THINK, 0, 0, "r", "a"},
    {"x <think>r</think>a", R1D_ANSWER_AFTER_THINK, 0, 0, "x <think>r", "a"},
    {"<think>a<think>b</think>c", R1D_ANSWER_AFTER_THINK, 0, 0, "a<think>b",
     "c"},
    {"<think>a</think>b<think>c</think>d", R1D_ANSWER_AFTER_THINK, 0, 0,
     "a</think>b<think>c", "d"},
    {"<think>r</think>", R1D_ANSWER_AFTER_THINK, 0, 0, "r", ""},
    {"", R1D_ANSWER_AFTER_THINK, 0, 0, "", ""},
    /* R1-Zero tags */
    {"<think>r</think> <answer>5</answer>", R1D_ANSWER_TAGS, 0, 1, "r", "5"},
    {"\n<think>r</think>\n<answer> 5 </answer>\n", R1D_ANSWER_TAGS, 0, 1, "r",
     "5"},
    {"<think>r</think> <answer></answer>", R1D_ANSWER_TAGS, 0, 0, "r", ""},
    {"<think>r</think> <answer> \n </answer>", R1D_ANSWER_TAGS, 0, 0, "r", ""},
    {"<think>r</think> so <answer>5</answer>", R1D_ANSWER_TAGS, 0, 0, "r", "5"},
    {"<think>r</think> <answer>5</answer> more", R1D_ANSWER_TAGS, 0, 0, "r",
     "5"},
    {"<think>r</think><answer>5</answer><answer>6</answer>", R1D_ANSWER_TAGS, 0,
     0, "r", "6"},
    {"<think>r</think> 5", R1D_ANSWER_TAGS, 0, 0, "r", "5"},
    {"<think>r</think> <answer>5", R1D_ANSWER_TAGS, 0, 0, "r", "<answer>5"},
    {"<think>r</think> </answer>5<answer>", R1D_ANSWER_TAGS, 0, 0, "r",
     "</answer>5<answer>"},
    {"<answer>5</answer>", R1D_ANSWER_TAGS, 0, 0, "<answer>5</answer>", "5"},
    {"<think>r <answer>4</answer></think> x", R1D_ANSWER_TAGS, 0, 0,
     "r <answer>4</answer>", "x"},
    {"r</think><answer>5</answer>", R1D_ANSWER_TAGS, 1, 1, "r", "5"},
};

static void test_split(void **state) {
  (void)state;
  int bad = 0;
  for (size_t i = 0; i < sizeof split_cases / sizeof *split_cases; i++) {
    const split_case *c = &split_cases[i];
    const char *t, *a;
    size_t tl, al;
    int ok = r1d_completion_split(c->completion, c->style, c->prompt_in_think,
                                  &t, &tl, &a, &al);
    int in_range = t >= c->completion && a >= c->completion &&
                   t + tl <= c->completion + strlen(c->completion) &&
                   a + al <= c->completion + strlen(c->completion);
    if (ok != c->ok || !in_range || tl != strlen(c->thought) ||
        memcmp(t, c->thought, tl) != 0 || al != strlen(c->answer) ||
        memcmp(a, c->answer, al) != 0) {
      print_message("split case %zu \"%s\": ok %d (want %d), thought \"%.*s\" "
                    "(want \"%s\"), answer \"%.*s\" (want \"%s\")\n",
                    i, c->completion, ok, c->ok, (int)tl, t, c->thought,
                    (int)al, a, c->answer);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
  const char *t, *a;
  size_t tl, al;
  assert_int_equal(
      r1d_completion_split(NULL, R1D_ANSWER_TAGS, 0, &t, &tl, &a, &al), 0);
  assert_int_equal(tl + al, 0);
}

/* ---- language consistency -------------------------------------------- */

typedef struct lang_case {
  const char *text, *script;
  double want;
} lang_case;

static const lang_case lang_cases[] = {
    {"Let me compute the sum of these numbers.", "latin", 1.0},
    {"Let me compute the sum of these numbers.", "han", 0.0},
    {"Let me compute the sum of these numbers.", "english", 1.0},
    {"\xe6\x88\x91\xe4\xbb\xac\xe5\x85\x88\xe8\xae\xa1\xe7\xae\x97", "han",
     1.0}, /* 我们先计算 */
    {"\xe6\x88\x91\xe4\xbb\xac\xe5\x85\x88\xe8\xae\xa1\xe7\xae\x97", "latin",
     0.0},
    /* 我们 compute 和: three Han words, one Latin */
    {"\xe6\x88\x91\xe4\xbb\xac compute \xe5\x92\x8c", "han", 0.75},
    {"\xe6\x88\x91\xe4\xbb\xac compute \xe5\x92\x8c", "latin", 0.25},
    {"\xe6\x88\x91\xe4\xbb\xac compute \xe5\x92\x8c", "chinese", 0.75},
    /* only math: no words */
    {"$x^2 + y^2 = \\frac{1}{2}$, 3 + 4 = 7", "latin", 1.0},
    {"$x^2 + y^2 = \\frac{1}{2}$, 3 + 4 = 7", "han", 1.0},
    {"\\frac{a}{b} \\sqrt{x} \\cdot \\alpha", "han", 1.0},
    {"", "han", 1.0},
    {"12345 !!! ...", "cyrillic", 1.0},
    /* \text{} content is language */
    {"\\text{hello} world", "latin", 1.0},
    {"\\text{hello} world", "han", 0.0},
    /* Cyrillic, Greek, Arabic, Hebrew, Hangul, Thai */
    {"\xd0\x94\xd0\xb0\xd0\xb2\xd0\xb0\xd0\xb9 \xd1\x81\xd1\x87\xd0\xb8"
     "\xd1\x82\xd0\xb0\xd1\x82\xd1\x8c",
     "cyrillic", 1.0}, /* Давай считать */
    {"\xd0\x94\xd0\xb0\xd0\xb2\xd0\xb0\xd0\xb9 so", "russian", 0.5},
    {"\xce\xb1\xce\xb2\xce\xb3 \xce\xb4\xce\xb5", "greek", 1.0},
    {"\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", "arabic", 1.0},
    {"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", "hebrew", 1.0},
    {"\xec\x95\x88\xeb\x85\x95 \xed\x95\x98\xec\x84\xb8\xec\x9a\x94", "hangul",
     1.0}, /* 안녕 하세요 */
    {"\xec\x95\x88\xeb\x85\x95 \xed\x95\x98\xec\x84\xb8\xec\x9a\x94", "korean",
     1.0},
    {"\xe0\xb8\xaa\xe0\xb8\xa7\xe0\xb8\xb1\xe0\xb8\xaa\xe0\xb8\x94\xe0\xb8\xb5",
     "thai", 1.0}, /* สวัสดี, with a combining vowel */
    /* Devanagari: vowel signs (marks) keep a word whole: नमस्ते दुनिया */
    {"\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87 "
     "\xe0\xa4\xa6\xe0\xa5\x81\xe0\xa4\xa8\xe0\xa4\xbf\xe0\xa4\xaf\xe0\xa4\xbe "
     "ok",
     "devanagari", 2.0 / 3.0},
    /* Japanese: これは (kana) 計 算 (Han) です (kana) */
    {"\xe3\x81\x93\xe3\x82\x8c\xe3\x81\xaf \xe8\xa8\x88\xe7\xae\x97 "
     "\xe3\x81\xa7\xe3\x81\x99",
     "japanese", 1.0},
    {"\xe3\x81\x93\xe3\x82\x8c\xe3\x81\xaf \xe8\xa8\x88\xe7\xae\x97 "
     "\xe3\x81\xa7\xe3\x81\x99",
     "han", 0.5},
    {"\xe3\x81\x93\xe3\x82\x8c\xe3\x81\xaf \xe8\xa8\x88\xe7\xae\x97 "
     "\xe3\x81\xa7\xe3\x81\x99",
     "kana", 0.5},
    /* a word goes to the script of most of its letters: abcд is Latin */
    {"abc\xd0\xb4", "latin", 1.0},
    {"a\xd0\xb4\xd0\xb4", "cyrillic", 1.0},
    /* invalid UTF-8 breaks words, nothing more */
    {"abc \xff\xfe def \xc3", "latin", 1.0},
    {"ab\xff\xd0\xb4\xd0\xb4", "latin", 0.5},
    /* single ASCII letters are math variables, not words */
    {"let x be y", "latin", 1.0},
    {"\xe8\xae\xbe x \xe4\xb8\xba y", "han", 1.0}, /* 设 x 为 y */
    /* an unknown target matches nothing */
    {"hello world", "klingon", 0.0},
    {"hello world", NULL, 0.0},
};

static void test_language(void **state) {
  (void)state;
  int bad = 0;
  for (size_t i = 0; i < sizeof lang_cases / sizeof *lang_cases; i++) {
    const lang_case *c = &lang_cases[i];
    double got = r1d_language_consistency(c->text, strlen(c->text), c->script);
    if (fabs(got - c->want) > 1e-12) {
      print_message("language case %zu \"%s\" (%s): %g, want %g\n", i, c->text,
                    c->script ? c->script : "NULL", got, c->want);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
  /* len bounds the text: only "hello" is read */
  assert_true(r1d_language_consistency("hello \xe4\xb8\xad", 5, "latin") ==
              1.0);
  assert_true(r1d_language_consistency(NULL, 0, "latin") == 1.0);
}

/* ---- overlong -------------------------------------------------------- */

static double overlong(size_t max, size_t buf, size_t n, int truncated) {
  r1d_reward_config c;
  r1d_reward_config_default(&c);
  c.w_accuracy = 0;
  c.w_overlong = 2.0;
  c.overlong_max_tokens = max;
  c.overlong_buffer = buf;
  json_t *chk = json_loads("{\"type\":\"exact\",\"answer\":\"a\"}", 0, NULL);
  r1d_completion_info info = {1, n, truncated};
  r1d_reward r;
  r1d_error err = {0};
  assert_int_equal(r1d_reward_compute(&c, chk, "t</think>a", &info, &r, &err),
                   0);
  json_decref(chk);
  assert_true(fabs(r.total - 2.0 * r.overlong) < 1e-12);
  return r.overlong;
}

static void test_overlong(void **state) {
  (void)state;
  assert_true(overlong(100, 20, 0, 0) == 0.0);
  assert_true(overlong(100, 20, 80, 0) == 0.0);
  assert_true(fabs(overlong(100, 20, 81, 0) - -0.05) < 1e-12);
  assert_true(fabs(overlong(100, 20, 90, 0) - -0.5) < 1e-12);
  assert_true(fabs(overlong(100, 20, 99, 0) - -0.95) < 1e-12);
  assert_true(overlong(100, 20, 100, 0) == -1.0);
  assert_true(overlong(100, 20, 101, 0) == -1.0);
  assert_true(overlong(100, 20, 50, 1) == -1.0);  /* truncated */
  assert_true(overlong(100, 100, 50, 0) == -0.5); /* buffer = max */
  assert_true(overlong(100, 0, 100, 1) == 0.0);   /* off */
  assert_true(overlong(0, 20, 100, 1) == 0.0);    /* off */
}

/* ---- the reward ------------------------------------------------------ */

static r1d_reward reward(const r1d_reward_config *c, const char *checker,
                         const char *completion, int prompt_in_think) {
  json_t *chk = json_loads(checker, 0, NULL);
  assert_non_null(chk);
  r1d_completion_info info = {prompt_in_think, 10, 0};
  r1d_reward r;
  r1d_error err = {0};
  int rc = r1d_reward_compute(c, chk, completion, &info, &r, &err);
  if (rc) print_message("reward: %s\n", err.msg);
  assert_int_equal(rc, 0);
  json_decref(chk);
  return r;
}

static void test_compute(void **state) {
  (void)state;
  const char *math = "{\"type\":\"math\",\"answer\":\"4\"}";
  r1d_reward_config c;
  r1d_reward_config_default(&c);
  c.w_format = 0.5;
  c.w_language = 0.25;
  r1d_reward r = reward(&c, math, "<think>2+2 is four</think>\\boxed{4}", 0);
  assert_int_equal(r.correct, 1);
  assert_int_equal(r.format_ok, 1);
  assert_true(r.accuracy == 1.0 && r.format == 1.0 && r.language == 1.0);
  assert_true(r.overlong == 0.0);
  assert_true(fabs(r.total - 1.75) < 1e-12);
  assert_non_null(strstr(r.verdict.detail, "4 == 4"));
  /* wrong answer, good format */
  r = reward(&c, math, "<think>hmm</think>\\boxed{5}", 0);
  assert_int_equal(r.correct, 0);
  assert_true(fabs(r.total - 0.75) < 1e-12);
  /* the thought's \boxed does not count: the answer is after </think> */
  r = reward(&c, math, "<think>\\boxed{4}</think>so 5", 0);
  assert_int_equal(r.correct, 0);
  /* Chinese thought against a Latin target */
  r = reward(&c, math,
             "<think>\xe6\x88\x91\xe4\xbb\xac\xe7\xae\x97</think>\\boxed{4}",
             0);
  assert_true(r.language == 0.0);
  assert_true(fabs(r.total - 1.5) < 1e-12);
  /* malformed: no </think>; the whole completion is the answer */
  r = reward(&c, math, "no thought at all \\boxed{4}", 1);
  assert_int_equal(r.format_ok, 0);
  assert_int_equal(r.correct, 1);
  assert_true(r.accuracy == 1.0 && r.format == 0.0);
  /* strict format: the same answer scores 0, the verdict stays */
  c.strict_format = 1;
  r = reward(&c, math, "no thought at all \\boxed{4}", 1);
  assert_int_equal(r.correct, 1);
  assert_true(r.accuracy == 0.0);
  assert_true(fabs(r.total - 0.25 * r.language) < 1e-12);
  r = reward(&c, math, "fine</think>\\boxed{4}", 1);
  assert_true(r.accuracy == 1.0);
  /* tags style with a countdown task */
  c.style = R1D_ANSWER_TAGS;
  c.strict_format = 0;
  const char *cd = "{\"type\":\"countdown\",\"numbers\":[2,3,4],"
                   "\"target\":14}";
  r = reward(&c, cd, "<think>try</think>\n<answer>2*(3+4)</answer>", 0);
  assert_int_equal(r.correct, 1);
  assert_int_equal(r.format_ok, 1);
  r = reward(&c, cd, "<think>try</think>\n<answer>2*(3+4) </answer> bye", 0);
  assert_int_equal(r.correct, 1);
  assert_int_equal(r.format_ok, 0);
  /* a partial-score checker would pass its score through: exact is 0/1 */
  r = reward(&c, "{\"type\":\"exact\",\"answer\":\"yes\"}",
             "<think>t</think><answer>no</answer>", 0);
  assert_true(r.accuracy == 0.0 && r.verdict.score == 0.0);
}

static void test_compute_errors(void **state) {
  (void)state;
  r1d_reward_config c;
  r1d_reward_config_default(&c);
  r1d_reward r;
  r1d_error err = {0};
  json_t *chk = json_loads("{\"type\":\"nope\"}", 0, NULL);
  assert_int_equal(r1d_reward_compute(&c, chk, "a</think>b", NULL, &r, &err),
                   R1D_EINVAL);
  assert_non_null(strstr(err.msg, "checker.type"));
  json_decref(chk);
  /* no checker: a general prompt (alignment RL): no accuracy term, the
   * rest still scored */
  c.w_format = 0.5;
  r1d_completion_info in_think = {1, 3, 0};
  assert_int_equal(
      r1d_reward_compute(&c, NULL, "a</think>b", &in_think, &r, &err), 0);
  assert_int_equal(r.correct, 0);
  assert_true(r.accuracy == 0.0 && r.format_ok == 1 && r.total == 0.5);
  c.w_format = 0.0;
  chk = json_loads("{\"type\":\"exact\",\"answer\":\"b\"}", 0, NULL);
  assert_int_equal(r1d_reward_compute(&c, chk, "a</think>b", NULL, &r, &err),
                   0);
  assert_int_equal(r.correct, 1);
  assert_int_equal(r.format_ok, 0); /* no info: prompt_in_think = 0 */
  assert_int_equal(r1d_reward_compute(&c, chk, NULL, NULL, &r, &err), 0);
  assert_int_equal(r.correct, 0);
  assert_int_equal(r1d_reward_compute(NULL, chk, "x", NULL, &r, &err),
                   R1D_EINVAL);
  json_decref(chk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_default),
      cmocka_unit_test(test_config_from_json),
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_split),
      cmocka_unit_test(test_language),
      cmocka_unit_test(test_overlong),
      cmocka_unit_test(test_compute),
      cmocka_unit_test(test_compute_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

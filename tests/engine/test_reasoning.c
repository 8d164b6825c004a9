/* test_reasoning.c - the <think> splitter: prompts that open a thought, the
 * R1 pattern split into two and three pieces at every point, the end tag by
 * token id with the real Qwen3 tokenizer and r1d's own, by text with
 * DeepSeek-V3's (no single "</think>" token), cuts inside the thought,
 * partial tags that are not tags, a model-opened "<think>", plain content,
 * reasoning token counts, and a seeded property test: random re-chunkings of
 * random texts give what a whole-text reference split gives. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the four headers it needs */

#include "common/rng.h"
#include "engine/model/config.h"
#include "engine/model/init.h"
#include "engine/serve/detok.h"
#include "engine/text/reasoning.h"
#include "engine/text/tokenizer.h"

/* What one choice produced. */
typedef struct result {
  r1d_buf reasoning, content;
  int tokens, in_thought;
} result;

static void result_free(result *res) {
  r1d_buf_free(&res->reasoning);
  r1d_buf_free(&res->content);
}

static void assert_buf(const r1d_buf *b, const char *want) {
  size_t n = strlen(want);
  if (b->n != n || (n && memcmp(b->p, want, n) != 0))
    fail_msg("got \"%.*s\" (%zu bytes), want \"%s\" (%zu bytes)", (int)b->n,
             b->n ? b->p : "", b->n, want, n);
}

/* Feeds text cut at cuts[0..n_cuts) (ascending, may repeat: empty pieces)
 * without a tokenizer; the last piece is final. Returns the outputs. */
static result run_cuts(const char *text, const size_t *cuts, int n_cuts,
                       int start) {
  result res = {0};
  r1d_reasoning r;
  assert_int_equal(r1d_reasoning_init(&r, NULL, start, NULL), 0);
  size_t len = strlen(text), from = 0;
  for (int i = 0; i <= n_cuts; i++) {
    size_t to = i < n_cuts ? cuts[i] : len;
    assert_int_equal(r1d_reasoning_push(&r, 7, text + from, to - from,
                                        i == n_cuts, &res.reasoning,
                                        &res.content),
                     0);
    from = to;
  }
  assert_int_equal(r.hold.n, 0); /* final released everything */
  res.tokens = r1d_reasoning_tokens(&r);
  res.in_thought = r1d_reasoning_in_thought(&r);
  r1d_reasoning_free(&r);
  return res;
}

static void check_cuts(const char *text, const size_t *cuts, int n_cuts,
                       int start, const char *want_r, const char *want_c) {
  result res = run_cuts(text, cuts, n_cuts, start);
  assert_buf(&res.reasoning, want_r);
  assert_buf(&res.content, want_c);
  result_free(&res);
}

/* Every split of text into two and into three pieces. */
static void check_all_splits(const char *text, int start, const char *want_r,
                             const char *want_c) {
  size_t n = strlen(text);
  for (size_t i = 0; i <= n; i++) {
    check_cuts(text, &i, 1, start, want_r, want_c);
    for (size_t j = i; j <= n; j++) {
      size_t cuts[2] = {i, j};
      check_cuts(text, cuts, 2, start, want_r, want_c);
    }
  }
}

static void test_prompt_opens(void **state) {
  (void)state;
  const char *yes[] = {
      "<｜User｜>hi<｜Assistant｜><think>\n",
      "<think>",
      "<think>a</think>b<think>c",
      "</think><think>",
  };
  const char *no[] = {
      "",         "plain prompt", "<think>a</think>", "<think>a</think>\n\nb",
      "</think>", "<think",       "<thinking>",       "<think></think>",
  };
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
    assert_int_equal(r1d_reasoning_prompt_opens(yes[i], strlen(yes[i])), 1);
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    assert_int_equal(r1d_reasoning_prompt_opens(no[i], strlen(no[i])), 0);
  /* the length bounds the search: the tag after len is not seen */
  const char *p = "<think>x</think>";
  assert_int_equal(r1d_reasoning_prompt_opens(p, 8), 1);
}

/* The R1 pattern: the prompt opened the thought, the model closes it and
 * writes "\n\n" before the answer; UTF-8 both sides of the tag. */
static void test_r1_pattern_splits(void **state) {
  (void)state;
  check_all_splits("Okay, 2+2 é 思.\nSo 4🙂</think>\n\nThe answer: 4 ✓.",
                   1, "Okay, 2+2 é 思.\nSo 4🙂", "The answer: 4 ✓.");
  /* CRLF, and newlines inside the answer are kept */
  check_all_splits("x</think>\r\n\r\nA\n\nB\n", 1, "x", "A\n\nB\n");
  /* an empty thought and an empty answer */
  check_all_splits("</think>\n\n", 1, "", "");
  /* a second end tag is answer text */
  check_all_splits("t</think>a</think>b", 1, "t", "a</think>b");
}

static void test_model_opened(void **state) {
  (void)state;
  check_all_splits(" \n\t<think>\nhmm é</think>\n\nans 🙂", 0, "\nhmm é",
                   "ans 🙂");
  check_all_splits("<think>x</think>y", 0, "x", "y");
  /* whitespace before text that is not the tag stays content */
  check_all_splits("  \n<thin k>", 0, "", "  \n<thin k>");
  check_all_splits("  hi <think>x</think>", 0, "", "  hi <think>x</think>");
  /* only whitespace: released as content by final */
  check_all_splits(" \n ", 0, "", " \n ");
  /* a model-opened thought cut before its end */
  check_all_splits("\n<think>still thinking</thi", 0, "still thinking</thi",
                   "");
}

static void test_cut_inside_thought(void **state) {
  (void)state;
  /* final releases a held partial tag into reasoning; content stays empty */
  size_t cut = 7;
  result res = run_cuts("abc</th", &cut, 1, 1); /* last piece empty, final */
  assert_buf(&res.reasoning, "abc</th");
  assert_buf(&res.content, "");
  assert_int_equal(res.in_thought, 1);
  result_free(&res);
  check_all_splits("still thinking about </think", 1,
                   "still thinking about </think", "");

  /* a partial tag is held back until the next piece decides */
  r1d_reasoning r;
  r1d_buf rs = {0}, cs = {0};
  assert_int_equal(r1d_reasoning_init(&r, NULL, 1, NULL), 0);
  assert_int_equal(r1d_reasoning_push(&r, 1, "abc</th", 7, 0, &rs, &cs), 0);
  assert_buf(&rs, "abc");
  assert_int_equal(r.hold.n, 4);
  assert_int_equal(r1d_reasoning_push(&r, 2, "ink", 3, 0, &rs, &cs), 0);
  assert_buf(&rs, "abc");
  assert_int_equal(r1d_reasoning_push(&r, 3, ">\n", 2, 0, &rs, &cs), 0);
  assert_buf(&rs, "abc");
  assert_buf(&cs, "");
  assert_int_equal(r1d_reasoning_in_thought(&r), 0);
  assert_int_equal(r1d_reasoning_push(&r, 4, "\nA", 2, 1, &rs, &cs), 0);
  assert_buf(&cs, "A");
  r1d_reasoning_free(&r);
  r1d_buf_free(&rs);
  r1d_buf_free(&cs);
}

static void test_partial_not_tag(void **state) {
  (void)state;
  check_all_splits("x</thinking>y", 1, "x</thinking>y", "");
  check_all_splits("x</th", 1, "x</th", "");
  check_all_splits("a</th</think>b", 1, "a</th", "b");
  check_all_splits("<</think>b", 1, "<", "b");
  check_all_splits("<thin"
                   "g",
                   0, "", "<thing");
  check_all_splits("<<think>", 0, "", "<<think>");

  /* released as soon as the next piece shows it is no tag */
  r1d_reasoning r;
  r1d_buf rs = {0}, cs = {0};
  assert_int_equal(r1d_reasoning_init(&r, NULL, 1, NULL), 0);
  assert_int_equal(r1d_reasoning_push(&r, 1, "</th", 4, 0, &rs, &cs), 0);
  assert_buf(&rs, "");
  assert_int_equal(r1d_reasoning_push(&r, 2, "e", 1, 0, &rs, &cs), 0);
  assert_buf(&rs, "</the");
  assert_int_equal(r.hold.n, 0);
  r1d_reasoning_free(&r);
  r1d_buf_free(&rs);
  r1d_buf_free(&cs);

  assert_int_equal(r1d_reasoning_init(&r, NULL, 0, NULL), 0);
  assert_int_equal(r1d_reasoning_push(&r, 1, "<thin", 5, 0, &rs, &cs), 0);
  assert_buf(&cs, "");
  assert_int_equal(r1d_reasoning_push(&r, 2, "g", 1, 0, &rs, &cs), 0);
  assert_buf(&cs, "<thing");
  assert_buf(&rs, "");
  r1d_reasoning_free(&r);
  r1d_buf_free(&rs);
  r1d_buf_free(&cs);
}

static void test_no_tags(void **state) {
  (void)state;
  check_all_splits("Hello, world é\n", 0, "", "Hello, world é\n");
  check_all_splits("Hello, world é\n", 1, "Hello, world é\n", "");
  /* content streams at once: nothing is held back after the start */
  r1d_reasoning r;
  r1d_buf rs = {0}, cs = {0};
  assert_int_equal(r1d_reasoning_init(&r, NULL, 0, NULL), 0);
  assert_int_equal(r1d_reasoning_push(&r, 1, "Hi </think", 10, 0, &rs, &cs), 0);
  assert_buf(&cs, "Hi </think");
  assert_int_equal(r1d_reasoning_tokens(&r), 0);
  r1d_reasoning_free(&r);
  r1d_buf_free(&rs);
  r1d_buf_free(&cs);
}

/* Pushes pieces[0..n), each one token, the last final. */
static result run_pieces(const char *const *pieces, int n, int start) {
  result res = {0};
  r1d_reasoning r;
  assert_int_equal(r1d_reasoning_init(&r, NULL, start, NULL), 0);
  for (int i = 0; i < n; i++)
    assert_int_equal(r1d_reasoning_push(&r, i, pieces[i], strlen(pieces[i]),
                                        i == n - 1, &res.reasoning,
                                        &res.content),
                     0);
  res.tokens = r1d_reasoning_tokens(&r);
  res.in_thought = r1d_reasoning_in_thought(&r);
  r1d_reasoning_free(&r);
  return res;
}

static void test_token_count(void **state) {
  (void)state;
  /* the tag spread over tokens: every token pushed in the thought counts */
  const char *a[] = {"a", "b", "</", "think", ">\n\n", "c", "d"};
  result res = run_pieces(a, 7, 1);
  assert_int_equal(res.tokens, 5);
  assert_buf(&res.reasoning, "ab");
  assert_buf(&res.content, "cd");
  result_free(&res);
  /* a model-opened thought: the "<think>" token counts, "\n" before not */
  const char *b[] = {"\n", "<think>", "x", "y", "</think>", "\n\n", "z"};
  res = run_pieces(b, 7, 0);
  assert_int_equal(res.tokens, 4);
  assert_buf(&res.reasoning, "xy");
  assert_buf(&res.content, "z");
  result_free(&res);
  /* cut inside the thought: all tokens */
  const char *c[] = {"x", "y", "</thi"};
  res = run_pieces(c, 3, 1);
  assert_int_equal(res.tokens, 3);
  assert_int_equal(res.in_thought, 1);
  result_free(&res);
  /* plain content: none */
  const char *d[] = {"x", "y"};
  res = run_pieces(d, 2, 0);
  assert_int_equal(res.tokens, 0);
  result_free(&res);
}

/* ---- real tokenizers ---- */

static r1d_tokenizer *load_shared(const char *name) {
  char path[1024];
  const char *root = getenv("R1D_SHARED");
  snprintf(path, sizeof path, "%s/fixtures/tokenizers/%s/tokenizer.json",
           root ? root : "../shared", name);
  r1d_tokenizer *t = NULL;
  r1d_error err = {0};
  if (r1d_tokenizer_load(path, &t, &err)) fail_msg("%s", err.msg);
  return t;
}

/* Runs ids through detok (no stop strings, special text hidden) and the
 * splitter, as a server's choice does. */
static result run_ids(const r1d_tokenizer *tok, const int32_t *ids, size_t n,
                      int start) {
  result res = {0};
  r1d_detok d;
  r1d_reasoning r;
  assert_int_equal(r1d_detok_init(&d, tok, NULL, 0, 0, NULL), 0);
  assert_int_equal(r1d_reasoning_init(&r, tok, start, NULL), 0);
  for (size_t i = 0; i < n; i++) {
    char *piece = NULL;
    size_t len = 0;
    int final = i + 1 == n;
    assert_int_equal(r1d_detok_push(&d, ids[i], 0, final, &piece, &len), 0);
    assert_int_equal(r1d_reasoning_push(&r, ids[i], piece, len, final,
                                        &res.reasoning, &res.content),
                     0);
    free(piece);
  }
  res.tokens = r1d_reasoning_tokens(&r);
  res.in_thought = r1d_reasoning_in_thought(&r);
  r1d_reasoning_free(&r);
  r1d_detok_free(&d);
  return res;
}

static void encode(const r1d_tokenizer *tok, const char *text, r1d_ids *ids) {
  r1d_error err = {0};
  if (r1d_tokenizer_encode(tok, text, strlen(text), ids, &err))
    fail_msg("%s", err.msg);
}

static int count_id(const r1d_ids *ids, int32_t id, size_t *last) {
  int c = 0;
  for (size_t i = 0; i < ids->n; i++)
    if (ids->v[i] == id) {
      c++;
      *last = i;
    }
  return c;
}

static const char r1_text[] =
    "Okay, the user asks 2+2. 思考: 四 é🙂.\nSo "
    "4.</think>\n\nThe answer is "
    "**4**.";
static const char r1_reasoning[] =
    "Okay, the user asks 2+2. 思考: 四 é🙂.\nSo 4.";
static const char r1_content[] = "The answer is **4**.";

/* A tokenizer with "</think>" as one token: the R1 text encoded, detok'ed
 * and split; the count is the tokens up to and including the tag's. */
static void check_by_id(const r1d_tokenizer *tok) {
  r1d_reasoning r;
  assert_int_equal(r1d_reasoning_init(&r, tok, 1, NULL), 0);
  int32_t end = r.end_id;
  r1d_reasoning_free(&r);
  assert_true(end >= 0);
  assert_int_equal(end, r1d_tokenizer_token_to_id(tok, "</think>"));

  r1d_ids ids = {0};
  encode(tok, r1_text, &ids);
  size_t at = 0;
  assert_int_equal(count_id(&ids, end, &at), 1);
  result res = run_ids(tok, ids.v, ids.n, 1);
  assert_buf(&res.reasoning, r1_reasoning);
  assert_buf(&res.content, r1_content);
  assert_int_equal(res.tokens, (int)at + 1);
  assert_int_equal(res.in_thought, 0);
  result_free(&res);
  r1d_ids_free(&ids);

  /* "</think>" spelled by other tokens is thought: only the id ends it */
  encode(tok, "a </thi", &ids);
  encode(tok, "nk> b", &ids);
  encode(tok, "</think>\n\nc", &ids);
  assert_int_equal(count_id(&ids, end, &at), 1);
  res = run_ids(tok, ids.v, ids.n, 1);
  assert_buf(&res.reasoning, "a </think> b");
  assert_buf(&res.content, "c");
  result_free(&res);
  r1d_ids_free(&ids);

  /* a hidden tag token (no text) still ends the thought */
  r1d_buf rs = {0}, cs = {0};
  assert_int_equal(r1d_reasoning_init(&r, tok, 1, NULL), 0);
  assert_int_equal(r1d_reasoning_push(&r, 5, "abc", 3, 0, &rs, &cs), 0);
  assert_int_equal(r1d_reasoning_push(&r, end, "", 0, 0, &rs, &cs), 0);
  assert_int_equal(r1d_reasoning_in_thought(&r), 0);
  assert_int_equal(r1d_reasoning_push(&r, 5, "\n\nans", 5, 1, &rs, &cs), 0);
  assert_buf(&rs, "abc");
  assert_buf(&cs, "ans");
  assert_int_equal(r1d_reasoning_tokens(&r), 2);
  r1d_reasoning_free(&r);
  r1d_buf_free(&rs);
  r1d_buf_free(&cs);

  /* the tag token's piece carrying text detok held before it */
  assert_int_equal(r1d_reasoning_init(&r, tok, 1, NULL), 0);
  assert_int_equal(r1d_reasoning_push(&r, end, "x</think>", 9, 0, &rs, &cs), 0);
  assert_int_equal(r1d_reasoning_push(&r, 5, "\ny", 2, 1, &rs, &cs), 0);
  assert_buf(&rs, "x");
  assert_buf(&cs, "y");
  r1d_reasoning_free(&r);
  r1d_buf_free(&rs);
  r1d_buf_free(&cs);

  /* a model-opened thought with the tokenizer's own tags */
  encode(tok, "\n<think>\nhmm</think>\n\nok", &ids);
  res = run_ids(tok, ids.v, ids.n, 0);
  assert_buf(&res.reasoning, "\nhmm");
  assert_buf(&res.content, "ok");
  result_free(&res);
  r1d_ids_free(&ids);
}

static void test_qwen3_by_id(void **state) {
  (void)state;
  r1d_tokenizer *tok = load_shared("qwen3");
  assert_int_equal(r1d_tokenizer_token_to_id(tok, "</think>"), 151668);
  check_by_id(tok);
  r1d_tokenizer_free(tok);
}

/* DeepSeek-V3's tokenizer has no "</think>" token: the tag comes in several
 * tokens and is matched by text. */
static void test_deepseek_v3_by_text(void **state) {
  (void)state;
  r1d_tokenizer *tok = load_shared("deepseek-v3");
  r1d_reasoning r;
  assert_int_equal(r1d_reasoning_init(&r, tok, 1, NULL), 0);
  assert_int_equal(r.end_id, -1);
  r1d_reasoning_free(&r);

  r1d_ids ids = {0};
  encode(tok, r1_text, &ids);
  assert_true(ids.n > 10);
  /* the tokens counted: up to the one whose text completes the tag */
  size_t tag_end = strstr(r1_text, "</think>") - r1_text + 8, bytes = 0;
  int want_tokens = 0;
  for (size_t i = 0; i < ids.n && bytes < tag_end; i++) {
    size_t nb = 0;
    assert_non_null(r1d_tokenizer_token_bytes(tok, ids.v[i], &nb));
    bytes += nb;
    want_tokens++;
  }
  result res = run_ids(tok, ids.v, ids.n, 1);
  assert_buf(&res.reasoning, r1_reasoning);
  assert_buf(&res.content, r1_content);
  assert_int_equal(res.tokens, want_tokens);
  assert_true(want_tokens > 2);
  result_free(&res);
  r1d_ids_free(&ids);
  r1d_tokenizer_free(tok);
}

/* r1d's own tokenizer from `r1d model init` ("</think>" an added token). */
static void test_r1d_tokenizer(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d_reasoning_XXXXXX";
  assert_non_null(mkdtemp(dir));
  r1d_config c;
  r1d_error err = {0};
  assert_int_equal(r1d_model_preset(R1D_ARCH_QWEN2, "tiny", &c, &err), 0);
  if (r1d_model_init_dir(dir, &c, 3, &err)) fail_msg("%s", err.msg);
  r1d_tokenizer *tok = NULL;
  if (r1d_tokenizer_load_dir(dir, &tok, &err)) fail_msg("%s", err.msg);

  r1d_ids ids = {0};
  encode(tok, "</think>", &ids);
  assert_int_equal(ids.n, 1);
  assert_int_equal(ids.v[0], r1d_tokenizer_token_to_id(tok, "</think>"));
  r1d_ids_free(&ids);
  check_by_id(tok);

  r1d_tokenizer_free(tok);
  const char *files[] = {"config.json", "generation_config.json",
                         "model.safetensors", "tokenizer.json",
                         "tokenizer_config.json"};
  char path[256];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* ---- property: any chunking gives the whole-text split ---- */

/* The contract on a whole text, written independently of the splitter. */
static void ref_split(const char *t, int start, r1d_buf *rs, r1d_buf *cs) {
  const char *p = t;
  if (!start) {
    const char *q = p;
    while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
      q++;
    if (strncmp(q, "<think>", 7) != 0) {
      assert_int_equal(r1d_buf_append(cs, p, strlen(p)), 0);
      return;
    }
    p = q + 7;
  }
  const char *e = strstr(p, "</think>");
  if (!e) {
    assert_int_equal(r1d_buf_append(rs, p, strlen(p)), 0);
    return;
  }
  assert_int_equal(r1d_buf_append(rs, p, (size_t)(e - p)), 0);
  const char *q = e + 8;
  while (*q == '\n' || *q == '\r')
    q++;
  assert_int_equal(r1d_buf_append(cs, q, strlen(q)), 0);
}

static void test_random_rechunk(void **state) {
  (void)state;
  static const char *const frags[] = {
      "<think>", "</think>", "</thi", "<th", "<",     "/", ">",  "\n",   "\r\n",
      "\r",      " ",        "\t",    "a",   "think", "é", "思", "🙂", "x"};
  const int n_frags = (int)(sizeof frags / sizeof frags[0]);
  r1d_rng rng;
  r1d_rng_seed(&rng, 20240607);
  char text[512];
  size_t cuts[512];
  int checked_tags = 0;
  for (int t = 0; t < 400; t++) {
    size_t len = 0;
    int nf = (int)(r1d_rng_next(&rng) % 24);
    for (int f = 0; f < nf; f++) {
      const char *s = frags[r1d_rng_next(&rng) % (uint64_t)n_frags];
      memcpy(text + len, s, strlen(s));
      len += strlen(s);
    }
    text[len] = 0;
    int start = (int)(r1d_rng_next(&rng) & 1);
    r1d_buf want_r = {0}, want_c = {0};
    ref_split(text, start, &want_r, &want_c);
    assert_int_equal(r1d_buf_append(&want_r, "", 1), 0);
    assert_int_equal(r1d_buf_append(&want_c, "", 1), 0);
    if (strstr(text, "</think>")) checked_tags++;

    check_cuts(text, NULL, 0, start, want_r.p, want_c.p);
    for (int k = 0; k < 30; k++) {
      /* cut points anywhere between bytes (inside tags and inside UTF-8
       * characters), some repeated (empty pieces) */
      int n_cuts = 0;
      double p = 0.05 + 0.9 * r1d_rng_uniform(&rng);
      for (size_t i = 0; i <= len; i++)
        while (r1d_rng_uniform(&rng) < p * 0.5 && n_cuts < 500)
          cuts[n_cuts++] = i;
      check_cuts(text, cuts, n_cuts, start, want_r.p, want_c.p);
    }
    r1d_buf_free(&want_r);
    r1d_buf_free(&want_c);
  }
  assert_true(checked_tags > 100); /* the texts did exercise the end tag */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prompt_opens),
      cmocka_unit_test(test_r1_pattern_splits),
      cmocka_unit_test(test_model_opened),
      cmocka_unit_test(test_cut_inside_thought),
      cmocka_unit_test(test_partial_not_tag),
      cmocka_unit_test(test_no_tags),
      cmocka_unit_test(test_token_count),
      cmocka_unit_test(test_qwen3_by_id),
      cmocka_unit_test(test_deepseek_v3_by_text),
      cmocka_unit_test(test_r1d_tokenizer),
      cmocka_unit_test(test_random_rechunk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

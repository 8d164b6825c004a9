/* test_tokenizer.c - the byte-level BPE tokenizer against Hugging Face
 * `tokenizers`: the three real vocabularies (Qwen3, Llama-3, DeepSeek-V3)
 * must encode the public corpus and our own corpus to exactly the reference
 * ids, decode them back, decode cut UTF-8 like `tokenizers`, reject bad
 * files and bad text with named errors, and read back what the writer wrote.
 *
 * Fixtures: $R1D_SHARED/fixtures/tokenizers (real tokenizers, public refs)
 * and $R1D_SOURCE_ROOT/tests/fixtures/tokenizer/corpus.json (made by
 * tests/ref/make_tokenizer_fixtures.py with the Python package). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */
// clang-format off
// clang-format on

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "engine/text/tokenizer.h"

enum { N_TOK = 3 };
static const char *const dirs[N_TOK] = {"qwen3", "llama3", "deepseek-v3"};
static const char *const keys[N_TOK] = {"qwen3", "llama3", "deepseek_v3"};
static const int is_nfc[N_TOK] = {1, 0, 0};
static r1d_tokenizer *toks[N_TOK];

static char *shared_path(const char *rel) {
  const char *root = getenv("R1D_SHARED");
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/fixtures/%s", root ? root : "../shared", rel);
  return buf;
}

static json_t *load_json(const char *path) {
  json_error_t je;
  json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
  if (!j) fail_msg("%s: %s", path, je.text);
  return j;
}

static int setup_all(void **state) {
  (void)state;
  for (int k = 0; k < N_TOK; k++) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizers/%s", dirs[k]);
    r1d_error err = {0};
    if (r1d_tokenizer_load_dir(shared_path(rel), &toks[k], &err)) {
      fprintf(stderr, "load failed: %s\n", err.msg);
      return -1;
    }
  }
  return 0;
}

static int teardown_all(void **state) {
  (void)state;
  for (int k = 0; k < N_TOK; k++)
    r1d_tokenizer_free(toks[k]);
  return 0;
}

/* Encodes s and compares with the JSON id array, then checks that decoding
 * gives s back: for the normalizing tokenizer, its NFC form `nfc` (as
 * `tokenizers` computes it; JSON null: s is already NFC), or utf8proc's
 * when nfc is NULL. */
static int check_ids(int k, const char *s, size_t n, json_t *want,
                     json_t *nfc) {
  r1d_ids ids = {0};
  r1d_error err = {0};
  int rc = r1d_tokenizer_encode(toks[k], s, n, &ids, &err);
  if (rc) {
    print_error("%s: encode failed: %s\n", dirs[k], err.msg);
    return 0;
  }
  int ok = ids.n == json_array_size(want);
  for (size_t i = 0; ok && i < ids.n; i++)
    ok = ids.v[i] == json_integer_value(json_array_get(want, i));
  if (!ok)
    print_error("%s: ids differ for %.120s (got %zu ids, want %zu)\n", dirs[k],
                s, ids.n, json_array_size(want));
  /* decode(encode(s)) gives s back (its NFC for a normalizing tokenizer) */
  char *text = NULL, *expect = NULL;
  size_t len = 0, elen = n;
  assert_int_equal(
      r1d_tokenizer_decode(toks[k], ids.v, ids.n, 0, &text, &len, &err), 0);
  if (is_nfc[k] && json_is_string(nfc)) {
    expect = strndup(json_string_value(nfc), json_string_length(nfc));
    elen = json_string_length(nfc);
  } else if (is_nfc[k] && !nfc) {
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t r =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &o,
                     UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    assert_true(r >= 0);
    expect = (char *)o;
    elen = (size_t)r;
  }
  const char *e = expect ? expect : s;
  if (len != elen || memcmp(text, e, len) != 0) {
    print_error("%s: decode(encode(s)) != s for %.120s\n", dirs[k], s);
    ok = 0;
  }
  free(expect);
  free(text);
  r1d_ids_free(&ids);
  return ok;
}

static void test_public_corpus(void **state) {
  (void)state;
  json_t *ref = load_json(shared_path("tokenizers/ref_public.json"));
  int bad = 0, total = 0;
  for (int k = 0; k < N_TOK; k++) {
    json_t *arr = json_object_get(ref, keys[k]), *c;
    size_t i;
    assert_true(json_array_size(arr) >= 20);
    json_array_foreach(arr, i, c) {
      json_t *t = json_object_get(c, "text");
      bad += !check_ids(k, json_string_value(t), json_string_length(t),
                        json_object_get(c, "ids"), NULL);
      total++;
    }
  }
  json_decref(ref);
  assert_int_equal(total, 3 * 26);
  assert_int_equal(bad, 0);
}

static json_t *own_corpus(void) {
  const char *root = getenv("R1D_SOURCE_ROOT");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer/corpus.json",
           root ? root : ".");
  return load_json(path);
}

static void test_own_corpus(void **state) {
  (void)state;
  json_t *fx = own_corpus(), *corpus = json_object_get(fx, "corpus");
  assert_true(json_array_size(corpus) >= 300);
  int bad = 0;
  for (int k = 0; k < N_TOK; k++) {
    json_t *all = json_object_get(json_object_get(fx, "ids"), keys[k]);
    assert_int_equal(json_array_size(all), json_array_size(corpus));
    for (size_t i = 0; i < json_array_size(corpus); i++) {
      json_t *t = json_array_get(corpus, i);
      bad += !check_ids(k, json_string_value(t), json_string_length(t),
                        json_array_get(all, i),
                        json_array_get(json_object_get(fx, "nfc"), i));
    }
  }
  json_decref(fx);
  assert_int_equal(bad, 0);
}

/* Decoding as `tokenizers` does, including U+FFFD for cut characters. */
static void test_decode_cases(void **state) {
  (void)state;
  json_t *fx = own_corpus();
  int bad = 0, n_cases = 0, n_fffd = 0;
  for (int k = 0; k < N_TOK; k++) {
    json_t *cases = json_object_get(json_object_get(fx, "decode"), keys[k]), *c;
    size_t i;
    json_array_foreach(cases, i, c) {
      json_t *jids = json_object_get(c, "ids"),
             *want = json_object_get(c, "text");
      size_t n = json_array_size(jids);
      int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
      for (size_t j = 0; j < n; j++)
        ids[j] = (int32_t)json_integer_value(json_array_get(jids, j));
      char *text = NULL;
      size_t len = 0;
      r1d_error err = {0};
      int skip = json_is_true(json_object_get(c, "skip_special"));
      assert_int_equal(
          r1d_tokenizer_decode(toks[k], ids, n, skip, &text, &len, &err), 0);
      if (len != json_string_length(want) ||
          memcmp(text, json_string_value(want), len) != 0) {
        print_error("%s: decode case %zu: got '%s' want '%s'\n", dirs[k], i,
                    text, json_string_value(want));
        bad++;
      }
      if (strstr(text, "\xEF\xBF\xBD")) n_fffd++;
      n_cases++;
      free(text);
      free(ids);
    }
  }
  json_decref(fx);
  assert_true(n_cases > 300);
  assert_true(n_fffd > 20); /* the fixture does exercise replacement */
  assert_int_equal(bad, 0);
}

static void test_lookups(void **state) {
  (void)state;
  r1d_tokenizer *q = toks[0];
  assert_int_equal(r1d_tokenizer_vocab_size(q), 151669);
  assert_int_equal(r1d_tokenizer_vocab_size(toks[1]), 128256);
  assert_int_equal(r1d_tokenizer_vocab_size(toks[2]), 128815);
  assert_int_equal(r1d_tokenizer_token_to_id(q, "<|im_start|>"), 151644);
  assert_int_equal(r1d_tokenizer_token_to_id(q, "<think>"), 151667);
  assert_int_equal(r1d_tokenizer_token_to_id(q, "Hello"), 9707);
  assert_int_equal(r1d_tokenizer_token_to_id(q, "no such token at all"), -1);
  assert_true(r1d_tokenizer_is_special(q, 151644));
  assert_false(r1d_tokenizer_is_special(q, 151667)); /* <think>: not special */
  assert_false(r1d_tokenizer_is_special(q, 9707));
  assert_false(r1d_tokenizer_is_special(q, -1));
  assert_string_equal(r1d_tokenizer_id_to_token(q, 151645), "<|im_end|>");
  assert_string_equal(r1d_tokenizer_id_to_token(q, 220), "\xC4\xA0"); /* Ġ */
  assert_null(r1d_tokenizer_id_to_token(q, 151669));
  assert_null(r1d_tokenizer_id_to_token(q, -5));
  size_t n = 0;
  const char *b = r1d_tokenizer_token_bytes(q, 220, &n);
  assert_int_equal(n, 1);
  assert_int_equal(b[0], ' ');
  b = r1d_tokenizer_token_bytes(q, 151644, &n);
  assert_int_equal(n, 12);
  assert_memory_equal(b, "<|im_start|>", 12);
  assert_null(r1d_tokenizer_token_bytes(q, 1 << 30, &n));
  /* DeepSeek's added tokens use characters outside the byte table: their
   * own UTF-8 is what they decode to. */
  int32_t bos = r1d_tokenizer_token_to_id(toks[2], "<｜begin▁of▁sentence｜>");
  assert_int_equal(bos, 0);
  b = r1d_tokenizer_token_bytes(toks[2], bos, &n);
  assert_int_equal(n, strlen("<｜begin▁of▁sentence｜>"));
  assert_int_equal(r1d_tokenizer_token_to_id(toks[1], "<|eot_id|>"), 128009);
}

static void test_decode_special_and_range(void **state) {
  (void)state;
  r1d_tokenizer *q = toks[0];
  int32_t ids[] = {151644, 9707, 151645,
                   151667}; /* im_start Hello im_end think */
  char *text;
  size_t len;
  r1d_error err = {0};
  assert_int_equal(r1d_tokenizer_decode(q, ids, 4, 0, &text, &len, &err), 0);
  assert_string_equal(text, "<|im_start|>Hello<|im_end|><think>");
  assert_int_equal(len, strlen(text));
  free(text);
  assert_int_equal(r1d_tokenizer_decode(q, ids, 4, 1, &text, &len, &err), 0);
  assert_string_equal(text, "Hello<think>"); /* <think> is not special */
  free(text);
  int32_t bad[] = {9707, 151669};
  text = (char *)1;
  assert_int_equal(r1d_tokenizer_decode(q, bad, 2, 0, &text, &len, &err),
                   R1D_ERANGE);
  assert_null(text);
  assert_non_null(strstr(err.msg, "151669"));
  int32_t neg = -1;
  assert_int_equal(r1d_tokenizer_decode(q, &neg, 1, 0, &text, &len, &err),
                   R1D_ERANGE);
  /* a lone lead byte followed by ASCII: one U+FFFD, then the ASCII */
  int32_t cut[] = {r1d_tokenizer_token_to_id(q, "\xC3\xA4"), 9707}; /* 0xE4 */
  assert_true(cut[0] >= 0);
  assert_int_equal(r1d_tokenizer_decode(q, cut, 2, 0, &text, &len, &err), 0);
  assert_string_equal(text, "\xEF\xBF\xBDHello");
  free(text);
  assert_int_equal(r1d_tokenizer_decode(q, NULL, 0, 0, &text, &len, &err), 0);
  assert_string_equal(text, "");
  assert_int_equal(len, 0);
  free(text);
}

static void test_invalid_utf8(void **state) {
  (void)state;
  static const char *const bad[] = {
      "abc\x80",          /* lone continuation */
      "\xC0\x80",         /* overlong NUL */
      "\xE0\x80\xAF",     /* overlong */
      "x\xED\xA0\x80y",   /* surrogate */
      "\xE4\xB8",         /* truncated */
      "\xF5\x80\x80\x80", /* above U+10FFFF */
      "ok \xFF",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (int k = 0; k < N_TOK; k++) {
      r1d_ids ids = {0};
      assert_int_equal(r1d_ids_push(&ids, 7), 0);
      r1d_error err = {0};
      assert_int_equal(
          r1d_tokenizer_encode(toks[k], bad[i], strlen(bad[i]), &ids, &err),
          R1D_EINVAL);
      assert_non_null(strstr(err.msg, "UTF-8"));
      assert_int_equal(ids.n, 1); /* nothing appended on failure */
      r1d_ids_free(&ids);
    }
  }
  /* valid edge cases: NUL, U+10FFFF, appending after existing ids */
  r1d_ids ids = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_ids_push(&ids, 42), 0);
  assert_int_equal(
      r1d_tokenizer_encode(toks[0], "a\0b\xF4\x8F\xBF\xBF", 7, &ids, &err), 0);
  assert_int_equal(ids.v[0], 42);
  assert_true(ids.n > 3);
  r1d_ids_free(&ids);
}

static char *temp_file(const char *content) {
  char *path = strdup("/tmp/r1d_tok_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, content, strlen(content)),
                   (ssize_t)strlen(content));
  close(fd);
  return path;
}

static void test_bad_files(void **state) {
  (void)state;
  r1d_tokenizer *t = (r1d_tokenizer *)1;
  r1d_error err = {0};
  char *wp =
      temp_file("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}},"
                " \"added_tokens\": []}");
  assert_int_equal(r1d_tokenizer_load(wp, &t, &err), R1D_EUNSUPPORTED);
  assert_null(t);
  assert_non_null(strstr(err.msg, wp));
  assert_non_null(strstr(err.msg, "WordPiece"));

  char *bad =
      temp_file("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,");
  assert_int_equal(r1d_tokenizer_load(bad, &t, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, bad));

  /* a merge naming a token that is not in the vocabulary */
  char *merge = temp_file(
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1},"
      " \"merges\": [\"a c\"]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
      " \"decoder\": {\"type\": \"ByteLevel\"}}");
  assert_int_equal(r1d_tokenizer_load(merge, &t, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, merge));

  /* BPE without ByteLevel (a sentencepiece-style file) is refused */
  char *nobl = temp_file(
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
      " \"pre_tokenizer\": null, \"decoder\": {\"type\": \"ByteLevel\"}}");
  assert_int_equal(r1d_tokenizer_load(nobl, &t, &err), R1D_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, nobl));

  /* one huge id: refused at once instead of sizing tables by it */
  char *huge = temp_file(
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1,"
      " \"zzz\": 2000000000}, \"merges\": []},"
      " \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
      " \"decoder\": {\"type\": \"ByteLevel\"}}");
  assert_int_equal(r1d_tokenizer_load(huge, &t, &err), R1D_EFORMAT);
  assert_null(t);
  assert_non_null(strstr(err.msg, huge));
  assert_non_null(strstr(err.msg, "'zzz'"));
  assert_non_null(strstr(err.msg, "2000000000"));
  /* ... in added_tokens too, and negative ids */
  char *huge_added = temp_file(
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
      " \"added_tokens\": [{\"id\": 70000, \"content\": \"<big>\"}],"
      " \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
      " \"decoder\": {\"type\": \"ByteLevel\"}}");
  assert_int_equal(r1d_tokenizer_load(huge_added, &t, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, huge_added));
  assert_non_null(strstr(err.msg, "'<big>' has id 70000"));
  char *neg = temp_file(
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": -3},"
      " \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
      " \"decoder\": {\"type\": \"ByteLevel\"}}");
  assert_int_equal(r1d_tokenizer_load(neg, &t, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, neg));
  assert_non_null(strstr(err.msg, "'b' has negative id -3"));
  /* a sparse but plausible id (within the bound) still loads */
  char *sparse = temp_file(
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
      " \"added_tokens\": [{\"id\": 65000, \"content\": \"<s>\"}],"
      " \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
      " \"decoder\": {\"type\": \"ByteLevel\"}}");
  assert_int_equal(r1d_tokenizer_load(sparse, &t, &err), 0);
  assert_int_equal(r1d_tokenizer_vocab_size(t), 65001);
  assert_int_equal(r1d_tokenizer_token_to_id(t, "<s>"), 65000);
  r1d_tokenizer_free(t);

  const char *missing = "/tmp/r1d_no_such_dir_4711/tokenizer.json";
  assert_int_equal(r1d_tokenizer_load(missing, &t, &err), R1D_ENOTFOUND);
  assert_non_null(strstr(err.msg, missing));
  assert_int_equal(
      r1d_tokenizer_load_dir("/tmp/r1d_no_such_dir_4711", &t, &err),
      R1D_ENOTFOUND);
  assert_non_null(strstr(err.msg, missing));

  char *paths[] = {wp, bad, merge, nobl, huge, huge_added, neg, sparse};
  for (int i = 0; i < 8; i++) {
    unlink(paths[i]);
    free(paths[i]);
  }
}

/* The fixtures' BOS, as transformers 4.x adds it: Qwen3 none
 * (add_bos_token false, ByteLevel post-processor), Llama-3 as published
 * here none (ByteLevel post-processor, no add_bos_token), DeepSeek-V3 its
 * <｜begin▁of▁sentence｜> (add_bos_token true in tokenizer_config.json). */
static void test_bos_fixtures(void **state) {
  (void)state;
  assert_int_equal(r1d_tokenizer_bos_to_add(toks[0]), -1);
  assert_int_equal(r1d_tokenizer_bos_to_add(toks[1]), -1);
  int32_t bos = r1d_tokenizer_token_to_id(toks[2], "<｜begin▁of▁sentence｜>");
  assert_int_equal(bos, 0);
  assert_int_equal(r1d_tokenizer_bos_to_add(toks[2]), bos);
  /* r1d_tokenizer_load reads tokenizer.json alone: rule (b) is not applied */
  r1d_tokenizer *t = NULL;
  r1d_error err = {0};
  assert_int_equal(
      r1d_tokenizer_load(shared_path("tokenizers/deepseek-v3/tokenizer.json"),
                         &t, &err),
      0);
  assert_int_equal(r1d_tokenizer_bos_to_add(t), -1);
  r1d_tokenizer_free(t);
}

/* A small byte-level tokenizer.json with the given post_processor JSON and
 * added tokens <|begin_of_text|> = 300, <|end_of_text|> = 301. */
static void write_pp_tokenizer(const char *path, const char *pp) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
  for (int b = 0; b < 256; b++) {
    int keep = (b >= 33 && b <= 126 && b != '"' && b != '\\');
    if (keep)
      fprintf(f, "\"%c\": %d, ", b, b);
    else
      fprintf(f, "\"\\u%04x\": %d, ", 0x100 + b, b); /* not real ByteLevel */
  }
  fprintf(f,
          "\"hi\": 299}, \"merges\": [\"h i\"]},"
          " \"added_tokens\": ["
          "{\"id\": 300, \"content\": \"<|begin_of_text|>\", "
          "\"special\": true},"
          "{\"id\": 301, \"content\": \"<|end_of_text|>\", "
          "\"special\": true}],"
          " \"pre_tokenizer\": {\"type\": \"ByteLevel\"},"
          " \"decoder\": {\"type\": \"ByteLevel\"},"
          " \"post_processor\": %s}",
          pp);
  fclose(f);
}

static void write_text(const char *path, const char *s) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(s, f);
  fclose(f);
}

#define TEMPLATE(first_id, special_map)                                        \
  "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "        \
  "{\"id\": "                                                                  \
  "\"" first_id "\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", "        \
  "\"type_id\": 0}}], \"pair\": [{\"SpecialToken\": {\"id\": \"" first_id      \
  "\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, "    \
  "{\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}], "                         \
  "\"special_tokens\": " special_map "}"

/* Rule (a) from the post_processor, rule (b) from tokenizer_config.json. */
static void test_bos_rules(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d_tokbos_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256], cfg[256];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
  const char *bos_map =
      "{\"<|begin_of_text|>\": {\"id\": \"<|begin_of_text|>\", \"ids\": [300],"
      " \"tokens\": [\"<|begin_of_text|>\"]}}";
  const char *bytelevel = "{\"type\": \"ByteLevel\", \"add_prefix_space\": "
                          "true, \"trim_offsets\": false, \"use_regex\": true}";
  char pp[2048];
  struct {
    const char *pp_fmt; /* %s: the TemplateProcessing */
    const char *config; /* NULL: no tokenizer_config.json */
    int32_t want_dir, want_file;
  } cases[] = {
      /* Meta's Llama-3 file */
      {"%s", NULL, 300, 300},
      /* wrapped in a Sequence after ByteLevel */
      {"{\"type\": \"Sequence\", \"processors\": [BL, %s]}", NULL, 300, 300},
      /* the template wins over a config that says no */
      {"%s", "{\"add_bos_token\": false, \"bos_token\": \"<|end_of_text|>\"}",
       300, 300},
      /* no template: the config decides; AddedToken dict form; huge ints */
      {"BL",
       "{\"add_bos_token\": true, \"model_max_length\": "
       "1000000000000000019884624838656, \"bos_token\": {\"__type\": "
       "\"AddedToken\", \"content\": \"<|end_of_text|>\"}}",
       301, -1},
      {"BL", "{\"add_bos_token\": true, \"bos_token\": \"hi\"}", 299, -1},
      /* add_bos_token absent or false, unknown token, null, broken file */
      {"BL", "{\"bos_token\": \"<|begin_of_text|>\"}", -1, -1},
      {"BL", "{\"add_bos_token\": false, \"bos_token\": \"hi\"}", -1, -1},
      {"BL", "{\"add_bos_token\": true, \"bos_token\": \"<nope>\"}", -1, -1},
      {"BL", "{\"add_bos_token\": true, \"bos_token\": null}", -1, -1},
      {"BL", "{\"add_bos_token\": true, \"bos_token\": ", -1, -1},
      {"BL", "[1, 2]", -1, -1},
      {"null", NULL, -1, -1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char tp[1024], fmt[512];
    snprintf(tp, sizeof tp, TEMPLATE("<|begin_of_text|>", "%s"), bos_map);
    /* BL in the format stands for the ByteLevel processor */
    const char *f = cases[i].pp_fmt, *bl = strstr(f, "BL");
    if (bl)
      snprintf(fmt, sizeof fmt, "%.*s%s%s", (int)(bl - f), f, bytelevel,
               bl + 2);
    else
      snprintf(fmt, sizeof fmt, "%s", f);
    snprintf(pp, sizeof pp, fmt, tp);
    write_pp_tokenizer(path, pp);
    unlink(cfg);
    if (cases[i].config) write_text(cfg, cases[i].config);
    r1d_tokenizer *t = NULL;
    r1d_error err = {0};
    if (r1d_tokenizer_load_dir(dir, &t, &err))
      fail_msg("case %zu: %s", i, err.msg);
    if (r1d_tokenizer_bos_to_add(t) != cases[i].want_dir)
      fail_msg("case %zu: load_dir bos %d, want %d", i,
               (int)r1d_tokenizer_bos_to_add(t), (int)cases[i].want_dir);
    r1d_tokenizer_free(t);
    assert_int_equal(r1d_tokenizer_load(path, &t, &err), 0);
    assert_int_equal(r1d_tokenizer_bos_to_add(t), cases[i].want_file);
    r1d_tokenizer_free(t);
  }
  /* a template whose token is found by content when special_tokens lacks it;
   * one starting with $A adds no BOS */
  snprintf(pp, sizeof pp, TEMPLATE("<|end_of_text|>", "{}"));
  write_pp_tokenizer(path, pp);
  unlink(cfg);
  r1d_tokenizer *t = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_tokenizer_load(path, &t, &err), 0);
  assert_int_equal(r1d_tokenizer_bos_to_add(t), 301);
  r1d_tokenizer_free(t);
  write_pp_tokenizer(path, "{\"type\": \"TemplateProcessing\", \"single\": "
                           "[{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, "
                           "{\"SpecialToken\": {\"id\": \"<|end_of_text|>\", "
                           "\"type_id\": 0}}], \"special_tokens\": {}}");
  assert_int_equal(r1d_tokenizer_load(path, &t, &err), 0);
  assert_int_equal(r1d_tokenizer_bos_to_add(t), -1);
  r1d_tokenizer_free(t);
  /* a template naming a token that does not exist is refused */
  snprintf(pp, sizeof pp, TEMPLATE("<nope>", "{}"));
  write_pp_tokenizer(path, pp);
  assert_int_equal(r1d_tokenizer_load(path, &t, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, "<nope>"));
  snprintf(pp, sizeof pp,
           TEMPLATE("<|begin_of_text|>", "{\"<|begin_of_text|>\": {\"id\": "
                                         "\"<|begin_of_text|>\", \"ids\": "
                                         "[5000], \"tokens\": [\"x\"]}}"));
  write_pp_tokenizer(path, pp);
  assert_int_equal(r1d_tokenizer_load(path, &t, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "5000"));
  unlink(path);
  rmdir(dir);
}

/* The writer's file loads back and encodes by its merges. */
static void test_writer_roundtrip(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d_tokw_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  /* byte-level strings: "Ġ" is the space byte */
  const char *merges[] = {"h",    "e", "l",        "l", "he",        "ll",
                          "hell", "o", "\xC4\xA0", "w", "\xC4\xA0w", "o"};
  const char *added[] = {"<think>", "</think>", "<｜User｜>"};
  r1d_error err = {0};
  assert_int_equal(
      r1d_tokenizer_write_bytelevel(path, merges, 6, added, NULL, 3, &err), 0);
  r1d_tokenizer *t = NULL;
  assert_int_equal(r1d_tokenizer_load_dir(dir, &t, &err), 0);
  assert_int_equal(r1d_tokenizer_vocab_size(t), 256 + 6 + 3);
  assert_int_equal(r1d_tokenizer_token_to_id(t, "hello"), 259);
  assert_int_equal(r1d_tokenizer_token_to_id(t, "<think>"), 262);
  assert_true(r1d_tokenizer_is_special(t, 264));
  const char *s = "<think>hello world</think>hello<｜User｜>";
  r1d_ids ids = {0};
  assert_int_equal(r1d_tokenizer_encode(t, s, strlen(s), &ids, &err), 0);
  /* <think> hello Ġwo r l d </think> hello <｜User｜> */
  int32_t want[] = {262, 259, 261, 'r', 'l', 'd', 263, 259, 264};
  assert_int_equal(ids.n, sizeof want / sizeof want[0]);
  assert_memory_equal(ids.v, want, sizeof want);
  char *text;
  size_t len;
  assert_int_equal(r1d_tokenizer_decode(t, ids.v, ids.n, 0, &text, &len, &err),
                   0);
  assert_string_equal(text, s);
  free(text);
  r1d_ids_free(&ids);
  /* every byte string survives: all 256 byte tokens are there */
  char all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (char)(i < 128 ? i : 'a');
  const char *u = "é 中文 😀 'S\r\n\t";
  assert_int_equal(r1d_tokenizer_encode(t, all, 128, &ids, &err), 0);
  assert_int_equal(r1d_tokenizer_encode(t, u, strlen(u), &ids, &err), 0);
  assert_int_equal(r1d_tokenizer_decode(t, ids.v, ids.n, 0, &text, &len, &err),
                   0);
  assert_int_equal(len, 128 + strlen(u));
  assert_memory_equal(text, all, 128);
  assert_memory_equal(text + 128, u, strlen(u));
  free(text);
  r1d_ids_free(&ids);
  r1d_tokenizer_free(t);
  /* a merge of unknown tokens is refused */
  const char *badm[] = {"zz", "q"};
  assert_int_equal(
      r1d_tokenizer_write_bytelevel(path, badm, 1, NULL, NULL, 0, &err),
      R1D_EINVAL);
  unlink(path);
  rmdir(dir);
}

typedef struct {
  const r1d_tokenizer *t;
  const char *text;
  size_t len;
  r1d_ids ids;
  int rc;
} thread_job;

static void *encode_thread(void *arg) {
  thread_job *j = arg;
  r1d_error err;
  for (int rep = 0; rep < 3 && j->rc == 0; rep++) {
    j->ids.n = 0;
    j->rc = r1d_tokenizer_encode(j->t, j->text, j->len, &j->ids, &err);
  }
  return NULL;
}

/* Several threads share one tokenizer and get the single-thread ids. */
static void test_threads(void **state) {
  (void)state;
  json_t *fx = own_corpus(), *corpus = json_object_get(fx, "corpus");
  size_t total = 0;
  for (size_t i = 0; i < json_array_size(corpus); i++)
    total += json_string_length(json_array_get(corpus, i)) + 1;
  char *text = malloc(total);
  size_t off = 0;
  for (size_t i = 0; i < json_array_size(corpus); i++) {
    json_t *s = json_array_get(corpus, i);
    memcpy(text + off, json_string_value(s), json_string_length(s));
    off += json_string_length(s);
    text[off++] = '\n';
  }
  r1d_ids ref = {0};
  r1d_error err;
  assert_int_equal(r1d_tokenizer_encode(toks[2], text, off, &ref, &err), 0);
  thread_job jobs[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (thread_job){.t = toks[2], .text = text, .len = off};
    assert_int_equal(pthread_create(&th[i], NULL, encode_thread, &jobs[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(jobs[i].rc, 0);
    assert_int_equal(jobs[i].ids.n, ref.n);
    assert_memory_equal(jobs[i].ids.v, ref.v, ref.n * sizeof *ref.v);
    r1d_ids_free(&jobs[i].ids);
  }
  r1d_ids_free(&ref);
  free(text);
  json_decref(fx);
}

/* Very long words and runs go through the heap path without blowing up. */
static void test_long_runs(void **state) {
  (void)state;
  size_t n = 200000;
  char *s = malloc(n);
  for (int pattern = 0; pattern < 3; pattern++) {
    for (size_t i = 0; i < n; i++)
      s[i] = pattern == 0 ? 'a' : pattern == 1 ? ' ' : "ab"[i % 2];
    for (int k = 0; k < N_TOK; k++) {
      r1d_ids ids = {0};
      r1d_error err;
      assert_int_equal(r1d_tokenizer_encode(toks[k], s, n, &ids, &err), 0);
      /* runs of one character merge into long tokens; "abab..." may stay
       * two bytes per pair at worst */
      assert_true(ids.n > 0 && ids.n <= (pattern == 2 ? n / 2 : n / 4));
      char *text;
      size_t len;
      assert_int_equal(
          r1d_tokenizer_decode(toks[k], ids.v, ids.n, 0, &text, &len, &err), 0);
      assert_int_equal(len, n);
      assert_memory_equal(text, s, n);
      free(text);
      r1d_ids_free(&ids);
    }
  }
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_public_corpus),
      cmocka_unit_test(test_own_corpus),
      cmocka_unit_test(test_decode_cases),
      cmocka_unit_test(test_lookups),
      cmocka_unit_test(test_decode_special_and_range),
      cmocka_unit_test(test_invalid_utf8),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_bos_fixtures),
      cmocka_unit_test(test_bos_rules),
      cmocka_unit_test(test_writer_roundtrip),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_long_runs),
  };
  return cmocka_run_group_tests(tests, setup_all, teardown_all);
}

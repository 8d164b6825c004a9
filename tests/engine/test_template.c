/* test_template.c - chat templates against transformers' apply_chat_template.
 *
 * 1. Every entry of $R1D_SHARED/fixtures/templates/reference_public.json
 *    renders to its "text" (or to transformers' text where the two disagree:
 *    expected.json's reference_overrides, empty today).
 * 2. Our conversations (tests/fixtures/templates/conversations.json) render
 *    byte for byte to expected.json, made by tests/ref/
 *    make_template_fixtures.py with transformers, for every kind.
 * 3. Recognition of each published tokenizer_config.json (Llama 3.1's only
 *    with its fixed date line), refusal of unknown templates, roles and
 *    malformed message JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"
#include "engine/text/template.h"

static char *path_in(const char *env, const char *rel) {
  const char *root = getenv(env);
  assert_non_null(root);
  char *p = r1d_path_join(root, rel);
  assert_non_null(p);
  return p;
}

static json_t *load_json(const char *env, const char *rel) {
  char *p = path_in(env, rel);
  json_error_t jerr;
  json_t *j = json_load_file(p, 0, &jerr);
  if (!j) print_message("%s: %s\n", p, jerr.text);
  assert_non_null(j);
  free(p);
  return j;
}

static r1d_template *load_dir(const char *env, const char *rel) {
  char *dir = path_in(env, rel);
  r1d_template *t = NULL;
  r1d_error err = {0};
  int rc = r1d_template_load_dir(dir, &t, &err);
  if (rc) print_message("%s: %s\n", dir, err.msg);
  assert_int_equal(rc, 0);
  free(dir);
  return t;
}

/* The template a fixture label names: a folder, or (r1-zero) a name. */
static r1d_template *template_for(const char *label) {
  static const char *const dirs[][3] = {
      {"r1-distill", "R1D_SHARED", "fixtures/templates/r1-distill"},
      {"deepseek-v3", "R1D_SHARED", "fixtures/tokenizers/deepseek-v3"},
      {"qwen3", "R1D_SHARED", "fixtures/tokenizers/qwen3"},
      {"llama3", "R1D_SHARED", "fixtures/tokenizers/llama3"},
      {"chatml", "R1D_SOURCE_ROOT", "tests/fixtures/templates/qwen2.5"},
      {"llama3-instruct", "R1D_SOURCE_ROOT",
       "tests/fixtures/templates/llama3-instruct"},
      {"llama3.1", "R1D_SOURCE_ROOT", "tests/fixtures/templates/llama3.1"},
  };
  r1d_template *t = NULL;
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    if (strcmp(dirs[i][0], label) == 0) t = load_dir(dirs[i][1], dirs[i][2]);
  if (!t)
    assert_int_equal(r1d_template_from_name(label, NULL, NULL, &t, NULL), 0);
  assert_string_equal(r1d_template_name(t), label);
  return t;
}

/* Renders a JSON conversation through the public parser. Returns the status;
 * *out is the text on success. */
static int render_json(const r1d_template *t, json_t *messages, int agp,
                       char **out, r1d_error *err) {
  char *text = json_dumps(messages, 0);
  assert_non_null(text);
  r1d_chat_message *msgs = NULL;
  size_t n = 0;
  int rc = r1d_chat_messages_parse(text, &msgs, &n, err);
  assert_int_equal(rc, 0);
  rc = r1d_template_render(t, msgs, n, agp, out, err);
  free(msgs);
  free(text);
  return rc;
}

static void assert_text(const char *what, const char *got, const char *want) {
  if (strcmp(got, want) != 0)
    print_message("%s:\n  got:  [%s]\n  want: [%s]\n", what, got, want);
  assert_string_equal(got, want);
}

/* The transformers text for reference entry (label, index) when it differs
 * from the JavaScript port's; NULL when they agree. */
static const char *override_for(json_t *expected, const char *label,
                                size_t index) {
  size_t i;
  json_t *o;
  json_array_foreach(json_object_get(expected, "reference_overrides"), i, o) {
    if (strcmp(json_string_value(json_object_get(o, "template")), label) == 0 &&
        (size_t)json_integer_value(json_object_get(o, "index")) == index)
      return json_string_value(json_object_get(o, "text"));
  }
  return NULL;
}

static void test_reference_public(void **state) {
  (void)state;
  json_t *ref =
      load_json("R1D_SHARED", "fixtures/templates/reference_public.json");
  json_t *expected =
      load_json("R1D_SOURCE_ROOT", "tests/fixtures/templates/expected.json");
  const char *label;
  json_t *entries;
  size_t checked = 0, families = 0;
  json_object_foreach(ref, label, entries) {
    r1d_template *t = template_for(label);
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
      const char *want = override_for(expected, label, i);
      if (!want) want = json_string_value(json_object_get(e, "text"));
      char *got = NULL, what[96];
      snprintf(what, sizeof what, "reference_public %s[%zu]", label, i);
      int agp = json_is_true(json_object_get(e, "add_generation_prompt"));
      assert_int_equal(
          render_json(t, json_object_get(e, "messages"), agp, &got, NULL), 0);
      assert_text(what, got, want);
      free(got);
      checked++;
    }
    r1d_template_free(t);
    families++;
  }
  assert_int_equal(families, 4);
  assert_int_equal(checked, 40);
  json_decref(expected);
  json_decref(ref);
}

static void test_transformers_cases(void **state) {
  (void)state;
  json_t *convs = load_json("R1D_SOURCE_ROOT",
                            "tests/fixtures/templates/conversations.json");
  json_t *expected =
      load_json("R1D_SOURCE_ROOT", "tests/fixtures/templates/expected.json");
  json_t *cases = json_object_get(expected, "cases");
  assert_true(json_array_size(cases) >= 8 * 2 * json_array_size(convs));
  size_t i, errors = 0, llama31 = 0;
  json_t *c;
  json_array_foreach(cases, i, c) {
    const char *label = json_string_value(json_object_get(c, "template"));
    llama31 += strcmp(label, "llama3.1") == 0;
    size_t ci = (size_t)json_integer_value(json_object_get(c, "conversation"));
    int agp = json_is_true(json_object_get(c, "add_generation_prompt"));
    r1d_template *t = template_for(label);
    char *got = NULL, what[96];
    r1d_error err = {0};
    snprintf(what, sizeof what, "%s conversation %zu agp=%d", label, ci, agp);
    int rc = render_json(t, json_array_get(convs, ci), agp, &got, &err);
    json_t *text = json_object_get(c, "text");
    if (text) {
      if (rc) print_message("%s: %s\n", what, err.msg);
      assert_int_equal(rc, 0);
      assert_text(what, got, json_string_value(text));
    } else {
      assert_int_equal(rc, R1D_EUNSUPPORTED);
      assert_null(got);
      errors++;
    }
    free(got);
    r1d_template_free(t);
  }
  assert_true(errors > 0 && errors < json_array_size(convs) * 2);
  assert_int_equal(llama31, 2 * json_array_size(convs));
  json_decref(expected);
  json_decref(convs);
}

static void test_detection_and_tokens(void **state) {
  (void)state;
  r1d_template *t = template_for("deepseek-v3"); /* AddedToken dicts */
  assert_string_equal(r1d_template_bos(t), "<｜begin▁of▁sentence｜>");
  assert_string_equal(r1d_template_eos(t), "<｜end▁of▁sentence｜>");
  r1d_template_free(t);
  t = template_for("r1-distill"); /* plain strings */
  assert_string_equal(r1d_template_bos(t), "<｜begin▁of▁sentence｜>");
  r1d_template_free(t);
  t = template_for("qwen3"); /* bos null */
  assert_string_equal(r1d_template_bos(t), "");
  assert_string_equal(r1d_template_eos(t), "<|im_end|>");
  r1d_template_free(t);
  t = template_for("llama3");
  assert_string_equal(r1d_template_bos(t), "<|begin_of_text|>");
  r1d_template_free(t);
  t = template_for("chatml");
  r1d_template_free(t);
  t = template_for("llama3-instruct");
  r1d_template_free(t);
  t = template_for("llama3.1"); /* the folder holds Llama-3.1-Instruct's */
  assert_string_equal(r1d_template_bos(t), "<|begin_of_text|>");
  assert_string_equal(r1d_template_eos(t), "<|eot_id|>");
  r1d_template_free(t);
}

/* Llama 3.1 by hand: the system block is always there, takes the first
 * message only when it is a system one (trimmed, Unicode spaces included),
 * and a later system message is an ordinary turn. */
static void test_llama31(void **state) {
  (void)state;
  r1d_template *dir = template_for("llama3.1"), *named = NULL;
  assert_int_equal(r1d_template_from_name("llama3.1", "<|begin_of_text|>",
                                          "<|eot_id|>", &named, NULL),
                   0);
  r1d_chat_message m[] = {{"system", "\u3000 Be brief.\n", NULL},
                          {"user", " Hi\t", NULL},
                          {"assistant", "Hello.", "ignored thoughts"},
                          {"system", "Later.", NULL}};
  char *a = NULL, *b = NULL;
  assert_int_equal(r1d_template_render(dir, m, 4, 1, &a, NULL), 0);
  assert_int_equal(r1d_template_render(named, m, 4, 1, &b, NULL), 0);
  assert_string_equal(a, b);
  assert_string_equal(
      a, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
         "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
         "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi"
         "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello."
         "<|eot_id|><|start_header_id|>system<|end_header_id|>\n\nLater."
         "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  free(a);
  free(b);
  /* no system message: the block is empty after the date; no prompt */
  assert_int_equal(r1d_template_render(dir, &m[1], 1, 0, &a, NULL), 0);
  assert_string_equal(
      a, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
         "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
         "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi"
         "<|eot_id|>");
  free(a);
  /* ipython is the template's tool-output role: refused as a tool feature */
  r1d_chat_message tool[] = {{"user", "hi", NULL}, {"ipython", "42", NULL}};
  r1d_error err = {0};
  a = (char *)"untouched";
  assert_int_equal(r1d_template_render(dir, tool, 2, 1, &a, &err),
                   R1D_EUNSUPPORTED);
  assert_null(a);
  assert_non_null(strstr(err.msg, "ipython"));
  r1d_template_free(named);
  r1d_template_free(dir);
}

/* The r1-distill template by name equals the one read from its folder. */
static void test_from_name(void **state) {
  (void)state;
  r1d_template *dir = template_for("r1-distill"), *named = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_template_from_name("r1-distill",
                                          "<｜begin▁of▁sentence｜>", NULL,
                                          &named, &err),
                   0);
  r1d_chat_message m[] = {{"system", "S", NULL},
                          {"user", "Q", NULL},
                          {"assistant", "<think>x</think>A", NULL},
                          {"user", "Q2", NULL}};
  char *a = NULL, *b = NULL;
  assert_int_equal(r1d_template_render(dir, m, 4, 1, &a, NULL), 0);
  assert_int_equal(r1d_template_render(named, m, 4, 1, &b, NULL), 0);
  assert_string_equal(a, b);
  assert_string_equal(
      a, "<｜begin▁of▁sentence｜>S<｜User｜>Q<｜Assistant｜>A"
         "<｜end▁of▁sentence｜><｜User｜>Q2<｜Assistant｜><think>\n");
  free(a);
  free(b);
  r1d_template_free(named);
  r1d_template_free(dir);
  assert_int_equal(r1d_template_from_name("jinja", NULL, NULL, &named, &err),
                   R1D_EINVAL);
  assert_null(named);
  assert_non_null(strstr(err.msg, "jinja"));
}

/* The reply of an assistant turn: what follows the generation prompt. Where
 * a template shows the last turn whole (qwen3 after the last query, chatml,
 * llama3, deepseek-v3 without thoughts), prompt + reply is the template's
 * own rendering of the whole conversation (minus the turn's trailing "\n");
 * r1-distill keeps the thoughts the full rendering would drop. */
static void test_render_reply(void **state) {
  (void)state;
  r1d_error err = {0};
  static const struct {
    const char *kind, *eos, *content, *reasoning, *want, *tail;
  } cases[] = {
      {"qwen3", NULL, "A", "R", "<think>\nR\n</think>\n\nA<|im_end|>", "\n"},
      {"qwen3", NULL, "<think>\nR\n</think>\n\nA", NULL,
       "<think>\nR\n</think>\n\nA<|im_end|>", "\n"},
      {"chatml", NULL, "A", NULL, "A<|im_end|>", "\n"},
      {"llama3-instruct", NULL, " A \n", NULL, "A<|eot_id|>", ""},
      {"deepseek-v3", NULL, "A", NULL, "A<｜end▁of▁sentence｜>", ""},
      {"r1-distill", NULL, "A", "R", "R\n</think>\n\nA<｜end▁of▁sentence｜>",
       NULL},
      {"r1-distill", NULL, "<think>\nR\n</think>\n\nA", NULL,
       "R\n</think>\n\nA<｜end▁of▁sentence｜>", NULL},
      {"r1-distill", NULL, "R</think>A", NULL,
       "R\n</think>\n\nA<｜end▁of▁sentence｜>", NULL},
      {"r1-zero", "</s>", "A", "R",
       " <think> R </think> <answer> A </answer></s>", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    r1d_template *t = NULL;
    assert_int_equal(
        r1d_template_from_name(cases[i].kind, NULL, cases[i].eos, &t, &err), 0);
    r1d_chat_message m[] = {
        {"user", "Q", NULL},
        {"assistant", cases[i].content, cases[i].reasoning}};
    char *reply = NULL;
    assert_int_equal(r1d_template_render_reply(t, &m[1], &reply, &err), 0);
    if (strcmp(reply, cases[i].want) != 0)
      print_message("case %zu (%s): \"%s\"\n", i, cases[i].kind, reply);
    assert_string_equal(reply, cases[i].want);
    if (cases[i].tail) {
      char *prompt = NULL, *whole = NULL, joined[512];
      assert_int_equal(r1d_template_render(t, m, 1, 1, &prompt, &err), 0);
      assert_int_equal(r1d_template_render(t, m, 2, 0, &whole, &err), 0);
      snprintf(joined, sizeof joined, "%s%s%s", prompt, reply, cases[i].tail);
      assert_string_equal(joined, whole);
      free(prompt);
      free(whole);
    }
    free(reply);
    assert_int_equal(r1d_template_render_reply(t, &m[0], &reply, &err),
                     R1D_EINVAL);
    assert_null(reply);
    r1d_template_free(t);
  }
}

/* ---- folders written on the fly ------------------------------------------ */

typedef struct tmpdir {
  char path[64];
} tmpdir;

static void tmp_make(tmpdir *d) {
  strcpy(d->path, "/tmp/r1d_template_XXXXXX");
  assert_non_null(mkdtemp(d->path));
}

static void tmp_write(tmpdir *d, const char *name, const char *text) {
  char *p = r1d_path_join(d->path, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  free(p);
}

static void tmp_remove(tmpdir *d) {
  static const char *const names[] = {"tokenizer_config.json",
                                      "chat_template.jinja"};
  for (size_t i = 0; i < 2; i++) {
    char *p = r1d_path_join(d->path, names[i]);
    unlink(p);
    free(p);
  }
  rmdir(d->path);
}

/* Loads a folder whose config is `config`; returns the status. */
static int load_config(const char *config, const char *jinja, char *name,
                       r1d_error *err) {
  tmpdir d;
  tmp_make(&d);
  tmp_write(&d, "tokenizer_config.json", config);
  if (jinja) tmp_write(&d, "chat_template.jinja", jinja);
  r1d_template *t = NULL;
  int rc = r1d_template_load_dir(d.path, &t, err);
  if (rc == 0) {
    strcpy(name, r1d_template_name(t));
    r1d_template_free(t);
  } else {
    assert_null(t);
    assert_non_null(strstr(err->msg, d.path));
  }
  tmp_remove(&d);
  return rc;
}

#define GEMMA                                                                  \
  "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ "             \
  "message['role'] }}\\n{{ message['content'] | trim }}<end_of_turn>\\n{% "    \
  "endfor %}"
#define CHATML_QWEN25                                                          \
  "<|im_start|>system\\nYou are Qwen, created by Alibaba "                     \
  "Cloud. You are a helpful assistant.<|im_end|>"

static void test_config_shapes(void **state) {
  (void)state;
  char name[32];
  r1d_error err = {0};
  assert_int_equal(
      load_config("{\"chat_template\": \"" GEMMA "\"}", NULL, name, &err),
      R1D_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "unrecognised chat_template"));
  assert_non_null(strstr(err.msg, "start_of_turn"));
  /* a list of named templates: "default" is the chat template */
  assert_int_equal(load_config("{\"chat_template\": [{\"name\": \"tool_use\", "
                               "\"template\": \"" GEMMA "\"}, {\"name\": "
                               "\"default\", \"template\": \"" CHATML_QWEN25
                               "\"}]}",
                               NULL, name, &err),
                   0);
  assert_string_equal(name, "chatml");
  assert_int_equal(load_config("{\"chat_template\": [{\"name\": \"rag\", "
                               "\"template\": \"" CHATML_QWEN25 "\"}]}",
                               NULL, name, &err),
                   R1D_EUNSUPPORTED);
  assert_int_equal(load_config("{\"bos_token\": \"<s>\"}", NULL, name, &err),
                   R1D_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "no chat_template"));
  assert_int_equal(load_config("{\"chat_template\": \"" CHATML_QWEN25
                               "\", \"bos_token\": 7}",
                               NULL, name, &err),
                   R1D_EFORMAT);
  assert_int_equal(load_config("{\"chat_template\": 3}", NULL, name, &err),
                   R1D_EFORMAT);
  assert_int_equal(load_config("[not json", NULL, name, &err), R1D_EFORMAT);
  /* chat_template.jinja wins over the config's key */
  assert_int_equal(load_config("{\"chat_template\": \"" GEMMA "\"}",
                               "<|im_start|>system\nYou are Qwen, created by "
                               "Alibaba Cloud. You are a helpful assistant.",
                               name, &err),
                   0);
  assert_string_equal(name, "chatml");
  /* a Llama-3-style template with a date header is llama3.1 only when it is
   * Llama 3.1's, never the plain llama3 kinds */
  assert_int_equal(load_config("{\"chat_template\": \"<|start_header_id|>"
                               "<|eot_id|>message['content'] | trim Cutting "
                               "Knowledge Date {% if add_generation_prompt "
                               "%}\"}",
                               NULL, name, &err),
                   R1D_EUNSUPPORTED);
  r1d_template *t = NULL;
  assert_int_equal(r1d_template_load_dir("/nonexistent/r1d", &t, &err),
                   R1D_EIO);
}

/* Llama 3.1's published template with `from` replaced by `to`, loaded from a
 * folder of its own: the status, and the kind's name in `name`. */
static int load_llama31_variant(const char *from, const char *to, char *name,
                                r1d_error *err) {
  json_t *cfg =
      load_json("R1D_SOURCE_ROOT", "tests/fixtures/templates/llama3.1/"
                                   "tokenizer_config.json");
  const char *tpl = json_string_value(json_object_get(cfg, "chat_template"));
  assert_non_null(tpl);
  const char *at = strstr(tpl, from);
  assert_non_null(at);
  size_t head = (size_t)(at - tpl), n = strlen(tpl) - strlen(from) + strlen(to);
  char *text = malloc(n + 1);
  assert_non_null(text);
  memcpy(text, tpl, head);
  strcpy(text + head, to);
  strcat(text, at + strlen(from));
  json_object_set_new(cfg, "chat_template", json_string(text));
  char *config = json_dumps(cfg, 0);
  assert_non_null(config);
  int rc = load_config(config, NULL, name, err);
  free(config);
  free(text);
  json_decref(cfg);
  return rc;
}

/* Llama 3.1 is recognised only while its date line is the one we render. */
static void test_llama31_recognition(void **state) {
  (void)state;
  char name[32];
  r1d_error err = {0};
  static const char date[] = "{%- set date_string = \"26 Jul 2024\" %}";
  assert_int_equal(load_llama31_variant(date, date, name, &err), 0);
  assert_string_equal(name, "llama3.1");
  /* another default date */
  assert_int_equal(load_llama31_variant(date,
                                        "{%- set date_string = \"1 Jan "
                                        "2025\" %}",
                                        name, &err),
                   R1D_EUNSUPPORTED);
  /* Llama 3.2's way: today's date from the clock */
  assert_int_equal(
      load_llama31_variant(date,
                           "{%- if strftime_now is defined %}{%- set "
                           "date_string = strftime_now(\"%d %b %Y\") %}{%- "
                           "else %}{%- set date_string = \"26 Jul 2024\" "
                           "%}{%- endif %}",
                           name, &err),
      R1D_EUNSUPPORTED);
  /* the system message no longer slotted into the date block */
  assert_int_equal(
      load_llama31_variant("{{- system_message }}", "", name, &err),
      R1D_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "unrecognised chat_template"));
}

/* An unrecognised template can still be used by naming the kind. */
static void test_load_dir_as(void **state) {
  (void)state;
  tmpdir d;
  tmp_make(&d);
  tmp_write(&d, "tokenizer_config.json",
            "{\"chat_template\": \"" GEMMA "\", \"bos_token\": {\"content\": "
            "\"<B>\"}, \"eos_token\": \"<E>\"}");
  r1d_template *t = NULL;
  r1d_error err = {0};
  assert_int_equal(
      r1d_template_load_dir_as(d.path, "llama3-instruct", &t, &err), 0);
  assert_string_equal(r1d_template_bos(t), "<B>");
  assert_string_equal(r1d_template_eos(t), "<E>");
  r1d_chat_message m = {"user", " hi ", NULL};
  char *out = NULL;
  assert_int_equal(r1d_template_render(t, &m, 1, 0, &out, &err), 0);
  assert_string_equal(
      out, "<B><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
  free(out);
  r1d_template_free(t);
  assert_int_equal(r1d_template_load_dir_as(d.path, "nope", &t, &err),
                   R1D_EINVAL);
  tmp_remove(&d);
}

static void test_roles(void **state) {
  (void)state;
  static const char *const kinds[] = {"r1-distill", "deepseek-v3", "qwen3",
                                      "chatml",     "llama3",      "llama3.1",
                                      "r1-zero"};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    r1d_template *t = NULL;
    assert_int_equal(r1d_template_from_name(kinds[k], "<s>", "</s>", &t, NULL),
                     0);
    r1d_chat_message bad[] = {{"user", "hi", NULL}, {"narrator", "x", NULL}};
    r1d_chat_message tool[] = {{"user", "hi", NULL}, {"tool", "42", NULL}};
    char *out = (char *)"untouched";
    r1d_error err = {0};
    assert_int_equal(r1d_template_render(t, bad, 2, 1, &out, &err), R1D_EINVAL);
    assert_null(out);
    assert_non_null(strstr(err.msg, "narrator"));
    assert_int_equal(r1d_template_render(t, tool, 2, 1, &out, &err),
                     R1D_EUNSUPPORTED);
    assert_int_equal(r1d_template_render(t, bad, 0, 1, &out, &err), R1D_EINVAL);
    r1d_template_free(t);
  }
}

static void test_parse_shapes(void **state) {
  (void)state;
  r1d_chat_message *m = NULL;
  size_t n = 0;
  r1d_error err = {0};
  assert_int_equal(
      r1d_chat_messages_parse(
          "[{\"role\":\"system\",\"content\":null},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
          "{\"type\":\"text\",\"text\":\"é😀\"}]},"
          "{\"role\":\"assistant\",\"content\":\"x\",\"reasoning_content\":"
          "null,"
          "\"reasoning\":\"r\",\"tool_calls\":[]},"
          "{\"role\":\"assistant\"}]",
          &m, &n, &err),
      0);
  assert_int_equal(n, 4);
  assert_string_equal(m[0].role, "system");
  assert_string_equal(m[0].content, "");
  assert_null(m[0].reasoning_content);
  assert_string_equal(m[1].content, "aé😀");
  assert_string_equal(m[2].content, "x");
  assert_string_equal(m[2].reasoning_content, "r");
  assert_string_equal(m[3].content, "");
  free(m);

  static const struct {
    const char *json;
    int code;
    const char *says;
  } bad[] = {
      {"[{\"role\":\"user\",", R1D_EINVAL, "JSON"},
      {"{\"role\":\"user\"}", R1D_EINVAL, "array"},
      {"[]", R1D_EINVAL, "empty"},
      {"[\"hi\"]", R1D_EINVAL, "message 0"},
      {"[{\"content\":\"hi\"}]", R1D_EINVAL, "role"},
      {"[{\"role\":1,\"content\":\"hi\"}]", R1D_EINVAL, "role"},
      {"[{\"role\":\"user\",\"content\":5}]", R1D_EINVAL, "content"},
      {"[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]", R1D_EINVAL,
       "type"},
      {"[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]", R1D_EINVAL,
       "text"},
      {"[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]",
       R1D_EUNSUPPORTED, "image_url"},
      {"[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
       "\"content\":null,\"tool_calls\":[{\"id\":\"1\"}]}]",
       R1D_EUNSUPPORTED, "message 1"},
      {"[{\"role\":\"assistant\",\"content\":\"a\",\"reasoning_content\":3}]",
       R1D_EINVAL, "reasoning_content"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err.msg[0] = 0;
    m = (r1d_chat_message *)&err; /* must be reset to NULL */
    int rc = r1d_chat_messages_parse(bad[i].json, &m, &n, &err);
    if (rc != bad[i].code || !strstr(err.msg, bad[i].says))
      print_message("case %zu: rc %d msg \"%s\"\n", i, rc, err.msg);
    assert_int_equal(rc, bad[i].code);
    assert_non_null(strstr(err.msg, bad[i].says));
    assert_null(m);
    assert_int_equal(n, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_public),
      cmocka_unit_test(test_transformers_cases),
      cmocka_unit_test(test_detection_and_tokens),
      cmocka_unit_test(test_llama31),
      cmocka_unit_test(test_from_name),
      cmocka_unit_test(test_render_reply),
      cmocka_unit_test(test_config_shapes),
      cmocka_unit_test(test_llama31_recognition),
      cmocka_unit_test(test_load_dir_as),
      cmocka_unit_test(test_roles),
      cmocka_unit_test(test_parse_shapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

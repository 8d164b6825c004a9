/* template_load.c - which chat template a model folder uses: the named
 * kinds, recognition of a published Jinja chat_template by substrings only
 * that family's template has (an unknown template is refused rather than
 * rendered wrongly), and reading tokenizer_config.json (or
 * chat_template.jinja) for the template and its bos/eos strings. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/file.h"
#include "template_internal.h"

static const kind kinds[] = {
    {"r1-distill", FAM_DEEPSEEK, 0, 1, 1, 0, 0},
    {"deepseek-v3", FAM_DEEPSEEK, 1, 0, 0, 0, 0},
    {"qwen3", FAM_QWEN3, 0, 0, 0, 0, 0},
    {"chatml", FAM_CHATML, 0, 0, 0, 0, 0},
    {"llama3", FAM_LLAMA3, 0, 0, 0, 1, 0},
    {"llama3-instruct", FAM_LLAMA3, 0, 0, 0, 0, 0},
    {"llama3.1", FAM_LLAMA3, 0, 0, 0, 0, 1},
    {"r1-zero", FAM_R1_ZERO, 0, 0, 0, 0, 0},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* ---- construction and recognition --------------------------------------- */

const kind *tpl_kind_by_name(const char *name) {
  for (size_t i = 0; i < NKINDS; i++)
    if (strcmp(kinds[i].name, name) == 0) return &kinds[i];
  return NULL;
}

static int has(const char *s, const char *needle) {
  return strstr(s, needle) != NULL;
}

/* A "\n" inside a Jinja string literal is written either as an escape or as
 * a real newline, depending on how the JSON was produced. */
static int has_either(const char *s, const char *escaped, const char *raw) {
  return has(s, escaped) || has(s, raw);
}

/* Llama 3.1 (3.3 has the same template): the date line must be the one we
 * render, from the fixed default; Llama 3.2's template asks strftime_now for
 * today's date instead, which would make prompts depend on the clock. */
static const kind *recognise_llama31(const char *tpl) {
  if (has(tpl, "set date_string = \"" LLAMA31_DATE "\"") &&
      !has(tpl, "strftime_now") &&
      has_either(tpl, "\"Cutting Knowledge Date: December 2023\\n\"",
                 "\"Cutting Knowledge Date: December 2023\n\"") &&
      has_either(tpl, "\"Today Date: \" + date_string + \"\\n\\n\"",
                 "\"Today Date: \" + date_string + \"\n\n\"") &&
      has(tpl, "set system_message = messages[0]['content']|trim") &&
      has(tpl, "{{- system_message }}") &&
      has(tpl, "{%- if add_generation_prompt %}"))
    return tpl_kind_by_name("llama3.1");
  return NULL;
}

/* Maps a published chat_template to its kind by substrings that only that
 * family's template has; NULL when none fits. */
static const kind *recognise(const char *tpl) {
  if (has(tpl, DS_USER) && has(tpl, DS_ASSISTANT)) {
    int concat = has(tpl, "is_first_sp");
    int strip = has(tpl, "split('</think>')[-1]");
    int think =
        has_either(tpl, DS_ASSISTANT "<think>\\n'", DS_ASSISTANT "<think>\n'");
    if (!concat && strip && think) return tpl_kind_by_name("r1-distill");
    if (concat && !strip && !think && !has(tpl, "think>"))
      return tpl_kind_by_name("deepseek-v3");
    return NULL;
  }
  if (has(tpl, "<|im_start|>")) {
    if (has(tpl, "reasoning_content") && has(tpl, "last_query_index") &&
        has(tpl, "enable_thinking"))
      return tpl_kind_by_name("qwen3");
    if (has(tpl, QWEN25_DEFAULT_SYSTEM) && !has(tpl, "think>"))
      return tpl_kind_by_name("chatml");
    return NULL;
  }
  if (has(tpl, "<|start_header_id|>") && has(tpl, "<|eot_id|>") &&
      has(tpl, "message['content'] | trim") && has(tpl, "Cutting Knowledge"))
    return recognise_llama31(tpl);
  if (has(tpl, "<|start_header_id|>") && has(tpl, "<|eot_id|>") &&
      has(tpl, "message['content'] | trim")) {
    if (has(tpl, "{% if add_generation_prompt %}"))
      return tpl_kind_by_name("llama3-instruct");
    if (!has(tpl, "add_generation_prompt")) return tpl_kind_by_name("llama3");
  }
  return NULL;
}

static int make(const kind *k, const char *bos, const char *eos,
                r1d_template **out, r1d_error *err) {
  r1d_template *t = calloc(1, sizeof *t);
  if (t) {
    t->k = k;
    t->bos = strdup(bos ? bos : "");
    t->eos = strdup(eos ? eos : "");
  }
  if (!t || !t->bos || !t->eos) {
    r1d_template_free(t);
    return r1d_fail(err, R1D_ENOMEM, "chat template: out of memory");
  }
  *out = t;
  return 0;
}

int r1d_template_from_name(const char *name, const char *bos, const char *eos,
                           r1d_template **out, r1d_error *err) {
  *out = NULL;
  const kind *k = name ? tpl_kind_by_name(name) : NULL;
  if (!k)
    return r1d_fail(err, R1D_EINVAL,
                    "unknown chat template \"%s\" (known: r1-distill, "
                    "deepseek-v3, qwen3, chatml, llama3, llama3-instruct, "
                    "llama3.1, r1-zero)",
                    name ? name : "(null)");
  return make(k, bos, eos, out, err);
}

void r1d_template_free(r1d_template *t) {
  if (!t) return;
  free(t->bos);
  free(t->eos);
  free(t);
}

const char *r1d_template_name(const r1d_template *t) {
  return t->k->name;
}
const char *r1d_template_bos(const r1d_template *t) {
  return t->bos;
}
const char *r1d_template_eos(const r1d_template *t) {
  return t->eos;
}

/* bos_token/eos_token: a string, an AddedToken {"content": ...}, or absent. */
static int special_token(json_t *cfg, const char *key, const char *path,
                         const char **out, r1d_error *err) {
  json_t *v = json_object_get(cfg, key);
  *out = NULL;
  if (!v || json_is_null(v)) return 0;
  if (json_is_object(v)) v = json_object_get(v, "content");
  if (!json_is_string(v))
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: %s is neither a string nor {\"content\": string}",
                    path, key);
  *out = json_string_value(v);
  return 0;
}

/* chat_template: a string, or a list of {"name", "template"} of which
 * "default" is the chat template. */
static int config_template(json_t *cfg, const char *path, const char **out,
                           r1d_error *err) {
  json_t *v = json_object_get(cfg, "chat_template");
  *out = NULL;
  if (!v || json_is_null(v))
    return r1d_fail(err, R1D_EUNSUPPORTED, "%s: no chat_template", path);
  if (json_is_string(v)) {
    *out = json_string_value(v);
    return 0;
  }
  if (!json_is_array(v))
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: chat_template is neither a string nor a list", path);
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    json_t *name = json_object_get(e, "name");
    json_t *text = json_object_get(e, "template");
    if (!json_is_string(name) || !json_is_string(text))
      return r1d_fail(err, R1D_EFORMAT,
                      "%s: chat_template[%zu] is not {\"name\", \"template\"}",
                      path, i);
    if (strcmp(json_string_value(name), "default") == 0) {
      *out = json_string_value(text);
      return 0;
    }
  }
  return r1d_fail(err, R1D_EUNSUPPORTED,
                  "%s: chat_template list has no \"default\" entry", path);
}

/* The first bytes of a template, printable on one line, for messages. */
static void excerpt(const char *s, char *dst, size_t cap) {
  size_t n = 0;
  for (; s[n] && n + 1 < cap; n++) {
    unsigned char c = (unsigned char)s[n];
    dst[n] = c < 0x20 ? ' ' : (char)c;
  }
  while (n > 0 && n < strlen(s) && ((unsigned char)s[n] & 0xc0) == 0x80)
    n--; /* never cut a UTF-8 character in two */
  dst[n] = 0;
}

/* Newer Hugging Face folders keep the template in chat_template.jinja, which
 * transformers prefers over the config's key; so do we. */
static int read_jinja_file(const char *dir, char **text, r1d_error *err) {
  *text = NULL;
  char *path = r1d_path_join(dir, "chat_template.jinja");
  if (!path) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
  int rc = r1d_file_exists(path) ? r1d_read_file(path, text, NULL, err) : 0;
  free(path);
  return rc;
}

int r1d_template_load_dir_as(const char *dir, const char *name,
                             r1d_template **out, r1d_error *err) {
  *out = NULL;
  char *path = r1d_path_join(dir, "tokenizer_config.json");
  char *text = NULL, *jinja = NULL;
  json_t *cfg = NULL;
  const char *bos, *eos, *tpl = NULL;
  int rc = path ? 0 : r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
  if (rc == 0) rc = r1d_read_file(path, &text, NULL, err);
  if (rc == 0) {
    json_error_t jerr;
    /* Llama 3's model_max_length (1e30) overflows json_int_t. */
    cfg = json_loads(text, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!json_is_object(cfg))
      rc = r1d_fail(err, R1D_EFORMAT, "%s:%d: %s", path, jerr.line,
                    cfg ? "not a JSON object" : jerr.text);
  }
  if (rc == 0) rc = special_token(cfg, "bos_token", path, &bos, err);
  if (rc == 0) rc = special_token(cfg, "eos_token", path, &eos, err);
  if (rc == 0 && name) {
    rc = r1d_template_from_name(name, bos, eos, out, err);
    goto done;
  }
  if (rc == 0) rc = read_jinja_file(dir, &jinja, err);
  if (rc == 0 && !jinja) rc = config_template(cfg, path, &tpl, err);
  if (rc == 0) {
    if (jinja) tpl = jinja;
    const kind *k = recognise(tpl);
    char head[64];
    excerpt(tpl, head, sizeof head);
    rc = k ? make(k, bos, eos, out, err)
           : r1d_fail(err, R1D_EUNSUPPORTED,
                      "%s: unrecognised chat_template (starts \"%s\"); choose "
                      "one by name",
                      jinja ? dir : path, head);
  }
done:
  json_decref(cfg);
  free(jinja);
  free(text);
  free(path);
  return rc;
}

int r1d_template_load_dir(const char *dir, r1d_template **out, r1d_error *err) {
  return r1d_template_load_dir_as(dir, NULL, out, err);
}

/* template.c - chat templates as small hand-written renderers.
 *
 * r1d serves a handful of model families whose published Jinja chat templates
 * are short and fixed. Rather than embed a Jinja engine, each family gets one
 * C function that produces the same bytes as transformers'
 * apply_chat_template (verified against it by tests/ref/
 * make_template_fixtures.py). The kind is recognised from distinctive
 * substrings of tokenizer_config.json's chat_template, so an unknown template
 * is refused instead of being rendered wrongly.
 *
 * Deliberate limits: no tools. A "tool" message, or a message carrying
 * tool_calls, fails with R1D_EUNSUPPORTED; any other role than system, user
 * and assistant fails with R1D_EINVAL (the Jinja templates would silently
 * drop it, which hides client bugs). An empty conversation is R1D_EINVAL. */
#include "template.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/file.h"

enum family { FAM_DEEPSEEK, FAM_QWEN3, FAM_CHATML, FAM_LLAMA3, FAM_R1_ZERO };

/* One named kind: a family plus the few switches its published variants
 * differ by. */
typedef struct kind {
  const char *name;
  enum family family;
  int concat_system; /* deepseek: join system messages with "\n\n" (V3); the
                        distill template keeps only the last one */
  int strip_think;   /* deepseek: assistant turns keep text after </think> */
  int think_prompt;  /* deepseek: generation prompt adds "<think>\n" */
  int always_prompt; /* llama3: the first Llama-3 release always appends the
                        assistant header, whatever add_generation_prompt says */
  int date_header;   /* llama3: Llama 3.1's system block with the knowledge
                        cutoff and date, holding the first system message */
} kind;

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

struct r1d_template {
  const kind *k;
  char *bos; /* never NULL: "" when the tokenizer has none */
  char *eos;
};

/* Fixed pieces of the published templates. */
#define DS_USER "<｜User｜>"
#define DS_ASSISTANT "<｜Assistant｜>"
#define DS_EOS "<｜end▁of▁sentence｜>"
#define QWEN25_DEFAULT_SYSTEM                                                  \
  "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
/* Llama 3.1's system block opening. The template takes the date from a
 * date_string variable that apply_chat_template never sets, so its default is
 * what every caller gets. */
#define LLAMA31_DATE "26 Jul 2024"
#define LLAMA31_SYSTEM                                                         \
  "<|start_header_id|>system<|end_header_id|>\n\n"                             \
  "Cutting Knowledge Date: December 2023\n"                                    \
  "Today Date: " LLAMA31_DATE "\n\n"
#define R1_ZERO_PREAMBLE                                                       \
  "A conversation between User and Assistant. The user asks a question, "      \
  "and the Assistant solves it. The assistant first thinks about the "         \
  "reasoning process in the mind and then provides the user with the "         \
  "answer. The reasoning process and answer are enclosed within <think> "      \
  "</think> and <answer> </answer> tags, respectively, i.e., <think> "         \
  "reasoning process here </think> <answer> answer here </answer>. User: "

/* ---- output buffer ---------------------------------------------------- */

typedef struct buf {
  char *p;
  size_t len, cap;
  int oom;
} buf;

static void put(buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void puts_(buf *b, const char *s) {
  put(b, s, strlen(s));
}

/* ---- Python string semantics the templates rely on ---------------------- */

/* A byte range of a message string, for split/strip without copying. */
typedef struct span {
  const char *p;
  size_t n;
} span;

static span span_of(const char *s) {
  return (span){s, strlen(s)};
}

static void put_span(buf *b, span s) {
  put(b, s.p, s.n);
}

/* Offset of the first (last) occurrence of needle in s, or -1. */
static long find_first(span s, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; i + m <= s.n; i++)
    if (memcmp(s.p + i, needle, m) == 0) return (long)i;
  return -1;
}

static long find_last(span s, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = s.n; i >= m; i--)
    if (memcmp(s.p + i - m, needle, m) == 0) return (long)(i - m);
  return -1;
}

/* s.split(sep)[-1]: the text after the last sep (all of s without one). */
static span after_last(span s, const char *sep) {
  long i = find_last(s, sep);
  if (i < 0) return s;
  size_t skip = (size_t)i + strlen(sep);
  return (span){s.p + skip, s.n - skip};
}

/* s.split(sep)[0]: the text before the first sep. */
static span before_first(span s, const char *sep) {
  long i = find_first(s, sep);
  return i < 0 ? s : (span){s.p, (size_t)i};
}

/* s.lstrip('\n') and s.rstrip('\n'). */
static span lstrip_nl(span s) {
  while (s.n && s.p[0] == '\n')
    s.p++, s.n--;
  return s;
}

static span rstrip_nl(span s) {
  while (s.n && s.p[s.n - 1] == '\n')
    s.n--;
  return s;
}

/* Python's str.isspace() for one code point (Jinja's trim is str.strip()). */
static int py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 ||
         c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
         c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

/* Decodes the UTF-8 sequence at p (at most n bytes); *len gets its length.
 * Malformed bytes decode as U+FFFD of length 1, which is not whitespace. */
static uint32_t utf8_at(const unsigned char *p, size_t n, size_t *len) {
  size_t need = p[0] < 0x80         ? 1
                : (p[0] >> 5) == 6  ? 2
                : (p[0] >> 4) == 14 ? 3
                : (p[0] >> 3) == 30 ? 4
                                    : 0;
  if (need == 0 || need > n) {
    *len = 1;
    return 0xfffd;
  }
  uint32_t c = need == 1 ? p[0] : p[0] & (0x7f >> need);
  for (size_t i = 1; i < need; i++) {
    if ((p[i] & 0xc0) != 0x80) {
      *len = 1;
      return 0xfffd;
    }
    c = (c << 6) | (p[i] & 0x3f);
  }
  *len = need;
  return c;
}

/* s.strip() with Python's Unicode whitespace. */
static span py_strip(span s) {
  size_t len;
  while (s.n && py_space(utf8_at((const unsigned char *)s.p, s.n, &len)))
    s.p += len, s.n -= len;
  while (s.n) {
    size_t start = s.n - 1; /* back up to the start of the last character */
    while (start > 0 && s.n - start < 4 && (s.p[start] & 0xc0) == 0x80)
      start--;
    uint32_t c = utf8_at((const unsigned char *)s.p + start, s.n - start, &len);
    if (start + len != s.n || !py_space(c)) break;
    s.n = start;
  }
  return s;
}

static int is_role(const r1d_chat_message *m, const char *role) {
  return strcmp(m->role, role) == 0;
}

/* ---- renderers, one per family ------------------------------------------ */

/* DeepSeek-V3 and the R1 distills: bos, the system prompt, then
 * <｜User｜>text and <｜Assistant｜>text<｜end▁of▁sentence｜> turns. */
static void render_deepseek(const r1d_template *t, const r1d_chat_message *m,
                            size_t n, int agp, buf *b) {
  puts_(b, t->bos);
  size_t last_system = n;
  int first = 1;
  for (size_t i = 0; i < n; i++) {
    if (!is_role(&m[i], "system")) continue;
    if (t->k->concat_system) {
      if (!first) puts_(b, "\n\n");
      puts_(b, m[i].content);
      first = 0;
    } else {
      last_system = i;
    }
  }
  if (last_system < n) puts_(b, m[last_system].content);
  for (size_t i = 0; i < n; i++) {
    if (is_role(&m[i], "user")) {
      puts_(b, DS_USER);
      puts_(b, m[i].content);
    } else if (is_role(&m[i], "assistant")) {
      span c = span_of(m[i].content);
      if (t->k->strip_think) c = after_last(c, "</think>");
      puts_(b, DS_ASSISTANT);
      put_span(b, c);
      puts_(b, DS_EOS);
    }
  }
  if (agp)
    puts_(b, t->k->think_prompt ? DS_ASSISTANT "<think>\n" : DS_ASSISTANT);
}

static int is_tool_response(const char *s) {
  static const char open[] = "<tool_response>", close[] = "</tool_response>";
  size_t n = strlen(s);
  return strncmp(s, open, sizeof open - 1) == 0 && n >= sizeof close - 1 &&
         strcmp(s + n - (sizeof close - 1), close) == 0;
}

/* Index of the last real user query (a user message that is not a wrapped
 * tool response); thoughts are shown only for assistant turns after it. */
static size_t qwen3_last_query(const r1d_chat_message *m, size_t n) {
  for (size_t i = n; i-- > 0;)
    if (is_role(&m[i], "user") && !is_tool_response(m[i].content)) return i;
  return n - 1;
}

static void qwen3_assistant(const r1d_chat_message *msg, int show_thoughts,
                            int is_last, buf *b) {
  span content = span_of(msg->content), reasoning = {"", 0};
  if (msg->reasoning_content) {
    reasoning = span_of(msg->reasoning_content);
  } else if (find_first(content, "</think>") >= 0) {
    span c = content;
    content = lstrip_nl(after_last(c, "</think>"));
    reasoning = lstrip_nl(
        after_last(rstrip_nl(before_first(c, "</think>")), "<think>"));
  }
  puts_(b, "<|im_start|>assistant\n");
  if (show_thoughts && (is_last || reasoning.n > 0)) {
    puts_(b, "<think>\n");
    put_span(b, rstrip_nl(lstrip_nl(reasoning)));
    puts_(b, "\n</think>\n\n");
    content = lstrip_nl(content);
  }
  put_span(b, content);
  puts_(b, "<|im_end|>\n");
}

/* Qwen3: ChatML whose assistant turns after the last user query carry their
 * thoughts in <think> blocks; earlier ones show the answer only. */
static void render_qwen3(const r1d_chat_message *m, size_t n, int agp, buf *b) {
  size_t last_query = qwen3_last_query(m, n);
  for (size_t i = 0; i < n; i++) {
    if (is_role(&m[i], "assistant")) {
      qwen3_assistant(&m[i], i > last_query, i == n - 1, b);
      continue;
    }
    puts_(b, "<|im_start|>");
    puts_(b, m[i].role);
    puts_(b, "\n");
    puts_(b, m[i].content);
    puts_(b, "<|im_end|>\n");
  }
  if (agp) puts_(b, "<|im_start|>assistant\n");
}

/* Qwen2.5 ChatML: a default system prompt when the first message is not one;
 * every message verbatim. */
static void render_chatml(const r1d_chat_message *m, size_t n, int agp,
                          buf *b) {
  if (!is_role(&m[0], "system"))
    puts_(b, "<|im_start|>system\n" QWEN25_DEFAULT_SYSTEM "<|im_end|>\n");
  for (size_t i = 0; i < n; i++) {
    puts_(b, "<|im_start|>");
    puts_(b, m[i].role);
    puts_(b, "\n");
    puts_(b, m[i].content);
    puts_(b, "<|im_end|>\n");
  }
  if (agp) puts_(b, "<|im_start|>assistant\n");
}

/* Llama 3: bos, then one header block per message with its content trimmed
 * (Jinja's | trim, i.e. Python's str.strip()). Llama 3.1 first writes a
 * system block that is always there: cutoff, date, then the first message's
 * trimmed text when that message is a system one (and is consumed by it). */
static void render_llama3(const r1d_template *t, const r1d_chat_message *m,
                          size_t n, int agp, buf *b) {
  size_t first = 0;
  puts_(b, t->bos);
  if (t->k->date_header) {
    puts_(b, LLAMA31_SYSTEM);
    if (is_role(&m[0], "system"))
      put_span(b, py_strip(span_of(m[first++].content)));
    puts_(b, "<|eot_id|>");
  }
  for (size_t i = first; i < n; i++) {
    puts_(b, "<|start_header_id|>");
    puts_(b, m[i].role);
    puts_(b, "<|end_header_id|>\n\n");
    put_span(b, py_strip(span_of(m[i].content)));
    puts_(b, "<|eot_id|>");
  }
  if (agp || t->k->always_prompt)
    puts_(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* R1-Zero: one question in the paper's plain prompt; it always ends with
 * "Assistant:", and has no place for system prompts or earlier turns. */
static int render_r1_zero(const r1d_chat_message *m, size_t n, buf *b,
                          r1d_error *err) {
  if (n != 1 || !is_role(&m[0], "user"))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "r1-zero template: takes exactly one user message (got %zu "
                    "messages, first \"%s\")",
                    n, m[0].role);
  puts_(b, R1_ZERO_PREAMBLE);
  puts_(b, m[0].content);
  puts_(b, ". Assistant:");
  return 0;
}

/* Llama 3.1's template knows "ipython" (tool output) as a role; like "tool"
 * it is a tool feature we refuse, not an unknown role. */
static int is_tool_role(const r1d_template *t, const r1d_chat_message *m) {
  return is_role(m, "tool") || (t->k->date_header && is_role(m, "ipython"));
}

static int check_messages(const r1d_template *t, const r1d_chat_message *m,
                          size_t n, r1d_error *err) {
  if (!m || n == 0)
    return r1d_fail(err, R1D_EINVAL, "chat template: no messages");
  for (size_t i = 0; i < n; i++) {
    if (!m[i].role || !m[i].content)
      return r1d_fail(err, R1D_EINVAL, "message %zu: role or content is NULL",
                      i);
    if (is_tool_role(t, &m[i]))
      return r1d_fail(err, R1D_EUNSUPPORTED,
                      "message %zu: %s messages are not supported", i,
                      m[i].role);
    if (!is_role(&m[i], "system") && !is_role(&m[i], "user") &&
        !is_role(&m[i], "assistant"))
      return r1d_fail(err, R1D_EINVAL, "message %zu: unknown role \"%s\"", i,
                      m[i].role);
  }
  return 0;
}

int r1d_template_render(const r1d_template *t, const r1d_chat_message *msgs,
                        size_t n, int add_generation_prompt, char **out,
                        r1d_error *err) {
  *out = NULL;
  int rc = check_messages(t, msgs, n, err);
  if (rc) return rc;
  buf b = {0};
  put(&b, "", 0); /* an empty render is still a string */
  switch (t->k->family) {
  case FAM_DEEPSEEK:
    render_deepseek(t, msgs, n, add_generation_prompt, &b);
    break;
  case FAM_QWEN3: render_qwen3(msgs, n, add_generation_prompt, &b); break;
  case FAM_CHATML: render_chatml(msgs, n, add_generation_prompt, &b); break;
  case FAM_LLAMA3: render_llama3(t, msgs, n, add_generation_prompt, &b); break;
  case FAM_R1_ZERO: rc = render_r1_zero(msgs, n, &b, err); break;
  }
  if (rc == 0 && b.oom)
    rc = r1d_fail(err, R1D_ENOMEM, "chat template: out of memory");
  if (rc) {
    free(b.p);
    return rc;
  }
  *out = b.p;
  return 0;
}

/* ---- construction and recognition --------------------------------------- */

static const kind *kind_by_name(const char *name) {
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
    return kind_by_name("llama3.1");
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
    if (!concat && strip && think) return kind_by_name("r1-distill");
    if (concat && !strip && !think && !has(tpl, "think>"))
      return kind_by_name("deepseek-v3");
    return NULL;
  }
  if (has(tpl, "<|im_start|>")) {
    if (has(tpl, "reasoning_content") && has(tpl, "last_query_index") &&
        has(tpl, "enable_thinking"))
      return kind_by_name("qwen3");
    if (has(tpl, QWEN25_DEFAULT_SYSTEM) && !has(tpl, "think>"))
      return kind_by_name("chatml");
    return NULL;
  }
  if (has(tpl, "<|start_header_id|>") && has(tpl, "<|eot_id|>") &&
      has(tpl, "message['content'] | trim") && has(tpl, "Cutting Knowledge"))
    return recognise_llama31(tpl);
  if (has(tpl, "<|start_header_id|>") && has(tpl, "<|eot_id|>") &&
      has(tpl, "message['content'] | trim")) {
    if (has(tpl, "{% if add_generation_prompt %}"))
      return kind_by_name("llama3-instruct");
    if (!has(tpl, "add_generation_prompt")) return kind_by_name("llama3");
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
  const kind *k = name ? kind_by_name(name) : NULL;
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

/* ---- messages from JSON -------------------------------------------------- */

/* The message text of "content": a string, OpenAI-style text parts
 * (concatenated), or null/absent (""). Writes into dst when non-NULL and
 * returns the byte length through *len. */
static int content_text(json_t *c, size_t idx, char *dst, size_t *len,
                        r1d_error *err) {
  *len = 0;
  if (!c || json_is_null(c)) return 0;
  if (json_is_string(c)) {
    *len = json_string_length(c);
    if (dst) memcpy(dst, json_string_value(c), *len);
    return 0;
  }
  if (!json_is_array(c))
    return r1d_fail(err, R1D_EINVAL,
                    "message %zu: content must be a string, a list of parts "
                    "or null",
                    idx);
  size_t i;
  json_t *part;
  json_array_foreach(c, i, part) {
    const char *type = json_string_value(json_object_get(part, "type"));
    json_t *text = json_object_get(part, "text");
    if (!type)
      return r1d_fail(err, R1D_EINVAL,
                      "message %zu: content part %zu has no \"type\"", idx, i);
    if (strcmp(type, "text") != 0)
      return r1d_fail(err, R1D_EUNSUPPORTED,
                      "message %zu: content part type \"%s\" is not supported",
                      idx, type);
    if (!json_is_string(text))
      return r1d_fail(err, R1D_EINVAL,
                      "message %zu: text part %zu has no string \"text\"", idx,
                      i);
    if (dst)
      memcpy(dst + *len, json_string_value(text), json_string_length(text));
    *len += json_string_length(text);
  }
  return 0;
}

/* The assistant's thoughts: the first non-null of reasoning_content,
 * thinking and reasoning (the names transformers also accepts). */
static int reasoning_of(json_t *msg, size_t idx, json_t **out, r1d_error *err) {
  static const char *const keys[] = {"reasoning_content", "thinking",
                                     "reasoning"};
  *out = NULL;
  for (size_t k = 0; k < 3; k++) {
    json_t *v = json_object_get(msg, keys[k]);
    if (!v || json_is_null(v)) continue;
    if (!json_is_string(v))
      return r1d_fail(err, R1D_EINVAL, "message %zu: %s must be a string", idx,
                      keys[k]);
    *out = v;
    return 0;
  }
  return 0;
}

/* Checks one message and adds the bytes its strings need to *bytes. */
static int message_size(json_t *msg, size_t idx, size_t *bytes,
                        r1d_error *err) {
  if (!json_is_object(msg))
    return r1d_fail(err, R1D_EINVAL, "message %zu is not an object", idx);
  json_t *role = json_object_get(msg, "role");
  if (!json_is_string(role))
    return r1d_fail(err, R1D_EINVAL, "message %zu: no string \"role\"", idx);
  json_t *calls = json_object_get(msg, "tool_calls");
  if (calls && !json_is_null(calls) &&
      !(json_is_array(calls) && json_array_size(calls) == 0))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "message %zu: tool_calls are not supported", idx);
  size_t clen;
  json_t *reasoning;
  int rc = content_text(json_object_get(msg, "content"), idx, NULL, &clen, err);
  if (rc == 0) rc = reasoning_of(msg, idx, &reasoning, err);
  if (rc) return rc;
  *bytes += json_string_length(role) + 1 + clen + 1;
  if (reasoning) *bytes += json_string_length(reasoning) + 1;
  return 0;
}

/* Copies message idx's strings to *cursor (sized by message_size). */
static void message_fill(json_t *msg, size_t idx, r1d_chat_message *m,
                         char **cursor) {
  json_t *role = json_object_get(msg, "role"), *reasoning;
  size_t len;
  m->role = *cursor;
  memcpy(*cursor, json_string_value(role), json_string_length(role) + 1);
  *cursor += json_string_length(role) + 1;
  m->content = *cursor;
  content_text(json_object_get(msg, "content"), idx, *cursor, &len, NULL);
  (*cursor)[len] = 0;
  *cursor += len + 1;
  reasoning_of(msg, idx, &reasoning, NULL);
  m->reasoning_content = NULL;
  if (reasoning) {
    m->reasoning_content = *cursor;
    memcpy(*cursor, json_string_value(reasoning),
           json_string_length(reasoning) + 1);
    *cursor += json_string_length(reasoning) + 1;
  }
}

int r1d_chat_messages_parse(const char *json_text, r1d_chat_message **msgs,
                            size_t *n, r1d_error *err) {
  *msgs = NULL;
  *n = 0;
  json_error_t jerr;
  json_t *arr = json_loads(json_text, 0, &jerr);
  if (!arr)
    return r1d_fail(err, R1D_EINVAL, "messages: JSON error at line %d: %s",
                    jerr.line, jerr.text);
  int rc = 0;
  size_t count = json_array_size(arr), bytes = 0, i;
  json_t *msg;
  if (!json_is_array(arr))
    rc = r1d_fail(err, R1D_EINVAL, "messages: not a JSON array");
  else if (count == 0)
    rc = r1d_fail(err, R1D_EINVAL, "messages: the array is empty");
  json_array_foreach(arr, i, msg) {
    if (rc) break;
    rc = message_size(msg, i, &bytes, err);
  }
  r1d_chat_message *out = NULL;
  if (rc == 0) {
    out = malloc(count * sizeof *out + bytes);
    if (!out) rc = r1d_fail(err, R1D_ENOMEM, "messages: out of memory");
  }
  if (rc == 0) {
    char *cursor = (char *)(out + count);
    json_array_foreach(arr, i, msg) message_fill(msg, i, &out[i], &cursor);
    *msgs = out;
    *n = count;
  }
  json_decref(arr);
  return rc;
}

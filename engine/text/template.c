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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/buf.h"
#include "../../common/utf8.h"
#include "template_internal.h"

/* ---- output buffer ---------------------------------------------------- */

/* Renderers append without checking each time: the first failed append
 * makes the buffer sticky-failed and the render reports it once at the end. */
typedef struct buf {
  r1d_buf b;
  int oom;
} buf;

static void put(buf *b, const char *s, size_t n) {
  if (!b->oom && r1d_buf_append(&b->b, s, n)) b->oom = 1;
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
  const char *hit = s.n ? memmem(s.p, s.n, needle, strlen(needle)) : NULL;
  return hit ? (long)(hit - s.p) : -1;
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

/* The code point at p (at most n bytes) and its length; malformed bytes
 * (never in text that came through JSON) read as U+FFFD of length 1, which is
 * not whitespace. */
static uint32_t utf8_at(const unsigned char *p, size_t n, size_t *len) {
  uint32_t c;
  int l = r1d_utf8_decode(p, n, &c);
  *len = l > 0 ? (size_t)l : 1;
  return l > 0 ? c : 0xfffd;
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

/* One ChatML turn: <|im_start|>role\ncontent<|im_end|>\n */
static void chatml_turn(buf *b, const char *role, const char *content) {
  puts_(b, "<|im_start|>");
  puts_(b, role);
  puts_(b, "\n");
  puts_(b, content);
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
    chatml_turn(b, m[i].role, m[i].content);
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
    chatml_turn(b, m[i].role, m[i].content);
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

/* ---- the reply a model generates after the generation prompt ----------- */

/* An assistant message's thoughts and answer: reasoning_content when given,
 * else a <think>...</think> block at the start of content (the opening tag
 * may be missing: the R1 distills' prompt already holds it). */
static void split_reply(const r1d_chat_message *m, span *reasoning,
                        span *answer) {
  span c = span_of(m->content);
  *reasoning = (span){"", 0};
  *answer = c;
  if (m->reasoning_content) {
    *reasoning = span_of(m->reasoning_content);
  } else if (find_first(c, "</think>") >= 0) {
    span before = before_first(c, "</think>");
    *reasoning = find_first(before, "<think>") >= 0
                     ? after_last(before, "<think>")
                     : before;
    *answer = after_last(c, "</think>");
  }
  *reasoning = rstrip_nl(lstrip_nl(*reasoning));
  *answer = lstrip_nl(*answer);
}

static void put_think_block(buf *b, span reasoning, span answer) {
  puts_(b, "<think>\n");
  put_span(b, reasoning);
  puts_(b, "\n</think>\n\n");
  put_span(b, answer);
}

int r1d_template_render_reply(const r1d_template *t,
                              const r1d_chat_message *reply, char **out,
                              r1d_error *err) {
  *out = NULL;
  if (!reply || !reply->role || !reply->content ||
      strcmp(reply->role, "assistant") != 0)
    return r1d_fail(err, R1D_EINVAL,
                    "chat template: a reply must be an assistant message");
  span reasoning, answer;
  split_reply(reply, &reasoning, &answer);
  int thinks = reply->reasoning_content ||
               find_first(span_of(reply->content), "</think>") >= 0;
  buf b = {0};
  switch (t->k->family) {
  case FAM_DEEPSEEK:
    if (t->k->think_prompt) { /* the prompt ended "<think>\n" */
      put_span(&b, reasoning);
      puts_(&b, "\n</think>\n\n");
      put_span(&b, answer);
    } else if (thinks) {
      put_think_block(&b, reasoning, answer);
    } else {
      puts_(&b, reply->content);
    }
    puts_(&b, DS_EOS);
    break;
  case FAM_QWEN3: /* the last turn always shows its (maybe empty) thoughts */
    put_think_block(&b, reasoning, answer);
    puts_(&b, "<|im_end|>");
    break;
  case FAM_CHATML:
    if (thinks)
      put_think_block(&b, reasoning, answer);
    else
      puts_(&b, reply->content);
    puts_(&b, "<|im_end|>");
    break;
  case FAM_LLAMA3:
    if (thinks)
      put_think_block(&b, reasoning, py_strip(answer));
    else
      put_span(&b, py_strip(span_of(reply->content)));
    puts_(&b, "<|eot_id|>");
    break;
  case FAM_R1_ZERO: /* the paper's format after "Assistant:" */
    if (thinks) {
      puts_(&b, " <think> ");
      put_span(&b, reasoning);
      puts_(&b, " </think> <answer> ");
      put_span(&b, py_strip(answer));
      puts_(&b, " </answer>");
    } else {
      puts_(&b, " ");
      puts_(&b, reply->content);
    }
    puts_(&b, t->eos);
    break;
  }
  put(&b, "", 1);
  if (b.oom) {
    r1d_buf_free(&b.b);
    return r1d_fail(err, R1D_ENOMEM, "chat template: out of memory");
  }
  *out = b.b.p;
  return 0;
}

int r1d_template_render(const r1d_template *t, const r1d_chat_message *msgs,
                        size_t n, int add_generation_prompt, char **out,
                        r1d_error *err) {
  *out = NULL;
  int rc = check_messages(t, msgs, n, err);
  if (rc) return rc;
  buf b = {0};
  switch (t->k->family) {
  case FAM_DEEPSEEK:
    render_deepseek(t, msgs, n, add_generation_prompt, &b);
    break;
  case FAM_QWEN3: render_qwen3(msgs, n, add_generation_prompt, &b); break;
  case FAM_CHATML: render_chatml(msgs, n, add_generation_prompt, &b); break;
  case FAM_LLAMA3: render_llama3(t, msgs, n, add_generation_prompt, &b); break;
  case FAM_R1_ZERO: rc = render_r1_zero(msgs, n, &b, err); break;
  }
  put(&b, "", 1); /* NUL-terminate: the result is a C string */
  if (rc == 0 && b.oom)
    rc = r1d_fail(err, R1D_ENOMEM, "chat template: out of memory");
  if (rc) {
    r1d_buf_free(&b.b);
    return rc;
  }
  *out = b.b.p;
  return 0;
}

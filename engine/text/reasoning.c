/* reasoning.c - the <think> splitter (see reasoning.h). Each push appends
 * its piece to the hold-back buffer and routes it from the front, one mode
 * at a time; a mode that cannot decide yet (a possible partial tag, leading
 * whitespace before a possible "<think>") leaves the rest held back. Every
 * decision looks only at the text, so piece boundaries never change it. */
#include "reasoning.h"

#include <string.h>

static const char open_tag[] = "<think>";
static const char end_tag[] = "</think>";
#define OPEN_LEN (sizeof open_tag - 1)
#define END_LEN (sizeof end_tag - 1)

/* Offset of the last occurrence of needle in s, or -1. */
static long last_index(const char *s, size_t n, const char *needle, size_t nn) {
  if (nn > n) return -1;
  for (size_t i = n - nn + 1; i-- > 0;)
    if (memcmp(s + i, needle, nn) == 0) return (long)i;
  return -1;
}

int r1d_reasoning_prompt_opens(const char *prompt, size_t len) {
  long open = last_index(prompt, len, open_tag, OPEN_LEN);
  long end = last_index(prompt, len, end_tag, END_LEN);
  return open >= 0 && open > end;
}

int r1d_reasoning_init(r1d_reasoning *r, const r1d_tokenizer *tok,
                       int start_in_reasoning, r1d_error *err) {
  (void)err;
  memset(r, 0, sizeof *r);
  r->mode = start_in_reasoning ? R1D_REASONING_THOUGHT : R1D_REASONING_START;
  r->end_id = -1;
  if (tok) {
    /* only a token whose bytes are exactly the tag can stand for it */
    int32_t id = r1d_tokenizer_token_to_id(tok, end_tag);
    size_t n = 0;
    const char *b = id >= 0 ? r1d_tokenizer_token_bytes(tok, id, &n) : NULL;
    if (b && n == END_LEN && memcmp(b, end_tag, END_LEN) == 0) r->end_id = id;
  }
  return 0;
}

void r1d_reasoning_free(r1d_reasoning *r) {
  if (r) r1d_buf_free(&r->hold);
}

int r1d_reasoning_in_thought(const r1d_reasoning *r) {
  return r->mode == R1D_REASONING_THOUGHT;
}

int r1d_reasoning_tokens(const r1d_reasoning *r) {
  return r->tokens;
}

/* Length of the longest proper prefix of tag that s ends with. */
static size_t partial_suffix(const char *s, size_t n, const char *tag,
                             size_t tag_len) {
  size_t k = n < tag_len - 1 ? n : tag_len - 1;
  for (; k > 0; k--)
    if (memcmp(s + n - k, tag, k) == 0) return k;
  return 0;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* One routing step over s[0..n): sets *used to the bytes it took and
 * returns 1 when the rest must wait for more text, 0 to go on, or
 * R1D_ENOMEM. */
static int step_start(r1d_reasoning *r, const char *s, size_t n, int final,
                      size_t *used) {
  size_t j = 0;
  while (j < n && is_space(s[j]))
    j++;
  size_t rest = n - j;
  *used = 0;
  if (rest >= OPEN_LEN && memcmp(s + j, open_tag, OPEN_LEN) == 0) {
    *used = j + OPEN_LEN; /* the whitespace and the tag are dropped */
    r->mode = R1D_REASONING_THOUGHT;
    return 0;
  }
  if (!final && rest < OPEN_LEN && memcmp(s + j, open_tag, rest) == 0)
    return 1; /* all whitespace, or whitespace and a prefix of the tag */
  r->mode = R1D_REASONING_CONTENT; /* the whole text is content */
  return 0;
}

static int step_thought(r1d_reasoning *r, const char *s, size_t n, int final,
                        r1d_buf *reasoning, size_t *used) {
  if (r->end_id >= 0) { /* the end tag is a token: push() handles it */
    *used = n;
    return r1d_buf_append(reasoning, s, n);
  }
  const char *at = memmem(s, n, end_tag, END_LEN);
  if (at) {
    size_t k = (size_t)(at - s);
    *used = k + END_LEN;
    r->mode = R1D_REASONING_ANSWER;
    return r1d_buf_append(reasoning, s, k);
  }
  size_t keep = final ? 0 : partial_suffix(s, n, end_tag, END_LEN);
  *used = n - keep;
  if (r1d_buf_append(reasoning, s, n - keep)) return R1D_ENOMEM;
  return keep > 0;
}

static void step_answer(r1d_reasoning *r, const char *s, size_t n,
                        size_t *used) {
  size_t j = 0;
  while (j < n && (s[j] == '\n' || s[j] == '\r'))
    j++;
  *used = j;
  if (j < n) r->mode = R1D_REASONING_CONTENT;
}

/* Routes the held-back text as far as it can be decided. */
static int route(r1d_reasoning *r, int final, r1d_buf *reasoning,
                 r1d_buf *content) {
  size_t i = 0;
  int rc = 0;
  while (i < r->hold.n && rc == 0) {
    const char *s = r->hold.p + i;
    size_t n = r->hold.n - i, used = 0;
    switch (r->mode) {
    case R1D_REASONING_START: rc = step_start(r, s, n, final, &used); break;
    case R1D_REASONING_THOUGHT:
      rc = step_thought(r, s, n, final, reasoning, &used);
      break;
    case R1D_REASONING_ANSWER: step_answer(r, s, n, &used); break;
    default:
      rc = r1d_buf_append(content, s, n);
      used = n;
      break;
    }
    i += used;
  }
  r1d_buf_consume(&r->hold, i);
  return rc < 0 ? rc : 0;
}

/* The end tag arrived as its token: the piece released with it normally
 * ends with the tag's text (after text detok held back before it); what
 * precedes the tag is thought, what follows it answer. A hidden tag token
 * brings no tag text: the whole piece is thought. */
static int end_by_token(r1d_reasoning *r, r1d_buf *reasoning) {
  long at = last_index(r->hold.p, r->hold.n, end_tag, END_LEN);
  size_t k = at >= 0 ? (size_t)at : r->hold.n;
  if (r1d_buf_append(reasoning, r->hold.p, k)) return R1D_ENOMEM;
  r1d_buf_consume(&r->hold, at >= 0 ? k + END_LEN : k);
  r->mode = R1D_REASONING_ANSWER;
  return 0;
}

int r1d_reasoning_push(r1d_reasoning *r, int32_t id, const char *text,
                       size_t len, int final, r1d_buf *reasoning,
                       r1d_buf *content) {
  int was_thought = r->mode == R1D_REASONING_THOUGHT;
  if (r1d_buf_append(&r->hold, text, len)) return R1D_ENOMEM;
  if (was_thought && r->end_id >= 0 && id == r->end_id &&
      end_by_token(r, reasoning))
    return R1D_ENOMEM;
  int rc = route(r, final, reasoning, content);
  if (was_thought || r->mode == R1D_REASONING_THOUGHT) r->tokens++;
  return rc;
}

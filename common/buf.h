/* buf.h - a growable byte buffer, the one every module appends text to
 * (tokenizer output, streamed text held back, rendered prompts). Inline
 * because it sits on hot paths such as the tokenizer's per-word loop. */
#ifndef R1D_COMMON_BUF_H
#define R1D_COMMON_BUF_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

typedef struct r1d_buf {
  char *p;
  size_t n, cap;
} r1d_buf;

/* Makes room for `extra` more bytes; R1D_ENOMEM on failure (buffer intact). */
static inline int r1d_buf_reserve(r1d_buf *b, size_t extra) {
  if (b->n + extra <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + extra)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return R1D_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

static inline int r1d_buf_append(r1d_buf *b, const void *s, size_t n) {
  if (n == 0) return 0;
  if (r1d_buf_reserve(b, n)) return R1D_ENOMEM;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  return 0;
}

/* Drops the first n bytes (n <= b->n). */
static inline void r1d_buf_consume(r1d_buf *b, size_t n) {
  if (n == 0) return;
  if (n < b->n) memmove(b->p, b->p + n, b->n - n);
  b->n -= n;
}

static inline void r1d_buf_free(r1d_buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

#endif

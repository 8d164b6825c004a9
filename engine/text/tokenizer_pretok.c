/* tokenizer_pretok.c - everything between the raw text and the BPE words:
 * added-token matching, normalization of the gaps between them, and the
 * pre-tokenizer steps (regex Split, then ByteLevel).
 *
 * Each function mirrors one `tokenizers` component (its added-vocabulary
 * matcher with single_word/lstrip/rstrip, Split's five behaviours, the
 * ByteLevel prefix space) because the exact places where text is cut decide
 * the ids. Pieces are spans into one per-call buffer (enc_ctx.text), so
 * pre-tokenizing allocates nothing per word. */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- pre-tokenizer steps ------------------------------------------------ */

static int spans_push(spans *s, uint32_t off, uint32_t len) {
  if (len == 0) return 0; /* `tokenizers` drops empty splits */
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    span *v = realloc(s->v, cap * sizeof *v);
    if (!v) return R1D_ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = (span){off, len};
  return 0;
}

/* Applies one Split step to every span in c->cur, writing c->next. */
static int split_step(enc_ctx *c, const pretok_step *st) {
  c->next.n = 0;
  for (size_t k = 0; k < c->cur.n; k++) {
    span sp = c->cur.v[k];
    const unsigned char *s = (const unsigned char *)c->text.p + sp.off;
    size_t pos = 0;
    /* pieces of this span: alternating gaps and matches */
    size_t first = c->next.n;
    int prev_match = 0;
    while (pos <= sp.len) {
      int rc =
          pcre2_match(st->re, s, sp.len, pos, PCRE2_NO_UTF_CHECK, c->md, NULL);
      size_t ms, me;
      if (rc == PCRE2_ERROR_NOMATCH) {
        ms = me = sp.len;
      } else if (rc < 0) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return r1d_fail(c->err, R1D_EINVAL, "tokenizer regex failed: %s",
                        (char *)msg);
      } else {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        ms = ov[0];
        me = ov[1];
      }
      /* Each piece is (offsets, is_match); behaviours fold them. */
      for (int part = 0; part < 2; part++) {
        size_t a = part ? ms : pos, b = part ? me : ms;
        int is_match = part ^ st->invert;
        if (a == b) continue;
        if (part == 1 && rc == PCRE2_ERROR_NOMATCH) break;
        uint32_t off = sp.off + (uint32_t)a, len = (uint32_t)(b - a);
        int merge = 0;
        switch (st->behavior) {
        case SPLIT_REMOVED:
          if (is_match) {
            prev_match = is_match;
            continue;
          }
          break;
        case SPLIT_PREV: merge = is_match && !prev_match; break;
        case SPLIT_CONTIG: merge = is_match == prev_match; break;
        case SPLIT_NEXT: merge = !is_match && prev_match; break;
        default: break;
        }
        if (merge && c->next.n > first) {
          /* MergedWithNext: a match followed by a gap becomes one piece,
           * the same result as `tokenizers`' right-to-left fold. */
          span *last = &c->next.v[c->next.n - 1];
          last->len = off + len - last->off;
        } else if (spans_push(&c->next, off, len)) {
          return R1D_ENOMEM;
        }
        prev_match = is_match;
      }
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (me == ms) {
        /* empty match: step one character, as Oniguruma's iterator does */
        if (me >= sp.len) break;
        uint32_t cp;
        pos = me + (size_t)r1d_utf8_decode(s + me, sp.len - me, &cp);
      } else {
        pos = me;
      }
    }
  }
  spans tmp = c->cur;
  c->cur = c->next;
  c->next = tmp;
  return 0;
}

/* ByteLevel: optional prefix space on every split, then the GPT-2 regex. */
static int bytelevel_step(enc_ctx *c, const pretok_step *st) {
  if (st->prefix_space) {
    for (size_t k = 0; k < c->cur.n; k++) {
      span *sp = &c->cur.v[k];
      if (c->text.p[sp->off] == ' ') continue;
      size_t off = c->text.n;
      if (r1d_buf_append(&c->text, " ", 1) ||
          r1d_buf_reserve(&c->text, sp->len))
        return R1D_ENOMEM;
      memcpy(c->text.p + c->text.n, c->text.p + sp->off, sp->len);
      c->text.n += sp->len;
      *sp = (span){(uint32_t)off, sp->len + 1};
    }
  }
  return st->re ? split_step(c, st) : 0;
}

/* Pre-tokenizes s[0..n) (no added tokens in it) and BPE-encodes the words. */
static int encode_plain(enc_ctx *c, const char *s, size_t n) {
  if (n == 0) return 0;
  if (n > UINT32_MAX / 2)
    return r1d_fail(c->err, R1D_EINVAL, "text too long to encode (%zu bytes)",
                    n);
  c->text.n = 0;
  c->cur.n = 0;
  if (r1d_buf_append(&c->text, s, n) || spans_push(&c->cur, 0, (uint32_t)n))
    return R1D_ENOMEM;
  for (int i = 0; i < c->t->n_steps; i++) {
    const pretok_step *st = &c->t->steps[i];
    int rc = i == c->t->n_steps - 1 ? bytelevel_step(c, st) : split_step(c, st);
    if (rc) return rc;
  }
  return tok_bpe_words(c);
}

/* ---- added tokens ------------------------------------------------------- */

/* Longest pattern starting at s[0..n): its token index, length in *mlen. */
static int32_t trie_longest(const trie_t *t, const char *s, size_t n,
                            size_t *mlen) {
  int32_t node = t->root[(unsigned char)s[0]], best = -1;
  size_t i = 0;
  while (node >= 0) {
    if (t->v[node].token >= 0) {
      best = t->v[node].token;
      *mlen = i + 1;
    }
    if (++i == n) break;
    unsigned char c = (unsigned char)s[i];
    node = t->v[node].child;
    while (node >= 0 && t->v[node].byte != c)
      node = t->v[node].sibling;
  }
  return best;
}

/* Unicode White_Space, which is Rust's char::is_whitespace. */
static int is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_word_char(uint32_t cp) {
  if (cp == '_') return 1;
  utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_ND);
}

/* Last character of s[0..n) (n > 0, valid UTF-8). */
static uint32_t last_char(const char *s, size_t n, size_t *start) {
  size_t i = n - 1;
  while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
    i--;
  uint32_t cp = 0;
  r1d_utf8_decode((const unsigned char *)s + i, n - i, &cp);
  if (start) *start = i;
  return cp;
}

/* Splits s[0..n) on the added tokens of trie `tr` like `tokenizers`'
 * leftmost-longest matcher (with its single_word, lstrip and rstrip rules);
 * gaps go to `gap`, matches become their ids. */
int tok_split_added(enc_ctx *c, const trie_t *tr, const char *s, size_t n,
                    gap_fn gap) {
  size_t done = 0, i = 0;
  while (i < n) {
    if (tr->root[(unsigned char)s[i]] < 0) {
      i++;
      continue;
    }
    size_t mlen = 0;
    int32_t k = trie_longest(tr, s + i, n - i, &mlen);
    if (k < 0) {
      i++;
      continue;
    }
    const added_tok *a = &c->t->added[k];
    size_t start = i, stop = i + mlen;
    i = stop; /* the matcher resumes after the match either way */
    if (a->single_word) {
      uint32_t cp;
      int before = start > 0 && is_word_char(last_char(s, start, NULL));
      int after =
          stop < n &&
          r1d_utf8_decode((const unsigned char *)s + stop, n - stop, &cp) &&
          is_word_char(cp);
      if (before || after) continue;
    }
    if (a->lstrip) {
      while (start > done) {
        size_t cs;
        if (!is_white_space(last_char(s, start, &cs))) break;
        start = cs;
      }
    }
    if (a->rstrip) {
      uint32_t cp;
      int l;
      while (stop < n &&
             (l = r1d_utf8_decode((const unsigned char *)s + stop, n - stop,
                                  &cp)) &&
             is_white_space(cp))
        stop += (size_t)l;
    }
    if (start < done) start = done;
    int rc = gap(c, s + done, start - done);
    if (rc) return rc;
    if (r1d_ids_push(c->ids, a->id)) return R1D_ENOMEM;
    done = stop;
    if (i < done) i = done;
  }
  return gap(c, s + done, n - done);
}

/* A gap between raw-matched added tokens: normalize it, then match the
 * normalized added tokens inside it, the text between them going to plain. */
int tok_normalize_gap(enc_ctx *c, const char *s, size_t n, gap_fn plain) {
  if (n == 0) return 0;
  char *norm = NULL;
  if (c->t->nfc && !tok_nfc_trivially_stable(s, n)) {
    size_t nl;
    norm = tok_nfc_dup(s, n, &nl);
    if (!norm) return r1d_fail(c->err, R1D_ENOMEM, "out of memory");
    s = norm;
    n = nl;
  }
  int rc = tok_split_added(c, &c->t->norm_trie, s, n, plain);
  free(norm);
  return rc;
}

int tok_encode_gap(enc_ctx *c, const char *s, size_t n) {
  return tok_normalize_gap(c, s, n, encode_plain);
}

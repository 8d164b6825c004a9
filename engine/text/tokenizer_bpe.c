/* tokenizer_bpe.c - byte-pair merging of the pre-tokenized words.
 *
 * A word starts as one symbol per byte (the id of that byte's ByteLevel
 * character) and repeatedly merges the adjacent pair with the lowest merge
 * rank, leftmost on ties: the order of `tokenizers`' merge heap, which is
 * what decides the ids when several merges compete. Short words, the common
 * case, scan for the best pair instead of keeping a heap. All scratch lives
 * in the caller's enc_ctx. */
#include "tokenizer_internal.h"

#include <stdlib.h>

static int heap_less(const heap_ent *a, const heap_ent *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(enc_ctx *c, heap_ent e) {
  if (c->heap_n == c->heap_cap) {
    size_t cap = c->heap_cap ? c->heap_cap * 2 : 256;
    heap_ent *v = realloc(c->heap, cap * sizeof *v);
    if (!v) return R1D_ENOMEM;
    c->heap = v;
    c->heap_cap = cap;
  }
  size_t i = c->heap_n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(&e, &c->heap[p])) break;
    c->heap[i] = c->heap[p];
    i = p;
  }
  c->heap[i] = e;
  return 0;
}

static heap_ent heap_pop(enc_ctx *c) {
  heap_ent top = c->heap[0], last = c->heap[--c->heap_n];
  size_t i = 0, n = c->heap_n;
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    const heap_ent *best = &last;
    if (l < n && heap_less(&c->heap[l], best)) {
      m = l;
      best = &c->heap[l];
    }
    if (l + 1 < n && heap_less(&c->heap[l + 1], best)) m = l + 1;
    if (m == i) break;
    c->heap[i] = c->heap[m];
    i = m;
  }
  if (n) c->heap[i] = last;
  return top;
}

static const merge_slot *sym_merge(const r1d_tokenizer *t, const sym *a,
                                   const sym *b) {
  if (a->byte >= 0 && b->byte >= 0) {
    const merge_slot *e = &t->byte_pairs[a->byte * 256 + b->byte];
    return e->key ? e : NULL;
  }
  return merge_get(t, a->id, b->id);
}

/* Pushes the candidate merge of symbol i with its successor, if any. */
static int push_pair(enc_ctx *c, int32_t i) {
  if (i < 0 || c->syms[i].next < 0) return 0;
  const merge_slot *m = sym_merge(c->t, &c->syms[i], &c->syms[c->syms[i].next]);
  if (!m) return 0;
  return heap_push(c, (heap_ent){m->rank, i, m->id});
}

enum { SHORT_WORD = 24 };

/* Rank and result of merging symbol i with its successor (INT32_MAX when
 * they do not merge). */
static void pair_rank(enc_ctx *c, int32_t i, int32_t *rank, int32_t *id) {
  const merge_slot *m =
      c->syms[i].next < 0
          ? NULL
          : sym_merge(c->t, &c->syms[i], &c->syms[c->syms[i].next]);
  *rank = m ? m->rank : INT32_MAX;
  *id = m ? m->id : -1;
}

/* The same merge order as the heap below for short words, by scanning for
 * the lowest rank (leftmost on ties): fewer steps for typical words. */
static int bpe_short(enc_ctx *c, int32_t m) {
  int32_t rank[SHORT_WORD], nid[SHORT_WORD];
  for (int32_t i = 0; i < m; i++)
    pair_rank(c, i, &rank[i], &nid[i]);
  for (;;) {
    int32_t best = -1, br = INT32_MAX;
    for (int32_t i = 0; i >= 0; i = c->syms[i].next)
      if (rank[i] < br) {
        br = rank[i];
        best = i;
      }
    if (best < 0) break;
    sym *s = &c->syms[best];
    int32_t nx = s->next;
    s->id = nid[best];
    s->byte = -1;
    s->next = c->syms[nx].next;
    if (s->next >= 0) c->syms[s->next].prev = best;
    pair_rank(c, best, &rank[best], &nid[best]);
    if (s->prev >= 0) pair_rank(c, s->prev, &rank[s->prev], &nid[s->prev]);
  }
  for (int32_t i = 0; i >= 0; i = c->syms[i].next)
    if (r1d_ids_push(c->ids, c->syms[i].id)) return R1D_ENOMEM;
  return 0;
}

/* Merges the word w[0..n) and appends its ids. Lowest rank first, leftmost
 * on ties: the order of `tokenizers`' merge heap. */
static int bpe_word(enc_ctx *c, const unsigned char *w, size_t n) {
  const r1d_tokenizer *t = c->t;
  if (t->ignore_merges) {
    int32_t id = smap_get(&t->vocab_bytes, (const char *)w, n);
    if (id >= 0) return r1d_ids_push(c->ids, id);
  }
  if (n > c->syms_cap) {
    sym *s = realloc(c->syms, n * sizeof *s);
    if (!s) return R1D_ENOMEM;
    c->syms = s;
    c->syms_cap = n;
  }
  /* Initial symbols; bytes without a vocabulary character become unk (or
   * vanish, as `tokenizers` drops them when there is no unk token). */
  int32_t m = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = t->byte_id[w[i]];
    if (id < 0) {
      if (t->unk_id < 0) continue;
      if (t->fuse_unk && m > 0 && c->syms[m - 1].id == t->unk_id) continue;
      id = t->unk_id;
    }
    c->syms[m] = (sym){id, m - 1, -1, id == t->byte_id[w[i]] ? w[i] : -1};
    if (m > 0) c->syms[m - 1].next = m;
    m++;
  }
  if (m == 0) return 0;
  if (m <= SHORT_WORD) return bpe_short(c, m);
  c->heap_n = 0;
  for (int32_t i = 0; i + 1 < m; i++)
    if (push_pair(c, i)) return R1D_ENOMEM;
  while (c->heap_n) {
    heap_ent e = heap_pop(c);
    sym *s = &c->syms[e.pos];
    if (s->id < 0 || s->next < 0) continue; /* merged away meanwhile */
    const merge_slot *cur = sym_merge(t, s, &c->syms[s->next]);
    if (!cur || cur->id != e.id) continue; /* stale entry */
    int32_t nx = s->next;
    s->id = e.id;
    s->byte = -1;
    s->next = c->syms[nx].next;
    if (s->next >= 0) c->syms[s->next].prev = e.pos;
    c->syms[nx].id = -1;
    if (push_pair(c, s->prev) || push_pair(c, e.pos)) return R1D_ENOMEM;
  }
  for (int32_t i = 0; i >= 0; i = c->syms[i].next)
    if (r1d_ids_push(c->ids, c->syms[i].id)) return R1D_ENOMEM;
  return 0;
}

/* The words are the spans the pre-tokenizer left in c->cur; one call for
 * all of them keeps a function call per word off the hot path. */
int tok_bpe_words(enc_ctx *c) {
  for (size_t k = 0; k < c->cur.n; k++) {
    int rc = bpe_word(c, (const unsigned char *)c->text.p + c->cur.v[k].off,
                      c->cur.v[k].len);
    if (rc) return rc;
  }
  return 0;
}

/* tokenizer_tables.c - the lookup tables a tokenizer is built into: the
 * string -> id maps, the added-token tries, the owned-string arena, and,
 * once tokenizer.json is parsed, the per-id tables derived from it.
 *
 * Everything the encoder touches per byte or per merge is precomputed here
 * at load time (byte ids, the dense byte-pair merge table, decoded token
 * bytes), so encoding does no parsing and no allocation beyond its own
 * scratch. Searching the tables is in the header (smap_get, merge_get) and
 * in tokenizer_pretok.c (the tries). */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- string -> id map --------------------------------------------------- */

int tok_smap_init(smap *m, size_t expect) {
  size_t cap = 16;
  while (cap < expect * 2)
    cap *= 2;
  m->v = calloc(cap, sizeof *m->v);
  m->mask = cap - 1;
  m->n = 0;
  return m->v ? 0 : R1D_ENOMEM;
}

static int smap_grow(smap *m) {
  smap old = *m;
  if (tok_smap_init(m, (old.mask + 1))) {
    *m = old;
    return R1D_ENOMEM;
  }
  for (size_t i = 0; i <= old.mask; i++)
    if (old.v[i].s) *smap_find(m, old.v[i].s, old.v[i].len) = old.v[i];
  m->n = old.n;
  free(old.v);
  return 0;
}

int tok_smap_put(smap *m, const char *s, size_t len, int32_t id) {
  if ((m->n + 1) * 2 > m->mask + 1 && smap_grow(m)) return R1D_ENOMEM;
  smap_slot *e = smap_find(m, s, len);
  if (!e->s) m->n++;
  e->s = s;
  e->len = (uint32_t)len;
  e->id = id;
  return 0;
}

/* ---- owned strings ------------------------------------------------------ */

char *tok_arena_strndup(r1d_tokenizer *t, const char *s, size_t n) {
  if (t->n_arena == t->cap_arena) {
    size_t cap = t->cap_arena ? t->cap_arena * 2 : 1024;
    char **a = realloc(t->arena, cap * sizeof *a);
    if (!a) return NULL;
    t->arena = a;
    t->cap_arena = cap;
  }
  char *p = malloc(n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  t->arena[t->n_arena++] = p;
  return p;
}

/* ---- added-token tries -------------------------------------------------- */

static int trie_new_node(trie_t *t, unsigned char byte) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 256;
    trie_node *v = realloc(t->v, cap * sizeof *v);
    if (!v) return -1;
    t->v = v;
    t->cap = cap;
  }
  t->v[t->n] = (trie_node){-1, -1, -1, byte};
  return (int)t->n++;
}

/* Adds pattern s; later duplicates are ignored (first token wins). */
static int trie_add(trie_t *t, const char *s, size_t len, int32_t token) {
  if (len == 0) return 0;
  int32_t *link = &t->root[(unsigned char)s[0]];
  int32_t node = -1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i > 0) link = &t->v[node].child;
    while (*link >= 0 && t->v[*link].byte != c)
      link = &t->v[*link].sibling;
    if (*link < 0) {
      int nn = trie_new_node(t, c);
      if (nn < 0) return R1D_ENOMEM;
      if (i == 0)
        link = &t->root[c];
      else {
        /* realloc may have moved the array: find the end of the list again */
        link = &t->v[node].child;
        while (*link >= 0)
          link = &t->v[*link].sibling;
      }
      *link = nn;
    }
    node = *link;
  }
  if (t->v[node].token < 0) t->v[node].token = token;
  return 0;
}

/* Builds the matchers once the normalizer is known: normalized tokens are
 * matched by their normalized form. */
int tok_build_tries(r1d_tokenizer *t) {
  for (int i = 0; i < 256; i++)
    t->raw_trie.root[i] = t->norm_trie.root[i] = -1;
  for (int i = 0; i < t->n_added; i++) {
    added_tok *a = &t->added[i];
    size_t len = strlen(a->content);
    a->pattern = a->content;
    if (a->normalized && t->nfc) {
      size_t nl;
      char *p = tok_nfc_dup(a->content, len, &nl);
      if (!p) return R1D_ENOMEM;
      a->pattern = tok_arena_strndup(t, p, nl);
      free(p);
      if (!a->pattern) return R1D_ENOMEM;
      len = nl;
    }
    int rc = trie_add(a->normalized ? &t->norm_trie : &t->raw_trie, a->pattern,
                      len, i);
    if (rc) return rc;
  }
  return 0;
}

/* ---- per-id tables ------------------------------------------------------ */

/* The GPT-2 byte <-> unicode table: printable bytes map to themselves, the
 * others to U+0100 + n in byte order. */
static void bytelevel_table(uint32_t b2u[256], int16_t u2b[0x144]) {
  int n = 0;
  for (int i = 0; i < 0x144; i++)
    u2b[i] = -1;
  for (int b = 0; b < 256; b++) {
    int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    b2u[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
    u2b[b2u[b]] = (int16_t)b;
  }
}

/* Fills the per-id tables: token strings (added tokens override the vocab,
 * as `tokenizers` looks them up first), decoded bytes, special flags, and
 * the byte-level lookups the encoder uses. */
int tok_build_id_tables(r1d_tokenizer *t) {
  uint32_t b2u[256];
  int16_t u2b[0x144];
  bytelevel_table(b2u, u2b);
  for (int i = 0; i < t->n_added; i++)
    t->tok_str[t->added[i].id] = t->added[i].content;
  t->tok_bytes = calloc((size_t)t->n_ids, sizeof *t->tok_bytes);
  t->tok_blen = calloc((size_t)t->n_ids, sizeof *t->tok_blen);
  t->special = calloc((size_t)t->n_ids, 1);
  if (!t->tok_bytes || !t->tok_blen || !t->special ||
      tok_smap_init(&t->vocab_bytes, t->vocab.n + 1))
    return R1D_ENOMEM;
  for (int i = 0; i < t->n_added; i++)
    if (t->added[i].special) t->special[t->added[i].id] = 1;
  r1d_buf b = {0};
  for (int32_t id = 0; id < t->n_ids; id++) {
    const char *s = t->tok_str[id];
    if (!s) continue;
    size_t n = strlen(s), i = 0;
    int mapped = 1;
    b.n = 0;
    while (i < n && mapped) {
      uint32_t cp;
      int l = r1d_utf8_decode((const unsigned char *)s + i, n - i, &cp);
      if (l == 0 || cp >= 0x144 || u2b[cp] < 0) {
        mapped = 0;
        break;
      }
      char c = (char)u2b[cp];
      if (r1d_buf_append(&b, &c, 1)) goto nomem;
      i += (size_t)l;
    }
    /* The ByteLevel decoder keeps a token's own UTF-8 when any character of
     * it is outside the byte table. */
    const char *bytes = s;
    size_t blen = n;
    if (mapped) {
      bytes = tok_arena_strndup(t, b.p ? b.p : "", b.n);
      if (!bytes) goto nomem;
      blen = b.n;
    }
    t->tok_bytes[id] = bytes;
    t->tok_blen[id] = (uint32_t)blen;
    if (mapped && smap_get(&t->vocab, s, n) == id &&
        tok_smap_put(&t->vocab_bytes, bytes, blen, id))
      goto nomem;
  }
  free(b.p);
  for (int c = 0; c < 256; c++) {
    char u[4];
    int l = r1d_utf8_encode(b2u[c], u);
    t->byte_id[c] = smap_get(&t->vocab, u, (size_t)l);
  }
  t->byte_pairs = calloc(256 * 256, sizeof *t->byte_pairs);
  if (!t->byte_pairs) return R1D_ENOMEM;
  for (int a = 0; a < 256; a++) {
    for (int b = 0; b < 256; b++) {
      if (t->byte_id[a] < 0 || t->byte_id[b] < 0) continue;
      const merge_slot *m = merge_get(t, t->byte_id[a], t->byte_id[b]);
      if (m) t->byte_pairs[a * 256 + b] = *m;
    }
  }
  return 0;
nomem:
  free(b.p);
  return R1D_ENOMEM;
}

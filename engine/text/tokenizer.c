/* tokenizer.c - byte-level BPE tokenizers loaded from Hugging Face
 * tokenizer.json, bit-exact with the `tokenizers` package.
 *
 * Encoding follows the order `tokenizers` uses, because every step changes
 * which ids come out:
 *   1. added tokens whose `normalized` flag is false are found in the raw
 *      text (leftmost-longest, like its Aho-Corasick matcher);
 *   2. each remaining gap is normalized (NFC or nothing), then the added
 *      tokens with `normalized` true are found in the normalized gap;
 *   3. each remaining piece goes through the pre-tokenizer sequence (regex
 *      Split steps, then ByteLevel) giving "words";
 *   4. each word is BPE-merged by merge rank over its bytes.
 * Because ByteLevel maps every byte to exactly one vocabulary character, the
 * BPE works on bytes directly: symbol i starts as the id of byte i's
 * character and merges are looked up by id pairs.
 *
 * The loaded struct is never written after r1d_tokenizer_load returns, so
 * any number of threads may encode and decode with it at once; all scratch
 * memory lives in a per-call context. */
#include "tokenizer.h"

#include "../../common/file.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- small utilities --------------------------------------------------- */

int r1d_ids_push(r1d_ids *ids, int32_t id) {
  if (ids->n == ids->cap) {
    size_t cap = ids->cap ? ids->cap * 2 : 64;
    int32_t *v = realloc(ids->v, cap * sizeof *v);
    if (!v) return R1D_ENOMEM;
    ids->v = v;
    ids->cap = cap;
  }
  ids->v[ids->n++] = id;
  return 0;
}

void r1d_ids_free(r1d_ids *ids) {
  free(ids->v);
  ids->v = NULL;
  ids->n = ids->cap = 0;
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, s, n);
  return hash_u64(h ^ w);
}

/* Decodes one UTF-8 character at s[0..n); returns its length, or 0 when the
 * bytes there are not valid UTF-8. Overlongs and surrogates are invalid. */
static int utf8_char(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  int len;
  uint32_t lo = 0x80, hi = 0xBF, v;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    v = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    v = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int i = 1; i < len; i++) {
    if ((size_t)i >= n) return 0;
    unsigned b = s[i];
    if (b < lo || b > hi) return 0;
    lo = 0x80;
    hi = 0xBF;
    v = (v << 6) | (b & 0x3F);
  }
  *cp = v;
  return len;
}

/* Number of bytes of the maximal prefix of a valid sequence starting at s
 * (at least 1): what one U+FFFD replaces, as Rust's from_utf8_lossy does. */
static int utf8_bad_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  int len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else return 1;
  int i = 1;
  for (; i < len && (size_t)i < n; i++) {
    if (s[i] < lo || s[i] > hi) break;
    lo = 0x80;
    hi = 0xBF;
  }
  return i;
}

static int utf8_encode(uint32_t cp, char *o) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Unicode White_Space, which is Rust's char::is_whitespace. */
static int is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- growable byte buffer ---------------------------------------------- */

typedef struct {
  char *p;
  size_t n, cap;
} buf_t;

static int buf_reserve(buf_t *b, size_t extra) {
  if (b->n + extra <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + extra) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return R1D_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int buf_add(buf_t *b, const void *s, size_t n) {
  if (buf_reserve(b, n)) return R1D_ENOMEM;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  return 0;
}

/* ---- string -> id map (open addressing; keys point into owned memory) -- */

typedef struct {
  const char *s;
  uint32_t len;
  int32_t id;
} smap_slot;

typedef struct {
  smap_slot *v;
  size_t mask, n;
} smap;

static int smap_init(smap *m, size_t expect) {
  size_t cap = 16;
  while (cap < expect * 2) cap *= 2;
  m->v = calloc(cap, sizeof *m->v);
  m->mask = cap - 1;
  m->n = 0;
  return m->v ? 0 : R1D_ENOMEM;
}

/* Returns the slot holding key, or the empty slot where it would go. */
static smap_slot *smap_find(const smap *m, const char *s, size_t len) {
  size_t i = hash_bytes(s, len) & m->mask;
  for (;;) {
    smap_slot *e = &m->v[i];
    if (!e->s || (e->len == len && memcmp(e->s, s, len) == 0)) return e;
    i = (i + 1) & m->mask;
  }
}

static int32_t smap_get(const smap *m, const char *s, size_t len) {
  if (!m->v) return -1;
  smap_slot *e = smap_find(m, s, len);
  return e->s ? e->id : -1;
}

static int smap_grow(smap *m) {
  smap old = *m;
  if (smap_init(m, (old.mask + 1))) {
    *m = old;
    return R1D_ENOMEM;
  }
  for (size_t i = 0; i <= old.mask; i++)
    if (old.v[i].s) *smap_find(m, old.v[i].s, old.v[i].len) = old.v[i];
  m->n = old.n;
  free(old.v);
  return 0;
}

/* Inserts or overwrites (later entries win, like a Rust HashMap collect). */
static int smap_put(smap *m, const char *s, size_t len, int32_t id) {
  if ((m->n + 1) * 2 > m->mask + 1 && smap_grow(m)) return R1D_ENOMEM;
  smap_slot *e = smap_find(m, s, len);
  if (!e->s) m->n++;
  e->s = s;
  e->len = (uint32_t)len;
  e->id = id;
  return 0;
}

/* ---- (id, id) -> merge map --------------------------------------------- */

typedef struct {
  uint64_t key; /* (left << 32 | right) + 1; 0 marks an empty slot */
  int32_t rank, id;
} merge_slot;

typedef struct {
  merge_slot *v;
  size_t mask;
} merge_map;

static merge_slot *merge_find(const merge_map *m, uint64_t key) {
  size_t i = hash_u64(key) & m->mask;
  for (;;) {
    merge_slot *e = &m->v[i];
    if (e->key == key || e->key == 0) return e;
    i = (i + 1) & m->mask;
  }
}

static inline uint64_t pair_key(int32_t a, int32_t b) {
  return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

/* ---- added-token matcher: a byte trie, longest match per position ------ */

typedef struct {
  int32_t child, sibling, token; /* token: index into added[], or -1 */
  unsigned char byte;
} trie_node;

typedef struct {
  trie_node *v;
  size_t n, cap;
  int32_t root[256]; /* first node for each first byte, -1 if none */
} trie_t;

typedef struct {
  char *content;    /* as written in tokenizer.json */
  char *pattern;    /* what is matched: content, or NFC(content) */
  int32_t id;
  uint8_t special, lstrip, rstrip, single_word, normalized;
} added_tok;

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
    while (*link >= 0 && t->v[*link].byte != c) link = &t->v[*link].sibling;
    if (*link < 0) {
      int nn = trie_new_node(t, c);
      if (nn < 0) return R1D_ENOMEM;
      if (i == 0) link = &t->root[c];
      else {
        /* realloc may have moved the array: find the end of the list again */
        link = &t->v[node].child;
        while (*link >= 0) link = &t->v[*link].sibling;
      }
      *link = nn;
    }
    node = *link;
  }
  if (t->v[node].token < 0) t->v[node].token = token;
  return 0;
}

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
    while (node >= 0 && t->v[node].byte != c) node = t->v[node].sibling;
  }
  return best;
}

/* ---- the tokenizer ------------------------------------------------------ */

enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_PREV, SPLIT_NEXT, SPLIT_CONTIG };

typedef struct {
  pcre2_code *re; /* NULL for a ByteLevel step without regex */
  int behavior, invert;
  int prefix_space; /* ByteLevel add_prefix_space */
} pretok_step;

struct r1d_tokenizer {
  int n_ids;             /* one past the largest id */
  const char **tok_str;  /* id -> token string, NULL for holes */
  const char **tok_bytes; /* id -> decoded bytes */
  uint32_t *tok_blen;
  uint8_t *special;      /* id -> 1 if a special added token */
  smap vocab;            /* model vocabulary string -> id */
  smap vocab_bytes;      /* decoded bytes of byte-level vocab tokens -> id */
  smap added_map;        /* added token content -> id */
  merge_map merges;
  int32_t byte_id[256];  /* id of each byte's ByteLevel character */
  int ignore_merges;
  int32_t unk_id;
  int fuse_unk;
  int nfc;
  added_tok *added;
  int n_added;
  trie_t raw_trie, norm_trie; /* non-normalized / normalized added tokens */
  pretok_step *steps;
  int n_steps;
  char **arena; /* owned string blocks */
  size_t n_arena, cap_arena;
};

/* The GPT-2 byte <-> unicode table: printable bytes map to themselves, the
 * others to U+0100 + n in byte order. */
static void bytelevel_table(uint32_t b2u[256], int16_t u2b[0x144]) {
  int n = 0;
  for (int i = 0; i < 0x144; i++) u2b[i] = -1;
  for (int b = 0; b < 256; b++) {
    int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    b2u[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
    u2b[b2u[b]] = (int16_t)b;
  }
}

static char *arena_strndup(r1d_tokenizer *t, const char *s, size_t n) {
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

void r1d_tokenizer_free(r1d_tokenizer *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n_arena; i++) free(t->arena[i]);
  free(t->arena);
  free(t->tok_str);
  free(t->tok_bytes);
  free(t->tok_blen);
  free(t->special);
  free(t->vocab.v);
  free(t->vocab_bytes.v);
  free(t->added_map.v);
  free(t->merges.v);
  free(t->added);
  free(t->raw_trie.v);
  free(t->norm_trie.v);
  for (int i = 0; i < t->n_steps; i++) pcre2_code_free(t->steps[i].re);
  free(t->steps);
  free(t);
}

/* Combining marks that `tokenizers`' NFC tables (an older Unicode) treat as
 * plain starters while utf8proc reorders or composes them; U+11930 is there
 * because `tokenizers` lacks the composition U+11935 U+11930 -> U+11938.
 * Found by normalizing every code point in context with both libraries. */
static const uint32_t nfc_breaks[][2] = {
    {0x7fd, 0x7fd}, {0x898, 0x89f}, {0x8ca, 0x8d3}, {0x9fe, 0x9fe},
    {0xc3c, 0xc3c}, {0xd3b, 0xd3c}, {0xeba, 0xeba}, {0x1715, 0x1715},
    {0x1abf, 0x1ace}, {0x1df6, 0x1dfa}, {0xa82c, 0xa82c}, {0x10d24, 0x10d27},
    {0x10eab, 0x10eac}, {0x10efd, 0x10eff}, {0x10f46, 0x10f50},
    {0x10f82, 0x10f85}, {0x11070, 0x11070}, {0x1133b, 0x1133b},
    {0x1145e, 0x1145e}, {0x11839, 0x1183a}, {0x11930, 0x11930},
    {0x1193d, 0x1193e}, {0x11943, 0x11943}, {0x119e0, 0x119e0},
    {0x11a34, 0x11a34}, {0x11a47, 0x11a47}, {0x11a99, 0x11a99},
    {0x11d42, 0x11d42}, {0x11d44, 0x11d45}, {0x11d97, 0x11d97},
    {0x11f41, 0x11f42}, {0x16ff0, 0x16ff1}, {0x1e08f, 0x1e08f},
    {0x1e130, 0x1e136}, {0x1e2ae, 0x1e2ae}, {0x1e2ec, 0x1e2ef},
    {0x1e4ec, 0x1e4ef},
};

static int is_nfc_break(uint32_t cp) {
  if (cp < 0x7fd) return 0;
  for (size_t i = 0; i < sizeof nfc_breaks / sizeof nfc_breaks[0]; i++)
    if (cp >= nfc_breaks[i][0] && cp <= nfc_breaks[i][1]) return 1;
  return 0;
}

static int nfc_segment(buf_t *out, const char *s, size_t n) {
  if (n == 0) return 0;
  utf8proc_uint8_t *o = NULL;
  utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s,
                                    (utf8proc_ssize_t)n, &o,
                                    UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (r < 0) return R1D_ENOMEM;
  int rc = buf_add(out, o, (size_t)r);
  free(o);
  return rc;
}

/* NFC of valid UTF-8 s[0..n) into a malloc'ed string, as `tokenizers`
 * computes it: utf8proc on the runs between nfc_breaks characters, which
 * are starters there and so end every reordering and composition. */
static char *nfc_dup(const char *s, size_t n, size_t *out_len) {
  buf_t out = {0};
  size_t seg = 0, i = 0;
  while (i < n) {
    uint32_t cp;
    int l = utf8_char((const unsigned char *)s + i, n - i, &cp);
    if (l == 0) l = 1;
    if (is_nfc_break(cp)) {
      if (nfc_segment(&out, s + seg, i - seg) ||
          buf_add(&out, s + i, (size_t)l))
        goto fail;
      seg = i + (size_t)l;
    }
    i += (size_t)l;
  }
  if (nfc_segment(&out, s + seg, n - seg) || buf_add(&out, "", 1)) goto fail;
  *out_len = out.n - 1;
  return out.p;
fail:
  free(out.p);
  return NULL;
}

/* True when NFC cannot change s: every character is below U+0300 or in a
 * block whose characters neither decompose differently, combine, nor act as
 * the second half of a composition. Saves utf8proc calls on common text. */
static int nfc_trivially_stable(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    int l = utf8_char((const unsigned char *)s + i, n - i, &cp);
    if (l == 0) return 0;
    i += (size_t)l;
    if (cp < 0x300 || (cp >= 0x3041 && cp <= 0x3096) ||
        (cp >= 0x30A1 && cp <= 0x30FA) || (cp >= 0x3400 && cp <= 0x4DBF) ||
        (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
        (cp >= 0xFF01 && cp <= 0xFF5E) || (cp >= 0x1F300 && cp <= 0x1FAFF))
      continue;
    return 0;
  }
  return 1;
}

/* ---- regexes ------------------------------------------------------------ */

/* `tokenizers` runs its regexes with Oniguruma, whose \s is Unicode
 * White_Space; PCRE2's \s with UCP also matches U+180E. We spell \s out as
 * that set so the two agree (\S outside a class becomes its complement). */
static const char ws_class[] =
    "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}"
    "\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

/* Code points that Oniguruma in `tokenizers` 0.23 (Unicode 16) puts in
 * \p{L}, \p{N}, \p{P}, \p{S}, \p{M} but PCRE2 10.42 (Unicode 14) leaves
 * unassigned: found by running every code point through both. Adding them
 * to each property keeps older PCRE2 builds exact; newer ones already know
 * them, and a union changes nothing there. */
static const struct {
  char cat;
  const char *ranges;
} extra_classes[] = {
    {'L',
     "\\x{1c89}-\\x{1c8a}\\x{a7cb}-\\x{a7cd}\\x{a7da}-\\x{a7dc}"
     "\\x{105c0}-\\x{105f3}\\x{10d4a}-\\x{10d65}\\x{10d6f}-\\x{10d85}"
     "\\x{10ec2}-\\x{10ec4}\\x{1123f}-\\x{11240}\\x{11380}-\\x{11389}"
     "\\x{1138b}\\x{1138e}\\x{11390}-\\x{113b5}\\x{113b7}\\x{113d1}"
     "\\x{113d3}\\x{11bc0}-\\x{11be0}\\x{11f02}\\x{11f04}-\\x{11f10}"
     "\\x{11f12}-\\x{11f33}\\x{1342f}\\x{13441}-\\x{13446}"
     "\\x{13460}-\\x{143fa}\\x{16100}-\\x{1611d}\\x{16d40}-\\x{16d6c}"
     "\\x{18cff}\\x{1b132}\\x{1b155}\\x{1df25}-\\x{1df2a}"
     "\\x{1e030}-\\x{1e06d}\\x{1e4d0}-\\x{1e4eb}\\x{1e5d0}-\\x{1e5ed}"
     "\\x{1e5f0}\\x{2b739}\\x{2ebf0}-\\x{2ee5d}\\x{31350}-\\x{323af}"},
    {'N',
     "\\x{10d40}-\\x{10d49}\\x{116d0}-\\x{116e3}\\x{11bf0}-\\x{11bf9}"
     "\\x{11f50}-\\x{11f59}\\x{16130}-\\x{16139}\\x{16d70}-\\x{16d79}"
     "\\x{1ccf0}-\\x{1ccf9}\\x{1d2c0}-\\x{1d2d3}\\x{1e4f0}-\\x{1e4f9}"
     "\\x{1e5f1}-\\x{1e5fa}"},
    {'P',
     "\\x{1b4e}-\\x{1b4f}\\x{1b7f}\\x{10d6e}\\x{113d4}-\\x{113d5}"
     "\\x{113d7}-\\x{113d8}\\x{11b00}-\\x{11b09}\\x{11be1}"
     "\\x{11f43}-\\x{11f4f}\\x{16d6d}-\\x{16d6f}\\x{1e5ff}"},
    {'S',
     "\\x{2427}-\\x{2429}\\x{2ffc}-\\x{2fff}\\x{31e4}-\\x{31e5}\\x{31ef}"
     "\\x{10d8e}-\\x{10d8f}\\x{1cc00}-\\x{1ccef}\\x{1cd00}-\\x{1ceb3}"
     "\\x{1f6dc}\\x{1f774}-\\x{1f776}\\x{1f77b}-\\x{1f77f}\\x{1f7d9}"
     "\\x{1f8b2}-\\x{1f8bb}\\x{1f8c0}-\\x{1f8c1}\\x{1fa75}-\\x{1fa77}"
     "\\x{1fa87}-\\x{1fa89}\\x{1fa8f}\\x{1faad}-\\x{1faaf}"
     "\\x{1fabb}-\\x{1fabf}\\x{1fac6}\\x{1face}-\\x{1facf}"
     "\\x{1fada}-\\x{1fadc}\\x{1fadf}\\x{1fae8}-\\x{1fae9}"
     "\\x{1faf7}-\\x{1faf8}\\x{1fbcb}-\\x{1fbef}"},
    {'M',
     "\\x{897}\\x{cf3}\\x{ece}\\x{10d69}-\\x{10d6d}\\x{10efc}-\\x{10eff}"
     "\\x{11241}\\x{113b8}-\\x{113c0}\\x{113c2}\\x{113c5}"
     "\\x{113c7}-\\x{113ca}\\x{113cc}-\\x{113d0}\\x{113d2}"
     "\\x{113e1}-\\x{113e2}\\x{11f00}-\\x{11f01}\\x{11f03}"
     "\\x{11f34}-\\x{11f3a}\\x{11f3e}-\\x{11f42}\\x{11f5a}\\x{13440}"
     "\\x{13447}-\\x{13455}\\x{1611e}-\\x{1612f}\\x{1e08f}"
     "\\x{1e4ec}-\\x{1e4ef}\\x{1e5ee}-\\x{1e5ef}"},
};

static const char *extra_ranges(char cat) {
  for (size_t i = 0; i < sizeof extra_classes / sizeof extra_classes[0]; i++)
    if (extra_classes[i].cat == cat) return extra_classes[i].ranges;
  return NULL;
}

static char *rewrite_pattern(const char *p, size_t n) {
  buf_t b = {0};
  int in_class = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '\\' && i + 1 < n) {
      char d = p[i + 1];
      int ok = 0;
      if (d == 's') {
        ok = in_class ? buf_add(&b, ws_class, strlen(ws_class))
                      : (buf_add(&b, "[", 1) ||
                         buf_add(&b, ws_class, strlen(ws_class)) ||
                         buf_add(&b, "]", 1));
      } else if (d == 'p' && i + 4 < n && p[i + 2] == '{' && p[i + 4] == '}' &&
                 extra_ranges(p[i + 3])) {
        const char *x = extra_ranges(p[i + 3]);
        ok = (!in_class && buf_add(&b, "[", 1)) || buf_add(&b, p + i, 5) ||
             buf_add(&b, x, strlen(x)) || (!in_class && buf_add(&b, "]", 1));
        i += 3; /* with the i++ below: past "\\p{X}" */
      } else if (d == 'S' && !in_class) {
        ok = buf_add(&b, "[^", 2) || buf_add(&b, ws_class, strlen(ws_class)) ||
             buf_add(&b, "]", 1);
      } else {
        ok = buf_add(&b, p + i, 2);
      }
      if (ok) goto fail;
      i++;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = 1;
      if (buf_add(&b, "[", 1)) goto fail;
      /* a ']' right after '[' or '[^' is a literal */
      if (i + 1 < n && p[i + 1] == '^') {
        if (buf_add(&b, "^", 1)) goto fail;
        i++;
      }
      if (i + 1 < n && p[i + 1] == ']') {
        if (buf_add(&b, "]", 1)) goto fail;
        i++;
      }
      continue;
    }
    if (c == ']' && in_class) in_class = 0;
    if (buf_add(&b, &c, 1)) goto fail;
  }
  if (buf_add(&b, "", 1)) goto fail;
  return b.p;
fail:
  free(b.p);
  return NULL;
}

static int compile_regex(const char *path, const char *pat, size_t n,
                         int literal, pcre2_code **out, r1d_error *err) {
  char *rp = literal ? NULL : rewrite_pattern(pat, n);
  if (!literal && !rp) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  int ec;
  PCRE2_SIZE eo;
  uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  pcre2_code *re =
      literal ? pcre2_compile((PCRE2_SPTR)pat, n, opts, &ec, &eo, NULL)
              : pcre2_compile((PCRE2_SPTR)rp, PCRE2_ZERO_TERMINATED, opts, &ec,
                              &eo, NULL);
  free(rp);
  if (!re) {
    PCRE2_UCHAR msg[128];
    pcre2_get_error_message(ec, msg, sizeof msg);
    return r1d_fail(err, R1D_EFORMAT, "%s: bad pre_tokenizer regex '%.*s': %s",
                    path, (int)(n > 80 ? 80 : n), pat, (char *)msg);
  }
  /* JIT is an optimisation only; without it pcre2_match interprets. */
  (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
  *out = re;
  return 0;
}

/* The GPT-2 pattern that ByteLevel applies when use_regex is true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

/* ---- loading ------------------------------------------------------------ */

static const char *jstr(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static int jbool(json_t *o, const char *key, int dflt) {
  json_t *v = json_object_get(o, key);
  return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int add_step(r1d_tokenizer *t, pretok_step s) {
  pretok_step *v = realloc(t->steps, (size_t)(t->n_steps + 1) * sizeof *v);
  if (!v) {
    pcre2_code_free(s.re);
    return R1D_ENOMEM;
  }
  t->steps = v;
  t->steps[t->n_steps++] = s;
  return 0;
}

static int load_pretok(r1d_tokenizer *t, const char *path, json_t *pt,
                       int *have_bytelevel, r1d_error *err) {
  if (json_is_null(pt) || !pt) return 0;
  const char *type = jstr(pt, "type");
  if (!type) return r1d_fail(err, R1D_EFORMAT, "%s: pre_tokenizer without type",
                             path);
  if (*have_bytelevel)
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: pre_tokenizer '%s' after ByteLevel is not supported",
                    path, type);
  if (!strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(pt, "pretokenizers"), *e;
    size_t i;
    if (!json_is_array(arr))
      return r1d_fail(err, R1D_EFORMAT, "%s: Sequence without pretokenizers",
                      path);
    json_array_foreach(arr, i, e) {
      int rc = load_pretok(t, path, e, have_bytelevel, err);
      if (rc) return rc;
    }
    return 0;
  }
  if (!strcmp(type, "ByteLevel")) {
    pretok_step s = {.prefix_space = jbool(pt, "add_prefix_space", 1),
                     .behavior = SPLIT_ISOLATED};
    if (jbool(pt, "use_regex", 1)) {
      int rc = compile_regex(path, gpt2_pattern, strlen(gpt2_pattern), 0,
                             &s.re, err);
      if (rc) return rc;
    }
    *have_bytelevel = 1;
    return add_step(t, s) ? r1d_fail(err, R1D_ENOMEM, "out of memory") : 0;
  }
  if (!strcmp(type, "Split")) {
    json_t *pat = json_object_get(pt, "pattern");
    const char *rx = jstr(pat, "Regex"), *lit = jstr(pat, "String");
    const char *beh = jstr(pt, "behavior");
    pretok_step s = {.invert = jbool(pt, "invert", 0)};
    if (!rx && !lit)
      return r1d_fail(err, R1D_EFORMAT, "%s: Split without a pattern", path);
    if (!beh || !strcmp(beh, "Isolated")) s.behavior = SPLIT_ISOLATED;
    else if (!strcmp(beh, "Removed")) s.behavior = SPLIT_REMOVED;
    else if (!strcmp(beh, "MergedWithPrevious")) s.behavior = SPLIT_PREV;
    else if (!strcmp(beh, "MergedWithNext")) s.behavior = SPLIT_NEXT;
    else if (!strcmp(beh, "Contiguous")) s.behavior = SPLIT_CONTIG;
    else
      return r1d_fail(err, R1D_EUNSUPPORTED, "%s: unknown Split behavior '%s'",
                      path, beh);
    json_t *ps = json_object_get(pat, rx ? "Regex" : "String");
    int rc = compile_regex(path, json_string_value(ps), json_string_length(ps),
                           rx == NULL, &s.re, err);
    if (rc) return rc;
    return add_step(t, s) ? r1d_fail(err, R1D_ENOMEM, "out of memory") : 0;
  }
  return r1d_fail(err, R1D_EUNSUPPORTED,
                  "%s: unsupported pre_tokenizer type '%s'", path, type);
}

/* NFC, an empty Sequence, or a Sequence of those; anything else is refused
 * rather than silently ignored. */
static int load_normalizer(r1d_tokenizer *t, const char *path, json_t *nm,
                           r1d_error *err) {
  if (!nm || json_is_null(nm)) return 0;
  const char *type = jstr(nm, "type");
  if (type && !strcmp(type, "NFC")) {
    t->nfc = 1;
    return 0;
  }
  if (type && !strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(nm, "normalizers"), *e;
    size_t i;
    json_array_foreach(arr, i, e) {
      int rc = load_normalizer(t, path, e, err);
      if (rc) return rc;
    }
    return 0;
  }
  return r1d_fail(err, R1D_EUNSUPPORTED, "%s: unsupported normalizer '%s'",
                  path, type ? type : "?");
}

/* Grows the id tables so that id fits. */
static int ensure_ids(r1d_tokenizer *t, int32_t id) {
  if (id < t->n_ids) return 0;
  int n = id + 1;
  const char **s = realloc(t->tok_str, (size_t)n * sizeof *s);
  if (!s) return R1D_ENOMEM;
  t->tok_str = s;
  for (int i = t->n_ids; i < n; i++) s[i] = NULL;
  t->n_ids = n;
  return 0;
}

static int load_vocab(r1d_tokenizer *t, const char *path, json_t *vocab,
                      r1d_error *err) {
  if (!json_is_object(vocab))
    return r1d_fail(err, R1D_EFORMAT, "%s: model.vocab is not an object",
                    path);
  if (smap_init(&t->vocab, json_object_size(vocab)))
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  const char *key;
  json_t *v;
  int32_t max_id = -1;
  json_object_foreach(vocab, key, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > INT32_MAX - 1)
      return r1d_fail(err, R1D_EFORMAT, "%s: bad id for vocab entry '%s'",
                      path, key);
    if ((int32_t)json_integer_value(v) > max_id)
      max_id = (int32_t)json_integer_value(v);
  }
  if (ensure_ids(t, max_id)) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  json_object_foreach(vocab, key, v) {
    int32_t id = (int32_t)json_integer_value(v);
    size_t len = strlen(key);
    char *s = arena_strndup(t, key, len);
    if (!s || smap_put(&t->vocab, s, len, id))
      return r1d_fail(err, R1D_ENOMEM, "out of memory");
    t->tok_str[id] = s;
  }
  return 0;
}

static int load_merges(r1d_tokenizer *t, const char *path, json_t *merges,
                       r1d_error *err) {
  size_t n = json_array_size(merges), cap = 16;
  while (cap < n * 2 + 2) cap *= 2;
  t->merges.v = calloc(cap, sizeof *t->merges.v);
  t->merges.mask = cap - 1;
  if (!t->merges.v) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  buf_t joined = {0};
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *m = json_array_get(merges, i);
    const char *a, *b;
    size_t la, lb;
    if (json_is_string(m)) {
      a = json_string_value(m);
      const char *sp = strchr(a, ' ');
      if (!sp || strchr(sp + 1, ' ')) {
        rc = r1d_fail(err, R1D_EFORMAT, "%s: merge %zu '%s' is not 'a b'",
                      path, i, a);
        break;
      }
      la = (size_t)(sp - a);
      b = sp + 1;
      lb = strlen(b);
    } else if (json_is_array(m) && json_array_size(m) == 2 &&
               json_is_string(json_array_get(m, 0)) &&
               json_is_string(json_array_get(m, 1))) {
      a = json_string_value(json_array_get(m, 0));
      b = json_string_value(json_array_get(m, 1));
      la = json_string_length(json_array_get(m, 0));
      lb = json_string_length(json_array_get(m, 1));
    } else {
      rc = r1d_fail(err, R1D_EFORMAT, "%s: merge %zu is malformed", path, i);
      break;
    }
    joined.n = 0;
    if (buf_add(&joined, a, la) || buf_add(&joined, b, lb)) {
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
      break;
    }
    int32_t ia = smap_get(&t->vocab, a, la), ib = smap_get(&t->vocab, b, lb);
    int32_t ij = smap_get(&t->vocab, joined.p, joined.n);
    if (ia < 0 || ib < 0 || ij < 0) {
      rc = r1d_fail(err, R1D_EFORMAT,
                    "%s: merge %zu '%.*s' + '%.*s' uses a token not in vocab",
                    path, i, (int)la, a, (int)lb, b);
      break;
    }
    merge_slot *e = merge_find(&t->merges, pair_key(ia, ib));
    e->key = pair_key(ia, ib);
    e->rank = (int32_t)i; /* a repeated pair keeps its last rank */
    e->id = ij;
  }
  free(joined.p);
  return rc;
}

static int load_added(r1d_tokenizer *t, const char *path, json_t *arr,
                      r1d_error *err) {
  size_t n = json_array_size(arr), i;
  json_t *e;
  t->added = calloc(n ? n : 1, sizeof *t->added);
  if (!t->added || smap_init(&t->added_map, n + 1))
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  json_array_foreach(arr, i, e) {
    json_t *jid = json_object_get(e, "id");
    json_t *jc = json_object_get(e, "content");
    if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
        json_integer_value(jid) > INT32_MAX - 1 || !json_is_string(jc))
      return r1d_fail(err, R1D_EFORMAT, "%s: added_tokens[%zu] is malformed",
                      path, i);
    added_tok *a = &t->added[t->n_added++];
    a->id = (int32_t)json_integer_value(jid);
    a->content = arena_strndup(t, json_string_value(jc), json_string_length(jc));
    if (!a->content) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    a->special = (uint8_t)jbool(e, "special", 0);
    a->lstrip = (uint8_t)jbool(e, "lstrip", 0);
    a->rstrip = (uint8_t)jbool(e, "rstrip", 0);
    a->single_word = (uint8_t)jbool(e, "single_word", 0);
    a->normalized = (uint8_t)jbool(e, "normalized", !a->special);
    if (ensure_ids(t, a->id) ||
        smap_put(&t->added_map, a->content, json_string_length(jc), a->id))
      return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  return 0;
}

/* Builds the matchers once the normalizer is known: normalized tokens are
 * matched by their normalized form. */
static int build_tries(r1d_tokenizer *t) {
  for (int i = 0; i < 256; i++) t->raw_trie.root[i] = t->norm_trie.root[i] = -1;
  for (int i = 0; i < t->n_added; i++) {
    added_tok *a = &t->added[i];
    size_t len = strlen(a->content);
    a->pattern = a->content;
    if (a->normalized && t->nfc) {
      size_t nl;
      char *p = nfc_dup(a->content, len, &nl);
      if (!p) return R1D_ENOMEM;
      a->pattern = arena_strndup(t, p, nl);
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

/* Fills the per-id tables: token strings (added tokens override the vocab,
 * as `tokenizers` looks them up first), decoded bytes, special flags, and
 * the byte-level lookups the encoder uses. */
static int build_id_tables(r1d_tokenizer *t) {
  uint32_t b2u[256];
  int16_t u2b[0x144];
  bytelevel_table(b2u, u2b);
  for (int i = 0; i < t->n_added; i++) t->tok_str[t->added[i].id] = t->added[i].content;
  t->tok_bytes = calloc((size_t)t->n_ids, sizeof *t->tok_bytes);
  t->tok_blen = calloc((size_t)t->n_ids, sizeof *t->tok_blen);
  t->special = calloc((size_t)t->n_ids, 1);
  if (!t->tok_bytes || !t->tok_blen || !t->special ||
      smap_init(&t->vocab_bytes, t->vocab.n + 1))
    return R1D_ENOMEM;
  for (int i = 0; i < t->n_added; i++)
    if (t->added[i].special) t->special[t->added[i].id] = 1;
  buf_t b = {0};
  for (int32_t id = 0; id < t->n_ids; id++) {
    const char *s = t->tok_str[id];
    if (!s) continue;
    size_t n = strlen(s), i = 0;
    int mapped = 1;
    b.n = 0;
    while (i < n && mapped) {
      uint32_t cp;
      int l = utf8_char((const unsigned char *)s + i, n - i, &cp);
      if (l == 0 || cp >= 0x144 || u2b[cp] < 0) {
        mapped = 0;
        break;
      }
      char c = (char)u2b[cp];
      if (buf_add(&b, &c, 1)) goto nomem;
      i += (size_t)l;
    }
    /* The ByteLevel decoder keeps a token's own UTF-8 when any character of
     * it is outside the byte table. */
    const char *bytes = s;
    size_t blen = n;
    if (mapped) {
      bytes = arena_strndup(t, b.p ? b.p : "", b.n);
      if (!bytes) goto nomem;
      blen = b.n;
    }
    t->tok_bytes[id] = bytes;
    t->tok_blen[id] = (uint32_t)blen;
    if (mapped && smap_get(&t->vocab, s, n) == id &&
        smap_put(&t->vocab_bytes, bytes, blen, id))
      goto nomem;
  }
  free(b.p);
  for (int c = 0; c < 256; c++) {
    char u[4];
    int l = utf8_encode(b2u[c], u);
    t->byte_id[c] = smap_get(&t->vocab, u, (size_t)l);
  }
  return 0;
nomem:
  free(b.p);
  return R1D_ENOMEM;
}

static int load_model(r1d_tokenizer *t, const char *path, json_t *model,
                      r1d_error *err) {
  if (!json_is_object(model))
    return r1d_fail(err, R1D_EFORMAT, "%s: no model object", path);
  const char *type = jstr(model, "type");
  if (type && strcmp(type, "BPE"))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: unsupported tokenizer model type '%s'", path, type);
  json_t *merges = json_object_get(model, "merges");
  if (!type && !json_is_array(merges))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: tokenizer model has no type and no merges", path);
  if (!json_is_array(merges))
    return r1d_fail(err, R1D_EFORMAT, "%s: model.merges is not an array",
                    path);
  if (jbool(model, "byte_fallback", 0))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: BPE with byte_fallback is not supported", path);
  const char *pre = jstr(model, "continuing_subword_prefix");
  const char *suf = jstr(model, "end_of_word_suffix");
  if ((pre && *pre) || (suf && *suf))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: BPE subword prefix/suffix is not supported", path);
  json_t *drop = json_object_get(model, "dropout");
  if (json_is_number(drop) && json_number_value(drop) > 0)
    return r1d_fail(err, R1D_EUNSUPPORTED, "%s: BPE dropout is not supported",
                    path);
  t->ignore_merges = jbool(model, "ignore_merges", 0);
  t->fuse_unk = jbool(model, "fuse_unk", 0);
  int rc = load_vocab(t, path, json_object_get(model, "vocab"), err);
  if (rc) return rc;
  const char *unk = jstr(model, "unk_token");
  t->unk_id = unk ? smap_get(&t->vocab, unk, strlen(unk)) : -1;
  return load_merges(t, path, merges, err);
}

static int load_decoder(const char *path, json_t *dec, r1d_error *err) {
  const char *type = jstr(dec, "type");
  if (type && !strcmp(type, "ByteLevel")) return 0;
  if (type && !strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(dec, "decoders"), *e;
    size_t i;
    json_array_foreach(arr, i, e) {
      int rc = load_decoder(path, e, err);
      if (rc) return rc;
    }
    return 0;
  }
  return r1d_fail(err, R1D_EUNSUPPORTED, "%s: unsupported decoder '%s'", path,
                  type ? type : "null");
}

int r1d_tokenizer_load(const char *path, r1d_tokenizer **out,
                       r1d_error *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return r1d_fail(err, errno == ENOENT ? R1D_ENOTFOUND : R1D_EIO,
                    "%s: cannot open: %s", path, strerror(errno));
  fclose(f);
  char *data;
  size_t size;
  int rc0 = r1d_read_file(path, &data, &size, err);
  if (rc0) return rc0;
  json_error_t je;
  json_t *root = json_loadb(data, size, 0, &je);
  free(data);
  if (!root)
    return r1d_fail(err, R1D_EFORMAT, "%s:%d:%d: invalid JSON: %s", path,
                    je.line, je.column, je.text);
  r1d_tokenizer *t = calloc(1, sizeof *t);
  int rc = 0, have_bl = 0;
  if (!t) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto done;
  }
  if (!json_is_object(root)) {
    rc = r1d_fail(err, R1D_EFORMAT, "%s: not a JSON object", path);
    goto done;
  }
  if ((rc = load_model(t, path, json_object_get(root, "model"), err)) ||
      (rc = load_added(t, path, json_object_get(root, "added_tokens"), err)) ||
      (rc = load_normalizer(t, path, json_object_get(root, "normalizer"),
                            err)) ||
      (rc = load_pretok(t, path, json_object_get(root, "pre_tokenizer"),
                        &have_bl, err)) ||
      (rc = load_decoder(path, json_object_get(root, "decoder"), err)))
    goto done;
  if (!have_bl) {
    rc = r1d_fail(err, R1D_EUNSUPPORTED,
                  "%s: only byte-level BPE (a ByteLevel pre_tokenizer) is "
                  "supported",
                  path);
    goto done;
  }
  if (build_tries(t) || build_id_tables(t)) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto done;
  }
done:
  json_decref(root);
  if (rc) r1d_tokenizer_free(t);
  else *out = t;
  return rc;
}

int r1d_tokenizer_load_dir(const char *dir, r1d_tokenizer **out,
                           r1d_error *err) {
  size_t n = strlen(dir);
  char *p = malloc(n + sizeof "/tokenizer.json");
  if (!p) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  memcpy(p, dir, n);
  memcpy(p + n, "/tokenizer.json", sizeof "/tokenizer.json");
  int rc = r1d_tokenizer_load(p, out, err);
  free(p);
  return rc;
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct {
  uint32_t off, len;
} span;

typedef struct {
  span *v;
  size_t n, cap;
} spans;

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

/* BPE scratch: a doubly linked list of symbols over the word's bytes. */
typedef struct {
  int32_t id, prev, next;
} sym;

typedef struct {
  int32_t rank, pos, id;
} heap_ent;

typedef struct {
  const r1d_tokenizer *t;
  r1d_ids *ids;
  r1d_error *err;
  pcre2_match_data *md;
  buf_t text;        /* the piece being pre-tokenized (+ prefix spaces) */
  spans cur, next;   /* pre-tokenizer splits, offsets into text */
  sym *syms;
  size_t syms_cap;
  heap_ent *heap;
  size_t heap_n, heap_cap;
} enc_ctx;

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

static const merge_slot *merge_get(const r1d_tokenizer *t, int32_t a,
                                   int32_t b) {
  const merge_slot *e = merge_find(&t->merges, pair_key(a, b));
  return e->key ? e : NULL;
}

/* Pushes the candidate merge of symbol i with its successor, if any. */
static int push_pair(enc_ctx *c, int32_t i) {
  if (i < 0 || c->syms[i].next < 0) return 0;
  const merge_slot *m = merge_get(c->t, c->syms[i].id, c->syms[c->syms[i].next].id);
  if (!m) return 0;
  return heap_push(c, (heap_ent){m->rank, i, m->id});
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
    c->syms[m] = (sym){id, m - 1, -1};
    if (m > 0) c->syms[m - 1].next = m;
    m++;
  }
  if (m == 0) return 0;
  c->heap_n = 0;
  for (int32_t i = 0; i + 1 < m; i++)
    if (push_pair(c, i)) return R1D_ENOMEM;
  while (c->heap_n) {
    heap_ent e = heap_pop(c);
    sym *s = &c->syms[e.pos];
    if (s->id < 0 || s->next < 0) continue; /* merged away meanwhile */
    const merge_slot *cur = merge_get(t, s->id, c->syms[s->next].id);
    if (!cur || cur->id != e.id) continue; /* stale entry */
    int32_t nx = s->next;
    s->id = e.id;
    s->next = c->syms[nx].next;
    if (s->next >= 0) c->syms[s->next].prev = e.pos;
    c->syms[nx].id = -1;
    if (push_pair(c, s->prev) || push_pair(c, e.pos)) return R1D_ENOMEM;
  }
  for (int32_t i = 0; i >= 0; i = c->syms[i].next)
    if (r1d_ids_push(c->ids, c->syms[i].id)) return R1D_ENOMEM;
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
      int rc = pcre2_match(st->re, s, sp.len, pos, PCRE2_NO_UTF_CHECK, c->md,
                           NULL);
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
        pos = me + (size_t)utf8_char(s + me, sp.len - me, &cp);
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
      if (buf_add(&c->text, " ", 1) || buf_reserve(&c->text, sp->len))
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
  if (buf_add(&c->text, s, n) || spans_push(&c->cur, 0, (uint32_t)n))
    return R1D_ENOMEM;
  for (int i = 0; i < c->t->n_steps; i++) {
    const pretok_step *st = &c->t->steps[i];
    int rc = i == c->t->n_steps - 1 ? bytelevel_step(c, st) : split_step(c, st);
    if (rc) return rc;
  }
  for (size_t k = 0; k < c->cur.n; k++) {
    int rc = bpe_word(c, (const unsigned char *)c->text.p + c->cur.v[k].off,
                      c->cur.v[k].len);
    if (rc) return rc;
  }
  return 0;
}

static int is_word_char(uint32_t cp) {
  if (cp == '_') return 1;
  utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_ND);
}

/* Last character of s[0..n) (n > 0, valid UTF-8). */
static uint32_t last_char(const char *s, size_t n, size_t *start) {
  size_t i = n - 1;
  while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
  uint32_t cp = 0;
  utf8_char((const unsigned char *)s + i, n - i, &cp);
  if (start) *start = i;
  return cp;
}

typedef int (*gap_fn)(enc_ctx *c, const char *s, size_t n);

/* Splits s[0..n) on the added tokens of trie `tr` like `tokenizers`'
 * leftmost-longest matcher (with its single_word, lstrip and rstrip rules);
 * gaps go to `gap`, matches become their ids. */
static int split_added(enc_ctx *c, const trie_t *tr, const char *s, size_t n,
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
      int after = stop < n && utf8_char((const unsigned char *)s + stop,
                                        n - stop, &cp) &&
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
             (l = utf8_char((const unsigned char *)s + stop, n - stop, &cp)) &&
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
 * normalized added tokens inside it. */
static int encode_gap(enc_ctx *c, const char *s, size_t n) {
  if (n == 0) return 0;
  char *norm = NULL;
  if (c->t->nfc && !nfc_trivially_stable(s, n)) {
    size_t nl;
    norm = nfc_dup(s, n, &nl);
    if (!norm) return r1d_fail(c->err, R1D_ENOMEM, "out of memory");
    s = norm;
    n = nl;
  }
  int rc = split_added(c, &c->t->norm_trie, s, n, encode_plain);
  free(norm);
  return rc;
}

int r1d_tokenizer_encode(const r1d_tokenizer *t, const char *text, size_t len,
                         r1d_ids *ids, r1d_error *err) {
  for (size_t i = 0; i < len;) {
    unsigned char ch = (unsigned char)text[i];
    if (ch < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    int l = utf8_char((const unsigned char *)text + i, len - i, &cp);
    if (l == 0)
      return r1d_fail(err, R1D_EINVAL,
                      "text to encode is not valid UTF-8 (byte 0x%02x at "
                      "offset %zu)",
                      ch, i);
    i += (size_t)l;
  }
  enc_ctx c = {.t = t, .ids = ids, .err = err};
  c.md = pcre2_match_data_create(1, NULL);
  if (!c.md) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  size_t n0 = ids->n;
  int rc = split_added(&c, &t->raw_trie, text, len, encode_gap);
  if (rc == R1D_ENOMEM) r1d_fail(err, rc, "out of memory while encoding");
  if (rc) ids->n = n0;
  pcre2_match_data_free(c.md);
  free(c.text.p);
  free(c.cur.v);
  free(c.next.v);
  free(c.syms);
  free(c.heap);
  return rc;
}

/* ---- decoding and lookups ----------------------------------------------- */

int r1d_tokenizer_decode(const r1d_tokenizer *t, const int32_t *ids, size_t n,
                         int skip_special, char **text, size_t *len,
                         r1d_error *err) {
  *text = NULL;
  if (len) *len = 0;
  buf_t raw = {0}, out = {0};
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    if (id < 0 || id >= t->n_ids || !t->tok_str[id]) {
      rc = r1d_fail(err, R1D_ERANGE, "token id %d at position %zu is not in "
                    "the vocabulary (size %d)", (int)id, i, t->n_ids);
      goto done;
    }
    if (skip_special && t->special[id]) continue;
    if (buf_add(&raw, t->tok_bytes[id], t->tok_blen[id])) goto nomem;
  }
  /* from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD */
  if (buf_reserve(&out, raw.n + 1)) goto nomem;
  for (size_t i = 0; i < raw.n;) {
    uint32_t cp;
    const unsigned char *p = (const unsigned char *)raw.p + i;
    int l = utf8_char(p, raw.n - i, &cp);
    if (l > 0) {
      if (buf_add(&out, p, (size_t)l)) goto nomem;
      i += (size_t)l;
    } else {
      if (buf_add(&out, "\xEF\xBF\xBD", 3)) goto nomem;
      i += (size_t)utf8_bad_len(p, raw.n - i);
    }
  }
  if (buf_add(&out, "", 1)) goto nomem;
  *text = out.p;
  if (len) *len = out.n - 1;
  out.p = NULL;
  goto done;
nomem:
  rc = r1d_fail(err, R1D_ENOMEM, "out of memory while decoding");
done:
  free(raw.p);
  free(out.p);
  return rc;
}

const char *r1d_tokenizer_token_bytes(const r1d_tokenizer *t, int32_t id,
                                      size_t *len) {
  if (id < 0 || id >= t->n_ids || !t->tok_str[id]) return NULL;
  if (len) *len = t->tok_blen[id];
  return t->tok_bytes[id];
}

const char *r1d_tokenizer_id_to_token(const r1d_tokenizer *t, int32_t id) {
  if (id < 0 || id >= t->n_ids) return NULL;
  return t->tok_str[id];
}

int32_t r1d_tokenizer_token_to_id(const r1d_tokenizer *t, const char *token) {
  size_t n = strlen(token);
  int32_t id = smap_get(&t->added_map, token, n);
  return id >= 0 ? id : smap_get(&t->vocab, token, n);
}

int r1d_tokenizer_is_special(const r1d_tokenizer *t, int32_t id) {
  return id >= 0 && id < t->n_ids && t->special[id];
}

int r1d_tokenizer_vocab_size(const r1d_tokenizer *t) { return t->n_ids; }

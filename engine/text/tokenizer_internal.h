/* tokenizer_internal.h - what the tokenizer's files share: the loaded
 * tokenizer struct, its lookup tables (string -> id map, merge map, added-
 * token tries), the per-call encode context, and the small helpers every
 * step needs (hashing; the byte buffer and UTF-8 decoding are common/'s).
 *
 * Private to engine/text/tokenizer*.c; everyone else uses tokenizer.h. The
 * helpers here are static inline because they sit on the encode hot path
 * (one call per byte or per merge) and must be inlined into each file that
 * calls them. Functions shared between files carry a tok_ prefix so the
 * core library exports no generic names such as buf_add or smap_put. */
#ifndef R1D_ENGINE_TEXT_TOKENIZER_INTERNAL_H
#define R1D_ENGINE_TEXT_TOKENIZER_INTERNAL_H

#include "tokenizer.h"

#include "../../common/buf.h"
#include "../../common/utf8.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- hashing -------------------------------------------------- */

static inline uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

static inline uint64_t hash_bytes(const char *s, size_t n) {
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

/* ---- string -> id map (open addressing; keys point into owned memory) --- */

typedef struct {
  const char *s;
  uint32_t len;
  int32_t id;
} smap_slot;

typedef struct {
  smap_slot *v;
  size_t mask, n;
} smap;

/* Returns the slot holding key, or the empty slot where it would go. */
static inline smap_slot *smap_find(const smap *m, const char *s, size_t len) {
  size_t i = hash_bytes(s, len) & m->mask;
  for (;;) {
    smap_slot *e = &m->v[i];
    if (!e->s || (e->len == len && memcmp(e->s, s, len) == 0)) return e;
    i = (i + 1) & m->mask;
  }
}

static inline int32_t smap_get(const smap *m, const char *s, size_t len) {
  if (!m->v) return -1;
  smap_slot *e = smap_find(m, s, len);
  return e->s ? e->id : -1;
}

/* tokenizer_tables.c; maps are filled only while loading. */
int tok_smap_init(smap *m, size_t expect);
/* Inserts or overwrites (later entries win, like a Rust HashMap collect). */
int tok_smap_put(smap *m, const char *s, size_t len, int32_t id);

/* ---- (id, id) -> merge map ---------------------------------------------- */

typedef struct {
  uint64_t key; /* (left << 32 | right) + 1; 0 marks an empty slot */
  int32_t rank, id;
} merge_slot;

typedef struct {
  merge_slot *v;
  size_t mask;
} merge_map;

static inline merge_slot *merge_find(const merge_map *m, uint64_t key) {
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

/* ---- added-token matcher: a byte trie, longest match per position ------- */

/* Built by tokenizer_tables.c (trie_add), searched by tokenizer_pretok.c
 * (trie_longest). */
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
  char *content; /* as written in tokenizer.json */
  char *pattern; /* what is matched: content, or NFC(content) */
  int32_t id;
  uint8_t special, lstrip, rstrip, single_word, normalized;
} added_tok;

/* ---- the tokenizer ------------------------------------------------------ */

enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_PREV, SPLIT_NEXT, SPLIT_CONTIG };

typedef struct {
  pcre2_code *re; /* NULL for a ByteLevel step without regex */
  int behavior, invert;
  int prefix_space; /* ByteLevel add_prefix_space */
} pretok_step;

struct r1d_tokenizer {
  int n_ids;              /* one past the largest id */
  const char **tok_str;   /* id -> token string, NULL for holes */
  const char **tok_bytes; /* id -> decoded bytes */
  uint32_t *tok_blen;
  uint8_t *special; /* id -> 1 if a special added token */
  smap vocab;       /* model vocabulary string -> id */
  smap vocab_bytes; /* decoded bytes of byte-level vocab tokens -> id */
  smap added_map;   /* added token content -> id */
  merge_map merges;
  int32_t byte_id[256]; /* id of each byte's ByteLevel character */
  /* [a * 256 + b]: the merge of two single bytes. Most lookups are these,
   * and this dense table stays in cache where the big hash does not. */
  merge_slot *byte_pairs;
  int ignore_merges;
  int32_t unk_id;
  int32_t bos_to_add; /* BOS the post-processor / config adds, or -1 */
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

static inline const merge_slot *merge_get(const r1d_tokenizer *t, int32_t a,
                                          int32_t b) {
  const merge_slot *e = merge_find(&t->merges, pair_key(a, b));
  return e->key ? e : NULL;
}

/* ---- the per-call encode context ---------------------------------------- */

/* A pre-tokenizer split: offsets into enc_ctx.text. */
typedef struct {
  uint32_t off, len;
} span;

typedef struct {
  span *v;
  size_t n, cap;
} spans;

/* BPE scratch: a doubly linked list of symbols over the word's bytes. */
typedef struct {
  int32_t id, prev, next;
  int32_t byte; /* the byte while the symbol is a single one, else -1 */
} sym;

typedef struct {
  int32_t rank, pos, id;
} heap_ent;

/* All scratch memory of one r1d_tokenizer_encode call, so the tokenizer
 * itself stays read-only and shareable between threads. */
typedef struct {
  const r1d_tokenizer *t;
  r1d_ids *ids;
  r1d_error *err;
  pcre2_match_data *md;
  r1d_buf text;    /* the piece being pre-tokenized (+ prefix spaces) */
  spans cur, next; /* pre-tokenizer splits, offsets into text */
  sym *syms;
  size_t syms_cap;
  heap_ent *heap;
  size_t heap_n, heap_cap;
} enc_ctx;

/* ---- functions shared between the tokenizer's files --------------------- */

/* tokenizer_tables.c: owned strings and the lookups derived after parsing. */
char *tok_arena_strndup(r1d_tokenizer *t, const char *s, size_t n);
int tok_build_tries(r1d_tokenizer *t);
int tok_build_id_tables(r1d_tokenizer *t);

/* tokenizer_unicode.c: NFC and regexes as `tokenizers` computes them. */
char *tok_nfc_dup(const char *s, size_t n, size_t *out_len);
int tok_nfc_trivially_stable(const char *s, size_t n);
int tok_compile_regex(const char *path, const char *pat, size_t n, int literal,
                      pcre2_code **out, r1d_error *err);

/* tokenizer_pretok.c: tok_split_added cuts text at the added tokens of one
 * trie, passing the gaps to `gap`; tok_normalize_gap is the gap handler for
 * raw text up to pre-tokenization (normalize, cut at the normalized added
 * tokens, the rest to `plain`); tok_encode_gap is it with pre-tokenize + BPE
 * as `plain` (bpe_train.c counts words with its own). */
typedef int (*gap_fn)(enc_ctx *c, const char *s, size_t n);
int tok_split_added(enc_ctx *c, const trie_t *tr, const char *s, size_t n,
                    gap_fn gap);
int tok_normalize_gap(enc_ctx *c, const char *s, size_t n, gap_fn plain);
int tok_encode_gap(enc_ctx *c, const char *s, size_t n);

/* tokenizer_bpe.c: merges each pre-tokenized word in c->cur (spans of
 * c->text), in order, and appends their ids. */
int tok_bpe_words(enc_ctx *c);

#endif

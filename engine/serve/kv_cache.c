/* kv_cache.c - paged KV bookkeeping: block pool, block tables, prefix cache,
 * copy-on-write.
 *
 * Every block is in exactly one state:
 *   free    refcount 0, not published, on the free stack;
 *   cached  refcount 0, published, on the LRU list (evictable);
 *   used    refcount > 0 (published or private).
 * A fresh block comes from the free stack first, else the LRU head (the
 * cached block released longest ago) is evicted: unpublished and reused.
 *
 * Prefix cache. A full block's chain hash mixes its parent's chain hash (a
 * fixed seed for the first block) with its block_size tokens, so equal
 * hashes mean "same tokens from position 0" with overwhelming probability.
 * The hash table (open addressing, linear probing, power-of-two size at
 * least twice n_blocks, deletion by backward shift) maps chain hashes to
 * published blocks. Because a 64-bit hash can still collide, a published
 * block also keeps its tokens and its parent (block id plus the parent's
 * generation, bumped whenever a block is reallocated); a lookup accepts a
 * block only when all of them agree, so by induction along the chain an
 * attached block holds the KV of exactly the prompt's tokens. A child whose
 * parent was evicted is never matched again (the parent's generation moved
 * on) and simply ages out of the LRU.
 *
 * Two sequences that computed the same prompt side by side both end up with
 * an equal block; the first commit publishes it, the second finds it and
 * keeps its own block private, remembering the published one as its alias.
 * Later blocks of the second sequence are then published with the alias as
 * parent, so a follow-up prompt can still walk the whole chain. A block is
 * only published when its parent is published: anything else could never
 * be reached by a match.
 *
 * A sequence's release drops its blocks last first, so the LRU evicts the
 * tail of a prompt before its head (the head is the part others share, and
 * evicting a parent orphans its children).
 *
 * All of it is integer bookkeeping; the runner does the KV writes and the
 * copies this file reports. */
#include "kv_cache.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* First block's parent hash: any fixed value; "R1D-kv" in ASCII. */
#define KV_HASH_SEED 0x5231442d6b76ULL

struct r1d_kv_pool {
  int n_blocks, block_size, max_blocks_per_seq, prefix_cache;

  int32_t *refcount; /* [n_blocks] */
  uint32_t *gen;     /* [n_blocks] bumped on every (re)allocation */
  int32_t *free_stack;
  int n_free;

  /* Prefix cache (allocated only when enabled). */
  uint8_t *published;   /* [n_blocks] in the hash table */
  uint64_t *chain_hash; /* [n_blocks] valid while published */
  int32_t *parent;      /* [n_blocks] parent block id, -1 for the first */
  uint32_t *parent_gen; /* [n_blocks] the parent's gen when published */
  int32_t *tokens;      /* [n_blocks * block_size] */
  int32_t *alias;       /* [n_blocks] equal published block, or -1 */
  uint32_t *alias_gen;  /* [n_blocks] its gen when recorded */
  int32_t *ht;          /* [ht_mask + 1] block id or -1 */
  size_t ht_mask;
  int32_t *lru_prev, *lru_next; /* [n_blocks] cached blocks, oldest first */
  int32_t lru_head, lru_tail;
  int n_cached;
  uint64_t hash_mask; /* all ones, except under r1d_kv_pool_debug_hash_bits */

  uint64_t prefix_queries, prefix_hit_tokens, prefix_hit_blocks;
  uint64_t evictions, cow_copies;
};

/* ---- hashing ---- */

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

static uint64_t chain_hash(const r1d_kv_pool *p, uint64_t parent_hash,
                           const int32_t *toks) {
  uint64_t h = parent_hash;
  for (int i = 0; i < p->block_size; i++)
    h = mix64(h + 0x9e3779b97f4a7c15ULL + (uint64_t)(uint32_t)toks[i]);
  return h & p->hash_mask;
}

/* ---- hash table ---- */

static size_t ht_home(const r1d_kv_pool *p, uint64_t h) {
  return (size_t)h & p->ht_mask;
}

/* The published block with this hash, tokens and parent, or -1. */
static int32_t ht_find(const r1d_kv_pool *p, uint64_t h, const int32_t *toks,
                       int32_t parent, uint32_t parent_gen) {
  size_t bs = (size_t)p->block_size;
  for (size_t i = ht_home(p, h);; i = (i + 1) & p->ht_mask) {
    int32_t b = p->ht[i];
    if (b < 0) return -1;
    if (p->chain_hash[b] != h || p->parent[b] != parent) continue;
    if (parent >= 0 && p->parent_gen[b] != parent_gen) continue;
    if (memcmp(p->tokens + (size_t)b * bs, toks, bs * sizeof *toks) == 0)
      return b;
  }
}

/* The table never fills: it has at least twice as many slots as blocks. */
static void ht_insert(r1d_kv_pool *p, int32_t b) {
  size_t i = ht_home(p, p->chain_hash[b]);
  while (p->ht[i] >= 0)
    i = (i + 1) & p->ht_mask;
  p->ht[i] = b;
}

/* Removes b and shifts later entries of its probe run back, so lookups never
 * need tombstones. */
static void ht_remove(r1d_kv_pool *p, int32_t b) {
  size_t i = ht_home(p, p->chain_hash[b]);
  while (p->ht[i] != b)
    i = (i + 1) & p->ht_mask;
  p->ht[i] = -1;
  for (size_t j = (i + 1) & p->ht_mask; p->ht[j] >= 0;
       j = (j + 1) & p->ht_mask) {
    size_t k = ht_home(p, p->chain_hash[p->ht[j]]);
    /* An entry whose home lies cyclically in (i, j] is still reachable. */
    int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    p->ht[i] = p->ht[j];
    p->ht[j] = -1;
    i = j;
  }
}

/* ---- LRU of cached blocks ---- */

static void lru_push_tail(r1d_kv_pool *p, int32_t b) {
  p->lru_prev[b] = p->lru_tail;
  p->lru_next[b] = -1;
  if (p->lru_tail >= 0)
    p->lru_next[p->lru_tail] = b;
  else
    p->lru_head = b;
  p->lru_tail = b;
  p->n_cached++;
}

static void lru_unlink(r1d_kv_pool *p, int32_t b) {
  int32_t pr = p->lru_prev[b], nx = p->lru_next[b];
  if (pr >= 0)
    p->lru_next[pr] = nx;
  else
    p->lru_head = nx;
  if (nx >= 0)
    p->lru_prev[nx] = pr;
  else
    p->lru_tail = pr;
  p->lru_prev[b] = p->lru_next[b] = -1;
  p->n_cached--;
}

/* ---- block states ---- */

static int is_published(const r1d_kv_pool *p, int32_t b) {
  return p->published && p->published[b];
}

static void unpublish(r1d_kv_pool *p, int32_t b) {
  ht_remove(p, b);
  p->published[b] = 0;
}

/* A fresh block with refcount 1. The caller made sure one exists. */
static int32_t block_alloc(r1d_kv_pool *p) {
  int32_t b;
  if (p->n_free > 0) {
    b = p->free_stack[--p->n_free];
  } else {
    b = p->lru_head;
    lru_unlink(p, b);
    unpublish(p, b);
    p->evictions++;
  }
  p->refcount[b] = 1;
  p->gen[b]++;
  if (p->alias) p->alias[b] = -1;
  return b;
}

/* Takes a reference on a block found in the cache (it may be cached). */
static void block_attach(r1d_kv_pool *p, int32_t b) {
  if (p->refcount[b]++ == 0) lru_unlink(p, b);
}

static void block_drop(r1d_kv_pool *p, int32_t b) {
  if (--p->refcount[b] > 0) return;
  if (is_published(p, b))
    lru_push_tail(p, b);
  else
    p->free_stack[p->n_free++] = b;
}

/* The published block holding the same KV as b, or b itself. */
static int32_t canonical(const r1d_kv_pool *p, int32_t b) {
  if (is_published(p, b)) return b;
  int32_t a = p->alias[b];
  if (a >= 0 && p->published[a] && p->gen[a] == p->alias_gen[b]) return a;
  return b;
}

/* ---- pool ---- */

void r1d_kv_pool_destroy(r1d_kv_pool *p) {
  if (!p) return;
  free(p->refcount);
  free(p->gen);
  free(p->free_stack);
  free(p->published);
  free(p->chain_hash);
  free(p->parent);
  free(p->parent_gen);
  free(p->tokens);
  free(p->alias);
  free(p->alias_gen);
  free(p->ht);
  free(p->lru_prev);
  free(p->lru_next);
  free(p);
}

static int alloc_prefix_cache(r1d_kv_pool *p) {
  size_t n = (size_t)p->n_blocks;
  size_t cap = 2;
  while (cap < 2 * n)
    cap *= 2;
  p->ht_mask = cap - 1;
  p->published = calloc(n, sizeof *p->published);
  p->chain_hash = calloc(n, sizeof *p->chain_hash);
  p->parent = calloc(n, sizeof *p->parent);
  p->parent_gen = calloc(n, sizeof *p->parent_gen);
  p->tokens = calloc(n * (size_t)p->block_size, sizeof *p->tokens);
  p->alias = malloc(n * sizeof *p->alias);
  p->alias_gen = calloc(n, sizeof *p->alias_gen);
  p->ht = malloc(cap * sizeof *p->ht);
  p->lru_prev = malloc(n * sizeof *p->lru_prev);
  p->lru_next = malloc(n * sizeof *p->lru_next);
  if (!p->published || !p->chain_hash || !p->parent || !p->parent_gen ||
      !p->tokens || !p->alias || !p->alias_gen || !p->ht || !p->lru_prev ||
      !p->lru_next)
    return R1D_ENOMEM;
  for (size_t i = 0; i < cap; i++)
    p->ht[i] = -1;
  for (size_t i = 0; i < n; i++)
    p->alias[i] = p->lru_prev[i] = p->lru_next[i] = -1;
  return 0;
}

int r1d_kv_pool_create(int n_blocks, int block_size, int max_blocks_per_seq,
                       int prefix_cache, r1d_kv_pool **out) {
  if (!out) return R1D_EINVAL;
  *out = NULL;
  /* Limit n_blocks so the hash table size (2x, rounded up) fits easily. */
  if (n_blocks < 1 || n_blocks > (1 << 29) || block_size < 1 ||
      max_blocks_per_seq < 1)
    return R1D_EINVAL;
  r1d_kv_pool *p = calloc(1, sizeof *p);
  if (!p) return R1D_ENOMEM;
  p->n_blocks = n_blocks;
  p->block_size = block_size;
  p->max_blocks_per_seq = max_blocks_per_seq;
  p->prefix_cache = prefix_cache != 0;
  p->lru_head = p->lru_tail = -1;
  p->hash_mask = ~0ULL;
  size_t n = (size_t)n_blocks;
  p->refcount = calloc(n, sizeof *p->refcount);
  p->gen = calloc(n, sizeof *p->gen);
  p->free_stack = malloc(n * sizeof *p->free_stack);
  if (!p->refcount || !p->gen || !p->free_stack) goto nomem;
  /* Pushed high to low so a fresh pool hands out blocks 0, 1, 2, ... */
  for (int i = 0; i < n_blocks; i++)
    p->free_stack[i] = n_blocks - 1 - i;
  p->n_free = n_blocks;
  if (p->prefix_cache && alloc_prefix_cache(p) != 0) goto nomem;
  *out = p;
  return 0;
nomem:
  r1d_kv_pool_destroy(p);
  return R1D_ENOMEM;
}

int r1d_kv_pool_block_size(const r1d_kv_pool *p) {
  return p->block_size;
}

int r1d_kv_pool_available(const r1d_kv_pool *p) {
  return p->n_free + p->n_cached;
}

void r1d_kv_pool_stats(const r1d_kv_pool *p, r1d_kv_stats *st) {
  memset(st, 0, sizeof *st);
  st->total = p->n_blocks;
  st->free = p->n_free;
  st->cached = p->n_cached;
  st->used = p->n_blocks - p->n_free - p->n_cached;
  st->prefix_queries = p->prefix_queries;
  st->prefix_hit_tokens = p->prefix_hit_tokens;
  st->prefix_hit_blocks = p->prefix_hit_blocks;
  st->evictions = p->evictions;
  st->cow_copies = p->cow_copies;
}

void r1d_kv_pool_clear_prefix_cache(r1d_kv_pool *p) {
  if (!p->prefix_cache) return;
  /* Cached blocks go back to the free list; used ones just turn private. */
  while (p->lru_head >= 0) {
    int32_t b = p->lru_head;
    lru_unlink(p, b);
    p->free_stack[p->n_free++] = b;
  }
  for (int b = 0; b < p->n_blocks; b++) {
    p->published[b] = 0;
    p->alias[b] = -1;
  }
  for (size_t i = 0; i <= p->ht_mask; i++)
    p->ht[i] = -1;
}

/* ---- sequences ---- */

int r1d_kv_seq_init(r1d_kv_pool *p, r1d_kv_seq *s) {
  memset(s, 0, sizeof *s);
  size_t cap = (size_t)p->max_blocks_per_seq;
  /* Zeroed, so a copy of the whole struct or arrays is fully defined. */
  s->blocks = calloc(cap, sizeof *s->blocks);
  s->hashes = calloc(cap, sizeof *s->hashes);
  if (!s->blocks || !s->hashes) {
    r1d_kv_seq_free(s);
    return R1D_ENOMEM;
  }
  s->cap_blocks = p->max_blocks_per_seq;
  return 0;
}

void r1d_kv_seq_free(r1d_kv_seq *s) {
  if (!s) return;
  free(s->blocks);
  free(s->hashes);
  memset(s, 0, sizeof *s);
}

int r1d_kv_pool_peek_prefix(const r1d_kv_pool *p, const int32_t *tokens, int n,
                            int *idle_blocks) {
  *idle_blocks = 0;
  if (!p->prefix_cache || n <= 0 || !tokens) return 0;
  int bs = p->block_size;
  int max = (n - 1) / bs; /* as match_prefix: the last token is computed */
  if (max > p->max_blocks_per_seq) max = p->max_blocks_per_seq;
  uint64_t h = KV_HASH_SEED;
  int32_t parent = -1;
  int k = 0;
  for (; k < max; k++) {
    const int32_t *tk = tokens + (size_t)k * bs;
    h = chain_hash(p, h, tk);
    int32_t b = ht_find(p, h, tk, parent, parent >= 0 ? p->gen[parent] : 0);
    if (b < 0) break;
    if (p->refcount[b] == 0) (*idle_blocks)++;
    parent = b;
  }
  return k * bs;
}

int r1d_kv_seq_match_prefix(r1d_kv_pool *p, r1d_kv_seq *s,
                            const int32_t *tokens, int n) {
  if (s->n_blocks != 0 || s->n_tokens != 0 || n < 0 || (n > 0 && !tokens))
    return R1D_EINVAL;
  p->prefix_queries++;
  if (!p->prefix_cache || n == 0) return 0;
  int bs = p->block_size;
  /* The last token is always computed: its logits start the generation. */
  int max = (n - 1) / bs;
  if (max > s->cap_blocks) max = s->cap_blocks;
  uint64_t h = KV_HASH_SEED;
  int32_t parent = -1;
  int k = 0;
  for (; k < max; k++) {
    const int32_t *tk = tokens + (size_t)k * bs;
    h = chain_hash(p, h, tk);
    int32_t b = ht_find(p, h, tk, parent, parent >= 0 ? p->gen[parent] : 0);
    if (b < 0) break;
    block_attach(p, b);
    s->blocks[k] = b;
    s->hashes[k] = h;
    parent = b;
  }
  s->n_blocks = s->n_hashed = k;
  s->n_tokens = s->n_committed = k * bs;
  p->prefix_hit_blocks += (uint64_t)k;
  p->prefix_hit_tokens += (uint64_t)k * (uint64_t)bs;
  return k * bs;
}

/* Whether appending to s writes into a shared, partly filled last block. */
static int needs_cow(const r1d_kv_pool *p, const r1d_kv_seq *s) {
  return s->n_tokens % p->block_size != 0 &&
         p->refcount[s->blocks[s->n_blocks - 1]] > 1;
}

/* Blocks the table holds after n_tokens + n positions (n_tokens + n must
 * not overflow; the caller checked). */
static int blocks_for(const r1d_kv_pool *p, int tokens) {
  return (int)(((int64_t)tokens + p->block_size - 1) / p->block_size);
}

int r1d_kv_seq_blocks_needed(const r1d_kv_pool *p, const r1d_kv_seq *s, int n) {
  if (n <= 0) return 0;
  int64_t total =
      ((int64_t)s->n_tokens + n + p->block_size - 1) / p->block_size;
  int64_t need = total - s->n_blocks + needs_cow(p, s);
  return need > INT_MAX ? INT_MAX : (int)need;
}

int r1d_kv_seq_append(r1d_kv_pool *p, r1d_kv_seq *s, int n, int64_t *slots,
                      r1d_kv_copy *copy, int *n_copy) {
  if (n_copy) *n_copy = 0;
  if (n < 0) return R1D_EINVAL;
  if (n == 0) return 0;
  if (n > INT_MAX - s->n_tokens) return R1D_ERANGE;
  int total = blocks_for(p, s->n_tokens + n);
  if (total > s->cap_blocks) return R1D_ERANGE;
  int cow = needs_cow(p, s);
  if (cow && (!copy || !n_copy)) return R1D_EINVAL;
  if (total - s->n_blocks + cow > r1d_kv_pool_available(p)) return R1D_EBUSY;

  if (cow) {
    int32_t src = s->blocks[s->n_blocks - 1];
    int32_t dst = block_alloc(p);
    p->refcount[src]--; /* was > 1: still used by its other sequences */
    s->blocks[s->n_blocks - 1] = dst;
    copy->src = src;
    copy->dst = dst;
    *n_copy = 1;
    p->cow_copies++;
  }
  while (s->n_blocks < total)
    s->blocks[s->n_blocks++] = block_alloc(p);
  if (slots) {
    int bs = p->block_size;
    for (int i = 0; i < n; i++) {
      int pos = s->n_tokens + i;
      slots[i] = (int64_t)s->blocks[pos / bs] * bs + pos % bs;
    }
  }
  s->n_tokens += n;
  return 0;
}

/* Publishes s's full block i (chain hash h) unless an equal block already
 * is; returns the published block that now stands for position i. */
static int32_t publish_block(r1d_kv_pool *p, r1d_kv_seq *s, int i, uint64_t h,
                             const int32_t *tk, int32_t parent) {
  int32_t b = s->blocks[i];
  if (p->published[b]) return b; /* shared with a sibling that published */
  uint32_t pgen = parent >= 0 ? p->gen[parent] : 0;
  int32_t y = ht_find(p, h, tk, parent, pgen);
  if (y >= 0) {
    p->alias[b] = y;
    p->alias_gen[b] = p->gen[y];
    return y;
  }
  if (parent >= 0 && !p->published[parent]) return b; /* unreachable */
  size_t bs = (size_t)p->block_size;
  memcpy(p->tokens + (size_t)b * bs, tk, bs * sizeof *tk);
  p->chain_hash[b] = h;
  p->parent[b] = parent;
  p->parent_gen[b] = pgen;
  p->published[b] = 1;
  ht_insert(p, b);
  return b;
}

void r1d_kv_seq_commit(r1d_kv_pool *p, r1d_kv_seq *s, const int32_t *tokens,
                       int upto) {
  if (upto > s->n_tokens) upto = s->n_tokens;
  if (upto < 0) upto = 0;
  if (upto > s->n_committed) s->n_committed = upto;
  if (!p->prefix_cache || !tokens) return;
  int bs = p->block_size;
  int full = upto / bs; /* tokens holds only `upto` ids */
  int i = s->n_hashed;
  int32_t parent = i > 0 ? canonical(p, s->blocks[i - 1]) : -1;
  for (; i < full; i++) {
    const int32_t *tk = tokens + (size_t)i * bs;
    uint64_t h = chain_hash(p, i > 0 ? s->hashes[i - 1] : KV_HASH_SEED, tk);
    s->hashes[i] = h;
    parent = publish_block(p, s, i, h, tk, parent);
  }
  s->n_hashed = full > s->n_hashed ? full : s->n_hashed;
}

int r1d_kv_seq_fork(r1d_kv_pool *p, const r1d_kv_seq *parent,
                    r1d_kv_seq *child) {
  if (parent == child || child->n_blocks != 0 || child->n_tokens != 0 ||
      child->cap_blocks < parent->n_blocks)
    return R1D_EINVAL;
  for (int i = 0; i < parent->n_blocks; i++) {
    child->blocks[i] = parent->blocks[i];
    p->refcount[parent->blocks[i]]++;
  }
  memcpy(child->hashes, parent->hashes,
         (size_t)parent->n_hashed * sizeof *child->hashes);
  child->n_blocks = parent->n_blocks;
  child->n_tokens = parent->n_tokens;
  child->n_committed = parent->n_committed;
  child->n_hashed = parent->n_hashed;
  return 0;
}

void r1d_kv_seq_release(r1d_kv_pool *p, r1d_kv_seq *s) {
  /* Last block first: the LRU then evicts a prompt's tail before its head. */
  for (int i = s->n_blocks - 1; i >= 0; i--)
    block_drop(p, s->blocks[i]);
  s->n_blocks = s->n_tokens = s->n_committed = s->n_hashed = 0;
}

/* ---- debugging ---- */

void r1d_kv_pool_debug_hash_bits(r1d_kv_pool *p, int bits) {
  p->hash_mask = bits >= 0 && bits <= 63 ? (1ULL << bits) - 1 : ~0ULL;
}

int r1d_kv_pool_refcount(const r1d_kv_pool *p, int block) {
  if (block < 0 || block >= p->n_blocks) return -1;
  return p->refcount[block];
}

/* Walks the LRU list marking mark[b] |= 2; checks links and count. */
static int check_lru(const r1d_kv_pool *p, uint8_t *mark, r1d_error *err) {
  int count = 0;
  int32_t prev = -1;
  for (int32_t b = p->lru_head; b >= 0; b = p->lru_next[b]) {
    if (b >= p->n_blocks || count > p->n_blocks || (mark[b] & 2))
      return r1d_fail(err, R1D_ESTATE, "kv: LRU list broken at block %d", b);
    if (p->lru_prev[b] != prev)
      return r1d_fail(err, R1D_ESTATE, "kv: LRU back link of %d wrong", b);
    mark[b] |= 2;
    prev = b;
    count++;
  }
  if (prev != p->lru_tail || count != p->n_cached)
    return r1d_fail(err, R1D_ESTATE, "kv: LRU has %d blocks, count says %d",
                    count, p->n_cached);
  return 0;
}

/* Every table entry is a published block reachable from its home slot, and
 * every published block is in the table once. */
static int check_table(const r1d_kv_pool *p, r1d_error *err) {
  int entries = 0, published = 0;
  for (size_t i = 0; i <= p->ht_mask; i++) {
    int32_t b = p->ht[i];
    if (b < 0) continue;
    entries++;
    if (b >= p->n_blocks || !p->published[b])
      return r1d_fail(err, R1D_ESTATE, "kv: table holds unpublished %d", b);
    for (size_t j = ht_home(p, p->chain_hash[b]); j != i;
         j = (j + 1) & p->ht_mask)
      if (p->ht[j] < 0)
        return r1d_fail(err, R1D_ESTATE, "kv: block %d unreachable", b);
  }
  for (int b = 0; b < p->n_blocks; b++)
    published += p->published[b];
  if (entries != published)
    return r1d_fail(err, R1D_ESTATE, "kv: %d table entries, %d published",
                    entries, published);
  return 0;
}

int r1d_kv_pool_check(const r1d_kv_pool *p, r1d_error *err) {
  int rc = 0;
  uint8_t *mark = calloc((size_t)p->n_blocks, 1); /* 1 free, 2 LRU */
  if (!mark) return r1d_fail(err, R1D_ENOMEM, "kv: check out of memory");
  if (p->n_free < 0 || p->n_free > p->n_blocks) {
    rc = r1d_fail(err, R1D_ESTATE, "kv: free count %d", p->n_free);
    goto done;
  }
  for (int i = 0; i < p->n_free; i++) {
    int32_t b = p->free_stack[i];
    if (b < 0 || b >= p->n_blocks || mark[b]) {
      rc = r1d_fail(err, R1D_ESTATE, "kv: free list bad entry %d", b);
      goto done;
    }
    mark[b] = 1;
  }
  if (p->prefix_cache && (rc = check_lru(p, mark, err)) != 0) goto done;
  if (p->prefix_cache && (rc = check_table(p, err)) != 0) goto done;
  int used = 0;
  for (int b = 0; b < p->n_blocks; b++) {
    int rf = p->refcount[b], pub = is_published(p, b);
    int ok = rf > 0 ? mark[b] == 0 : rf == 0 && mark[b] == (pub ? 2 : 1);
    if (!ok) {
      rc = r1d_fail(err, R1D_ESTATE,
                    "kv: block %d refcount %d published %d free %d lru %d", b,
                    rf, pub, mark[b] & 1, (mark[b] & 2) >> 1);
      goto done;
    }
    used += rf > 0;
  }
  if (used + p->n_free + p->n_cached != p->n_blocks)
    rc = r1d_fail(err, R1D_ESTATE, "kv: used %d + free %d + cached %d != %d",
                  used, p->n_free, p->n_cached, p->n_blocks);
done:
  free(mark);
  return rc;
}

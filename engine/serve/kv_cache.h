/* kv_cache.h - paged KV bookkeeping: which physical block holds which tokens
 * of which sequence (vLLM's block manager). Host-only integers; the KV
 * tensors themselves live in the runner on the backend.
 *
 * - A pool of n_blocks blocks of block_size token slots, each refcounted.
 * - A sequence owns a block table (logical block i -> physical block) and
 *   gets slots for new tokens from r1d_kv_seq_append.
 * - Prefix cache: once a full block's KV is written (r1d_kv_seq_commit), it is
 *   published under the hash of its token chain (parent chain hash + its own
 *   tokens). A new sequence whose prompt starts with the same tokens attaches
 *   those blocks instead of computing them. A match also compares the block's
 *   tokens and its parent block, so a hash collision can never attach the
 *   wrong KV. Cached blocks nobody references stay in the cache, evicted
 *   least recently used first when a fresh block is needed; they count as
 *   free.
 * - Copy-on-write: sequences forked from one parent (n samples of a prompt)
 *   share all its blocks; the first append into a shared, partly filled last
 *   block gets a private copy (reported as a copy for the runner to perform
 *   before the step's KV writes).
 *
 * Not thread-safe: the engine thread owns the pool. */
#ifndef R1D_ENGINE_SERVE_KV_CACHE_H
#define R1D_ENGINE_SERVE_KV_CACHE_H

#include <stdint.h>

#include "../../common/status.h"

typedef struct r1d_kv_pool r1d_kv_pool;

typedef struct r1d_kv_seq {
  int32_t *blocks; /* [cap_blocks] block table */
  int n_blocks;
  int cap_blocks;   /* the pool's max_blocks_per_seq */
  int n_tokens;     /* positions that have a slot (written or about to be) */
  int n_committed;  /* positions whose KV is written (see commit) */
  uint64_t *hashes; /* [cap_blocks] chain hash of each published full block */
  int n_hashed;     /* leading full blocks whose hash is known */
} r1d_kv_seq;

/* One block copy the runner must do (all layers, K and V) before writing. */
typedef struct r1d_kv_copy {
  int32_t src, dst;
} r1d_kv_copy;

typedef struct r1d_kv_stats {
  int total;  /* n_blocks */
  int free;   /* never used or released blocks, not cached */
  int cached; /* refcount 0 but kept for the prefix cache (evictable) */
  int used;   /* refcount > 0; total == free + cached + used */
  uint64_t prefix_queries;    /* match_prefix calls */
  uint64_t prefix_hit_tokens; /* tokens attached from the cache */
  uint64_t prefix_hit_blocks;
  uint64_t evictions; /* cached blocks reused for new data */
  uint64_t cow_copies;
} r1d_kv_stats;

/* n_blocks >= 1, block_size >= 1, max_blocks_per_seq >= 1. prefix_cache 0
 * disables publishing and matching. Returns 0, R1D_EINVAL or R1D_ENOMEM. */
int r1d_kv_pool_create(int n_blocks, int block_size, int max_blocks_per_seq,
                       int prefix_cache, r1d_kv_pool **out);
void r1d_kv_pool_destroy(r1d_kv_pool *p);

int r1d_kv_pool_block_size(const r1d_kv_pool *p);
/* Blocks an allocation can get now: free + cached. */
int r1d_kv_pool_available(const r1d_kv_pool *p);
void r1d_kv_pool_stats(const r1d_kv_pool *p, r1d_kv_stats *st);
/* Forgets every cached block (e.g. after a weight swap); blocks in use stay
 * valid for their sequences but are no longer published. */
void r1d_kv_pool_clear_prefix_cache(r1d_kv_pool *p);

/* Allocates an empty sequence's arrays (cap = max_blocks_per_seq). 0 or
 * R1D_ENOMEM. */
int r1d_kv_seq_init(r1d_kv_pool *p, r1d_kv_seq *s);
/* Frees the arrays; the sequence must hold no blocks (release first). */
void r1d_kv_seq_free(r1d_kv_seq *s);

/* For an empty sequence about to compute tokens[0..n): attaches the longest
 * run of cached full blocks matching its start, but never all n tokens (the
 * last token must be computed to get logits): at most (n-1)/block_size
 * blocks. Sets n_tokens = n_committed = attached tokens and returns that
 * count (0 on a miss or when the cache is off). */
int r1d_kv_seq_match_prefix(r1d_kv_pool *p, r1d_kv_seq *s,
                            const int32_t *tokens, int n);

/* What r1d_kv_seq_match_prefix would attach for tokens[0..n), changing
 * nothing (no stats either): returns the tokens, and *idle_blocks gets how
 * many of those blocks sit unused in the cache (attaching them takes them
 * out of r1d_kv_pool_available). Lets a scheduler check that a sequence fits
 * before attaching anything. */
int r1d_kv_pool_peek_prefix(const r1d_kv_pool *p, const int32_t *tokens, int n,
                            int *idle_blocks);

/* Fresh blocks that appending n tokens to s would take (new blocks plus a
 * copy-on-write of a shared last block). */
int r1d_kv_seq_blocks_needed(const r1d_kv_pool *p, const r1d_kv_seq *s, int n);

/* Gives positions n_tokens .. n_tokens+n-1 their slots (slots[i] = block *
 * block_size + offset, int64), allocating blocks (evicting LRU cached ones)
 * and doing copy-on-write of a shared, partly filled last block: then *copy
 * receives the block pair and *n_copy = 1 (else 0). Fails with R1D_EBUSY
 * when the pool lacks blocks and R1D_ERANGE past max_blocks_per_seq; on
 * failure nothing changes. slots may be NULL (blocks only). */
int r1d_kv_seq_append(r1d_kv_pool *p, r1d_kv_seq *s, int n, int64_t *slots,
                      r1d_kv_copy *copy, int *n_copy);

/* The step wrote positions up to `upto` (<= n_tokens): sets n_committed and
 * publishes newly full blocks to the prefix cache under their chain hash.
 * tokens holds at least `upto` ids of the sequence. When an equal block is
 * already published, the existing one stays and this one remains private. */
void r1d_kv_seq_commit(r1d_kv_pool *p, r1d_kv_seq *s, const int32_t *tokens,
                       int upto);

/* child (empty, initialised) shares every block of parent: refcounts +1,
 * n_tokens, n_committed and hashes copied. 0 or R1D_EINVAL. */
int r1d_kv_seq_fork(r1d_kv_pool *p, const r1d_kv_seq *parent,
                    r1d_kv_seq *child);

/* Drops every block reference of s (published blocks with no other user
 * become cached, the rest free) and empties it for reuse. */
void r1d_kv_seq_release(r1d_kv_pool *p, r1d_kv_seq *s);

/* Debugging and tests: the refcount of a block (-1 when out of range), and a
 * full consistency check of the pool (every block exactly one of free,
 * cached or used; free list, LRU list and hash table agree with the block
 * states). 0 or R1D_ESTATE with the broken invariant in err. O(n_blocks). */
int r1d_kv_pool_refcount(const r1d_kv_pool *p, int block);
int r1d_kv_pool_check(const r1d_kv_pool *p, r1d_error *err);
/* Tests only: keeps the low `bits` bits of every chain hash (0..63, 0 makes
 * every hash equal; other values restore all 64), so hash collisions become
 * common and the token and parent checks must keep matches exact. Call on a
 * pool nothing has been committed to yet. */
void r1d_kv_pool_debug_hash_bits(r1d_kv_pool *p, int bits);

#endif

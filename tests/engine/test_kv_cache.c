/* test_kv_cache.c - paged KV bookkeeping: slot numbering across block
 * boundaries (block sizes 16, 1, 7) and in int64 past 2^31, EBUSY/ERANGE
 * leaving everything unchanged, prefix cache hits, partial matches, never
 * attaching the whole prompt, cache off, blocks with equal tokens but a
 * different chain, equal blocks computed twice (the second stays private and
 * its later blocks still chain), LRU eviction order, copy-on-write after a
 * fork, clearing the cache, and a seeded randomised run that simulates the
 * runner's KV writes and copies and checks, after every operation, the pool's
 * invariants, every block's refcount against the live sequences and that
 * every position of every sequence still reads back its own KV. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the four headers it needs */

#include "engine/serve/kv_cache.h"

static r1d_kv_pool *make_pool(int n_blocks, int bs, int max_blocks, int pc) {
  r1d_kv_pool *p = NULL;
  assert_int_equal(r1d_kv_pool_create(n_blocks, bs, max_blocks, pc, &p), 0);
  assert_non_null(p);
  return p;
}

static void check_pool(const r1d_kv_pool *p) {
  r1d_error err = {0};
  int rc = r1d_kv_pool_check(p, &err);
  if (rc != 0) fprintf(stderr, "pool check: %s\n", err.msg);
  assert_int_equal(rc, 0);
}

static r1d_kv_stats stats(const r1d_kv_pool *p) {
  r1d_kv_stats st;
  r1d_kv_pool_stats(p, &st);
  assert_int_equal(st.free + st.cached + st.used, st.total);
  return st;
}

static void seq_init(r1d_kv_pool *p, r1d_kv_seq *s) {
  assert_int_equal(r1d_kv_seq_init(p, s), 0);
  assert_int_equal(s->n_blocks, 0);
  assert_int_equal(s->n_tokens, 0);
}

/* Appends n tokens that need no copy-on-write and returns nothing; slots
 * go to `slots` when given. */
static void append_ok(r1d_kv_pool *p, r1d_kv_seq *s, int n, int64_t *slots) {
  r1d_kv_copy c = {-1, -1};
  int nc = -1;
  assert_int_equal(r1d_kv_seq_append(p, s, n, slots, &c, &nc), 0);
  assert_int_equal(nc, 0);
}

/* A full prompt through the cache: match, compute the rest, commit. Returns
 * the matched token count. */
static int run_prompt(r1d_kv_pool *p, r1d_kv_seq *s, const int32_t *toks,
                      int n) {
  int m = r1d_kv_seq_match_prefix(p, s, toks, n);
  assert_true(m >= 0);
  append_ok(p, s, n - m, NULL);
  r1d_kv_seq_commit(p, s, toks, n);
  assert_int_equal(s->n_committed, n);
  return m;
}

/* ---- slots ---- */

static void slots_for_block_size(int bs) {
  r1d_kv_pool *p = make_pool(64, bs, 64, 1);
  r1d_kv_seq a, b;
  seq_init(p, &a);
  seq_init(p, &b);
  int64_t slots[256];

  /* One sequence on a fresh pool gets blocks 0, 1, 2, ... so slot == pos. */
  const int chunks[] = {1, 3, 16, 5, 7, 1, 30};
  int pos = 0;
  for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
    int n = chunks[k];
    int need = r1d_kv_seq_blocks_needed(p, &a, n);
    int want_need = (pos + n + bs - 1) / bs - (pos + bs - 1) / bs;
    assert_int_equal(need, want_need);
    int avail = r1d_kv_pool_available(p);
    append_ok(p, &a, n, slots);
    assert_int_equal(avail - r1d_kv_pool_available(p), need);
    for (int i = 0; i < n; i++)
      assert_int_equal(slots[i], pos + i);
    pos += n;
    assert_int_equal(a.n_tokens, pos);
    assert_int_equal(a.n_blocks, (pos + bs - 1) / bs);
    check_pool(p);
  }
  r1d_kv_seq_release(p, &a);
  assert_int_equal(stats(p).free, 64);

  /* Interleaved: a, b, a, b take blocks 0..3 in turn (the release above
   * pushed block 0 last, so the free stack hands out 0, 1, 2, ... again). */
  append_ok(p, &a, bs, slots); /* block 0 */
  for (int i = 0; i < bs; i++)
    assert_int_equal(slots[i], i);
  append_ok(p, &b, 1, slots); /* block 1 */
  assert_int_equal(slots[0], bs);
  append_ok(p, &a, 1, slots); /* block 2 */
  assert_int_equal(slots[0], 2 * bs);
  append_ok(p, &b, bs, slots); /* rest of block 1, then block 3 */
  for (int i = 0; i < bs - 1; i++)
    assert_int_equal(slots[i], bs + 1 + i);
  assert_int_equal(slots[bs - 1], 3 * bs);
  assert_int_equal(a.blocks[0], 0);
  assert_int_equal(a.blocks[1], 2);
  assert_int_equal(b.blocks[0], 1);
  assert_int_equal(b.blocks[1], 3);
  assert_int_equal(stats(p).used, 4);
  check_pool(p);

  r1d_kv_seq_release(p, &a);
  r1d_kv_seq_release(p, &b);
  assert_int_equal(a.n_blocks + a.n_tokens + b.n_blocks + b.n_tokens, 0);
  r1d_kv_stats st = stats(p);
  assert_int_equal(st.free, 64);
  assert_int_equal(st.used, 0);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_pool_destroy(p);
}

static void test_slots_bs16(void **state) {
  (void)state;
  slots_for_block_size(16);
}
static void test_slots_bs1(void **state) {
  (void)state;
  slots_for_block_size(1);
}
static void test_slots_bs7(void **state) {
  (void)state;
  slots_for_block_size(7);
}

/* 65537 blocks of 32768 slots: slot numbers past 2^31 must not wrap. Cheap
 * because the prefix cache (the only per-token memory) is off. */
static void test_slots_int64(void **state) {
  (void)state;
  const int bs = 32768, nb = 65537;
  r1d_kv_pool *p = make_pool(nb, bs, 65536, 0);
  r1d_kv_seq a, b;
  seq_init(p, &a);
  seq_init(p, &b);
  append_ok(p, &a, 65535 * bs, NULL); /* blocks 0 .. 65534 */
  assert_int_equal(a.n_blocks, 65535);
  assert_int_equal(a.blocks[65534], 65534);
  /* n_tokens + n would overflow int: a range error, not a wrap. */
  int64_t one;
  int nc = -1;
  assert_int_equal(r1d_kv_seq_append(p, &a, 2 * bs, &one, NULL, &nc),
                   R1D_ERANGE);
  assert_int_equal(a.n_tokens, 65535 * bs);

  int64_t *slots = malloc((size_t)(bs + 5) * sizeof *slots);
  assert_non_null(slots);
  append_ok(p, &b, bs + 5, slots); /* blocks 65535, 65536 */
  assert_int_equal(b.blocks[0], 65535);
  assert_int_equal(b.blocks[1], 65536);
  assert_true(slots[0] == (int64_t)65535 * bs);
  assert_true(slots[bs - 1] == (int64_t)65535 * bs + bs - 1);
  assert_true(slots[bs] == (int64_t)1 << 31);
  assert_true(slots[bs + 4] == ((int64_t)1 << 31) + 4);
  assert_true(slots[bs + 4] > INT32_MAX);
  free(slots);
  assert_int_equal(stats(p).free, 0);
  check_pool(p);
  r1d_kv_seq_release(p, &a);
  r1d_kv_seq_release(p, &b);
  assert_int_equal(stats(p).free, nb);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_pool_destroy(p);
}

/* ---- errors ---- */

static void test_create_invalid(void **state) {
  (void)state;
  r1d_kv_pool *p = (r1d_kv_pool *)&p;
  assert_int_equal(r1d_kv_pool_create(0, 16, 4, 1, &p), R1D_EINVAL);
  assert_null(p);
  assert_int_equal(r1d_kv_pool_create(4, 0, 4, 1, &p), R1D_EINVAL);
  assert_int_equal(r1d_kv_pool_create(4, 16, 0, 1, &p), R1D_EINVAL);
  p = make_pool(1, 1, 1, 1);
  assert_int_equal(r1d_kv_pool_block_size(p), 1);
  assert_int_equal(r1d_kv_pool_available(p), 1);
  r1d_kv_seq s;
  seq_init(p, &s);
  assert_int_equal(r1d_kv_seq_append(p, &s, -1, NULL, NULL, NULL), R1D_EINVAL);
  assert_int_equal(r1d_kv_seq_append(p, &s, 0, NULL, NULL, NULL), 0);
  assert_int_equal(r1d_kv_seq_blocks_needed(p, &s, 0), 0);
  assert_int_equal(s.n_blocks, 0);
  r1d_kv_seq_free(&s);
  r1d_kv_pool_destroy(p);
}

static void test_ebusy_unchanged(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(4, 4, 8, 1);
  r1d_kv_seq a, b, c;
  seq_init(p, &a);
  seq_init(p, &b);
  seq_init(p, &c);
  append_ok(p, &a, 10, NULL); /* 3 blocks, last one holds 2 */
  r1d_kv_stats before = stats(p);

  int64_t slots[16];
  for (int i = 0; i < 16; i++)
    slots[i] = -7;
  r1d_kv_copy cp = {-5, -5};
  int nc = -1;
  assert_int_equal(r1d_kv_seq_blocks_needed(p, &b, 8), 2);
  assert_int_equal(r1d_kv_seq_append(p, &b, 8, slots, &cp, &nc), R1D_EBUSY);
  assert_int_equal(b.n_blocks, 0);
  assert_int_equal(b.n_tokens, 0);
  assert_int_equal(nc, 0);
  assert_int_equal(cp.src, -5);
  for (int i = 0; i < 16; i++)
    assert_int_equal(slots[i], -7);
  r1d_kv_stats after = stats(p);
  assert_memory_equal(&before, &after, sizeof before);
  check_pool(p);

  /* a itself: 6 more tokens fit its last block (2) plus one new block; 7
   * would need two. */
  assert_int_equal(r1d_kv_seq_append(p, &a, 11, slots, &cp, &nc), R1D_EBUSY);
  assert_int_equal(a.n_tokens, 10);
  assert_int_equal(a.n_blocks, 3);

  /* A shared partial block needs a copy: with no block left that is EBUSY
   * too, and the refcounts stay as they were. */
  append_ok(p, &b, 4, NULL); /* the last block */
  assert_int_equal(r1d_kv_pool_available(p), 0);
  assert_int_equal(r1d_kv_seq_fork(p, &a, &c), 0);
  assert_int_equal(r1d_kv_pool_refcount(p, a.blocks[2]), 2);
  assert_int_equal(r1d_kv_seq_blocks_needed(p, &c, 1), 1);
  assert_int_equal(r1d_kv_seq_append(p, &c, 1, slots, &cp, &nc), R1D_EBUSY);
  assert_int_equal(r1d_kv_pool_refcount(p, a.blocks[2]), 2);
  assert_int_equal(c.blocks[2], a.blocks[2]);
  assert_int_equal(c.n_tokens, 10);
  assert_int_equal(nc, 0);
  check_pool(p);

  /* After b releases, the same append succeeds with a copy. */
  r1d_kv_seq_release(p, &b);
  assert_int_equal(r1d_kv_seq_append(p, &c, 1, slots, &cp, &nc), 0);
  assert_int_equal(nc, 1);
  assert_int_equal(cp.src, a.blocks[2]);
  assert_int_equal(cp.dst, c.blocks[2]);
  assert_int_equal(slots[0], (int64_t)c.blocks[2] * 4 + 2);

  r1d_kv_seq_release(p, &a);
  r1d_kv_seq_release(p, &c);
  assert_int_equal(stats(p).free, 4);
  check_pool(p);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_seq_free(&c);
  r1d_kv_pool_destroy(p);
}

static void test_erange(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(16, 4, 3, 1);
  r1d_kv_seq a;
  seq_init(p, &a);
  assert_int_equal(a.cap_blocks, 3);
  int nc = -1;
  assert_int_equal(r1d_kv_seq_append(p, &a, 13, NULL, NULL, &nc), R1D_ERANGE);
  assert_int_equal(a.n_tokens, 0);
  append_ok(p, &a, 12, NULL);
  r1d_kv_stats before = stats(p);
  assert_int_equal(r1d_kv_seq_append(p, &a, 1, NULL, NULL, &nc), R1D_ERANGE);
  assert_int_equal(a.n_tokens, 12);
  assert_int_equal(a.n_blocks, 3);
  r1d_kv_stats after = stats(p);
  assert_memory_equal(&before, &after, sizeof before);
  r1d_kv_seq_release(p, &a);
  r1d_kv_seq_free(&a);
  r1d_kv_pool_destroy(p);
}

/* ---- prefix cache ---- */

static void fill(int32_t *t, int n, int32_t base) {
  for (int i = 0; i < n; i++)
    t[i] = base + i * 7;
}

static void test_prefix_hit(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(32, 4, 8, 1);
  r1d_kv_seq a, b, c;
  seq_init(p, &a);
  seq_init(p, &b);
  seq_init(p, &c);
  int32_t prompt[10];
  fill(prompt, 10, 100);

  assert_int_equal(run_prompt(p, &a, prompt, 10), 0);
  assert_int_equal(a.n_hashed, 2);
  int32_t a0 = a.blocks[0], a1 = a.blocks[1], a2 = a.blocks[2];
  uint64_t h0 = a.hashes[0], h1 = a.hashes[1];
  assert_true(h0 != h1);
  r1d_kv_seq_release(p, &a);
  r1d_kv_stats st = stats(p);
  assert_int_equal(st.cached, 2); /* the two full blocks */
  assert_int_equal(st.free, 30);
  assert_int_equal(st.used, 0);
  assert_int_equal(st.prefix_queries, 1);
  assert_int_equal(st.prefix_hit_tokens, 0);

  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, prompt, 10), 8);
  assert_int_equal(b.n_blocks, 2);
  assert_int_equal(b.n_tokens, 8);
  assert_int_equal(b.n_committed, 8);
  assert_int_equal(b.n_hashed, 2);
  assert_int_equal(b.blocks[0], a0);
  assert_int_equal(b.blocks[1], a1);
  assert_true(b.hashes[0] == h0 && b.hashes[1] == h1);
  assert_int_equal(r1d_kv_pool_refcount(p, a0), 1);
  assert_int_equal(r1d_kv_pool_refcount(p, a1), 1);
  st = stats(p);
  assert_int_equal(st.cached, 0);
  assert_int_equal(st.used, 2);
  assert_int_equal(st.prefix_queries, 2);
  assert_int_equal(st.prefix_hit_tokens, 8);
  assert_int_equal(st.prefix_hit_blocks, 2);
  check_pool(p);

  /* The rest of the prompt goes to a new block, not into a shared one. */
  int64_t slots[2];
  append_ok(p, &b, 2, slots);
  assert_true(b.blocks[2] != a0 && b.blocks[2] != a1);
  assert_int_equal(slots[0], (int64_t)b.blocks[2] * 4);
  (void)a2;
  r1d_kv_seq_commit(p, &b, prompt, 10);

  /* While b holds them, c shares them: refcount 2. */
  assert_int_equal(r1d_kv_seq_match_prefix(p, &c, prompt, 10), 8);
  assert_int_equal(r1d_kv_pool_refcount(p, a0), 2);
  assert_int_equal(r1d_kv_pool_refcount(p, a1), 2);
  st = stats(p);
  assert_int_equal(st.prefix_hit_tokens, 16);
  assert_int_equal(st.prefix_hit_blocks, 4);
  assert_int_equal(st.used, 3);

  /* Matching a non-empty sequence is refused. */
  assert_int_equal(r1d_kv_seq_match_prefix(p, &c, prompt, 10), R1D_EINVAL);

  r1d_kv_seq_release(p, &b);
  assert_int_equal(r1d_kv_pool_refcount(p, a0), 1);
  assert_int_equal(stats(p).cached, 0);
  r1d_kv_seq_release(p, &c);
  st = stats(p);
  assert_int_equal(st.cached, 2);
  assert_int_equal(st.used, 0);
  check_pool(p);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_seq_free(&c);
  r1d_kv_pool_destroy(p);
}

/* peek_prefix reports what match_prefix would attach, and how many of those
 * blocks are idle in the cache, without changing the pool or its stats. */
static void test_peek_prefix(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(32, 4, 8, 1);
  r1d_kv_seq a, b, c;
  seq_init(p, &a);
  seq_init(p, &b);
  seq_init(p, &c);
  int32_t prompt[10];
  fill(prompt, 10, 100);
  int idle = -1;
  assert_int_equal(r1d_kv_pool_peek_prefix(p, prompt, 10, &idle), 0);
  assert_int_equal(idle, 0);
  run_prompt(p, &a, prompt, 10); /* publishes 2 full blocks, still used */
  assert_int_equal(r1d_kv_pool_peek_prefix(p, prompt, 10, &idle), 8);
  assert_int_equal(idle, 0);
  r1d_kv_seq_release(p, &a); /* both now idle in the cache */
  r1d_kv_stats before = stats(p);
  assert_int_equal(r1d_kv_pool_peek_prefix(p, prompt, 10, &idle), 8);
  assert_int_equal(idle, 2);
  assert_int_equal(r1d_kv_pool_peek_prefix(p, prompt, 5, &idle), 4);
  assert_int_equal(idle, 1);
  r1d_kv_stats after = stats(p);
  assert_memory_equal(&before, &after, sizeof before); /* nothing changed */
  int avail = r1d_kv_pool_available(p);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, prompt, 10), 8);
  assert_int_equal(r1d_kv_pool_available(p), avail - 2);
  assert_int_equal(r1d_kv_pool_peek_prefix(p, prompt, 10, &idle), 8);
  assert_int_equal(idle, 0); /* attached by b now */
  check_pool(p);
  r1d_kv_seq_release(p, &b);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_seq_free(&c);
  r1d_kv_pool_destroy(p);
}

static void test_partial_match(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(32, 4, 8, 1);
  r1d_kv_seq a, b;
  seq_init(p, &a);
  seq_init(p, &b);
  int32_t p1[13];
  fill(p1, 13, 5);
  run_prompt(p, &a, p1, 13);
  int32_t blk[3] = {a.blocks[0], a.blocks[1], a.blocks[2]};
  r1d_kv_seq_release(p, &a);
  assert_int_equal(stats(p).cached, 3);

  /* Same first block, one token different in the second, third equal:
   * the match stops at the second and never skips ahead. */
  int32_t p2[13];
  memcpy(p2, p1, sizeof p2);
  p2[6] += 1;
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, p2, 13), 4);
  assert_int_equal(b.blocks[0], blk[0]);
  assert_int_equal(r1d_kv_pool_refcount(p, blk[1]), 0);
  assert_int_equal(r1d_kv_pool_refcount(p, blk[2]), 0);
  r1d_kv_seq_release(p, &b);

  /* Differing first token: nothing. */
  memcpy(p2, p1, sizeof p2);
  p2[0] = -3;
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, p2, 13), 0);
  assert_int_equal(b.n_blocks, 0);
  r1d_kv_seq_release(p, &b);

  /* Equal first two blocks, different tail: two blocks. */
  memcpy(p2, p1, sizeof p2);
  p2[9] = 999;
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, p2, 13), 8);
  r1d_kv_seq_release(p, &b);
  r1d_kv_stats st = stats(p);
  assert_int_equal(st.prefix_hit_blocks, 1 + 0 + 2);
  assert_int_equal(st.prefix_queries, 4);
  check_pool(p);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_pool_destroy(p);
}

/* A prompt of exactly k full blocks attaches at most k-1: the last token's
 * logits must be computed. */
static void test_never_all_tokens(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(32, 4, 8, 1);
  r1d_kv_seq a, b;
  seq_init(p, &a);
  seq_init(p, &b);
  int32_t t[13];
  fill(t, 13, 40);
  run_prompt(p, &a, t, 12);
  r1d_kv_seq_release(p, &a);
  assert_int_equal(stats(p).cached, 3);

  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, t, 12), 8);
  r1d_kv_seq_release(p, &b);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, t, 13), 12);
  r1d_kv_seq_release(p, &b);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, t, 5), 4);
  r1d_kv_seq_release(p, &b);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, t, 4), 0);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, t, 1), 0);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, t, 0), 0);
  assert_int_equal(b.n_blocks, 0);
  check_pool(p);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_pool_destroy(p);
}

static void test_cache_disabled(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(16, 4, 8, 0);
  r1d_kv_seq a, b;
  seq_init(p, &a);
  seq_init(p, &b);
  int32_t t[10];
  fill(t, 10, 1);
  assert_int_equal(run_prompt(p, &a, t, 10), 0);
  assert_int_equal(a.n_hashed, 0);
  r1d_kv_seq_release(p, &a);
  r1d_kv_stats st = stats(p);
  assert_int_equal(st.cached, 0);
  assert_int_equal(st.free, 16);
  assert_int_equal(run_prompt(p, &b, t, 10), 0);
  st = stats(p);
  assert_int_equal(st.prefix_hit_tokens, 0);
  assert_int_equal(st.used, 3);
  r1d_kv_pool_clear_prefix_cache(p); /* a no-op */
  check_pool(p);
  r1d_kv_seq_release(p, &b);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_pool_destroy(p);
}

/* The same block tokens after a different first block form a different
 * chain: never matched for the other prompt. */
static void test_same_tokens_other_chain(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(32, 4, 8, 1);
  r1d_kv_seq a, b, c;
  seq_init(p, &a);
  seq_init(p, &b);
  seq_init(p, &c);
  int32_t xy[9] = {1, 2, 3, 4, 10, 11, 12, 13, 99};
  int32_t zy[9] = {5, 6, 7, 8, 10, 11, 12, 13, 99};
  run_prompt(p, &a, xy, 9);
  assert_int_equal(run_prompt(p, &b, zy, 9), 0);
  assert_true(a.hashes[1] != b.hashes[1]);
  int32_t ay = a.blocks[1], by = b.blocks[1];
  r1d_kv_seq_release(p, &a);
  r1d_kv_seq_release(p, &b);
  assert_int_equal(stats(p).cached, 4);

  assert_int_equal(r1d_kv_seq_match_prefix(p, &c, zy, 9), 8);
  assert_int_equal(c.blocks[1], by);
  r1d_kv_seq_release(p, &c);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &c, xy, 9), 8);
  assert_int_equal(c.blocks[1], ay);
  r1d_kv_seq_release(p, &c);
  check_pool(p);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_seq_free(&c);
  r1d_kv_pool_destroy(p);
}

/* Every chain hash 0: lookups must still tell blocks apart by their tokens
 * and by their parent. */
static void test_hash_collisions(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(32, 4, 8, 1);
  r1d_kv_pool_debug_hash_bits(p, 0);
  r1d_kv_seq a, c, d;
  seq_init(p, &a);
  seq_init(p, &c);
  seq_init(p, &d);
  int32_t xy[9] = {1, 2, 3, 4, 10, 11, 12, 13, 99};
  int32_t zy[9] = {5, 6, 7, 8, 10, 11, 12, 13, 99};
  run_prompt(p, &a, xy, 9);
  assert_true(a.hashes[0] == 0 && a.hashes[1] == 0);
  /* Same hash, other tokens: no match. */
  assert_int_equal(run_prompt(p, &c, zy, 9), 0);
  /* c's second block has a's tokens and hash but another parent: it was
   * published as its own block, and a prompt through c's first block gets
   * c's second block, never a's. */
  assert_int_equal(r1d_kv_seq_match_prefix(p, &d, zy, 9), 8);
  assert_int_equal(d.blocks[0], c.blocks[0]);
  assert_int_equal(d.blocks[1], c.blocks[1]);
  r1d_kv_seq_release(p, &d);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &d, xy, 9), 8);
  assert_int_equal(d.blocks[0], a.blocks[0]);
  assert_int_equal(d.blocks[1], a.blocks[1]);
  r1d_kv_seq_release(p, &d);
  r1d_kv_seq_release(p, &a);
  r1d_kv_seq_release(p, &c);
  r1d_kv_stats st = stats(p);
  assert_int_equal(st.cached, 4);
  check_pool(p);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&c);
  r1d_kv_seq_free(&d);
  r1d_kv_pool_destroy(p);
}

/* The parent of a published block is pinned by its generation: once the
 * parent is evicted and reused for other tokens, the child is unreachable
 * even when every hash collides. The only way a parent goes before its
 * child is the alias path: b computed block 0 privately (equal to a's
 * published block 0), so b's published block 1 hangs under a's block 0,
 * which b does not hold. late_commit: b commits block 1 only after the
 * reuse, so its alias is stale and block 1 must stay private. */
static void parent_generation(int late_commit) {
  r1d_kv_pool *p = make_pool(6, 2, 8, 1);
  r1d_kv_pool_debug_hash_bits(p, 0);
  r1d_kv_seq a, b, g, e, f;
  seq_init(p, &a);
  seq_init(p, &b);
  seq_init(p, &g);
  seq_init(p, &e);
  seq_init(p, &f);
  int32_t ta[3] = {1, 2, 3};
  int32_t tb[5] = {1, 2, 7, 8, 9};
  int32_t te[2] = {4, 5};
  int32_t tf[5] = {4, 5, 7, 8, 9};
  append_ok(p, &a, 3, NULL); /* blocks 0, 1 */
  append_ok(p, &b, 5, NULL); /* blocks 2, 3, 4 */
  r1d_kv_seq_commit(p, &a, ta, 3);
  r1d_kv_seq_commit(p, &b, tb, late_commit ? 2 : 5);
  r1d_kv_seq_release(p, &a); /* block 0 cached, block 1 free */
  append_ok(p, &g, 4, NULL); /* the free blocks 1, 5 */
  assert_int_equal(r1d_kv_seq_match_prefix(p, &e, te, 2), 0);
  append_ok(p, &e, 2, NULL); /* evicts block 0 */
  assert_int_equal(e.blocks[0], 0);
  assert_int_equal(stats(p).evictions, 1);
  r1d_kv_seq_commit(p, &e, te, 2); /* block 0 published again, other tokens */
  if (late_commit) r1d_kv_seq_commit(p, &b, tb, 5);
  assert_int_equal(b.n_hashed, 2);
  r1d_kv_seq_release(p, &b);
  check_pool(p);
  /* f's first block is e's block 0; b's block 1 (tokens 7 8) must not be
   * attached behind it. */
  assert_int_equal(r1d_kv_seq_match_prefix(p, &f, tf, 5), 2);
  assert_int_equal(f.blocks[0], 0);
  assert_int_equal(stats(p).cached, late_commit ? 0 : 1);
  r1d_kv_seq_release(p, &f);
  r1d_kv_seq_release(p, &e);
  r1d_kv_seq_release(p, &g);
  check_pool(p);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_seq_free(&g);
  r1d_kv_seq_free(&e);
  r1d_kv_seq_free(&f);
  r1d_kv_pool_destroy(p);
}

static void test_parent_generation(void **state) {
  (void)state;
  parent_generation(0);
  parent_generation(1);
}

/* Two sequences compute the same prompt side by side: the first publishes,
 * the second keeps private copies; its own later blocks still chain onto
 * the published ones, so a follow-up prompt matches them all. */
static void test_duplicate_publish(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(32, 4, 8, 1);
  r1d_kv_seq a, b, c;
  seq_init(p, &a);
  seq_init(p, &b);
  seq_init(p, &c);
  int32_t t[17];
  fill(t, 17, 300);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &a, t, 9), 0);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &b, t, 9), 0);
  append_ok(p, &a, 9, NULL);
  append_ok(p, &b, 9, NULL);
  r1d_kv_seq_commit(p, &a, t, 9);
  r1d_kv_seq_commit(p, &b, t, 9);
  assert_int_equal(b.n_hashed, 2);
  assert_true(a.hashes[1] == b.hashes[1]);
  /* b continues (its decode) to 17 tokens and commits: block 2, 3 new. */
  append_ok(p, &b, 8, NULL);
  r1d_kv_seq_commit(p, &b, t, 17);
  assert_int_equal(b.n_hashed, 4);
  int32_t b2 = b.blocks[2], b3 = b.blocks[3];

  /* b's first two blocks were private: released, they are free. */
  r1d_kv_seq_release(p, &b);
  r1d_kv_stats st = stats(p);
  assert_int_equal(st.cached, 2); /* b's blocks 2 and 3 */
  assert_int_equal(st.used, 3);   /* a's */
  assert_int_equal(r1d_kv_seq_match_prefix(p, &c, t, 17), 16);
  assert_int_equal(c.blocks[0], a.blocks[0]);
  assert_int_equal(c.blocks[1], a.blocks[1]);
  assert_int_equal(c.blocks[2], b2);
  assert_int_equal(c.blocks[3], b3);
  assert_int_equal(r1d_kv_pool_refcount(p, a.blocks[1]), 2);
  check_pool(p);
  r1d_kv_seq_release(p, &c);
  r1d_kv_seq_release(p, &a);
  st = stats(p);
  assert_int_equal(st.cached, 4);
  assert_int_equal(st.used, 0);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_seq_free(&c);
  r1d_kv_pool_destroy(p);
}

/* Cached blocks are reused oldest-released first; attaching one takes it
 * out of the LRU, releasing it again puts it at the young end. */
static void test_lru_eviction(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(6, 2, 8, 1);
  r1d_kv_seq s[3], d, e;
  int32_t t[3][3] = {{1, 2, 0}, {3, 4, 0}, {5, 6, 0}};
  for (int i = 0; i < 3; i++) {
    seq_init(p, &s[i]);
    run_prompt(p, &s[i], t[i], 2); /* one full block, published */
    assert_int_equal(s[i].blocks[0], i);
  }
  seq_init(p, &d);
  seq_init(p, &e);
  r1d_kv_seq_release(p, &s[1]);
  r1d_kv_seq_release(p, &s[2]);
  r1d_kv_seq_release(p, &s[0]);
  r1d_kv_stats st = stats(p);
  assert_int_equal(st.cached, 3);
  assert_int_equal(st.free, 3);
  assert_int_equal(r1d_kv_pool_available(p), 6);

  /* Free blocks go first: no eviction. */
  append_ok(p, &d, 6, NULL);
  assert_int_equal(stats(p).evictions, 0);
  /* Then the oldest released: s[1]'s block 1. */
  int64_t slot;
  append_ok(p, &e, 1, &slot);
  assert_int_equal(e.blocks[0], 1);
  assert_int_equal(slot, 2);
  st = stats(p);
  assert_int_equal(st.evictions, 1);
  assert_int_equal(st.cached, 2);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &s[1], t[1], 3), 0);
  /* s[2]'s block (now oldest) is touched by a match: s[0]'s goes next. */
  assert_int_equal(r1d_kv_seq_match_prefix(p, &s[2], t[2], 3), 2);
  assert_int_equal(s[2].blocks[0], 2);
  append_ok(p, &e, 2, NULL);
  assert_int_equal(e.blocks[1], 0);
  st = stats(p);
  assert_int_equal(st.evictions, 2);
  assert_int_equal(st.cached, 0);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &s[0], t[0], 3), 0);
  /* Nothing left to evict; s[2] still holds its block. */
  assert_int_equal(r1d_kv_pool_available(p), 0);
  assert_int_equal(r1d_kv_seq_append(p, &e, 2, NULL, NULL, NULL), R1D_EBUSY);
  r1d_kv_seq_release(p, &s[2]);
  append_ok(p, &e, 2, NULL);
  assert_int_equal(e.blocks[2], 2);
  assert_int_equal(stats(p).evictions, 3);
  check_pool(p);

  for (int i = 0; i < 3; i++) {
    r1d_kv_seq_release(p, &s[i]);
    r1d_kv_seq_free(&s[i]);
  }
  r1d_kv_seq_release(p, &d);
  r1d_kv_seq_release(p, &e);
  st = stats(p);
  assert_int_equal(st.free + st.cached, 6);
  r1d_kv_seq_free(&d);
  r1d_kv_seq_free(&e);
  r1d_kv_pool_destroy(p);
}

/* A release drops a prompt's last block first, so under pressure the tail
 * of a cached prompt goes before its shared head. */
static void test_lru_tail_first(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(4, 2, 8, 1);
  r1d_kv_seq a, b;
  seq_init(p, &a);
  seq_init(p, &b);
  int32_t t[7] = {1, 2, 3, 4, 5, 6, 7};
  run_prompt(p, &a, t, 6); /* blocks 0, 1, 2 published */
  r1d_kv_seq_release(p, &a);
  append_ok(p, &b, 4, NULL); /* the free block 3, then evicts block 2 */
  assert_int_equal(b.blocks[0], 3);
  assert_int_equal(b.blocks[1], 2);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &a, t, 7), 4);
  check_pool(p);
  r1d_kv_seq_release(p, &a);
  r1d_kv_seq_release(p, &b);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_pool_destroy(p);
}

/* ---- copy-on-write ---- */

static void test_cow_fork(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(32, 4, 8, 1);
  r1d_kv_seq par, ch[4];
  seq_init(p, &par);
  int32_t t[6];
  fill(t, 6, 11);
  run_prompt(p, &par, t, 6); /* block 0 full (published), block 1 holds 2 */
  assert_int_equal(par.blocks[0], 0);
  assert_int_equal(par.blocks[1], 1);
  for (int i = 0; i < 4; i++) {
    seq_init(p, &ch[i]);
    assert_int_equal(r1d_kv_seq_fork(p, &par, &ch[i]), 0);
    assert_int_equal(ch[i].n_tokens, 6);
    assert_int_equal(ch[i].n_committed, 6);
    assert_int_equal(ch[i].n_hashed, 1);
    assert_true(ch[i].hashes[0] == par.hashes[0]);
  }
  assert_int_equal(r1d_kv_seq_fork(p, &par, &ch[0]), R1D_EINVAL);
  assert_int_equal(r1d_kv_pool_refcount(p, 0), 5);
  assert_int_equal(r1d_kv_pool_refcount(p, 1), 5);
  r1d_kv_seq_release(p, &par);
  assert_int_equal(r1d_kv_pool_refcount(p, 1), 4);

  for (int i = 0; i < 4; i++) {
    r1d_kv_copy cp = {-1, -1};
    int nc = -1;
    int64_t slot;
    int want_copy = i < 3;
    assert_int_equal(r1d_kv_seq_blocks_needed(p, &ch[i], 1), want_copy);
    assert_int_equal(r1d_kv_seq_append(p, &ch[i], 1, &slot, &cp, &nc), 0);
    assert_int_equal(nc, want_copy);
    if (want_copy) {
      assert_int_equal(cp.src, 1);
      assert_int_equal(cp.dst, 2 + i);
      assert_int_equal(ch[i].blocks[1], 2 + i);
      assert_int_equal(slot, (2 + i) * 4 + 2);
      assert_int_equal(r1d_kv_pool_refcount(p, 2 + i), 1);
    } else {
      assert_int_equal(ch[i].blocks[1], 1); /* last user writes in place */
      assert_int_equal(slot, 1 * 4 + 2);
    }
    assert_int_equal(r1d_kv_pool_refcount(p, 1), 3 - i > 0 ? 3 - i : 1);
    assert_int_equal(ch[i].blocks[0], 0);
    check_pool(p);
  }
  r1d_kv_stats st = stats(p);
  assert_int_equal(st.cow_copies, 3);
  assert_int_equal(st.used, 5); /* block 0, block 1, three copies */
  assert_int_equal(r1d_kv_pool_refcount(p, 0), 4);

  /* Own blocks now: no further copies; filling a block then opens a new
   * one without any copy. */
  for (int i = 0; i < 4; i++) {
    append_ok(p, &ch[i], 3, NULL);
    assert_int_equal(ch[i].n_blocks, 3);
  }
  st = stats(p);
  assert_int_equal(st.cow_copies, 3);
  assert_int_equal(st.used, 9);

  for (int i = 0; i < 4; i++) {
    r1d_kv_seq_release(p, &ch[i]);
    r1d_kv_seq_free(&ch[i]);
  }
  st = stats(p);
  assert_int_equal(st.used, 0);
  assert_int_equal(st.free + st.cached, st.total);
  assert_int_equal(st.cached, 1); /* the published prompt block */
  check_pool(p);
  r1d_kv_seq_free(&par);
  r1d_kv_pool_destroy(p);
}

/* A full last block is never written again: a fork appends without copy. */
static void test_fork_full_block(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(8, 4, 8, 0);
  r1d_kv_seq a, b;
  seq_init(p, &a);
  seq_init(p, &b);
  append_ok(p, &a, 8, NULL);
  assert_int_equal(r1d_kv_seq_fork(p, &a, &b), 0);
  assert_int_equal(r1d_kv_seq_blocks_needed(p, &b, 1), 1);
  int64_t slot;
  append_ok(p, &b, 1, &slot);
  assert_int_equal(slot, 2 * 4);
  append_ok(p, &a, 1, &slot);
  assert_int_equal(slot, 3 * 4);
  assert_int_equal(stats(p).cow_copies, 0);
  assert_int_equal(r1d_kv_pool_refcount(p, 1), 2);
  r1d_kv_seq_release(p, &a);
  r1d_kv_seq_release(p, &b);
  assert_int_equal(stats(p).free, 8);
  check_pool(p);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_pool_destroy(p);
}

static void test_clear_prefix_cache(void **state) {
  (void)state;
  r1d_kv_pool *p = make_pool(16, 4, 8, 1);
  r1d_kv_seq a, b, c;
  seq_init(p, &a);
  seq_init(p, &b);
  seq_init(p, &c);
  int32_t ta[9], tb[9];
  fill(ta, 9, 1000);
  fill(tb, 9, 2000);
  run_prompt(p, &a, ta, 9);
  run_prompt(p, &b, tb, 9);
  r1d_kv_seq_release(p, &a);
  r1d_kv_stats st = stats(p);
  assert_int_equal(st.cached, 2);
  assert_int_equal(st.used, 3);

  r1d_kv_pool_clear_prefix_cache(p);
  st = stats(p);
  assert_int_equal(st.cached, 0);
  assert_int_equal(st.free, 13);
  assert_int_equal(st.used, 3);
  check_pool(p);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &c, ta, 9), 0);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &c, tb, 9), 0);
  /* b's blocks are private now, and so is what it commits after the clear
   * (it could never be matched: its parent is not published). Its release
   * frees them all. */
  int32_t tb2[12];
  fill(tb2, 12, 2000);
  append_ok(p, &b, 3, NULL);
  r1d_kv_seq_commit(p, &b, tb2, 12);
  assert_int_equal(b.n_hashed, 3);
  r1d_kv_seq_release(p, &b);
  st = stats(p);
  assert_int_equal(st.cached, 0);
  assert_int_equal(st.free, 16);

  /* The cache works again afterwards. */
  run_prompt(p, &a, ta, 9);
  r1d_kv_seq_release(p, &a);
  assert_int_equal(r1d_kv_seq_match_prefix(p, &c, ta, 9), 8);
  check_pool(p);
  r1d_kv_seq_release(p, &c);
  r1d_kv_seq_free(&a);
  r1d_kv_seq_free(&b);
  r1d_kv_seq_free(&c);
  r1d_kv_pool_destroy(p);
}

/* ---- randomised run ---- */

enum { ST_SEQS = 12, ST_MAXB = 12 };

typedef struct {
  r1d_kv_pool *p;
  int bs, n_blocks, prefix;
  uint64_t *kv; /* [n_blocks * bs] what the "runner" wrote at each slot */
  r1d_kv_seq seq[ST_SEQS];
  int live[ST_SEQS];
  int32_t *tok[ST_SEQS]; /* [ST_MAXB * bs] */
  uint64_t *ph[ST_SEQS]; /* prefix hash of tok[0..i], the KV's identity */
  int32_t base[3][ST_MAXB * 16];
  uint64_t rng;
} stress;

static uint64_t rnd(stress *t) {
  t->rng ^= t->rng << 13;
  t->rng ^= t->rng >> 7;
  t->rng ^= t->rng << 17;
  return t->rng;
}

static int rnd_below(stress *t, int n) {
  return (int)(rnd(t) % (uint64_t)n);
}

/* The KV value a position holds: depends on every token up to it. */
static void set_token(stress *t, int s, int pos, int32_t tok) {
  t->tok[s][pos] = tok;
  uint64_t prev = pos > 0 ? t->ph[s][pos - 1] : 0x1234;
  t->ph[s][pos] = (prev ^ (uint64_t)(uint32_t)tok) * 0x100000001b3ULL + 1;
}

static int64_t slot_of(stress *t, const r1d_kv_seq *s, int pos) {
  return (int64_t)s->blocks[pos / t->bs] * t->bs + pos % t->bs;
}

static void full_check(stress *t) {
  check_pool(t->p);
  int *ref = calloc((size_t)t->n_blocks, sizeof *ref);
  assert_non_null(ref);
  for (int i = 0; i < ST_SEQS; i++) {
    r1d_kv_seq *s = &t->seq[i];
    if (!t->live[i]) {
      assert_int_equal(s->n_blocks, 0);
      continue;
    }
    assert_int_equal(s->n_blocks, (s->n_tokens + t->bs - 1) / t->bs);
    assert_true(s->n_committed <= s->n_tokens);
    assert_true(s->n_hashed <= s->n_committed / t->bs);
    for (int b = 0; b < s->n_blocks; b++)
      ref[s->blocks[b]]++;
    /* Every position still reads back its own KV: no sharing mistake, no
     * eviction of a block in use, every copy done. */
    for (int pos = 0; pos < s->n_tokens; pos++)
      assert_true(t->kv[slot_of(t, s, pos)] == t->ph[i][pos]);
  }
  int used = 0;
  for (int b = 0; b < t->n_blocks; b++) {
    assert_int_equal(r1d_kv_pool_refcount(t->p, b), ref[b]);
    used += ref[b] > 0;
  }
  free(ref);
  r1d_kv_stats st = stats(t->p);
  assert_int_equal(st.used, used);
  assert_int_equal(r1d_kv_pool_available(t->p), st.free + st.cached);
  if (!t->prefix) assert_int_equal(st.cached, 0);
}

/* Appends tokens[from..to) of sequence i like the engine does: ask for
 * slots, do the copy, write the KV, commit (sometimes only part, the rest
 * at the next step). Returns 0 or the append's error. */
static int step(stress *t, int i, int to) {
  r1d_kv_seq *s = &t->seq[i];
  int from = s->n_tokens, n = to - from;
  int64_t slots[ST_MAXB * 16];
  r1d_kv_copy cp = {-1, -1};
  int nc = -1;
  int need = r1d_kv_seq_blocks_needed(t->p, s, n);
  int avail = r1d_kv_pool_available(t->p);
  r1d_kv_seq before = *s;
  int32_t blocks_before[ST_MAXB];
  memcpy(blocks_before, s->blocks, sizeof blocks_before);
  r1d_kv_stats st_before = stats(t->p);
  int rc = r1d_kv_seq_append(t->p, s, n, slots, &cp, &nc);
  if (rc != 0) {
    assert_true(rc == R1D_EBUSY || rc == R1D_ERANGE);
    assert_int_equal(rc == R1D_EBUSY, need > avail);
    assert_memory_equal(&before, s, sizeof before);
    assert_memory_equal(blocks_before, s->blocks, sizeof blocks_before);
    r1d_kv_stats st_after = stats(t->p);
    assert_memory_equal(&st_before, &st_after, sizeof st_before);
    assert_int_equal(nc, 0);
    return rc;
  }
  assert_int_equal(avail - r1d_kv_pool_available(t->p), need);
  if (nc == 1) {
    assert_int_equal(cp.src, blocks_before[(from - 1) / t->bs]);
    assert_int_equal(cp.dst, s->blocks[(from - 1) / t->bs]);
    memcpy(t->kv + (size_t)cp.dst * t->bs, t->kv + (size_t)cp.src * t->bs,
           (size_t)t->bs * sizeof *t->kv);
  } else {
    assert_int_equal(nc, 0);
  }
  for (int k = 0; k < n; k++) {
    assert_true(slots[k] == slot_of(t, s, from + k));
    t->kv[slots[k]] = t->ph[i][from + k];
  }
  int upto = rnd_below(t, 4) == 0 ? from + rnd_below(t, n + 1) : to;
  r1d_kv_seq_commit(t->p, s, t->tok[i], upto);
  return 0;
}

static void op_new(stress *t, int i) {
  int cap = ST_MAXB * t->bs;
  int n = 1 + rnd_below(t, cap * 3 / 4);
  int shared = rnd_below(t, n + 1);
  const int32_t *base = t->base[rnd_below(t, 3)];
  for (int k = 0; k < n; k++)
    set_token(t, i, k, k < shared ? base[k] : rnd_below(t, 3));
  r1d_kv_seq *s = &t->seq[i];
  int m = r1d_kv_seq_match_prefix(t->p, s, t->tok[i], n);
  assert_true(m >= 0 && m % t->bs == 0 && m <= n - 1);
  if (!t->prefix) assert_int_equal(m, 0);
  assert_int_equal(s->n_tokens, m);
  t->live[i] = 1;
  /* The attached blocks hold exactly this prompt's KV. */
  for (int pos = 0; pos < m; pos++)
    assert_true(t->kv[slot_of(t, s, pos)] == t->ph[i][pos]);
  /* Prefill in chunks; out of blocks, the engine preempts the sequence. */
  while (s->n_tokens < n) {
    int to = s->n_tokens + 1 + rnd_below(t, n - s->n_tokens);
    if (step(t, i, to) != 0) {
      r1d_kv_seq_release(t->p, s);
      t->live[i] = 0;
      return;
    }
  }
}

static void op_decode(stress *t, int i) {
  r1d_kv_seq *s = &t->seq[i];
  int cap = ST_MAXB * t->bs;
  if (s->n_committed < s->n_tokens) /* finish a partial commit */
    r1d_kv_seq_commit(t->p, s, t->tok[i], s->n_tokens);
  int n = 1 + rnd_below(t, 3);
  if (s->n_tokens + n > cap) n = cap - s->n_tokens;
  if (n == 0) {
    /* Full: appending one more is a range error and changes nothing. */
    assert_int_equal(r1d_kv_seq_append(t->p, s, 1, NULL, NULL, NULL),
                     R1D_ERANGE);
    return;
  }
  for (int k = 0; k < n; k++)
    set_token(t, i, s->n_tokens + k, rnd_below(t, 3));
  if (step(t, i, s->n_tokens + n) != 0) {
    r1d_kv_seq_release(t->p, s);
    t->live[i] = 0;
  }
}

static void op_fork(stress *t, int parent, int child) {
  assert_int_equal(r1d_kv_seq_fork(t->p, &t->seq[parent], &t->seq[child]), 0);
  size_t len = (size_t)t->seq[parent].n_tokens;
  memcpy(t->tok[child], t->tok[parent], len * sizeof *t->tok[child]);
  memcpy(t->ph[child], t->ph[parent], len * sizeof *t->ph[child]);
  t->live[child] = 1;
}

static int pick(stress *t, int want_live) {
  int start = rnd_below(t, ST_SEQS);
  for (int k = 0; k < ST_SEQS; k++) {
    int i = (start + k) % ST_SEQS;
    if (t->live[i] == want_live) return i;
  }
  return -1;
}

/* hash_bits: 64 for the real hash, fewer to force collisions. */
static void run_stress(int n_blocks, int bs, int prefix, int hash_bits,
                       uint64_t seed, int ops) {
  stress t;
  memset(&t, 0, sizeof t);
  t.bs = bs;
  t.n_blocks = n_blocks;
  t.prefix = prefix;
  t.rng = seed;
  t.p = make_pool(n_blocks, bs, ST_MAXB, prefix);
  r1d_kv_pool_debug_hash_bits(t.p, hash_bits);
  t.kv = calloc((size_t)n_blocks * bs, sizeof *t.kv);
  assert_non_null(t.kv);
  for (int i = 0; i < ST_SEQS; i++) {
    seq_init(t.p, &t.seq[i]);
    t.tok[i] = calloc((size_t)ST_MAXB * bs, sizeof *t.tok[i]);
    t.ph[i] = calloc((size_t)ST_MAXB * bs, sizeof *t.ph[i]);
    assert_non_null(t.tok[i]);
    assert_non_null(t.ph[i]);
  }
  /* Three "system prompts"; base 1 shares its first half with base 0. */
  for (int k = 0; k < ST_MAXB * bs; k++) {
    t.base[0][k] = 100 + k;
    t.base[1][k] = k < ST_MAXB * bs / 2 ? 100 + k : 500 + k;
    t.base[2][k] = 900 + k % 5;
  }
  int clears = 0;
  for (int op = 0; op < ops; op++) {
    int r = rnd_below(&t, 100), i;
    if (r < 30 && (i = pick(&t, 0)) >= 0) {
      op_new(&t, i);
    } else if (r < 65 && (i = pick(&t, 1)) >= 0) {
      op_decode(&t, i);
    } else if (r < 78 && (i = pick(&t, 1)) >= 0) {
      int c = pick(&t, 0);
      if (c >= 0) op_fork(&t, i, c);
    } else if (r < 99 && (i = pick(&t, 1)) >= 0) {
      r1d_kv_seq_release(t.p, &t.seq[i]);
      t.live[i] = 0;
    } else if (r == 99) {
      r1d_kv_pool_clear_prefix_cache(t.p);
      clears++;
    }
    full_check(&t);
  }
  r1d_kv_stats st = stats(t.p);
  printf("stress bs=%d blocks=%d cache=%d hash_bits=%d: %llu queries, %llu hit "
         "blocks, "
         "%llu evictions, %llu copies, %d clears\n",
         bs, n_blocks, prefix, hash_bits, (unsigned long long)st.prefix_queries,
         (unsigned long long)st.prefix_hit_blocks,
         (unsigned long long)st.evictions, (unsigned long long)st.cow_copies,
         clears);
  if (bs > 1) assert_true(st.cow_copies > 0); /* bs 1: no partial blocks */
  assert_true(st.prefix_queries > 0);
  if (prefix) {
    assert_true(st.prefix_hit_blocks > 0);
    assert_true(st.evictions > 0);
    assert_true(clears > 0);
  } else {
    assert_int_equal(st.prefix_hit_blocks, 0);
    assert_int_equal(st.evictions, 0);
  }
  for (int i = 0; i < ST_SEQS; i++) {
    r1d_kv_seq_release(t.p, &t.seq[i]);
    t.live[i] = 0;
    full_check(&t);
    r1d_kv_seq_free(&t.seq[i]);
    free(t.tok[i]);
    free(t.ph[i]);
  }
  st = stats(t.p);
  assert_int_equal(st.used, 0);
  assert_int_equal(st.free + st.cached, st.total);
  check_pool(t.p);
  free(t.kv);
  r1d_kv_pool_destroy(t.p);
}

static void test_stress(void **state) {
  (void)state;
  run_stress(48, 4, 1, 64, 0x9e3779b97f4a7c15ULL, 6000);
  run_stress(40, 1, 1, 64, 12345, 4000);
  run_stress(30, 5, 1, 64, 777, 4000);
  run_stress(48, 4, 0, 64, 4242, 3000);
}

/* The same runs with every hash colliding (0 bits) or nearly (2 bits): the
 * KV read-back check fails if a lookup ever trusts the hash alone. */
static void test_stress_collisions(void **state) {
  (void)state;
  run_stress(48, 4, 1, 0, 99, 4000);
  run_stress(40, 1, 1, 2, 5, 4000);
  run_stress(30, 3, 1, 1, 31337, 4000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slots_bs16),
      cmocka_unit_test(test_slots_bs1),
      cmocka_unit_test(test_slots_bs7),
      cmocka_unit_test(test_slots_int64),
      cmocka_unit_test(test_create_invalid),
      cmocka_unit_test(test_ebusy_unchanged),
      cmocka_unit_test(test_erange),
      cmocka_unit_test(test_prefix_hit),
      cmocka_unit_test(test_peek_prefix),
      cmocka_unit_test(test_partial_match),
      cmocka_unit_test(test_never_all_tokens),
      cmocka_unit_test(test_cache_disabled),
      cmocka_unit_test(test_same_tokens_other_chain),
      cmocka_unit_test(test_hash_collisions),
      cmocka_unit_test(test_parent_generation),
      cmocka_unit_test(test_duplicate_publish),
      cmocka_unit_test(test_lru_eviction),
      cmocka_unit_test(test_lru_tail_first),
      cmocka_unit_test(test_cow_fork),
      cmocka_unit_test(test_fork_full_block),
      cmocka_unit_test(test_clear_prefix_cache),
      cmocka_unit_test(test_stress),
      cmocka_unit_test(test_stress_collisions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

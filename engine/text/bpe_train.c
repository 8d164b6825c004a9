/* bpe_train.c - byte-level BPE training (see bpe_train.h).
 *
 * Three stages:
 *   1. counting: each document is cut the way r1d_tokenizer_encode cuts it
 *      (added tokens, NFC, the Split regex) by a tokenizer with no merges
 *      that tokenizer_write.c writes with our added tokens; the words go
 *      into a hash map of distinct byte strings with their frequencies;
 *   2. training: every distinct word becomes an array of token ids (its
 *      bytes at first); a pair table holds each adjacent pair's weighted
 *      count and the words it occurs in; a max-heap picks the next pair.
 *      Merging a pair rewrites only the words listed for it and adjusts the
 *      counts of the pairs around each merged spot. Counts in the heap are
 *      corrected lazily: an entry whose count is out of date is pushed back
 *      with the current one when it reaches the top. This is exact because
 *      every pair whose count grows is pushed again with its new count, so
 *      each pair always has an entry at least as large as its count;
 *   3. writing: tokenizer_write.c writes the file from the merges that made
 *      new tokens; merges into an existing token are then put back at their
 *      ranks (that writer refuses two merges making one token).
 *
 * The pre-tokenizer's compiled steps are read from the tokenizer's internal
 * struct (tokenizer_internal.h) rather than re-declared here, so training
 * can never split text differently from encoding. */
#include "bpe_train.h"

#include "tokenizer_internal.h"

#include "../../common/file.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- data --------------------------------------------------------------- */

typedef struct bpe_word {
  uint64_t off; /* into word_bytes while counting, into syms after */
  uint32_t len; /* bytes, then current number of tokens */
  int64_t freq;
} bpe_word;

typedef struct bpe_pair {
  uint64_t key; /* left << 32 | right */
  int64_t count;
  int32_t *where; /* words that hold (or held) the pair; may repeat */
  uint32_t n_where, cap_where;
  int32_t stamp; /* last merge that pushed it to `touched` */
  uint8_t done;  /* merged: never picked again */
} bpe_pair;

typedef struct bpe_token {
  uint64_t off;
  uint32_t len;
} bpe_token;

typedef struct heap_item {
  int64_t count;
  uint64_t key;
  uint32_t pair;
} heap_item;

typedef struct bpe_merge {
  int32_t left, right, result;
  int32_t makes_token; /* 1 if this merge created `result` */
} bpe_merge;

/* Open-addressing table of indices (+1; 0 is empty) into some array. */
typedef struct index_table {
  uint32_t *slot;
  size_t mask, n;
} index_table;

struct r1d_bpe_trainer {
  int vocab_size;
  long long min_frequency;
  char **added;
  unsigned char *added_special;
  int n_added;
  r1d_tokenizer *pretok; /* no merges; splits text like the result does */
  pcre2_match_data *md;
  r1d_ids added_scratch; /* ids of added tokens matched while counting */

  /* counting */
  r1d_buf word_bytes;
  bpe_word *words;
  size_t n_words, cap_words;
  index_table word_index;
  r1d_bpe_stats stats;
  long long long_word_bytes;
  int trained;

  /* training */
  int32_t *syms;       /* the words' tokens, words[w].off into it */
  r1d_buf token_bytes; /* bytes of every token */
  bpe_token *tokens;   /* where each token's bytes are in token_bytes */
  int n_tokens;
  size_t cap_tokens;
  index_table token_index; /* token bytes -> id */
  bpe_pair *pairs;
  size_t n_pairs, cap_pairs;
  index_table pair_index;
  heap_item *heap;
  size_t heap_n, heap_cap;
  uint32_t *touched; /* pairs that grew in the current merge */
  size_t n_touched, cap_touched;
  bpe_merge *merges;
  int n_merges;
  size_t cap_merges;
};

/* Grows *v (of *cap elements of size sz) to hold at least need. */
static int grow(void *pv, size_t *cap, size_t need, size_t sz) {
  void **v = pv;
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *p = realloc(*v, c * sz);
  if (!p) return R1D_ENOMEM;
  *v = p;
  *cap = c;
  return 0;
}

static int table_init(index_table *t, size_t expect) {
  size_t cap = 64;
  while (cap < expect * 2)
    cap *= 2;
  t->slot = calloc(cap, sizeof *t->slot);
  t->mask = cap - 1;
  t->n = 0;
  return t->slot ? 0 : R1D_ENOMEM;
}

/* ---- word counting (stage 1) -------------------------------------------- */

static uint32_t *word_slot(const r1d_bpe_trainer *tr, const char *s, size_t n,
                           uint64_t h) {
  const index_table *t = &tr->word_index;
  for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
    uint32_t *e = &t->slot[i];
    if (!*e) return e;
    const bpe_word *w = &tr->words[*e - 1];
    if (w->len == n && memcmp(tr->word_bytes.p + w->off, s, n) == 0) return e;
  }
}

static int word_table_grow(r1d_bpe_trainer *tr) {
  index_table old = tr->word_index;
  if (table_init(&tr->word_index, old.mask + 1)) {
    tr->word_index = old;
    return R1D_ENOMEM;
  }
  for (size_t i = 0; i <= old.mask; i++) {
    if (!old.slot[i]) continue;
    const bpe_word *w = &tr->words[old.slot[i] - 1];
    const char *s = tr->word_bytes.p + w->off;
    *word_slot(tr, s, w->len, hash_bytes(s, w->len)) = old.slot[i];
  }
  tr->word_index.n = old.n;
  free(old.slot);
  return 0;
}

static int count_word(r1d_bpe_trainer *tr, const char *s, size_t n,
                      r1d_error *err) {
  tr->stats.words++;
  if (n > R1D_BPE_MAX_WORD_BYTES) {
    tr->stats.long_words++;
    tr->long_word_bytes += (long long)n;
    return 0;
  }
  uint32_t *e = word_slot(tr, s, n, hash_bytes(s, n));
  if (*e) {
    tr->words[*e - 1].freq++;
    return 0;
  }
  if (tr->n_words >= R1D_BPE_MAX_WORDS)
    return r1d_fail(err, R1D_ERANGE,
                    "corpus has more than %d distinct words; train on less "
                    "text",
                    R1D_BPE_MAX_WORDS);
  if (grow(&tr->words, &tr->cap_words, tr->n_words + 1, sizeof *tr->words))
    return r1d_fail(err, R1D_ENOMEM, "out of memory counting words");
  bpe_word *w = &tr->words[tr->n_words];
  *w = (bpe_word){.off = tr->word_bytes.n, .len = (uint32_t)n, .freq = 1};
  if (r1d_buf_append(&tr->word_bytes, s, n))
    return r1d_fail(err, R1D_ENOMEM, "out of memory counting words");
  *e = (uint32_t)++tr->n_words;
  if (++tr->word_index.n * 2 > tr->word_index.mask && word_table_grow(tr))
    return r1d_fail(err, R1D_ENOMEM, "out of memory counting words");
  return 0;
}

/* The encode context with the trainer beside it: tok_split_added hands the
 * context to our gap functions, which need the trainer. */
typedef struct count_ctx {
  enc_ctx c; /* first, so an enc_ctx * is a count_ctx * */
  r1d_bpe_trainer *tr;
} count_ctx;

/* Splits s[0..n) with the Split steps from `step` on, like the encoder's
 * split_step with behaviour Isolated (the only one our tokenizer uses, as
 * new() checks): matches and the gaps between them are all pieces. The
 * words are the pieces of the last step. */
static int split_words(count_ctx *cc, int step, const char *s, size_t n) {
  const r1d_tokenizer *t = cc->c.t;
  if (n == 0) return 0;
  while (step < t->n_steps && !t->steps[step].re)
    step++;
  if (step == t->n_steps) return count_word(cc->tr, s, n, cc->c.err);
  const unsigned char *u = (const unsigned char *)s;
  size_t pos = 0;
  while (pos < n) {
    int rc = pcre2_match(t->steps[step].re, u, n, pos, PCRE2_NO_UTF_CHECK,
                         cc->c.md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH)
      return split_words(cc, step + 1, s + pos, n - pos);
    if (rc < 0) {
      PCRE2_UCHAR msg[128];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return r1d_fail(cc->c.err, R1D_EINVAL, "tokenizer regex failed: %s",
                      (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(cc->c.md);
    size_t ms = ov[0], me = ov[1];
    int rc2 = split_words(cc, step + 1, s + pos, ms - pos);
    if (rc2) return rc2;
    if ((rc2 = split_words(cc, step + 1, s + ms, me - ms))) return rc2;
    if (me == ms) {
      /* an empty match steps one character, as the encoder does */
      if (me >= n) break;
      uint32_t cp;
      pos = me + (size_t)r1d_utf8_decode(u + me, n - me, &cp);
    } else {
      pos = me;
    }
  }
  return 0;
}

static int count_plain(enc_ctx *c, const char *s, size_t n) {
  return split_words((count_ctx *)c, 0, s, n);
}

/* As tok_encode_gap: NFC, then the normalized added tokens; the words are
 * counted instead of encoded. */
static int count_gap(enc_ctx *c, const char *s, size_t n) {
  return tok_normalize_gap(c, s, n, count_plain);
}

int r1d_bpe_trainer_add_text(r1d_bpe_trainer *tr, const char *text, size_t len,
                             r1d_error *err) {
  if (tr->trained)
    return r1d_fail(err, R1D_ESTATE, "BPE trainer: text added after training");
  if ((long long)len > R1D_BPE_MAX_CORPUS_BYTES - tr->stats.corpus_bytes)
    return r1d_fail(err, R1D_ERANGE,
                    "corpus is larger than the %lld bytes a training run "
                    "takes",
                    R1D_BPE_MAX_CORPUS_BYTES);
  size_t ok = r1d_utf8_valid_prefix((const unsigned char *)text, len);
  if (ok < len)
    return r1d_fail(err, R1D_EINVAL,
                    "text is not valid UTF-8 (byte 0x%02x at offset %zu)",
                    (unsigned char)text[ok], ok);
  tr->stats.corpus_bytes += (long long)len;
  count_ctx cc = {.c = {.t = tr->pretok,
                        .ids = &tr->added_scratch,
                        .err = err,
                        .md = tr->md},
                  .tr = tr};
  tr->added_scratch.n = 0;
  int rc = tok_split_added(&cc.c, &tr->pretok->raw_trie, text, len, count_gap);
  if (rc == R1D_ENOMEM) r1d_fail(err, rc, "out of memory counting words");
  tr->stats.added_matches += (long long)tr->added_scratch.n;
  return rc;
}

/* ---- creating the trainer ----------------------------------------------- */

static int check_options(const r1d_bpe_options *o, r1d_error *err) {
  if (o->n_added < 0 || o->n_added > R1D_BPE_MAX_ADDED)
    return r1d_fail(err, R1D_ERANGE, "%d added tokens (at most %d)", o->n_added,
                    R1D_BPE_MAX_ADDED);
  if (o->n_added > 0 && !o->added)
    return r1d_fail(err, R1D_EINVAL, "added tokens missing");
  int lo = 256 + o->n_added;
  if (o->vocab_size < lo || o->vocab_size > R1D_BPE_MAX_VOCAB)
    return r1d_fail(err, R1D_ERANGE,
                    "vocab size %d is out of range: %d to %d (256 byte "
                    "tokens + %d added tokens + merges)",
                    o->vocab_size, lo, R1D_BPE_MAX_VOCAB, o->n_added);
  if (o->min_frequency < 1)
    return r1d_fail(err, R1D_ERANGE, "min frequency %lld must be at least 1",
                    o->min_frequency);
  for (int j = 0; j < o->n_added; j++) {
    const char *a = o->added[j];
    size_t n = a ? strlen(a) : 0;
    if (n == 0 || n > R1D_BPE_MAX_ADDED_BYTES)
      return r1d_fail(err, R1D_EINVAL,
                      "added token %d is empty or longer than %d bytes", j,
                      R1D_BPE_MAX_ADDED_BYTES);
    if (r1d_utf8_valid_prefix((const unsigned char *)a, n) < n)
      return r1d_fail(err, R1D_EINVAL, "added token %d is not valid UTF-8", j);
    for (int k = 0; k < j; k++)
      if (strcmp(o->added[k], a) == 0)
        return r1d_fail(err, R1D_EINVAL, "added token '%s' is listed twice", a);
  }
  return 0;
}

/* The tokenizer with no merges and our added tokens: written to a private
 * temporary folder and loaded, so its pre-tokenizer is exactly the one the
 * trained file will have. */
static int make_pretok(r1d_bpe_trainer *tr, r1d_error *err) {
  const char *tmp = getenv("TMPDIR");
  char dir[4096];
  int len = snprintf(dir, sizeof dir, "%s/r1d-bpe-XXXXXX",
                     tmp && *tmp ? tmp : "/tmp");
  if (len < 0 || (size_t)len >= sizeof dir || !mkdtemp(dir))
    return r1d_fail(err, R1D_EIO, "cannot make a temporary folder in %s: %s",
                    tmp && *tmp ? tmp : "/tmp", strerror(errno));
  char *path = r1d_path_join(dir, "tokenizer.json");
  int rc = path ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (!rc)
    rc = r1d_tokenizer_write_bytelevel(path, NULL, 0,
                                       (const char *const *)tr->added,
                                       tr->added_special, tr->n_added, err);
  if (!rc) rc = r1d_tokenizer_load(path, &tr->pretok, err);
  if (path) unlink(path);
  rmdir(dir);
  free(path);
  if (rc) return rc;
  /* What split_words implements: Isolated, non-inverted Split steps, and a
   * ByteLevel step that adds no prefix space. */
  for (int i = 0; i < tr->pretok->n_steps; i++) {
    const pretok_step *st = &tr->pretok->steps[i];
    if (st->prefix_space ||
        (st->re && (st->behavior != SPLIT_ISOLATED || st->invert)))
      return r1d_fail(err, R1D_EUNSUPPORTED,
                      "BPE trainer: pre-tokenizer step %d is not an Isolated "
                      "split",
                      i);
  }
  tr->md = pcre2_match_data_create(1, NULL);
  return tr->md ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
}

int r1d_bpe_trainer_new(const r1d_bpe_options *opt, r1d_bpe_trainer **out,
                        r1d_error *err) {
  *out = NULL;
  int rc = check_options(opt, err);
  if (rc) return rc;
  r1d_bpe_trainer *tr = calloc(1, sizeof *tr);
  if (!tr) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  tr->vocab_size = opt->vocab_size;
  tr->min_frequency = opt->min_frequency;
  tr->n_added = opt->n_added;
  tr->added = calloc((size_t)opt->n_added + 1, sizeof *tr->added);
  tr->added_special = malloc((size_t)opt->n_added + 1);
  if (!tr->added || !tr->added_special ||
      table_init(&tr->word_index, 1 << 16)) {
    r1d_bpe_trainer_free(tr);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  for (int j = 0; j < opt->n_added; j++) {
    tr->added[j] = strdup(opt->added[j]);
    tr->added_special[j] = opt->added_special ? opt->added_special[j] : 1;
    if (!tr->added[j]) {
      r1d_bpe_trainer_free(tr);
      return r1d_fail(err, R1D_ENOMEM, "out of memory");
    }
  }
  if ((rc = make_pretok(tr, err))) {
    r1d_bpe_trainer_free(tr);
    return rc;
  }
  *out = tr;
  return 0;
}

void r1d_bpe_trainer_free(r1d_bpe_trainer *tr) {
  if (!tr) return;
  for (int j = 0; tr->added && j < tr->n_added; j++)
    free(tr->added[j]);
  free(tr->added);
  free(tr->added_special);
  r1d_tokenizer_free(tr->pretok);
  pcre2_match_data_free(tr->md);
  r1d_ids_free(&tr->added_scratch);
  r1d_buf_free(&tr->word_bytes);
  free(tr->words);
  free(tr->word_index.slot);
  free(tr->syms);
  r1d_buf_free(&tr->token_bytes);
  free(tr->tokens);
  free(tr->token_index.slot);
  for (size_t i = 0; i < tr->n_pairs; i++)
    free(tr->pairs[i].where);
  free(tr->pairs);
  free(tr->pair_index.slot);
  free(tr->heap);
  free(tr->touched);
  free(tr->merges);
  free(tr);
}

/* ---- tokens and pairs (stage 2) ----------------------------------------- */

static uint32_t *token_slot(const r1d_bpe_trainer *tr, const char *s,
                            size_t n) {
  const index_table *t = &tr->token_index;
  for (size_t i = hash_bytes(s, n) & t->mask;; i = (i + 1) & t->mask) {
    uint32_t *e = &t->slot[i];
    if (!*e) return e;
    int32_t id = (int32_t)*e - 1;
    if (tr->tokens[id].len == n &&
        memcmp(tr->token_bytes.p + tr->tokens[id].off, s, n) == 0)
      return e;
  }
}

/* Appends a token with bytes s[0..n) (not yet in the table). */
static int add_token(r1d_bpe_trainer *tr, const char *s, size_t n) {
  if (grow(&tr->tokens, &tr->cap_tokens, (size_t)tr->n_tokens + 1,
           sizeof *tr->tokens))
    return R1D_ENOMEM;
  size_t off = tr->token_bytes.n;
  if (r1d_buf_append(&tr->token_bytes, s, n)) return R1D_ENOMEM;
  tr->tokens[tr->n_tokens] = (bpe_token){off, (uint32_t)n};
  *token_slot(tr, tr->token_bytes.p + off, n) = (uint32_t)++tr->n_tokens;
  tr->token_index.n++;
  return 0;
}

static uint64_t pair_of(int32_t a, int32_t b) {
  return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

static uint32_t *pair_slot(const r1d_bpe_trainer *tr, uint64_t key) {
  const index_table *t = &tr->pair_index;
  for (size_t i = hash_u64(key) & t->mask;; i = (i + 1) & t->mask) {
    uint32_t *e = &t->slot[i];
    if (!*e || tr->pairs[*e - 1].key == key) return e;
  }
}

/* Index of pair key, added with count 0 if new; -1 when out of memory. */
static long pair_index(r1d_bpe_trainer *tr, uint64_t key) {
  uint32_t *e = pair_slot(tr, key);
  if (*e) return (long)*e - 1;
  if (grow(&tr->pairs, &tr->cap_pairs, tr->n_pairs + 1, sizeof *tr->pairs))
    return -1;
  tr->pairs[tr->n_pairs] = (bpe_pair){.key = key, .stamp = -1};
  *e = (uint32_t)++tr->n_pairs;
  if (++tr->pair_index.n * 2 > tr->pair_index.mask) {
    index_table old = tr->pair_index;
    if (table_init(&tr->pair_index, old.mask + 1)) {
      tr->pair_index = old;
      return -1;
    }
    for (size_t i = 0; i < tr->n_pairs; i++)
      *pair_slot(tr, tr->pairs[i].key) = (uint32_t)i + 1;
    tr->pair_index.n = tr->n_pairs;
    free(old.slot);
  }
  return (long)tr->n_pairs - 1;
}

static int where_add(bpe_pair *p, int32_t w) {
  if (p->n_where && p->where[p->n_where - 1] == w) return 0;
  if (p->n_where == p->cap_where) {
    uint32_t cap = p->cap_where ? p->cap_where * 2 : 4;
    int32_t *v = realloc(p->where, cap * sizeof *v);
    if (!v) return R1D_ENOMEM;
    p->where = v;
    p->cap_where = cap;
  }
  p->where[p->n_where++] = w;
  return 0;
}

/* ---- the heap: highest count first, then the lowest pair ---------------- */

static int heap_above(const heap_item *a, const heap_item *b) {
  return a->count > b->count || (a->count == b->count && a->key < b->key);
}

static void heap_sift_down(heap_item *h, size_t n, size_t i) {
  heap_item x = h[i];
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    const heap_item *best = &x;
    if (l < n && heap_above(&h[l], best)) {
      m = l;
      best = &h[l];
    }
    if (l + 1 < n && heap_above(&h[l + 1], best)) m = l + 1;
    if (m == i) break;
    h[i] = h[m];
    i = m;
  }
  h[i] = x;
}

static int heap_push(r1d_bpe_trainer *tr, uint32_t pair) {
  if (grow(&tr->heap, &tr->heap_cap, tr->heap_n + 1, sizeof *tr->heap))
    return R1D_ENOMEM;
  heap_item x = {tr->pairs[pair].count, tr->pairs[pair].key, pair};
  size_t i = tr->heap_n++;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (!heap_above(&x, &tr->heap[up])) break;
    tr->heap[i] = tr->heap[up];
    i = up;
  }
  tr->heap[i] = x;
  return 0;
}

static heap_item heap_pop(r1d_bpe_trainer *tr) {
  heap_item top = tr->heap[0];
  tr->heap[0] = tr->heap[--tr->heap_n];
  if (tr->heap_n) heap_sift_down(tr->heap, tr->heap_n, 0);
  return top;
}

/* ---- training ----------------------------------------------------------- */

/* Adds delta to pair (a, b) as seen in word w. Pairs that hold the new
 * token z grow: they learn the word and are pushed to the heap after the
 * merge (tr->touched). */
static int bump(r1d_bpe_trainer *tr, int32_t a, int32_t b, int64_t delta,
                int32_t w, int32_t z, int32_t merge_no) {
  long pi = pair_index(tr, pair_of(a, b));
  if (pi < 0) return R1D_ENOMEM;
  bpe_pair *p = &tr->pairs[pi];
  p->count += delta;
  if (delta <= 0 || (a != z && b != z)) return 0;
  if (where_add(p, w)) return R1D_ENOMEM;
  if (p->stamp == merge_no) return 0;
  p->stamp = merge_no;
  if (grow(&tr->touched, &tr->cap_touched, tr->n_touched + 1,
           sizeof *tr->touched))
    return R1D_ENOMEM;
  tr->touched[tr->n_touched++] = (uint32_t)pi;
  return 0;
}

/* Merges every (a, b) in word w, left to right without overlap (as the
 * encoder does on ties), and moves the counts of the pairs next to each
 * merged spot from a/b to z. */
static int merge_word(r1d_bpe_trainer *tr, int32_t w, int32_t a, int32_t b,
                      int32_t z, int32_t merge_no) {
  bpe_word *wd = &tr->words[w];
  int32_t *s = tr->syms + wd->off;
  int64_t f = wd->freq;
  uint32_t n = wd->len, i = 0, j = 0;
  while (i < n) {
    if (i + 1 < n && s[i] == a && s[i + 1] == b) {
      if (j > 0) {
        int32_t prev = s[j - 1];
        if (bump(tr, prev, a, -f, w, z, merge_no) ||
            bump(tr, prev, z, f, w, z, merge_no))
          return R1D_ENOMEM;
      }
      if (i + 2 < n) {
        int32_t next = s[i + 2];
        if (bump(tr, b, next, -f, w, z, merge_no) ||
            bump(tr, z, next, f, w, z, merge_no))
          return R1D_ENOMEM;
      }
      s[j++] = z;
      i += 2;
    } else {
      s[j++] = s[i++];
    }
  }
  wd->len = j;
  return 0;
}

/* Counts every adjacent pair of every word and fills the heap. */
static int count_pairs(r1d_bpe_trainer *tr) {
  if (table_init(&tr->pair_index, tr->n_words + 1024)) return R1D_ENOMEM;
  for (size_t w = 0; w < tr->n_words; w++) {
    const bpe_word *wd = &tr->words[w];
    const int32_t *s = tr->syms + wd->off;
    for (uint32_t i = 0; i + 1 < wd->len; i++) {
      long pi = pair_index(tr, pair_of(s[i], s[i + 1]));
      if (pi < 0) return R1D_ENOMEM;
      tr->pairs[pi].count += wd->freq;
      if (where_add(&tr->pairs[pi], (int32_t)w)) return R1D_ENOMEM;
    }
  }
  if (grow(&tr->heap, &tr->heap_cap, tr->n_pairs + 1, sizeof *tr->heap))
    return R1D_ENOMEM;
  for (size_t i = 0; i < tr->n_pairs; i++)
    tr->heap[i] =
        (heap_item){tr->pairs[i].count, tr->pairs[i].key, (uint32_t)i};
  tr->heap_n = tr->n_pairs;
  for (size_t i = tr->heap_n / 2; i-- > 0;)
    heap_sift_down(tr->heap, tr->heap_n, i);
  return 0;
}

/* The next pair to merge (its index), or -1 when none occurs at least
 * min_frequency times. */
static long next_pair(r1d_bpe_trainer *tr, int *rc) {
  *rc = 0;
  while (tr->heap_n) {
    heap_item top = heap_pop(tr);
    const bpe_pair *p = &tr->pairs[top.pair];
    if (p->done) continue;
    if (top.count != p->count) {
      /* out of date: put it back with its count */
      if (p->count > 0 && (*rc = heap_push(tr, top.pair))) return -1;
      continue;
    }
    return p->count >= tr->min_frequency ? (long)top.pair : -1;
  }
  return -1;
}

/* Applies merge number merge_no of pair pi; *made is 1 if it made a new
 * token. */
static int do_merge(r1d_bpe_trainer *tr, long pi, int32_t merge_no, int *made) {
  int32_t a = (int32_t)(tr->pairs[pi].key >> 32);
  int32_t b = (int32_t)(tr->pairs[pi].key & 0xffffffffu);
  /* the new token's bytes: a's then b's */
  size_t la = tr->tokens[a].len, lb = tr->tokens[b].len;
  char *joined = malloc(la + lb);
  if (!joined) return R1D_ENOMEM;
  memcpy(joined, tr->token_bytes.p + tr->tokens[a].off, la);
  memcpy(joined + la, tr->token_bytes.p + tr->tokens[b].off, lb);
  uint32_t *e = token_slot(tr, joined, la + lb);
  int32_t z = *e ? (int32_t)*e - 1 : tr->n_tokens;
  *made = !*e;
  int rc = *made ? add_token(tr, joined, la + lb) : 0;
  free(joined);
  if (rc) return rc;
  if (*made && tr->token_index.n * 2 > tr->token_index.mask) {
    /* grow the token table (rare: doubles) */
    index_table old = tr->token_index;
    if (table_init(&tr->token_index, old.mask + 1)) {
      tr->token_index = old;
      return R1D_ENOMEM;
    }
    for (int32_t id = 0; id < tr->n_tokens; id++)
      *token_slot(tr, tr->token_bytes.p + tr->tokens[id].off,
                  tr->tokens[id].len) = (uint32_t)id + 1;
    tr->token_index.n = (size_t)tr->n_tokens;
    free(old.slot);
  }
  if (grow(&tr->merges, &tr->cap_merges, (size_t)tr->n_merges + 1,
           sizeof *tr->merges))
    return R1D_ENOMEM;
  tr->merges[tr->n_merges++] = (bpe_merge){a, b, z, *made};

  /* The pair's word list: its array is never touched by the merge (no pair
   * holding z is (a, b), since z is longer than a and b). */
  bpe_pair *p = &tr->pairs[pi];
  int32_t *where = p->where;
  uint32_t n_where = p->n_where;
  p->where = NULL;
  p->n_where = p->cap_where = 0;
  p->done = 1;
  tr->n_touched = 0;
  for (uint32_t k = 0; k < n_where && !rc; k++)
    rc = merge_word(tr, where[k], a, b, z, merge_no);
  free(where);
  tr->pairs[pi].count = 0;
  for (size_t k = 0; k < tr->n_touched && !rc; k++) {
    const bpe_pair *q = &tr->pairs[tr->touched[k]];
    if (!q->done && q->count > 0) rc = heap_push(tr, tr->touched[k]);
  }
  return rc;
}

int r1d_bpe_trainer_train(r1d_bpe_trainer *tr, r1d_error *err) {
  if (tr->trained)
    return r1d_fail(err, R1D_ESTATE, "BPE trainer: already trained");
  tr->trained = 1;
  /* words become token arrays: byte b is token b */
  size_t total = tr->word_bytes.n;
  tr->syms = malloc((total ? total : 1) * sizeof *tr->syms);
  if (!tr->syms) return r1d_fail(err, R1D_ENOMEM, "out of memory training");
  for (size_t i = 0; i < total; i++)
    tr->syms[i] = (unsigned char)tr->word_bytes.p[i];
  r1d_buf_free(&tr->word_bytes);
  free(tr->word_index.slot);
  tr->word_index.slot = NULL;

  int target = tr->vocab_size - tr->n_added; /* byte + learned tokens */
  if (table_init(&tr->token_index, (size_t)target)) goto nomem;
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    if (add_token(tr, &c, 1)) goto nomem;
  }
  if (count_pairs(tr)) goto nomem;
  int rc = 0;
  while (tr->n_tokens < target) {
    long pi = next_pair(tr, &rc);
    if (rc) goto nomem;
    if (pi < 0) break;
    int made;
    if (tr->n_merges == INT32_MAX - 1 || do_merge(tr, pi, tr->n_merges, &made))
      goto nomem;
  }
  /* the pair tables are only needed while merging */
  for (size_t i = 0; i < tr->n_pairs; i++)
    free(tr->pairs[i].where);
  free(tr->pairs);
  free(tr->pair_index.slot);
  free(tr->heap);
  tr->pairs = NULL;
  tr->pair_index.slot = NULL;
  tr->heap = NULL;
  tr->n_pairs = tr->cap_pairs = tr->heap_n = tr->heap_cap = 0;

  long long tokens = tr->stats.added_matches + tr->long_word_bytes;
  for (size_t w = 0; w < tr->n_words; w++)
    tokens += (long long)tr->words[w].len * tr->words[w].freq;
  tr->stats.tokens = tokens;
  tr->stats.distinct = (long long)tr->n_words;
  tr->stats.merges = tr->n_merges;
  tr->stats.vocab_size = tr->n_tokens + tr->n_added;
  return 0;
nomem:
  return r1d_fail(err, R1D_ENOMEM, "out of memory training the tokenizer");
}

void r1d_bpe_trainer_stats(const r1d_bpe_trainer *tr, r1d_bpe_stats *out) {
  *out = tr->stats;
  out->distinct = (long long)tr->n_words;
}

int r1d_bpe_trainer_merge(const r1d_bpe_trainer *tr, int i, int32_t *left,
                          int32_t *right, int32_t *result) {
  if (i < 0 || i >= tr->n_merges) return R1D_ERANGE;
  *left = tr->merges[i].left;
  *right = tr->merges[i].right;
  *result = tr->merges[i].result;
  return 0;
}

const char *r1d_bpe_trainer_token(const r1d_bpe_trainer *tr, int32_t id,
                                  size_t *len) {
  if (id < 0 || id >= tr->n_tokens) return NULL;
  if (len) *len = tr->tokens[id].len;
  return tr->token_bytes.p + tr->tokens[id].off;
}

/* ---- writing (stage 3) -------------------------------------------------- */

/* Token id as its tokenizer.json string: the ByteLevel character of each
 * byte, taken from the merge-free tokenizer (byte b is its id b). */
static char *bytelevel_string(const r1d_bpe_trainer *tr, int32_t id) {
  r1d_buf s = {0};
  const unsigned char *p =
      (const unsigned char *)tr->token_bytes.p + tr->tokens[id].off;
  for (uint32_t i = 0; i < tr->tokens[id].len; i++) {
    const char *c = r1d_tokenizer_id_to_token(tr->pretok, p[i]);
    if (!c || r1d_buf_append(&s, c, strlen(c))) {
      free(s.p);
      return NULL;
    }
  }
  if (r1d_buf_append(&s, "", 1)) {
    free(s.p);
    return NULL;
  }
  return s.p;
}

/* Puts every merge (also those into an existing token) in rank order into
 * the written file, and refuses added tokens that are vocabulary strings. */
static int finish_file(const r1d_bpe_trainer *tr, const char *path, char **strs,
                       r1d_error *err) {
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  json_t *model = json_object_get(root, "model");
  json_t *vocab = json_object_get(model, "vocab");
  if (!json_is_object(vocab)) {
    json_decref(root);
    return r1d_fail(err, R1D_EFORMAT, "%s: cannot read back: %s", path,
                    je.text);
  }
  for (int j = 0; j < tr->n_added; j++)
    if (json_object_get(vocab, tr->added[j])) {
      json_decref(root);
      return r1d_fail(err, R1D_EINVAL,
                      "%s: added token '%s' is also a vocabulary token", path,
                      tr->added[j]);
    }
  int all_make_tokens = 1;
  for (int i = 0; i < tr->n_merges; i++)
    all_make_tokens &= tr->merges[i].makes_token;
  if (all_make_tokens) {
    json_decref(root);
    return 0;
  }
  json_t *merges = json_array();
  for (int i = 0; merges && i < tr->n_merges; i++)
    if (json_array_append_new(merges,
                              json_pack("[s, s]", strs[tr->merges[i].left],
                                        strs[tr->merges[i].right]))) {
      json_decref(merges);
      merges = NULL;
    }
  char *text = NULL;
  if (merges && json_object_set_new(model, "merges", merges) == 0)
    text = json_dumps(root, JSON_INDENT(2));
  json_decref(root);
  if (!text) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  int rc = r1d_write_file_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

int r1d_bpe_trainer_write(const r1d_bpe_trainer *tr, const char *path,
                          r1d_error *err) {
  if (!tr->trained)
    return r1d_fail(err, R1D_ESTATE, "%s: the tokenizer is not trained yet",
                    path);
  int rc = 0, n_made = 0;
  char **strs = calloc((size_t)tr->n_tokens, sizeof *strs);
  const char **halves = malloc(((size_t)tr->n_merges * 2 + 1) * sizeof *halves);
  if (!strs || !halves) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  for (int32_t id = 0; id < tr->n_tokens; id++)
    if (!(strs[id] = bytelevel_string(tr, id))) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
      goto done;
    }
  /* The writer gives merge k the id 256 + k: pass the merges that made the
   * tokens, in the order they were made (which is their ids' order). */
  for (int i = 0; i < tr->n_merges; i++)
    if (tr->merges[i].makes_token) {
      halves[2 * n_made] = strs[tr->merges[i].left];
      halves[2 * n_made + 1] = strs[tr->merges[i].right];
      n_made++;
    }
  rc = r1d_tokenizer_write_bytelevel(path, halves, n_made,
                                     (const char *const *)tr->added,
                                     tr->added_special, tr->n_added, err);
  if (!rc) rc = finish_file(tr, path, strs, err);
done:
  for (int32_t id = 0; strs && id < tr->n_tokens; id++)
    free(strs[id]);
  free(strs);
  free(halves);
  return rc;
}

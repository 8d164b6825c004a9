/* tokenizer.c - byte-level BPE tokenizers loaded from Hugging Face
 * tokenizer.json, bit-exact with the `tokenizers` package: the public
 * encode entry point, decoding, and id/token lookups.
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
 * Where each part lives:
 *   tokenizer_load.c     parsing tokenizer.json into the struct, freeing it
 *   tokenizer_tables.c   lookup tables derived after parsing (maps, tries,
 *                        per-id bytes, the byte-pair merge table)
 *   tokenizer_unicode.c  NFC and the regex rewrite that make utf8proc and
 *                        PCRE2 agree with `tokenizers`' Unicode version
 *   tokenizer_pretok.c   steps 1-3: added tokens, normalization, Split and
 *                        ByteLevel pre-tokenization
 *   tokenizer_bpe.c      step 4: the merge loop
 *   tokenizer_write.c    writing a new byte-level tokenizer.json
 *
 * The loaded struct is never written after r1d_tokenizer_load returns, so
 * any number of threads may encode and decode with it at once; all scratch
 * memory lives in a per-call context (enc_ctx). */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

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

int r1d_tokenizer_encode(const r1d_tokenizer *t, const char *text, size_t len,
                         r1d_ids *ids, r1d_error *err) {
  size_t ok = r1d_utf8_valid_prefix((const unsigned char *)text, len);
  if (ok < len)
    return r1d_fail(err, R1D_EINVAL,
                    "text to encode is not valid UTF-8 (byte 0x%02x at "
                    "offset %zu)",
                    (unsigned char)text[ok], ok);
  enc_ctx c = {.t = t, .ids = ids, .err = err};
  c.md = pcre2_match_data_create(1, NULL);
  if (!c.md) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  size_t n0 = ids->n;
  int rc = tok_split_added(&c, &t->raw_trie, text, len, tok_encode_gap);
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
  r1d_buf raw = {0}, out = {0};
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    if (id < 0 || id >= t->n_ids || !t->tok_str[id]) {
      rc = r1d_fail(err, R1D_ERANGE,
                    "token id %d at position %zu is not in "
                    "the vocabulary (size %d)",
                    (int)id, i, t->n_ids);
      goto done;
    }
    if (skip_special && t->special[id]) continue;
    if (r1d_buf_append(&raw, t->tok_bytes[id], t->tok_blen[id])) goto nomem;
  }
  /* from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD */
  if (r1d_utf8_lossy_append(&out, (const unsigned char *)raw.p, raw.n))
    goto nomem;
  if (r1d_buf_append(&out, "", 1)) goto nomem;
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

int r1d_tokenizer_vocab_size(const r1d_tokenizer *t) {
  return t->n_ids;
}

int32_t r1d_tokenizer_bos_to_add(const r1d_tokenizer *t) {
  return t->bos_to_add;
}

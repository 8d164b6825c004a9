/* auth.c - API key ring: parsing key files and lists, constant-time checks.
 *
 * Every key is stored in a zero-padded R1D_KEY_MAX_LEN buffer, and a header's
 * key is copied into one too, so a check XORs the same number of bytes for
 * every stored key whatever the lengths are; the lengths are compared by XOR
 * as well. Nothing branches on a secret byte, so the time of a check tells an
 * attacker neither how many leading characters matched nor a key's length.
 *
 * Key ids hash the key with SHA-256 (written out here, the only hash we need)
 * so a log reader cannot recover a key from its id. */
#include "auth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/file.h"

typedef struct r1d_key {
  unsigned char bytes[R1D_KEY_MAX_LEN]; /* zero-padded */
  size_t len;
  char id[R1D_KEY_ID_LEN + 1];
} r1d_key;

struct r1d_keyring {
  r1d_key *keys;
  size_t count, cap;
};

/* ---- SHA-256 (FIPS 180-4), just enough for key ids ---- */

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr32(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

static void sha256_block(uint32_t h[8], const unsigned char *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = rotr32(w[i - 15], 7) ^ rotr32(w[i - 15], 18) ^ w[i - 15] >> 3;
    uint32_t s1 = rotr32(w[i - 2], 17) ^ rotr32(w[i - 2], 19) ^ w[i - 2] >> 10;
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
  uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = hh + (rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25)) +
                  ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
    uint32_t t2 = (rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22)) +
                  ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d;
  h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

/* First word of SHA-256(data): the 8 hex digits of a key id. */
static uint32_t sha256_first_word(const unsigned char *data, size_t len) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  unsigned char block[64];
  size_t off = 0;
  for (; len - off >= 64; off += 64)
    sha256_block(h, data + off);
  size_t rest = len - off;
  memset(block, 0, sizeof block);
  memcpy(block, data + off, rest);
  block[rest] = 0x80;
  if (rest >= 56) { /* no room for the length: one more block */
    sha256_block(h, block);
    memset(block, 0, sizeof block);
  }
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++)
    block[63 - i] = (unsigned char)(bits >> (8 * i));
  sha256_block(h, block);
  explicit_bzero(block, sizeof block);
  return h[0];
}

/* ---- loading ---- */

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
         c == '\f';
}

/* Trims [*s, *s + *n) in place of whitespace on both ends. */
static void trim(const char **s, size_t *n) {
  while (*n > 0 && is_space(**s))
    (*s)++, (*n)--;
  while (*n > 0 && is_space((*s)[*n - 1]))
    (*n)--;
}

/* Why a key is not acceptable, or NULL when it is. Never quotes the key. */
static const char *key_problem(const char *s, size_t n) {
  if (n < R1D_KEY_MIN_LEN) return "API key too short (need 16..256 characters)";
  if (n > R1D_KEY_MAX_LEN) return "API key too long (need 16..256 characters)";
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x21 || s[i] > 0x7e)
      return "API key has a space or a non-printable or non-ASCII character";
  return NULL;
}

static int ring_add(r1d_keyring *k, const char *s, size_t n, r1d_error *err) {
  for (size_t i = 0; i < k->count; i++) /* loading is not timing-sensitive */
    if (k->keys[i].len == n && memcmp(k->keys[i].bytes, s, n) == 0) return 0;
  if (k->count == k->cap) {
    size_t cap = k->cap ? 2 * k->cap : 4;
    r1d_key *keys = calloc(cap, sizeof *keys);
    if (!keys) return r1d_fail(err, R1D_ENOMEM, "API keys: out of memory");
    if (k->count) memcpy(keys, k->keys, k->count * sizeof *keys);
    if (k->keys) explicit_bzero(k->keys, k->cap * sizeof *k->keys);
    free(k->keys);
    k->keys = keys;
    k->cap = cap;
  }
  r1d_key *key = &k->keys[k->count++];
  memset(key, 0, sizeof *key);
  memcpy(key->bytes, s, n);
  key->len = n;
  snprintf(key->id, sizeof key->id, "key-%08x",
           (unsigned)sha256_first_word(key->bytes, n));
  return 0;
}

static int load_file(r1d_keyring *k, const char *path, r1d_error *err) {
  char *data = NULL;
  size_t len = 0;
  int rc = r1d_read_file(path, &data, &len, err);
  if (rc) return rc;
  size_t pos = 0;
  for (int line = 1; pos < len && rc == 0; line++) {
    const char *s = data + pos;
    const char *nl = memchr(s, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - s) : len - pos;
    pos += n + 1;
    trim(&s, &n);
    if (n == 0 || s[0] == '#') continue;
    const char *why = key_problem(s, n);
    rc = why ? r1d_fail(err, R1D_EFORMAT, "%s:%d: %s", path, line, why)
             : ring_add(k, s, n, err);
  }
  if (data) explicit_bzero(data, len);
  free(data);
  return rc;
}

static int load_list(r1d_keyring *k, const char *list, r1d_error *err) {
  const char *p = list;
  for (int entry = 1;; entry++) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    const char *s = p;
    trim(&s, &n);
    if (n > 0) {
      const char *why = key_problem(s, n);
      if (why)
        return r1d_fail(err, R1D_EFORMAT, "API key list entry %d: %s", entry,
                        why);
      int rc = ring_add(k, s, n, err);
      if (rc) return rc;
    }
    if (!comma) return 0;
    p = comma + 1;
  }
}

int r1d_keyring_load(const char *path, const char *list, r1d_keyring **out,
                     r1d_error *err) {
  *out = NULL;
  if (!path && !list)
    return r1d_fail(err, R1D_EINVAL, "API keys: no key file and no key list");
  r1d_keyring *k = calloc(1, sizeof *k);
  if (!k) return r1d_fail(err, R1D_ENOMEM, "API keys: out of memory");
  int rc = path ? load_file(k, path, err) : 0;
  if (rc == 0 && list) rc = load_list(k, list, err);
  if (rc == 0 && k->count == 0)
    rc = r1d_fail(err, R1D_EINVAL, "%s%s: no API key", path ? path : "",
                  path ? (list ? " and the key list" : "") : "API key list");
  if (rc) {
    r1d_keyring_free(k);
    return rc;
  }
  *out = k;
  return 0;
}

void r1d_keyring_free(r1d_keyring *k) {
  if (!k) return;
  if (k->keys) explicit_bzero(k->keys, k->cap * sizeof *k->keys);
  free(k->keys);
  free(k);
}

size_t r1d_keyring_count(const r1d_keyring *k) {
  return k ? k->count : 0;
}

const char *r1d_keyring_id(const r1d_keyring *k, size_t i) {
  return k && i < k->count ? k->keys[i].id : NULL;
}

/* ---- checking ---- */

/* Finds the key in "Bearer <key>"; NULL when the header is not of that form.
 * This looks at the caller's own input only, so it may branch freely. */
static const char *bearer_token(const char *h, size_t *n) {
  if (strncasecmp(h, "Bearer", 6) != 0 || h[6] != ' ') return NULL;
  const char *s = h + 6;
  while (*s == ' ')
    s++;
  size_t len = strlen(s);
  while (len > 0 && is_space(s[len - 1]))
    len--;
  if (len == 0) return NULL;
  *n = len;
  return s;
}

int r1d_keyring_check(const r1d_keyring *k, const char *authorization_header,
                      const char **key_id) {
  if (!k || !authorization_header) return 0;
  size_t n = 0;
  const char *tok = bearer_token(authorization_header, &n);
  if (!tok) return 0;
  /* An over-long token cannot match; it is still compared (truncated, with a
   * length no stored key has) so every check costs the same. */
  unsigned char given[R1D_KEY_MAX_LEN];
  memset(given, 0, sizeof given);
  memcpy(given, tok, n < sizeof given ? n : sizeof given);
  size_t match = 0; /* index + 1 of the matching key, 0 for none */
  for (size_t i = 0; i < k->count; i++) {
    const r1d_key *key = &k->keys[i];
    unsigned diff = 0;
    for (size_t j = 0; j < R1D_KEY_MAX_LEN; j++)
      diff |= (unsigned)(given[j] ^ key->bytes[j]);
    size_t ldiff = n ^ key->len;
    diff |= (unsigned)(ldiff | ldiff >> 16 >> 16); /* any bit of the length */
    /* mask is all ones when diff == 0, else 0: no branch on the secret */
    size_t mask = (size_t)0 - (size_t)(((diff | (0u - diff)) >> 31) ^ 1u);
    match |= mask & (i + 1);
  }
  explicit_bzero(given, sizeof given);
  if (!match) return 0;
  if (key_id) *key_id = k->keys[match - 1].id;
  return 1;
}

/* auth.c - API key ring: parsing key files and lists, constant-time checks.
 *
 * Every key is stored in a zero-padded R1D_KEY_MAX_LEN buffer, and a header's
 * key is copied into one too, so a check XORs the same number of bytes for
 * every stored key whatever the lengths are; the lengths are compared by XOR
 * as well. Nothing branches on a secret byte, so the time of a check tells an
 * attacker neither how many leading characters matched nor a key's length.
 *
 * Key ids hash the key with SHA-256 (common/sha256.h) so a log reader
 * cannot recover a key from its id. */
#include "auth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/file.h"
#include "common/sha256.h"

typedef struct r1d_key {
  unsigned char bytes[R1D_KEY_MAX_LEN]; /* zero-padded */
  size_t len;
  char id[R1D_KEY_ID_LEN + 1];
} r1d_key;

struct r1d_keyring {
  r1d_key *keys;
  size_t count, cap;
};

/* First word of SHA-256(data): the 8 hex digits of a key id. */
static uint32_t sha256_first_word(const unsigned char *data, size_t len) {
  unsigned char d[R1D_SHA256_BYTES];
  r1d_sha256(data, len, d);
  uint32_t w = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 |
               (uint32_t)d[2] << 8 | (uint32_t)d[3];
  explicit_bzero(d, sizeof d);
  return w;
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

/* auth.h - API keys: load them, check an Authorization header, name them in logs.
 *
 * A keyring holds every key that may call the server. Keys come from a file
 * (one per line, '#' comments and blank lines ignored, surrounding whitespace
 * trimmed) and/or from a comma-separated list (an environment variable's
 * value). A key is 16..256 printable ASCII characters without spaces.
 *
 * Keys are secrets: no message, log line or error ever contains one. Logs name
 * a key by its id, "key-" plus the first 8 hex digits of the key's SHA-256,
 * which is the same on every load of the same key.
 *
 * The admin key is a second keyring, loaded the same way from its own file or
 * variable; the admin routes check against that ring only.
 *
 * Reload (SIGHUP): build a new ring with r1d_keyring_load, and only when that
 * succeeds swap the server's pointer to it and free the old ring once no
 * request uses it any more. A failed reload keeps the old ring and logs the
 * error (which names the file and line, never the key). A ring is read-only
 * after load, so any number of threads may check against it at once. */
#ifndef R1D_SERVER_AUTH_H
#define R1D_SERVER_AUTH_H

#include <stddef.h>

#include "common/status.h"

enum {
  R1D_KEY_MIN_LEN = 16,
  R1D_KEY_MAX_LEN = 256,
  R1D_KEY_ID_LEN = 12, /* "key-" + 8 hex digits */
};

typedef struct r1d_keyring r1d_keyring;

/* Builds a ring from the key file at `path` and the comma-separated list
 * `list` (e.g. getenv("R1D_API_KEYS")); either may be NULL, not both. Empty
 * list entries are skipped; a key given twice is kept once. Returns 0 and
 * *out, or R1D_EIO (unreadable file), R1D_EFORMAT (a bad key: the message
 * names the file and line, or the list entry number), R1D_EINVAL (no source or
 * no key at all), R1D_ENOMEM. */
int r1d_keyring_load(const char *path, const char *list, r1d_keyring **out,
                     r1d_error *err);

/* Frees the ring and wipes the keys from memory. NULL is fine. */
void r1d_keyring_free(r1d_keyring *k);

/* Number of keys in the ring. */
size_t r1d_keyring_count(const r1d_keyring *k);

/* Id of key i ("key-1a2b3c4d"), i < count; NULL when out of range. */
const char *r1d_keyring_id(const r1d_keyring *k, size_t i);

/* Checks an Authorization header value: "Bearer <key>" (scheme in any case,
 * one or more spaces before the key, trailing whitespace ignored). The key is
 * compared against every key in the ring in constant time: each comparison
 * covers a fixed R1D_KEY_MAX_LEN bytes and the length, and no comparison stops
 * early. Returns 1 and *key_id (if key_id is non-NULL; it points into the ring)
 * on a match, 0 otherwise, also for a NULL ring, a NULL or malformed header. */
int r1d_keyring_check(const r1d_keyring *k, const char *authorization_header,
                      const char **key_id);

#endif

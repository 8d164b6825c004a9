/* sha256.h - SHA-256 (FIPS 180-4), streaming, for the two places r1d needs a
 * hash: API key ids (server/auth.c) and the weight files a checkpoint record
 * vouches for (storage/checkpoints.c), which `sha256sum` must reproduce. */
#ifndef R1D_COMMON_SHA256_H
#define R1D_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum { R1D_SHA256_BYTES = 32, R1D_SHA256_HEX = 64 };

typedef struct r1d_sha256_ctx {
  uint32_t h[8];
  uint64_t bytes;          /* message length so far */
  unsigned char block[64]; /* a partial block */
  size_t fill;             /* bytes in block */
} r1d_sha256_ctx;

void r1d_sha256_init(r1d_sha256_ctx *s);
void r1d_sha256_update(r1d_sha256_ctx *s, const void *data, size_t len);
/* Writes the digest and wipes s (key material passes through it). */
void r1d_sha256_final(r1d_sha256_ctx *s, unsigned char out[R1D_SHA256_BYTES]);

/* One call: digest of data[0..len). */
void r1d_sha256(const void *data, size_t len,
                unsigned char out[R1D_SHA256_BYTES]);
/* 64 lowercase hex digits and a NUL. */
void r1d_sha256_hex(const unsigned char digest[R1D_SHA256_BYTES],
                    char out[R1D_SHA256_HEX + 1]);

/* Digest of a file's contents as hex, read in 1 MiB pieces; *bytes (may be
 * NULL) gets its size. R1D_EIO naming the file when it cannot be read. */
int r1d_sha256_file(const char *path, char out[R1D_SHA256_HEX + 1],
                    uint64_t *bytes, r1d_error *err);

#endif

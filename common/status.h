/* status.h - error codes and the error record every fallible r1d function fills.
 *
 * Functions return 0 on success or a negative R1D_E* code, outputs last. When
 * they take an `r1d_error *`, they also write one human-readable line into it
 * naming the file (or input) and the problem, so a CLI can print it verbatim.
 * The error pointer may be NULL when the caller only wants the code. */
#ifndef R1D_COMMON_STATUS_H
#define R1D_COMMON_STATUS_H

#include <stddef.h>

enum {
  R1D_OK = 0,
  R1D_EINVAL = -1,       /* bad argument or malformed input */
  R1D_EIO = -2,          /* read/write/open/mmap failed */
  R1D_ENOMEM = -3,       /* allocation failed */
  R1D_EFORMAT = -4,      /* file content violates its format */
  R1D_EUNSUPPORTED = -5, /* valid input we do not handle (yet) */
  R1D_ERANGE = -6,       /* a value outside its allowed range */
  R1D_ENOTFOUND = -7,    /* a named item (tensor, token, file) is missing */
  R1D_EBACKEND = -8,     /* the compute device failed (sticky on CUDA) */
  R1D_EBUSY = -9,        /* a queue or pool is full; retry later */
  R1D_ESTATE = -10,      /* the object is shutting down or in the wrong state */
  R1D_EFULL = -11,       /* storage is full (LMDB map at its cap) */
  R1D_EEXIST = -12,      /* an item with that id already exists */
};

typedef struct r1d_error {
  int code;
  char msg[512];
} r1d_error;

/* Human-readable name of a status code. */
const char *r1d_strerror(int code);

/* Records `code` and a printf-style message in *err (if err is non-NULL) and
 * returns `code`, so callers write `return r1d_fail(err, R1D_EFORMAT, ...)`. */
int r1d_fail(r1d_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

/* status.c - error codes to text, and the error record writer. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *r1d_strerror(int code) {
  switch (code) {
  case R1D_OK: return "ok";
  case R1D_EINVAL: return "invalid argument";
  case R1D_EIO: return "I/O error";
  case R1D_ENOMEM: return "out of memory";
  case R1D_EFORMAT: return "malformed input";
  case R1D_EUNSUPPORTED: return "unsupported";
  case R1D_ERANGE: return "value out of range";
  case R1D_ENOTFOUND: return "not found";
  case R1D_EBACKEND: return "compute backend failure";
  case R1D_EBUSY: return "busy";
  case R1D_ESTATE: return "wrong state";
  case R1D_EFULL: return "storage full";
  case R1D_EEXIST: return "already exists";
  default: return "unknown error";
  }
}

/* The message is formatted into a copy first: callers add context to an
 * earlier error by passing err->msg itself as an argument, and vsnprintf
 * into the buffer it reads from is undefined (it came out empty). */
int r1d_fail(r1d_error *err, int code, const char *fmt, ...) {
  if (err) {
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err->code = code;
    memcpy(err->msg, msg, sizeof msg);
  }
  return code;
}

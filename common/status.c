/* status.c - error codes to text, and the error record writer. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

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

int r1d_fail(r1d_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

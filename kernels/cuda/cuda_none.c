/* cuda_none.c - the CUDA backend's API in a build without CUDA (meson found
 * no nvcc, or -Dcuda=disabled): callers link and ask, and are told plainly
 * that this binary cannot use a GPU, rather than failing to link. */
#include "cuda_backend.h"

int r1d_cuda_built(void) {
  return 0;
}

int r1d_cuda_backend_init(r1d_backend *be, int device, r1d_error *err) {
  be->ops = NULL;
  be->ctx = NULL;
  return r1d_fail(err, R1D_EUNSUPPORTED,
                  "CUDA device %d: this r1d was built without CUDA "
                  "(meson -Dcuda=enabled)",
                  device);
}

void r1d_cuda_backend_destroy(r1d_backend *be) {
  if (!be) return;
  be->ops = NULL;
  be->ctx = NULL;
}

void r1d_cuda_backend_describe(const r1d_backend *be, char *buf, size_t len) {
  (void)be;
  if (buf && len > 0) buf[0] = '\0';
}

void r1d_cuda_backend_set_tf32(const r1d_backend *be, int on) {
  (void)be;
  (void)on;
}

const char *r1d_cuda_backend_error(const r1d_backend *be) {
  (void)be;
  return "";
}

/* fuzz_safetensors.c - libFuzzer harness for the safetensors reader.
 *
 * r1d_safetensors_open takes a path (it mmaps the file), and its header
 * parser is static, so each input is written to one temporary file (on
 * /dev/shm when it exists: no disk traffic) and opened from there. Whatever
 * opens must be usable: every view is looked up by name, its bytes read,
 * and float tensors converted, so a header that passes validation but lies
 * about sizes crashes here (reads past the mapping). Build:
 * tests/fuzz/build.sh. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/safetensors.h"

static char tmp_path[64]; /* /proc/self/fd/N of an unlinked temp file */
static int tmp_fd = -1;
static volatile unsigned sink; /* keeps the byte reads */

/* The file is unlinked at once and reopened through /proc/self/fd, so no
 * temp file outlives the fuzzer however it stops. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char name[64];
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(name, sizeof name, "%s/r1d-fuzz-st-XXXXXX", dir);
  tmp_fd = mkstemp(name);
  if (tmp_fd < 0) {
    perror("mkstemp");
    abort();
  }
  unlink(name);
  snprintf(tmp_path, sizeof tmp_path, "/proc/self/fd/%d", tmp_fd);
  return 0;
}

/* Touches every byte of a view so ASan sees an out-of-mapping read. */
static unsigned check_view(const r1d_safetensors *st,
                           const r1d_tensor_view *t) {
  unsigned sum = 0;
  if (!t->name || t->ndim < 0 || t->ndim > R1D_TENSOR_MAX_DIMS) abort();
  if (r1d_safetensors_find(st, t->name) != t) abort();
  int64_t numel = r1d_tensor_numel(t);
  if (numel < 0) abort();
  if ((uint64_t)numel * r1d_dtype_size(t->dtype) != t->nbytes) abort();
  const unsigned char *p = t->data;
  for (size_t i = 0; i < t->nbytes; i++)
    sum += p[i];
  if ((t->dtype == R1D_DTYPE_F32 || t->dtype == R1D_DTYPE_F16 ||
       t->dtype == R1D_DTYPE_BF16) &&
      numel > 0 && numel <= (1 << 16)) {
    float *f = malloc((size_t)numel * sizeof *f);
    if (!f) abort();
    if (r1d_tensor_to_f32(t, f) != R1D_OK) abort();
    sum += (unsigned)(f[0] == f[0]);
    free(f);
  }
  r1d_tensor_release(t);
  return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (ftruncate(tmp_fd, 0) != 0 ||
      pwrite(tmp_fd, data, size, 0) != (ssize_t)size)
    abort();
  r1d_safetensors *st = NULL;
  r1d_error err = {0};
  int rc = r1d_safetensors_open(tmp_path, &st, &err);
  if (rc != R1D_OK) {
    /* Bad input: a clear error (code and message), never a crash. */
    if (st || rc > 0 || err.code != rc || !err.msg[0]) abort();
    return 0;
  }
  unsigned sum = 0;
  int n = r1d_safetensors_count(st);
  for (int i = 0; i < n; i++)
    sum += check_view(st, r1d_safetensors_at(st, i));
  if (r1d_safetensors_at(st, n) || r1d_safetensors_at(st, -1)) abort();
  (void)r1d_safetensors_find(st, "");
  sink = sum;
  r1d_safetensors_close(st);
  return 0;
}

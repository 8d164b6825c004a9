/* safetensors_write.c - writes tensors to a safetensors file atomically.
 *
 * The file is streamed to path.tmp, fsynced and renamed over path, so a
 * crash or a full disk never leaves a half-written checkpoint under the
 * real name, and the weights are never copied a second time in memory. The
 * header carries the "format": "pt" metadata that transformers checks for. */
#include "safetensors_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t out_numel(const r1d_tensor_out *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++)
    n *= t->shape[i];
  return n;
}

/* Builds the padded header; *hdr is malloc'ed, *hlen a multiple of 8. The
 * "format": "pt" metadata is what torch's save_file writes and what
 * transformers checks for when loading. */
static int build_header(const char *path, const r1d_tensor_out *ts, int n,
                        char **hdr, size_t *hlen, r1d_error *err) {
  json_t *root = json_object();
  json_t *meta = json_pack("{s:s}", "format", "pt");
  int rc = R1D_OK;
  if (!root || !meta || json_object_set_new(root, "__metadata__", meta)) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    const r1d_tensor_out *t = &ts[i];
    if (!t->name || strcmp(t->name, "__metadata__") == 0 ||
        json_object_get(root, t->name)) {
      rc = r1d_fail(err, R1D_EINVAL, "%s: tensor %d: missing or duplicate name",
                    path, i);
      goto done;
    }
    size_t esz = r1d_dtype_size(t->dtype);
    if (esz == 0 || t->ndim < 0 || t->ndim > R1D_TENSOR_MAX_DIMS) {
      rc = r1d_fail(err, R1D_EINVAL, "%s: tensor %s: bad dtype or ndim", path,
                    t->name);
      goto done;
    }
    json_t *shape = json_array();
    for (int d = 0; d < t->ndim && shape; d++) {
      if (t->shape[d] < 0) {
        json_decref(shape);
        rc = r1d_fail(err, R1D_EINVAL, "%s: tensor %s: negative shape", path,
                      t->name);
        goto done;
      }
      json_array_append_new(shape, json_integer(t->shape[d]));
    }
    uint64_t bytes = (uint64_t)out_numel(t) * esz;
    json_t *e = json_pack(
        "{s:s, s:o, s:[I,I]}", "dtype", r1d_dtype_name(t->dtype), "shape",
        shape, "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
    if (!e || json_object_set_new(root, t->name, e)) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
      goto done;
    }
    off += bytes;
  }
  char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (!s) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  size_t len = strlen(s), padded = (len + 7) & ~(size_t)7;
  char *h = realloc(s, padded);
  if (!h) {
    free(s);
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  memset(h + len, ' ', padded - len); /* JSON allows trailing whitespace */
  *hdr = h;
  *hlen = padded;
done:
  json_decref(root);
  return rc;
}

static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* The directory entry of the rename must reach the disk too; failure here is
 * not reported, as some file systems refuse fsync on directories. */
static void sync_parent_dir(const char *path) {
  char *dir = strdup(path);
  if (!dir) return;
  char *slash = strrchr(dir, '/');
  if (slash == dir)
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    strcpy(dir, ".");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

/* Streams header and tensors to path.tmp (no second copy of the weights in
 * memory), fsyncs, and renames over path. */
int r1d_safetensors_write(const char *path, const r1d_tensor_out *tensors,
                          int n, r1d_error *err) {
  char *hdr = NULL, *tmp = NULL;
  size_t hlen = 0;
  int fd = -1, rc = build_header(path, tensors, n, &hdr, &hlen, err);
  if (rc) return rc;
  size_t pl = strlen(path);
  tmp = malloc(pl + 5);
  if (!tmp) {
    free(hdr);
    return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  }
  memcpy(tmp, path, pl);
  memcpy(tmp + pl, ".tmp", 5);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = r1d_fail(err, R1D_EIO, "%s: %s", tmp, strerror(errno));
    goto done;
  }
  unsigned char len8[8];
  for (int i = 0; i < 8; i++)
    len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  int bad = write_all(fd, len8, 8) || write_all(fd, hdr, hlen);
  for (int i = 0; i < n && !bad; i++) {
    size_t bytes =
        (size_t)out_numel(&tensors[i]) * r1d_dtype_size(tensors[i].dtype);
    if (bytes) bad = write_all(fd, tensors[i].data, bytes);
  }
  if (bad || fsync(fd) != 0) {
    rc = r1d_fail(err, R1D_EIO, "%s: %s", tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    goto done;
  }
  if (close(fd) != 0 || rename(tmp, path) != 0) {
    rc = r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(errno));
    unlink(tmp);
    goto done;
  }
  sync_parent_dir(path);
done:
  free(hdr);
  free(tmp);
  return rc;
}

/* file.c - whole-file reads and atomic writes. */
#define _POSIX_C_SOURCE 200809L
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int r1d_read_file(const char *path, char **data, size_t *len, r1d_error *err) {
  *data = NULL;
  if (len) *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  }
  for (;;) {
    if (n + 1 >= cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        fclose(f);
        return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return r1d_fail(err, R1D_EIO, "%s: read error", path);
  }
  buf[n] = '\0';
  *data = buf;
  if (len) *len = n;
  return R1D_OK;
}

char *r1d_path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  size_t n = a;
  if (a > 0 && dir[a - 1] != '/') p[n++] = '/';
  memcpy(p + n, name, b + 1);
  return p;
}

int r1d_next_line(const char *text, size_t len, size_t *pos, const char **line,
                  size_t *n) {
  if (!text || *pos >= len) return 0;
  const char *at = text + *pos;
  const char *nl = memchr(at, '\n', len - *pos);
  *line = at;
  *n = nl ? (size_t)(nl - at) : len - *pos;
  *pos += *n + (nl != NULL);
  return 1;
}

int r1d_file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int r1d_write_file_atomic(const char *path, const void *data, size_t len,
                          r1d_error *err) {
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 5);
  if (!tmp) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  memcpy(tmp, path, pl);
  memcpy(tmp + pl, ".tmp", 5);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(e));
  }
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      unlink(tmp);
      free(tmp);
      return r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(e));
    }
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    int e = errno;
    unlink(tmp);
    free(tmp);
    return r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    free(tmp);
    return r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(e));
  }
  free(tmp);
  return R1D_OK;
}

int r1d_mkdir_p(const char *dir, r1d_error *err) {
  size_t n = strlen(dir);
  char *p = malloc(n + 1);
  if (!p) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
  memcpy(p, dir, n + 1);
  /* Create each prefix ending before a '/', then the whole path. */
  for (size_t i = 1; i <= n; i++) {
    if (i < n && p[i] != '/') continue;
    char saved = p[i];
    p[i] = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
      int e = errno;
      free(p);
      return r1d_fail(err, R1D_EIO, "%s: cannot create: %s", dir, strerror(e));
    }
    p[i] = saved;
  }
  struct stat st;
  int ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
  free(p);
  if (!ok)
    return r1d_fail(err, R1D_EIO, "%s: exists and is not a directory", dir);
  return R1D_OK;
}

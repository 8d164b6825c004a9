/* checkpoint.c - a model folder written next to its final name, then
 * renamed into place (see checkpoint.h for why). */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/file.h"

static const char *const copied_files[] = {
    "config.json",           "generation_config.json",  "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"};
enum { N_COPIED = sizeof copied_files / sizeof copied_files[0] };

/* Removes a flat folder (a checkpoint has no subfolders): its files, then
 * itself. Quiet: it cleans up after success or failure alike. */
static void remove_folder(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[4096];
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

void r1d_checkpoint_remove(const char *dir) {
  remove_folder(dir);
}

static int fsync_path(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* The folder holding path ("." when none). */
static void parent_of(const char *path, char *out, size_t n) {
  snprintf(out, n, "%s", path);
  char *slash = strrchr(out, '/');
  if (slash == out)
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    snprintf(out, n, ".");
}

/* config.json with its dtype fields saying what model.safetensors holds, so
 * that transformers' dtype="auto" loads the weights as stored. */
static int write_config(const char *data, size_t len, const char *dst, int bf16,
                        r1d_error *err) {
  json_error_t jerr;
  json_t *cfg = json_loadb(data, len, 0, &jerr);
  if (!json_is_object(cfg)) {
    json_decref(cfg);
    return r1d_fail(err, R1D_EINVAL, "checkpoint: config.json: %s", jerr.text);
  }
  const char *dtype = bf16 ? "bfloat16" : "float32";
  int rc = json_object_set_new(cfg, "torch_dtype", json_string(dtype));
  if (rc == 0 && json_object_get(cfg, "dtype"))
    rc = json_object_set_new(cfg, "dtype", json_string(dtype));
  char *text =
      rc == 0 ? json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  json_decref(cfg);
  if (!text) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  rc = r1d_write_file_atomic(dst, text, strlen(text), err);
  free(text);
  return rc;
}

static int copy_files(const char *src_dir, const char *dst_dir, int bf16,
                      r1d_error *err) {
  for (int i = 0; i < N_COPIED; i++) {
    char *src = r1d_path_join(src_dir, copied_files[i]);
    char *dst = r1d_path_join(dst_dir, copied_files[i]);
    int rc = src && dst ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
    if (rc == 0 && r1d_file_exists(src)) {
      char *data = NULL;
      size_t len = 0;
      rc = r1d_read_file(src, &data, &len, err);
      if (rc == 0)
        rc = i == 0 ? write_config(data, len, dst, bf16, err)
                    : r1d_write_file_atomic(dst, data, len, err);
      free(data);
    } else if (rc == 0 && i == 0) {
      rc = r1d_fail(err, R1D_ENOTFOUND,
                    "checkpoint: %s has no config.json to copy", src_dir);
    }
    free(src);
    free(dst);
    if (rc) return rc;
  }
  return 0;
}

int r1d_checkpoint_write(const char *src_dir, const r1d_config *cfg,
                         const r1d_weights *w, int bf16, const char *out_dir,
                         r1d_error *err) {
  return r1d_checkpoint_write_extra(src_dir, cfg, w, bf16, NULL, 0, out_dir,
                                    err);
}

static int write_extras(const char *dir, const r1d_checkpoint_file *extra,
                        int n_extra, r1d_error *err) {
  for (int i = 0; i < n_extra; i++) {
    if (!extra[i].name || strchr(extra[i].name, '/') || !extra[i].name[0])
      return r1d_fail(err, R1D_EINVAL, "checkpoint: bad extra file name");
    char *path = r1d_path_join(dir, extra[i].name);
    if (!path) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    int rc = r1d_write_file_atomic(path, extra[i].data, extra[i].len, err);
    free(path);
    if (rc) return rc;
  }
  return 0;
}

int r1d_checkpoint_write_extra(const char *src_dir, const r1d_config *cfg,
                               const r1d_weights *w, int bf16,
                               const r1d_checkpoint_file *extra, int n_extra,
                               const char *out_dir, r1d_error *err) {
  char tmp[4096], old[4096], parent[4096];
  int n = snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out_dir, (long)getpid());
  int m = snprintf(old, sizeof old, "%s.old-%ld", out_dir, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof tmp || m < 0 || (size_t)m >= sizeof old)
    return r1d_fail(err, R1D_EINVAL, "checkpoint: path too long: %s", out_dir);
  parent_of(out_dir, parent, sizeof parent);
  remove_folder(tmp); /* left by an earlier crash of this pid */
  if (mkdir(tmp, 0755) != 0)
    return r1d_fail(err, R1D_EIO, "checkpoint: %s: %s", tmp, strerror(errno));
  int rc = r1d_weights_save(tmp, cfg, w, bf16, err);
  if (rc == 0) rc = copy_files(src_dir, tmp, bf16, err);
  if (rc == 0) rc = write_extras(tmp, extra, n_extra, err);
  if (rc == 0 && fsync_path(tmp, O_RDONLY | O_DIRECTORY) != 0)
    rc = r1d_fail(err, R1D_EIO, "checkpoint: fsync %s: %s", tmp,
                  strerror(errno));
  if (rc) goto fail;
  /* swap: the old folder aside, the new one in, then the old one gone */
  struct stat st;
  int had_old = stat(out_dir, &st) == 0;
  if (had_old && rename(out_dir, old) != 0) {
    rc = r1d_fail(err, R1D_EIO, "checkpoint: %s: %s", out_dir, strerror(errno));
    goto fail;
  }
  if (rename(tmp, out_dir) != 0) {
    rc = r1d_fail(err, R1D_EIO, "checkpoint: %s: %s", out_dir, strerror(errno));
    if (had_old) rename(old, out_dir); /* put the previous one back */
    goto fail;
  }
  (void)fsync_path(parent, O_RDONLY | O_DIRECTORY);
  if (had_old) remove_folder(old);
  return 0;
fail:
  remove_folder(tmp);
  return rc;
}

int r1d_checkpoint_link_last(const char *out_dir, const char *name,
                             r1d_error *err) {
  char tmp_link[4096], link[4096];
  int a = snprintf(tmp_link, sizeof tmp_link, "%s/.last.tmp-%ld", out_dir,
                   (long)getpid());
  int b = snprintf(link, sizeof link, "%s/last", out_dir);
  if (a < 0 || b < 0 || (size_t)a >= sizeof tmp_link ||
      (size_t)b >= sizeof link)
    return r1d_fail(err, R1D_EINVAL, "checkpoint: path too long");
  unlink(tmp_link);
  if (symlink(name, tmp_link) != 0 || rename(tmp_link, link) != 0) {
    int e = errno;
    unlink(tmp_link);
    return r1d_fail(err, R1D_EIO, "checkpoint: %s: %s", link, strerror(e));
  }
  return R1D_OK;
}

int r1d_checkpoint_step_dir(const char *out_dir, long step, char *dir,
                            size_t dir_cap, char name[64], r1d_error *err) {
  snprintf(name, 64, "checkpoint-%ld", step);
  int n = snprintf(dir, dir_cap, "%s/%s", out_dir, name);
  if (n < 0 || (size_t)n >= dir_cap)
    return r1d_fail(err, R1D_EINVAL, "checkpoint: path too long");
  return R1D_OK;
}

/* safetensors_folder.c - a Hugging Face model folder's weights: either one
 * model.safetensors, or the shards that model.safetensors.index.json lists.
 *
 * Tensors are looked up by name across all shards through one sorted table,
 * so callers never care how a checkpoint was split. Each shard is opened
 * (and validated) once however many tensors it holds, and a tensor listed
 * in the index but absent from its shard fails the open, not a later load. */
#include "safetensors_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/file.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

typedef struct folder_entry {
  const r1d_tensor_view *view; /* name owned by the shard */
  int file;
} folder_entry;

struct r1d_st_folder {
  int n_files;
  r1d_safetensors **files;
  int n;
  folder_entry *entries; /* sorted by name */
};

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const folder_entry *)a)->view->name,
                ((const folder_entry *)b)->view->name);
}

/* Returns the index of the shard called `file` in f, opening it on first
 * use so that every shard is mapped exactly once. */
static int folder_shard(r1d_st_folder *f, const char *dir, const char *index,
                        const char *file, const char *tensor, int *idx,
                        r1d_error *err) {
  char *path = r1d_path_join(dir, file);
  if (!path) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
  for (int i = 0; i < f->n_files; i++)
    if (strcmp(f->files[i]->path, path) == 0) {
      free(path);
      *idx = i;
      return R1D_OK;
    }
  int rc;
  if (!r1d_file_exists(path)) {
    rc = r1d_fail(err, R1D_ENOTFOUND,
                  "%s: shard file %s (listed for %s) does not exist", index,
                  path, tensor);
    free(path);
    return rc;
  }
  r1d_safetensors **nf =
      realloc(f->files, sizeof *nf * (size_t)(f->n_files + 1));
  if (!nf) {
    free(path);
    return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
  }
  f->files = nf;
  rc = r1d_safetensors_open(path, &f->files[f->n_files], err);
  free(path);
  if (rc) return rc;
  *idx = f->n_files++;
  return R1D_OK;
}

static int folder_from_index(r1d_st_folder *f, const char *dir,
                             const char *index, r1d_error *err) {
  json_error_t jerr;
  json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return r1d_fail(err, R1D_EFORMAT, "%s: invalid JSON: %s (line %d)", index,
                    jerr.text, jerr.line);
  int rc = R1D_OK;
  json_t *wm = json_object_get(root, "weight_map");
  if (!json_is_object(wm)) {
    rc = r1d_fail(err, R1D_EFORMAT, "%s: no \"weight_map\" object", index);
    goto done;
  }
  f->entries = calloc(json_object_size(wm) + 1, sizeof *f->entries);
  if (!f->entries) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", index);
    goto done;
  }
  const char *name;
  json_t *v;
  json_object_foreach(wm, name, v) {
    const char *file = json_string_value(v);
    /* Shards live in the folder itself; refuse paths that leave it. */
    if (!file || !*file || strchr(file, '/')) {
      rc = r1d_fail(err, R1D_EFORMAT, "%s: bad shard file name for %s", index,
                    name);
      goto done;
    }
    int fi = 0;
    rc = folder_shard(f, dir, index, file, name, &fi, err);
    if (rc) goto done;
    const r1d_tensor_view *t = r1d_safetensors_find(f->files[fi], name);
    if (!t) {
      rc = r1d_fail(err, R1D_EFORMAT, "%s: tensor %s listed in %s is missing",
                    f->files[fi]->path, name, INDEX_NAME);
      goto done;
    }
    f->entries[f->n++] = (folder_entry){t, fi};
  }
done:
  json_decref(root);
  return rc;
}

static int folder_single(r1d_st_folder *f, const char *path, r1d_error *err) {
  f->files = calloc(1, sizeof *f->files);
  if (!f->files) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  int rc = r1d_safetensors_open(path, &f->files[0], err);
  if (rc) return rc;
  f->n_files = 1;
  int n = r1d_safetensors_count(f->files[0]);
  f->entries = calloc((size_t)n + 1, sizeof *f->entries);
  if (!f->entries) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  for (int i = 0; i < n; i++)
    f->entries[f->n++] = (folder_entry){r1d_safetensors_at(f->files[0], i), 0};
  return R1D_OK;
}

int r1d_st_folder_open(const char *dir, r1d_st_folder **out, r1d_error *err) {
  *out = NULL;
  r1d_st_folder *f = calloc(1, sizeof *f);
  char *index = r1d_path_join(dir, INDEX_NAME);
  char *single = r1d_path_join(dir, SINGLE_NAME);
  int rc;
  if (!f || !index || !single) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
    goto fail;
  }
  /* The index wins when both exist, as in transformers. */
  if (r1d_file_exists(index))
    rc = folder_from_index(f, dir, index, err);
  else if (r1d_file_exists(single))
    rc = folder_single(f, single, err);
  else
    rc = r1d_fail(err, R1D_ENOTFOUND, "%s: no %s or %s", dir, SINGLE_NAME,
                  INDEX_NAME);
  if (rc) goto fail;
  qsort(f->entries, (size_t)f->n, sizeof *f->entries, entry_cmp);
  free(index);
  free(single);
  *out = f;
  return R1D_OK;
fail:
  free(index);
  free(single);
  r1d_st_folder_close(f);
  return rc;
}

void r1d_st_folder_close(r1d_st_folder *f) {
  if (!f) return;
  for (int i = 0; i < f->n_files; i++)
    r1d_safetensors_close(f->files[i]);
  free(f->files);
  free(f->entries);
  free(f);
}

static const folder_entry *folder_lookup(const r1d_st_folder *f,
                                         const char *name) {
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(name, f->entries[mid].view->name);
    if (c == 0) return &f->entries[mid];
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

const r1d_tensor_view *r1d_st_folder_find(const r1d_st_folder *f,
                                          const char *name) {
  const folder_entry *e = folder_lookup(f, name);
  return e ? e->view : NULL;
}

const char *r1d_st_folder_file_of(const r1d_st_folder *f, const char *name) {
  const folder_entry *e = folder_lookup(f, name);
  return e ? f->files[e->file]->path : NULL;
}

/* safetensors.c - opens one safetensors file: mmaps it, validates its header
 * and hands out tensor views.
 *
 * The reader trusts nothing in the file: the header length, the JSON, every
 * dtype, shape and offset are checked before a single tensor view is handed
 * out, so later code can index tensor data without bounds checks. Views point
 * straight into the read-only mapping; nothing is copied until a caller
 * converts a tensor (r1d_tensor_to_f32, in dtype.c). Sharded folders are in
 * safetensors_folder.c, the writer in safetensors_write.c. */
#include "safetensors_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Headers of real checkpoints are a few hundred KB; 100 MB (the limit the
 * reference implementation uses) stops a corrupt length from making us parse
 * gigabytes of tensor data as JSON. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)

int64_t r1d_tensor_numel(const r1d_tensor_view *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++)
    n *= t->shape[i];
  return n;
}

/* ---- header validation ------------------------------------------------ */

/* Fills t from one header entry; data offsets are checked against data_len.
 * begin/end come back for the overlap check. */
static int parse_entry(const char *path, const char *name, json_t *v,
                       size_t data_len, r1d_tensor_view *t, uint64_t *begin,
                       uint64_t *end, r1d_error *err) {
  if (!json_is_object(v))
    return r1d_fail(err, R1D_EFORMAT, "%s: tensor %s: entry is not an object",
                    path, name);
  json_t *jd = json_object_get(v, "dtype");
  json_t *js = json_object_get(v, "shape");
  json_t *jo = json_object_get(v, "data_offsets");
  if (!json_is_string(jd))
    return r1d_fail(err, R1D_EFORMAT, "%s: tensor %s: missing dtype", path,
                    name);
  if (!r1d_dtype_from_name(json_string_value(jd), &t->dtype))
    return r1d_fail(err, R1D_EFORMAT, "%s: tensor %s: unknown dtype \"%s\"",
                    path, name, json_string_value(jd));
  if (!json_is_array(js))
    return r1d_fail(err, R1D_EFORMAT, "%s: tensor %s: missing shape", path,
                    name);
  size_t nd = json_array_size(js);
  if (nd > R1D_TENSOR_MAX_DIMS)
    return r1d_fail(err, R1D_EFORMAT, "%s: tensor %s: %zu dims (max %d)", path,
                    name, nd, R1D_TENSOR_MAX_DIMS);
  t->ndim = (int)nd;
  uint64_t numel = 1;
  int overflow = 0;
  for (size_t i = 0; i < nd; i++) {
    json_t *d = json_array_get(js, i);
    if (!json_is_integer(d) || json_integer_value(d) < 0)
      return r1d_fail(err, R1D_EFORMAT,
                      "%s: tensor %s: shape[%zu] is not a non-negative integer",
                      path, name, i);
    uint64_t dim = (uint64_t)json_integer_value(d);
    t->shape[i] = (int64_t)dim;
    if (dim != 0 && numel > (uint64_t)INT64_MAX / dim)
      overflow = 1;
    else
      numel *= dim;
  }
  /* An overflow stays an error even when a later dimension is 0: views
   * promise that r1d_tensor_numel's left-to-right product fits in int64
   * (the reference reader's checked fold refuses these shapes too). */
  if (!json_is_array(jo) || json_array_size(jo) != 2 ||
      !json_is_integer(json_array_get(jo, 0)) ||
      !json_is_integer(json_array_get(jo, 1)))
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: tensor %s: data_offsets must be [begin, end]", path,
                    name);
  json_int_t b = json_integer_value(json_array_get(jo, 0));
  json_int_t e = json_integer_value(json_array_get(jo, 1));
  if (b < 0 || e < b)
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: tensor %s: bad data_offsets [%lld, %lld]", path, name,
                    (long long)b, (long long)e);
  if ((uint64_t)e > data_len)
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: tensor %s: data_offsets end %lld is past the end of "
                    "the data (%zu bytes)",
                    path, name, (long long)e, data_len);
  size_t esz = r1d_dtype_size(t->dtype);
  if (overflow || numel > (uint64_t)INT64_MAX / esz ||
      numel * esz != (uint64_t)(e - b))
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: tensor %s: shape needs %s bytes of %s but "
                    "data_offsets span %lld",
                    path, name, overflow ? "too many" : "a different number",
                    r1d_dtype_name(t->dtype), (long long)(e - b));
  *begin = (uint64_t)b;
  *end = (uint64_t)e;
  t->nbytes = (size_t)(e - b);
  return R1D_OK;
}

typedef struct span {
  uint64_t begin, end;
  int idx;
} span;

static int span_cmp(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

/* Sorting by begin makes any overlap show up between neighbours. Empty
 * tensors occupy no bytes and cannot overlap anything. */
static int check_overlaps(r1d_safetensors *st, span *sp, r1d_error *err) {
  qsort(sp, (size_t)st->n, sizeof *sp, span_cmp);
  uint64_t reach = 0;
  int owner = -1;
  for (int i = 0; i < st->n; i++) {
    if (sp[i].begin == sp[i].end) continue;
    if (owner >= 0 && sp[i].begin < reach)
      return r1d_fail(err, R1D_EFORMAT, "%s: tensors %s and %s overlap",
                      st->path, st->tensors[owner].name,
                      st->tensors[sp[i].idx].name);
    reach = sp[i].end;
    owner = sp[i].idx;
  }
  return R1D_OK;
}

static int check_metadata(const char *path, json_t *meta, r1d_error *err) {
  if (!json_is_object(meta))
    return r1d_fail(err, R1D_EFORMAT, "%s: __metadata__ is not an object",
                    path);
  const char *k;
  json_t *v;
  json_object_foreach(meta, k, v) {
    if (!json_is_string(v))
      return r1d_fail(err, R1D_EFORMAT,
                      "%s: __metadata__ value for \"%s\" is not a string", path,
                      k);
  }
  return R1D_OK;
}

/* qsort has no context argument in C11, so name sorting goes through a small
 * array of (name, index) pairs instead of indices alone. */
typedef struct name_idx {
  const char *name;
  int idx;
} name_idx;

static int name_idx_cmp(const void *a, const void *b) {
  return strcmp(((const name_idx *)a)->name, ((const name_idx *)b)->name);
}

static int build_name_index(r1d_safetensors *st) {
  name_idx *tmp = malloc(sizeof *tmp * (size_t)(st->n ? st->n : 1));
  st->by_name = malloc(sizeof *st->by_name * (size_t)(st->n ? st->n : 1));
  if (!tmp || !st->by_name) {
    free(tmp);
    return R1D_ENOMEM;
  }
  for (int i = 0; i < st->n; i++)
    tmp[i] = (name_idx){st->tensors[i].name, i};
  qsort(tmp, (size_t)st->n, sizeof *tmp, name_idx_cmp);
  for (int i = 0; i < st->n; i++)
    st->by_name[i] = tmp[i].idx;
  free(tmp);
  return R1D_OK;
}

/* Parses and validates the header JSON; fills st->tensors. */
static int parse_header(r1d_safetensors *st, const char *json, size_t hlen,
                        size_t data_off, r1d_error *err) {
  json_error_t jerr;
  json_t *root = json_loadb(json, hlen, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return r1d_fail(err, R1D_EFORMAT, "%s: header is not valid JSON: %s",
                    st->path, jerr.text);
  int rc = R1D_OK;
  span *sp = NULL;
  if (!json_is_object(root)) {
    rc =
        r1d_fail(err, R1D_EFORMAT, "%s: header is not a JSON object", st->path);
    goto done;
  }
  size_t cap = json_object_size(root);
  st->tensors = calloc(cap ? cap : 1, sizeof *st->tensors);
  sp = malloc(sizeof *sp * (cap ? cap : 1));
  if (!st->tensors || !sp) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", st->path);
    goto done;
  }
  size_t data_len = st->map_len - data_off;
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    if (strcmp(key, "__metadata__") == 0) {
      rc = check_metadata(st->path, val, err);
      if (rc) goto done;
      continue;
    }
    r1d_tensor_view *t = &st->tensors[st->n];
    uint64_t b = 0, e = 0;
    rc = parse_entry(st->path, key, val, data_len, t, &b, &e, err);
    if (rc) goto done;
    t->name = strdup(key);
    if (!t->name) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", st->path);
      goto done;
    }
    t->data = st->map + data_off + b;
    sp[st->n] = (span){b, e, st->n};
    st->n++;
  }
  rc = check_overlaps(st, sp, err);
  if (rc) goto done;
  if (build_name_index(st) != R1D_OK)
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", st->path);
done:
  free(sp);
  json_decref(root);
  return rc;
}

/* ---- opening and lookup ---------------------------------------------- */

static int map_file(r1d_safetensors *st, r1d_error *err) {
  int fd = open(st->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return r1d_fail(err, R1D_EIO, "%s: %s", st->path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return r1d_fail(err, R1D_EIO, "%s: %s", st->path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return r1d_fail(err, R1D_EIO, "%s: not a regular file", st->path);
  }
  if (sb.st_size < 8) {
    close(fd);
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: file is %lld bytes, too short for the 8-byte header "
                    "length",
                    st->path, (long long)sb.st_size);
  }
  void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd); /* the mapping keeps the file alive */
  if (m == MAP_FAILED)
    return r1d_fail(err, R1D_EIO, "%s: mmap: %s", st->path, strerror(e));
  st->map = m;
  st->map_len = (size_t)sb.st_size;
  return R1D_OK;
}

int r1d_safetensors_open(const char *path, r1d_safetensors **out,
                         r1d_error *err) {
  *out = NULL;
  r1d_safetensors *st = calloc(1, sizeof *st);
  if (!st || !(st->path = strdup(path))) {
    free(st);
    return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  }
  int rc = map_file(st, err);
  if (rc) goto fail;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = (hlen << 8) | st->map[i];
  if (hlen > st->map_len - 8) {
    rc = r1d_fail(err, R1D_EFORMAT,
                  "%s: header length %llu is past the end of the file (%zu "
                  "bytes)",
                  path, (unsigned long long)hlen, st->map_len);
    goto fail;
  }
  if (hlen >= ST_MAX_HEADER) {
    rc = r1d_fail(err, R1D_EFORMAT, "%s: header length %llu is too large", path,
                  (unsigned long long)hlen);
    goto fail;
  }
  rc = parse_header(st, (const char *)st->map + 8, (size_t)hlen,
                    8 + (size_t)hlen, err);
  if (rc) goto fail;
  *out = st;
  return R1D_OK;
fail:
  r1d_safetensors_close(st);
  return rc;
}

void r1d_safetensors_close(r1d_safetensors *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++)
    free((char *)st->tensors[i].name);
  free(st->tensors);
  free(st->by_name);
  if (st->map) munmap((void *)st->map, st->map_len);
  free(st->path);
  free(st);
}

int r1d_safetensors_count(const r1d_safetensors *st) {
  return st->n;
}

const r1d_tensor_view *r1d_safetensors_at(const r1d_safetensors *st, int i) {
  if (i < 0 || i >= st->n) return NULL;
  return &st->tensors[i];
}

const r1d_tensor_view *r1d_safetensors_find(const r1d_safetensors *st,
                                            const char *name) {
  int lo = 0, hi = st->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    const r1d_tensor_view *t = &st->tensors[st->by_name[mid]];
    int c = strcmp(name, t->name);
    if (c == 0) return t;
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return NULL;
}

void r1d_tensor_release(const r1d_tensor_view *t) {
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0 || t->nbytes == 0) return;
  /* Only whole pages inside the tensor: neighbours may still be needed. */
  uintptr_t begin =
      ((uintptr_t)t->data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
  uintptr_t end = ((uintptr_t)t->data + t->nbytes) & ~((uintptr_t)page - 1);
  if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

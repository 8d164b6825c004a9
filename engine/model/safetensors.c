/* safetensors.c - mmap'ed safetensors reader, sharded-folder lookup, dtype
 * conversions and an atomic writer.
 *
 * The reader trusts nothing in the file: the header length, the JSON, every
 * dtype, shape and offset are checked before a single tensor view is handed
 * out, so later code can index tensor data without bounds checks. Views point
 * straight into the read-only mapping; nothing is copied until a caller
 * converts a tensor (r1d_tensor_to_f32). */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/file.h"

/* Headers of real checkpoints are a few hundred KB; 100 MB (the limit the
 * reference implementation uses) stops a corrupt length from making us parse
 * gigabytes of tensor data as JSON. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

struct r1d_safetensors {
  char *path;
  const unsigned char *map; /* whole file, PROT_READ */
  size_t map_len;
  int n;
  r1d_tensor_view *tensors; /* file order of the header (jansson order) */
  int *by_name;             /* indices into tensors, sorted by name */
};

/* ---- dtypes ---------------------------------------------------------- */

static const struct {
  const char *name;
  r1d_dtype dt;
  size_t size;
} dtype_table[] = {
    {"F32", R1D_DTYPE_F32, 4},   {"F16", R1D_DTYPE_F16, 2},
    {"BF16", R1D_DTYPE_BF16, 2}, {"F64", R1D_DTYPE_F64, 8},
    {"I64", R1D_DTYPE_I64, 8},   {"I32", R1D_DTYPE_I32, 4},
    {"I16", R1D_DTYPE_I16, 2},   {"I8", R1D_DTYPE_I8, 1},
    {"U8", R1D_DTYPE_U8, 1},     {"BOOL", R1D_DTYPE_BOOL, 1},
};
#define N_DTYPES ((int)(sizeof dtype_table / sizeof dtype_table[0]))

size_t r1d_dtype_size(r1d_dtype dt) {
  for (int i = 0; i < N_DTYPES; i++)
    if (dtype_table[i].dt == dt) return dtype_table[i].size;
  return 0;
}

const char *r1d_dtype_name(r1d_dtype dt) {
  for (int i = 0; i < N_DTYPES; i++)
    if (dtype_table[i].dt == dt) return dtype_table[i].name;
  return "?";
}

static int dtype_from_name(const char *s, r1d_dtype *dt) {
  for (int i = 0; i < N_DTYPES; i++)
    if (strcmp(dtype_table[i].name, s) == 0) {
      *dt = dtype_table[i].dt;
      return 1;
    }
  return 0;
}

int64_t r1d_tensor_numel(const r1d_tensor_view *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++)
    n *= t->shape[i];
  return n;
}

/* ---- conversions ----------------------------------------------------- */

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float r1d_bf16_to_f32(uint16_t h) {
  return bits_f32((uint32_t)h << 16);
}

uint16_t r1d_f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  /* NaN: keep sign and top mantissa bits, force a quiet bit so rounding can
   * never turn a NaN with only low mantissa bits into infinity. */
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  /* Round to nearest, ties to even: add 0x7fff plus the lowest kept bit. A
   * carry into the exponent is correct rounding (up to inf on overflow). */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float r1d_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return bits_f32(sign);
    /* Subnormal: value = man * 2^-24, exact in float. */
    float v = (float)man * 0x1p-24f;
    return sign ? -v : v;
  }
  return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t r1d_f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) /* NaN: quiet, keep top payload bits */
    return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a >= 0x477ff000u) /* >= 65520 rounds to inf (and inf itself) */
    return (uint16_t)(sign | 0x7c00u);
  if (a < 0x38800000u) {              /* below 2^-14: f16 subnormal or zero */
    if (a < 0x33000000u) return sign; /* <= 2^-25 rounds to zero (tie even) */
    uint32_t exp = a >> 23;
    uint32_t man = (a & 0x7fffffu) | 0x800000u; /* implicit 1 */
    /* value = man * 2^(exp-150); f16 subnormal unit is 2^-24, so shift right
     * by 126 - exp (between 14 and 24) and round to nearest even. */
    uint32_t shift = 126u - exp;
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  /* Normal: rebias exponent (127 -> 15), round the 13 dropped bits. */
  uint32_t v = a - 0x38000000u; /* exponent - 112, still in f32 layout */
  v += 0xfffu + ((v >> 13) & 1u);
  return (uint16_t)(sign | (v >> 13));
}

int r1d_tensor_to_f32(const r1d_tensor_view *t, float *dst) {
  size_t n = (size_t)r1d_tensor_numel(t);
  const unsigned char *p = t->data;
  switch (t->dtype) {
  case R1D_DTYPE_F32: memcpy(dst, p, n * 4); return R1D_OK;
  case R1D_DTYPE_BF16:
    for (size_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2); /* data may be unaligned: memcpy */
      dst[i] = r1d_bf16_to_f32(h);
    }
    return R1D_OK;
  case R1D_DTYPE_F16:
    for (size_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      dst[i] = r1d_f16_to_f32(h);
    }
    return R1D_OK;
  default: return R1D_EUNSUPPORTED;
  }
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
  if (!dtype_from_name(json_string_value(jd), &t->dtype))
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
  /* A zero dimension makes numel 0 whatever else overflowed. */
  for (size_t i = 0; i < nd; i++)
    if (t->shape[i] == 0) numel = 0, overflow = 0;
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

/* ---- one file ---------------------------------------------------------- */

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

/* ---- folders ----------------------------------------------------------- */

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

/* ---- writer -------------------------------------------------------------- */

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

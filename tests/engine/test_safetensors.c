/* test_safetensors.c - the safetensors reader, writer, folder lookup and the
 * fp32 <-> bf16/f16 conversions.
 *
 * Conversions are checked against bit patterns torch printed (see
 * tests/ref/make_safetensors_fixture.py) and exhaustively for f16 -> f32;
 * tests/fixtures/safetensors/small.safetensors was written by the Python
 * safetensors library. Every malformed file is built here in a temporary
 * folder and must fail with the right code and a message naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"
#include "engine/model/safetensors.h"

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint32_t to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* ---- conversions ---------------------------------------------------- */

/* {fp32 bits, torch bf16 bits, torch f16 bits}, from the reference script. */
static const uint32_t conv_ref[][3] = {
    {0x3f800000, 0x3f80, 0x3c00}, {0x3f808000, 0x3f80, 0x3c04},
    {0x3f818000, 0x3f82, 0x3c0c}, {0x3f806000, 0x3f80, 0x3c03},
    {0x3f80a000, 0x3f81, 0x3c05}, {0x7f7fc99e, 0x7f80, 0x7c00},
    {0x7f7f7e82, 0x7f7f, 0x7c00}, {0x800116c2, 0x8001, 0x8000},
    {0x00000001, 0x0000, 0x0000}, {0x477fef00, 0x4780, 0x7bff},
    {0x477ff000, 0x4780, 0x7c00}, {0x33000000, 0x3300, 0x0000},
    {0x33400000, 0x3340, 0x0001}, {0x33c00000, 0x33c0, 0x0002},
    {0x33800000, 0x3380, 0x0001}, {0x387fda40, 0x3880, 0x03ff},
    {0x80000000, 0x8000, 0x8000}, {0x7f800000, 0x7f80, 0x7c00},
    {0x3dcccccd, 0x3dcd, 0x2e66}, {0x322bcc77, 0x322c, 0x0000},
    {0x4640e6b6, 0x4641, 0x7207},
};

static void test_f32_to_half_matches_torch(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof conv_ref / sizeof conv_ref[0]; i++) {
    float x = from_bits(conv_ref[i][0]);
    uint16_t b = r1d_f32_to_bf16(x), h = r1d_f32_to_f16(x);
    if (b != conv_ref[i][1] || h != conv_ref[i][2])
      fail_msg("%a: bf16 %04x f16 %04x, torch %04x %04x", (double)x, b, h,
               conv_ref[i][1], conv_ref[i][2]);
    /* Negated values mirror the sign bit. */
    assert_int_equal(r1d_f32_to_bf16(-x), conv_ref[i][1] ^ 0x8000u);
    assert_int_equal(r1d_f32_to_f16(-x), conv_ref[i][2] ^ 0x8000u);
  }
}

static void test_nan_preserved(void **state) {
  (void)state;
  /* A NaN whose payload sits only in the low 16 bits must not become inf. */
  float nan_low = from_bits(0x7f800001u);
  assert_true(isnan(r1d_bf16_to_f32(r1d_f32_to_bf16(nan_low))));
  assert_true(isnan(r1d_f16_to_f32(r1d_f32_to_f16(nan_low))));
  assert_true(isnan(r1d_bf16_to_f32(r1d_f32_to_bf16(-NAN))));
  assert_true(r1d_f32_to_bf16(-NAN) & 0x8000u);
  assert_true(isnan(r1d_f16_to_f32(0x7e00)));
  assert_true(isnan(r1d_f16_to_f32(0xfc01)));
  assert_true(isnan(r1d_bf16_to_f32(0x7fc0)));
}

/* Every f16 value: exact conversion (checked against ldexp arithmetic) and
 * a lossless round trip back through r1d_f32_to_f16. */
static void test_f16_exhaustive(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    float f = r1d_f16_to_f32((uint16_t)h);
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double want;
    if (e == 31)
      want = m ? NAN : INFINITY;
    else if (e == 0)
      want = ldexp(m, -24);
    else
      want = ldexp(1024 + m, e - 25);
    if (h & 0x8000u) want = -want;
    if (e == 31 && m) {
      assert_true(isnan(f));
      continue;
    }
    if ((double)f != want || !signbit(f) != !signbit(want))
      fail_msg("f16 %04x -> %a, want %a", h, (double)f, want);
    if (r1d_f32_to_f16(f) != h) fail_msg("f16 %04x does not round trip", h);
  }
}

/* Every bf16 value round trips, and bf16 -> f32 is a 16-bit shift. */
static void test_bf16_exhaustive(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    float f = r1d_bf16_to_f32((uint16_t)h);
    assert_int_equal(to_bits(f), h << 16);
    if (isnan(f)) continue;
    assert_int_equal(r1d_f32_to_bf16(f), h);
  }
  /* Ties go to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7. */
  assert_int_equal(r1d_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  assert_int_equal(r1d_f32_to_bf16(1.0f + 0x1p-7f + 0x1p-8f), 0x3f82);
  assert_int_equal(r1d_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
}

/* ---- temp folder helpers ---------------------------------------------------
 */

typedef struct tmpdir {
  char path[64];
} tmpdir;

static void tmp_make(tmpdir *t) {
  strcpy(t->path, "/tmp/r1d-st-XXXXXX");
  assert_non_null(mkdtemp(t->path));
}

static void tmp_remove(tmpdir *t) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->path);
  assert_int_equal(system(cmd), 0);
}

static char *tmp_file(const tmpdir *t, const char *name) {
  char *p = r1d_path_join(t->path, name);
  assert_non_null(p);
  return p;
}

/* Writes <len8><header><data>; len8 is the header length unless forced. */
static void write_raw(const char *path, const char *header, const void *data,
                      size_t data_len, int64_t force_len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  uint64_t n = force_len >= 0 ? (uint64_t)force_len : strlen(header);
  unsigned char len8[8];
  for (int i = 0; i < 8; i++)
    len8[i] = (unsigned char)(n >> (8 * i));
  fwrite(len8, 1, 8, f);
  fwrite(header, 1, strlen(header), f);
  if (data_len) fwrite(data, 1, data_len, f);
  fclose(f);
}

/* ---- reading ------------------------------------------------------------ */

static void test_read_python_fixture(void **state) {
  (void)state;
  const char *root = getenv("R1D_SOURCE_ROOT");
  assert_non_null(root);
  char *path =
      r1d_path_join(root, "tests/fixtures/safetensors/small.safetensors");
  r1d_safetensors *st = NULL;
  r1d_error err = {0};
  int rc = r1d_safetensors_open(path, &st, &err);
  if (rc) fail_msg("%s", err.msg);
  assert_int_equal(r1d_safetensors_count(st), 5);

  const r1d_tensor_view *a = r1d_safetensors_find(st, "a.f32");
  assert_non_null(a);
  assert_int_equal(a->dtype, R1D_DTYPE_F32);
  assert_int_equal(a->ndim, 2);
  assert_int_equal(a->shape[0], 2);
  assert_int_equal(a->shape[1], 3);
  assert_int_equal(a->nbytes, 24);
  assert_int_equal(r1d_tensor_numel(a), 6);
  float fa[6];
  assert_int_equal(r1d_tensor_to_f32(a, fa), 0);
  const float want[6] = {0.0f, 1.0f, -2.5f, 3.14159f, 1e-30f, -65504.0f};
  for (int i = 0; i < 6; i++)
    assert_true(fa[i] == want[i]);

  const r1d_tensor_view *b = r1d_safetensors_find(st, "b.bf16");
  assert_non_null(b);
  assert_int_equal(b->dtype, R1D_DTYPE_BF16);
  float fb[6];
  assert_int_equal(r1d_tensor_to_f32(b, fb), 0);
  for (int i = 0; i < 6; i++)
    assert_true(fb[i] == r1d_bf16_to_f32(r1d_f32_to_bf16(want[i])));
  assert_true(fb[3] == 3.140625f);

  const r1d_tensor_view *c = r1d_safetensors_find(st, "c.f16");
  float fc[8];
  assert_int_equal(r1d_tensor_to_f32(c, fc), 0);
  assert_true(fc[0] == 0.0f && !signbit(fc[0]));
  assert_true(fc[1] == 0.0f && signbit(fc[1]));
  assert_true(fc[2] == 1.0f);
  assert_true(fc[3] == 65504.0f);
  assert_true(fc[4] == 0x1p-24f);
  assert_true(isinf(fc[5]) && fc[5] > 0);
  assert_true(isinf(fc[6]) && fc[6] < 0);
  assert_true(fc[7] == 0x1p-14f);

  const r1d_tensor_view *d = r1d_safetensors_find(st, "d.i64");
  assert_int_equal(d->dtype, R1D_DTYPE_I64);
  int64_t di[3];
  memcpy(di, d->data, sizeof di);
  assert_true(di[0] == 1 && di[1] == -2 && di[2] == (int64_t)1 << 40);
  assert_int_equal(r1d_tensor_to_f32(d, fc), R1D_EUNSUPPORTED);

  const r1d_tensor_view *e = r1d_safetensors_find(st, "e.scalar");
  assert_int_equal(e->ndim, 0);
  assert_int_equal(r1d_tensor_numel(e), 1);
  assert_true(*(const float *)e->data == 7.0f);

  assert_null(r1d_safetensors_find(st, "nope"));
  assert_null(r1d_safetensors_find(st, "__metadata__"));
  assert_null(r1d_safetensors_at(st, 5));
  assert_non_null(r1d_safetensors_at(st, 0));
  r1d_safetensors_close(st);
  free(path);
}

/* One tensor of each dtype, written then read back byte for byte. */
static void test_write_read_all_dtypes(void **state) {
  (void)state;
  tmpdir t;
  tmp_make(&t);
  char *path = tmp_file(&t, "all.safetensors");
  const r1d_dtype dts[] = {R1D_DTYPE_F32, R1D_DTYPE_F16, R1D_DTYPE_BF16,
                           R1D_DTYPE_F64, R1D_DTYPE_I64, R1D_DTYPE_I32,
                           R1D_DTYPE_I16, R1D_DTYPE_I8,  R1D_DTYPE_U8,
                           R1D_DTYPE_BOOL};
  const size_t sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
  enum { ND = 10 };
  r1d_tensor_out outs[ND + 1];
  unsigned char buf[ND][3 * 5 * 8];
  char names[ND][32];
  for (int i = 0; i < ND; i++) {
    assert_int_equal(r1d_dtype_size(dts[i]), sizes[i]);
    for (size_t j = 0; j < sizeof buf[i]; j++)
      buf[i][j] = (unsigned char)(j * 7 + i * 13 + 1);
    if (dts[i] == R1D_DTYPE_BOOL)
      for (size_t j = 0; j < sizeof buf[i]; j++)
        buf[i][j] &= 1;
    snprintf(names[i], sizeof names[i], "t.%s", r1d_dtype_name(dts[i]));
    outs[i] = (r1d_tensor_out){names[i], dts[i], 2, {3, 5}, buf[i]};
  }
  /* An empty tensor and an odd-sized one keep later data unaligned. */
  outs[ND] = (r1d_tensor_out){"empty", R1D_DTYPE_F32, 2, {0, 4}, buf[0]};
  r1d_error err = {0};
  int rc = r1d_safetensors_write(path, outs, ND + 1, &err);
  if (rc) fail_msg("%s", err.msg);

  /* Header length is a multiple of 8 and the header is JSON + spaces. */
  char *raw;
  size_t len;
  assert_int_equal(r1d_read_file(path, &raw, &len, &err), 0);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = (hlen << 8) | (unsigned char)raw[i];
  assert_int_equal(hlen % 8, 0);
  assert_memory_equal(raw + 8, "{\"__metadata__\":{\"format\":\"pt\"}", 31);
  size_t total = 0;
  for (int i = 0; i < ND; i++)
    total += 15 * sizes[i];
  assert_int_equal(len, 8 + hlen + total);
  free(raw);

  r1d_safetensors *st = NULL;
  rc = r1d_safetensors_open(path, &st, &err);
  if (rc) fail_msg("%s", err.msg);
  assert_int_equal(r1d_safetensors_count(st), ND + 1);
  for (int i = 0; i < ND; i++) {
    const r1d_tensor_view *v = r1d_safetensors_find(st, names[i]);
    assert_non_null(v);
    assert_string_equal(v->name, names[i]);
    assert_int_equal(v->dtype, dts[i]);
    assert_int_equal(v->ndim, 2);
    assert_int_equal(v->shape[0], 3);
    assert_int_equal(v->shape[1], 5);
    assert_int_equal(v->nbytes, 15 * sizes[i]);
    assert_memory_equal(v->data, buf[i], 15 * sizes[i]);
    /* Order of the header is the order given. */
    assert_ptr_equal(r1d_safetensors_at(st, i), v);
  }
  const r1d_tensor_view *e = r1d_safetensors_find(st, "empty");
  assert_int_equal(r1d_tensor_numel(e), 0);
  assert_int_equal(e->nbytes, 0);
  r1d_safetensors_close(st);

  /* The writer refuses duplicate names and leaves no temp file behind. */
  outs[1].name = outs[0].name;
  assert_int_equal(r1d_safetensors_write(path, outs, 2, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, path));
  char *tmp = tmp_file(&t, "all.safetensors.tmp");
  assert_false(r1d_file_exists(tmp));
  free(tmp);
  free(path);
  tmp_remove(&t);
}

static void test_f32_data_via_writer(void **state) {
  (void)state;
  tmpdir t;
  tmp_make(&t);
  char *path = tmp_file(&t, "x.safetensors");
  float f[4] = {1.5f, -2.0f, 1e-3f, 65504.0f};
  uint16_t hb[4], hh[4];
  for (int i = 0; i < 4; i++) {
    hb[i] = r1d_f32_to_bf16(f[i]);
    hh[i] = r1d_f32_to_f16(f[i]);
  }
  r1d_tensor_out outs[3] = {
      {"f", R1D_DTYPE_F32, 1, {4}, f},
      {"b", R1D_DTYPE_BF16, 2, {2, 2}, hb},
      {"h", R1D_DTYPE_F16, 1, {4}, hh},
  };
  r1d_error err = {0};
  assert_int_equal(r1d_safetensors_write(path, outs, 3, &err), 0);
  r1d_safetensors *st;
  assert_int_equal(r1d_safetensors_open(path, &st, &err), 0);
  float got[4];
  assert_int_equal(r1d_tensor_to_f32(r1d_safetensors_find(st, "f"), got), 0);
  for (int i = 0; i < 4; i++)
    assert_true(got[i] == f[i]);
  assert_int_equal(r1d_tensor_to_f32(r1d_safetensors_find(st, "b"), got), 0);
  assert_true(got[0] == 1.5f && got[1] == -2.0f && got[3] == 65536.0f);
  assert_float_equal(got[2], 1e-3f, 1e-5f);
  assert_int_equal(r1d_tensor_to_f32(r1d_safetensors_find(st, "h"), got), 0);
  assert_true(got[0] == 1.5f && got[3] == 65504.0f);
  assert_float_equal(got[2], 1e-3f, 1e-6f);
  r1d_safetensors_close(st);
  free(path);
  tmp_remove(&t);
}

/* ---- malformed files --------------------------------------------------- */

static void expect_open_fail(const char *path, int code, const char *needle) {
  r1d_safetensors *st = (r1d_safetensors *)0x1;
  r1d_error err = {0};
  int rc = r1d_safetensors_open(path, &st, &err);
  if (rc != code || !strstr(err.msg, path) || !strstr(err.msg, needle))
    fail_msg("%s: rc %d \"%s\", want %d with \"%s\"", path, rc, err.msg, code,
             needle);
  assert_null(st);
  assert_null(strchr(err.msg, '\n'));
}

static void test_bad_files(void **state) {
  (void)state;
  tmpdir t;
  tmp_make(&t);
  char *p = tmp_file(&t, "bad.safetensors");
  unsigned char data[64] = {0};

  expect_open_fail(p, R1D_EIO, "No such file");

  FILE *f = fopen(p, "wb");
  fwrite("\x05\0\0", 1, 3, f);
  fclose(f);
  expect_open_fail(p, R1D_EFORMAT, "too short");

  write_raw(p, "{}", NULL, 0, 1000); /* header length past the end */
  expect_open_fail(p, R1D_EFORMAT, "past the end of the file");
  write_raw(p, "{}", NULL, 0, (int64_t)1 << 62);
  expect_open_fail(p, R1D_EFORMAT, "past the end of the file");

  write_raw(p, "{\"a\": {\"dtype\": \"F32\"", NULL, 0, -1);
  expect_open_fail(p, R1D_EFORMAT, "not valid JSON");
  write_raw(p, "[1, 2]", NULL, 0, -1);
  expect_open_fail(p, R1D_EFORMAT, "not a JSON object");
  write_raw(p, "{\"a\": 5}", NULL, 0, -1);
  expect_open_fail(p, R1D_EFORMAT, "not an object");

  write_raw(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
            data, 4, -1);
  expect_open_fail(p, R1D_EFORMAT, "past the end of the data");

  write_raw(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            data, 12, -1);
  expect_open_fail(p, R1D_EFORMAT, "overlap");

  write_raw(p,
            "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],"
            "\"data_offsets\":[0,2]}}",
            data, 2, -1);
  expect_open_fail(p, R1D_EFORMAT, "unknown dtype \"F8_E4M3\"");

  write_raw(p,
            "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}",
            data, 8, -1);
  expect_open_fail(p, R1D_EFORMAT, "data_offsets span 8");

  write_raw(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
            data, 8, -1);
  expect_open_fail(p, R1D_EFORMAT, "non-negative");

  /* 2^32 * 2^32 elements: numel overflows int64; must not wrap to 0. */
  write_raw(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
            "\"data_offsets\":[0,0]}}",
            data, 0, -1);
  expect_open_fail(p, R1D_EFORMAT, "too many");
  /* ...nor when a zero comes after the overflow (tests/fuzz: the view's
   * r1d_tensor_numel overflowed int64 before reaching the 0). */
  write_raw(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,"
            "0],\"data_offsets\":[0,0]}}",
            data, 0, -1);
  expect_open_fail(p, R1D_EFORMAT, "too many");
  write_raw(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
            "\"data_offsets\":[0,0]}}",
            data, 0, -1);
  expect_open_fail(p, R1D_EFORMAT, "shape needs");

  write_raw(p,
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
            "\"data_offsets\":[0,1]}}",
            data, 1, -1);
  expect_open_fail(p, R1D_EFORMAT, "9 dims");

  write_raw(p,
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,2]}}",
            data, 8, -1);
  expect_open_fail(p, R1D_EFORMAT, "bad data_offsets");
  write_raw(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0]}}",
            data, 8, -1);
  expect_open_fail(p, R1D_EFORMAT, "data_offsets must be");
  write_raw(p, "{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,4]}}", data, 8,
            -1);
  expect_open_fail(p, R1D_EFORMAT, "missing shape");
  write_raw(p, "{\"a\":{\"shape\":[4],\"data_offsets\":[0,4]}}", data, 8, -1);
  expect_open_fail(p, R1D_EFORMAT, "missing dtype");
  write_raw(p, "{\"__metadata__\":{\"format\":1}}", data, 0, -1);
  expect_open_fail(p, R1D_EFORMAT, "__metadata__");
  write_raw(p,
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
            "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
            data, 2, -1);
  expect_open_fail(p, R1D_EFORMAT, "duplicate");

  /* Sanity: the same shapes well formed do open (so the cases above fail
   * for the reason they name). Padding spaces after the JSON are fine. */
  write_raw(p,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
            "\"__metadata__\":{\"format\":\"pt\"}}   ",
            data, 12, -1);
  r1d_safetensors *st;
  r1d_error err = {0};
  assert_int_equal(r1d_safetensors_open(p, &st, &err), 0);
  assert_int_equal(r1d_safetensors_count(st), 2);
  r1d_safetensors_close(st);
  free(p);
  tmp_remove(&t);
}

/* ---- folders ------------------------------------------------------------ */

static void write_shard(const tmpdir *t, const char *file, const char *n1,
                        const char *n2, float base) {
  float a[2] = {base, base + 1}, b[3] = {base + 2, base + 3, base + 4};
  r1d_tensor_out outs[2] = {{n1, R1D_DTYPE_F32, 1, {2}, a},
                            {n2, R1D_DTYPE_F32, 1, {3}, b}};
  char *p = tmp_file(t, file);
  r1d_error err = {0};
  assert_int_equal(r1d_safetensors_write(p, outs, 2, &err), 0);
  free(p);
}

static void write_text(const tmpdir *t, const char *file, const char *text) {
  char *p = tmp_file(t, file);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
  free(p);
}

static void test_folder_single_and_sharded(void **state) {
  (void)state;
  tmpdir t;
  tmp_make(&t);
  r1d_st_folder *f = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_st_folder_open(t.path, &f, &err), R1D_ENOTFOUND);
  assert_non_null(strstr(err.msg, t.path));

  write_shard(&t, "model.safetensors", "x", "y", 10);
  assert_int_equal(r1d_st_folder_open(t.path, &f, &err), 0);
  const r1d_tensor_view *v = r1d_st_folder_find(f, "y");
  assert_non_null(v);
  assert_true(((const float *)v->data)[0] == 12.0f);
  assert_non_null(strstr(r1d_st_folder_file_of(f, "y"), "/model.safetensors"));
  assert_null(r1d_st_folder_find(f, "z"));
  assert_null(r1d_st_folder_file_of(f, "z"));
  r1d_st_folder_close(f);

  /* With an index present it wins over model.safetensors. */
  write_shard(&t, "model-00001-of-00002.safetensors", "a", "b", 0);
  write_shard(&t, "model-00002-of-00002.safetensors", "c", "d", 100);
  write_text(&t, "model.safetensors.index.json",
             "{\"metadata\": {\"total_size\": 40}, \"weight_map\": {"
             "\"a\": \"model-00001-of-00002.safetensors\","
             "\"c\": \"model-00002-of-00002.safetensors\","
             "\"b\": \"model-00001-of-00002.safetensors\","
             "\"d\": \"model-00002-of-00002.safetensors\"}}");
  assert_int_equal(r1d_st_folder_open(t.path, &f, &err), 0);
  assert_null(r1d_st_folder_find(f, "x"));
  const char *names[4] = {"a", "b", "c", "d"};
  const float first[4] = {0, 2, 100, 102};
  for (int i = 0; i < 4; i++) {
    v = r1d_st_folder_find(f, names[i]);
    assert_non_null(v);
    assert_true(((const float *)v->data)[0] == first[i]);
  }
  assert_non_null(
      strstr(r1d_st_folder_file_of(f, "d"), "model-00002-of-00002"));
  assert_non_null(
      strstr(r1d_st_folder_file_of(f, "b"), "model-00001-of-00002"));
  r1d_st_folder_close(f);

  /* A tensor the index lists but its shard lacks. */
  write_text(&t, "model.safetensors.index.json",
             "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\","
             "\"q\": \"model-00002-of-00002.safetensors\"}}");
  assert_int_equal(r1d_st_folder_open(t.path, &f, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "model-00002-of-00002.safetensors"));
  assert_non_null(strstr(err.msg, "tensor q"));

  /* A shard file that does not exist. */
  write_text(&t, "model.safetensors.index.json",
             "{\"weight_map\": {\"a\": \"model-00001-of-00003.safetensors\"}}");
  assert_int_equal(r1d_st_folder_open(t.path, &f, &err), R1D_ENOTFOUND);
  assert_non_null(strstr(err.msg, "model-00001-of-00003.safetensors"));

  /* Broken index JSON, missing weight_map, escaping shard names. */
  write_text(&t, "model.safetensors.index.json", "{\"weight_map\": {");
  assert_int_equal(r1d_st_folder_open(t.path, &f, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "model.safetensors.index.json"));
  write_text(&t, "model.safetensors.index.json", "{\"metadata\": {}}");
  assert_int_equal(r1d_st_folder_open(t.path, &f, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "weight_map"));
  write_text(&t, "model.safetensors.index.json",
             "{\"weight_map\": {\"a\": \"../model.safetensors\"}}");
  assert_int_equal(r1d_st_folder_open(t.path, &f, &err), R1D_EFORMAT);

  /* A corrupt shard reports the shard's own path. */
  write_text(&t, "model-00002-of-00002.safetensors", "garbage!garbage!");
  write_text(&t, "model.safetensors.index.json",
             "{\"weight_map\": {\"c\": \"model-00002-of-00002.safetensors\"}}");
  assert_int_equal(r1d_st_folder_open(t.path, &f, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "model-00002-of-00002.safetensors: "));
  tmp_remove(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_f32_to_half_matches_torch),
      cmocka_unit_test(test_nan_preserved),
      cmocka_unit_test(test_f16_exhaustive),
      cmocka_unit_test(test_bf16_exhaustive),
      cmocka_unit_test(test_read_python_fixture),
      cmocka_unit_test(test_write_read_all_dtypes),
      cmocka_unit_test(test_f32_data_via_writer),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_folder_single_and_sharded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

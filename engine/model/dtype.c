/* dtype.c - the tensor element types of safetensors: names, sizes, and
 * conversion between fp32 and the 16-bit float formats.
 *
 * Checkpoints come as bf16, fp16 or fp32 while the model computes in fp32.
 * Narrowing rounds to nearest, ties to even, and keeps a NaN a NaN (plain
 * truncation would bias every weight, and rounding a NaN's low payload bits
 * could carry it into infinity). Tensor data may be unaligned in the
 * mapping, so elements are read with memcpy. */
#include "safetensors_internal.h"

#include <string.h>

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

int r1d_dtype_from_name(const char *s, r1d_dtype *dt) {
  for (int i = 0; i < N_DTYPES; i++)
    if (strcmp(dtype_table[i].name, s) == 0) {
      *dt = dtype_table[i].dt;
      return 1;
    }
  return 0;
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

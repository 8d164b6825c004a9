/* tokenizer_unicode.c - NFC and pre-tokenizer regexes computed the way
 * `tokenizers` computes them, on top of utf8proc and PCRE2.
 *
 * `tokenizers` carries its own Unicode tables (NFC from an older Unicode,
 * Oniguruma's properties from a newer one) while utf8proc and the system
 * PCRE2 carry theirs. Where the versions disagree the ids would differ, so
 * this file holds the measured differences and applies them: NFC runs are
 * cut at the characters `tokenizers` treats as starters, and \s and
 * \p{L,N,P,S,M} in a pattern are rewritten to the sets Oniguruma uses. */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- NFC ---------------------------------------------------------------- */

/* Combining marks that `tokenizers`' NFC tables (an older Unicode) treat as
 * plain starters while utf8proc reorders or composes them; U+11930 is there
 * because `tokenizers` lacks the composition U+11935 U+11930 -> U+11938.
 * Found by normalizing every code point in context with both libraries. */
static const uint32_t nfc_breaks[][2] = {
    {0x7fd, 0x7fd},     {0x898, 0x89f},     {0x8ca, 0x8d3},
    {0x9fe, 0x9fe},     {0xc3c, 0xc3c},     {0xd3b, 0xd3c},
    {0xeba, 0xeba},     {0x1715, 0x1715},   {0x1abf, 0x1ace},
    {0x1df6, 0x1dfa},   {0xa82c, 0xa82c},   {0x10d24, 0x10d27},
    {0x10eab, 0x10eac}, {0x10efd, 0x10eff}, {0x10f46, 0x10f50},
    {0x10f82, 0x10f85}, {0x11070, 0x11070}, {0x1133b, 0x1133b},
    {0x1145e, 0x1145e}, {0x11839, 0x1183a}, {0x11930, 0x11930},
    {0x1193d, 0x1193e}, {0x11943, 0x11943}, {0x119e0, 0x119e0},
    {0x11a34, 0x11a34}, {0x11a47, 0x11a47}, {0x11a99, 0x11a99},
    {0x11d42, 0x11d42}, {0x11d44, 0x11d45}, {0x11d97, 0x11d97},
    {0x11f41, 0x11f42}, {0x16ff0, 0x16ff1}, {0x1e08f, 0x1e08f},
    {0x1e130, 0x1e136}, {0x1e2ae, 0x1e2ae}, {0x1e2ec, 0x1e2ef},
    {0x1e4ec, 0x1e4ef},
};

static int is_nfc_break(uint32_t cp) {
  if (cp < 0x7fd) return 0;
  for (size_t i = 0; i < sizeof nfc_breaks / sizeof nfc_breaks[0]; i++)
    if (cp >= nfc_breaks[i][0] && cp <= nfc_breaks[i][1]) return 1;
  return 0;
}

static int nfc_segment(r1d_buf *out, const char *s, size_t n) {
  if (n == 0) return 0;
  utf8proc_uint8_t *o = NULL;
  utf8proc_ssize_t r =
      utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &o,
                   UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (r < 0) return R1D_ENOMEM;
  int rc = r1d_buf_append(out, o, (size_t)r);
  free(o);
  return rc;
}

/* NFC of valid UTF-8 s[0..n) into a malloc'ed string, as `tokenizers`
 * computes it: utf8proc on the runs between nfc_breaks characters, which
 * are starters there and so end every reordering and composition. */
char *tok_nfc_dup(const char *s, size_t n, size_t *out_len) {
  r1d_buf out = {0};
  size_t seg = 0, i = 0;
  while (i < n) {
    uint32_t cp = 0; /* stays 0 for a byte that is not UTF-8 */
    int l = r1d_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (l == 0) l = 1;
    if (is_nfc_break(cp)) {
      if (nfc_segment(&out, s + seg, i - seg) ||
          r1d_buf_append(&out, s + i, (size_t)l))
        goto fail;
      seg = i + (size_t)l;
    }
    i += (size_t)l;
  }
  if (nfc_segment(&out, s + seg, n - seg) || r1d_buf_append(&out, "", 1))
    goto fail;
  *out_len = out.n - 1;
  return out.p;
fail:
  free(out.p);
  return NULL;
}

/* True when NFC cannot change s: every character is below U+0300 or in a
 * block whose characters neither decompose differently, combine, nor act as
 * the second half of a composition. Saves utf8proc calls on common text. */
int tok_nfc_trivially_stable(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    int l = r1d_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (l == 0) return 0;
    i += (size_t)l;
    if (cp < 0x300 || (cp >= 0x3041 && cp <= 0x3096) ||
        (cp >= 0x30A1 && cp <= 0x30FA) || (cp >= 0x3400 && cp <= 0x4DBF) ||
        (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
        (cp >= 0xFF01 && cp <= 0xFFEF) || (cp >= 0x2002 && cp <= 0x206F) ||
        (cp >= 0x3000 && cp <= 0x3029) || (cp >= 0x3030 && cp <= 0x303F) ||
        (cp >= 0x1F300 && cp <= 0x1FAFF))
      continue;
    return 0;
  }
  return 1;
}

/* ---- regexes ------------------------------------------------------------ */

/* `tokenizers` runs its regexes with Oniguruma, whose \s is Unicode
 * White_Space; PCRE2's \s with UCP also matches U+180E. We spell \s out as
 * that set so the two agree (\S outside a class becomes its complement). */
static const char ws_class[] =
    "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}"
    "\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

/* Code points that Oniguruma in `tokenizers` 0.23 (Unicode 16) puts in
 * \p{L}, \p{N}, \p{P}, \p{S}, \p{M} but PCRE2 10.42 (Unicode 14) leaves
 * unassigned: found by running every code point through both. Adding them
 * to each property keeps older PCRE2 builds exact; newer ones already know
 * them, and a union changes nothing there. */
static const struct {
  char cat;
  const char *ranges;
} extra_classes[] = {
    {'L', "\\x{1c89}-\\x{1c8a}\\x{a7cb}-\\x{a7cd}\\x{a7da}-\\x{a7dc}"
          "\\x{105c0}-\\x{105f3}\\x{10d4a}-\\x{10d65}\\x{10d6f}-\\x{10d85}"
          "\\x{10ec2}-\\x{10ec4}\\x{1123f}-\\x{11240}\\x{11380}-\\x{11389}"
          "\\x{1138b}\\x{1138e}\\x{11390}-\\x{113b5}\\x{113b7}\\x{113d1}"
          "\\x{113d3}\\x{11bc0}-\\x{11be0}\\x{11f02}\\x{11f04}-\\x{11f10}"
          "\\x{11f12}-\\x{11f33}\\x{1342f}\\x{13441}-\\x{13446}"
          "\\x{13460}-\\x{143fa}\\x{16100}-\\x{1611d}\\x{16d40}-\\x{16d6c}"
          "\\x{18cff}\\x{1b132}\\x{1b155}\\x{1df25}-\\x{1df2a}"
          "\\x{1e030}-\\x{1e06d}\\x{1e4d0}-\\x{1e4eb}\\x{1e5d0}-\\x{1e5ed}"
          "\\x{1e5f0}\\x{2b739}\\x{2ebf0}-\\x{2ee5d}\\x{31350}-\\x{323af}"},
    {'N', "\\x{10d40}-\\x{10d49}\\x{116d0}-\\x{116e3}\\x{11bf0}-\\x{11bf9}"
          "\\x{11f50}-\\x{11f59}\\x{16130}-\\x{16139}\\x{16d70}-\\x{16d79}"
          "\\x{1ccf0}-\\x{1ccf9}\\x{1d2c0}-\\x{1d2d3}\\x{1e4f0}-\\x{1e4f9}"
          "\\x{1e5f1}-\\x{1e5fa}"},
    {'P', "\\x{1b4e}-\\x{1b4f}\\x{1b7f}\\x{10d6e}\\x{113d4}-\\x{113d5}"
          "\\x{113d7}-\\x{113d8}\\x{11b00}-\\x{11b09}\\x{11be1}"
          "\\x{11f43}-\\x{11f4f}\\x{16d6d}-\\x{16d6f}\\x{1e5ff}"},
    {'S', "\\x{2427}-\\x{2429}\\x{2ffc}-\\x{2fff}\\x{31e4}-\\x{31e5}\\x{31ef}"
          "\\x{10d8e}-\\x{10d8f}\\x{1cc00}-\\x{1ccef}\\x{1cd00}-\\x{1ceb3}"
          "\\x{1f6dc}\\x{1f774}-\\x{1f776}\\x{1f77b}-\\x{1f77f}\\x{1f7d9}"
          "\\x{1f8b2}-\\x{1f8bb}\\x{1f8c0}-\\x{1f8c1}\\x{1fa75}-\\x{1fa77}"
          "\\x{1fa87}-\\x{1fa89}\\x{1fa8f}\\x{1faad}-\\x{1faaf}"
          "\\x{1fabb}-\\x{1fabf}\\x{1fac6}\\x{1face}-\\x{1facf}"
          "\\x{1fada}-\\x{1fadc}\\x{1fadf}\\x{1fae8}-\\x{1fae9}"
          "\\x{1faf7}-\\x{1faf8}\\x{1fbcb}-\\x{1fbef}"},
    {'M', "\\x{897}\\x{cf3}\\x{ece}\\x{10d69}-\\x{10d6d}\\x{10efc}-\\x{10eff}"
          "\\x{11241}\\x{113b8}-\\x{113c0}\\x{113c2}\\x{113c5}"
          "\\x{113c7}-\\x{113ca}\\x{113cc}-\\x{113d0}\\x{113d2}"
          "\\x{113e1}-\\x{113e2}\\x{11f00}-\\x{11f01}\\x{11f03}"
          "\\x{11f34}-\\x{11f3a}\\x{11f3e}-\\x{11f42}\\x{11f5a}\\x{13440}"
          "\\x{13447}-\\x{13455}\\x{1611e}-\\x{1612f}\\x{1e08f}"
          "\\x{1e4ec}-\\x{1e4ef}\\x{1e5ee}-\\x{1e5ef}"},
};

static const char *extra_ranges(char cat) {
  for (size_t i = 0; i < sizeof extra_classes / sizeof extra_classes[0]; i++)
    if (extra_classes[i].cat == cat) return extra_classes[i].ranges;
  return NULL;
}

static char *rewrite_pattern(const char *p, size_t n) {
  r1d_buf b = {0};
  int in_class = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '\\' && i + 1 < n) {
      char d = p[i + 1];
      int ok = 0;
      if (d == 's') {
        ok = in_class ? r1d_buf_append(&b, ws_class, strlen(ws_class))
                      : (r1d_buf_append(&b, "[", 1) ||
                         r1d_buf_append(&b, ws_class, strlen(ws_class)) ||
                         r1d_buf_append(&b, "]", 1));
      } else if (d == 'p' && i + 4 < n && p[i + 2] == '{' && p[i + 4] == '}' &&
                 extra_ranges(p[i + 3])) {
        const char *x = extra_ranges(p[i + 3]);
        ok = (!in_class && r1d_buf_append(&b, "[", 1)) ||
             r1d_buf_append(&b, p + i, 5) || r1d_buf_append(&b, x, strlen(x)) ||
             (!in_class && r1d_buf_append(&b, "]", 1));
        i += 3; /* with the i++ below: past "\\p{X}" */
      } else if (d == 'S' && !in_class) {
        ok = r1d_buf_append(&b, "[^", 2) ||
             r1d_buf_append(&b, ws_class, strlen(ws_class)) ||
             r1d_buf_append(&b, "]", 1);
      } else {
        ok = r1d_buf_append(&b, p + i, 2);
      }
      if (ok) goto fail;
      i++;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = 1;
      if (r1d_buf_append(&b, "[", 1)) goto fail;
      /* a ']' right after '[' or '[^' is a literal */
      if (i + 1 < n && p[i + 1] == '^') {
        if (r1d_buf_append(&b, "^", 1)) goto fail;
        i++;
      }
      if (i + 1 < n && p[i + 1] == ']') {
        if (r1d_buf_append(&b, "]", 1)) goto fail;
        i++;
      }
      continue;
    }
    if (c == ']' && in_class) in_class = 0;
    if (r1d_buf_append(&b, &c, 1)) goto fail;
  }
  if (r1d_buf_append(&b, "", 1)) goto fail;
  return b.p;
fail:
  free(b.p);
  return NULL;
}

int tok_compile_regex(const char *path, const char *pat, size_t n, int literal,
                      pcre2_code **out, r1d_error *err) {
  char *rp = literal ? NULL : rewrite_pattern(pat, n);
  if (!literal && !rp) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  int ec;
  PCRE2_SIZE eo;
  uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  pcre2_code *re = literal
                       ? pcre2_compile((PCRE2_SPTR)pat, n, opts, &ec, &eo, NULL)
                       : pcre2_compile((PCRE2_SPTR)rp, PCRE2_ZERO_TERMINATED,
                                       opts, &ec, &eo, NULL);
  free(rp);
  if (!re) {
    PCRE2_UCHAR msg[128];
    pcre2_get_error_message(ec, msg, sizeof msg);
    return r1d_fail(err, R1D_EFORMAT, "%s: bad pre_tokenizer regex '%.*s': %s",
                    path, (int)(n > 80 ? 80 : n), pat, (char *)msg);
  }
  /* JIT is an optimisation only; without it pcre2_match interprets. */
  (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
  *out = re;
  return 0;
}

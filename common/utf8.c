/* utf8.c - UTF-8 repair and streaming boundaries (see utf8.h). */
#include "utf8.h"

size_t r1d_utf8_invalid_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  size_t i = 1;
  for (; i < len && i < n; i++) {
    if (s[i] < lo || s[i] > hi) break;
    lo = 0x80;
    hi = 0xBF;
  }
  return i;
}

int r1d_utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

size_t r1d_utf8_complete_prefix(const unsigned char *s, size_t n) {
  /* A character is at most 4 bytes: only the last 3 can be an unfinished
   * one. Find the last lead byte among them and ask whether what follows it
   * is a proper prefix of a valid sequence. */
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    const unsigned char *p = s + n - back;
    if ((*p & 0xC0) == 0x80) continue; /* continuation: look further back */
    size_t bad = r1d_utf8_invalid_len(p, back);
    uint32_t cp;
    /* invalid_len consumed everything there is and it is not yet a whole
     * character: the next bytes may complete it */
    if (bad == back && *p >= 0xC2 && *p <= 0xF4 &&
        r1d_utf8_decode(p, back, &cp) == 0)
      return n - back;
    return n;
  }
  return n;
}

int r1d_utf8_lossy_append(r1d_buf *out, const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    /* copy the longest valid run at once */
    size_t run = i;
    uint32_t cp;
    int l;
    while (run < n && (l = r1d_utf8_decode(s + run, n - run, &cp)) > 0)
      run += (size_t)l;
    if (r1d_buf_append(out, s + i, run - i)) return R1D_ENOMEM;
    if (run == n) break;
    if (r1d_buf_append(out, "\xEF\xBF\xBD", 3)) return R1D_ENOMEM;
    i = run + r1d_utf8_invalid_len(s + run, n - run);
  }
  return 0;
}

size_t r1d_utf8_valid_prefix(const unsigned char *s, size_t n) {
  uint32_t cp;
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) { /* ASCII runs are the common case */
      i++;
      continue;
    }
    int l = r1d_utf8_decode(s + i, n - i, &cp);
    if (l == 0) return i;
    i += (size_t)l;
  }
  return n;
}

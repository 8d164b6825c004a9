/* utf8.h - UTF-8 as the Hugging Face stack sees it (Rust's rules): strict
 * decoding (no overlongs, no surrogates, nothing above U+10FFFF), lossy
 * repair with one U+FFFD per maximal invalid subsequence (from_utf8_lossy),
 * and the streaming question "do these bytes end inside a character that the
 * next bytes may still complete?". The tokenizer's decoder and the streaming
 * generator share these rules, so text streamed token by token equals the
 * text decoded at once. */
#ifndef R1D_COMMON_UTF8_H
#define R1D_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Decodes one character at s[0..n) (n >= 1); returns its length, or 0 when
 * the bytes there are not valid UTF-8. Inline: the tokenizer calls it per
 * character. */
static inline int r1d_utf8_decode(const unsigned char *s, size_t n,
                                  uint32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  int len;
  uint32_t lo = 0x80, hi = 0xBF, v;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    v = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    v = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int i = 1; i < len; i++) {
    if ((size_t)i >= n) return 0;
    unsigned b = s[i];
    if (b < lo || b > hi) return 0;
    lo = 0x80;
    hi = 0xBF;
    v = (v << 6) | (b & 0x3F);
  }
  *cp = v;
  return len;
}

/* Length (>= 1) of the maximal prefix of a valid sequence at s[0..n), n >= 1:
 * what one U+FFFD replaces when s does not start a valid character. */
size_t r1d_utf8_invalid_len(const unsigned char *s, size_t n);

/* Writes cp (<= U+10FFFF) as UTF-8 to out[0..4); returns the length. */
int r1d_utf8_encode(uint32_t cp, char *out);

/* Length of s[0..n) without a trailing incomplete character: bytes that are
 * a proper prefix of some valid sequence, which the next bytes may complete.
 * Bytes that can never become valid are not held back. */
size_t r1d_utf8_complete_prefix(const unsigned char *s, size_t n);

/* Appends s[0..n) to out with each maximal invalid subsequence replaced by
 * U+FFFD (Rust's String::from_utf8_lossy). R1D_ENOMEM on failure. */
int r1d_utf8_lossy_append(r1d_buf *out, const unsigned char *s, size_t n);

/* Length of the longest valid UTF-8 prefix of s[0..n): n when all of it is
 * valid, else the offset of the first bad byte (for error messages). */
size_t r1d_utf8_valid_prefix(const unsigned char *s, size_t n);

#endif

/* tokenizer_write.c - writes a minimal byte-level BPE tokenizer.json for
 * models r1d creates itself (`r1d model init`).
 *
 * The file has the layout of Qwen2's: NFC normalizer, the Qwen2 Split regex
 * followed by ByteLevel without its own regex, a ByteLevel decoder. Ids are
 * assigned as: byte b -> id b (its GPT-2 ByteLevel character), merge i ->
 * id 256 + i, added token j -> id 256 + n_merges + j. Both r1d's loader and
 * the Python `tokenizers` package read the result. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/file.h"
#include "tokenizer.h"

static const char qwen2_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* The ByteLevel character of byte b, UTF-8 encoded into o (NUL-ended). */
static void byte_char(int b, char o[3]) {
  int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  unsigned cp = (unsigned)b;
  if (!keep) {
    unsigned n = 0;
    for (int i = 0; i < b; i++)
      if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174)) n++;
    cp = 256 + n;
  }
  if (cp < 0x80) {
    o[0] = (char)cp;
    o[1] = 0;
  } else {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    o[2] = 0;
  }
}

static json_t *bytelevel_obj(void) {
  return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
                   "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0);
}

/* Builds the model object; fails (NULL, *why set) on duplicate tokens. */
static json_t *model_obj(const char *const *merges, int n_merges,
                         const char **why) {
  json_t *vocab = json_object(), *marr = json_array();
  json_t *model = json_pack(
      "{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b}", "type", "BPE", "dropout",
      "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
      "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", 0);
  char *joined = NULL;
  if (!vocab || !marr || !model) goto fail;
  for (int b = 0; b < 256; b++) {
    char c[3];
    byte_char(b, c);
    if (json_object_set_new(vocab, c, json_integer(b))) goto fail;
  }
  for (int i = 0; i < n_merges; i++) {
    const char *a = merges[2 * i], *b = merges[2 * i + 1];
    if (!json_object_get(vocab, a) || !json_object_get(vocab, b)) {
      *why = "a merge uses a token not defined before it";
      goto fail;
    }
    size_t la = strlen(a), lb = strlen(b);
    joined = malloc(la + lb + 1);
    if (!joined) goto fail;
    memcpy(joined, a, la);
    memcpy(joined + la, b, lb + 1);
    if (json_object_get(vocab, joined)) {
      *why = "two merges make the same token";
      goto fail;
    }
    if (json_object_set_new(vocab, joined, json_integer(256 + i)) ||
        json_array_append_new(marr, json_pack("[s, s]", a, b)))
      goto fail;
    free(joined);
    joined = NULL;
  }
  json_object_set_new(model, "vocab", vocab);
  json_object_set_new(model, "merges", marr);
  return model;
fail:
  free(joined);
  json_decref(vocab);
  json_decref(marr);
  json_decref(model);
  return NULL;
}

int r1d_tokenizer_write_bytelevel(const char *path, const char *const *merges,
                                  int n_merges, const char *const *added,
                                  const unsigned char *added_special,
                                  int n_added, r1d_error *err) {
  const char *why = "out of memory";
  json_t *model = model_obj(merges, n_merges, &why);
  if (!model)
    return r1d_fail(err, strcmp(why, "out of memory") ? R1D_EINVAL : R1D_ENOMEM,
                    "%s: cannot write tokenizer: %s", path, why);
  json_t *arr = json_array();
  for (int j = 0; arr && j < n_added; j++) {
    json_t *tok = json_pack(
        "{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", 256 + n_merges + j,
        "content", added[j], "single_word", 0, "lstrip", 0, "rstrip", 0,
        "normalized", 0, "special", added_special ? (int)added_special[j] : 1);
    if (!tok || json_array_append_new(arr, tok)) {
      json_decref(arr);
      arr = NULL;
    }
  }
  json_t *split =
      json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex",
                qwen2_pattern, "behavior", "Isolated", "invert", 0);
  json_t *root = json_pack(
      "{s:s, s:n, s:n, s:o, s:{s:s}, s:{s:s, s:[o, o]}, s:o, s:o, s:o}",
      "version", "1.0", "truncation", "padding", "added_tokens", arr,
      "normalizer", "type", "NFC", "pre_tokenizer", "type", "Sequence",
      "pretokenizers", split, bytelevel_obj(), "post_processor",
      bytelevel_obj(), "decoder", bytelevel_obj(), "model", model);
  if (!root) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  char *text = json_dumps(root, JSON_INDENT(2));
  json_decref(root);
  if (!text) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  int rc = r1d_write_file_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

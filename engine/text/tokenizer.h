/* tokenizer.h - Hugging Face byte-level BPE tokenizers from tokenizer.json
 * (Qwen2/Qwen3, Llama-3, DeepSeek-V3), exact to the `tokenizers` package:
 * added/special tokens matched in the text first, NFC normalizer (utf8proc),
 * Split pre-tokenizer regexes (PCRE2, UTF + Unicode properties), ByteLevel
 * byte-to-unicode mapping, BPE merges by rank; decode back to bytes. */
#ifndef R1D_ENGINE_TEXT_TOKENIZER_H
#define R1D_ENGINE_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"

typedef struct r1d_tokenizer r1d_tokenizer;

/* A growable id array. */
typedef struct r1d_ids {
  int32_t *v;
  size_t n, cap;
} r1d_ids;
int r1d_ids_push(r1d_ids *ids, int32_t id);
void r1d_ids_free(r1d_ids *ids);

/* Loads tokenizer.json. Unsupported model types (WordPiece, Unigram, ...)
 * fail with R1D_EUNSUPPORTED naming the file and the type. */
int r1d_tokenizer_load(const char *tokenizer_json_path, r1d_tokenizer **out,
                       r1d_error *err);
/* Loads dir/tokenizer.json. */
int r1d_tokenizer_load_dir(const char *dir, r1d_tokenizer **out,
                           r1d_error *err);
void r1d_tokenizer_free(r1d_tokenizer *t);

/* Appends the ids of text[0..len) to *ids, without BOS/EOS; special and added
 * tokens written in the text are matched (the `tokenizers` default). Invalid
 * UTF-8 fails with R1D_EINVAL. */
int r1d_tokenizer_encode(const r1d_tokenizer *t, const char *text, size_t len,
                         r1d_ids *ids, r1d_error *err);

/* Decodes ids into a malloc'ed NUL-terminated string (*len excludes NUL).
 * skip_special drops special added tokens. Invalid UTF-8 from byte tokens is
 * replaced by U+FFFD as `tokenizers` does. Unknown ids fail with R1D_ERANGE. */
int r1d_tokenizer_decode(const r1d_tokenizer *t, const int32_t *ids, size_t n,
                         int skip_special, char **text, size_t *len,
                         r1d_error *err);

/* The raw bytes a token stands for (after ByteLevel decoding), for streaming
 * decoders that must hold back incomplete UTF-8. NULL for unknown ids. */
const char *r1d_tokenizer_token_bytes(const r1d_tokenizer *t, int32_t id,
                                      size_t *len);

/* Vocabulary string of an id (as in tokenizer.json), or NULL. */
const char *r1d_tokenizer_id_to_token(const r1d_tokenizer *t, int32_t id);
/* Id of a vocabulary or added-token string, or -1. */
int32_t r1d_tokenizer_token_to_id(const r1d_tokenizer *t, const char *token);
/* 1 if id is an added token marked special. */
int r1d_tokenizer_is_special(const r1d_tokenizer *t, int32_t id);
/* One past the largest id (vocab + added tokens). */
int r1d_tokenizer_vocab_size(const r1d_tokenizer *t);

/* The id of the BOS token that Hugging Face prepends when encoding with
 * add_special_tokens=True, or -1 if it adds none (r1d_tokenizer_encode
 * itself never adds it). Decided at load time:
 *  (a) tokenizer.json's post_processor is a TemplateProcessing, or a
 *      Sequence holding one, whose "single" template starts with a
 *      SpecialToken: that token's id (from the processor's special_tokens
 *      map, else the vocabulary/added token of that content);
 *  (b) otherwise, for r1d_tokenizer_load_dir only: dir/tokenizer_config.json
 *      has "add_bos_token": true and a "bos_token" (string or {"content"})
 *      naming a known token: that token's id. A missing or unreadable
 *      tokenizer_config.json is ignored.
 * Rule (b) is what transformers 4.x's LlamaTokenizerFast does (DeepSeek-V3
 * and R1 rely on it); transformers 5 ignores add_bos_token when a
 * tokenizer.json exists and applies only (a). */
int32_t r1d_tokenizer_bos_to_add(const r1d_tokenizer *t);

/* Writes a byte-level BPE tokenizer.json (GPT-2/Qwen-style pre-tokenizer,
 * ByteLevel decoder) with the 256 byte tokens, then `merges` (pairs of token
 * strings in rank order, may be 0), then `added` special tokens. Used by
 * `r1d model init`; the `tokenizers` package loads the result.
 * Layout: merges[2*i] and merges[2*i+1] are the two halves of merge i,
 * written as ByteLevel strings (as in tokenizer.json: "Ġ" is a space).
 * Ids: byte b -> b, merge i -> 256 + i, added[j] -> 256 + n_merges + j.
 * added_special[j] marks added[j] special (skipped when decoding with
 * skip_special); NULL marks them all special.
 * A merge of undefined tokens, or two merges making one token, fails with
 * R1D_EINVAL. */
int r1d_tokenizer_write_bytelevel(const char *path, const char *const *merges,
                                  int n_merges, const char *const *added,
                                  const unsigned char *added_special,
                                  int n_added, r1d_error *err);

#endif

/* tokenizer_load.c - turns tokenizer.json into an r1d_tokenizer, and frees
 * one.
 *
 * Parsing is strict on purpose: every model, normalizer, pre-tokenizer and
 * decoder type we do not implement exactly is refused with R1D_EUNSUPPORTED
 * naming the file, rather than skipped, because a silently ignored step
 * would give ids that differ from `tokenizers` without any error. Once the
 * JSON is read, tokenizer_tables.c derives the lookups the encoder uses. */
#include "tokenizer_internal.h"

#include "../../common/file.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *jstr(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static int jbool(json_t *o, const char *key, int dflt) {
  json_t *v = json_object_get(o, key);
  return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* The GPT-2 pattern that ByteLevel applies when use_regex is true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

static int add_step(r1d_tokenizer *t, pretok_step s) {
  pretok_step *v = realloc(t->steps, (size_t)(t->n_steps + 1) * sizeof *v);
  if (!v) {
    pcre2_code_free(s.re);
    return R1D_ENOMEM;
  }
  t->steps = v;
  t->steps[t->n_steps++] = s;
  return 0;
}

static int load_pretok(r1d_tokenizer *t, const char *path, json_t *pt,
                       int *have_bytelevel, r1d_error *err) {
  if (json_is_null(pt) || !pt) return 0;
  const char *type = jstr(pt, "type");
  if (!type)
    return r1d_fail(err, R1D_EFORMAT, "%s: pre_tokenizer without type", path);
  if (*have_bytelevel)
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: pre_tokenizer '%s' after ByteLevel is not supported",
                    path, type);
  if (!strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(pt, "pretokenizers"), *e;
    size_t i;
    if (!json_is_array(arr))
      return r1d_fail(err, R1D_EFORMAT, "%s: Sequence without pretokenizers",
                      path);
    json_array_foreach(arr, i, e) {
      int rc = load_pretok(t, path, e, have_bytelevel, err);
      if (rc) return rc;
    }
    return 0;
  }
  if (!strcmp(type, "ByteLevel")) {
    pretok_step s = {.prefix_space = jbool(pt, "add_prefix_space", 1),
                     .behavior = SPLIT_ISOLATED};
    if (jbool(pt, "use_regex", 1)) {
      int rc = tok_compile_regex(path, gpt2_pattern, strlen(gpt2_pattern), 0,
                                 &s.re, err);
      if (rc) return rc;
    }
    *have_bytelevel = 1;
    return add_step(t, s) ? r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path)
                          : 0;
  }
  if (!strcmp(type, "Split")) {
    json_t *pat = json_object_get(pt, "pattern");
    const char *rx = jstr(pat, "Regex"), *lit = jstr(pat, "String");
    const char *beh = jstr(pt, "behavior");
    pretok_step s = {.invert = jbool(pt, "invert", 0)};
    if (!rx && !lit)
      return r1d_fail(err, R1D_EFORMAT, "%s: Split without a pattern", path);
    if (!beh || !strcmp(beh, "Isolated"))
      s.behavior = SPLIT_ISOLATED;
    else if (!strcmp(beh, "Removed"))
      s.behavior = SPLIT_REMOVED;
    else if (!strcmp(beh, "MergedWithPrevious"))
      s.behavior = SPLIT_PREV;
    else if (!strcmp(beh, "MergedWithNext"))
      s.behavior = SPLIT_NEXT;
    else if (!strcmp(beh, "Contiguous"))
      s.behavior = SPLIT_CONTIG;
    else
      return r1d_fail(err, R1D_EUNSUPPORTED, "%s: unknown Split behavior '%s'",
                      path, beh);
    json_t *ps = json_object_get(pat, rx ? "Regex" : "String");
    int rc = tok_compile_regex(path, json_string_value(ps),
                               json_string_length(ps), rx == NULL, &s.re, err);
    if (rc) return rc;
    return add_step(t, s) ? r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path)
                          : 0;
  }
  return r1d_fail(err, R1D_EUNSUPPORTED,
                  "%s: unsupported pre_tokenizer type '%s'", path, type);
}

/* NFC, an empty Sequence, or a Sequence of those; anything else is refused
 * rather than silently ignored. */
static int load_normalizer(r1d_tokenizer *t, const char *path, json_t *nm,
                           r1d_error *err) {
  if (!nm || json_is_null(nm)) return 0;
  const char *type = jstr(nm, "type");
  if (type && !strcmp(type, "NFC")) {
    t->nfc = 1;
    return 0;
  }
  if (type && !strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(nm, "normalizers"), *e;
    size_t i;
    json_array_foreach(arr, i, e) {
      int rc = load_normalizer(t, path, e, err);
      if (rc) return rc;
    }
    return 0;
  }
  return r1d_fail(err, R1D_EUNSUPPORTED, "%s: unsupported normalizer '%s'",
                  path, type ? type : "?");
}

/* Grows the id tables so that id fits. */
static int ensure_ids(r1d_tokenizer *t, int32_t id) {
  if (id < t->n_ids) return 0;
  int n = id + 1;
  const char **s = realloc(t->tok_str, (size_t)n * sizeof *s);
  if (!s) return R1D_ENOMEM;
  t->tok_str = s;
  for (int i = t->n_ids; i < n; i++)
    s[i] = NULL;
  t->n_ids = n;
  return 0;
}

/* Ids index dense per-id tables, so one huge id would make the loader
 * allocate and walk billions of slots. Real files are dense (Qwen3's added
 * tokens follow right after its 151643 vocab entries), so an id is refused
 * unless it is below twice the number of entries plus some slack. */
typedef struct {
  long long entries; /* vocab entries + added tokens in the file */
  long long limit;   /* ids must be below this */
} id_bound;

static id_bound make_id_bound(json_t *root) {
  json_t *model = json_object_get(root, "model");
  id_bound b;
  b.entries = (long long)json_object_size(json_object_get(model, "vocab")) +
              (long long)json_array_size(json_object_get(root, "added_tokens"));
  b.limit = b.entries * 2 + 65536;
  if (b.limit > INT32_MAX) b.limit = INT32_MAX;
  return b;
}

static int check_id(const char *path, const char *token, json_int_t id,
                    const id_bound *b, r1d_error *err) {
  if (id < 0)
    return r1d_fail(err, R1D_EFORMAT, "%s: token '%s' has negative id %lld",
                    path, token, (long long)id);
  if (id >= b->limit)
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: token '%s' has id %lld, far beyond the %lld entries",
                    path, token, (long long)id, b->entries);
  return 0;
}

static int load_vocab(r1d_tokenizer *t, const char *path, json_t *vocab,
                      const id_bound *bound, r1d_error *err) {
  if (!json_is_object(vocab))
    return r1d_fail(err, R1D_EFORMAT, "%s: model.vocab is not an object", path);
  if (tok_smap_init(&t->vocab, json_object_size(vocab)))
    return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  const char *key;
  json_t *v;
  int32_t max_id = -1;
  json_object_foreach(vocab, key, v) {
    if (!json_is_integer(v))
      return r1d_fail(err, R1D_EFORMAT, "%s: bad id for vocab entry '%s'", path,
                      key);
    int rc = check_id(path, key, json_integer_value(v), bound, err);
    if (rc) return rc;
    if ((int32_t)json_integer_value(v) > max_id)
      max_id = (int32_t)json_integer_value(v);
  }
  if (ensure_ids(t, max_id))
    return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  json_object_foreach(vocab, key, v) {
    int32_t id = (int32_t)json_integer_value(v);
    size_t len = strlen(key);
    char *s = tok_arena_strndup(t, key, len);
    if (!s || tok_smap_put(&t->vocab, s, len, id))
      return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
    t->tok_str[id] = s;
  }
  return 0;
}

static int load_merges(r1d_tokenizer *t, const char *path, json_t *merges,
                       r1d_error *err) {
  size_t n = json_array_size(merges), cap = 16;
  while (cap < n * 2 + 2)
    cap *= 2;
  t->merges.v = calloc(cap, sizeof *t->merges.v);
  t->merges.mask = cap - 1;
  if (!t->merges.v) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  r1d_buf joined = {0};
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *m = json_array_get(merges, i);
    const char *a, *b;
    size_t la, lb;
    if (json_is_string(m)) {
      a = json_string_value(m);
      const char *sp = strchr(a, ' ');
      if (!sp || strchr(sp + 1, ' ')) {
        rc = r1d_fail(err, R1D_EFORMAT, "%s: merge %zu '%s' is not 'a b'", path,
                      i, a);
        break;
      }
      la = (size_t)(sp - a);
      b = sp + 1;
      lb = strlen(b);
    } else if (json_is_array(m) && json_array_size(m) == 2 &&
               json_is_string(json_array_get(m, 0)) &&
               json_is_string(json_array_get(m, 1))) {
      a = json_string_value(json_array_get(m, 0));
      b = json_string_value(json_array_get(m, 1));
      la = json_string_length(json_array_get(m, 0));
      lb = json_string_length(json_array_get(m, 1));
    } else {
      rc = r1d_fail(err, R1D_EFORMAT, "%s: merge %zu is malformed", path, i);
      break;
    }
    joined.n = 0;
    if (r1d_buf_append(&joined, a, la) || r1d_buf_append(&joined, b, lb)) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
      break;
    }
    int32_t ia = smap_get(&t->vocab, a, la), ib = smap_get(&t->vocab, b, lb);
    int32_t ij = smap_get(&t->vocab, joined.p, joined.n);
    if (ia < 0 || ib < 0 || ij < 0) {
      rc = r1d_fail(err, R1D_EFORMAT,
                    "%s: merge %zu '%.*s' + '%.*s' uses a token not in vocab",
                    path, i, (int)la, a, (int)lb, b);
      break;
    }
    merge_slot *e = merge_find(&t->merges, pair_key(ia, ib));
    e->key = pair_key(ia, ib);
    e->rank = (int32_t)i; /* a repeated pair keeps its last rank */
    e->id = ij;
  }
  free(joined.p);
  return rc;
}

static int load_added(r1d_tokenizer *t, const char *path, json_t *arr,
                      const id_bound *bound, r1d_error *err) {
  size_t n = json_array_size(arr), i;
  json_t *e;
  t->added = calloc(n ? n : 1, sizeof *t->added);
  if (!t->added || tok_smap_init(&t->added_map, n + 1))
    return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  json_array_foreach(arr, i, e) {
    json_t *jid = json_object_get(e, "id");
    json_t *jc = json_object_get(e, "content");
    if (!json_is_integer(jid) || !json_is_string(jc))
      return r1d_fail(err, R1D_EFORMAT, "%s: added_tokens[%zu] is malformed",
                      path, i);
    int rc = check_id(path, json_string_value(jc), json_integer_value(jid),
                      bound, err);
    if (rc) return rc;
    added_tok *a = &t->added[t->n_added++];
    a->id = (int32_t)json_integer_value(jid);
    a->content =
        tok_arena_strndup(t, json_string_value(jc), json_string_length(jc));
    if (!a->content)
      return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
    a->special = (uint8_t)jbool(e, "special", 0);
    a->lstrip = (uint8_t)jbool(e, "lstrip", 0);
    a->rstrip = (uint8_t)jbool(e, "rstrip", 0);
    a->single_word = (uint8_t)jbool(e, "single_word", 0);
    a->normalized = (uint8_t)jbool(e, "normalized", !a->special);
    if (ensure_ids(t, a->id) ||
        tok_smap_put(&t->added_map, a->content, json_string_length(jc), a->id))
      return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  }
  return 0;
}

static int load_model(r1d_tokenizer *t, const char *path, json_t *model,
                      const id_bound *bound, r1d_error *err) {
  if (!json_is_object(model))
    return r1d_fail(err, R1D_EFORMAT, "%s: no model object", path);
  const char *type = jstr(model, "type");
  if (type && strcmp(type, "BPE"))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: unsupported tokenizer model type '%s'", path, type);
  json_t *merges = json_object_get(model, "merges");
  if (!type && !json_is_array(merges))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: tokenizer model has no type and no merges", path);
  if (!json_is_array(merges))
    return r1d_fail(err, R1D_EFORMAT, "%s: model.merges is not an array", path);
  if (jbool(model, "byte_fallback", 0))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: BPE with byte_fallback is not supported", path);
  const char *pre = jstr(model, "continuing_subword_prefix");
  const char *suf = jstr(model, "end_of_word_suffix");
  if ((pre && *pre) || (suf && *suf))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: BPE subword prefix/suffix is not supported", path);
  json_t *drop = json_object_get(model, "dropout");
  if (json_is_number(drop) && json_number_value(drop) > 0)
    return r1d_fail(err, R1D_EUNSUPPORTED, "%s: BPE dropout is not supported",
                    path);
  t->ignore_merges = jbool(model, "ignore_merges", 0);
  t->fuse_unk = jbool(model, "fuse_unk", 0);
  int rc = load_vocab(t, path, json_object_get(model, "vocab"), bound, err);
  if (rc) return rc;
  const char *unk = jstr(model, "unk_token");
  t->unk_id = unk ? smap_get(&t->vocab, unk, strlen(unk)) : -1;
  return load_merges(t, path, merges, err);
}

static int load_decoder(const char *path, json_t *dec, r1d_error *err) {
  const char *type = jstr(dec, "type");
  if (type && !strcmp(type, "ByteLevel")) return 0;
  if (type && !strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(dec, "decoders"), *e;
    size_t i;
    json_array_foreach(arr, i, e) {
      int rc = load_decoder(path, e, err);
      if (rc) return rc;
    }
    return 0;
  }
  return r1d_fail(err, R1D_EUNSUPPORTED, "%s: unsupported decoder '%s'", path,
                  type ? type : "null");
}

/* The first token of a TemplateProcessing "single" template, when that is
 * a SpecialToken: the BOS that encode(add_special_tokens=True) prepends. */
static int template_bos(r1d_tokenizer *t, const char *path, json_t *tp,
                        r1d_error *err) {
  json_t *st = json_object_get(json_array_get(json_object_get(tp, "single"), 0),
                               "SpecialToken");
  if (!st) return 0; /* starts with $A (or is empty): adds no BOS */
  const char *name = jstr(st, "id");
  if (!name)
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: post_processor SpecialToken without an id", path);
  json_t *spec = json_object_get(json_object_get(tp, "special_tokens"), name);
  json_t *ids = json_object_get(spec, "ids");
  int64_t id;
  if (!spec) {
    id = r1d_tokenizer_token_to_id(t, name);
  } else if (json_array_size(ids) == 1 &&
             json_is_integer(json_array_get(ids, 0))) {
    id = json_integer_value(json_array_get(ids, 0));
  } else {
    /* several ids would be a multi-token prefix, not one BOS */
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: post_processor special token '%s' must have exactly "
                    "one id",
                    path, name);
  }
  if (id < 0 || id >= t->n_ids || !t->tok_str[id])
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: post_processor adds token '%s' (id %lld), which is "
                    "not in the vocabulary",
                    path, name, (long long)id);
  t->bos_to_add = (int32_t)id;
  return 0;
}

/* Finds the BOS that the post-processor adds (rule (a) of
 * r1d_tokenizer_bos_to_add). In a Sequence each processor wraps the output
 * of the ones before, so a later template that starts with a SpecialToken
 * decides the first token. Other processor types (ByteLevel: offsets only)
 * add nothing at the front. */
static int load_post_processor(r1d_tokenizer *t, const char *path, json_t *pp,
                               r1d_error *err) {
  const char *type = jstr(pp, "type");
  if (!type) return 0;
  if (!strcmp(type, "TemplateProcessing"))
    return template_bos(t, path, pp, err);
  if (!strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(pp, "processors"), *e;
    size_t i;
    json_array_foreach(arr, i, e) {
      int rc = load_post_processor(t, path, e, err);
      if (rc) return rc;
    }
  }
  return 0;
}

int r1d_tokenizer_load(const char *path, r1d_tokenizer **out, r1d_error *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return r1d_fail(err, errno == ENOENT ? R1D_ENOTFOUND : R1D_EIO,
                    "%s: cannot open: %s", path, strerror(errno));
  fclose(f);
  char *data;
  size_t size;
  int rc0 = r1d_read_file(path, &data, &size, err);
  if (rc0) return rc0;
  json_error_t je;
  json_t *root = json_loadb(data, size, 0, &je);
  free(data);
  if (!root)
    return r1d_fail(err, R1D_EFORMAT, "%s:%d:%d: invalid JSON: %s", path,
                    je.line, je.column, je.text);
  r1d_tokenizer *t = calloc(1, sizeof *t);
  int rc = 0, have_bl = 0;
  if (!t) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  if (!json_is_object(root)) {
    rc = r1d_fail(err, R1D_EFORMAT, "%s: not a JSON object", path);
    goto done;
  }
  id_bound bound = make_id_bound(root);
  if ((rc = load_model(t, path, json_object_get(root, "model"), &bound, err)) ||
      (rc = load_added(t, path, json_object_get(root, "added_tokens"), &bound,
                       err)) ||
      (rc = load_normalizer(t, path, json_object_get(root, "normalizer"),
                            err)) ||
      (rc = load_pretok(t, path, json_object_get(root, "pre_tokenizer"),
                        &have_bl, err)) ||
      (rc = load_decoder(path, json_object_get(root, "decoder"), err)))
    goto done;
  if (!have_bl) {
    rc = r1d_fail(err, R1D_EUNSUPPORTED,
                  "%s: only byte-level BPE (a ByteLevel pre_tokenizer) is "
                  "supported",
                  path);
    goto done;
  }
  if (tok_build_tries(t) || tok_build_id_tables(t)) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  /* after the id tables: the BOS must name a token of the vocabulary */
  t->bos_to_add = -1;
  rc = load_post_processor(t, path, json_object_get(root, "post_processor"),
                           err);
done:
  json_decref(root);
  if (rc)
    r1d_tokenizer_free(t);
  else
    *out = t;
  return rc;
}

/* Rule (b) of r1d_tokenizer_bos_to_add: tokenizer_config.json's
 * add_bos_token and bos_token (a string, or an AddedToken dict). The file
 * is optional and only advisory, so a missing or unreadable one is ignored.
 * Its numbers can exceed 64 bits (Llama's model_max_length is ~1e30),
 * which jansson refuses as integers: decode them as reals. */
static void config_bos(r1d_tokenizer *t, const char *config_path) {
  json_t *cfg = json_load_file(config_path, JSON_DECODE_INT_AS_REAL, NULL);
  if (!json_is_object(cfg)) {
    json_decref(cfg);
    return;
  }
  json_t *bos = json_object_get(cfg, "bos_token");
  const char *name =
      json_is_object(bos) ? jstr(bos, "content") : json_string_value(bos);
  if (json_is_true(json_object_get(cfg, "add_bos_token")) && name) {
    int32_t id = r1d_tokenizer_token_to_id(t, name);
    if (id >= 0) t->bos_to_add = id;
  }
  json_decref(cfg);
}

static char *join_path(const char *dir, const char *name) {
  size_t n = strlen(dir), m = strlen(name);
  char *p = malloc(n + m + 2);
  if (!p) return NULL;
  memcpy(p, dir, n);
  p[n] = '/';
  memcpy(p + n + 1, name, m + 1);
  return p;
}

int r1d_tokenizer_load_dir(const char *dir, r1d_tokenizer **out,
                           r1d_error *err) {
  *out = NULL;
  char *p = join_path(dir, "tokenizer.json");
  if (!p) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
  int rc = r1d_tokenizer_load(p, out, err);
  free(p);
  if (rc || (*out)->bos_to_add >= 0) return rc;
  p = join_path(dir, "tokenizer_config.json");
  if (!p) {
    r1d_tokenizer_free(*out);
    *out = NULL;
    return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
  }
  config_bos(*out, p);
  free(p);
  return 0;
}

void r1d_tokenizer_free(r1d_tokenizer *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n_arena; i++)
    free(t->arena[i]);
  free(t->arena);
  free(t->tok_str);
  free(t->tok_bytes);
  free(t->tok_blen);
  free(t->special);
  free(t->vocab.v);
  free(t->vocab_bytes.v);
  free(t->added_map.v);
  free(t->merges.v);
  free(t->byte_pairs);
  free(t->added);
  free(t->raw_trie.v);
  free(t->norm_trie.v);
  for (int i = 0; i < t->n_steps; i++)
    pcre2_code_free(t->steps[i].re);
  free(t->steps);
  free(t);
}

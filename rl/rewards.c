/* rewards.c - the rule-based reward of one completion (rewards.h): split
 * the completion into thought and answer, score the answer with the task's
 * checker, and add the format, language-consistency and overlong terms.
 *
 * Decisions the header leaves open:
 *  - the thought and the answer are returned without surrounding white
 *    space (the "\n\n" after `</think>` is layout, not answer);
 *  - a malformed tags-style completion answers with the content of the
 *    last <answer>...</answer> after the last `</think>` (or anywhere when
 *    there is no `</think>`), else the text after the last `</think>`,
 *    else all of it;
 *  - language: words are maximal runs of letters (utf8proc L*, with marks
 *    M* continuing a word); a word belongs to the script of most of its
 *    letters; each Han character is a word of its own (Chinese has no
 *    spaces); LaTeX commands (\frac) and single ASCII letters (math
 *    variables such as x) are not words. utf8proc has no script property,
 *    hence the small range table below. Target "japanese" accepts kana and
 *    Han, "han" only Han.
 *  - overlong: -1 for a truncated completion or one over max_tokens,
 *    -(L - (max - buffer)) / buffer inside the buffer, 0 before it; 0 when
 *    max_tokens or buffer is 0. */
#include "rewards.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../common/utf8.h"

/* ---- configuration --------------------------------------------------- */

void r1d_reward_config_default(r1d_reward_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->w_accuracy = 1.0;
  cfg->style = R1D_ANSWER_AFTER_THINK;
  snprintf(cfg->language, sizeof cfg->language, "latin");
}

typedef enum script {
  S_OTHER = 0,
  S_LATIN,
  S_GREEK,
  S_CYRILLIC,
  S_ARMENIAN,
  S_HEBREW,
  S_ARABIC,
  S_DEVANAGARI,
  S_THAI,
  S_HANGUL,
  S_KANA,
  S_HAN,
  S_JAPANESE, /* a target only: kana or Han */
  N_SCRIPTS
} script;

static const char *const script_names[N_SCRIPTS] = {
    "other",  "latin",  "greek",      "cyrillic", "armenian",
    "hebrew", "arabic", "devanagari", "thai",     "hangul",
    "kana",   "han",    "japanese"};

/* Language names and codes accepted for a script. */
static const struct {
  const char *name;
  script s;
} script_aliases[] = {
    {"english", S_LATIN},    {"en", S_LATIN},         {"chinese", S_HAN},
    {"zh", S_HAN},           {"russian", S_CYRILLIC}, {"ru", S_CYRILLIC},
    {"korean", S_HANGUL},    {"ko", S_HANGUL},        {"ja", S_JAPANESE},
    {"hindi", S_DEVANAGARI}, {"hi", S_DEVANAGARI},    {"ar", S_ARABIC},
    {"he", S_HEBREW},        {"el", S_GREEK},         {"th", S_THAI},
    {"hiragana", S_KANA},    {"katakana", S_KANA},
};

/* The script a target name names, or S_OTHER when unknown. */
static script script_by_name(const char *name) {
  if (!name) return S_OTHER;
  for (int s = 1; s < N_SCRIPTS; s++)
    if (strcmp(name, script_names[s]) == 0) return (script)s;
  for (size_t i = 0; i < sizeof script_aliases / sizeof *script_aliases; i++)
    if (strcmp(name, script_aliases[i].name) == 0) return script_aliases[i].s;
  return S_OTHER;
}

static const char rewards_keys[] =
    "accuracy, format, language, language_target, answer_style, overlong, "
    "overlong_max_tokens, overlong_buffer, strict_format";

static int weight(const json_t *v, const char *key, double *out,
                  r1d_error *err) {
  if (!json_is_number(v) || !(json_number_value(v) >= 0) ||
      isinf(json_number_value(v)))
    return r1d_fail(err, R1D_EINVAL, "rewards.%s must be a number >= 0", key);
  *out = json_number_value(v);
  return 0;
}

static int count(const json_t *v, const char *key, size_t *out,
                 r1d_error *err) {
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      json_integer_value(v) > (json_int_t)(1 << 30))
    return r1d_fail(err, R1D_EINVAL,
                    "rewards.%s must be an integer from 0 to 1073741824", key);
  *out = (size_t)json_integer_value(v);
  return 0;
}

int r1d_reward_config_from_json(const json_t *obj, r1d_reward_config *cfg,
                                r1d_error *err) {
  if (!cfg) return r1d_fail(err, R1D_EINVAL, "rewards: no config to fill");
  if (!json_is_object(obj))
    return r1d_fail(err, R1D_EINVAL, "rewards must be an object");
  r1d_reward_config c = *cfg; /* cfg changes only when all of it is good */
  const char *key;
  json_t *v;
  int rc = 0;
  json_object_foreach((json_t *)obj, key, v) {
    if (strcmp(key, "accuracy") == 0) {
      rc = weight(v, key, &c.w_accuracy, err);
    } else if (strcmp(key, "format") == 0) {
      rc = weight(v, key, &c.w_format, err);
    } else if (strcmp(key, "language") == 0) {
      rc = weight(v, key, &c.w_language, err);
    } else if (strcmp(key, "overlong") == 0) {
      rc = weight(v, key, &c.w_overlong, err);
    } else if (strcmp(key, "overlong_max_tokens") == 0) {
      rc = count(v, key, &c.overlong_max_tokens, err);
    } else if (strcmp(key, "overlong_buffer") == 0) {
      rc = count(v, key, &c.overlong_buffer, err);
    } else if (strcmp(key, "strict_format") == 0) {
      if (!json_is_boolean(v))
        rc = r1d_fail(err, R1D_EINVAL,
                      "rewards.strict_format must be true or false");
      else
        c.strict_format = json_is_true(v);
    } else if (strcmp(key, "answer_style") == 0) {
      const char *s = json_string_value(v);
      if (s && strcmp(s, "think") == 0)
        c.style = R1D_ANSWER_AFTER_THINK;
      else if (s && strcmp(s, "tags") == 0)
        c.style = R1D_ANSWER_TAGS;
      else
        rc = r1d_fail(err, R1D_EINVAL,
                      "rewards.answer_style must be \"think\" or \"tags\"");
    } else if (strcmp(key, "language_target") == 0) {
      script s = script_by_name(json_string_value(v));
      if (s == S_OTHER)
        rc = r1d_fail(err, R1D_EINVAL,
                      "rewards.language_target must be one of latin, greek, "
                      "cyrillic, armenian, hebrew, arabic, devanagari, thai, "
                      "hangul, kana, han, japanese (or a language such as "
                      "english, chinese)");
      else
        snprintf(c.language, sizeof c.language, "%s", script_names[s]);
    } else {
      rc = r1d_fail(err, R1D_EINVAL,
                    "rewards.%.64s is not a known key (expected %s)", key,
                    rewards_keys);
    }
    if (rc) return rc;
  }
  if (c.overlong_max_tokens > 0 && c.overlong_buffer > c.overlong_max_tokens)
    return r1d_fail(err, R1D_EINVAL,
                    "rewards.overlong_buffer must be <= overlong_max_tokens "
                    "(%zu > %zu)",
                    c.overlong_buffer, c.overlong_max_tokens);
  *cfg = c;
  return 0;
}

/* ---- splitting thought and answer ------------------------------------ */

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

/* s[a..b) without surrounding ASCII white space. */
static void trim(const char *s, size_t *a, size_t *b) {
  while (*a < *b && is_space(s[*a]))
    (*a)++;
  while (*b > *a && is_space(s[*b - 1]))
    (*b)--;
}

/* Occurrences of tag in s[from..n), and where the first and last start. */
static size_t find_all(const char *s, size_t n, size_t from, const char *tag,
                       size_t *first, size_t *last) {
  size_t l = strlen(tag), k = 0;
  *first = *last = n;
  for (size_t i = from; i + l <= n; i++) {
    const char *hit = memchr(s + i, tag[0], n - i - l + 1);
    if (!hit) break;
    i = (size_t)(hit - s);
    if (memcmp(hit, tag, l) != 0) continue;
    if (k++ == 0) *first = i;
    *last = i;
  }
  return k;
}

static const char TH_OPEN[] = "<think>", TH_CLOSE[] = "</think>",
                  ANS_OPEN[] = "<answer>", ANS_CLOSE[] = "</answer>";

int r1d_completion_split(const char *completion, r1d_answer_style style,
                         int prompt_in_think, const char **thought,
                         size_t *thought_len, const char **ans,
                         size_t *ans_len) {
  const char *s = completion ? completion : "";
  size_t n = strlen(s);
  int ok = 1;
  /* where the thought starts: 0, or after a leading <think> */
  size_t t0 = 0;
  while (t0 < n && is_space(s[t0]))
    t0++;
  if (!prompt_in_think) {
    if (n - t0 >= sizeof TH_OPEN - 1 &&
        memcmp(s + t0, TH_OPEN, sizeof TH_OPEN - 1) == 0)
      t0 += sizeof TH_OPEN - 1;
    else
      ok = 0, t0 = 0;
  } else {
    t0 = 0;
  }
  size_t f_open, l_open, f_close, l_close;
  if (find_all(s, n, t0, TH_OPEN, &f_open, &l_open) != 0) ok = 0;
  size_t n_close = find_all(s, n, 0, TH_CLOSE, &f_close, &l_close);
  if (n_close != 1) ok = 0;
  /* the thought: up to the last </think> (or all when there is none) */
  size_t ta = t0, tb = n_close ? l_close : n;
  if (tb < ta) ta = tb;
  size_t aa = n_close ? l_close + sizeof TH_CLOSE - 1 : 0, ab = n;
  if (style == R1D_ANSWER_TAGS) {
    size_t fo, lo, fc, lc;
    size_t n_ao = find_all(s, n, aa, ANS_OPEN, &fo, &lo);
    size_t n_ac = find_all(s, n, aa, ANS_CLOSE, &fc, &lc);
    size_t ba = aa;
    trim(s, &ba, &ab);
    /* well formed: only white space, <answer>, content, </answer> */
    if (n_ao != 1 || n_ac != 1 || fo != ba || lc + sizeof ANS_CLOSE - 1 != ab ||
        lc < lo)
      ok = 0;
    /* the last <answer>...</answer> pair after the thought */
    size_t fo_any, lo_any, fc_any, lc_any;
    find_all(s, n, aa, ANS_OPEN, &fo_any, &lo_any);
    find_all(s, n, aa, ANS_CLOSE, &fc_any, &lc_any);
    (void)fo_any;
    (void)fc_any;
    if (lo_any < n && lc_any < n && lc_any > lo_any) {
      aa = lo_any + sizeof ANS_OPEN - 1;
      ab = lc_any;
    } else {
      ab = n;
    }
  }
  trim(s, &aa, &ab);
  trim(s, &ta, &tb);
  if (aa == ab) ok = 0;
  *thought = s + ta;
  *thought_len = tb - ta;
  *ans = s + aa;
  *ans_len = ab - aa;
  return ok;
}

/* ---- language consistency -------------------------------------------- */

typedef struct range {
  uint32_t lo, hi;
  unsigned char s;
} range;

/* Letters' scripts by code point (sorted, non-overlapping); anything else
 * is S_OTHER. */
static const range script_ranges[] = {
    {0x0041, 0x005A, S_LATIN},      {0x0061, 0x007A, S_LATIN},
    {0x00AA, 0x00AA, S_LATIN},      {0x00BA, 0x00BA, S_LATIN},
    {0x00C0, 0x02AF, S_LATIN},      {0x0370, 0x03FF, S_GREEK},
    {0x0400, 0x052F, S_CYRILLIC},   {0x0530, 0x058F, S_ARMENIAN},
    {0x0590, 0x05FF, S_HEBREW},     {0x0600, 0x06FF, S_ARABIC},
    {0x0750, 0x077F, S_ARABIC},     {0x08A0, 0x08FF, S_ARABIC},
    {0x0900, 0x097F, S_DEVANAGARI}, {0x0E00, 0x0E7F, S_THAI},
    {0x1100, 0x11FF, S_HANGUL},     {0x1C80, 0x1C8F, S_CYRILLIC},
    {0x1D00, 0x1DBF, S_LATIN},      {0x1E00, 0x1EFF, S_LATIN},
    {0x1F00, 0x1FFF, S_GREEK},      {0x2C60, 0x2C7F, S_LATIN},
    {0x2DE0, 0x2DFF, S_CYRILLIC},   {0x2E80, 0x2FDF, S_HAN},
    {0x3005, 0x3005, S_HAN},        {0x3007, 0x3007, S_HAN},
    {0x3021, 0x3029, S_HAN},        {0x3038, 0x303B, S_HAN},
    {0x3041, 0x309F, S_KANA},       {0x30A0, 0x30FF, S_KANA},
    {0x3131, 0x318F, S_HANGUL},     {0x31F0, 0x31FF, S_KANA},
    {0x3400, 0x4DBF, S_HAN},        {0x4E00, 0x9FFF, S_HAN},
    {0xA640, 0xA69F, S_CYRILLIC},   {0xA720, 0xA7FF, S_LATIN},
    {0xA8E0, 0xA8FF, S_DEVANAGARI}, {0xA960, 0xA97F, S_HANGUL},
    {0xAB30, 0xAB6F, S_LATIN},      {0xAC00, 0xD7FF, S_HANGUL},
    {0xF900, 0xFAFF, S_HAN},        {0xFB00, 0xFB06, S_LATIN},
    {0xFB1D, 0xFB4F, S_HEBREW},     {0xFB50, 0xFDFF, S_ARABIC},
    {0xFE70, 0xFEFF, S_ARABIC},     {0xFF21, 0xFF3A, S_LATIN},
    {0xFF41, 0xFF5A, S_LATIN},      {0xFF66, 0xFF9F, S_KANA},
    {0xFFA0, 0xFFDC, S_HANGUL},     {0x20000, 0x323AF, S_HAN},
};

static script script_of(uint32_t cp) {
  size_t lo = 0, hi = sizeof script_ranges / sizeof *script_ranges;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cp < script_ranges[mid].lo)
      hi = mid;
    else if (cp > script_ranges[mid].hi)
      lo = mid + 1;
    else
      return (script)script_ranges[mid].s;
  }
  return S_OTHER;
}

static int is_letter(uint32_t cp) {
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

static int is_mark(uint32_t cp) {
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME;
}

static int script_matches(script word, script target) {
  if (target == S_OTHER) return 0; /* an unknown target matches nothing */
  if (target == S_JAPANESE) return word == S_KANA || word == S_HAN;
  return word == target;
}

typedef struct word_count {
  size_t total, matched;
} word_count;

/* Ends the current word (letters counted per script in counts). */
static void end_word(size_t counts[N_SCRIPTS], size_t n_letters,
                     int single_ascii, script target, word_count *wc) {
  if (n_letters == 0) return;
  if (!(n_letters == 1 && single_ascii)) {
    int best = 0;
    for (int s = 1; s < N_SCRIPTS; s++)
      if (counts[s] > counts[best]) best = s;
    wc->total++;
    wc->matched += script_matches((script)best, target);
  }
  memset(counts, 0, N_SCRIPTS * sizeof *counts);
}

double r1d_language_consistency(const char *text, size_t len,
                                const char *script_name) {
  if (!text) return 1.0;
  script target = script_by_name(script_name);
  const unsigned char *p = (const unsigned char *)text;
  size_t counts[N_SCRIPTS] = {0}, n_letters = 0;
  int single_ascii = 0;
  word_count wc = {0, 0};
  size_t i = 0;
  while (i < len) {
    if (p[i] == '\\' && i + 1 < len &&
        ((p[i + 1] >= 'a' && p[i + 1] <= 'z') ||
         (p[i + 1] >= 'A' && p[i + 1] <= 'Z'))) {
      /* a LaTeX command: its name is not a word */
      end_word(counts, n_letters, single_ascii, target, &wc);
      n_letters = 0;
      i++;
      while (i < len &&
             ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')))
        i++;
      continue;
    }
    uint32_t cp;
    int l = r1d_utf8_decode(p + i, len - i, &cp);
    if (l == 0) { /* invalid byte: a word break */
      end_word(counts, n_letters, single_ascii, target, &wc);
      n_letters = 0;
      i++;
      continue;
    }
    i += (size_t)l;
    if (is_letter(cp)) {
      script s = script_of(cp);
      if (s == S_HAN) { /* one word per character */
        end_word(counts, n_letters, single_ascii, target, &wc);
        n_letters = 0;
        counts[S_HAN] = 1;
        end_word(counts, 1, 0, target, &wc);
        continue;
      }
      counts[s]++;
      n_letters++;
      single_ascii = n_letters == 1 && cp < 0x80;
    } else if (!(n_letters > 0 && is_mark(cp))) {
      end_word(counts, n_letters, single_ascii, target, &wc);
      n_letters = 0;
    }
  }
  end_word(counts, n_letters, single_ascii, target, &wc);
  return wc.total ? (double)wc.matched / (double)wc.total : 1.0;
}

/* ---- the reward ------------------------------------------------------ */

static double overlong_penalty(const r1d_reward_config *cfg,
                               const r1d_completion_info *info) {
  size_t max = cfg->overlong_max_tokens, buf = cfg->overlong_buffer;
  if (max == 0 || buf == 0) return 0.0;
  if (info->truncated || info->n_tokens > max) return -1.0;
  size_t start = max > buf ? max - buf : 0;
  if (info->n_tokens <= start) return 0.0;
  return -(double)(info->n_tokens - start) / (double)buf;
}

int r1d_reward_compute(const r1d_reward_config *cfg, const json_t *checker,
                       const char *completion, const r1d_completion_info *info,
                       r1d_reward *out, r1d_error *err) {
  if (!cfg || !out)
    return r1d_fail(err, R1D_EINVAL, "reward: no config or output");
  memset(out, 0, sizeof *out);
  r1d_completion_info none = {0, 0, 0};
  if (!info) info = &none;
  const char *thought, *ans;
  size_t thought_len, ans_len;
  out->format_ok =
      r1d_completion_split(completion, cfg->style, info->prompt_in_think,
                           &thought, &thought_len, &ans, &ans_len);
  char *answer = malloc(ans_len + 1);
  if (!answer) return r1d_fail(err, R1D_ENOMEM, "reward: out of memory");
  memcpy(answer, ans, ans_len);
  answer[ans_len] = '\0';
  /* No checker: a general prompt (alignment RL), judged by a reward model
   * outside this sum; format, language and length still count. */
  int rc =
      checker ? r1d_verify_checker(checker, answer, &out->verdict, err) : 0;
  free(answer);
  if (rc) return rc;
  out->correct = out->verdict.correct;
  out->accuracy = out->verdict.score;
  if (cfg->strict_format && !out->format_ok) out->accuracy = 0.0;
  out->format = out->format_ok ? 1.0 : 0.0;
  out->language = r1d_language_consistency(thought, thought_len, cfg->language);
  out->overlong = overlong_penalty(cfg, info);
  out->total = cfg->w_accuracy * out->accuracy + cfg->w_format * out->format +
               cfg->w_language * out->language +
               cfg->w_overlong * out->overlong;
  return 0;
}

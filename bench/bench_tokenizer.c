/* bench_tokenizer.c - encode throughput of the Qwen3 tokenizer on one core.
 *
 * Builds two deterministic texts of ~4 MiB each from a fixed seed: English
 * prose (common words, punctuation, numbers, contractions, newlines) and
 * CJK prose (Chinese characters, kana, CJK punctuation), split into
 * documents of ~2 KiB; encodes each document separately (as a server does
 * with prompts) and prints MiB/s and tokens/s.
 *
 *   bench_tokenizer [tokenizer_dir]        default $R1D_SHARED/fixtures/
 *                                          tokenizers/qwen3
 *   bench_tokenizer --write-texts DIR      writes DIR/english.txt and
 *                                          DIR/cjk.txt (one document per
 *                                          line) for bench_tokenizer_py.py */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/file.h"
#include "engine/text/tokenizer.h"

enum { TEXT_BYTES = 4 << 20, DOC_BYTES = 2048 };

static const char *const en_words[] = {
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "model",
    "reasoning",
    "answer",
    "question",
    "problem",
    "solution",
    "number",
    "because",
    "therefore",
    "however",
    "example",
    "result",
    "first",
    "second",
    "compute",
    "equation",
    "value",
    "function",
    "training",
    "learning",
    "reward",
    "policy",
    "gradient",
    "token",
    "language",
    "between",
    "through",
    "during",
    "without",
    "important",
    "different",
    "following",
    "understanding",
    "information",
    "government",
    "development",
    "international",
    "responsibility",
    "it's",
    "don't",
    "they're",
    "we've",
    "I'll",
    "you'd",
    "Wait,",
    "Let's",
    "Hmm,",
    "Okay,",
    "So",
    "The",
    "In",
    "However,",
    "(see",
    "above)",
    "x",
    "y",
    "=",
    "+",
    "3.14",
    "42",
    "2024",
    "100,000",
    "1e-9",
    "\"quoted\"",
};

static const char *const cjk_words[] = {
    "我们",     "的",         "是",     "在",       "了",       "模型",
    "推理",     "学习",       "强化",   "数学",     "问题",     "答案",
    "计算",     "因此",       "但是",   "如果",     "所以",     "一个",
    "这个",     "能力",       "方法",   "结果",     "首先",     "然后",
    "最后",     "需要",       "可以",   "训练",     "数据",     "中国",
    "北京",     "发展",       "经济",   "社会",     "文化",     "历史",
    "日本",     "東京",       "です",   "ます",     "これは",   "テスト",
    "ひらがな", "カタカナ",   "漢字",   "한국어",   "문장",     "입니다",
    "１２３",   "二〇二四年", "（注）", "「引用」", "《书名》",
};
static const char *const cjk_punct[] = {"，", "。", "、", "！",
                                        "？", "；", "："};

static uint64_t rng_next(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

/* Fills buf with pseudo-random prose: one document of ~DOC_BYTES per line,
 * so '\n' only separates documents. Returns the length used. */
static size_t make_text(char *buf, size_t cap, int cjk, uint64_t seed) {
  size_t n = 0, doc = 0;
  uint64_t s = seed;
  while (n + 64 < cap) {
    const char *w;
    if (cjk) {
      w = rng_next(&s) % 5 == 0 ? cjk_punct[rng_next(&s) % 7]
                                : cjk_words[rng_next(&s) % (sizeof cjk_words /
                                                            sizeof *cjk_words)];
    } else {
      w = en_words[rng_next(&s) % (sizeof en_words / sizeof *en_words)];
    }
    size_t l = strlen(w);
    memcpy(buf + n, w, l);
    n += l;
    doc += l;
    if (!cjk) {
      unsigned r = (unsigned)(rng_next(&s) % 16);
      const char *sep = r == 0 ? ". " : r == 1 ? ", " : r == 2 ? "  " : " ";
      memcpy(buf + n, sep, strlen(sep));
      n += strlen(sep);
      doc += strlen(sep);
    }
    if (doc >= DOC_BYTES) {
      buf[n++] = '\n';
      doc = 0;
    }
  }
  buf[n++] = '\n';
  return n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench(const r1d_tokenizer *t, const char *name, const char *text,
                 size_t len) {
  r1d_ids ids = {0};
  r1d_error err;
  double best = 1e30;
  size_t n_tokens = 0;
  for (int rep = 0; rep < 3; rep++) {
    n_tokens = 0;
    double t0 = now();
    for (size_t i = 0; i < len;) {
      const char *e = memchr(text + i, '\n', len - i);
      size_t dl = (size_t)(e - (text + i));
      ids.n = 0;
      if (r1d_tokenizer_encode(t, text + i, dl, &ids, &err)) {
        fprintf(stderr, "encode: %s\n", err.msg);
        r1d_ids_free(&ids);
        return 1;
      }
      n_tokens += ids.n;
      i += dl + 1;
    }
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  r1d_ids_free(&ids);
  printf("%-8s %6.2f MiB  %9zu tokens  %7.2f MiB/s  %9.0f tokens/s\n", name,
         (double)len / (1 << 20), n_tokens, (double)len / (1 << 20) / best,
         (double)n_tokens / best);
  return 0;
}

static int write_text(const char *dir, const char *name, const char *text,
                      size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(text, 1, len, f) != len) {
    perror(path);
    if (f) fclose(f);
    return 1;
  }
  return fclose(f) != 0;
}

int main(int argc, char **argv) {
  char *en = malloc(TEXT_BYTES), *cjk = malloc(TEXT_BYTES);
  if (!en || !cjk) return 1;
  size_t en_len = make_text(en, TEXT_BYTES, 0, 1234);
  size_t cjk_len = make_text(cjk, TEXT_BYTES, 1, 5678);
  int rc = 0;
  if (argc == 3 && !strcmp(argv[1], "--write-texts")) {
    r1d_error err = {0};
    if (r1d_mkdir_p(argv[2], &err) != 0) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    rc = write_text(argv[2], "english.txt", en, en_len) ||
         write_text(argv[2], "cjk.txt", cjk, cjk_len);
    free(en);
    free(cjk);
    return rc;
  }
  char dir[4096];
  if (argc > 1) {
    snprintf(dir, sizeof dir, "%s", argv[1]);
  } else {
    const char *sh = getenv("R1D_SHARED");
    snprintf(dir, sizeof dir, "%s/fixtures/tokenizers/qwen3",
             sh ? sh : "../shared");
  }
  r1d_tokenizer *t;
  r1d_error err;
  double t0 = now();
  if (r1d_tokenizer_load_dir(dir, &t, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  printf("tokenizer %s: loaded in %.3f s, one thread, per-document encode\n",
         dir, now() - t0);
  rc = bench(t, "english", en, en_len) || bench(t, "cjk", cjk, cjk_len);
  r1d_tokenizer_free(t);
  free(en);
  free(cjk);
  return rc;
}

/* sim_backward.cpp - the training backward kernels of cuda_backward.cu and
 * the AdamW kernel of cuda_optim.cu, their real source run by shim.h, against
 * the CPU functions (kernels/cpu/ops_backward*.c, rl/optim.c):
 *   rmsnorm, rope, swiglu, embedding (repeated ids across id tiles; bit for
 *   bit), cross-entropy (ignored targets, all ignored, vocab not a multiple
 *   of 32), attention (GQA groups 1, 2, 4, prefix start > 0, head_dim not a
 *   multiple of 32), linear's bias column sum (several row chunks) and the
 *   cuBLAS argument mapping of linear backward's two GEMMs (cuBLAS itself
 *   cannot run here), AdamW over several steps (bit for bit, bf16 copy).
 * Every gradient case starts from zero buffers and runs twice: the first
 * call is compared with the CPU, the second must give exactly twice the
 * first (accumulation: x + x is exact), and NULL outputs are tried. The
 * launch configurations below mirror the host wrappers of the .cu files.
 * Prints per op the largest error seen: absolute, and relative to the
 * largest reference magnitude of its tensor. */
#include "shim.h"

/* what the kernel part needs from cuda_internal.h and the CUDA headers */
#define R1D_CUDA_MAX_HEAD_DIM 256
inline float __fsqrt_rn(float x) {
  return sqrtf(x);
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  return host_bf16(f);
}
#include "adamw_scalars.inc"

#include "backward_k.inc"

#include "optim_k.inc"

extern "C" {
#include "kernels/cpu/cpu_backward.h"
#include "rl/optim.h"
}

static uint64_t st = 4242;
static float frand() {
  st ^= st << 13;
  st ^= st >> 7;
  st ^= st << 17;
  return (float)((double)(st >> 11) / 9007199254740992.0 * 2 - 1);
}
static std::vector<float> rand_vec(size_t n, float scale) {
  std::vector<float> v(n);
  for (auto &x : v)
    x = frand() * scale;
  return v;
}

/* ---- error bookkeeping ---- */

struct op_err {
  const char *name;
  double abs, rel; /* largest over all cases */
  int fails;
};
static op_err errs[] = {
    {"rmsnorm dx", 0, 0, 0},
    {"rmsnorm dw", 0, 0, 0},
    {"rope dx", 0, 0, 0},
    {"swiglu dgate", 0, 0, 0},
    {"swiglu dup", 0, 0, 0},
    {"embedding dtable", 0, 0, 0},
    {"xent target_logprob", 0, 0, 0},
    {"xent loss", 0, 0, 0},
    {"xent dlogits", 0, 0, 0},
    {"attention dq", 0, 0, 0},
    {"attention dk", 0, 0, 0},
    {"attention dv", 0, 0, 0},
    {"linear db", 0, 0, 0},
    {"linear dx (map)", 0, 0, 0},
    {"linear dw (map)", 0, 0, 0},
    {"adamw p/m/v/bf16", 0, 0, 0},
};
enum {
  E_RMS_DX,
  E_RMS_DW,
  E_ROPE,
  E_SWI_DG,
  E_SWI_DU,
  E_EMB,
  E_CE_TLP,
  E_CE_LOSS,
  E_CE_DL,
  E_ATT_DQ,
  E_ATT_DK,
  E_ATT_DV,
  E_LIN_DB,
  E_LIN_DX,
  E_LIN_DW,
  E_ADAMW,
  E_COUNT
};

/* Compares got with ref; relative error = max abs diff / max |ref|. */
static int check(int op, const char *what, const std::vector<float> &ref,
                 const std::vector<float> &got, double tol_rel) {
  double md = 0, mr = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    double d = fabs((double)ref[i] - got[i]);
    if (!(d <= md)) md = d; /* NaN sticks */
    if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
  }
  double rel = md / (mr > 0 ? mr : 1);
  op_err *e = &errs[op];
  if (!(md <= e->abs)) e->abs = md;
  if (!(rel <= e->rel)) e->rel = rel;
  int ok = rel <= tol_rel;
  if (!ok) {
    e->fails++;
    printf("FAIL %s (%s): abs %.3e rel %.3e > %.1e\n", e->name, what, md, rel,
           tol_rel);
  }
  return !ok;
}

/* after a second call from zero: exactly twice the first */
static int check_twice(int op, const char *what, const std::vector<float> &one,
                       const std::vector<float> &two) {
  for (size_t i = 0; i < one.size(); i++)
    if (!(two[i] == 2 * one[i])) {
      errs[op].fails++;
      printf("FAIL %s (%s): second call gives %.9g at %zu, first %.9g\n",
             errs[op].name, what, two[i], i, one[i]);
      return 1;
    }
  return 0;
}

static int check_zero(int op, const char *what, const std::vector<float> &v) {
  for (float x : v)
    if (x != 0.0f) {
      errs[op].fails++;
      printf("FAIL %s (%s): a skipped output was written\n", errs[op].name,
             what);
      return 1;
    }
  return 0;
}

static float *ptr(std::vector<float> &v, bool want) {
  return want ? v.data() : nullptr;
}

/* ---- the wrappers' launches ---- */

static void sim_colsum(int m, int n, const float *a, const float *b,
                       const float *row_scale, float *out) {
  int n_chunks = (m + COLSUM_ROWS - 1) / COLSUM_ROWS;
  std::vector<double> partial((size_t)n_chunks * n, NAN);
  dim3 grid((unsigned)((n + COLSUM_THREADS - 1) / COLSUM_THREADS),
            (unsigned)n_chunks);
  launch(grid, dim3(COLSUM_THREADS),
         [&] { k_colsum_partial(m, n, a, b, row_scale, partial.data()); });
  /* one block only: the finish's grid-stride loop covers wider n */
  launch(dim3(1), dim3(COLSUM_THREADS),
         [&] { k_colsum_finish(n, n_chunks, partial.data(), out); });
}

static void sim_rmsnorm_backward(int n, int dim, const float *x, const float *w,
                                 float eps, const float *dout, float *dx,
                                 float *dw) {
  std::vector<float> r(n, NAN);
  launch(dim3(n), dim3(ROW_THREADS),
         [&] { k_rmsnorm_backward(dim, x, w, eps, dout, dx, r.data()); });
  if (dw) sim_colsum(n, dim, dout, x, r.data(), dw);
}

static void sim_cross_entropy(int n, int vocab, const float *logits,
                              const int32_t *targets, float grad_scale,
                              float *loss, float *tlp, float *dlogits) {
  int counted = -1;
  launch(dim3(1), dim3(ROW_THREADS), [&] { k_ce_count(n, targets, &counted); });
  launch(dim3(n), dim3(ROW_THREADS), [&] {
    k_ce_rows(vocab, logits, targets, grad_scale, &counted, tlp, dlogits);
  });
  launch(dim3(1), dim3(ROW_THREADS),
         [&] { k_ce_loss(n, targets, tlp, &counted, loss); });
}

static void sim_attention_backward(int n, int start, int heads, int kvh, int hd,
                                   const float *q, const float *k,
                                   const float *v, const float *dout, float *dq,
                                   float *dk, float *dv) {
  std::vector<att_bwd_stats> stats((size_t)n * heads);
  att_bwd_args a = {};
  a.q = q;
  a.k = k;
  a.v = v;
  a.dout = dout;
  a.dq = dq;
  a.dk = dk;
  a.dv = dv;
  a.stats = stats.data();
  a.n = n;
  a.start = start;
  a.n_heads = heads;
  a.n_kv_heads = kvh;
  a.head_dim = hd;
  launch(dim3(n, heads), dim3(ATB_THREADS), [&] { k_attention_backward_q(a); });
  if (dk || dv)
    launch(dim3(start + n, kvh), dim3(ATB_THREADS),
           [&] { k_attention_backward_kv(a); });
}

/* ---- cases ---- */

static int rmsnorm_case(int n, int dim) {
  auto x = rand_vec((size_t)n * dim, 3), g = rand_vec(x.size(), 1);
  auto w = rand_vec(dim, 0.5f);
  for (auto &t : w)
    t += 1;
  int f = 0;
  for (int mask = 1; mask < 4; mask++) { /* 1: dx, 2: dw, 3: both */
    bool want_dx = mask & 1, want_dw = mask & 2;
    std::vector<float> rdx(x.size(), 0), rdw(dim, 0), gdx = rdx, gdw = rdw;
    r1d_cpu_rmsnorm_backward(nullptr, n, dim, x.data(), w.data(), 1e-6f,
                             g.data(), ptr(rdx, want_dx), ptr(rdw, want_dw));
    sim_rmsnorm_backward(n, dim, x.data(), w.data(), 1e-6f, g.data(),
                         ptr(gdx, want_dx), ptr(gdw, want_dw));
    auto odx = gdx, odw = gdw;
    sim_rmsnorm_backward(n, dim, x.data(), w.data(), 1e-6f, g.data(),
                         ptr(gdx, want_dx), ptr(gdw, want_dw));
    if (want_dx) {
      f += check(E_RMS_DX, "dx", rdx, odx, 1e-5);
      f += check_twice(E_RMS_DX, "dx", odx, gdx);
    } else {
      f += check_zero(E_RMS_DX, "dx NULL", gdx);
    }
    if (want_dw) {
      f += check(E_RMS_DW, "dw", rdw, odw, 1e-5);
      f += check_twice(E_RMS_DW, "dw", odw, gdw);
    } else {
      f += check_zero(E_RMS_DW, "dw NULL", gdw);
    }
  }
  printf("rmsnorm_backward n %d dim %d: %s\n", n, dim, f ? "FAIL" : "ok");
  return f;
}

static int rope_case(int n, int heads, int hd) {
  int half = hd / 2;
  auto g = rand_vec((size_t)n * heads * hd, 1);
  std::vector<float> inv(half);
  std::vector<int32_t> pos(n);
  for (int j = 0; j < half; j++)
    inv[j] = (float)pow(1e6, -2.0 * j / hd);
  for (int i = 0; i < n; i++)
    pos[i] = i * 997 % 70000;
  std::vector<float> ref(g.size(), 0), got(g.size(), 0);
  r1d_cpu_rope_backward(nullptr, n, heads, hd, pos.data(), inv.data(), g.data(),
                        ref.data());
  size_t total = (size_t)n * half;
  /* a grid smaller than the work: the grid-stride loop */
  auto run = [&] {
    launch(dim3(2), dim3(EW_BWD_THREADS), [&] {
      k_rope_backward(total, heads, hd, pos.data(), inv.data(), g.data(),
                      got.data());
    });
  };
  run();
  auto one = got;
  run();
  int f =
      check(E_ROPE, "dx", ref, one, 1e-6) + check_twice(E_ROPE, "dx", one, got);
  printf("rope_backward n %d heads %d hd %d: %s\n", n, heads, hd,
         f ? "FAIL" : "ok");
  return f;
}

static int swiglu_case(size_t n) {
  auto gate = rand_vec(n, 8), up = rand_vec(n, 2), g = rand_vec(n, 1);
  gate[0] = -200.0f; /* expf overflows: sigmoid 0 */
  if (n > 1) gate[1] = 100.0f;
  int f = 0;
  for (int mask = 1; mask < 4; mask++) {
    bool wg = mask & 1, wu = mask & 2;
    std::vector<float> rg(n, 0), ru(n, 0), gg = rg, gu = ru;
    r1d_cpu_swiglu_backward(nullptr, n, gate.data(), up.data(), g.data(),
                            ptr(rg, wg), ptr(ru, wu));
    auto run = [&] {
      launch(dim3(3), dim3(EW_BWD_THREADS), [&] {
        k_swiglu_backward(n, gate.data(), up.data(), g.data(), ptr(gg, wg),
                          ptr(gu, wu));
      });
    };
    run();
    auto og = gg, ou = gu;
    run();
    if (wg)
      f += check(E_SWI_DG, "dgate", rg, og, 1e-6) +
           check_twice(E_SWI_DG, "dgate", og, gg);
    else
      f += check_zero(E_SWI_DG, "dgate NULL", gg);
    if (wu)
      f += check(E_SWI_DU, "dup", ru, ou, 1e-6) +
           check_twice(E_SWI_DU, "dup", ou, gu);
    else
      f += check_zero(E_SWI_DU, "dup NULL", gu);
  }
  printf("swiglu_backward n %zu: %s\n", n, f ? "FAIL" : "ok");
  return f;
}

/* bit for bit: the same float additions in the same order as the CPU */
static int embedding_case(int n, int vocab, int dim) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; i++)
    ids[i] =
        (int32_t)((st = st * 6364136223846793005ull + 1442695040888963407ull) >>
                  33) %
        vocab;
  if (n > 3) ids[n - 1] = ids[0]; /* a repeat across tiles when n > 256 */
  auto g = rand_vec((size_t)n * dim, 1);
  std::vector<float> ref((size_t)vocab * dim, 0), got = ref;
  auto run_gpu = [&] {
    launch(dim3(n), dim3(EMB_THREADS), [&] {
      k_embedding_backward(n, ids.data(), dim, g.data(), got.data());
    });
  };
  int f = 0;
  for (int call = 0; call < 2; call++) {
    r1d_cpu_embedding_backward(nullptr, n, ids.data(), dim, g.data(),
                               ref.data());
    run_gpu();
    f += check(E_EMB, call ? "second call" : "first call", ref, got, 0.0);
    if (memcmp(ref.data(), got.data(), ref.size() * sizeof(float)) != 0) {
      errs[E_EMB].fails++;
      f++;
      printf("FAIL embedding: not bit for bit\n");
    }
  }
  printf("embedding_backward n %d vocab %d dim %d: %s\n", n, vocab, dim,
         f ? "FAIL" : "ok");
  return f;
}

static int xent_case(int n, int vocab, int ignore_every, float grad_scale) {
  auto logits = rand_vec((size_t)n * vocab, 6);
  std::vector<int32_t> tg(n);
  for (int i = 0; i < n; i++)
    tg[i] = ignore_every && i % ignore_every == 0 ? -1 : (i * 7919) % vocab;
  int f = 0;
  for (int want_dl = 0; want_dl < 2; want_dl++) {
    std::vector<float> rtlp(n, NAN), gtlp(n, NAN), rdl((size_t)n * vocab, 0);
    std::vector<float> gdl = rdl;
    std::vector<float> rloss(1, NAN), gloss(1, NAN);
    r1d_cpu_cross_entropy(nullptr, n, vocab, logits.data(), tg.data(),
                          grad_scale, rloss.data(), rtlp.data(),
                          ptr(rdl, want_dl));
    sim_cross_entropy(n, vocab, logits.data(), tg.data(), grad_scale,
                      gloss.data(), gtlp.data(), ptr(gdl, want_dl));
    auto odl = gdl;
    f += check(E_CE_TLP, "target_logprob", rtlp, gtlp, 1e-6);
    f += check(E_CE_LOSS, "loss", rloss, gloss, 1e-6);
    sim_cross_entropy(n, vocab, logits.data(), tg.data(), grad_scale,
                      gloss.data(), gtlp.data(), ptr(gdl, want_dl));
    f += check(E_CE_LOSS, "loss overwritten", rloss, gloss, 1e-6);
    if (want_dl)
      f += check(E_CE_DL, "dlogits", rdl, odl, 1e-6) +
           check_twice(E_CE_DL, "dlogits", odl, gdl);
    else
      f += check_zero(E_CE_DL, "dlogits NULL", gdl);
  }
  printf("cross_entropy n %d vocab %d ignore_every %d scale %g: %s\n", n, vocab,
         ignore_every, grad_scale, f ? "FAIL" : "ok");
  return f;
}

static int attention_case(int n, int start, int heads, int kvh, int hd) {
  size_t qd = (size_t)heads * hd, kvd = (size_t)kvh * hd;
  auto q = rand_vec(n * qd, 1.5f), g = rand_vec(n * qd, 1);
  auto k = rand_vec((start + n) * kvd, 1.5f),
       v = rand_vec((start + n) * kvd, 1);
  int f = 0;
  /* all three; then dq only, dk and dv only */
  const int masks[] = {7, 1, 6};
  for (int mask : masks) {
    bool wq = mask & 1, wk = mask & 2, wv = mask & 4;
    std::vector<float> rq(n * qd, 0), rk((start + n) * kvd, 0), rv = rk;
    std::vector<float> gq = rq, gk = rk, gv = rv;
    r1d_cpu_attention_backward(nullptr, n, start, heads, kvh, hd, q.data(),
                               k.data(), v.data(), g.data(), ptr(rq, wq),
                               ptr(rk, wk), ptr(rv, wv));
    sim_attention_backward(n, start, heads, kvh, hd, q.data(), k.data(),
                           v.data(), g.data(), ptr(gq, wq), ptr(gk, wk),
                           ptr(gv, wv));
    auto oq = gq, ok = gk, ov = gv;
    sim_attention_backward(n, start, heads, kvh, hd, q.data(), k.data(),
                           v.data(), g.data(), ptr(gq, wq), ptr(gk, wk),
                           ptr(gv, wv));
    if (wq)
      f += check(E_ATT_DQ, "dq", rq, oq, 2e-5) +
           check_twice(E_ATT_DQ, "dq", oq, gq);
    else
      f += check_zero(E_ATT_DQ, "dq NULL", gq);
    if (wk)
      f += check(E_ATT_DK, "dk", rk, ok, 2e-5) +
           check_twice(E_ATT_DK, "dk", ok, gk);
    else
      f += check_zero(E_ATT_DK, "dk NULL", gk);
    if (wv)
      f += check(E_ATT_DV, "dv", rv, ov, 2e-5) +
           check_twice(E_ATT_DV, "dv", ov, gv);
    else
      f += check_zero(E_ATT_DV, "dv NULL", gv);
  }
  printf("attention_backward n %d start %d heads %d kv %d hd %d: %s\n", n,
         start, heads, kvh, hd, f ? "FAIL" : "ok");
  return f;
}

/* column-major C[M,N] (ldc) += op(A) op(B), op(A) M x K, in double; the
 * definition cuBLAS documents, for the arguments the wrapper passes */
static void gemm_cm(bool ta, bool tb, int M, int N, int K, const float *A,
                    int lda, const float *B, int ldb, float *C, int ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int p = 0; p < K; p++) {
        double a = ta ? A[p + (size_t)i * lda] : A[i + (size_t)p * lda];
        double b = tb ? B[j + (size_t)p * ldb] : B[p + (size_t)j * ldb];
        s += a * b;
      }
      C[i + (size_t)j * ldc] = (float)(s + C[i + (size_t)j * ldc]);
    }
}

static int linear_case(int m, int n, int k) {
  auto x = rand_vec((size_t)m * k, 1), w = rand_vec((size_t)n * k, 1);
  auto dy = rand_vec((size_t)m * n, 1);
  std::vector<float> rdx((size_t)m * k, 0), rdw((size_t)n * k, 0), rdb(n, 0);
  r1d_cpu_linear_backward(nullptr, m, n, k, x.data(), w.data(), dy.data(),
                          rdx.data(), rdw.data(), rdb.data());
  /* r1d_cu_linear_backward's cublasGemmEx calls: dx (N, N, k, m, n; w, k;
   * dy, n; dx, k) and dw (N, T, k, n, m; x, k; dy, n; dw, k), beta 1 */
  std::vector<float> mdx((size_t)m * k, 0), mdw((size_t)n * k, 0);
  gemm_cm(false, false, k, m, n, w.data(), k, dy.data(), n, mdx.data(), k);
  gemm_cm(false, true, k, n, m, x.data(), k, dy.data(), n, mdw.data(), k);
  int f = check(E_LIN_DX, "dx mapping", rdx, mdx, 1e-5) +
          check(E_LIN_DW, "dw mapping", rdw, mdw, 1e-5);
  /* the bias column sum: the kernels themselves */
  std::vector<float> gdb(n, 0);
  sim_colsum(m, n, dy.data(), nullptr, nullptr, gdb.data());
  auto odb = gdb;
  sim_colsum(m, n, dy.data(), nullptr, nullptr, gdb.data());
  f += check(E_LIN_DB, "db", rdb, odb, 1e-6) +
       check_twice(E_LIN_DB, "db", odb, gdb);
  printf("linear_backward m %d n %d k %d (db kernels, gemm mapping): %s\n", m,
         n, k, f ? "FAIL" : "ok");
  return f;
}

/* several AdamW steps of two tensors (one decaying) against r1d_optim */
static int adamw_case(double wd, size_t n0, size_t n1) {
  const size_t sizes[2] = {n0, n1};
  const int decays[2] = {1, 0};
  std::vector<float> cp[2], cg[2], gp[2], gm[2], gvv[2];
  std::vector<__nv_bfloat16> gb[2];
  r1d_optim_tensor tensors[2];
  for (int t = 0; t < 2; t++) {
    cp[t] = rand_vec(sizes[t], 2);
    cg[t].assign(sizes[t], 0);
    gp[t] = cp[t];
    gm[t].assign(sizes[t], 0);
    gvv[t].assign(sizes[t], 0);
    gb[t].assign(sizes[t], __nv_bfloat16{0});
    tensors[t] = {t ? "model.norm.weight" : "model.layers.0.mlp.up_proj.weight",
                  cp[t].data(), cg[t].data(), sizes[t], decays[t]};
  }
  r1d_adamw_config cfg;
  r1d_adamw_config_default(&cfg);
  cfg.weight_decay = wd;
  r1d_optim *opt = nullptr;
  if (r1d_optim_create(&cfg, tensors, 2, &opt, nullptr) != 0) {
    printf("FAIL adamw: r1d_optim_create\n");
    return 1;
  }
  int f = 0;
  const double lrs[4] = {1e-3, 3e-4, 2e-2, 0.0};
  for (int step = 0; step < 4; step++) {
    float gscale = step == 2 ? 1e-4f : 1.0f;
    for (int t = 0; t < 2; t++)
      for (auto &x : cg[t])
        x = frand() * gscale;
    r1d_optim_step(opt, lrs[step], nullptr);
    r1d_cu_adamw_scalars s;
    r1d_cu_adamw_scalars_for_step(lrs[step], cfg.beta1, cfg.beta2, cfg.eps,
                                  cfg.weight_decay, step + 1, &s);
    for (int t = 0; t < 2; t++) {
      size_t n = sizes[t];
      /* the wrapper's decay flag: the tensor's and weight decay on */
      int decay = decays[t] && s.weight_decay_on;
      /* bf16 copy on every other step: the NULL path too */
      __nv_bfloat16 *bf = step % 2 == 0 ? gb[t].data() : nullptr;
      launch(dim3(2), dim3(ADAMW_THREADS), [&] {
        k_adamw(n, s, decay, gp[t].data(), cg[t].data(), gm[t].data(),
                gvv[t].data(), bf);
      });
      float *m = nullptr, *v = nullptr;
      r1d_optim_tensor_state(opt, (size_t)t, &m, &v);
      int bad = memcmp(gp[t].data(), cp[t].data(), n * 4) != 0 ||
                memcmp(gm[t].data(), m, n * 4) != 0 ||
                memcmp(gvv[t].data(), v, n * 4) != 0;
      if (bf)
        for (size_t i = 0; i < n; i++)
          bad |= gb[t][i].b != host_bf16(cp[t][i]).b;
      f += check(E_ADAMW, "param", cp[t], gp[t], 0.0);
      if (bad) {
        errs[E_ADAMW].fails++;
        f++;
        printf("FAIL adamw wd %g step %d tensor %d: not bit for bit\n", wd,
               step + 1, t);
      }
    }
  }
  r1d_optim_destroy(opt);
  printf("adamw wd %g sizes %zu, %zu, 4 steps: %s\n", wd, n0, n1,
         f ? "FAIL" : "ok");
  return f;
}

int main() {
  int f = 0;
  f += rmsnorm_case(3, 1);
  f += rmsnorm_case(5, 77);
  f += rmsnorm_case(2, 700);
  f += rmsnorm_case(300, 33); /* three row chunks for dw */
  f += rope_case(5, 3, 80);
  f += rope_case(3, 2, 128);
  f += rope_case(7, 1, 6);
  f += swiglu_case(1);
  f += swiglu_case(1000);
  f += embedding_case(1, 3, 5);
  f += embedding_case(40, 7, 70);   /* many repeats */
  f += embedding_case(300, 50, 33); /* repeats across id tiles */
  f += embedding_case(20, 1000, 300);
  f += xent_case(6, 50, 3, 1.0f);
  f += xent_case(4, 1000, 0, 0.25f);
  f += xent_case(5, 33, 1, 1.0f); /* all ignored: loss 0, no gradient */
  f += xent_case(3, 1, 0, 1.0f);
  f += attention_case(5, 0, 4, 4, 32);  /* group 1 */
  f += attention_case(6, 3, 4, 2, 80);  /* group 2, prefix */
  f += attention_case(7, 2, 8, 2, 64);  /* group 4 */
  f += attention_case(4, 0, 2, 1, 40);  /* head_dim not a multiple of 32 */
  f += attention_case(9, 5, 4, 1, 20);  /* group 4, head_dim < 32 */
  f += attention_case(3, 1, 2, 2, 256); /* largest head_dim */
  f += attention_case(1, 0, 1, 1, 8);
  /* random shapes */
  for (int r = 0; r < 3; r++) {
    int kvh = 1 + (int)((frand() + 1) * 1.5f);
    int groups[3] = {1, 2, 4};
    int heads = kvh * groups[r];
    int hd = 2 * (4 + (int)((frand() + 1) * 30));
    int n = 1 + (int)((frand() + 1) * 5), start = (int)((frand() + 1) * 4);
    f += attention_case(n, start, heads, kvh, hd);
  }
  f += linear_case(5, 7, 3);
  f += linear_case(300, 37, 11); /* three row chunks for db */
  f += linear_case(1, 130, 2);   /* columns past one block */
  f += adamw_case(1e-2, 1000, 37);
  f += adamw_case(0.0, 300, 5);
  printf("\n%-22s %12s %12s %s\n", "op", "max abs", "max rel", "fails");
  for (int i = 0; i < E_COUNT; i++)
    printf("%-22s %12.3e %12.3e %d\n", errs[i].name, errs[i].abs, errs[i].rel,
           errs[i].fails);
  printf("backward: %d failures\n", f);
  return f != 0;
}

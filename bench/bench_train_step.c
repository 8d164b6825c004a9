/* bench_train_step.c - one full training step (forward, backward, AdamW) of
 * a random-weight model through the device trainer
 * (engine/model/train_device.h) on a backend: tokens/s and model-FLOPs
 * utilisation.
 *
 *   bench_train_step [--backend cpu|cuda] [--shape small|qwen2-1.5b]
 *                    [--batch B] [--seq S] [--steps N] [--threads T]
 *                    [--peak-tflops P] [--tf32 0|1]
 *
 * A step is zero_grad + forward/backward of B documents of S tokens packed
 * into one batch (each attends only to itself) + AdamW on every tensor,
 * timed from the host with the backend synced (the loss download and
 * AdamW's sync wait for the device). One warm-up step is not timed; the
 * median of N steps is reported.
 *
 * Model FLOPs per token (the PaLM/llm.c convention): 6 * P for the matrix
 * parameters P the GEMMs read (every layer's projections and the lm head;
 * the embedding lookup is no GEMM), plus 6 * L * S/2 * 2 * Q for causal
 * attention's two products (Q = heads * head_dim, S/2 the mean causal
 * length). MFU = those FLOPs * tokens/s / peak; --peak-tflops defaults to
 * 989 (H100/H200 SXM dense bf16, the datasheet's), so on the CPU pass the
 * machine's own peak. No recomputation: every FLOP counted is done once.
 *
 * On the CPU the same run also times the host trainer (train.h +
 * rl/optim.c), the peer the device trainer must not lose to. --tf32 1 lets
 * CUDA's backward GEMMs use TF32 tensor cores (r1d_cuda_backend_set_tf32);
 * the forward's GEMMs are bf16 on CUDA either way. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/status.h"
#include "engine/model/init.h"
#include "engine/model/model.h"
#include "engine/model/train.h"
#include "engine/model/train_device.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "rl/optim.h"

#define MAX_STEPS 64

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double matrix_params(const r1d_config *c) {
  double h = c->hidden_size, q = (double)c->num_heads * c->head_dim;
  double k = (double)c->num_kv_heads * c->head_dim, in = c->intermediate_size;
  double layer = h * q + 2 * h * k + q * h + 3 * h * in;
  return c->num_layers * layer + (double)c->vocab_size * h;
}

static int usage(void) {
  fprintf(stderr, "usage: bench_train_step [--backend cpu|cuda] [--shape "
                  "small|qwen2-1.5b] [--batch B] [--seq S] [--steps N] "
                  "[--threads T] [--peak-tflops P] [--tf32 0|1]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *backend = "cpu", *shape = "small";
  int batch = 4, seq = 256, steps = 5, threads = 2;
  double peak = 989.0;
  int tf32 = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return usage();
    if (!strcmp(a, "--backend"))
      backend = v;
    else if (!strcmp(a, "--shape"))
      shape = v;
    else if (!strcmp(a, "--batch"))
      batch = atoi(v);
    else if (!strcmp(a, "--seq"))
      seq = atoi(v);
    else if (!strcmp(a, "--steps"))
      steps = atoi(v);
    else if (!strcmp(a, "--threads"))
      threads = atoi(v);
    else if (!strcmp(a, "--peak-tflops"))
      peak = atof(v);
    else if (!strcmp(a, "--tf32"))
      tf32 = atoi(v);
    else
      return usage();
    i++;
  }
  if (batch < 1 || seq < 2 || steps < 1 || steps > MAX_STEPS || threads < 1 ||
      !(peak > 0)) {
    fprintf(stderr, "bench_train_step: need batch >= 1, seq >= 2, 1 <= steps "
                    "<= 64, threads >= 1, peak > 0\n");
    return 2;
  }
  r1d_error err = {0};
  r1d_config cfg;
  r1d_model *m = NULL;
  r1d_train_model *tm = NULL;
  if (r1d_model_shape(shape, &cfg, &err) ||
      r1d_model_random(&cfg, 1, &m, &err) ||
      r1d_train_model_create(m, &tm, &err)) {
    fprintf(stderr, "bench_train_step: %s\n", err.msg);
    return 1;
  }
  r1d_backend be;
  int is_cuda = !strcmp(backend, "cuda");
  if (is_cuda) {
    if (r1d_cuda_backend_init(&be, 0, &err)) {
      fprintf(stderr, "bench_train_step: %s\n", err.msg);
      return 77;
    }
    r1d_cuda_backend_set_tf32(&be, tf32);
  } else if (!strcmp(backend, "cpu")) {
    r1d_cpu_backend_init(&be, threads);
  } else {
    return usage();
  }
  int n = batch * seq;
  int32_t *ids = malloc((size_t)n * sizeof(int32_t));
  int32_t *targets = malloc((size_t)n * sizeof(int32_t));
  int *docs = malloc((size_t)batch * sizeof(int));
  if (!ids || !targets || !docs) return 1;
  uint64_t s = 7;
  for (int i = 0; i < n; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    ids[i] = (int32_t)((s >> 33) % (uint64_t)cfg.vocab_size);
  }
  for (int i = 0; i < n; i++)
    targets[i] = (i + 1) % seq == 0 ? -1 : ids[i + 1];
  for (int b = 0; b < batch; b++)
    docs[b] = seq;

  r1d_dtrain *d = NULL;
  if (r1d_dtrain_create(&be, tm, n, &d, &err)) {
    fprintf(stderr, "bench_train_step: %s\n", err.msg);
    return 1;
  }
  double flops_tok = 6.0 * matrix_params(&cfg) + 6.0 * cfg.num_layers * seq *
                                                     (double)cfg.num_heads *
                                                     cfg.head_dim;
  printf("# bench_train_step: %s backend%s, %s shape (%.1fM parameters, "
         "%.1fM in GEMMs), batch %d x %d = %d tokens/step, %.2f GB on the "
         "backend\n",
         be.ops->name,
         is_cuda ? (tf32 ? " (backward GEMMs TF32)" : " (backward GEMMs fp32)")
                 : "",
         shape, tm->n_params / 1e6, matrix_params(&cfg) / 1e6, batch, seq, n,
         r1d_dtrain_bytes(d) / 1e9);
  double t[MAX_STEPS + 1];
  float loss = NAN;
  for (int i = 0; i <= steps; i++) {
    r1d_adamw_step st = {.lr = 1e-4,
                         .beta1 = 0.9,
                         .beta2 = 0.95,
                         .eps = 1e-8,
                         .weight_decay = 0.1,
                         .step = i + 1};
    double t0 = now_s();
    r1d_dtrain_zero_grad(d);
    if (r1d_dtrain_forward_backward(d, ids, targets, n, docs, batch, 1.0f,
                                    &loss, &err) ||
        r1d_dtrain_adamw(d, &st, &err)) {
      fprintf(stderr, "bench_train_step: step %d: %s\n", i, err.msg);
      return 1;
    }
    t[i] = now_s() - t0;
    printf("step %d: loss %.4f, %.1f ms%s\n", i, loss, t[i] * 1e3,
           i == 0 ? " (warm-up)" : "");
    if (!isfinite(loss)) {
      fprintf(stderr, "bench_train_step: loss not finite\n");
      return 1;
    }
  }
  double med = median(t + 1, steps), tps = n / med;
  double tflops = flops_tok * tps / 1e12;
  printf("device trainer: %.1f ms/step, %.0f tokens/s, %.2f TFLOP/s model "
         "FLOPs, MFU %.1f%% of %.0f TFLOP/s\n",
         med * 1e3, tps, tflops, 100.0 * tflops / peak, peak);

  if (!is_cuda) { /* the host trainer, same batch, same run */
    r1d_train_plan *plan = NULL;
    r1d_optim *opt = NULL;
    r1d_optim_tensor *list = NULL;
    size_t n_list = 0;
    r1d_adamw_config ac;
    r1d_adamw_config_default(&ac);
    ac.beta2 = 0.95;
    ac.weight_decay = 0.1;
    if (r1d_train_plan_create(tm, n, 0, &plan, &err) ||
        r1d_train_optim_tensors(tm, &list, &n_list, &err) ||
        r1d_optim_create(&ac, list, n_list, &opt, &err)) {
      fprintf(stderr, "bench_train_step: %s\n", err.msg);
      return 1;
    }
    double th[MAX_STEPS + 1];
    for (int i = 0; i <= steps; i++) {
      double t0 = now_s();
      r1d_train_zero_grad(tm);
      if (r1d_train_forward_docs(tm, plan, ids, targets, n, docs, batch, &loss,
                                 &err) ||
          r1d_train_backward(tm, plan, 1.0f, &err) ||
          r1d_optim_step(opt, 1e-4, &err)) {
        fprintf(stderr, "bench_train_step: host step %d: %s\n", i, err.msg);
        return 1;
      }
      th[i] = now_s() - t0;
    }
    double hmed = median(th + 1, steps);
    printf("host trainer:   %.1f ms/step, %.0f tokens/s; device trainer / "
           "host = %.2fx\n",
           hmed * 1e3, n / hmed, hmed / med);
    r1d_optim_destroy(opt);
    free(list);
    r1d_train_plan_free(plan);
  }
  r1d_dtrain_free(d);
  if (is_cuda)
    r1d_cuda_backend_destroy(&be);
  else
    r1d_cpu_backend_destroy(&be);
  r1d_train_model_free(tm);
  r1d_model_free(m);
  free(ids), free(targets), free(docs);
  return 0;
}

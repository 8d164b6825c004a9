/* bench_engine.c - the serving engine's throughput, with its peers measured
 * in the same run.
 *
 *   bench_engine [--backend cpu|cuda] [--threads N] [--shape small|qwen2-1.5b
 *                | --model DIR] [--prompt N] [--gen N] [--conc 1,8,32]
 *                [--max-batch-tokens N] [--kv-mib N] [--seed N]
 *
 * Reports, for a random-weight model of the given shape (or a model folder):
 *   - batch-1 decode tok/s through the engine, and on the CPU the same
 *     request through r1d_generate (the single-sequence contiguous path,
 *     OpenBLAS GEMV) as the peer;
 *   - aggregate output tok/s with C concurrent requests (each prompt distinct,
 *     so no prefix-cache help), and the ratio to batch 1;
 *   - KV memory at steady state: blocks in use x block size vs tokens the
 *     running sequences actually hold (the paging waste);
 *   - on CUDA: device copy bandwidth, the batch-1 roofline (weight bytes per
 *     token / bandwidth) and the share of it reached.
 * Greedy decoding, ignore_eos, every request runs to --gen tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "engine/model/init.h"
#include "engine/model/model.h"
#include "engine/model/runner.h"
#include "engine/serve/engine.h"
#include "engine/serve/generate.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct run_stats {
  r1d_engine *e;
  int expect_running;
  /* per request timing of the first and last token */
  double *first, *last;
  int *n_tokens;
  /* the window where every sequence decodes: from the last first token to
   * the first finish, with the token count at both ends */
  int conc, started, finished;
  long total;
  double t_all_started, t_first_done;
  long n_all_started, n_first_done;
  /* KV samples at steady state (all requests running) */
  double sum_tokens, sum_capacity;
  long samples;
} run_stats;

typedef struct req_ctx {
  run_stats *rs;
  int i;
} req_ctx;

static int on_event(void *user, const r1d_engine_event *ev) {
  req_ctx *c = user;
  run_stats *rs = c->rs;
  double t = now();
  if (ev->token >= 0) {
    rs->total++;
    if (rs->n_tokens[c->i]++ == 0) {
      rs->first[c->i] = t;
      if (++rs->started == rs->conc) {
        rs->t_all_started = t;
        rs->n_all_started = rs->total;
      }
    }
    rs->last[c->i] = t;
  }
  if (ev->finish != R1D_FINISH_NONE && rs->finished++ == 0) {
    rs->t_first_done = t;
    rs->n_first_done = rs->total;
  }
  if (c->i == 0 && rs->e) { /* one sampler per step is plenty */
    r1d_engine_stats st;
    r1d_engine_stats_get(rs->e, &st);
    if (st.running == rs->expect_running && st.waiting == 0) {
      rs->sum_tokens += (double)st.kv_tokens;
      rs->sum_capacity += (double)st.kv_blocks_used * st.block_size;
      rs->samples++;
    }
  }
  return 0;
}

static void make_prompt(int32_t *p, int n, int vocab, uint64_t seed) {
  r1d_rng rng;
  r1d_rng_seed(&rng, seed);
  int lo = vocab > 300 ? 100 : 0;
  for (int i = 0; i < n; i++)
    p[i] = (int32_t)(lo + r1d_rng_next(&rng) % (uint64_t)(vocab - lo));
}

typedef struct result {
  double elapsed, out_tok_s, decode_tok_s, steady_tok_s, ttft, kv_waste;
} result;

/* C concurrent requests of prompt_len tokens, gen new tokens each. */
static int run_concurrent(r1d_engine *e, int vocab, int conc, int prompt_len,
                          int gen, uint64_t seed, result *res) {
  run_stats rs = {.e = e, .expect_running = conc, .conc = conc};
  rs.first = calloc((size_t)conc, sizeof(double));
  rs.last = calloc((size_t)conc, sizeof(double));
  rs.n_tokens = calloc((size_t)conc, sizeof(int));
  req_ctx *ctx = calloc((size_t)conc, sizeof *ctx);
  int32_t *prompt = malloc((size_t)prompt_len * sizeof(int32_t));
  if (!rs.first || !rs.last || !rs.n_tokens || !ctx || !prompt) return 1;
  double t0 = now();
  for (int i = 0; i < conc; i++) {
    make_prompt(prompt, prompt_len, vocab, seed * 1000003u + (uint64_t)i);
    ctx[i] = (req_ctx){&rs, i};
    r1d_engine_request q = {0};
    q.prompt = prompt;
    q.n_prompt = prompt_len;
    r1d_sampling_params_default(&q.params.sampling);
    q.params.sampling.temperature = 0.0f;
    q.params.max_tokens = gen;
    q.params.ignore_eos = 1;
    q.n = 1;
    q.cb = on_event;
    q.user = &ctx[i];
    r1d_error err = {0};
    uint64_t id;
    if (r1d_engine_submit(e, &q, &id, &err)) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
  }
  r1d_engine_wait_idle(e);
  double t1 = now();
  long total = 0;
  double first = 1e300, decode = 0;
  for (int i = 0; i < conc; i++) {
    total += rs.n_tokens[i];
    if (rs.first[i] < first) first = rs.first[i];
    if (rs.n_tokens[i] > 1)
      decode += (rs.n_tokens[i] - 1) / (rs.last[i] - rs.first[i]);
  }
  res->elapsed = t1 - t0;
  res->out_tok_s = (double)total / (t1 - t0);
  res->decode_tok_s = decode; /* sum of per-request decode rates */
  res->ttft = first - t0;
  res->steady_tok_s = rs.t_first_done > rs.t_all_started
                          ? (double)(rs.n_first_done - rs.n_all_started) /
                                (rs.t_first_done - rs.t_all_started)
                          : 0.0;
  res->kv_waste =
      rs.sum_capacity > 0 ? 1.0 - rs.sum_tokens / rs.sum_capacity : -1.0;
  free(rs.first);
  free(rs.last);
  free(rs.n_tokens);
  free(ctx);
  free(prompt);
  return 0;
}

typedef struct peer_ctx {
  double first, last;
  int n;
} peer_ctx;

static int on_gen(void *user, const r1d_gen_event *ev) {
  peer_ctx *p = user;
  (void)ev;
  double t = now();
  if (p->n++ == 0) p->first = t;
  p->last = t;
  return 0;
}

/* The issue-2 single-sequence path on the same model: decode tok/s. */
static double peer_generate(r1d_model *m, int vocab, int prompt_len, int gen,
                            uint64_t seed, double *out_tok_s) {
  int32_t *prompt = malloc((size_t)prompt_len * sizeof(int32_t));
  make_prompt(prompt, prompt_len, vocab, seed);
  r1d_gen_params p = {0};
  r1d_sampling_params_default(&p.sampling);
  p.sampling.temperature = 0.0f;
  p.max_tokens = gen;
  p.ignore_eos = 1;
  peer_ctx pc = {0};
  r1d_gen_result res;
  r1d_error err = {0};
  /* no tokenizer: ids only, no text */
  double t0 = now();
  int rc = r1d_generate(m, NULL, prompt, (size_t)prompt_len, &p, on_gen, &pc,
                        &res, &err);
  *out_tok_s = pc.n / (now() - t0);
  free(prompt);
  if (rc) {
    fprintf(stderr, "bench_engine: peer: %s\n", err.msg);
    return 0;
  }
  return pc.n > 1 ? (pc.n - 1) / (pc.last - pc.first) : 0;
}

static double params_of(const r1d_config *c) {
  double h = c->hidden_size, qd = (double)c->num_heads * c->head_dim;
  double kvd = (double)c->num_kv_heads * c->head_dim;
  double layer = h * qd * 2 + h * kvd * 2 + 3.0 * h * c->intermediate_size;
  double emb = (double)c->vocab_size * h;
  return layer * c->num_layers + emb * (c->tie_word_embeddings ? 1 : 2);
}

/* Device copy bandwidth (read + write bytes per second) over 1 GiB. */
static double copy_bandwidth(const r1d_backend *be) {
  size_t bytes = (size_t)1 << 30;
  void *a = be->ops->alloc(be->ctx, bytes), *b = be->ops->alloc(be->ctx, bytes);
  if (!a || !b) return 0;
  be->ops->copy(be->ctx, b, a, bytes); /* warm up */
  be->ops->sync(be->ctx);
  int reps = 10;
  double t0 = now();
  for (int i = 0; i < reps; i++)
    be->ops->copy(be->ctx, b, a, bytes);
  be->ops->sync(be->ctx);
  double t = now() - t0;
  be->ops->free(be->ctx, a);
  be->ops->free(be->ctx, b);
  return 2.0 * (double)bytes * reps / t;
}

int main(int argc, char **argv) {
  const char *backend = "cpu", *shape = "small", *model_dir = NULL;
  const char *conc_list = "1,8,32";
  int threads = 2, prompt_len = 256, gen = 64, max_batch = 0, kv_mib = 0;
  uint64_t seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      fprintf(stderr, "bench_engine: %s needs a value\n", a);
      return 2;
    }
    if (!strcmp(a, "--backend"))
      backend = v;
    else if (!strcmp(a, "--threads"))
      threads = atoi(v);
    else if (!strcmp(a, "--shape"))
      shape = v;
    else if (!strcmp(a, "--model"))
      model_dir = v;
    else if (!strcmp(a, "--prompt"))
      prompt_len = atoi(v);
    else if (!strcmp(a, "--gen"))
      gen = atoi(v);
    else if (!strcmp(a, "--conc"))
      conc_list = v;
    else if (!strcmp(a, "--max-batch-tokens"))
      max_batch = atoi(v);
    else if (!strcmp(a, "--kv-mib"))
      kv_mib = atoi(v);
    else if (!strcmp(a, "--seed"))
      seed = (uint64_t)atoll(v);
    else {
      fprintf(stderr, "bench_engine: unknown option %s\n", a);
      return 2;
    }
    i++;
  }
  if (prompt_len < 1 || gen < 2) {
    fprintf(stderr, "bench_engine: --prompt >= 1 and --gen >= 2\n");
    return 2;
  }
  int concs[16], n_conc = 0, max_conc = 1;
  for (const char *p = conc_list; *p && n_conc < 16;) {
    concs[n_conc] = atoi(p);
    if (concs[n_conc] < 1) {
      fprintf(stderr, "bench_engine: bad --conc %s\n", conc_list);
      return 2;
    }
    if (concs[n_conc] > max_conc) max_conc = concs[n_conc];
    n_conc++;
    p = strchr(p, ',');
    if (!p) break;
    p++;
  }

  r1d_error err = {0};
  r1d_backend be;
  int is_cuda = !strcmp(backend, "cuda");
  if (is_cuda) {
    int rc = r1d_cuda_backend_init(&be, 0, &err);
    if (rc) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return rc == R1D_EUNSUPPORTED || rc == R1D_ENOTFOUND ? 77 : 1;
    }
  } else {
    r1d_cpu_backend_init(&be, threads);
  }
  r1d_backend cpu_be;
  r1d_cpu_backend_init(&cpu_be, threads);

  r1d_model *m = NULL;
  double t_load = now();
  if (model_dir) {
    if (r1d_model_load(model_dir, &cpu_be, &m, &err)) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
    shape = model_dir;
  } else {
    r1d_config cfg;
    if (r1d_model_shape(shape, &cfg, &err) ||
        r1d_model_random(&cfg, seed, &m, &err)) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
    m->be = cpu_be;
  }
  t_load = now() - t_load;
  const r1d_config *c = &m->cfg;
  double n_params = params_of(c);
  int max_len = prompt_len + gen;
  if (max_len > c->max_position_embeddings) {
    fprintf(stderr, "bench_engine: prompt + gen exceeds the context %d\n",
            c->max_position_embeddings);
    return 2;
  }

  r1d_engine_config ecfg;
  r1d_engine_config_default(&ecfg);
  ecfg.max_model_len = max_len;
  ecfg.max_num_seqs = max_conc;
  ecfg.max_batch_tokens = max_batch > 0 ? max_batch : (is_cuda ? 8192 : 512);
  if (ecfg.max_batch_tokens < max_conc) ecfg.max_batch_tokens = max_conc;
  size_t block_bytes = r1d_runner_block_bytes(c, 16);
  size_t per_seq = (size_t)((max_len + 15) / 16) * block_bytes;
  ecfg.kv_memory = kv_mib > 0 ? (size_t)kv_mib << 20 : per_seq * max_conc;
  r1d_engine *e = NULL;
  double t_up = now();
  if (r1d_engine_create(m, &be, NULL, &ecfg, &e, &err)) {
    fprintf(stderr, "bench_engine: %s\n", err.msg);
    return 1;
  }
  t_up = now() - t_up;

  char dev[256] = "";
  if (is_cuda) r1d_cuda_backend_describe(&be, dev, sizeof dev);
  printf("# bench_engine: %s backend%s%s, %s shape (%.1fM parameters), "
         "prompt %d, gen %d, greedy\n",
         backend, dev[0] ? " on " : "", dev, shape, n_params / 1e6, prompt_len,
         gen);
  printf("# model made in %.1f s, placed on the backend in %.1f s; KV pool "
         "%d blocks of %d tokens (%.0f MiB), step budget %d tokens\n",
         t_load, t_up, r1d_engine_get_config(e)->n_blocks,
         r1d_engine_get_config(e)->block_size,
         (double)r1d_engine_get_config(e)->n_blocks * (double)block_bytes /
             (1 << 20),
         ecfg.max_batch_tokens);

  /* warm-up: one short request (page faults, thread pools, cuBLAS plans) */
  result warm;
  if (run_concurrent(e, c->vocab_size, 1, prompt_len < 32 ? prompt_len : 32, 4,
                     seed + 99, &warm))
    return 1;

  result res1 = {0}, results[16];
  printf("\n| concurrent | output tok/s | vs batch 1 | all-decoding tok/s | "
         "first token s | KV waste |\n|---:|---:|---:|---:|---:|---:|\n");
  for (int k = 0; k < n_conc; k++) {
    result r;
    if (run_concurrent(e, c->vocab_size, concs[k], prompt_len, gen,
                       seed + (uint64_t)k, &r))
      return 1;
    if (concs[k] == 1 || k == 0) res1 = r;
    results[k] = r;
    char waste[32] = "n/a";
    if (r.kv_waste >= 0)
      snprintf(waste, sizeof waste, "%.1f%%", 100 * r.kv_waste);
    printf("| %d | %.1f | %.2fx | %.1f | %.3f | %s |\n", concs[k], r.out_tok_s,
           r.out_tok_s / res1.out_tok_s, r.steady_tok_s, r.ttft, waste);
    fflush(stdout);
  }
  double decode1 = res1.decode_tok_s;
  printf("\nbatch-1 decode through the engine: %.1f tok/s (%.2f ms/token)\n",
         decode1, 1000.0 / decode1);
  r1d_engine_stats st;
  r1d_engine_stats_get(e, &st);
  printf("engine: %llu steps, %llu preemptions, %llu prefix-hit tokens; per "
         "step %.3f ms in the runner, %.3f ms of host work around it\n",
         (unsigned long long)st.steps, (unsigned long long)st.preemptions,
         (unsigned long long)st.prefix_hit_tokens,
         1e3 * st.runner_seconds / (double)st.steps,
         1e3 * st.host_seconds / (double)st.steps);
  r1d_engine_destroy(e);

  if (is_cuda) {
    double bw = copy_bandwidth(&be);
    double weight_bytes = n_params * 2.0; /* bf16 */
    double roof = bw / weight_bytes;
    printf("device copy bandwidth %.0f GB/s; bf16 weights %.2f GB; batch-1 "
           "roofline %.1f tok/s; reached %.1f%%\n",
           bw / 1e9, weight_bytes / 1e9, roof, 100.0 * decode1 / roof);
    r1d_cuda_backend_destroy(&be);
  } else {
    double peer_out = 0;
    double peer =
        peer_generate(m, c->vocab_size, prompt_len, gen, seed + 7, &peer_out);
    printf("peer (same run): r1d_generate, the single-sequence contiguous "
           "path (OpenBLAS): %.1f tok/s decode, %.1f output tok/s with its "
           "prefill; engine / peer decode = %.2fx\n",
           peer, peer_out, decode1 / peer);
    for (int k = 0; k < n_conc; k++)
      printf("  %d concurrent: %.1f output tok/s = %.2fx serving the same "
             "requests one by one through the peer\n",
             concs[k], results[k].out_tok_s, results[k].out_tok_s / peer_out);
  }
  r1d_model_free(m);
  return 0;
}

/* sim_attention.cpp - k_attention<true> (paged) and <false> (contiguous),
 * the real source run by shim.h, against r1d_cpu_paged_attention: GQA head
 * mapping, int64 slot math over shuffled blocks, NaN poison in every slot a
 * query must not read, head_dim 64/80/128/256, group sizes 1..16 (more than
 * one ATT_HEADS pass), and paged == contiguous bit for bit. */
#include "shim.h"
#define R1D_CUDA_MAX_HEAD_DIM 256
#include "attention_k.inc"
extern "C" void r1d_cpu_paged_attention(
    void *ctx, int n_q, const int32_t *q_seq, const int32_t *q_pos, int max_pos,
    const int32_t *block_tables, int max_blocks, int block_size, int n_heads,
    int n_kv_heads, int head_dim, const float *q, const float *k_cache,
    const float *v_cache, float *out);
static uint64_t st = 12345;
static float frand() {
  st ^= st << 13;
  st ^= st >> 7;
  st ^= st << 17;
  return (float)((double)(st >> 11) / 9007199254740992.0 * 2 - 1);
}
static int run(int len, int heads, int kvh, int hd, int bs) {
  int nb = (len + bs - 1) / bs, pool = nb + 3, max_blocks = nb + 1;
  size_t kvd = (size_t)kvh * hd, slots = (size_t)pool * bs;
  std::vector<float> kc(slots * kvd, NAN), vc(slots * kvd, NAN);
  std::vector<float> kcont((size_t)(len + 2) * kvd, NAN), vcont = kcont;
  std::vector<int32_t> table(max_blocks);
  for (int b = 0; b < max_blocks; b++)
    table[b] = b < nb ? (b * 5 + 2) % (nb + 2) : pool - 1; /* spare: NaN */
  /* make the mapping a permutation of distinct blocks */
  for (int b = 0; b < nb; b++)
    table[b] = (nb - 1 - b) + 1;
  for (int p = 0; p < len; p++) {
    size_t slot = (size_t)((int64_t)table[p / bs] * bs + p % bs);
    for (size_t d = 0; d < kvd; d++) {
      float a = frand(), b = frand();
      kc[slot * kvd + d] = kcont[(size_t)p * kvd + d] = a;
      vc[slot * kvd + d] = vcont[(size_t)p * kvd + d] = b;
    }
  }
  /* queries: the last 3 positions, position 0 and a middle one */
  std::vector<int32_t> qpos = {len - 1, 0, len / 2, len - 2, len - 3};
  while ((int)qpos.size() > 0 && qpos.back() < 0)
    qpos.pop_back();
  int nq = (int)qpos.size();
  std::vector<int32_t> qseq(nq, 0);
  size_t qrow = (size_t)heads * hd;
  std::vector<float> q(nq * qrow);
  for (auto &v : q)
    v = frand() * 2;
  std::vector<float> ref(nq * qrow, NAN), got(nq * qrow, NAN);
  r1d_cpu_paged_attention(nullptr, nq, qseq.data(), qpos.data(), len - 1,
                          table.data(), max_blocks, bs, heads, kvh, hd,
                          q.data(), kc.data(), vc.data(), ref.data());
  att_args a = {};
  a.q = q.data();
  a.k_cache = kc.data();
  a.v_cache = vc.data();
  a.out = got.data();
  a.n_heads = heads;
  a.n_kv_heads = kvh;
  a.head_dim = hd;
  a.q_seq = qseq.data();
  a.q_pos = qpos.data();
  a.block_tables = table.data();
  a.max_blocks = max_blocks;
  a.block_size = bs;
  launch(dim3(nq, kvh), dim3(ATT_THREADS), [&] { k_attention<true>(a); });
  double md = 0;
  for (size_t i = 0; i < got.size(); i++) {
    double d = fabs((double)got[i] - ref[i]);
    if (!(d <= md)) md = d; /* NaN -> NaN */
  }
  /* contiguous: all positions 0..len-1 as queries with start 0; compare the
   * rows at our query positions bit for bit with the paged result */
  std::vector<float> qall((size_t)len * qrow, 0.0f),
      oall((size_t)len * qrow, NAN);
  for (int i = 0; i < nq; i++)
    memcpy(&qall[(size_t)qpos[i] * qrow], &q[i * qrow], qrow * sizeof(float));
  att_args c = a;
  c.q = qall.data();
  c.k_cache = kcont.data();
  c.v_cache = vcont.data();
  c.out = oall.data();
  c.start = 0;
  launch(dim3(len, kvh), dim3(ATT_THREADS), [&] { k_attention<false>(c); });
  long diff = 0;
  for (int i = 0; i < nq; i++)
    diff += memcmp(&oall[(size_t)qpos[i] * qrow], &got[i * qrow],
                   qrow * sizeof(float)) != 0;
  int ok = md < 2e-6 && diff == 0;
  printf("len %4d heads %2d/%d hd %3d bs %2d: max|gpu-cpu| %.2e, paged!=contig "
         "rows %ld %s\n",
         len, heads, kvh, hd, bs, md, diff, ok ? "ok" : "FAIL");
  return !ok;
}
int main() {
  int fails = 0;
  fails += run(1, 2, 2, 64, 16);
  fails += run(37, 14, 2, 64, 16);  /* group 7 */
  fails += run(20, 4, 2, 80, 1);    /* head 80, block 1 */
  fails += run(33, 16, 1, 128, 32); /* group 16: two ATT_HEADS passes */
  fails += run(9, 8, 1, 256, 4);    /* head 256, group 8 */
  fails += run(7, 12, 2, 128, 16);  /* Qwen2-1.5B: group 6, len < 8 warps */
  fails += run(70, 10, 2, 96, 16);  /* group 5, head 96 */
  printf("attention: %d failures\n", fails);
  return fails;
}

/* shim.h - runs CUDA kernel source on the host: one std::thread per CUDA
 * thread, __syncthreads as a std::barrier over the block, warp shuffles
 * through a per-warp buffer and barrier (asserting that all 32 lanes are
 * alive: a full-mask shuffle with an exited lane is a bug). __shared__
 * variables become function statics: one block runs at a time. A barrier
 * reached by only part of the block deadlocks here (run under timeout). */
#pragma once
#include <atomic>
#include <barrier>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <math.h>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

inline dim3 gridDim, blockDim, blockIdx;
inline thread_local dim3 threadIdx;

struct warp_state {
  std::unique_ptr<std::barrier<>> bar;
  uint64_t buf[32];
  std::atomic<int> alive{32};
};
struct block_state {
  std::unique_ptr<std::barrier<>> bar;
  std::vector<std::unique_ptr<warp_state>> warps;
};
inline block_state *g_block;
inline thread_local int t_lane, t_warp;
inline std::mutex g_atomic_mu;
inline long g_shfl_calls, g_sync_calls;

inline void __syncthreads() {
  g_block->bar->arrive_and_wait();
}
inline void __syncwarp(unsigned = 0xffffffffu) {
  warp_state *w = g_block->warps[t_warp].get();
  assert(w->alive.load() == 32);
  w->bar->arrive_and_wait();
}
template <class T> T shfl_src(T v, int src) {
  warp_state *w = g_block->warps[t_warp].get();
  if (w->alive.load() != 32) {
    fprintf(stderr, "shuffle with %d live lanes\n", w->alive.load());
    abort();
  }
  static_assert(sizeof(T) <= 8, "");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  w->buf[t_lane] = bits;
  w->bar->arrive_and_wait();
  uint64_t got = w->buf[src];
  w->bar->arrive_and_wait();
  T r;
  memcpy(&r, &got, sizeof(T));
  return r;
}
template <class T> T __shfl_xor_sync(unsigned mask, T v, int off) {
  assert(mask == 0xffffffffu);
  return shfl_src(v, t_lane ^ off);
}
template <class T> T __shfl_up_sync(unsigned mask, T v, int off) {
  assert(mask == 0xffffffffu);
  T r = shfl_src(v, t_lane >= off ? t_lane - off : t_lane);
  return t_lane >= off ? r : v;
}
inline unsigned long long atomicAdd(unsigned long long *p,
                                    unsigned long long v) {
  std::lock_guard<std::mutex> g(g_atomic_mu);
  unsigned long long o = *p;
  *p = o + v;
  return o;
}
inline float __fdiv_rn(float a, float b) {
  return a / b;
}
inline float __fmul_rn(float a, float b) {
  return a * b;
}
inline float __fadd_rn(float a, float b) {
  return a + b;
}
inline float __fsub_rn(float a, float b) {
  return a - b;
}
inline double __dmul_rn(double a, double b) {
  return a * b;
}
inline double __dadd_rn(double a, double b) {
  return a + b;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
inline unsigned long long __float2ull_rz(float f) {
  return (unsigned long long)f;
}
struct __nv_bfloat16 {
  uint16_t b;
};
inline float __bfloat162float(__nv_bfloat16 h) {
  uint32_t u = (uint32_t)h.b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline __nv_bfloat16 host_bf16(float f) { /* RNE, NaN kept */
  uint32_t u;
  memcpy(&u, &f, 4);
  if (std::isnan(f)) return {0x7fff};
  u += 0x7fff + ((u >> 16) & 1);
  return {(uint16_t)(u >> 16)};
}
using std::isfinite;
using std::isnan;

/* Runs kernel body f over grid x block, one block at a time. */
inline void launch(dim3 grid, dim3 block, const std::function<void()> &f) {
  gridDim = grid;
  blockDim = block;
  unsigned nt = block.x * block.y * block.z;
  assert(block.y == 1 && block.z == 1);
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        blockIdx = dim3(bx, by, bz);
        block_state bs;
        bs.bar = std::make_unique<std::barrier<>>(nt);
        unsigned nw = (nt + 31) / 32;
        for (unsigned w = 0; w < nw; w++) {
          auto ws = std::make_unique<warp_state>();
          unsigned lanes = nt - w * 32 < 32 ? nt - w * 32 : 32;
          ws->bar = std::make_unique<std::barrier<>>(lanes);
          ws->alive = (int)lanes;
          bs.warps.push_back(std::move(ws));
        }
        g_block = &bs;
        std::vector<std::thread> th;
        for (unsigned t = 0; t < nt; t++)
          th.emplace_back([&, t] {
            threadIdx = dim3(t, 0, 0);
            t_lane = t & 31;
            t_warp = t >> 5;
            f();
            warp_state *w = bs.warps[t_warp].get();
            w->alive--;
            w->bar->arrive_and_drop();
            bs.bar->arrive_and_drop();
          });
        for (auto &x : th)
          x.join();
      }
}

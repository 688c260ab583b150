// What roadseg's CPU kernels share: 16-float vectors (GCC vector extensions: AVX-512 where the CPU
// has it, pairs of narrower registers elsewhere), their bf16 loads and stores, and a parallel loop on
// OpenMP's threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

typedef float v16 __attribute__((vector_size(64)));

static inline v16 load(const float *p) { v16 r; std::memcpy(&r, p, sizeof r); return r; }
static inline void store(float *p, v16 r) { std::memcpy(p, &r, sizeof r); }

// bf16 (the upper 16 bits of a float) to and from 16-float vectors.
typedef int32_t i16v __attribute__((vector_size(64)));
typedef uint32_t u16v __attribute__((vector_size(64)));
typedef uint16_t h16v __attribute__((vector_size(32)));

static const v16 LANE = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

// Values [0, n) of p (n <= 16) as floats; lanes from n on are `fill`. `wide`: 16 values may be read.
static inline v16 load_bf16(const uint16_t *p, int64_t n, float fill, bool wide) {
  h16v h = {};
  if (wide || n == 16) std::memcpy(&h, p, sizeof h);
  else for (int64_t j = 0; j < n; ++j) h[j] = p[j];
  const u16v u = __builtin_convertvector(h, u16v) << 16;
  v16 f;
  std::memcpy(&f, &u, sizeof f);
  return n == 16 ? f : (LANE < float(n) ? f : v16{} + fill);
}

// Lanes [0, n) of f to p as bf16, rounded to nearest even as PyTorch's casts are.
static inline void store_bf16(uint16_t *p, v16 f, int64_t n) {
  u16v u;
  std::memcpy(&u, &f, sizeof u);
  const u16v nan = (u & 0x7fffffffu) > 0x7f800000u;
  u = ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16 & ~nan) | (nan & 0x7fc0u);
  const h16v h = __builtin_convertvector(u, h16v);
  if (n == 16) std::memcpy(p, &h, sizeof h);
  else for (int64_t j = 0; j < n; ++j) p[j] = h[j];
}

// Runs f(begin, end) over [0, n) split into `threads` contiguous ranges.
template <typename F>
static void parallel(int64_t n, int threads, F f) {
  if (threads <= 1 || n < 2) { f(0, n); return; }
  const int64_t chunk = (n + threads - 1) / threads;
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int i = 0; i < threads; ++i) {
    const int64_t a = i * chunk, b = std::min(n, a + chunk);
    if (a < b) f(a, b);
  }
}

// What roadseg's CPU kernels share: 16-float vectors (GCC vector extensions: AVX-512 where the CPU
// has it, pairs of narrower registers elsewhere) and a parallel loop on OpenMP's threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

typedef float v16 __attribute__((vector_size(64)));

static inline v16 load(const float *p) { v16 r; std::memcpy(&r, p, sizeof r); return r; }
static inline void store(float *p, v16 r) { std::memcpy(p, &r, sizeof r); }

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
